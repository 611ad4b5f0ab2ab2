//! `call --fd N` and `call --file PATH`: descriptors to send with a call,
//! in the order given on the command line, the two flags mixed.
//!
//! clap keeps each flag's values apart, and its derive has no way to put
//! two flags into one list; the order is what numbers the descriptors (the
//! first given is `{"$fd": 0}`), so these two are defined by hand and read
//! back by their positions on the command line. Opening the files and
//! taking the descriptors is `plan`'s (through `sent`); nothing here opens
//! anything.

use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Args, FromArgMatches};

/// Where a descriptor to send comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FdSource {
    /// `--fd N`: a descriptor anydctl's process has (inherited: 0 for
    /// stdin, or one the shell opened, `3<file`).
    Inherited(i32),
    /// `--file PATH`: a file anydctl opens read-only.
    File(PathBuf),
}

impl FdSource {
    /// The flag as the user wrote it, for messages.
    pub(crate) fn flag(&self) -> String {
        match self {
            FdSource::Inherited(n) => format!("--fd {n}"),
            FdSource::File(path) => format!("--file {}", path.display()),
        }
    }
}

/// The descriptors `--fd` and `--file` give, in command-line order.
#[derive(Debug, Default, Clone)]
pub(crate) struct FdArgs {
    /// In the order given: the first is descriptor 0.
    pub(crate) sources: Vec<FdSource>,
}

const FD: &str = "fd";
const FILE: &str = "file";

impl Args for FdArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd.arg(
            Arg::new(FD)
                .long("fd")
                .value_name("N")
                .action(ArgAction::Append)
                .value_parser(clap::value_parser!(i32).range(0..))
                .help("Send anydctl's descriptor N with the call, for an Fd parameter")
                .long_help(
                    "Send anydctl's open descriptor N with the call, for a parameter of type \
                     Fd: one it inherited, such as 0 (stdin: --fd 0 < file) or one the shell \
                     opens (--fd 3 3<file, --fd 3 3>file). The daemon gets a copy; anydctl \
                     keeps its own. Repeatable; numbered with --file in the order given (see \
                     \"Sending descriptors\" above).",
                ),
        )
        .arg(
            Arg::new(FILE)
                .long("file")
                .value_name("PATH")
                .action(ArgAction::Append)
                .value_parser(clap::value_parser!(PathBuf))
                .help("Open PATH read-only and send it with the call, for an Fd parameter")
                .long_help(
                    "Open PATH read-only, as the user anydctl runs as, and send the \
                     descriptor with the call, for a parameter of type Fd. Repeatable; \
                     numbered with --fd in the order given (see \"Sending descriptors\" \
                     above).",
                ),
        )
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for FdArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut placed: Vec<(usize, FdSource)> = Vec::new();
        if let (Some(at), Some(values)) = (m.indices_of(FD), m.get_many::<i32>(FD)) {
            placed.extend(at.zip(values.map(|&n| FdSource::Inherited(n))));
        }
        if let (Some(at), Some(values)) = (m.indices_of(FILE), m.get_many::<PathBuf>(FILE)) {
            placed.extend(at.zip(values.map(|p| FdSource::File(p.clone()))));
        }
        placed.sort_by_key(|&(at, _)| at);
        Ok(FdArgs {
            sources: placed.into_iter().map(|(_, source)| source).collect(),
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn sources(args: &[&str]) -> Vec<FdSource> {
        let cli =
            Cli::try_parse_from(["anydctl", "call", "/x.sock", "read"].iter().chain(args)).unwrap();
        match cli.command {
            Command::Call(call) => call.fds.sources,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn descriptors_keep_the_command_lines_order() {
        assert_eq!(sources(&[]), []);
        let file = |p: &str| FdSource::File(PathBuf::from(p));
        assert_eq!(
            sources(&["--file", "/a", "--fd", "0", "x", "--file=/b", "--fd", "3"]),
            [
                file("/a"),
                FdSource::Inherited(0),
                file("/b"),
                FdSource::Inherited(3)
            ]
        );
        assert!(Cli::try_parse_from(["anydctl", "call", "/x.sock", "e", "--fd", "-1"]).is_err());
    }
}
