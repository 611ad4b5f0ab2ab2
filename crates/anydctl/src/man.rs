//! The man page, from the same clap definition as `--help` and the
//! completions. clap_mangen writes the title, synopsis, description and
//! global options; the commands, exit status, environment and examples are
//! written here, from `cli.rs`'s tables, because clap_mangen would only
//! list the commands by name and would run the tables together into one
//! paragraph.

use std::io::{self, Write};

use clap::{Arg, CommandFactory};

use crate::cli::{Cli, ENVIRONMENT, EXAMPLES};
use crate::exit::Exit;

/// Writes the man page (roff, section 1).
///
/// # Errors
///
/// A write error.
pub(crate) fn render(out: &mut impl Write) -> io::Result<()> {
    let mut cmd = Cli::command();
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;

    writeln!(out, ".SH COMMANDS")?;
    for sub in cmd.get_subcommands_mut() {
        let usage = sub.render_usage().to_string();
        let usage = usage.strip_prefix("Usage: ").unwrap_or(&usage).to_owned();
        writeln!(out, ".SS {}", escape(&usage))?;
        if let Some(about) = sub.get_long_about().or_else(|| sub.get_about()) {
            paragraphs(out, &about.to_string())?;
        }
        let args: Vec<&Arg> = sub
            .get_arguments()
            .filter(|a| !a.is_hide_set() && !a.is_global_set())
            .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
            .collect();
        for arg in args {
            writeln!(out, ".TP\n\\fB{}\\fR", escape(&label(arg)))?;
            let help = arg
                .get_long_help()
                .or_else(|| arg.get_help())
                .map(|h| h.to_string())
                .unwrap_or_default();
            let mut extra = Vec::new();
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            if !defaults.is_empty() && arg.get_num_args().is_some_and(|n| n.takes_values()) {
                extra.push(format!("[default: {}]", defaults.join(", ")));
            }
            let possible: Vec<String> = arg
                .get_possible_values()
                .iter()
                .map(|v| v.get_name().to_owned())
                .collect();
            if !possible.is_empty() && arg.get_action().takes_values() {
                extra.push(format!("[possible values: {}]", possible.join(", ")));
            }
            writeln!(out, "{}", escape([help, extra.join(" ")].join(" ").trim()))?;
        }
        if let Some(after) = sub.get_after_help() {
            preformatted(out, &after.to_string())?;
        }
    }

    writeln!(out, ".SH \"EXIT STATUS\"")?;
    for (exit, meaning) in Exit::DOCUMENTED {
        writeln!(out, ".TP\n\\fB{}\\fR\n{}", exit.code(), escape(meaning))?;
    }
    writeln!(out, ".SH ENVIRONMENT\n{}", escape(ENVIRONMENT))?;
    writeln!(out, ".SH EXAMPLES")?;
    for (command, what) in EXAMPLES {
        writeln!(out, ".TP\n\\fB{}\\fR\n{}", escape(command), escape(what))?;
    }
    man.render_version_section(out)
}

/// `-c, --count <N>` or `<ADDR>` or `<ARG>...`.
fn label(arg: &Arg) -> String {
    let values = arg
        .get_value_names()
        .map(|names| {
            names
                .iter()
                .map(|n| format!("<{n}>"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| format!("<{}>", arg.get_id().as_str().to_uppercase()));
    let many = arg.get_num_args().is_some_and(|n| n.max_values() > 1);
    if arg.is_positional() {
        return if many { format!("{values}...") } else { values };
    }
    let mut flags = Vec::new();
    if let Some(s) = arg.get_short() {
        flags.push(format!("-{s}"));
    }
    if let Some(l) = arg.get_long() {
        flags.push(format!("--{l}"));
    }
    let mut text = flags.join(", ");
    if arg.get_action().takes_values() {
        text.push(' ');
        text.push_str(&values);
    }
    text
}

/// Text whose blank lines separate paragraphs.
fn paragraphs(out: &mut impl Write, text: &str) -> io::Result<()> {
    for (i, p) in text.split("\n\n").enumerate() {
        if i > 0 {
            writeln!(out, ".PP")?;
        }
        writeln!(out, "{}", escape(p.trim()))?;
    }
    Ok(())
}

/// Text kept line for line (examples).
fn preformatted(out: &mut impl Write, text: &str) -> io::Result<()> {
    writeln!(out, ".PP\n.nf")?;
    for line in text.lines() {
        writeln!(out, "{}", escape(line))?;
    }
    writeln!(out, ".fi")
}

/// Escapes text for roff: backslashes, hyphens (so that options print as
/// the ASCII hyphen they are), and a leading dot or quote that would make
/// a line a request.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split('\n') {
        if !out.is_empty() {
            out.push('\n');
        }
        if line.starts_with('.') || line.starts_with('\'') {
            out.push_str("\\&");
        }
        for c in line.chars() {
            match c {
                '\\' => out.push_str("\\e"),
                '-' => out.push_str("\\-"),
                _ => out.push(c),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roff_escapes() {
        assert_eq!(escape("-k a\\b"), "\\-k a\\eb");
        assert_eq!(escape(".hidden\n'x"), "\\&.hidden\n\\&'x");
    }

    #[test]
    fn the_page_has_every_section() {
        let mut page = Vec::new();
        render(&mut page).unwrap();
        let page = String::from_utf8(page).unwrap();
        for section in [
            ".SH NAME",
            ".SH SYNOPSIS",
            ".SH OPTIONS",
            ".SH COMMANDS",
            ".SH \"EXIT STATUS\"",
            ".SH ENVIRONMENT",
            ".SH EXAMPLES",
        ] {
            assert!(page.contains(section), "{section} missing");
        }
        assert!(page.contains("anydctl call"), "{page}");
        assert!(page.contains("\\-\\-requests"), "{page}");
    }
}
