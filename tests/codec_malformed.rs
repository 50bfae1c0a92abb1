//! Every kind of malformed input is a typed error naming what is wrong, and
//! no input at all can panic the decoder (property tests over random and
//! mutated bytes, with a bounded case count).

use baton::codec::{samples, Codec, DecodeError, EncodeError, HEADER_LEN};
use baton::domain::events::{
    Envelope, EventId, JsonText, Payload, StepSucceeded, Timestamp, Usage,
};
use proptest::prelude::*;

fn codec() -> Codec {
    Codec::builtin().unwrap()
}

fn valid() -> Vec<u8> {
    codec().encode(&samples::step_succeeded()).unwrap()
}

/// Offset of the payload's union branch index: right after the producer string.
fn payload_index_offset(bytes: &[u8]) -> usize {
    let producer = b"baton-engine/0";
    bytes
        .windows(producer.len())
        .position(|w| w == producer)
        .unwrap()
        + producer.len()
}

#[test]
fn wrong_magic() {
    let mut b = valid();
    b[0] = 0x4f;
    let err = codec().decode(&b).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::WrongMagic {
                found: [0x4f, 0x01]
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("expected C3 01"), "{err}");
}

#[test]
fn unknown_fingerprint() {
    let mut b = valid();
    b[2..10].copy_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes());
    let err = codec().decode(&b).unwrap_err();
    assert_eq!(
        err,
        DecodeError::UnknownFingerprint {
            fingerprint: 0x1122_3344_5566_7788
        }
    );
    assert!(err.to_string().contains("0x1122334455667788"), "{err}");
}

#[test]
fn every_truncation_is_reported_as_truncated() {
    let b = valid();
    for len in 0..b.len() {
        let err = codec().decode(&b[..len]).unwrap_err();
        match (len, &err) {
            (0..=9, DecodeError::TooShort { .. }) => {}
            (10.., DecodeError::Truncated { offset, path, .. }) => {
                assert!(*offset <= len, "offset {offset} within input of {len}");
                assert!(!path.is_empty());
            }
            _ => panic!("len {len}: {err:?}"),
        }
    }
    let msg = codec().decode(&b[..b.len() - 3]).unwrap_err().to_string();
    assert!(msg.contains("payload.StepSucceeded.usage.cost"), "{msg}");
}

#[test]
fn trailing_garbage() {
    let mut b = valid();
    let len = b.len();
    b.extend_from_slice(b"junk");
    let err = codec().decode(&b).unwrap_err();
    assert_eq!(
        err,
        DecodeError::TrailingBytes {
            offset: len,
            trailing: 4
        }
    );
}

#[test]
fn wrong_union_branch() {
    let mut b = valid();
    let at = payload_index_offset(&b);
    b[at] = 2 * 50; // zig-zag 50
    let err = codec().decode(&b).unwrap_err();
    assert_eq!(
        err,
        DecodeError::UnionBranch {
            branch: 50,
            branches: Payload::TYPES.len(),
            path: "payload".into()
        }
    );
    b[at] = 1; // zig-zag -1
    assert!(matches!(
        codec().decode(&b),
        Err(DecodeError::UnionBranch { branch: -1, .. })
    ));
}

#[test]
fn invalid_values_name_the_field() {
    // A non-UUID event id of the right length.
    let mut b = valid();
    b[HEADER_LEN + 1] = b'z';
    let err = codec().decode(&b).unwrap_err();
    assert!(
        matches!(&err, DecodeError::InvalidValue { path, .. } if path == "event_id"),
        "{err:?}"
    );
    assert!(err.to_string().contains("invalid UUID"), "{err}");
    // Invalid UTF-8 in the correlation id.
    let mut b = valid();
    b[HEADER_LEN + 38] = 0xff;
    let err = codec().decode(&b).unwrap_err();
    assert!(
        matches!(&err, DecodeError::InvalidValue { path, reason, .. } if path == "correlation_id" && reason.contains("UTF-8")),
        "{err:?}"
    );
}

#[test]
fn oversize_both_ways() {
    let small = codec().with_max_event_bytes(64);
    let b = valid();
    assert_eq!(
        small.decode(&b).unwrap_err(),
        DecodeError::Oversize {
            size: b.len(),
            limit: 64
        }
    );
    assert!(matches!(
        small.encode(&samples::step_succeeded()),
        Err(EncodeError::Oversize { limit: 64, .. })
    ));
    // Default limit: 1 MiB.
    let mut big = samples::step_succeeded();
    if let Payload::StepSucceeded(s) = &mut big.payload {
        s.output = Some(JsonText(format!("\"{}\"", "x".repeat(1 << 20))));
    }
    let err = codec().encode(&big).unwrap_err();
    assert!(
        matches!(err, EncodeError::Oversize { limit, .. } if limit == 1 << 20),
        "{err:?}"
    );
    let mut out = vec![7u8];
    assert!(codec().encode_into(&big, &mut out).is_err());
    assert_eq!(
        out,
        vec![7u8],
        "a failed encode leaves the buffer as it was"
    );
}

#[test]
fn huge_length_prefixes_do_not_allocate() {
    // Claim a 2^60-byte string for the event id: must be rejected before allocating.
    let mut b = valid()[..HEADER_LEN].to_vec();
    baton::codec::binary::write_long(&mut b, 1 << 60);
    b.extend_from_slice(&[0u8; 16]);
    assert!(matches!(
        codec().decode(&b),
        Err(DecodeError::Truncated { .. })
    ));
}

fn mutate(mut bytes: Vec<u8>, ops: &[(u8, usize, u8)]) -> Vec<u8> {
    for &(op, at, val) in ops {
        if bytes.is_empty() {
            bytes.push(val);
            continue;
        }
        let i = at % bytes.len();
        match op % 4 {
            0 => bytes[i] = val,
            1 => bytes[i] ^= 1 << (val % 8),
            2 => bytes.insert(i, val),
            _ => {
                bytes.remove(i);
            }
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = codec().decode(&bytes);
    }

    #[test]
    fn random_datum_behind_a_valid_header_never_panics(datum in proptest::collection::vec(any::<u8>(), 0..600), old in any::<bool>()) {
        let header = if old {
            std::fs::read("tests/fixtures/envelope-v1/step_succeeded.avro").unwrap()[..HEADER_LEN].to_vec()
        } else {
            valid()[..HEADER_LEN].to_vec()
        };
        let mut b = header;
        b.extend_from_slice(&datum);
        let _ = codec().decode(&b);
    }

    #[test]
    fn mutated_events_never_panic(
        which in 0usize..64,
        ops in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..6),
        old in any::<bool>(),
    ) {
        let base = if old {
            let files = ["submit_workflow", "step_succeeded", "register_agent", "step_failed"];
            std::fs::read(format!("tests/fixtures/envelope-v1/{}.avro", files[which % files.len()])).unwrap()
        } else {
            let all = samples::all();
            codec().encode(&all[which % all.len()]).unwrap()
        };
        let _ = codec().decode(&mutate(base, &ops));
    }

    #[test]
    fn arbitrary_step_succeeded_round_trips(
        wf in "\\PC{0,40}", step in "[a-z0-9-]{1,20}", agent in "\\PC{0,20}",
        attempt in any::<i32>(), tin in any::<i64>(), tout in any::<i64>(), cost in any::<f64>().prop_filter("NaN != NaN", |c| !c.is_nan()),
        micros in any::<i64>(), id in any::<u128>(), output in proptest::option::of("\\PC{0,80}"),
    ) {
        let event = Envelope {
            event_id: EventId(uuid::Uuid::from_u128(id)),
            correlation_id: wf.clone(),
            causation_id: None,
            occurred_at: Timestamp(micros),
            producer: agent.clone(),
            payload: Payload::StepSucceeded(StepSucceeded {
                workflow_id: wf, step_id: step, attempt, agent_id: agent,
                output: output.map(JsonText),
                usage: Usage { tokens_in: tin, tokens_out: tout, cost },
            }),
        };
        let c = codec();
        prop_assert_eq!(c.decode(&c.encode(&event).unwrap()).unwrap(), event);
    }
}
