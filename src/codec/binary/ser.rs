//! serde `Serializer` producing Avro binary. See the parent module for the
//! type mapping. Encoding cannot fail for the event types except for shapes
//! Avro has no encoding for (tuples, unsigned above `i64::MAX`), which the
//! event types never use.

use serde::ser::{self, Serialize};

use super::write_long;
use crate::codec::error::EncodeError;

/// Appends the Avro binary encoding of `value` to `out`.
pub fn to_vec_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    value
        .serialize(&mut Encoder { out })
        .map_err(|e| EncodeError::Unsupported(e.0))
}

/// Internal error type serde requires; converted to [`EncodeError`].
#[derive(Debug)]
pub struct SerError(String);

impl std::fmt::Display for SerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SerError {}

impl ser::Error for SerError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        SerError(msg.to_string())
    }
}

struct Encoder<'a> {
    out: &'a mut Vec<u8>,
}

fn unsupported<T>(what: &str) -> Result<T, SerError> {
    Err(SerError(format!(
        "{what} has no Avro encoding in Baton's mapping"
    )))
}

impl<'a, 'b> ser::Serializer for &'b mut Encoder<'a> {
    type Ok = ();
    type Error = SerError;
    type SerializeSeq = Block<'a, 'b>;
    type SerializeTuple = ser::Impossible<(), SerError>;
    type SerializeTupleStruct = ser::Impossible<(), SerError>;
    type SerializeTupleVariant = ser::Impossible<(), SerError>;
    type SerializeMap = Block<'a, 'b>;
    type SerializeStruct = Self;
    type SerializeStructVariant = ser::Impossible<(), SerError>;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn serialize_bool(self, v: bool) -> Result<(), SerError> {
        self.out.push(v as u8);
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), SerError> {
        self.serialize_i64(v as i64)
    }
    fn serialize_i16(self, v: i16) -> Result<(), SerError> {
        self.serialize_i64(v as i64)
    }
    fn serialize_i32(self, v: i32) -> Result<(), SerError> {
        self.serialize_i64(v as i64)
    }
    fn serialize_i64(self, v: i64) -> Result<(), SerError> {
        write_long(self.out, v);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), SerError> {
        self.serialize_i64(v as i64)
    }
    fn serialize_u16(self, v: u16) -> Result<(), SerError> {
        self.serialize_i64(v as i64)
    }
    fn serialize_u32(self, v: u32) -> Result<(), SerError> {
        self.serialize_i64(v as i64)
    }
    fn serialize_u64(self, v: u64) -> Result<(), SerError> {
        match i64::try_from(v) {
            Ok(v) => self.serialize_i64(v),
            Err(_) => unsupported("u64 above i64::MAX"),
        }
    }
    fn serialize_f32(self, v: f32) -> Result<(), SerError> {
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result<(), SerError> {
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), SerError> {
        self.serialize_str(v.encode_utf8(&mut [0u8; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), SerError> {
        self.serialize_bytes(v.as_bytes())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), SerError> {
        write_long(self.out, v.len() as i64);
        self.out.extend_from_slice(v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), SerError> {
        self.out.push(0);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), SerError> {
        self.out.push(2); // zig-zag of union branch 1
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), SerError> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), SerError> {
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
    ) -> Result<(), SerError> {
        write_long(self.out, index as i64);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), SerError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), SerError> {
        write_long(self.out, index as i64);
        value.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, SerError> {
        Block::start(self, len)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, SerError> {
        unsupported("a tuple")
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, SerError> {
        unsupported("a tuple struct")
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, SerError> {
        unsupported("a tuple variant")
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, SerError> {
        Block::start(self, len)
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, SerError> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, SerError> {
        unsupported("a struct variant")
    }
}

impl ser::SerializeStruct for &mut Encoder<'_> {
    type Ok = ();
    type Error = SerError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _: &'static str,
        value: &T,
    ) -> Result<(), SerError> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), SerError> {
        Ok(())
    }
}

/// An array or map written as one block of known length followed by the
/// empty block that terminates it.
pub struct Block<'a, 'b> {
    enc: &'b mut Encoder<'a>,
}

impl<'a, 'b> Block<'a, 'b> {
    fn start(enc: &'b mut Encoder<'a>, len: Option<usize>) -> Result<Self, SerError> {
        let Some(len) = len else {
            return unsupported("a sequence of unknown length");
        };
        if len > 0 {
            write_long(enc.out, len as i64);
        }
        Ok(Block { enc })
    }

    fn finish(self) -> Result<(), SerError> {
        self.enc.out.push(0);
        Ok(())
    }
}

impl ser::SerializeSeq for Block<'_, '_> {
    type Ok = ();
    type Error = SerError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerError> {
        value.serialize(&mut *self.enc)
    }
    fn end(self) -> Result<(), SerError> {
        self.finish()
    }
}

impl ser::SerializeMap for Block<'_, '_> {
    type Ok = ();
    type Error = SerError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), SerError> {
        key.serialize(&mut *self.enc)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerError> {
        value.serialize(&mut *self.enc)
    }
    fn end(self) -> Result<(), SerError> {
        self.finish()
    }
}
