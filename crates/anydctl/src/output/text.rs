//! Text a daemon sent, made safe to show on a terminal.
//!
//! A daemon's strings (error kinds and messages, endpoint names, types and
//! docs, results) may hold control characters. Written as they are, a
//! terminal acts on them: `ESC ] 0 ; ... BEL` retitles the window, `ESC [
//! 2 J` clears the screen, `ESC ] 52` may write the clipboard, a carriage
//! return overwrites what was printed, and C1 controls (U+0080..U+009F,
//! such as U+009B, a one-character CSI) do the same on terminals that
//! read them. Here every such character becomes visible text: C0
//! controls and DEL as `\x1b`, C1 controls as `\u{9b}`; an ESC written so
//! starts no sequence. Newline and tab are kept where text has lines
//! ([`escape`]) and escaped too where it must stay on one line
//! ([`escape_line`]). Bytes that are not UTF-8 become `\xff`
//! ([`escape_bytes`]).
//!
//! Human-readable output always goes through here, to a terminal or not
//! (a log file is read on a terminal later). Machine output does not: JSON
//! escapes controls its own way (`output::json`), and `call --raw` writes
//! a result bare into a pipe or a file, escaping it only on a terminal.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether a terminal may act on `c`: C0 controls, DEL, C1 controls.
fn is_control(c: char) -> bool {
    matches!(c, '\0'..='\x1f' | '\x7f' | '\u{80}'..='\u{9f}')
}

/// Writes `c` as visible text.
fn push_escaped(out: &mut String, c: char) {
    if c <= '\x7f' {
        let _ = write!(out, "\\x{:02x}", c as u32);
    } else {
        let _ = write!(out, "\\u{{{:x}}}", c as u32);
    }
}

fn escape_with(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(|c| is_control(c) && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_control(c) && !keep(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `text` with every control character but newline and tab made visible.
pub(crate) fn escape(text: &str) -> Cow<'_, str> {
    escape_with(text, |c| c == '\n' || c == '\t')
}

/// `text` with every control character made visible, newline and tab
/// included: for what must stay on one line (a table cell, an error
/// kind).
pub(crate) fn escape_line(text: &str) -> Cow<'_, str> {
    escape_with(text, |_| false)
}

/// `bytes` as [`escape`] shows text, with each byte that is not part of
/// valid UTF-8 as `\xNN`.
pub(crate) fn escape_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(&escape(chunk.valid()));
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_controls_become_visible() {
        assert_eq!(
            escape("\x1b]0;pwned\x07 and \x1b[2J"),
            r"\x1b]0;pwned\x07 and \x1b[2J"
        );
        assert_eq!(escape("a\rb\x08c\x7fd\0"), r"a\x0db\x08c\x7fd\x00");
        // C1: a one-character CSI, and NEL.
        assert_eq!(escape("\u{9b}2J\u{85}"), r"\u{9b}2J\u{85}");
        // Lines and tabs are kept, or not.
        assert_eq!(escape("one\n\ttwo"), "one\n\ttwo");
        assert_eq!(escape_line("one\n\ttwo"), r"one\x0a\x09two");
        // Everything else is left as it is, borrowed.
        assert!(matches!(escape("héllo, wörld ✓ \\x1b"), Cow::Borrowed(_)));
        assert_eq!(escape("\u{a0}\u{ff}"), "\u{a0}\u{ff}");
    }

    #[test]
    fn bytes_that_are_not_text_become_visible() {
        let shown = escape_bytes(b"ok\x1b[2J\xff\xc3\xa9\n\xc2\x9b");
        assert_eq!(
            String::from_utf8(shown).unwrap(),
            "ok\\x1b[2J\\xffé\n\\u{9b}"
        );
    }
}
