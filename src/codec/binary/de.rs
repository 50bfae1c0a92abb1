//! serde `Deserializer` reading Avro binary from a byte slice. See the parent
//! module for the type mapping.
//!
//! Invariants: every read is bounds-checked (a short input is `Truncated`,
//! never a panic); a length or block count larger than the bytes left is
//! rejected before anything is allocated (every item of Baton's types takes
//! at least one byte, so a larger count cannot be honest); strings are
//! borrowed from the input and only copied by the visitor that owns them.
//! Errors carry the byte offset and the field path (built while unwinding, so
//! the success path pays nothing for it).

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

/// Decodes one `T` from the start of `input`; returns it and the number of
/// bytes consumed (the caller decides whether trailing bytes are an error).
pub fn from_slice<'de, T: de::Deserialize<'de>>(
    input: &'de [u8],
) -> Result<(T, usize), DatumError> {
    let mut d = Decoder { input, pos: 0 };
    let value = T::deserialize(&mut d).map_err(|e| e.at(d.pos))?;
    Ok((value, d.pos))
}

/// What went wrong inside a datum.
#[derive(Debug, Clone, PartialEq)]
pub enum DatumErrorKind {
    Truncated { needed: usize },
    UnionBranch { branch: i64, branches: usize },
    Invalid(String),
}

/// A datum error with its position; the path is innermost-last once built.
#[derive(Debug, Clone, PartialEq)]
pub struct DatumError {
    pub kind: DatumErrorKind,
    pub offset: Option<usize>,
    path_rev: Vec<PathSeg>,
}

#[derive(Debug, Clone, PartialEq)]
enum PathSeg {
    Field(&'static str),
    Index(usize),
    Key(String),
}

impl DatumError {
    pub(crate) fn new(kind: DatumErrorKind, offset: usize) -> Self {
        DatumError {
            kind,
            offset: Some(offset),
            path_rev: Vec::new(),
        }
    }

    fn at(mut self, offset: usize) -> Self {
        self.offset.get_or_insert(offset);
        self
    }

    /// The same error found in a sub-slice that starts at `by`.
    fn shifted(mut self, by: usize) -> Self {
        self.offset = self.offset.map(|o| o + by);
        self
    }

    fn within(mut self, seg: PathSeg, offset: usize) -> Self {
        self.path_rev.push(seg);
        self.at(offset)
    }

    /// The field path, outermost first, e.g. `payload.StepSucceeded.usage.cost`.
    pub fn path(&self) -> String {
        let mut out = String::new();
        for seg in self.path_rev.iter().rev() {
            match seg {
                PathSeg::Field(f) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(f);
                }
                PathSeg::Index(i) => out.push_str(&format!("[{i}]")),
                PathSeg::Key(k) => out.push_str(&format!("[{k:?}]")),
            }
        }
        if out.is_empty() {
            out.push_str("<datum>");
        }
        out
    }
}

impl fmt::Display for DatumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} at `{}`", self.kind, self.path())
    }
}

impl std::error::Error for DatumError {}

impl de::Error for DatumError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DatumError {
            kind: DatumErrorKind::Invalid(msg.to_string()),
            offset: None,
            path_rev: Vec::new(),
        }
    }
}

pub(crate) struct Decoder<'de> {
    pub(crate) input: &'de [u8],
    pub(crate) pos: usize,
}

impl<'de> Decoder<'de> {
    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.input.len() - self.pos
    }

    pub(crate) fn invalid(&self, reason: impl Into<String>) -> DatumError {
        DatumError::new(DatumErrorKind::Invalid(reason.into()), self.pos)
    }

    #[inline]
    pub(crate) fn take(&mut self, n: usize) -> Result<&'de [u8], DatumError> {
        if n > self.remaining() {
            return Err(DatumError::new(
                DatumErrorKind::Truncated {
                    needed: n - self.remaining(),
                },
                self.pos,
            ));
        }
        let s = &self.input[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    #[inline]
    pub(crate) fn read_long(&mut self) -> Result<i64, DatumError> {
        let mut z: u64 = 0;
        let mut shift = 0u32;
        loop {
            let Some(&b) = self.input.get(self.pos) else {
                return Err(DatumError::new(
                    DatumErrorKind::Truncated { needed: 1 },
                    self.pos,
                ));
            };
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err(self.invalid("varint overflows 64 bits"));
            }
            z |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
            }
            shift += 7;
        }
    }

    pub(crate) fn read_int(&mut self) -> Result<i32, DatumError> {
        let start = self.pos;
        let v = self.read_long()?;
        i32::try_from(v).map_err(|_| {
            DatumError::new(
                DatumErrorKind::Invalid(format!("int {v} out of 32-bit range")),
                start,
            )
        })
    }

    /// The [`super::shared`] protocol: hands the visitor the undecoded rest
    /// of the input, then skips the bytes it reports it used.
    fn tail<V: Visitor<'de>>(&mut self, v: V) -> Result<V::Value, DatumError> {
        let start = self.pos;
        super::shared::begin_tail();
        let value = v
            .visit_borrowed_bytes(&self.input[start..])
            .map_err(|e: DatumError| match super::shared::tail_failed() {
                Some(inner) => inner.shifted(start),
                None => e.at(start),
            })?;
        match super::shared::tail_used() {
            Some(n) if n <= self.remaining() => {
                self.pos += n;
                Ok(value)
            }
            _ => Err(self.invalid("a shared value did not report its length")),
        }
    }

    /// A byte length or block count: non-negative and not more than the bytes left.
    pub(crate) fn read_len(&mut self, what: &str) -> Result<usize, DatumError> {
        let start = self.pos;
        let n = self.read_long()?;
        if n < 0 {
            return Err(DatumError::new(
                DatumErrorKind::Invalid(format!("negative {what} {n}")),
                start,
            ));
        }
        let n = n as u64;
        if n > self.remaining() as u64 {
            return Err(DatumError::new(
                DatumErrorKind::Truncated {
                    needed: (n - self.remaining() as u64).min(usize::MAX as u64) as usize,
                },
                self.pos,
            ));
        }
        Ok(n as usize)
    }

    pub(crate) fn read_str(&mut self) -> Result<&'de str, DatumError> {
        let len = self.read_len("string length")?;
        let start = self.pos;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map_err(|e| {
            DatumError::new(
                DatumErrorKind::Invalid(format!("invalid UTF-8 in string: {e}")),
                start,
            )
        })
    }

    /// Reads the count of the next array/map block (handling the negative
    /// count form that is followed by the block's byte size); 0 ends it.
    pub(crate) fn read_block_count(&mut self) -> Result<usize, DatumError> {
        let start = self.pos;
        let n = self.read_long()?;
        let n = if n < 0 {
            let size = self.read_long()?;
            if size < 0 {
                return Err(self.invalid(format!("negative block size {size}")));
            }
            n.checked_neg()
                .ok_or_else(|| self.invalid("block count overflow"))?
        } else {
            n
        };
        if n as u64 > self.remaining() as u64 {
            return Err(DatumError::new(
                DatumErrorKind::Invalid(format!(
                    "block count {n} exceeds the {} bytes left",
                    self.remaining()
                )),
                start,
            ));
        }
        Ok(n as usize)
    }

    pub(crate) fn read_branch(&mut self, branches: usize) -> Result<usize, DatumError> {
        let start = self.pos;
        let b = self.read_long()?;
        if b < 0 || b as u64 >= branches as u64 {
            return Err(DatumError::new(
                DatumErrorKind::UnionBranch {
                    branch: b,
                    branches,
                },
                start,
            ));
        }
        Ok(b as usize)
    }
}

fn not_self_describing(what: &str) -> DatumError {
    de::Error::custom(format_args!(
        "{what}: Avro binary is not self-describing; the Rust type must mirror the schema"
    ))
}

impl<'de> de::Deserializer<'de> for &mut Decoder<'de> {
    type Error = DatumError;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DatumError> {
        Err(not_self_describing("deserialize_any"))
    }
    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DatumError> {
        match self.take(1)?[0] {
            0 => v.visit_bool(false),
            1 => v.visit_bool(true),
            b => {
                self.pos -= 1;
                Err(self.invalid(format!("boolean byte {b:#04x} is neither 0 nor 1")))
            }
        }
    }
    fn deserialize_i8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DatumError> {
        v.visit_i64(self.read_long()?)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DatumError> {
        v.visit_i64(self.read_long()?)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DatumError> {
        v.visit_i32(self.read_int()?)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DatumError> {
        v.visit_i64(self.read_long()?)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DatumError> {
        v.visit_i64(self.read_long()?)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DatumError> {
        v.visit_i64(self.read_long()?)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DatumError> {
        v.visit_i64(self.read_long()?)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DatumError> {
        v.visit_i64(self.read_long()?)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DatumError> {
        let b = self.take(4)?;
        v.visit_f32(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DatumError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        v.visit_f64(f64::from_le_bytes(a))
    }
    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DatumError> {
        v.visit_borrowed_str(self.read_str()?)
    }
    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DatumError> {
        v.visit_borrowed_str(self.read_str()?)
    }
    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DatumError> {
        v.visit_borrowed_str(self.read_str()?)
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DatumError> {
        let len = self.read_len("bytes length")?;
        v.visit_borrowed_bytes(self.take(len)?)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DatumError> {
        self.deserialize_bytes(v)
    }
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DatumError> {
        match self.read_branch(2)? {
            0 => v.visit_none(),
            _ => v.visit_some(self),
        }
    }
    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DatumError> {
        v.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, DatumError> {
        v.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, DatumError> {
        if name == super::shared::TAIL {
            return self.tail(v);
        }
        v.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DatumError> {
        v.visit_seq(Blocks::new(self))
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, DatumError> {
        Err(not_self_describing("tuple"))
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        _: V,
    ) -> Result<V::Value, DatumError> {
        Err(not_self_describing("tuple struct"))
    }
    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DatumError> {
        v.visit_map(Blocks::new(self))
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DatumError> {
        v.visit_seq(Fields {
            de: self,
            fields,
            next: 0,
        })
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DatumError> {
        let index = self.read_branch(variants.len())?;
        v.visit_enum(Branch {
            de: self,
            index,
            name: variants[index],
        })
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DatumError> {
        Err(not_self_describing("identifier"))
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DatumError> {
        Err(not_self_describing("ignored value"))
    }
}

/// Record fields, read in declaration order.
struct Fields<'a, 'de> {
    de: &'a mut Decoder<'de>,
    fields: &'static [&'static str],
    next: usize,
}

impl<'de> de::SeqAccess<'de> for Fields<'_, 'de> {
    type Error = DatumError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DatumError> {
        let Some(&name) = self.fields.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        match seed.deserialize(&mut *self.de) {
            Ok(v) => Ok(Some(v)),
            Err(e) => Err(e.within(PathSeg::Field(name), self.de.pos)),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.fields.len() - self.next)
    }
}

/// Array items or map entries, in blocks.
struct Blocks<'a, 'de> {
    de: &'a mut Decoder<'de>,
    left_in_block: usize,
    index: usize,
    done: bool,
}

impl<'a, 'de> Blocks<'a, 'de> {
    fn new(de: &'a mut Decoder<'de>) -> Self {
        Blocks {
            de,
            left_in_block: 0,
            index: 0,
            done: false,
        }
    }

    /// True when another item follows.
    fn advance(&mut self) -> Result<bool, DatumError> {
        if self.done {
            return Ok(false);
        }
        if self.left_in_block == 0 {
            self.left_in_block = self.de.read_block_count()?;
            if self.left_in_block == 0 {
                self.done = true;
                return Ok(false);
            }
        }
        self.left_in_block -= 1;
        Ok(true)
    }
}

impl<'de> de::SeqAccess<'de> for Blocks<'_, 'de> {
    type Error = DatumError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DatumError> {
        if !self.advance()? {
            return Ok(None);
        }
        let i = self.index;
        self.index += 1;
        seed.deserialize(&mut *self.de)
            .map(Some)
            .map_err(|e| e.within(PathSeg::Index(i), self.de.pos))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left_in_block)
    }
}

impl<'de> de::MapAccess<'de> for Blocks<'_, 'de> {
    type Error = DatumError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DatumError> {
        if !self.advance()? {
            return Ok(None);
        }
        self.index += 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DatumError> {
        let i = self.index.saturating_sub(1);
        seed.deserialize(&mut *self.de)
            .map_err(|e| e.within(PathSeg::Key(format!("#{i}")), self.de.pos))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left_in_block)
    }
}

/// A union branch or enum symbol chosen by index.
struct Branch<'a, 'de> {
    de: &'a mut Decoder<'de>,
    index: usize,
    name: &'static str,
}

impl<'a, 'de> de::EnumAccess<'de> for Branch<'a, 'de> {
    type Error = DatumError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self), DatumError> {
        let index =
            u32::try_from(self.index).map_err(|_| self.de.invalid("branch index too large"))?;
        let v = seed.deserialize(index.into_deserializer())?;
        Ok((v, self))
    }
}

impl<'de> de::VariantAccess<'de> for Branch<'_, 'de> {
    type Error = DatumError;

    fn unit_variant(self) -> Result<(), DatumError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, DatumError> {
        seed.deserialize(&mut *self.de)
            .map_err(|e| e.within(PathSeg::Field(self.name), self.de.pos))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, DatumError> {
        Err(not_self_describing("tuple variant"))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, DatumError> {
        Err(not_self_describing("struct variant"))
    }
}
