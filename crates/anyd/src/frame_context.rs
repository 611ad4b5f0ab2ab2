//! What encoding or decoding one frame needs that serde cannot carry: the
//! descriptors of the frame (an [`Fd`](crate::Fd) serializes as a
//! placeholder naming one of them, and deserializes by taking one), and
//! the call a handler serves: its codec (a [`channel`](crate::channel)
//! made in it encodes its items in that codec) and its context, if it has
//! one (a call the handler makes inherits its deadline and trace).
//!
//! Each is opened by one scoped function for the time the encode, the
//! decode or the handler takes, and returns what it collected:
//! [`encode_with_fds`], [`decode_with_fds`], [`with_call`]. The
//! per-thread slots behind them live here and nowhere else, because there
//! is no other way in: serde's `Serialize` and `Deserialize` take no
//! context of ours, and neither `channel()` nor a client's call takes the
//! handler's. Scopes nest (a
//! handler may call another daemon while its own call is served): each
//! puts back what it found.
//!
//! Items of a stream are not encoded in a scope of their own: the stream's
//! fill hands each item's descriptors to the connection with its frame
//! (`items::Sink`), inside [`encode_with_fds`].

use std::cell::{Cell, RefCell};
use std::fmt;
use std::os::fd::OwnedFd;

use anyd_wire::Codec;

use crate::transport::fds::{OutFd, MAX_FDS_PER_FRAME};

thread_local! {
    /// The descriptors of the frame being encoded on this thread, if one
    /// is.
    static OUTGOING: RefCell<Option<Vec<OutFd>>> = const { RefCell::new(None) };
    /// The descriptors of the frame being decoded on this thread, if one
    /// is: each taken once.
    static INCOMING: RefCell<Option<Vec<Option<OwnedFd>>>> = const { RefCell::new(None) };
    /// The codec of the call whose handler runs on this thread, if one
    /// does.
    static CALL_CODEC: Cell<Option<Codec>> = const { Cell::new(None) };
    /// The context of that call, if it has one.
    #[cfg(feature = "server")]
    static CALL_CONTEXT: RefCell<Option<crate::Context>> = const { RefCell::new(None) };
    /// A buffer each thread that encodes channel items reuses for one
    /// item: a cache, not a context, kept here with the other slots.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// Whether an `Fd` being deserialized was refused, for [`decode_arg`]
    /// to tell the caller why rather than call it a type mismatch.
    static FD_REFUSED: Cell<bool> = const { Cell::new(false) };
}

/// More descriptors than one frame may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooManyFds(pub(crate) usize);

impl fmt::Display for TooManyFds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "it holds {} descriptors; a message may carry at most {MAX_FDS_PER_FRAME}",
            self.0
        )
    }
}

impl std::error::Error for TooManyFds {}

/// Why a frame could not be encoded with its descriptors.
#[derive(Debug)]
pub(crate) enum EncodeFdsError<E> {
    /// The encoder's own error.
    Encode(E),
    /// The value holds more descriptors than a frame may carry (the
    /// shares taken are let go).
    TooMany(TooManyFds),
}

impl<E: fmt::Display> fmt::Display for EncodeFdsError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeFdsError::Encode(e) => e.fmt(f),
            EncodeFdsError::TooMany(e) => e.fmt(f),
        }
    }
}

/// Runs `encode`, which serializes one frame's payload. When `carry` (the
/// frame may carry descriptors: the peer asked, over a socket that
/// carries them), every `Fd` serialized meanwhile adds a share of its
/// descriptor (`OutFd`: the value may be dropped before the frame is
/// written, the descriptor stays open for the frame), and the shares are
/// returned in placeholder order; otherwise an `Fd` fails to
/// serialize, saying why, and none is ever a placeholder pointing
/// nowhere.
///
/// While no `Fd` exists in the process none can be encoded, and no scope
/// is opened: the common call costs one load.
///
/// # Errors
///
/// `encode`'s, or [`EncodeFdsError::TooMany`] past
/// [`MAX_FDS_PER_FRAME`].
#[inline]
pub(crate) fn encode_with_fds<T, E>(
    carry: bool,
    encode: impl FnOnce() -> Result<T, E>,
) -> Result<(T, Vec<OutFd>), EncodeFdsError<E>> {
    if !crate::fd::any_alive() {
        return encode()
            .map(|v| (v, Vec::new()))
            .map_err(EncodeFdsError::Encode);
    }
    encode_scoped(carry, encode)
}

/// [`encode_with_fds`] once an `Fd` exists: a frame that may not carry
/// descriptors hides any scope around it too (a frame encoded for another
/// connection, such as a channel's item sent from inside a stream's fill,
/// must not take that stream's descriptors).
#[inline(never)]
fn encode_scoped<T, E>(
    carry: bool,
    encode: impl FnOnce() -> Result<T, E>,
) -> Result<(T, Vec<OutFd>), EncodeFdsError<E>> {
    /// Puts back the scope it hid, also when `encode` panics (what the
    /// abandoned frame gathered is closed).
    struct Scope(Option<Option<Vec<OutFd>>>);
    impl Drop for Scope {
        fn drop(&mut self) {
            if let Some(outer) = self.0.take() {
                OUTGOING.set(outer);
            }
        }
    }
    let mut scope = Scope(Some(OUTGOING.replace(carry.then(Vec::new))));
    let encoded = encode();
    let outer = scope.0.take().unwrap_or_default();
    let fds = OUTGOING.replace(outer).unwrap_or_default();
    let value = encoded.map_err(EncodeFdsError::Encode)?;
    if fds.len() > MAX_FDS_PER_FRAME {
        return Err(EncodeFdsError::TooMany(TooManyFds(fds.len())));
    }
    Ok((value, fds))
}

/// Runs `decode` with `fds`, the descriptors that came with the frame, for
/// the `Fd` values it deserializes to take; those none took are closed
/// when it returns. With none, no scope is opened, and an `Fd` is told
/// that none came.
#[cfg(any(feature = "client", feature = "server"))]
pub(crate) fn decode_with_fds<T>(fds: Vec<OwnedFd>, decode: impl FnOnce() -> T) -> T {
    if fds.is_empty() {
        return decode();
    }
    struct Scope(Option<Vec<Option<OwnedFd>>>);
    impl Drop for Scope {
        fn drop(&mut self) {
            INCOMING.set(self.0.take());
        }
    }
    let _scope = Scope(INCOMING.replace(Some(fds.into_iter().map(Some).collect())));
    decode()
}

/// Runs `handler` with `codec` as the codec of the call it serves, and
/// `context` as its context (a call without one costs a branch).
#[cfg(feature = "server")]
pub(crate) fn with_call<T>(
    codec: Codec,
    context: Option<&crate::Context>,
    handler: impl FnOnce() -> T,
) -> T {
    struct Scope(Option<Codec>, Option<Option<crate::Context>>);
    impl Drop for Scope {
        fn drop(&mut self) {
            CALL_CODEC.set(self.0);
            if let Some(outer) = self.1.take() {
                CALL_CONTEXT.set(outer);
            }
        }
    }
    let _scope = Scope(
        CALL_CODEC.replace(Some(codec)),
        context.map(|c| CALL_CONTEXT.replace(Some(c.clone()))),
    );
    handler()
}

/// Runs `f` with the context of the call this thread serves, if it has
/// one.
#[cfg(feature = "server")]
pub(crate) fn with_call_context<T>(f: impl FnOnce(Option<&crate::Context>) -> T) -> T {
    CALL_CONTEXT.with_borrow(|c| f(c.as_ref()))
}

/// The codec of the call whose handler runs on this thread, if one does.
pub(crate) fn call_codec() -> Option<Codec> {
    CALL_CODEC.get()
}

/// Runs `f` with this thread's scratch buffer for one item.
pub(crate) fn with_scratch<T>(f: impl FnOnce(&mut Vec<u8>) -> T) -> T {
    SCRATCH.with_borrow_mut(f)
}

/// Adds a descriptor being serialized to the frame's (a share of it, which
/// keeps it open until the frame is written); its index for the
/// placeholder.
pub(crate) fn push_outgoing(fd: &OutFd) -> Result<usize, &'static str> {
    OUTGOING.with_borrow_mut(|out| {
        let out = out.as_mut().ok_or(
            "a descriptor travels only over a Unix socket, in MessagePack or JSON, to a peer that \
             asked for descriptors (request option \"fds\", docs/PROTOCOL.md section 8.2; anyd's \
             clients ask when the result type they expect may hold an Fd); in a stream, only in items of Items::ready, from_stream, try_from_stream or a Hub",
        )?;
        out.push(fd.clone());
        Ok(out.len() - 1)
    })
}

/// Runs `decode`, one argument's, and says with its error whether an `Fd`
/// in it was refused: the deserializer's words for that (no descriptor
/// came, a placeholder naming none, a value that is no placeholder) are
/// what the caller needs to hear, not that the argument has a wrong type.
///
/// # Errors
///
/// `decode`'s, with whether an `Fd` was refused.
#[cfg(feature = "server")]
#[inline]
pub(crate) fn decode_arg<T, E>(decode: impl FnOnce() -> Result<T, E>) -> Result<T, (E, bool)> {
    FD_REFUSED.set(false);
    decode().map_err(|e| (e, FD_REFUSED.take()))
}

/// Notes that an `Fd` being deserialized was refused (see [`decode_arg`]).
pub(crate) fn note_fd_refused() {
    FD_REFUSED.set(true);
}

/// Takes the descriptor a placeholder being deserialized names.
pub(crate) fn take_incoming(index: usize) -> Result<OwnedFd, &'static str> {
    INCOMING.with_borrow_mut(|fds| {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fd::Fd;
    use std::os::fd::{AsFd, BorrowedFd};

    fn pipe() -> (OwnedFd, OwnedFd) {
        rustix::pipe::pipe().unwrap()
    }

    fn inode(fd: BorrowedFd<'_>) -> u64 {
        rustix::fs::fstat(fd).unwrap().st_ino
    }

    #[test]
    fn a_scope_collects_what_it_encodes_and_the_cap_is_one_typed_error() {
        let (r, _w) = pipe();
        let one = Fd::from(r);
        let (json, fds) = encode_with_fds(true, || serde_json::to_string(&(&one, &one))).unwrap();
        assert_eq!(json, r#"[{"$fd":0},{"$fd":1}]"#);
        assert_eq!(fds.len(), 2);
        let many: Vec<&Fd> = vec![&one; MAX_FDS_PER_FRAME + 1];
        match encode_with_fds(true, || serde_json::to_string(&many)) {
            Err(EncodeFdsError::TooMany(TooManyFds(n))) => assert_eq!(n, 17),
            other => panic!("{other:?}"),
        }
        // Without a scope, a descriptor is an error that says why, also
        // inside another frame's scope.
        let e = encode_with_fds(false, || serde_json::to_string(&one)).unwrap_err();
        assert!(e.to_string().contains("Unix socket"), "{e}");
        let (inner, fds) = encode_with_fds(true, || {
            Ok::<_, serde_json::Error>(
                encode_with_fds(false, || serde_json::to_string(&one)).is_err(),
            )
        })
        .unwrap();
        assert!(inner && fds.is_empty());
    }

    #[test]
    fn scopes_nest_and_put_back_what_they_found() {
        let (r, _w) = pipe();
        let outer = Fd::from(r);
        let (inner, fds) = encode_with_fds(true, || {
            let (_, inner) = encode_with_fds(true, || serde_json::to_string(&outer)).unwrap();
            serde_json::to_string(&outer).map(|_| inner.len())
        })
        .unwrap();
        assert_eq!((inner, fds.len()), (1, 1));
    }

    #[test]
    fn decoding_takes_each_descriptor_once_and_closes_the_rest() {
        let (r, w) = pipe();
        let (r2, w2) = pipe();
        let ino = inode(r.as_fd());
        let got: Fd =
            decode_with_fds(vec![r, r2], || serde_json::from_str(r#"{"$fd":0}"#)).unwrap();
        assert_eq!(inode(got.as_fd()), ino);
        drop(w);
        // The one no value took is closed: its writer finds no reader.
        assert_eq!(rustix::io::write(&w2, b"x"), Err(rustix::io::Errno::PIPE));
        let twice = decode_with_fds(vec![pipe().0], || {
            serde_json::from_str::<(Fd, Fd)>(r#"[{"$fd":0},{"$fd":0}]"#)
        });
        assert!(twice.unwrap_err().to_string().contains("twice"));
        let none = serde_json::from_str::<Fd>(r#"{"$fd":0}"#).unwrap_err();
        assert!(none.to_string().contains("no descriptor came"), "{none}");
    }

    #[test]
    fn the_call_codec_is_seen_only_inside_its_scope() {
        assert_eq!(call_codec(), None);
        let seen = with_call(Codec::Json, None, || {
            with_call(Codec::MsgPack, None, call_codec).zip(call_codec())
        });
        assert_eq!(seen, Some((Codec::MsgPack, Codec::Json)));
        assert_eq!(call_codec(), None);
    }
}
