//! The options map of a request (docs/PROTOCOL.md section 8) in
//! MessagePack: read and written through the options table alone, with
//! no serde and nothing allocated.

use super::{malformed, write_str, Cursor};
use crate::codec::DecodeError;
use crate::message::{OptionError, OptionSet, OptionSink, OptionValue};

/// Reads the options map (docs/PROTOCOL.md section 8) into a set of
/// options, whatever its keys: each key is found in the set's table, then
/// its value read as the kind it is. Without serde, and without building
/// an error on the way, since every request of a client that speaks
/// descriptors has options.
///
/// A map that is not well formed is refused as the rest of a request would
/// be (truncated, say) before anything it holds is; then an unknown key,
/// or a value of the wrong kind, is refused naming it.
pub(super) fn read_options<O: OptionSet>(c: &mut Cursor<'_>) -> Result<O, DecodeError> {
    let mut options = O::UNSET;
    match read_map(&c.buf[c.pos..], &mut options) {
        Ok(len) => {
            c.pos += len;
            Ok(options)
        }
        Err(refused) => {
            c.skip_value()?;
            Err(malformed(format!("bad request options: {refused}")))
        }
    }
}

/// Why [`read_map`] stopped.
enum Refused<'a> {
    /// The bytes end within the map.
    Truncated,
    /// Not a map.
    NotAMap(u8),
    /// A key that is not a string.
    KeyNotAString(u8),
    /// A key that is not UTF-8.
    KeyNotUtf8,
    /// What the set refuses.
    Option(OptionError<'a>),
}

impl std::fmt::Display for Refused<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Truncated => f.write_str("truncated MessagePack value"),
            Refused::NotAMap(m) => write!(f, "expected a map, found marker {m:#04x}"),
            Refused::KeyNotAString(m) => write!(f, "expected a string, found marker {m:#04x}"),
            Refused::KeyNotUtf8 => f.write_str("string is not valid UTF-8"),
            Refused::Option(e) => e.fmt(f),
        }
    }
}

/// The walk of [`read_options`] over the bytes from the map on: how many
/// it took.
fn read_map<'a, O: OptionSet>(bytes: &'a [u8], options: &mut O) -> Result<usize, Refused<'a>> {
    let mut rest = bytes;
    let n = match take(&mut rest, 1)?[0] {
        m @ 0x80..=0x8f => u64::from(m & 0x0f),
        0xde => be(take(&mut rest, 2)?),
        0xdf => be(take(&mut rest, 4)?),
        m => return Err(Refused::NotAMap(m)),
    };
    for _ in 0..n {
        let key = match take(&mut rest, 1)?[0] {
            m @ 0xa0..=0xbf => usize::from(m & 0x1f),
            0xd9 => len(take(&mut rest, 1)?)?,
            0xda => len(take(&mut rest, 2)?)?,
            0xdb => len(take(&mut rest, 4)?)?,
            m => return Err(Refused::KeyNotAString(m)),
        };
        let key = take(&mut rest, key)?;
        let value = read_value(&mut rest)?;
        // The table's keys are ASCII: a key that is one is UTF-8, and one
        // that is not is refused as not UTF-8 before it is unknown.
        options
            .set(key, value)
            .map_err(|e| match std::str::from_utf8(key) {
                Ok(_) => Refused::Option(e),
                Err(_) => Refused::KeyNotUtf8,
            })?;
    }
    Ok(bytes.len() - rest.len())
}

/// The first `n` bytes of `rest`, which then starts after them.
fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], Refused<'a>> {
    let (head, tail) = rest.split_at_checked(n).ok_or(Refused::Truncated)?;
    *rest = tail;
    Ok(head)
}

/// A big-endian unsigned number.
fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |acc, b| (acc << 8) | u64::from(*b))
}

/// A big-endian length, which no buffer holds if it passes `usize`.
fn len(bytes: &[u8]) -> Result<usize, Refused<'static>> {
    usize::try_from(be(bytes)).map_err(|_| Refused::Truncated)
}

/// Reads one option's value: of a kind options take, or (as the inner
/// `Err`) what it is instead. What no option takes is not skipped: the
/// options it is in are refused.
fn read_value<'a>(
    rest: &mut &'a [u8],
) -> Result<Result<OptionValue<'a>, &'static str>, Refused<'a>> {
    let marker = take(rest, 1)?[0];
    let signed = |bytes: &[u8]| {
        let shift = 64 - 8 * bytes.len() as u32;
        let n = ((be(bytes) << shift) as i64) >> shift;
        u64::try_from(n)
            .map(OptionValue::UInt)
            .map_err(|_| "a negative integer")
    };
    let s = |bytes: &'a [u8]| {
        std::str::from_utf8(bytes)
            .map(OptionValue::Str)
            .map_err(|_| "a string that is not UTF-8")
    };
    Ok(match marker {
        0xc2 => Ok(OptionValue::Bool(false)),
        0xc3 => Ok(OptionValue::Bool(true)),
        0x00..=0x7f => Ok(OptionValue::UInt(u64::from(marker))),
        0xcc => Ok(OptionValue::UInt(be(take(rest, 1)?))),
        0xcd => Ok(OptionValue::UInt(be(take(rest, 2)?))),
        0xce => Ok(OptionValue::UInt(be(take(rest, 4)?))),
        0xcf => Ok(OptionValue::UInt(be(take(rest, 8)?))),
        0xd0 => signed(take(rest, 1)?),
        0xd1 => signed(take(rest, 2)?),
        0xd2 => signed(take(rest, 4)?),
        0xd3 => signed(take(rest, 8)?),
        0xa0..=0xbf => s(take(rest, usize::from(marker & 0x1f))?),
        0xd9 => {
            let n = len(take(rest, 1)?)?;
            s(take(rest, n)?)
        }
        0xda => {
            let n = len(take(rest, 2)?)?;
            s(take(rest, n)?)
        }
        0xdb => {
            let n = len(take(rest, 4)?)?;
            s(take(rest, n)?)
        }
        0xe0..=0xff => Err("a negative integer"),
        0xc0 => Err("nil"),
        0xca | 0xcb => Err("a float"),
        0xc4..=0xc6 => Err("bytes"),
        0x90..=0x9f | 0xdc | 0xdd => Err("a list"),
        0x80..=0x8f | 0xde | 0xdf => Err("a map"),
        _ => Err("an extension"),
    })
}

/// Writes the options map (docs/PROTOCOL.md section 8), whatever its keys:
/// a header with the number of options set, then each key and value in
/// their shortest forms, as rmp-serde would write them. Nothing is
/// allocated.
pub(super) fn write_options<O: OptionSet>(options: &O, out: &mut Vec<u8>) {
    const { assert!(O::KEYS.len() <= 15, "a fixmap holds 15 entries at most") };
    let header = out.len();
    out.push(0x80);
    options.each(&mut OptionWriter { out, header });
}

/// Writes each option [`write_options`] is given, and counts it in the
/// map's header.
struct OptionWriter<'o> {
    out: &'o mut Vec<u8>,
    /// Where the map's header is.
    header: usize,
}

impl OptionSink<'_> for OptionWriter<'_> {
    /// One option: its key, a fixstr (the table's rule: at most 31 bytes),
    /// and its value in its shortest form. Always inlined: where an
    /// option's key and kind are constants, this is a few stores.
    #[inline(always)]
    fn option(&mut self, key: &'static str, value: OptionValue<'_>) {
        let out = &mut *self.out;
        out[self.header] += 1;
        out.push(0xa0 | key.len() as u8);
        out.extend_from_slice(key.as_bytes());
        match value {
            OptionValue::Bool(on) => out.push(if on { 0xc3 } else { 0xc2 }),
            OptionValue::UInt(n) => {
                // Writing to a Vec cannot fail.
                let _ = rmp::encode::write_uint(out, n);
            }
            OptionValue::Str(s) => write_str(s, out),
        }
    }
}
