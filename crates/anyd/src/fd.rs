//! [`Fd`]: a file descriptor as a value of a call's arguments or result.
//!
//! In the payload a descriptor is a placeholder, `{"$fd": n}`, naming its
//! index among the descriptors that travel with the frame as `SCM_RIGHTS`
//! ancillary data ([protocol section 8.2](crate::protocol#82-descriptors)). serde has no context to
//! carry those, so the code that encodes or decodes a frame opens a frame
//! context on its thread for the time it takes ([`Outgoing`],
//! [`Incoming`]); outside one, an `Fd` neither serializes nor
//! deserializes, with an error that says why, so that a descriptor never
//! becomes a placeholder that points nowhere. Contexts nest (a handler
//! may call another daemon while its own call is served): each puts back
//! the one it found.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::transport::fds::OutFd;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

// Only a client asks whether a type may hold an `Fd`.
#[cfg(feature = "client")]
mod probe;

#[cfg(feature = "client")]
pub(crate) use probe::may_hold_fd;

/// The placeholder's one key.
const KEY: &str = "$fd";

/// An open file descriptor that travels with a call over a Unix socket: a
/// handler's parameter (the caller passes it) or part of a result (the
/// daemon returns it), alone or inside any serde type.
///
/// Sending one gives the peer a descriptor of its own for the same open
/// file (the value keeps its own); a received one is close-on-exec, and
/// closed when the `Fd` is dropped. See
/// [protocol section 8.2](crate::protocol#82-descriptors).
///
/// A frame being sent shares the descriptor with the `Fd` it was
/// serialized from, rather than copy it: the descriptor stays open until
/// both are done with it, the frame written and the `Fd` dropped, in
/// whichever order. So dropping an `Fd` closes its descriptor at once
/// unless a frame still waits to send it; and
/// [`into_owned`](Fd::into_owned) in that moment (possible only for an
/// `Fd` the caller shares with a reply on its way, through a lock of its
/// own) gets a duplicate.
///
/// A daemon takes descriptors from its callers when one of its endpoints
/// has a parameter whose type names `Fd` (`Fd`, `Option<Fd>`,
/// `Vec<Fd>`, ...); for one inside a struct of your own, say so with
/// [`Appd::receive_descriptors`](crate::Appd::receive_descriptors).
/// Handing descriptors out needs nothing.
///
/// ```no_run
/// use anyd::{Appd, ClientSession, Fd};
/// use std::fs::File;
/// use std::io::Read;
///
/// // The daemon opens what the caller may not, and hands it over.
/// let running = Appd::new()
///     .api("open_log", || -> std::io::Result<Fd> {
///         Ok(Fd::from(File::open("/var/log/example.log")?))
///     })
///     .bind("unix:/tmp/example.sock")?
///     .spawn()?;
///
/// // The caller reads it.
/// let mut session = ClientSession::connect("unix:/tmp/example.sock")?;
/// let log: Fd = session.commit("open_log", ())?;
/// let mut text = String::new();
/// File::from(log).read_to_string(&mut text)?;
/// # running.shutdown()?;
/// # Ok::<(), anyd::Error>(())
/// ```
#[derive(Debug)]
pub struct Fd(
    /// Always `Some` but in the moment `into_owned` takes it out (`Fd`
    /// has a `Drop`, so its field cannot be moved out). Shared only with
    /// frames being sent (`OutFd`).
    Option<OutFd>,
);

/// How many `Fd`s exist in the process. While none does, none can be
/// encoded, and the calls that pass no descriptor skip opening a frame
/// context: the common case costs one load.
static ALIVE: AtomicUsize = AtomicUsize::new(0);

/// Whether an `Fd` exists in the process, so that one may be encoded.
#[inline]
pub(crate) fn any_alive() -> bool {
    ALIVE.load(Ordering::Relaxed) > 0
}

impl Fd {
    fn new(fd: OwnedFd) -> Fd {
        ALIVE.fetch_add(1, Ordering::Relaxed);
        Fd(Some(OutFd::new(fd)))
    }

    fn owned(&self) -> &OutFd {
        self.0.as_ref().expect("an Fd holds its descriptor")
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        ALIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Fd {
    /// The descriptor; a duplicate of it (close-on-exec) if a frame being
    /// sent still holds it (see above).
    ///
    /// # Panics
    ///
    /// If a duplicate is needed and the process is out of descriptors.
    pub fn into_owned(mut self) -> OwnedFd {
        let shared = self.0.take().expect("an Fd holds its descriptor");
        match OutFd::try_unwrap(shared) {
            Ok(fd) => fd,
            // The frame's share closes it once written; this number must
            // stay open until then, so the caller gets another.
            Err(shared) => rustix::io::fcntl_dupfd_cloexec(&*shared, 0).unwrap_or_else(|e| {
                panic!(
                    "anyd: cannot take out an Fd that a frame being sent holds: its duplicate \
                     failed ({e})"
                )
            }),
        }
    }

    /// The descriptor as a [`File`](std::fs::File), to read or write it.
    ///
    /// # Panics
    ///
    /// As [`into_owned`](Self::into_owned).
    pub fn into_file(self) -> std::fs::File {
        self.into_owned().into()
    }
}

impl From<OwnedFd> for Fd {
    fn from(fd: OwnedFd) -> Self {
        Fd::new(fd)
    }
}

impl From<std::fs::File> for Fd {
    fn from(file: std::fs::File) -> Self {
        Fd::new(file.into())
    }
}

impl From<std::os::unix::net::UnixStream> for Fd {
    fn from(socket: std::os::unix::net::UnixStream) -> Self {
        Fd::new(socket.into())
    }
}

/// [`Fd::into_owned`]; panics as it does.
impl From<Fd> for OwnedFd {
    fn from(fd: Fd) -> OwnedFd {
        fd.into_owned()
    }
}

/// [`Fd::into_file`]; panics as it does.
impl From<Fd> for std::fs::File {
    fn from(fd: Fd) -> std::fs::File {
        fd.into_owned().into()
    }
}

impl AsFd for Fd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.owned().as_fd()
    }
}

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.owned().as_raw_fd()
    }
}

impl Serialize for Fd {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let index =
            crate::frame_context::push_outgoing(self.owned()).map_err(serde::ser::Error::custom)?;
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(KEY, &index)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for Fd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Placeholder;
        impl<'de> Visitor<'de> for Placeholder {
            type Value = usize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a descriptor placeholder {\"$fd\": n}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
                let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? else {
                    return Err(de::Error::custom("an empty map is not a descriptor"));
                };
                if key != KEY {
                    return Err(de::Error::custom(format_args!(
                        "{key:?} is not a descriptor placeholder"
                    )));
                }
                let index: usize = map.next_value()?;
                if map.next_key::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom("a descriptor placeholder has one key"));
                }
                Ok(index)
            }
        }
        #[cfg(feature = "client")]
        if probe::met_fd() {
            // Asked whether a type holds an `Fd`: it does.
            return Err(de::Error::custom("an Fd"));
        }
        let index = d
            .deserialize_map(Placeholder)
            .inspect_err(|_| crate::frame_context::note_fd_refused())?;
        crate::frame_context::take_incoming(index)
            .map(Fd::new)
            .map_err(|why| {
                crate::frame_context::note_fd_refused();
                de::Error::custom(why)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame_context::{decode_with_fds, encode_with_fds};

    fn pipe() -> (OwnedFd, OwnedFd) {
        rustix::pipe::pipe().unwrap()
    }

    fn inode(fd: BorrowedFd<'_>) -> u64 {
        rustix::fs::fstat(fd).unwrap().st_ino
    }

    #[derive(Serialize, Deserialize)]
    struct Opened {
        name: String,
        file: Fd,
        log: Option<Fd>,
    }

    #[test]
    fn descriptors_become_placeholders_and_come_back() {
        let (r, w) = pipe();
        let (r_ino, w_ino) = (inode(r.as_fd()), inode(w.as_fd()));
        let value = Opened {
            name: "tun0".into(),
            file: r.into(),
            log: Some(w.into()),
        };
        let numbers = [
            value.file.as_raw_fd(),
            value.log.as_ref().unwrap().as_raw_fd(),
        ];
        let (json, fds) = encode_with_fds(true, || serde_json::to_string(&value)).unwrap();
        assert_eq!(json, r#"{"name":"tun0","file":{"$fd":0},"log":{"$fd":1}}"#);
        drop(value);
        assert_eq!(fds.len(), 2);
        // No copy: the frame holds the very descriptors, open after their
        // values are gone, and is the last to hold them.
        assert_eq!(
            fds.iter().map(|f| f.as_raw_fd()).collect::<Vec<_>>(),
            numbers
        );
        let fds = fds
            .into_iter()
            .map(|f| OutFd::try_unwrap(f).unwrap())
            .collect();
        let back: Opened = decode_with_fds(fds, || serde_json::from_str(&json)).unwrap();
        assert_eq!(inode(back.file.as_fd()), r_ino);
        assert_eq!(inode(back.log.unwrap().as_fd()), w_ino);
    }

    /// A value whose `Serialize` takes its `Fd` out of a lock and drops
    /// it, as the frame is being encoded: safe code may do that.
    struct TakenWhileSent(std::sync::Mutex<Option<Fd>>);

    impl Serialize for TakenWhileSent {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let fd = self.0.lock().unwrap().take().unwrap();
            let placeholder = fd.serialize(s);
            drop(fd);
            placeholder
        }
    }

    #[test]
    fn a_descriptor_dropped_or_taken_while_its_frame_waits_stays_open_for_the_frame() {
        // Dropped as it is serialized: the frame's share keeps the number
        // open, and what it sends is the file serialized.
        let (r, _w) = pipe();
        let (number, ino) = (r.as_raw_fd(), inode(r.as_fd()));
        let value = TakenWhileSent(std::sync::Mutex::new(Some(r.into())));
        let (_, fds) = encode_with_fds(true, || serde_json::to_string(&value)).unwrap();
        // Numbers freed meanwhile would be the lowest free one, reused.
        let (other, _) = pipe();
        assert_ne!(other.as_raw_fd(), number);
        assert_eq!(fds[0].as_raw_fd(), number);
        assert_eq!(inode(fds[0].as_fd()), ino);
        drop(fds);
        // The frame done, the file is closed (its number free, or another
        // file's by now).
        let now = std::fs::read_link(format!("/proc/self/fd/{number}")).ok();
        assert_ne!(now, Some(format!("pipe:[{ino}]").into()));

        // Taken out while a frame holds it: the caller gets a duplicate,
        // and the frame's number stays open until the frame is done.
        let (r, _w) = pipe();
        let (number, ino) = (r.as_raw_fd(), inode(r.as_fd()));
        let fd = Fd::from(r);
        let (_, fds) = encode_with_fds(true, || serde_json::to_string(&fd)).unwrap();
        let taken = fd.into_owned();
        assert_ne!(taken.as_raw_fd(), number);
        assert_eq!(inode(taken.as_fd()), ino);
        drop(taken);
        assert_eq!(inode(fds[0].as_fd()), ino);
        // Not shared any more: the descriptor itself.
        let (r, _w) = pipe();
        let number = r.as_raw_fd();
        assert_eq!(Fd::from(r).into_owned().as_raw_fd(), number);
    }

    #[test]
    fn placeholders_that_are_not_one_are_errors() {
        let (r, _w) = pipe();
        for bad in [r#"{}"#, r#"{"fd":0}"#, r#"{"$fd":0,"x":1}"#, r#"0"#] {
            let got = decode_with_fds(vec![r.try_clone().unwrap()], || {
                serde_json::from_str::<Fd>(bad)
            });
            assert!(got.is_err(), "{bad}");
        }
    }
}
