//! Schema evolution: bytes written with envelope version 1 (frozen in
//! `schemas/history/envelope.v1.avsc`, committed under
//! `tests/fixtures/envelope-v1/`) are decoded by today's reader through Avro
//! schema resolution, with today's defaults for fields v1 did not have.
//!
//! The `.avro` files are golden: they were produced once and must never
//! change. To regenerate them deliberately, run with
//! `BATON_REGENERATE_FIXTURES=1` (this rewrites the files from the samples,
//! transcoding today's bytes to the v1 schema with `codec::resolve`). The
//! independent check is apache-avro's generic reader, which must read every
//! fixture with the v1 schema alone.

use std::path::Path;

use apache_avro::types::Value;
use apache_avro::Schema;
use baton::codec::canonical::parsing_canonical_form;
use baton::codec::{resolve, samples, Codec, DecodeError, HEADER_LEN, MAGIC};
use baton::domain::events::{Envelope, Payload};

const DIR: &str = "tests/fixtures/envelope-v1";

fn v1_json() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string("schemas/history/envelope.v1.avsc").unwrap())
        .unwrap()
}

/// CRC-64-AVRO of v1's Parsing Canonical Form.
fn v1_fingerprint() -> u64 {
    baton::codec::rabin::fingerprint(parsing_canonical_form(&v1_json()).as_bytes())
}

#[test]
fn frozen_fingerprints_match_an_independent_implementation() {
    // Computed with fastavro (`fingerprint(to_parsing_canonical_form(s), "CRC-64-AVRO")`,
    // which prints the little-endian bytes) from the files in schemas/history/.
    assert_eq!(v1_fingerprint(), 0xbd1a_2a58_76eb_8d00);
    let v2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("schemas/history/envelope.v2.avsc").unwrap())
            .unwrap();
    assert_eq!(
        baton::codec::rabin::fingerprint(parsing_canonical_form(&v2).as_bytes()),
        0x99b7_c0f8_316d_09e3
    );
}

fn v1_schema() -> Schema {
    Schema::parse_str(&std::fs::read_to_string("schemas/history/envelope.v1.avsc").unwrap())
        .unwrap()
}

/// The fixture name and sample for each v1 file.
fn cases() -> Vec<(&'static str, Envelope)> {
    let all = samples::all();
    let pick = |name: &str| {
        all.iter()
            .find(|e| e.payload.type_name() == name)
            .unwrap()
            .clone()
    };
    vec![
        ("submit_workflow", samples::submit_workflow(3)),
        ("step_succeeded", samples::step_succeeded()),
        ("register_agent", pick("RegisterAgent")),
        ("step_failed", pick("StepFailed")),
    ]
}

fn regenerate(codec: &Codec) {
    let v1 = v1_schema();
    let fp = v1_fingerprint();
    for (name, event) in cases() {
        let bytes = codec.encode(&event).unwrap();
        let (old, _) = resolve::transcode(
            &codec.registry().current().schema,
            &v1,
            &bytes[HEADER_LEN..],
        )
        .unwrap();
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&fp.to_le_bytes());
        out.extend_from_slice(&old);
        std::fs::write(Path::new(DIR).join(format!("{name}.avro")), out).unwrap();
        let decoded = codec
            .decode(&std::fs::read(Path::new(DIR).join(format!("{name}.avro"))).unwrap())
            .unwrap();
        let json = serde_json::to_string_pretty(&decoded).unwrap();
        std::fs::write(
            Path::new(DIR).join(format!("{name}.expected.json")),
            json + "\n",
        )
        .unwrap();
    }
}

#[test]
fn v1_bytes_decode_with_todays_reader() {
    let codec = Codec::builtin().unwrap();
    if std::env::var_os("BATON_REGENERATE_FIXTURES").is_some() {
        regenerate(&codec);
    }
    let v1_fp = v1_fingerprint();
    assert_ne!(
        v1_fp,
        codec.fingerprint(),
        "v1 is an older version, not the current one"
    );
    for (name, _) in cases() {
        let bytes = std::fs::read(Path::new(DIR).join(format!("{name}.avro"))).unwrap();
        assert_eq!(
            &bytes[2..10],
            &v1_fp.to_le_bytes(),
            "{name} was written with v1"
        );
        // The reference Avro reader agrees these are v1 bytes of the right type.
        let mut datum = &bytes[HEADER_LEN..];
        let value = apache_avro::from_avro_datum(&v1_schema(), &mut datum, None).unwrap();
        assert!(datum.is_empty(), "{name}: v1 datum fully consumed");
        let Value::Record(fields) = value else {
            panic!("{name}: envelope record")
        };
        assert!(
            !fields.iter().any(|(f, _)| f == "causation_id"),
            "{name}: v1 has no causation_id"
        );
        let event = codec
            .decode(&bytes)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // Compared as JSON values: JSON text fields normalise key order.
        let expected: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(Path::new(DIR).join(format!("{name}.expected.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(serde_json::to_value(&event).unwrap(), expected, "{name}");
        let (_, original) = cases().into_iter().find(|(n, _)| *n == name).unwrap();
        assert_eq!(
            event.payload.type_name(),
            original.payload.type_name(),
            "{name}: union branch resolved by name"
        );
        // Fields v1 did not have take today's defaults.
        assert_eq!(event.causation_id, None, "{name}");
        match &event.payload {
            Payload::StepSucceeded(s) => assert_eq!(s.usage, Default::default()),
            Payload::SubmitWorkflow(s) => {
                assert!(s
                    .definition
                    .steps
                    .iter()
                    .all(|st| st.kind.is_none() && st.when.is_none()))
            }
            _ => {}
        }
    }
}

#[test]
fn v1_data_with_trailing_bytes_is_rejected() {
    let codec = Codec::builtin().unwrap();
    let mut bytes = std::fs::read(Path::new(DIR).join("step_succeeded.avro")).unwrap();
    bytes.extend_from_slice(&[1, 2, 3]);
    assert!(matches!(
        codec.decode(&bytes),
        Err(DecodeError::TrailingBytes { trailing: 3, .. })
    ));
}
