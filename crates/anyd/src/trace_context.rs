//! The caller's W3C trace context: the `traceparent` and `tracestate`
//! request options (docs/PROTOCOL.md section 8), parsed.
//!
//! It owns what a well-formed `traceparent` is (W3C Trace Context, level
//! 1, section 3.2) and nothing else: no tracing system is named here, so
//! that the crate depends on none. The daemon gives the parsed context to
//! [`Appd::on_call_span`](crate::Appd::on_call_span), where a program that
//! uses OpenTelemetry makes it the call span's parent.

use std::fmt;

/// A caller's trace context: which trace a call belongs to and which span
/// of the caller made it, as W3C Trace Context's `traceparent` header
/// carries them, with the vendors' `tracestate` beside.
///
/// ```
/// use anyd::TraceContext;
///
/// let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// let ctx = TraceContext::parse(tp).unwrap();
/// assert_eq!(ctx.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert!(ctx.sampled());
/// assert_eq!(ctx.to_string(), tp);
/// // Ill-formed ones are refused, never guessed at.
/// assert!(TraceContext::parse("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01").is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: [u8; 16],
    parent_id: [u8; 8],
    flags: u8,
    tracestate: Option<String>,
}

/// The length of a version `00` `traceparent`: `vv-` 32 hex `-` 16 hex `-ff`.
const LEN: usize = 55;

impl TraceContext {
    /// Parses a `traceparent` value: `None` if it is not well formed.
    ///
    /// Well formed is what W3C Trace Context (level 1) says: a version of
    /// two lowercase hex digits other than `ff`; a trace id of 32 and a
    /// parent id of 16 lowercase hex digits, neither all zeros; two hex
    /// digits of flags. Version `00` is exactly that; a later version
    /// may carry more after a `-`, which is ignored, as the
    /// specification asks of a reader that knows only `00`.
    pub fn parse(traceparent: &str) -> Option<TraceContext> {
        parse(traceparent).ok()
    }

    /// The same context with the caller's `tracestate` beside it.
    pub fn with_tracestate(mut self, tracestate: Option<String>) -> Self {
        self.tracestate = tracestate;
        self
    }

    /// The trace's id, 16 bytes, never all zeros.
    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The trace's id as 32 lowercase hex digits, as tracing systems show
    /// it.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The id of the caller's span (the parent of the daemon's), 8
    /// bytes, never all zeros.
    pub fn parent_id(&self) -> [u8; 8] {
        self.parent_id
    }

    /// The trace flags (bit 0: sampled).
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the caller records this trace (flag bit 0).
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The vendors' part of the context, as the caller sent it, if it
    /// sent one.
    pub fn tracestate(&self) -> Option<&str> {
        self.tracestate.as_deref()
    }

    /// The context of a call made while serving one in this context: the
    /// same trace and flags, and a new parent id, the served call's (W3C
    /// ids are random; a daemon exporting spans has its own, this one
    /// stands for the call). `None` when no random id can be had.
    #[cfg(feature = "server")]
    pub(crate) fn child(&self) -> Option<TraceContext> {
        let mut parent_id = [0u8; 8];
        getrandom::fill(&mut parent_id).ok()?;
        if parent_id == [0; 8] {
            parent_id[7] = 1;
        }
        Some(TraceContext {
            parent_id,
            tracestate: None,
            ..*self
        })
    }
}

/// The context as a version `00` `traceparent` value, whatever version
/// it came in: the one this crate knows.
impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.parent_id),
            self.flags
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Lowercase hex digits into `out`, which they exactly fill.
fn unhex(text: &[u8], out: &mut [u8]) -> Result<(), &'static str> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    if text.len() != out.len() * 2 {
        return Err("a field of the wrong length");
    }
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        match (digit(pair[0]), digit(pair[1])) {
            (Some(hi), Some(lo)) => *byte = hi << 4 | lo,
            _ => return Err("not lowercase hex"),
        }
    }
    Ok(())
}

/// [`TraceContext::parse`], saying what is wrong (for the daemon's debug
/// line: the value itself is the caller's, and not repeated).
pub(crate) fn parse(traceparent: &str) -> Result<TraceContext, &'static str> {
    let s = traceparent.as_bytes();
    if s.len() < LEN {
        return Err("too short");
    }
    let mut version = [0u8; 1];
    unhex(&s[..2], &mut version)?;
    match version[0] {
        0xff => return Err("version ff is invalid"),
        0 if s.len() != LEN => return Err("version 00 with more after its flags"),
        // A later version: its first fields are version 00's, and what it
        // adds comes after a dash.
        _ if s.len() > LEN && s[LEN] != b'-' => return Err("a later version not followed by '-'"),
        _ => {}
    }
    if s[2] != b'-' || s[35] != b'-' || s[52] != b'-' {
        return Err("dashes out of place");
    }
    let mut ctx = TraceContext {
        trace_id: [0; 16],
        parent_id: [0; 8],
        flags: 0,
        tracestate: None,
    };
    unhex(&s[3..35], &mut ctx.trace_id)?;
    unhex(&s[36..52], &mut ctx.parent_id)?;
    let mut flags = [0u8; 1];
    unhex(&s[53..55], &mut flags)?;
    ctx.flags = flags[0];
    if ctx.trace_id == [0; 16] {
        return Err("an all-zero trace id");
    }
    if ctx.parent_id == [0; 8] {
        return Err("an all-zero parent id");
    }
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_gives_its_fields() {
        let ctx = parse(GOOD).unwrap();
        assert_eq!(ctx.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ctx.trace_id()[0], 0x4b);
        assert_eq!(
            ctx.parent_id(),
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert_eq!(ctx.flags(), 1);
        assert!(ctx.sampled());
        assert_eq!(ctx.tracestate(), None);
        assert_eq!(ctx.to_string(), GOOD);
        let unsampled = parse(&GOOD.replace("-01", "-00")).unwrap();
        assert!(!unsampled.sampled());
        let with = unsampled.with_tracestate(Some("congo=t61rcWkgMzE".into()));
        assert_eq!(with.tracestate(), Some("congo=t61rcWkgMzE"));
    }

    #[test]
    fn ill_formed_ones_are_refused_with_a_reason() {
        let cases = [
            ("", "too short"),
            (&GOOD[..54], "too short"),
            (&GOOD.to_uppercase(), "not lowercase hex"),
            (&GOOD.replace("4bf9", "4BF9"), "not lowercase hex"),
            (&GOOD.replace("00f0", "00F0"), "not lowercase hex"),
            (
                &GOOD.replace("4bf92f3577b34da6a3ce929d0e0e4736", &"0".repeat(32)),
                "an all-zero trace id",
            ),
            (
                &GOOD.replace("00f067aa0ba902b7", &"0".repeat(16)),
                "an all-zero parent id",
            ),
            (&format!("{GOOD}-"), "version 00 with more after its flags"),
            (&format!("{GOOD}0"), "version 00 with more after its flags"),
            (&GOOD.replacen("00-", "ff-", 1), "version ff is invalid"),
            (&GOOD.replacen("00-", "0g-", 1), "not lowercase hex"),
            // Fields of the wrong lengths, the whole of the right one.
            (
                "00-4bf92f3577b34da6a3ce929d0e0e47361-00f067aa0ba902b-01",
                "dashes out of place",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
                "too short",
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "dashes out of place",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
                "not lowercase hex",
            ),
        ];
        for (text, why) in cases {
            assert_eq!(parse(text), Err(why), "{text:?}");
            assert!(TraceContext::parse(text).is_none());
        }
    }

    #[test]
    fn a_later_version_is_read_as_00_and_what_it_adds_ignored() {
        let later = GOOD.replacen("00-", "01-", 1);
        assert_eq!(
            parse(&later).unwrap().trace_id(),
            parse(GOOD).unwrap().trace_id()
        );
        let more = format!("{later}-what-a-later-version-adds");
        assert_eq!(parse(&more).unwrap().flags(), 1);
        // It is shown as the version this crate knows.
        assert_eq!(parse(&more).unwrap().to_string(), GOOD);
        assert_eq!(
            parse(&format!("{later}x")),
            Err("a later version not followed by '-'")
        );
        // The fields are still checked.
        assert!(parse(&later.replace("00f067aa0ba902b7", &"0".repeat(16))).is_err());
    }
}
