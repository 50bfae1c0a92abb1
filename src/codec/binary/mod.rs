//! Avro binary encoding driven by serde, for Rust types that mirror the
//! schema exactly (see `domain::events`). This is the fast path: no
//! intermediate `Value`, borrowed strings while decoding, one output buffer
//! while encoding.
//!
//! Mapping (Avro spec 1.11 binary encoding):
//! - `bool` → boolean; `i32`/`i64` → zig-zag varint int/long; `f32`/`f64` →
//!   little-endian float/double; `String`/`&str` → string; bytes → bytes.
//! - struct → record (fields in declaration order, no names on the wire).
//! - `Option<T>` → union `["null", T]` (index 0 = null).
//! - enum of unit variants → Avro enum (index); enum of newtype variants →
//!   union (branch index, then the value).
//! - `Vec<T>` → array, `BTreeMap<String, V>` → map, in one block + 0.
//!
//! Invariants: decoding never panics and never allocates more than the input
//! could hold (lengths and counts are checked against remaining bytes first).

pub mod de;
pub mod ser;
pub mod shared;

pub use de::{from_slice, DatumError};
pub use ser::to_vec_into;

/// Writes `n` as a zig-zag varint (Avro int and long).
#[inline]
pub fn write_long(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}
