//! Codec throughput: encode/decode of a typical StepSucceeded and a
//! 10-step SubmitWorkflow with Baton's fast path, next to apache-avro's
//! generic `Value` path on the same bytes (the ratio is the point: this
//! machine is shared and noisy).

use std::hint::black_box;

use baton::codec::{samples, Codec};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn codec_benches(c: &mut Criterion) {
    let codec = Codec::builtin().expect("schemas");
    let generic = apache_avro::GenericSingleObjectReader::new_with_header_builder(
        codec.registry().current().schema.clone(),
        FixedHeader(bytes_header(&codec)),
    )
    .expect("schema");
    for (name, event) in [
        ("step_succeeded", samples::step_succeeded()),
        ("submit_workflow_10", samples::submit_workflow(10)),
    ] {
        let bytes = codec.encode(&event).expect("encode");
        let mut group = c.benchmark_group(format!("codec/{name}"));
        group.throughput(Throughput::Elements(1));
        let mut buf = Vec::with_capacity(4096);
        group.bench_function("encode", |b| {
            b.iter(|| {
                buf.clear();
                codec
                    .encode_into(black_box(&event), &mut buf)
                    .expect("encode");
                black_box(buf.len())
            })
        });
        group.bench_function("decode", |b| {
            b.iter(|| codec.decode(black_box(&bytes)).expect("decode"))
        });
        group.bench_function("decode_apache_avro_value", |b| {
            b.iter(|| {
                generic
                    .read_value(&mut black_box(&bytes[..]))
                    .expect("decode")
            })
        });
        group.finish();
        println!("{name}: {} bytes encoded", bytes.len());
    }
}

criterion_group!(benches, codec_benches);
criterion_main!(benches);

/// apache-avro 0.21 computes its own fingerprint from a non-canonical form
/// (see `codec::canonical`), so hand it the header Baton writes.
struct FixedHeader(Vec<u8>);

impl apache_avro::headers::HeaderBuilder for FixedHeader {
    fn build_header(&self) -> Vec<u8> {
        self.0.clone()
    }
}

fn bytes_header(codec: &baton::codec::Codec) -> Vec<u8> {
    let mut h = baton::codec::MAGIC.to_vec();
    h.extend_from_slice(&codec.fingerprint().to_le_bytes());
    h
}
