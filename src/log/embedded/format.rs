//! The byte format of one batch frame: encoding an `append` call into a
//! single CRC-protected frame, and decoding frames back into records.
//!
//! Invariants:
//! - One frame holds one whole batch; a frame is valid only if its length
//!   fits, its CRC matches and it holds at least one record, so a torn or
//!   garbage tail is never mistaken for data.
//! - Decoding never copies key/value bytes: they are `Bytes::slice`s of the
//!   chunk the frame was read into.
//! - Every length read from disk is checked against the frame end before use;
//!   malformed input yields an error string, never a panic.
//!
//! See the parent module doc for the layout table.

use bytes::Bytes;

use crate::log::{Header, LogError, Offset, ProducerRecord, StoredRecord};

/// Bytes of the `frame_len` field.
pub(crate) const LEN_FIELD: usize = 4;
/// `frame_len` + `crc` + `base_offset` + `count`.
pub(crate) const HEADER_LEN: usize = 4 + 4 + 8 + 4;
/// Smallest legal `frame_len` value: crc + base_offset + count (16 bytes) and
/// one record of at least 11 bytes (timestamp, key, value and header-count
/// fields).
const MIN_FRAME_LEN: u64 = 16 + 11;
/// Sanity cap on `frame_len` read from disk, independent of the configured
/// batch limit so a log written with a bigger limit stays readable.
pub(crate) const MAX_FRAME_LEN: u64 = 1 << 30;

/// The fixed-size header of a frame, as read from disk.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FrameHeader {
    /// Whole frame size including the `frame_len` field.
    pub total_len: u64,
    pub crc: u32,
    pub base: Offset,
    pub count: u32,
}

impl FrameHeader {
    /// The offset after the last record of this frame.
    pub fn next_offset(&self) -> Offset {
        self.base.saturating_add(u64::from(self.count))
    }
}

/// Parses a frame header from the first [`HEADER_LEN`] bytes of `buf`.
/// Fails on a length that cannot belong to a valid frame.
pub(crate) fn parse_header(buf: &[u8]) -> Result<FrameHeader, String> {
    if buf.len() < HEADER_LEN {
        return Err(format!(
            "frame header needs {HEADER_LEN} bytes, {} left",
            buf.len()
        ));
    }
    let frame_len = u64::from(u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]));
    if !(MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&frame_len) {
        return Err(format!("implausible frame length {frame_len}"));
    }
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let mut base = [0u8; 8];
    base.copy_from_slice(&buf[8..16]);
    let count = u32::from_le_bytes([buf[16], buf[17], buf[18], buf[19]]);
    if count == 0 {
        return Err("frame with zero records".to_string());
    }
    Ok(FrameHeader {
        total_len: frame_len + LEN_FIELD as u64,
        crc,
        base: u64::from_le_bytes(base),
        count,
    })
}

/// Whether the CRC in the header matches the frame bytes (`frame` is the
/// whole frame, `frame_len` field included).
pub(crate) fn crc_ok(header: &FrameHeader, frame: &[u8]) -> bool {
    frame.len() >= HEADER_LEN && crc32fast::hash(&frame[8..]) == header.crc
}

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn record_len(r: &ProducerRecord) -> usize {
    let key = match &r.key {
        None => 1,
        Some(k) => varint_len(k.len() as u64 + 1) + k.len(),
    };
    let headers: usize = r
        .headers
        .iter()
        .map(|h| {
            varint_len(h.key.len() as u64)
                + h.key.len()
                + varint_len(h.value.len() as u64)
                + h.value.len()
        })
        .sum();
    8 + key
        + varint_len(r.value.len() as u64)
        + r.value.len()
        + varint_len(r.headers.len() as u64)
        + headers
}

/// Encodes `records` as one frame with base offset 0 and no CRC yet; the
/// caller fills both in with [`seal_frame`] once it knows the offset. Unset
/// timestamps become `now_ms`. `records` must not be empty.
pub(crate) fn encode_batch(
    records: &[ProducerRecord],
    now_ms: i64,
    max_batch_bytes: usize,
) -> Result<Vec<u8>, LogError> {
    let size = HEADER_LEN + records.iter().map(record_len).sum::<usize>();
    if size > max_batch_bytes || size as u64 > MAX_FRAME_LEN || records.len() > u32::MAX as usize {
        return Err(LogError::BatchTooLarge {
            size,
            limit: max_batch_bytes,
        });
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&((size - LEN_FIELD) as u32).to_le_bytes());
    out.extend_from_slice(&[0u8; 12]);
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    for r in records {
        out.extend_from_slice(&r.timestamp_ms.unwrap_or(now_ms).to_le_bytes());
        match &r.key {
            None => out.push(0),
            Some(k) => {
                put_varint(&mut out, k.len() as u64 + 1);
                out.extend_from_slice(k);
            }
        }
        put_varint(&mut out, r.value.len() as u64);
        out.extend_from_slice(&r.value);
        put_varint(&mut out, r.headers.len() as u64);
        for h in &r.headers {
            put_varint(&mut out, h.key.len() as u64);
            out.extend_from_slice(h.key.as_bytes());
            put_varint(&mut out, h.value.len() as u64);
            out.extend_from_slice(&h.value);
        }
    }
    debug_assert_eq!(out.len(), size);
    Ok(out)
}

/// Writes the base offset and the CRC into a frame from [`encode_batch`].
pub(crate) fn seal_frame(frame: &mut [u8], base: Offset) {
    frame[8..16].copy_from_slice(&base.to_le_bytes());
    let crc = crc32fast::hash(&frame[8..]);
    frame[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// A bounds-checked reader over one frame's record area.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err("record truncated inside a varint".to_string());
            };
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes".to_string())
    }

    /// Advances over `len` bytes and returns their range.
    fn take(&mut self, len: u64) -> Result<std::ops::Range<usize>, String> {
        let left = (self.buf.len() - self.pos) as u64;
        if len > left {
            return Err(format!(
                "field of {len} bytes overruns the frame ({left} left)"
            ));
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok(start..self.pos)
    }

    fn i64(&mut self) -> Result<i64, String> {
        let r = self.take(8)?;
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.buf[r]);
        Ok(i64::from_le_bytes(b))
    }
}

/// Decodes the records of the frame at `chunk[start..]` (whose header is
/// `header`, CRC already checked) with `offset >= from`, appending at most
/// `max - out.len()` of them to `out`. Key, value and header values are
/// slices of `chunk`.
pub(crate) fn decode_frame(
    chunk: &Bytes,
    start: usize,
    header: &FrameHeader,
    partition: u32,
    from: Offset,
    max: usize,
    out: &mut Vec<StoredRecord>,
) -> Result<(), String> {
    let end = start + header.total_len as usize;
    let mut cur = Cursor {
        buf: &chunk[..end],
        pos: start + HEADER_LEN,
    };
    for i in 0..u64::from(header.count) {
        if out.len() >= max {
            return Ok(());
        }
        let offset = header.base + i;
        let timestamp_ms = cur.i64()?;
        let key = match cur.varint()? {
            0 => None,
            n => Some(cur.take(n - 1)?),
        };
        let value_len = cur.varint()?;
        let value = cur.take(value_len)?;
        let n_headers = cur.varint()?;
        let mut headers = Vec::new();
        for _ in 0..n_headers {
            let name_len = cur.varint()?;
            let name = cur.take(name_len)?;
            let value_len = cur.varint()?;
            let hvalue = cur.take(value_len)?;
            if offset >= from {
                let key = std::str::from_utf8(&chunk[name])
                    .map_err(|_| "header name is not UTF-8".to_string())?;
                headers.push(Header {
                    key: key.to_string(),
                    value: chunk.slice(hvalue),
                });
            }
        }
        if offset >= from {
            out.push(StoredRecord {
                partition,
                offset,
                timestamp_ms,
                key: key.map(|r| chunk.slice(r)),
                value: chunk.slice(value),
                headers,
            });
        }
    }
    if cur.pos != end {
        return Err(format!(
            "{} stray bytes after the last record",
            end - cur.pos
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(frame: Vec<u8>, from: Offset) -> Vec<StoredRecord> {
        let chunk = Bytes::from(frame);
        let h = parse_header(&chunk).unwrap();
        assert!(crc_ok(&h, &chunk));
        let mut out = Vec::new();
        decode_frame(&chunk, 0, &h, 3, from, usize::MAX, &mut out).unwrap();
        out
    }

    fn arb_record() -> impl Strategy<Value = ProducerRecord> {
        (
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
            proptest::collection::vec(any::<u8>(), 0..300),
            proptest::collection::vec(
                (
                    "[a-z-]{0,12}",
                    proptest::collection::vec(any::<u8>(), 0..20),
                ),
                0..4,
            ),
            proptest::option::of(any::<i64>()),
        )
            .prop_map(|(key, value, headers, ts)| ProducerRecord {
                key: key.map(Bytes::from),
                value: Bytes::from(value),
                headers: headers
                    .into_iter()
                    .map(|(k, v)| Header {
                        key: k,
                        value: Bytes::from(v),
                    })
                    .collect(),
                timestamp_ms: ts,
            })
    }

    proptest! {
        #[test]
        fn batches_round_trip(records in proptest::collection::vec(arb_record(), 1..20), base in 0u64..1 << 40) {
            let mut frame = encode_batch(&records, 42, usize::MAX).unwrap();
            seal_frame(&mut frame, base);
            let out = decode_all(frame, 0);
            prop_assert_eq!(out.len(), records.len());
            for (i, (got, want)) in out.iter().zip(&records).enumerate() {
                prop_assert_eq!(got.offset, base + i as u64);
                prop_assert_eq!(got.partition, 3);
                prop_assert_eq!(got.timestamp_ms, want.timestamp_ms.unwrap_or(42));
                prop_assert_eq!(&got.key, &want.key);
                prop_assert_eq!(&got.value, &want.value);
                prop_assert_eq!(&got.headers, &want.headers);
            }
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let chunk = Bytes::from(bytes);
            if let Ok(h) = parse_header(&chunk) {
                if h.total_len as usize <= chunk.len() {
                    let mut out = Vec::new();
                    let _ = decode_frame(&chunk, 0, &h, 0, 0, usize::MAX, &mut out);
                }
            }
        }
    }

    #[test]
    fn skips_records_below_from_and_flipped_bits_fail_crc() {
        let records: Vec<_> = (0..5u8)
            .map(|i| ProducerRecord::new(None, Bytes::from(vec![i; 3])))
            .collect();
        let mut frame = encode_batch(&records, 1, usize::MAX).unwrap();
        seal_frame(&mut frame, 10);
        let out = decode_all(frame.clone(), 13);
        assert_eq!(
            out.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![13, 14]
        );
        assert_eq!(out[0].value.as_ref(), &[3, 3, 3]);
        let last = frame.len() - 1;
        frame[last] ^= 1;
        let h = parse_header(&frame).unwrap();
        assert!(!crc_ok(&h, &frame));
    }

    #[test]
    fn oversized_batches_are_rejected() {
        let records = vec![ProducerRecord::new(None, Bytes::from(vec![0u8; 100]))];
        match encode_batch(&records, 0, 64) {
            Err(LogError::BatchTooLarge { size, limit: 64 }) => assert!(size > 100),
            other => panic!("expected BatchTooLarge, got {other:?}"),
        }
    }
}
