//! The directory a daemon's file goes in (its socket file, its pid file),
//! opened once and checked: only root and the daemon's user may replace
//! its entries ([`Dir::of`], [`directory_risk`]).
//!
//! It owns that check, for the transport's socket files and the daemon's
//! pid file alike. It does not make, open or remove any file in the
//! directory: each caller does, relative to the directory it holds open.

use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The directory a socket file or a pid file goes in, opened once: the
/// directory that is checked is the one the file is made in, whatever is
/// renamed or linked meanwhile.
#[derive(Debug)]
pub(crate) struct Dir {
    pub(crate) fd: OwnedFd,
    pub(crate) path: PathBuf,
    /// The directory's owner when it was opened and checked: when it is
    /// neither root nor this process's user, someone else may rename and
    /// replace the directory's entries (see [`Dir::others_may_rename`]).
    pub(crate) owner: u32,
}

impl Dir {
    /// Opens the directory of `path` (through whatever links the
    /// configured path holds: those are the administrator's) and returns
    /// it with the file's name in it. Refuses a directory that lets others
    /// replace the file (see [`directory_risk`]); `what` names the file in
    /// the error.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a path without a file name or a directory
    /// that fails the check, [`Error::Io`] when it cannot be opened.
    pub(crate) fn of<'p>(path: &'p Path, what: &str) -> Result<(Dir, &'p OsStr)> {
        use rustix::fs::{fstat, open, Mode, OFlags};
        let name = match path.file_name() {
            Some(name) if !path.as_os_str().as_bytes().ends_with(b"/") => name,
            _ => {
                return Err(Error::Config(format!(
                    "{what} {} names no file",
                    path.display()
                )))
            }
        };
        let dir_path = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let fd = open(
            dir_path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io::Error::from)?;
        let st = fstat(&fd).map_err(io::Error::from)?;
        let euid = rustix::process::geteuid().as_raw();
        if let Some(risk) = directory_risk(st.st_mode, st.st_uid, euid) {
            return Err(Error::Config(format!(
                "refusing to keep the {what} {} in {}: {risk}; use a directory that only \
                 root or the daemon's user may write to (systemd's RuntimeDirectory=, \
                 /run/NAME), or a sticky one such as /tmp",
                path.display(),
                dir_path.display()
            )));
        }
        Ok((
            Dir {
                fd,
                path: dir_path.to_owned(),
                owner: st.st_uid,
            },
            name,
        ))
    }

    /// Whether a user other than root and this process's may rename or
    /// replace entries of this directory: its owner, when it is another
    /// user (a daemon running as root accepts the directory of its
    /// `run_as` user). Group or other write permission without the sticky
    /// bit would too, but [`Dir::of`] refuses that; with the sticky bit
    /// (`/tmp`) others may add entries but not rename or remove ours.
    pub(crate) fn others_may_rename(&self) -> bool {
        self.owner != 0 && self.owner != rustix::process::geteuid().as_raw()
    }
}

/// What makes a directory unfit for a daemon's socket file or pid file,
/// given its `mode` and `owner` and the daemon's effective uid; `None`
/// when it is fit.
///
/// Whoever may replace an entry of the directory may put their own socket
/// where clients look for the daemon's, or a pid file naming another
/// process. Group or other write permission lets other users do that,
/// unless the directory is sticky (like `/tmp`: there only an entry's
/// owner may remove or rename it). Its owner always may: a daemon that
/// does not run as root refuses a directory of another user. One that
/// runs as root accepts any owner here, since the directory of the user
/// it will run as (`run_as`) is the recommended place;
/// `daemon::drop_privileges` checks that owner once it knows the user.
///
/// No file is ever reached through a link whatever the directory (the
/// socket file's constructions, `transport::socket_file`, and the pid
/// file's open, `daemon::PidFile::acquire`, make sure of that), so this
/// check is about who may stand in for the daemon, not about what root
/// may be tricked into touching.
pub(crate) fn directory_risk(mode: u32, owner: u32, euid: u32) -> Option<String> {
    let sticky = mode & 0o1000 != 0;
    if mode & 0o022 != 0 && !sticky {
        let who = if mode & 0o002 != 0 {
            "every user"
        } else {
            "its group"
        };
        return Some(format!(
            "{who} may write to it (mode {:04o}, not sticky)",
            mode & 0o7777
        ));
    }
    if euid != 0 && owner != euid && owner != 0 {
        return Some(format!("it belongs to another user (uid {owner})"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::directory_risk;

    #[test]
    fn which_directories_may_hold_a_socket_or_pid_file() {
        // Private or read-only for others: fine, as root or as the owner.
        assert_eq!(directory_risk(0o40700, 0, 0), None);
        assert_eq!(directory_risk(0o40755, 0, 0), None);
        assert_eq!(directory_risk(0o40755, 1000, 1000), None);
        // Root accepts the directory of the user it will run as.
        assert_eq!(directory_risk(0o40755, 65534, 0), None);
        // Sticky, like /tmp: others may add entries but not replace ours.
        assert_eq!(directory_risk(0o41777, 0, 0), None);
        assert_eq!(directory_risk(0o41777, 0, 1000), None);
        // Writable by others without the sticky bit.
        let e = directory_risk(0o40777, 0, 0).unwrap();
        assert!(e.contains("every user") && e.contains("0777"), "{e}");
        let e = directory_risk(0o40775, 0, 0).unwrap();
        assert!(e.contains("its group"), "{e}");
        // Another user's, for a daemon that is not root.
        let e = directory_risk(0o40755, 1001, 1000).unwrap();
        assert!(e.contains("uid 1001"), "{e}");
        assert_eq!(directory_risk(0o40755, 0, 1000), None);
    }
}
