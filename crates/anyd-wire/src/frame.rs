//! Frames: the length prefix every message travels in
//! ([protocol section 1](crate::protocol#1-frames)).
//!
//! This module owns the header format and the size limit. It does not own a
//! buffer or a socket: the caller keeps its bytes and asks [`decode`] whether
//! a whole frame is there yet. "Not yet" is `Ok(None)`, a normal outcome.
//!
//! A header is a signed 32-bit big-endian length, or `-1` followed by an
//! unsigned 64-bit big-endian length for payloads over `0x7fff_ffff` bytes,
//! exactly as Python's `multiprocessing.connection` writes it.
//!
//! The functions run once a call and once a stream's item, from the crates
//! that read and write sockets: those on that path are `#[inline]`, so
//! that they are inlined across the crate boundary (some 100 instructions
//! a call, 25 an item).

use std::ops::Range;

/// The largest payload a plain 4-byte header can announce.
const SHORT_MAX: usize = 0x7fff_ffff;

/// Size of the plain header.
pub const HEADER_LEN: usize = 4;

/// Size of the extended header (`-1` marker plus a 64-bit length).
pub const LONG_HEADER_LEN: usize = 12;

/// Default payload limit for one frame: 16 MiB. Large enough for any API
/// call a daemon should accept; small enough that a hostile header cannot
/// make anyone allocate much.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The header announces more than the receiver accepts.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The length the header announced.
        len: u64,
        /// The receiver's limit.
        max: usize,
    },
    /// A negative length other than the `-1` extension marker.
    #[error("invalid frame length {0}")]
    NegativeLength(i32),
    /// The stream ended inside a frame.
    #[error("connection closed in the middle of a frame ({0} bytes buffered)")]
    Truncated(usize),
}

/// A complete frame found at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Where the payload lies in the buffer.
    pub payload: Range<usize>,
    /// How many bytes of the buffer the whole frame occupies; drop these
    /// once the payload has been used.
    pub consumed: usize,
}

/// What a header at the start of a buffer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Bytes taken by the header itself (4 or 12).
    pub header_len: usize,
    /// Bytes of payload that follow.
    pub payload_len: usize,
}

/// Reads a frame header from the start of `buf`.
///
/// Returns `Ok(None)` while the header is incomplete. The length is checked
/// against `max` here, before anyone sizes a buffer from it.
///
/// # Errors
///
/// [`FrameError::TooLarge`] for a length over `max`,
/// [`FrameError::NegativeLength`] for a negative length other than `-1`.
#[inline]
pub fn decode_header(buf: &[u8], max: usize) -> Result<Option<Header>, FrameError> {
    let Some(short) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let n = i32::from_be_bytes(*short);
    let (header_len, len) = match n {
        0.. => (HEADER_LEN, n as u64),
        -1 => {
            let Some(long) = buf.get(4..12) else {
                return Ok(None);
            };
            let mut b = [0u8; 8];
            b.copy_from_slice(long);
            (LONG_HEADER_LEN, u64::from_be_bytes(b))
        }
        _ => return Err(FrameError::NegativeLength(n)),
    };
    if len > max as u64 {
        return Err(FrameError::TooLarge { len, max });
    }
    // `len <= max`, and `max` is a usize, so this cannot truncate.
    Ok(Some(Header {
        header_len,
        payload_len: len as usize,
    }))
}

/// Looks for one complete frame at the start of `buf`.
///
/// Returns `Ok(None)` while more bytes are needed. The caller may use
/// [`decode_header`] to learn how many bytes to expect.
///
/// # Errors
///
/// As [`decode_header`].
#[inline]
pub fn decode(buf: &[u8], max: usize) -> Result<Option<Frame>, FrameError> {
    let Some(h) = decode_header(buf, max)? else {
        return Ok(None);
    };
    let end = h.header_len + h.payload_len;
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some(Frame {
        payload: h.header_len..end,
        consumed: end,
    }))
}

/// What end of stream means given the bytes still buffered: a clean close
/// before the first header byte, an error anywhere inside a frame.
///
/// # Errors
///
/// [`FrameError::Truncated`] when `buffered` is not zero.
pub fn check_eof(buffered: usize) -> Result<(), FrameError> {
    if buffered == 0 {
        Ok(())
    } else {
        Err(FrameError::Truncated(buffered))
    }
}

/// Appends the header for a payload of `len` bytes.
pub fn encode_header(len: usize, out: &mut Vec<u8>) {
    if len <= SHORT_MAX {
        out.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        out.extend_from_slice(&[0xff; 4]);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// Appends a whole frame: header, then payload.
pub fn encode(payload: &[u8], out: &mut Vec<u8>) {
    out.reserve(payload.len() + HEADER_LEN);
    encode_header(payload.len(), out);
    out.extend_from_slice(payload);
}

/// Starts a frame whose payload will be written straight into `out`, so a
/// message is serialized once, with no copy. Returns the mark to give to
/// [`finish`].
#[inline]
pub fn begin(out: &mut Vec<u8>) -> usize {
    let mark = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    mark
}

/// Completes a frame started with [`begin`]: fills in the header for
/// everything written since. A payload over 2 GiB needs the extended header,
/// which costs one move of the payload; smaller ones cost nothing.
#[inline]
pub fn finish(out: &mut Vec<u8>, mark: usize) {
    let len = out.len() - mark - HEADER_LEN;
    if len <= SHORT_MAX {
        out[mark..mark + HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
    } else {
        let mut long = [0xffu8; LONG_HEADER_LEN];
        long[4..].copy_from_slice(&(len as u64).to_be_bytes());
        out.splice(mark..mark + HEADER_LEN, long);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_header_round_trip() {
        let mut out = Vec::new();
        encode(b"hello", &mut out);
        assert_eq!(out, b"\x00\x00\x00\x05hello");
        let f = decode(&out, 100).unwrap().unwrap();
        assert_eq!(&out[f.payload.clone()], b"hello");
        assert_eq!(f.consumed, 9);
    }

    #[test]
    fn empty_payload_is_a_frame() {
        let f = decode(&[0, 0, 0, 0], 10).unwrap().unwrap();
        assert_eq!(f.payload, 4..4);
        assert_eq!(f.consumed, 4);
    }

    #[test]
    fn need_more_bytes_is_not_an_error() {
        let mut out = Vec::new();
        encode(b"hello", &mut out);
        for cut in 0..out.len() {
            assert_eq!(decode(&out[..cut], 100), Ok(None), "cut at {cut}");
        }
        let long = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x80, 0, 0, 0];
        for cut in 0..long.len() {
            assert_eq!(decode(&long[..cut], usize::MAX), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn extended_header_decodes() {
        // -1 then a 64-bit length: the form Python uses past 2 GiB.
        let mut buf = vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 3];
        buf.extend_from_slice(b"abc");
        let f = decode(&buf, 10).unwrap().unwrap();
        assert_eq!(&buf[f.payload], b"abc");
        assert_eq!(f.consumed, 15);
    }

    #[test]
    fn limit_is_checked_on_the_header() {
        // Only the header is present: the refusal must not wait for payload.
        assert_eq!(
            decode(&[0x7f, 0xff, 0xff, 0xff], DEFAULT_MAX_FRAME),
            Err(FrameError::TooLarge {
                len: 0x7fff_ffff,
                max: DEFAULT_MAX_FRAME
            })
        );
        let huge = [0xff, 0xff, 0xff, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            decode(&huge, DEFAULT_MAX_FRAME),
            Err(FrameError::TooLarge {
                len: 1 << 63,
                max: DEFAULT_MAX_FRAME
            })
        );
        assert_eq!(
            decode(&[0, 0, 0, 11], 10),
            Err(FrameError::TooLarge { len: 11, max: 10 })
        );
        assert!(decode(&[0, 0, 0, 10], 10).unwrap().is_none());
    }

    #[test]
    fn negative_lengths_other_than_minus_one_are_errors() {
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xfe], 10),
            Err(FrameError::NegativeLength(-2))
        );
        assert_eq!(
            decode(&[0x80, 0, 0, 0], 10),
            Err(FrameError::NegativeLength(i32::MIN))
        );
    }

    #[test]
    fn eof_inside_a_frame_is_an_error() {
        assert_eq!(check_eof(0), Ok(()));
        assert_eq!(check_eof(3), Err(FrameError::Truncated(3)));
    }

    #[test]
    fn begin_finish_matches_encode() {
        let mut a = Vec::new();
        let mark = begin(&mut a);
        a.extend_from_slice(b"payload");
        finish(&mut a, mark);
        let mut b = Vec::new();
        encode(b"payload", &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn header_encoding_at_the_boundary() {
        let mut out = Vec::new();
        encode_header(0x7fff_ffff, &mut out);
        assert_eq!(out, [0x7f, 0xff, 0xff, 0xff]);
        out.clear();
        encode_header(0x8000_0000, &mut out);
        assert_eq!(out, [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x80, 0, 0, 0]);
        assert_eq!(
            decode_header(&out, usize::MAX).unwrap(),
            Some(Header {
                header_len: 12,
                payload_len: 0x8000_0000
            })
        );
    }
}
