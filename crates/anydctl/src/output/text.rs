//! Text a daemon sent, made safe to show on a terminal.
//!
//! A daemon's strings (error kinds and messages, endpoint names, types and
//! docs, results, the paths of descriptors it hands out) may hold
//! characters that make a terminal do something, or make the text read as
//! something it is not.
//!
//! - Control characters: written as they are, a terminal acts on them.
//!   `ESC ] 0 ; ... BEL` retitles the window, `ESC [ 2 J` clears the
//!   screen, `ESC ] 52` may write the clipboard, a carriage return
//!   overwrites what was printed, and C1 controls (U+0080..U+009F, such as
//!   U+009B, a one-character CSI) do the same on terminals that read them.
//! - Format characters (Unicode general category Cf): nothing to see, but
//!   they change how the text around them reads. U+202E RIGHT-TO-LEFT
//!   OVERRIDE shows `invoice\u{202e}fdp.exe` as `invoiceexe.pdf`; the other
//!   bidirectional embeddings, overrides, isolates and marks (U+202A..U+202E,
//!   U+2066..U+2069, U+200E, U+200F, U+061C) reorder text likewise; zero
//!   width characters (U+200B..U+200D, U+2060, U+FEFF) and the invisible
//!   tags (U+E0020..U+E007F) hide text, or tell two equal-looking strings
//!   apart.
//!
//! Here every such character becomes visible text: C0 controls and DEL as
//! `\x1b`, C1 controls and format characters as `\u{9b}`, `\u{202e}`; an
//! ESC written so starts no sequence, a U+202E written so reorders
//! nothing. The price: a joined emoji (a family, a flag) shows its
//! U+200D ZERO WIDTH JOINER as `\u{200d}` between its parts. Newline and
//! tab are kept where text has lines ([`escape`]) and escaped too where it
//! must stay on one line ([`escape_line`]). Bytes that are not UTF-8
//! become `\xff` ([`escape_bytes`]).
//!
//! Human-readable output always goes through here, to a terminal or not
//! (a log file is read on a terminal later). Machine output does not: JSON
//! escapes the same characters its own way (`output::json`, with the
//! predicate here), and `call --raw` writes a result bare into a pipe or
//! a file, escaping it only on a terminal.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a terminal as it is: C0 controls, DEL and
/// C1 controls, which a terminal acts on, and format characters, which
/// change how the text around them reads.
pub(crate) fn is_unsafe(c: char) -> bool {
    matches!(c, '\0'..='\x1f' | '\x7f' | '\u{80}'..='\u{9f}') || is_format(c)
}

/// Whether `c` is a format character: Unicode general category Cf.
fn is_format(c: char) -> bool {
    // Most text is below the first one: no search.
    if c < FORMAT[0].0 {
        return false;
    }
    FORMAT
        .binary_search_by(|&(first, last)| {
            if last < c {
                std::cmp::Ordering::Less
            } else if first > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// The code points of general category Cf (Format), as ranges, in order:
/// Unicode 16.0's `DerivedGeneralCategory.txt`, 170 code points. A test
/// checks the table against the Unicode tables of the `regex-syntax`
/// crate, so that a newer Unicode's format characters are noticed when
/// that crate takes them up. Surrogates, private use and unassigned code
/// points are not Cf (a code point assigned Cf later is shown as it is
/// until it is added here).
const FORMAT: [(char, char); 21] = [
    ('\u{ad}', '\u{ad}'),       // SOFT HYPHEN
    ('\u{600}', '\u{605}'),     // ARABIC NUMBER SIGN..ARABIC NUMBER MARK ABOVE
    ('\u{61c}', '\u{61c}'),     // ARABIC LETTER MARK (bidirectional)
    ('\u{6dd}', '\u{6dd}'),     // ARABIC END OF AYAH
    ('\u{70f}', '\u{70f}'),     // SYRIAC ABBREVIATION MARK
    ('\u{890}', '\u{891}'),     // ARABIC POUND MARK ABOVE..ARABIC PIASTRE MARK ABOVE
    ('\u{8e2}', '\u{8e2}'),     // ARABIC DISPUTED END OF AYAH
    ('\u{180e}', '\u{180e}'),   // MONGOLIAN VOWEL SEPARATOR
    ('\u{200b}', '\u{200f}'),   // ZERO WIDTH SPACE..RIGHT-TO-LEFT MARK
    ('\u{202a}', '\u{202e}'),   // LEFT-TO-RIGHT EMBEDDING..RIGHT-TO-LEFT OVERRIDE
    ('\u{2060}', '\u{2064}'),   // WORD JOINER..INVISIBLE PLUS
    ('\u{2066}', '\u{206f}'),   // LEFT-TO-RIGHT ISOLATE..NOMINAL DIGIT SHAPES
    ('\u{feff}', '\u{feff}'),   // ZERO WIDTH NO-BREAK SPACE (the BOM)
    ('\u{fff9}', '\u{fffb}'),   // INTERLINEAR ANNOTATION ANCHOR..TERMINATOR
    ('\u{110bd}', '\u{110bd}'), // KAITHI NUMBER SIGN
    ('\u{110cd}', '\u{110cd}'), // KAITHI NUMBER SIGN ABOVE
    ('\u{13430}', '\u{1343f}'), // EGYPTIAN HIEROGLYPH VERTICAL JOINER..END WALLED ENCLOSURE
    ('\u{1bca0}', '\u{1bca3}'), // SHORTHAND FORMAT LETTER OVERLAP..UP STEP
    ('\u{1d173}', '\u{1d17a}'), // MUSICAL SYMBOL BEGIN BEAM..END PHRASE
    ('\u{e0001}', '\u{e0001}'), // LANGUAGE TAG
    ('\u{e0020}', '\u{e007f}'), // TAG SPACE..CANCEL TAG
];

/// Writes `c` as visible text.
fn push_escaped(out: &mut String, c: char) {
    if c <= '\x7f' {
        let _ = write!(out, "\\x{:02x}", c as u32);
    } else {
        let _ = write!(out, "\\u{{{:x}}}", c as u32);
    }
}

fn escape_with(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(|c| is_unsafe(c) && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) && !keep(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `text` with every control and format character but newline and tab
/// made visible.
pub(crate) fn escape(text: &str) -> Cow<'_, str> {
    escape_with(text, |c| c == '\n' || c == '\t')
}

/// `text` with every control and format character made visible, newline
/// and tab included: for what must stay on one line (a table cell, an error
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
    fn format_characters_become_visible() {
        // An override that makes a name read backwards, isolates, marks,
        // zero-width characters, the BOM, invisible tags, a soft hyphen.
        assert_eq!(
            escape("invoice\u{202e}fdp.exe \u{2066}x\u{2069} \u{200e}\u{200f}\u{61c}"),
            r"invoice\u{202e}fdp.exe \u{2066}x\u{2069} \u{200e}\u{200f}\u{61c}"
        );
        assert_eq!(
            escape_line("a\u{200b}b\u{200d}c\u{2060}\u{feff}\u{e0041}\u{e007f}\u{ad}"),
            r"a\u{200b}b\u{200d}c\u{2060}\u{feff}\u{e0041}\u{e007f}\u{ad}"
        );
        // The neighbours of the ranges are left alone: no-break space,
        // hyphen, a reserved code point, variation selectors (marks), the
        // replacement character, line and paragraph separators.
        let plain = "\u{a0}\u{2010}\u{2065}\u{fe0f}\u{e0100}\u{fffd}\u{2028}\u{2029}";
        assert!(matches!(escape(plain), Cow::Borrowed(_)));
        // Bytes as well, a character split by nothing.
        assert_eq!(
            String::from_utf8(escape_bytes("a\u{202e}b".as_bytes())).unwrap(),
            r"a\u{202e}b"
        );
    }

    /// `\p{Cf}` as the `regex-syntax` crate's Unicode tables have it.
    fn cf_of_regex_syntax() -> Vec<(char, char)> {
        use regex_syntax::hir::{Class, HirKind};
        let hir = regex_syntax::parse(r"\p{Cf}").unwrap();
        let HirKind::Class(Class::Unicode(class)) = hir.kind() else {
            panic!("\\p{{Cf}} is not a class: {hir:?}");
        };
        class
            .ranges()
            .iter()
            .map(|r| (r.start(), r.end()))
            .collect()
    }

    #[test]
    fn the_format_table_is_unicodes_general_category_cf() {
        assert_eq!(FORMAT.to_vec(), cf_of_regex_syntax());
        let count: u32 = FORMAT.iter().map(|&(a, b)| b as u32 - a as u32 + 1).sum();
        assert_eq!(count, 170);
        // Every code point, in and out: the search agrees with the table.
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            let listed = FORMAT.iter().any(|&(a, b)| (a..=b).contains(&c));
            assert_eq!(is_format(c), listed, "{:#x}", c as u32);
        }
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
