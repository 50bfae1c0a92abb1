//! The Avro codec for Baton events: single-object encoding
//! (`C3 01` + CRC-64-AVRO fingerprint, little-endian + datum).
//!
//! Decoding: the fingerprint selects the writer schema among every known
//! envelope version ([`SchemaRegistry`]). Data written with the current
//! schema takes the fast path (serde straight from the bytes, no `Value`);
//! data written with an older version is resolved to the current schema with
//! apache-avro (Avro schema resolution), then read the same way.
//!
//! Invariants: no input panics the decoder; every rejection is a typed
//! [`DecodeError`] naming what is wrong; nothing larger than the configured
//! limit (default 1 MiB) is decoded or encoded.
//!
//! Two limits: [`DEFAULT_MAX_EVENT_BYTES`] bounds every event on every
//! topic (what every reader accepts); [`MAX_INGRESS_EVENT_BYTES`] bounds an
//! input on ingress, [`INGRESS_HEADROOM_BYTES`] less. The headroom is what
//! the engine adds when it journals or dead-letters an input (its own
//! envelope, a bounded reason, the record's key), so whatever ingress
//! accepts can always be written by the engine.

pub mod binary;
pub mod canonical;
pub mod error;
pub mod json;
pub mod rabin;
pub mod registry;
pub mod resolve;
pub mod samples;

use std::sync::Arc;

use crate::domain::events::Envelope;
pub use error::{DecodeError, EncodeError, SchemaError};
pub use registry::{EnvelopeVersion, SchemaRegistry};

/// Avro single-object encoding marker.
pub const MAGIC: [u8; 2] = [0xC3, 0x01];
/// Magic plus the 8-byte fingerprint.
pub const HEADER_LEN: usize = 10;
/// Default upper bound for one encoded event (journal facts, results and
/// dead letters included).
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;
/// What the engine may add to an input when it writes it back out.
pub const INGRESS_HEADROOM_BYTES: usize = 64 << 10;
/// Upper bound for one encoded ingress event (983,040 bytes).
pub const MAX_INGRESS_EVENT_BYTES: usize = DEFAULT_MAX_EVENT_BYTES - INGRESS_HEADROOM_BYTES;

/// Encodes and decodes [`Envelope`]s. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Codec {
    registry: Arc<SchemaRegistry>,
    header: [u8; HEADER_LEN],
    max_event_bytes: usize,
}

impl Codec {
    /// A codec over the built-in schemas with the default size limit.
    pub fn builtin() -> Result<Codec, SchemaError> {
        Ok(Codec::new(SchemaRegistry::builtin()?))
    }

    pub fn new(registry: Arc<SchemaRegistry>) -> Codec {
        let mut header = [0u8; HEADER_LEN];
        header[..2].copy_from_slice(&MAGIC);
        header[2..].copy_from_slice(&registry.current().fingerprint.to_le_bytes());
        Codec {
            registry,
            header,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
        }
    }

    /// Sets the size limit for encoded events (header included).
    pub fn with_max_event_bytes(mut self, limit: usize) -> Codec {
        self.max_event_bytes = limit;
        self
    }

    pub fn max_event_bytes(&self) -> usize {
        self.max_event_bytes
    }

    pub fn registry(&self) -> &Arc<SchemaRegistry> {
        &self.registry
    }

    /// The fingerprint written in every header.
    pub fn fingerprint(&self) -> u64 {
        self.registry.current().fingerprint
    }

    /// Encodes one event into a new buffer.
    pub fn encode(&self, event: &Envelope) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(256);
        self.encode_into(event, &mut out)?;
        Ok(out)
    }

    /// Appends one encoded event to `out` (reuse the buffer on hot paths).
    /// On error `out` is left as it was.
    pub fn encode_into(&self, event: &Envelope, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.extend_from_slice(&self.header);
        if let Err(e) = binary::to_vec_into(event, out) {
            out.truncate(start);
            return Err(e);
        }
        let size = out.len() - start;
        if size > self.max_event_bytes {
            out.truncate(start);
            return Err(EncodeError::Oversize {
                size,
                limit: self.max_event_bytes,
            });
        }
        Ok(())
    }

    /// Decodes one event.
    pub fn decode(&self, bytes: &[u8]) -> Result<Envelope, DecodeError> {
        if bytes.len() > self.max_event_bytes {
            return Err(DecodeError::Oversize {
                size: bytes.len(),
                limit: self.max_event_bytes,
            });
        }
        if bytes.len() < HEADER_LEN {
            if bytes.len() >= 2 && bytes[..2] != MAGIC {
                return Err(DecodeError::WrongMagic {
                    found: [bytes[0], bytes[1]],
                });
            }
            return Err(DecodeError::TooShort { len: bytes.len() });
        }
        if bytes[..2] != MAGIC {
            return Err(DecodeError::WrongMagic {
                found: [bytes[0], bytes[1]],
            });
        }
        let mut fp = [0u8; 8];
        fp.copy_from_slice(&bytes[2..HEADER_LEN]);
        let fingerprint = u64::from_le_bytes(fp);
        let datum = &bytes[HEADER_LEN..];
        if fingerprint == self.registry.current().fingerprint {
            return decode_datum(datum);
        }
        match self.registry.version(fingerprint) {
            Some(writer) => self.decode_old(writer, datum),
            None => Err(DecodeError::UnknownFingerprint { fingerprint }),
        }
    }

    /// Resolves data written with an older envelope version to the current
    /// schema (see [`resolve`]), then reads it with the fast path. Slower,
    /// but only old data takes it.
    fn decode_old(&self, writer: &EnvelopeVersion, datum: &[u8]) -> Result<Envelope, DecodeError> {
        let reader = &self.registry.current().schema;
        let (current, used) =
            resolve::transcode(&writer.schema, reader, datum).map_err(datum_error)?;
        if used != datum.len() {
            return Err(DecodeError::TrailingBytes {
                offset: HEADER_LEN + used,
                trailing: datum.len() - used,
            });
        }
        decode_datum(&current).map_err(|e| DecodeError::Resolution {
            version: writer.label.clone(),
            reason: e.to_string(),
        })
    }
}

/// Reads a current-version datum (no header) into an envelope.
fn decode_datum(datum: &[u8]) -> Result<Envelope, DecodeError> {
    let (event, used) = binary::from_slice::<Envelope>(datum).map_err(datum_error)?;
    if used != datum.len() {
        return Err(DecodeError::TrailingBytes {
            offset: HEADER_LEN + used,
            trailing: datum.len() - used,
        });
    }
    Ok(event)
}

fn datum_error(e: binary::DatumError) -> DecodeError {
    use binary::de::DatumErrorKind as K;
    let offset = HEADER_LEN + e.offset.unwrap_or(0);
    let path = e.path();
    match e.kind {
        K::Truncated { needed } => DecodeError::Truncated {
            offset,
            needed,
            path,
        },
        K::UnionBranch { branch, branches } => DecodeError::UnionBranch {
            branch,
            branches,
            path,
        },
        K::Invalid(reason) => DecodeError::InvalidValue {
            offset,
            path,
            reason,
        },
    }
}
