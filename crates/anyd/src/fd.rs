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

use std::cell::RefCell;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// The placeholder's one key.
const KEY: &str = "$fd";

/// An open file descriptor that travels with a call over a Unix socket: a
/// handler's parameter (the caller passes it) or part of a result (the
/// daemon returns it), alone or inside any serde type.
///
/// Sending one sends a duplicate (the value keeps its own); a received
/// one is close-on-exec, and closed when the `Fd` is dropped. See
/// [protocol section 8.2](crate::protocol#82-descriptors).
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
    /// has a `Drop`, so its field cannot be moved out).
    Option<OwnedFd>,
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
        Fd(Some(fd))
    }

    fn owned(&self) -> &OwnedFd {
        self.0.as_ref().expect("an Fd holds its descriptor")
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        ALIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Fd {
    /// The descriptor.
    pub fn into_owned(mut self) -> OwnedFd {
        self.0.take().expect("an Fd holds its descriptor")
    }

    /// The descriptor as a [`File`](std::fs::File), to read or write it.
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

impl From<Fd> for OwnedFd {
    fn from(fd: Fd) -> OwnedFd {
        fd.into_owned()
    }
}

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

thread_local! {
    /// The descriptors of the frame being encoded on this thread, if one is.
    static OUTGOING: RefCell<Option<Vec<OwnedFd>>> = const { RefCell::new(None) };
    /// The descriptors of the frame being decoded on this thread, if one
    /// is: each taken once.
    static INCOMING: RefCell<Option<Vec<Option<OwnedFd>>>> = const { RefCell::new(None) };
}

/// The descriptors of a frame being encoded on this thread: every [`Fd`]
/// serialized meanwhile adds a copy of itself (the value it came from may
/// be dropped before the frame is written).
pub(crate) struct Outgoing {
    /// The context this one hides, to put back (`None` once put back).
    outer: Option<Option<Vec<OwnedFd>>>,
}

impl Outgoing {
    pub(crate) fn open() -> Outgoing {
        Outgoing {
            outer: Some(OUTGOING.replace(Some(Vec::new()))),
        }
    }

    /// The descriptors, in placeholder order; closes the context.
    pub(crate) fn finish(mut self) -> Vec<OwnedFd> {
        let outer = self.outer.take().unwrap_or_default();
        OUTGOING.replace(outer).unwrap_or_default()
    }
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        // Closes what a frame abandoned half way had gathered.
        if let Some(outer) = self.outer.take() {
            OUTGOING.set(outer);
        }
    }
}

/// The descriptors of a frame being decoded on this thread. Those no
/// [`Fd`] took are closed when it is dropped, or at [`close_incoming`].
pub(crate) struct Incoming {
    outer: Option<Vec<Option<OwnedFd>>>,
}

impl Incoming {
    pub(crate) fn open(fds: Vec<OwnedFd>) -> Incoming {
        Incoming {
            outer: INCOMING.replace(Some(fds.into_iter().map(Some).collect())),
        }
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        INCOMING.set(self.outer.take());
    }
}

thread_local! {
    /// The descriptors of the items of the stream being filled on this
    /// thread, each with its item's frame, if the stream may carry some.
    static ITEMS: RefCell<Option<crate::framed::Attached>> = const { RefCell::new(None) };
}

/// How many items with descriptors a fill gathers before it stops, to be
/// written: as for replies, each holds its descriptors open until then.
pub(crate) const ITEMS_WITH_FDS_AT_ONCE: usize = 4;

/// The descriptors of the items encoded on this thread while it lives,
/// for a stream whose caller asked for descriptors. Items encoded outside
/// one cannot carry any (the `Fd` says why).
pub(crate) struct ItemFds {
    /// The context this one hides, to put back (`None` once put back).
    outer: Option<Option<crate::framed::Attached>>,
}

impl ItemFds {
    pub(crate) fn open() -> ItemFds {
        ItemFds {
            outer: Some(ITEMS.replace(Some(Vec::new()))),
        }
    }

    /// No context while it lives: for items framed here for another
    /// stream (a channel's, whose connection frames its own), which must
    /// not take this stream's descriptors, nor give it theirs.
    pub(crate) fn suspend() -> ItemFds {
        ItemFds {
            outer: Some(ITEMS.replace(None)),
        }
    }

    /// The items' descriptors, with their frames; closes the context.
    pub(crate) fn finish(mut self) -> crate::framed::Attached {
        let outer = self.outer.take().unwrap_or_default();
        ITEMS.replace(outer).unwrap_or_default()
    }
}

impl Drop for ItemFds {
    fn drop(&mut self) {
        if let Some(outer) = self.outer.take() {
            ITEMS.set(outer);
        }
    }
}

/// Whether the items being encoded on this thread may carry descriptors.
pub(crate) fn items_carry_fds() -> bool {
    ITEMS.with_borrow(Option::is_some)
}

/// Whether enough items with descriptors wait to be written that the
/// fill should stop.
pub(crate) fn items_fds_full() -> bool {
    ITEMS.with_borrow(|items| {
        items
            .as_ref()
            .is_some_and(|i| i.len() >= ITEMS_WITH_FDS_AT_ONCE)
    })
}

/// Notes the descriptors of the item whose frame is `frame` in the buffer.
pub(crate) fn item_fds(frame: std::ops::Range<usize>, fds: Vec<OwnedFd>) {
    ITEMS.with_borrow_mut(|items| {
        if let Some(items) = items {
            items.push((frame, fds));
        }
    });
}

/// Closes the descriptors of the frame being decoded on this thread that
/// no [`Fd`] took: a handler's arguments are bound, and the rest must not
/// stay open while it runs.
pub(crate) fn close_incoming() {
    INCOMING.with_borrow_mut(|fds| {
        if let Some(fds) = fds {
            fds.clear();
        }
    });
}

impl Serialize for Fd {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let index = OUTGOING.with_borrow_mut(|out| {
            let out = out.as_mut().ok_or(
                "a descriptor travels only over a Unix socket, in MessagePack or JSON, to a peer that \
                 asked for descriptors (request option \"fds\", docs/PROTOCOL.md section 8.2); \
                 in a stream, only in items of Items::ready, from_stream, try_from_stream or a Hub",
            )?;
            let copy = rustix::io::fcntl_dupfd_cloexec(self.owned(), 0)
                .map_err(|_| "cannot duplicate the descriptor to send it")?;
            out.push(copy);
            Ok::<usize, &str>(out.len() - 1)
        })
        .map_err(serde::ser::Error::custom)?;
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
        let index = d.deserialize_map(Placeholder)?;
        INCOMING
            .with_borrow_mut(|fds| {
                let fds = fds.as_mut().ok_or(
                    "no descriptor came with this message (descriptors travel only over a Unix \
                     socket, with the request option \"fds\", to a daemon that takes them: \
                     Appd::receive_descriptors, docs/PROTOCOL.md section 8.2)",
                )?;
                fds.get_mut(index)
                    .ok_or("the message names a descriptor that did not come with it")?
                    .take()
                    .ok_or("the message names one descriptor twice")
            })
            .map(Fd::new)
            .map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let outgoing = Outgoing::open();
        let json = serde_json::to_string(&value).unwrap();
        let fds = outgoing.finish();
        assert_eq!(json, r#"{"name":"tun0","file":{"$fd":0},"log":{"$fd":1}}"#);
        drop(value);
        assert_eq!(fds.len(), 2);
        let incoming = Incoming::open(fds);
        let back: Opened = serde_json::from_str(&json).unwrap();
        drop(incoming);
        assert_eq!(inode(back.file.as_fd()), r_ino);
        assert_eq!(inode(back.log.unwrap().as_fd()), w_ino);
    }

    #[test]
    fn outside_a_frame_a_descriptor_is_an_error_not_a_placeholder() {
        let (r, _w) = pipe();
        let e = serde_json::to_string(&Fd::from(r)).unwrap_err();
        assert!(e.to_string().contains("Unix socket"), "{e}");
        let e = serde_json::from_str::<Fd>(r#"{"$fd":0}"#).unwrap_err();
        assert!(e.to_string().contains("no descriptor came"), "{e}");
    }

    #[test]
    fn placeholders_that_point_nowhere_or_twice_are_errors() {
        let (r, w) = pipe();
        let _incoming = Incoming::open(vec![r]);
        let e = serde_json::from_str::<Fd>(r#"{"$fd":1}"#).unwrap_err();
        assert!(e.to_string().contains("did not come"), "{e}");
        let e = serde_json::from_str::<(Fd, Fd)>(r#"[{"$fd":0},{"$fd":0}]"#).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
        for bad in [r#"{}"#, r#"{"fd":0}"#, r#"{"$fd":0,"x":1}"#, r#"0"#] {
            assert!(serde_json::from_str::<Fd>(bad).is_err(), "{bad}");
        }
        drop(w);
    }

    #[test]
    fn descriptors_no_value_took_are_closed_with_the_frame() {
        let (r, w) = pipe();
        let incoming = Incoming::open(vec![r]);
        drop(incoming);
        // The only read end is closed: a write finds no reader.
        assert_eq!(rustix::io::write(&w, b"x"), Err(rustix::io::Errno::PIPE));
    }
}
