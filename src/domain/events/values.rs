//! Small value types shared by many events: ids, timestamps, JSON text and
//! opaque bytes.
//!
//! Each serializes two ways: for human-readable formats (JSON lines in
//! `produce`/`tail`) it uses the friendly form (UUID text, RFC 3339, inline
//! JSON, base64); for the Avro binary codec (`is_human_readable() == false`) it
//! uses exactly the Avro type named in `schemas/`.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use uuid::Uuid;

/// An event id: a UUID (Avro `string` with `logicalType: uuid`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(pub Uuid);

impl EventId {
    /// A fresh random id, for events produced outside the engine.
    pub fn random() -> Self {
        EventId(Uuid::new_v4())
    }

    /// A deterministic id derived from a parent id and an index, so
    /// re-processing an input yields the same journal event ids.
    ///
    /// A UUID v8 whose bits are a fixed mix of the parent's 128 bits and the
    /// index (SplitMix64's finaliser on each half, the halves chained). The
    /// formula is part of the journal format: it must never change, or a
    /// re-processed input would get new ids. It replaced a v5 (SHA-1) name
    /// hash, which cost a few percent of the engine's CPU time.
    pub fn derived(parent: &EventId, index: u32) -> Self {
        fn mix(mut z: u64) -> u64 {
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        let (hi, lo) = parent.0.as_u64_pair();
        let i = u64::from(index)
            .wrapping_add(1)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let a = mix(hi ^ i);
        let b = mix(lo ^ a ^ i.rotate_left(32));
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&a.to_be_bytes());
        bytes[8..].copy_from_slice(&b.to_be_bytes());
        EventId(Uuid::new_v8(bytes))
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for EventId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::try_parse(s).map(EventId)
    }
}

impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = Uuid::encode_buffer();
        s.serialize_str(self.0.hyphenated().encode_lower(&mut buf))
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = EventId;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a UUID string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EventId, E> {
                v.parse()
                    .map_err(|e| E::custom(format_args!("invalid UUID `{v}`: {e}")))
            }
        }
        d.deserialize_str(V)
    }
}

/// A UTC instant in microseconds since the Unix epoch (Avro `long` with
/// `logicalType: timestamp-micros`). JSON form: RFC 3339, or an integer of
/// microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    pub fn as_micros(self) -> i64 {
        self.0
    }

    pub fn from_datetime(dt: DateTime<Utc>) -> Self {
        Timestamp(dt.timestamp_micros())
    }

    pub fn to_datetime(self) -> Option<DateTime<Utc>> {
        Utc.timestamp_micros(self.0).single()
    }

    /// Parses RFC 3339 (`2026-11-22T09:30:00Z`).
    pub fn parse_rfc3339(s: &str) -> Result<Self, chrono::ParseError> {
        DateTime::parse_from_rfc3339(s)
            .map(|dt| Timestamp(dt.with_timezone(&Utc).timestamp_micros()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_datetime() {
            Some(dt) => f.write_str(&dt.to_rfc3339_opts(SecondsFormat::Micros, true)),
            None => write!(f, "{}us", self.0),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            match self.to_datetime() {
                Some(_) => s.collect_str(self),
                None => s.serialize_i64(self.0),
            }
        } else {
            s.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp or integer microseconds since the epoch")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Ok(Timestamp(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                i64::try_from(v)
                    .map(Timestamp)
                    .map_err(|_| E::custom("timestamp out of range"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse_rfc3339(v)
                    .map_err(|e| E::custom(format_args!("invalid RFC 3339 timestamp `{v}`: {e}")))
            }
        }
        if d.is_human_readable() {
            d.deserialize_any(V)
        } else {
            d.deserialize_i64(V)
        }
    }
}

/// JSON text carried in an Avro `string` (workflow and step input, step
/// output). In JSON lines it appears inline as a JSON value, not as a quoted
/// string.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct JsonText(pub String);

impl JsonText {
    pub fn from_value(v: &serde_json::Value) -> Self {
        JsonText(v.to_string())
    }

    /// Parses the text; `Err` when a foreign producer wrote invalid JSON.
    pub fn to_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_str(&self.0)
    }
}

impl Serialize for JsonText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            // Invalid JSON from a foreign producer is shown as a plain string
            // rather than failing the whole line.
            match serde_json::value::RawValue::from_string(self.0.clone()) {
                Ok(raw) => raw.serialize(s),
                Err(_) => s.serialize_str(&self.0),
            }
        } else {
            s.serialize_str(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            serde_json::Value::deserialize(d).map(|v| JsonText(v.to_string()))
        } else {
            String::deserialize(d).map(JsonText)
        }
    }
}

/// Opaque bytes (Avro `bytes`); base64 in JSON.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Blob(pub Vec<u8>);

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Blob({} bytes)", self.0.len())
    }
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Blob;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("bytes (base64 text in JSON)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Blob, E> {
                base64::engine::general_purpose::STANDARD
                    .decode(v)
                    .map(Blob)
                    .map_err(|e| E::custom(format_args!("invalid base64: {e}")))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(v))
            }
        }
        if d.is_human_readable() {
            d.deserialize_str(V)
        } else {
            d.deserialize_byte_buf(V)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_deterministic_and_distinct() {
        let parent = EventId::random();
        assert_eq!(EventId::derived(&parent, 0), EventId::derived(&parent, 0));
        assert_ne!(EventId::derived(&parent, 0), EventId::derived(&parent, 1));
        assert_ne!(EventId::derived(&parent, 0), parent);
    }

    #[test]
    fn derived_ids_are_pinned() {
        // The derivation is part of the journal format (see `derived`).
        let parent: EventId = "3b4909c9-dbdd-4f64-8ae9-c0bf6f50aef8".parse().unwrap();
        let id = EventId::derived(&parent, 3);
        assert_eq!(id.0.get_version_num(), 8);
        assert_eq!(id, EventId::derived(&parent, 3));
        assert_eq!(id.to_string(), "7b29f966-f539-8ef8-b40b-9e1ea8947e7c");
    }

    #[test]
    fn timestamp_json_round_trip() {
        let t = Timestamp::parse_rfc3339("2026-11-22T09:30:00.123456Z").unwrap();
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2026-11-22T09:30:00.123456Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        assert_eq!(
            serde_json::from_str::<Timestamp>("1700000000000000")
                .unwrap()
                .0,
            1_700_000_000_000_000
        );
    }

    #[test]
    fn json_text_is_inline_in_json() {
        let j: JsonText = serde_json::from_str(r#"{"a": [1, 2]}"#).unwrap();
        assert_eq!(j.0, r#"{"a":[1,2]}"#);
        assert_eq!(serde_json::to_string(&j).unwrap(), r#"{"a":[1,2]}"#);
    }
}
