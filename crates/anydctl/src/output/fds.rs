//! Descriptors a daemon returned, as `anydctl call` shows them: what kind
//! of file each one is (in place of its placeholder in the JSON), or, with
//! `--raw`, the content read through it.
//!
//! A descriptor is shown as `{"$fd": {...}}`, the placeholder's key kept
//! so that the JSON says where a descriptor was, with what this process
//! learns of it locally:
//!
//! | key | what |
//! | --- | --- |
//! | `kind` | `regular file`, `directory`, `pipe`, `FIFO` (a named one), `socket`, `character device`, `block device`, `symbolic link`, `unknown` (from `fstat`) |
//! | `access` | how it was opened: `read-only`, `write-only`, `read-write`, or `path-only` (`O_PATH`) |
//! | `path` | what `/proc/self/fd/N` links to: a path (` (deleted)` after it when the file is gone), or the kernel's name for what has none, such as `pipe:[1234]` or `socket:[5678]`; left out without `/proc` |
//! | `size` | bytes, for a regular file |
//! | `device` | `major:minor`, for a device (`1:3` is `/dev/null`, `10:200` a TUN device) |
//! | `mode` | permission bits in octal, `"0600"` |
//! | `uid`, `gid` | the owner |
//!
//! Only what is known is there; `error` says why `fstat` failed, if it did.

use std::fs::File;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use anyd::{Fd, Value};
use rustix::fs::{FileType, OFlags};

use super::text;
use crate::exit::{Exit, Failure};

/// What `fd` is, as the table above says.
pub(crate) fn describe(fd: &Fd) -> Value {
    let mut fields: Vec<(&str, Value)> = Vec::new();
    let link = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(fd)
    ))
    .ok()
    .map(|p| p.to_string_lossy().into_owned());
    match rustix::fs::fstat(fd) {
        Ok(st) => {
            let file_type = FileType::from_raw_mode(st.st_mode);
            fields.push((
                "kind",
                Value::Str(kind(file_type, link.as_deref()).to_owned()),
            ));
            if let Some(access) = access(fd) {
                fields.push(("access", Value::Str(access.to_owned())));
            }
            if let Some(link) = link {
                fields.push(("path", Value::Str(link)));
            }
            match file_type {
                FileType::RegularFile => fields.push(("size", Value::Int(st.st_size.into()))),
                FileType::CharacterDevice | FileType::BlockDevice => {
                    let (major, minor) =
                        (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev));
                    fields.push(("device", Value::Str(format!("{major}:{minor}"))));
                }
                _ => {}
            }
            fields.push(("mode", Value::Str(format!("{:04o}", st.st_mode & 0o7777))));
            fields.push(("uid", Value::Int(st.st_uid.into())));
            fields.push(("gid", Value::Int(st.st_gid.into())));
        }
        Err(e) => {
            fields.push(("kind", Value::Str("unknown".to_owned())));
            if let Some(link) = link {
                fields.push(("path", Value::Str(link)));
            }
            fields.push(("error", Value::Str(format!("fstat: {e}"))));
        }
    }
    Value::Map(
        fields
            .into_iter()
            .map(|(k, v)| (Value::Str(k.to_owned()), v))
            .collect(),
    )
}

/// The name of a kind of file. A FIFO without a path is a pipe: the
/// kernel names an anonymous one `pipe:[inode]`.
fn kind(file_type: FileType, link: Option<&str>) -> &'static str {
    match file_type {
        FileType::RegularFile => "regular file",
        FileType::Directory => "directory",
        FileType::Fifo if link.is_some_and(|l| l.starts_with('/')) => "FIFO",
        FileType::Fifo => "pipe",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Symlink => "symbolic link",
        _ => "unknown",
    }
}

/// How `fd` was opened, if the kernel says.
fn access(fd: &Fd) -> Option<&'static str> {
    let flags = rustix::fs::fcntl_getfl(fd).ok()?;
    if flags.contains(OFlags::PATH) {
        return Some("path-only");
    }
    Some(match flags & OFlags::RWMODE {
        OFlags::RDONLY => "read-only",
        OFlags::WRONLY => "write-only",
        _ => "read-write",
    })
}

/// Why `fd` cannot be read for its content, if it cannot: a directory (a
/// read is EISDIR), or a descriptor opened for writing only or as a path
/// (a read is EBADF). Said before reading, in words, rather than as the
/// system's error.
pub(crate) fn unreadable(fd: &Fd) -> Option<String> {
    if let Ok(st) = rustix::fs::fstat(fd) {
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            return Some("it is a directory, which has no content to copy".to_owned());
        }
    }
    match access(fd) {
        Some(access @ ("write-only" | "path-only")) => {
            Some(format!("it was opened {access}: it cannot be read"))
        }
        _ => None,
    }
}

/// Whether reading `fd` may wait for what never comes: a pipe or FIFO
/// whose writer keeps it open, a socket whose peer does, a character
/// device (a terminal waiting for a line, a TUN device for a packet, a
/// serial line; or one that never ends, such as `/dev/zero`). A regular
/// file or a block device ends where its content does.
fn may_wait(fd: &Fd) -> bool {
    rustix::fs::fstat(fd).is_ok_and(|st| {
        matches!(
            FileType::from_raw_mode(st.st_mode),
            FileType::Fifo | FileType::Socket | FileType::CharacterDevice
        )
    })
}

/// Waits until `file` has something to read (or its end, or an error,
/// which the read then tells), or `deadline`; says whether it came first.
fn readable_before(file: &File, deadline: Instant) -> Result<bool, Failure> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let timeout = Timespec::try_from(left).ok();
        let mut fds = [PollFd::new(file, PollFlags::IN)];
        match poll(&mut fds, timeout.as_ref()) {
            Ok(0) => continue,
            Ok(_) => return Ok(true),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                return Err(Failure::new(
                    Exit::Other,
                    format!("cannot wait on the descriptor: {e}"),
                ))
            }
        }
    }
}

/// Copies what can be read through `fd`, from where its offset is to its
/// end (a pipe's or a socket's: until its writers close it), to `out`. On
/// a terminal, control characters are made visible as `--raw` does for a
/// string (`text`), a character split between two reads kept whole.
///
/// With `within` (`--timeout`), a descriptor that may wait for ever
/// ([`may_wait`]: a pipe, a socket, a terminal or another device) is read
/// for that long at most, each wait for data given what is left of it: a
/// daemon that keeps the other end open, or writes without end, cannot
/// hold anydctl. What came before the deadline is written out first.
///
/// # Errors
///
/// A read error, said as such (exit status 1); the deadline passing
/// before the end (exit status 6, as for a reply later than `--timeout`);
/// a write error, as any output error (`main` keeps quiet about a closed
/// pipe).
pub(crate) fn copy(
    fd: Fd,
    out: &mut impl Write,
    terminal: bool,
    within: Option<Duration>,
) -> Result<(), Failure> {
    let deadline = within
        .filter(|_| may_wait(&fd))
        .map(|within| (Instant::now() + within, within));
    let mut file = File::from(fd);
    let mut buf = vec![0u8; 64 * 1024];
    // Bytes of a character that the last read cut short (terminal only).
    let mut carry: Vec<u8> = Vec::new();
    loop {
        if let Some((deadline, within)) = deadline {
            if !readable_before(&file, deadline)? {
                out.write_all(&text::escape_bytes(&carry))?;
                out.flush()?;
                return Err(Failure::new(
                    Exit::Timeout,
                    format!(
                        "timed out reading through the descriptor: it had not ended after {} \
                         (--timeout); what came before is printed (a pipe or a socket ends \
                         when its other side closes it)",
                        super::duration(within.as_nanos().try_into().unwrap_or(u64::MAX))
                    ),
                ));
            }
        }
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Failure::new(
                    Exit::Other,
                    format!("cannot read through the descriptor: {e}"),
                ))
            }
        };
        if !terminal {
            out.write_all(&buf[..n])?;
            continue;
        }
        carry.extend_from_slice(&buf[..n]);
        let whole = carry.len() - cut_short(&carry);
        out.write_all(&text::escape_bytes(&carry[..whole]))?;
        carry.drain(..whole);
    }
    // A character cut short at the very end is bytes that are not UTF-8.
    out.write_all(&text::escape_bytes(&carry))?;
    Ok(())
}

/// How many bytes at the end of `bytes` start a UTF-8 character that is
/// not complete yet (0 to 3).
fn cut_short(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let b = bytes[bytes.len() - back];
        if b & 0xC0 != 0x80 {
            // A lead byte: the length its character needs.
            let needs = match b {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xF7 => 4,
                _ => 1,
            };
            return if needs > back { back } else { 0 };
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(fd: &Fd, key: &str) -> Option<Value> {
        describe(fd).get(key).cloned()
    }

    fn s(text: &str) -> Option<Value> {
        Some(Value::Str(text.to_owned()))
    }

    #[test]
    fn files_pipes_and_devices_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "12345").unwrap();
        let file = Fd::from(File::open(&path).unwrap());
        assert_eq!(shown(&file, "kind"), s("regular file"));
        assert_eq!(shown(&file, "access"), s("read-only"));
        assert_eq!(shown(&file, "path"), s(path.to_str().unwrap()));
        assert_eq!(shown(&file, "size"), Some(Value::Int(5)));
        assert_eq!(unreadable(&file), None);

        let (r, w) = rustix::pipe::pipe().unwrap();
        let (r, w) = (Fd::from(r), Fd::from(w));
        assert_eq!(shown(&r, "kind"), s("pipe"));
        assert_eq!(shown(&w, "access"), s("write-only"));
        assert!(shown(&r, "path")
            .unwrap()
            .as_str()
            .unwrap()
            .starts_with("pipe:["));
        assert_eq!(shown(&r, "size"), None);
        assert!(unreadable(&w).unwrap().contains("write-only"));

        let null = Fd::from(File::options().write(true).open("/dev/null").unwrap());
        assert_eq!(shown(&null, "kind"), s("character device"));
        assert_eq!(shown(&null, "device"), s("1:3"));
        assert_eq!(shown(&null, "path"), s("/dev/null"));

        let d = Fd::from(File::open(dir.path()).unwrap());
        assert_eq!(shown(&d, "kind"), s("directory"));
        assert!(unreadable(&d).unwrap().contains("directory"));

        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(shown(&Fd::from(a), "kind"), s("socket"));
    }

    /// Copies `fd` within `within`: what was written out, the failure's
    /// exit status if it failed, and how long it took.
    fn copied(fd: Fd, within: Duration) -> (String, Option<Exit>, Duration) {
        let mut out = Vec::new();
        let start = Instant::now();
        let result = copy(fd, &mut out, false, Some(within));
        let took = start.elapsed();
        let exit = result.err().map(|f| {
            assert!(f.to_string().contains("timed out"), "{f}");
            f.exit()
        });
        (String::from_utf8(out).unwrap(), exit, took)
    }

    #[test]
    fn what_may_never_end_is_read_within_the_deadline() {
        let within = Duration::from_millis(200);
        // A pipe whose writer stays open.
        let (r, w) = rustix::pipe::pipe().unwrap();
        rustix::io::write(&w, b"before\n").unwrap();
        let (shown, exit, took) = copied(Fd::from(r), within);
        assert_eq!((shown.as_str(), exit), ("before\n", Some(Exit::Timeout)));
        assert!(took >= within, "{took:?}");
        drop(w);

        // A socket whose peer stays.
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        b.write_all(b"hello").unwrap();
        let (shown, exit, took) = copied(Fd::from(a), within);
        assert_eq!((shown.as_str(), exit), ("hello", Some(Exit::Timeout)));
        assert!(took >= within, "{took:?}");

        // A terminal: a line typed, then nothing.
        use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let name = ptsname(&master, Vec::new()).unwrap();
        let terminal = File::options()
            .read(true)
            .write(true)
            .open(name.to_str().unwrap())
            .unwrap();
        rustix::io::write(&master, b"typed\n").unwrap();
        let (shown, exit, took) = copied(Fd::from(terminal), within);
        assert_eq!((shown.as_str(), exit), ("typed\n", Some(Exit::Timeout)));
        assert!(took >= within, "{took:?}");

        // A pipe that ends in time ends well.
        let (r, w) = rustix::pipe::pipe().unwrap();
        rustix::io::write(&w, b"all").unwrap();
        drop(w);
        assert_eq!(copied(Fd::from(r), within).0, "all");
    }

    #[test]
    fn a_regular_file_is_read_to_its_end_whatever_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "x".repeat(200_000)).unwrap();
        let file = Fd::from(File::open(&path).unwrap());
        let (shown, exit, _) = copied(file, Duration::from_nanos(1));
        assert_eq!((shown.len(), exit), (200_000, None));
    }

    #[test]
    fn on_a_terminal_content_is_escaped_and_characters_stay_whole() {
        assert_eq!(cut_short("é".as_bytes()), 0);
        assert_eq!(cut_short(&"é".as_bytes()[..1]), 1);
        assert_eq!(cut_short(&"€".as_bytes()[..2]), 2);
        assert_eq!(cut_short(b"ab"), 0);
        let (r, w) = rustix::pipe::pipe().unwrap();
        rustix::io::write(&w, "a\x1b[2Jé\n".as_bytes()).unwrap();
        drop(w);
        let mut out = Vec::new();
        copy(Fd::from(r), &mut out, true, None)
            .map_err(|e| e.to_string())
            .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "a\\x1b[2Jé\n");
    }
}
