//! The serde serializer of MessagePack values: byte for byte what
//! rmp-serde's `Serializer::new(out).with_struct_map()` writes (structs as
//! maps with their field names, every number and length in its shortest
//! form), appending straight to the output.
//!
//! Why not rmp-serde's own: it writes through `std::io::Write` and its
//! `RmpWrite` layer, a marker and its data each a call that can fail, and
//! a daemon encodes every item of a stream with it (callgrind: some 200
//! instructions for a struct of a `u64` and a short string). Here a value
//! is a few pushes onto a `Vec`.
//!
//! What goes on the wire must not change: the tests hold every write to
//! rmp-serde's, and the one value this does not write itself, rmp-serde's
//! extension type (a newtype named `_ExtStruct`), is written by rmp-serde
//! into the same output. Errors are rmp-serde's type: a `Vec` never fails,
//! so the only errors are those a type's own `Serialize` raises.

use rmp_serde::encode::Error;
use serde::ser::{self, Serialize};

/// A MessagePack serializer appending to a `Vec` (see the module's docs).
pub(super) struct Serializer<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Serializer<'a> {
    pub(super) fn new(out: &'a mut Vec<u8>) -> Self {
        Serializer { out }
    }
}

/// Appends a length in its shortest header: `fix | len` below `fix_max`,
/// else the 16-bit or the 32-bit form (rmp's `write_*_len`).
#[inline]
fn write_len(out: &mut Vec<u8>, len: u32, fix: u8, fix_max: u32, m16: u8, m32: u8) {
    if len < fix_max {
        out.push(fix | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(m16);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(m32);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

#[inline]
fn write_array_len(out: &mut Vec<u8>, len: u32) {
    write_len(out, len, 0x90, 16, 0xdc, 0xdd);
}

#[inline]
fn write_map_len(out: &mut Vec<u8>, len: u32) {
    write_len(out, len, 0x80, 16, 0xde, 0xdf);
}

/// A string: a fixstr below 32 bytes, else str8, str16 or str32.
#[inline]
fn write_str(out: &mut Vec<u8>, s: &str) {
    let len = s.len() as u32;
    if len < 32 {
        out.push(0xa0 | len as u8);
    } else if let Ok(len) = u8::try_from(len) {
        out.extend_from_slice(&[0xd9, len]);
    } else {
        write_len(out, len, 0, 0, 0xda, 0xdb);
    }
    out.extend_from_slice(s.as_bytes());
}

/// An unsigned integer in its shortest form.
#[inline]
fn write_uint(out: &mut Vec<u8>, n: u64) {
    if n < 128 {
        out.push(n as u8);
    } else if let Ok(n) = u8::try_from(n) {
        out.extend_from_slice(&[0xcc, n]);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(0xcd);
        out.extend_from_slice(&n.to_be_bytes());
    } else if let Ok(n) = u32::try_from(n) {
        out.push(0xce);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// A signed integer in its shortest form: a non-negative one as unsigned.
#[inline]
fn write_sint(out: &mut Vec<u8>, n: i64) {
    match n {
        0.. => write_uint(out, n as u64),
        -32..=-1 => out.push(n as u8),
        -128..=-33 => out.extend_from_slice(&[0xd0, n as u8]),
        -32768..=-129 => {
            out.push(0xd1);
            out.extend_from_slice(&(n as i16).to_be_bytes());
        }
        -2147483648..=-32769 => {
            out.push(0xd2);
            out.extend_from_slice(&(n as i32).to_be_bytes());
        }
        _ => {
            out.push(0xd3);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

fn write_bin(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = bytes.len() as u32;
    if let Ok(len) = u8::try_from(len) {
        out.extend_from_slice(&[0xc4, len]);
    } else {
        write_len(out, len, 0, 0, 0xc5, 0xc6);
    }
    out.extend_from_slice(bytes);
}

impl<'a, 'o> ser::Serializer for &'a mut Serializer<'o> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Collection<'a, 'o>;
    type SerializeTuple = Compound<'a, 'o>;
    type SerializeTupleStruct = Compound<'a, 'o>;
    type SerializeTupleVariant = Compound<'a, 'o>;
    type SerializeMap = Collection<'a, 'o>;
    type SerializeStruct = Compound<'a, 'o>;
    type SerializeStructVariant = Compound<'a, 'o>;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out.push(if v { 0xc3 } else { 0xc2 });
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }

    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }

    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }

    #[inline]
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        write_sint(self.out, v);
        Ok(())
    }

    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.serialize_bytes(&v.to_be_bytes())
    }

    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.serialize_u64(v.into())
    }

    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.serialize_u64(v.into())
    }

    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.serialize_u64(v.into())
    }

    #[inline]
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        write_uint(self.out, v);
        Ok(())
    }

    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.serialize_bytes(&v.to_be_bytes())
    }

    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.out.push(0xca);
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }

    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.out.push(0xcb);
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }

    #[inline]
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        write_str(self.out, v);
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        write_bin(self.out, v);
        Ok(())
    }

    fn serialize_none(self) -> Result<(), Error> {
        self.serialize_unit()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Error> {
        self.out.push(0xc0);
        Ok(())
    }

    /// As rmp-serde: an empty array, not nil.
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        self.out.push(0x90);
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.serialize_str(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        if name == rmp_serde::MSGPACK_EXT_STRUCT_NAME {
            // An extension, which rmp-serde checks and writes its own way.
            let mut theirs = rmp_serde::Serializer::new(&mut *self.out).with_struct_map();
            return ser::Serializer::serialize_newtype_struct(&mut theirs, name, value);
        }
        value.serialize(self)
    }

    /// `{variant: value}`.
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.out.push(0x81);
        write_str(self.out, variant);
        value.serialize(self)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Collection<'a, 'o>, Error> {
        Ok(Collection::new(self, len, write_array_len))
    }

    fn serialize_tuple(self, len: usize) -> Result<Compound<'a, 'o>, Error> {
        write_array_len(self.out, len as u32);
        Ok(Compound(self))
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        len: usize,
    ) -> Result<Compound<'a, 'o>, Error> {
        self.serialize_tuple(len)
    }

    /// `{variant: [fields]}`.
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'a, 'o>, Error> {
        self.out.push(0x81);
        write_str(self.out, variant);
        self.serialize_tuple(len)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Collection<'a, 'o>, Error> {
        Ok(Collection::new(self, len, write_map_len))
    }

    /// A map of the fields' names to their values.
    #[inline]
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Compound<'a, 'o>, Error> {
        write_map_len(self.out, len as u32);
        Ok(Compound(self))
    }

    /// `{variant: {fields}}`.
    fn serialize_struct_variant(
        self,
        name: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'a, 'o>, Error> {
        self.out.push(0x81);
        write_str(self.out, variant);
        self.serialize_struct(name, len)
    }

    /// As rmp-serde: the length from the iterator's size hint when exact
    /// and within 32 bits.
    fn collect_seq<I>(self, iter: I) -> Result<(), Error>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        let iter = iter.into_iter();
        let len = match iter.size_hint() {
            (lo, Some(hi)) if lo == hi && u32::try_from(lo).is_ok() => Some(lo),
            _ => None,
        };
        let mut seq = self.serialize_seq(len)?;
        for item in iter {
            ser::SerializeSeq::serialize_element(&mut seq, &item)?;
        }
        ser::SerializeSeq::end(seq)
    }
}

/// The elements of a tuple, or the fields of a struct, after their
/// header.
pub(super) struct Compound<'a, 'o>(&'a mut Serializer<'o>);

impl ser::SerializeTuple for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut *self.0)
    }

    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

impl ser::SerializeTupleStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut *self.0)
    }

    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

impl ser::SerializeTupleVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut *self.0)
    }

    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        write_str(self.0.out, key);
        value.serialize(&mut *self.0)
    }

    #[inline]
    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        write_str(self.0.out, key);
        value.serialize(&mut *self.0)
    }

    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

/// The elements of a sequence, or the keys and values of a map. When its
/// length was not given (a struct with flattened fields, an iterator
/// that cannot say), they are counted, and the header goes in front of
/// them at the end: rmp-serde writes them to a buffer of their own and
/// the header then the buffer, the same bytes.
pub(super) struct Collection<'a, 'o> {
    ser: &'a mut Serializer<'o>,
    /// Where the elements start, and how many were written (keys and
    /// values each count), when the length is not known yet.
    unknown: Option<(usize, u32)>,
    /// The header to write then: an array's, or a map's of half the
    /// count.
    header: fn(&mut Vec<u8>, u32),
}

impl<'a, 'o> Collection<'a, 'o> {
    fn new(ser: &'a mut Serializer<'o>, len: Option<usize>, header: fn(&mut Vec<u8>, u32)) -> Self {
        let unknown = match len {
            Some(len) => {
                header(ser.out, len as u32);
                None
            }
            None => Some((ser.out.len(), 0)),
        };
        Collection {
            ser,
            unknown,
            header,
        }
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut *self.ser)?;
        if let Some((_, count)) = &mut self.unknown {
            *count += 1;
        }
        Ok(())
    }

    fn finish(self, per_entry: u32) -> Result<(), Error> {
        if let Some((start, count)) = self.unknown {
            let mut header = Vec::with_capacity(5);
            (self.header)(&mut header, count / per_entry);
            self.ser.out.splice(start..start, header);
        }
        Ok(())
    }
}

impl ser::SerializeSeq for Collection<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }

    fn end(self) -> Result<(), Error> {
        self.finish(1)
    }
}

impl ser::SerializeMap for Collection<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.element(key)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }

    fn end(self) -> Result<(), Error> {
        self.finish(2)
    }
}

#[cfg(test)]
#[path = "ser_tests.rs"]
mod tests;
