//! The serde deserializer of MessagePack values: what rmp-serde's
//! `Deserializer::from_read_ref` does (its default configuration), visitor
//! call for visitor call and error for error, read straight off a byte
//! slice.
//!
//! Why not rmp-serde's own: it reads through `std::io::Read` a byte at a
//! time, keeps the marker it peeked in a field to put it back, and goes
//! through its dynamic `any` path for every field name and string. A
//! stream's item is decoded once per frame, millions a second, and that
//! machinery was most of a client's cost per item (callgrind: some 330
//! instructions of a 1,000 for a two-field struct, before the UTF-8 checks
//! and the allocations, which remain). Here a peek is a look at the next
//! byte, and every read is a slice index.
//!
//! What must not change is what a type decodes to and why it fails: this
//! mirrors rmp-serde 1.3 method by method (the `visit_*` each marker calls,
//! the depth count, the strings that are not UTF-8 offered as bytes, the
//! unit structs read from `[]`, its two encodings of enums, extensions,
//! 128-bit integers from bin8 or a fixarray) and returns rmp-serde's own
//! [`Error`], so that callers map errors as before. The tests hold it to
//! rmp-serde on values and on arbitrary bytes.
//!
//! This module owns no message shape (envelopes are the codec's) and no
//! structural check: a caller that must refuse what is not one well-formed
//! value (a truncated one, trailing bytes) walks it as before. What enums
//! and extensions are handed (as rmp-serde hands them) is `access`'s.

use std::io;

use rmp::Marker;
use rmp_serde::decode::Error;
use serde::de::value::SeqDeserializer;
use serde::de::{self, Visitor};
use serde::forward_to_deserialize_any;

mod access;

use access::{Access, Ext, UnitVariant, Variant};

/// A MessagePack deserializer over a slice (see the module's docs).
pub(super) struct Deserializer<'de> {
    buf: &'de [u8],
    pos: usize,
    /// Levels of arrays, maps and extensions left, as rmp-serde counts
    /// them: the value that would take it to zero is refused.
    depth: u16,
    /// The field names of the struct being read, as its `Deserialize`
    /// gave them: a map key equal to one of them is that `str`, with no
    /// UTF-8 check of its bytes (see `deserialize_identifier`).
    fields: &'static [&'static str],
    /// Which of `fields` the next key likely is: a struct's keys come in
    /// the order of its fields when serde wrote them.
    next_field: usize,
}

impl<'de> Deserializer<'de> {
    /// A deserializer of the value that starts `buf`, nesting at most
    /// `max_depth` levels (rmp-serde's `set_max_depth`).
    #[inline]
    pub(super) fn new(buf: &'de [u8], max_depth: usize) -> Self {
        Deserializer {
            buf,
            pos: 0,
            depth: max_depth.min(usize::from(u16::MAX)) as u16,
            fields: &[],
            next_field: 0,
        }
    }

    /// How many bytes were read.
    pub(super) fn position(&self) -> usize {
        self.pos
    }

    #[inline]
    fn peek(&self) -> Result<u8, Error> {
        self.buf
            .get(self.pos)
            .copied()
            .ok_or_else(|| Error::InvalidMarkerRead(short_read()))
    }

    #[inline]
    fn marker(&mut self) -> Result<u8, Error> {
        let m = self.peek()?;
        self.pos += 1;
        Ok(m)
    }

    /// The next `n` bytes: a string's, a bin's, an extension's data.
    #[inline]
    fn data(&mut self, n: usize) -> Result<&'de [u8], Error> {
        let (s, rest) = self.buf[self.pos..]
            .split_at_checked(n)
            .ok_or_else(|| Error::InvalidDataRead(io::ErrorKind::UnexpectedEof.into()))?;
        self.pos = self.buf.len() - rest.len();
        Ok(s)
    }

    /// The next `N` bytes: a number, a length.
    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let (a, rest) = self.buf[self.pos..]
            .split_first_chunk::<N>()
            .ok_or_else(|| Error::InvalidDataRead(short_read()))?;
        self.pos = self.buf.len() - rest.len();
        Ok(*a)
    }

    #[inline]
    fn u8(&mut self) -> Result<u8, Error> {
        self.array().map(u8::from_be_bytes)
    }

    #[inline]
    fn u16(&mut self) -> Result<u16, Error> {
        self.array().map(u16::from_be_bytes)
    }

    #[inline]
    fn u32(&mut self) -> Result<u32, Error> {
        self.array().map(u32::from_be_bytes)
    }

    /// The length after an extension's marker (rmp-serde's `ext_len`).
    fn ext_len(&mut self, m: u8) -> Result<u32, Error> {
        Ok(match m {
            0xd4 => 1,
            0xd5 => 2,
            0xd6 => 4,
            0xd7 => 8,
            0xd8 => 16,
            0xc7 => u32::from(self.u8()?),
            0xc8 => u32::from(self.u16()?),
            0xc9 => self.u32()?,
            m => return Err(mismatch(m)),
        })
    }

    /// A number, a boolean or nil, from its marker (rmp-serde's `any_num`).
    #[inline]
    fn num<V: Visitor<'de>>(&mut self, m: u8, visitor: V) -> Result<V::Value, Error> {
        match m {
            0x00..=0x7f => visitor.visit_u8(m),
            0xe0..=0xff => visitor.visit_i8(m as i8),
            0xc0 => visitor.visit_unit(),
            0xc2 => visitor.visit_bool(false),
            0xc3 => visitor.visit_bool(true),
            0xcc => visitor.visit_u8(self.u8()?),
            0xcd => visitor.visit_u16(self.u16()?),
            0xce => visitor.visit_u32(self.u32()?),
            0xcf => visitor.visit_u64(self.array().map(u64::from_be_bytes)?),
            0xd0 => visitor.visit_i8(self.u8()? as i8),
            0xd1 => visitor.visit_i16(self.array().map(i16::from_be_bytes)?),
            0xd2 => visitor.visit_i32(self.array().map(i32::from_be_bytes)?),
            0xd3 => visitor.visit_i64(self.array().map(i64::from_be_bytes)?),
            0xca => visitor.visit_f32(self.array().map(f32::from_be_bytes)?),
            0xcb => visitor.visit_f64(self.array().map(f64::from_be_bytes)?),
            m => Err(mismatch(m)),
        }
    }

    /// Any value; a bin as bytes if `allow_bytes`, else as a sequence of
    /// `u8` (rmp-serde's `any_inner`).
    fn any<V: Visitor<'de>>(&mut self, visitor: V, allow_bytes: bool) -> Result<V::Value, Error> {
        let m = self.marker()?;
        match m {
            0xa0..=0xbf => self.str(usize::from(m & 0x1f), visitor),
            0xd9 => {
                let len = self.u8()?;
                self.str(usize::from(len), visitor)
            }
            0xda => {
                let len = self.u16()?;
                self.str(usize::from(len), visitor)
            }
            0xdb => {
                let len = self.u32()?;
                self.str(len as usize, visitor)
            }
            0x90..=0x9f => self.seq(u32::from(m & 0x0f), visitor),
            0xdc => {
                let len = self.u16()?;
                self.seq(u32::from(len), visitor)
            }
            0xdd => {
                let len = self.u32()?;
                self.seq(len, visitor)
            }
            0x80..=0x8f => self.map(u32::from(m & 0x0f), visitor),
            0xde => {
                let len = self.u16()?;
                self.map(u32::from(len), visitor)
            }
            0xdf => {
                let len = self.u32()?;
                self.map(len, visitor)
            }
            0xc4..=0xc6 => {
                let len = match m {
                    0xc4 => u32::from(self.u8()?),
                    0xc5 => u32::from(self.u16()?),
                    _ => self.u32()?,
                };
                let bytes = self.data(len as usize)?;
                if allow_bytes {
                    visitor.visit_borrowed_bytes(bytes)
                } else {
                    visitor.visit_seq(SeqDeserializer::new(bytes.iter().copied()))
                }
            }
            0xc7..=0xc9 | 0xd4..=0xd8 => {
                let len = self.ext_len(m)?;
                self.enter()?;
                let result = visitor.visit_newtype_struct(Ext::new(self, len));
                self.depth += 1;
                result
            }
            0xc1 => Err(mismatch(m)),
            m => self.num(m, visitor),
        }
    }

    /// Which of the struct's field names `key` is, if any: the one after
    /// the last key's first.
    #[inline]
    fn field_named(&self, key: &[u8]) -> Option<usize> {
        // A byte loop: names are a few bytes, shorter than a call to
        // `memcmp` costs.
        let is =
            |name: &str| name.len() == key.len() && name.bytes().zip(key).all(|(a, &b)| a == b);
        match self.fields.get(self.next_field) {
            Some(name) if is(name) => Some(self.next_field),
            _ => self.fields.iter().position(|name| is(name)),
        }
    }

    /// One level deeper, refused at the limit (rmp-serde's `depth_count!`,
    /// whose level is given back by the caller when the value is read).
    #[inline]
    fn enter(&mut self) -> Result<(), Error> {
        self.depth -= 1;
        if self.depth == 0 {
            return Err(Error::DepthLimitExceeded);
        }
        Ok(())
    }

    /// A string's `len` bytes: as a `str` if UTF-8, else offered as bytes,
    /// and if the visitor takes no bytes, a UTF-8 error.
    #[inline]
    fn str<V: Visitor<'de>>(&mut self, len: usize, visitor: V) -> Result<V::Value, Error> {
        let bytes = self.data(len)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => visitor.visit_borrowed_str(s),
            Err(e) => visitor
                .visit_borrowed_bytes::<Error>(bytes)
                .map_err(|_| Error::Utf8Error(e)),
        }
    }

    fn seq<V: Visitor<'de>>(&mut self, len: u32, visitor: V) -> Result<V::Value, Error> {
        self.enter()?;
        // An error from the visitor leaves the level taken, as rmp-serde's
        // `?` within its `depth_count!` does.
        let mut access = Access {
            de: &mut *self,
            left: len,
        };
        let value = visitor.visit_seq(&mut access)?;
        let left = access.left;
        self.depth += 1;
        match left {
            0 => Ok(value),
            left => Err(Error::LengthMismatch(len - left)),
        }
    }

    fn map<V: Visitor<'de>>(&mut self, len: u32, visitor: V) -> Result<V::Value, Error> {
        self.enter()?;
        let mut access = Access {
            de: &mut *self,
            left: len,
        };
        let value = visitor.visit_map(&mut access)?;
        let left = access.left;
        self.depth += 1;
        match left {
            0 => Ok(value),
            left => Err(Error::LengthMismatch(len - left)),
        }
    }

    /// A 128-bit integer (rmp-serde's `read_i128_marker`): any integer, or
    /// 16 bytes big-endian in a bin8.
    fn i128(&mut self) -> Result<i128, Error> {
        let m = self.marker()?;
        Ok(match m {
            0x00..=0x7f => i128::from(m),
            0xe0..=0xff => i128::from(m as i8),
            0xcc => self.u8()?.into(),
            0xcd => self.u16()?.into(),
            0xce => self.u32()?.into(),
            0xcf => self.array().map(u64::from_be_bytes)?.into(),
            0xd0 => i128::from(self.u8()? as i8),
            0xd1 => self.array().map(i16::from_be_bytes)?.into(),
            0xd2 => self.array().map(i32::from_be_bytes)?.into(),
            0xd3 => self.array().map(i64::from_be_bytes)?.into(),
            0xc4 => {
                if self.u8()? != 16 {
                    return Err(Error::LengthMismatch(16));
                }
                i128::from_be_bytes(self.data(16)?.try_into().unwrap_or_default())
            }
            // rmp-serde would take the 16 bytes after a fixarray of 16 as
            // the number's, but a fixarray holds 15 at most.
            0x90..=0x9f => return Err(Error::LengthMismatch(16)),
            m => return Err(mismatch(m)),
        })
    }
}

/// The error of a value whose marker `m` is not what was asked for.
#[cold]
fn mismatch(m: u8) -> Error {
    Error::TypeMismatch(Marker::from_u8(m))
}

/// The error of a number, a length or a marker cut short: rmp-serde reads
/// those with `Read::read_exact`, whose error this is, word for word (its
/// slices' reads fail with the bare kind instead, as [`Deserializer::data`]
/// does).
#[cold]
fn short_read() -> io::Error {
    use io::Read;
    let mut byte = [0];
    match (&[][..]).read_exact(&mut byte) {
        Err(e) => e,
        Ok(()) => io::ErrorKind::UnexpectedEof.into(),
    }
}

impl<'de> de::Deserializer<'de> for &mut Deserializer<'de> {
    type Error = Error;

    fn is_human_readable(&self) -> bool {
        false
    }

    #[inline]
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.any(visitor, true)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // rmp-serde keeps the marker it read for the value inside; a peek
        // leaves it where it is, which reads the same.
        if self.peek()? == 0xc0 {
            self.pos += 1;
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        // A map of one entry, {variant: content}; anything else is the
        // variant itself (a unit variant's name, or its index).
        let len = match self.peek()? {
            m @ 0x80..=0x8f => {
                self.pos += 1;
                u32::from(m & 0x0f)
            }
            0xde => {
                self.pos += 1;
                u32::from(self.u16()?)
            }
            0xdf => {
                self.pos += 1;
                self.u32()?
            }
            _ => return visitor.visit_enum(UnitVariant(self)),
        };
        match len {
            1 => visitor.visit_enum(Variant(self)),
            n => Err(Error::LengthMismatch(n)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        if name == rmp_serde::MSGPACK_EXT_STRUCT_NAME {
            let m = self.marker()?;
            let len = self.ext_len(m)?;
            return visitor.visit_newtype_struct(Ext::new(self, len));
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        // rmp-serde writes a unit struct as [], and reads nil too.
        match self.peek()? {
            0xc0 | 0x90 => {
                self.pos += 1;
                visitor.visit_unit()
            }
            _ => self.any(visitor, true),
        }
    }

    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i128(self.i128()?)
    }

    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u128(self.i128()? as u128)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.any(visitor, false)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, Error> {
        self.any(visitor, false)
    }

    #[inline]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let outer = (
            std::mem::replace(&mut self.fields, fields),
            std::mem::replace(&mut self.next_field, 0),
        );
        let value = self.any(visitor, false);
        (self.fields, self.next_field) = outer;
        value
    }

    /// A field's name (or an enum's variant): what `any` gives, but a
    /// short string equal to one of the struct's field names is handed as
    /// that name, the same `str` with the same call, without checking its
    /// bytes as UTF-8 (a struct's keys are most of the strings of a
    /// stream's items, and the check was most of a key's cost). Any other
    /// key, or one where no struct is being read, goes the general way.
    #[inline]
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if let Some(&m @ 0xa0..=0xbf) = self.buf.get(self.pos) {
            let start = self.pos + 1;
            if let Some(key) = self.buf.get(start..start + usize::from(m & 0x1f)) {
                if let Some(at) = self.field_named(key) {
                    let name = self.fields[at];
                    self.next_field = at + 1;
                    self.pos = start + name.len();
                    return visitor.visit_borrowed_str(name);
                }
            }
        }
        self.any(visitor, true)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.any(visitor, false)
    }

    forward_to_deserialize_any! {
        bytes byte_buf unit map str string char ignored_any
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let m = self.marker()?;
        self.num(m, visitor)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let m = self.marker()?;
        self.num(m, visitor)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let m = self.marker()?;
        self.num(m, visitor)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let m = self.marker()?;
        self.num(m, visitor)
    }

    #[inline]
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let m = self.marker()?;
        self.num(m, visitor)
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let m = self.marker()?;
        self.num(m, visitor)
    }

    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let m = self.marker()?;
        self.num(m, visitor)
    }

    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let m = self.marker()?;
        self.num(m, visitor)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let m = self.marker()?;
        self.num(m, visitor)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let m = self.marker()?;
        self.num(m, visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let m = self.marker()?;
        self.num(m, visitor)
    }
}

#[cfg(test)]
#[path = "de_tests.rs"]
mod tests;
