//! The Rust event types and the `.avsc` files describe the same bytes:
//! every sample encoded by Baton's fast serializer is read by apache-avro's
//! generic reader against the schema files and re-encoded to identical bytes;
//! union and enum orders match; every field is documented; the current
//! schema is frozen in `schemas/history/` and can read every older version.

use apache_avro::schema::{Schema, UnionSchema};
use apache_avro::schema_compatibility::SchemaCompatibility;
use baton::codec::canonical::parsing_canonical_form;
use baton::codec::{samples, Codec, SchemaRegistry, HEADER_LEN};
use baton::domain::events::Payload;

fn codec() -> Codec {
    Codec::builtin().expect("built-in schemas parse")
}

#[test]
fn every_sample_round_trips() {
    let codec = codec();
    let all = samples::all();
    assert_eq!(
        all.len(),
        Payload::TYPES.len(),
        "one sample per payload type"
    );
    for (i, event) in all.iter().enumerate() {
        assert_eq!(event.payload.type_index(), i, "samples are in union order");
        let bytes = codec.encode(event).unwrap();
        assert_eq!(
            codec.decode(&bytes).unwrap(),
            *event,
            "{}",
            event.payload.type_name()
        );
    }
}

#[test]
fn reference_avro_reader_and_writer_agree_with_the_fast_path() {
    let codec = codec();
    let schema = &codec.registry().current().schema;
    for event in samples::all() {
        let bytes = codec.encode(&event).unwrap();
        let datum = &bytes[HEADER_LEN..];
        let mut cursor = datum;
        let value = apache_avro::from_avro_datum(schema, &mut cursor, None).unwrap_or_else(|e| {
            panic!(
                "{}: apache-avro cannot read our bytes: {e}",
                event.payload.type_name()
            )
        });
        assert!(
            cursor.is_empty(),
            "{}: apache-avro left {} bytes",
            event.payload.type_name(),
            cursor.len()
        );
        // apache-avro's re-encoding of what it read decodes back to the same
        // event, and is byte-identical except where a map has several
        // entries (apache-avro's maps are HashMaps: entry order varies).
        let reference = apache_avro::to_avro_datum(schema, value).unwrap();
        let mut framed = bytes[..HEADER_LEN].to_vec();
        framed.extend_from_slice(&reference);
        assert_eq!(
            codec.decode(&framed).unwrap(),
            event,
            "{}",
            event.payload.type_name()
        );
        if !matches!(
            event.payload,
            Payload::RegisterAgent(_) | Payload::BottleneckDetected(_)
        ) {
            assert_eq!(
                reference,
                datum,
                "{}: byte for byte",
                event.payload.type_name()
            );
        }
    }
}

fn payload_union(schema: &Schema) -> &UnionSchema {
    let Schema::Record(envelope) = schema else {
        panic!("envelope is a record")
    };
    let field = envelope
        .fields
        .iter()
        .find(|f| f.name == "payload")
        .expect("payload field");
    let Schema::Union(u) = &field.schema else {
        panic!("payload is a union")
    };
    u
}

#[test]
fn union_order_matches_the_rust_payload_enum() {
    let registry = SchemaRegistry::builtin().unwrap();
    let names: Vec<String> = payload_union(&registry.current().schema)
        .variants()
        .iter()
        .map(|s| match s {
            Schema::Record(r) => r.name.name.clone(),
            other => panic!("union branch is not a record: {other:?}"),
        })
        .collect();
    let rust: Vec<&str> = Payload::TYPES.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, rust);
}

#[test]
fn enum_symbols_match_the_rust_enums() {
    use baton::domain::events::*;
    let registry = SchemaRegistry::builtin().unwrap();
    let symbols = |name: &str| -> Vec<String> {
        let entry = registry.catalog().iter().find(|e| e.name == name).unwrap();
        entry.members.iter().map(|(s, _)| s.clone()).collect()
    };
    fn json_names<T: serde::Serialize>(values: &[T]) -> Vec<String> {
        values
            .iter()
            .map(|v| {
                serde_json::to_value(v)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_uppercase()
            })
            .collect()
    }
    use Backoff as B;
    assert_eq!(
        symbols("Backoff"),
        json_names(&[B::Fixed, B::Linear, B::Exponential])
    );
    use Strategy as S;
    assert_eq!(
        symbols("Strategy"),
        json_names(&[
            S::RoundRobin,
            S::LeastConnections,
            S::Weighted,
            S::PerformanceBased
        ])
    );
    use AgentHealth as H;
    assert_eq!(
        symbols("AgentHealth"),
        json_names(&[H::Healthy, H::Degraded, H::Lost])
    );
    use WorkflowStatus as W;
    assert_eq!(
        symbols("WorkflowStatus"),
        json_names(&[
            W::Queued,
            W::Running,
            W::Succeeded,
            W::Failed,
            W::Cancelled,
            W::TimedOut
        ])
    );
    use BottleneckKind as K;
    assert_eq!(
        symbols("BottleneckKind"),
        json_names(&[
            K::Saturation,
            K::QueueBacklog,
            K::SlowStep,
            K::SlowAgent,
            K::FailingStep,
            K::FailingAgent,
            K::StarvedCapability,
            K::StuckStep
        ])
    );
    use SubjectType as T;
    assert_eq!(
        symbols("SubjectType"),
        json_names(&[T::Pool, T::Capability, T::Agent, T::StepKind])
    );
}

#[test]
fn every_type_and_field_has_a_doc() {
    let registry = SchemaRegistry::builtin().unwrap();
    for entry in registry.catalog() {
        assert!(
            !entry.doc.trim().is_empty(),
            "{} ({}) has no doc",
            entry.name,
            entry.file
        );
        if entry.kind == "record" {
            for (field, doc) in &entry.members {
                assert!(
                    !doc.trim().is_empty(),
                    "{}.{} has no doc",
                    entry.name,
                    field
                );
            }
        }
    }
}

#[test]
fn current_schema_is_frozen_in_history() {
    let registry = SchemaRegistry::builtin().unwrap();
    let current = registry.current();
    let frozen: Vec<_> = registry
        .versions()
        .into_iter()
        .filter(|v| v.label != "current")
        .collect();
    assert!(
        registry
            .versions()
            .iter()
            .filter(|v| v.fingerprint == current.fingerprint)
            .count()
            == 1
            && std::fs::read_dir("schemas/history")
                .unwrap()
                .flatten()
                .any(|f| {
                    let text = std::fs::read_to_string(f.path()).unwrap();
                    serde_json::from_str(&text)
                        .map(|j| parsing_canonical_form(&j) == current.canonical_form)
                        .unwrap_or(false)
                }),
        "the current envelope schema (fingerprint {:#018x}) is not frozen under schemas/history/. \
         After changing schemas/, run `baton schemas --bundle > schemas/history/envelope.vN.avsc` \
         with the next N, and keep the older files: data written with them must stay readable.",
        current.fingerprint
    );
    for old in frozen {
        SchemaCompatibility::can_read(&old.schema, &current.schema)
            .unwrap_or_else(|e| panic!("the current schema cannot read {}: {e}", old.label));
    }
}
