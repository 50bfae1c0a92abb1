//! `baton bench`: the foundation's throughput figures in one run, as JSON
//! (machine-readable) or text. Each figure is measured in the same process
//! on the same data, so the ratios hold on a shared, noisy machine:
//! Baton's codec vs apache-avro's generic `Value` decoder on the same bytes,
//! and the embedded log's batched append and full scan.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use serde_json::json;

use crate::codec::{samples, Codec};
use crate::log::embedded::{EmbeddedConfig, EmbeddedLog, FsyncPolicy};
use crate::log::{EventLog, ProducerRecord, TopicSpec};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Events for the codec loops.
    #[arg(long, default_value_t = 1_000_000)]
    pub codec_events: u64,
    /// Records for the log append and scan.
    #[arg(long, default_value_t = 2_000_000)]
    pub log_records: u64,
    /// Records per appended batch.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Run only this part (default: all).
    #[arg(long, value_enum)]
    pub only: Option<Part>,
    /// Workflows of the bottleneck A/B workload (decide and fold).
    #[arg(long, default_value_t = 20_000)]
    pub bottleneck_workflows: u64,
    /// A/B rounds of the bottleneck measurements (medians are compared).
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Step attempts fed to a bare projection for the memory figure (then
    /// ten times as many more).
    #[arg(long, default_value_t = 1_000_000)]
    pub observations: u64,
    /// Workflows submitted for the Kafka measurement (`--only kafka`, which
    /// needs `--brokers`; two ingress records per agent and partition besides).
    #[arg(long, default_value_t = 200_000)]
    pub kafka_workflows: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    Codec,
    Log,
    Bottlenecks,
    /// The engine on Kafka vs a raw consume of the same topic (`--brokers`).
    Kafka,
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

pub async fn run(global: &super::GlobalArgs, args: BenchArgs) -> anyhow::Result<ExitCode> {
    // Measured as deployed: with the metrics recorder installed.
    crate::telemetry::Telemetry::install()?;
    if args.only == Some(Part::Kafka) {
        let report = super::bench_kafka::measure(global, args.kafka_workflows).await?;
        if args.json {
            println!("{report}");
        } else {
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.only == Some(Part::Bottlenecks) {
        let report = super::bench_bottlenecks::measure(
            args.bottleneck_workflows,
            args.rounds.max(1),
            args.observations.max(1),
        );
        if args.json {
            println!("{report}");
        } else {
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let codec = Codec::builtin()?;
    let event = samples::step_succeeded();
    let bytes = codec.encode(&event)?;

    let mut buf = Vec::with_capacity(512);
    let t = Instant::now();
    for _ in 0..args.codec_events {
        buf.clear();
        codec.encode_into(black_box(&event), &mut buf)?;
    }
    let encode = rate(args.codec_events, t.elapsed());

    let t = Instant::now();
    for _ in 0..args.codec_events {
        black_box(codec.decode(black_box(&bytes))?);
    }
    let decode = rate(args.codec_events, t.elapsed());

    // apache-avro's generic single-object reader (names resolved once, as
    // fair as that path gets); it is much slower, so a tenth of the events.
    let generic = apache_avro::GenericSingleObjectReader::new_with_header_builder(
        codec.registry().current().schema.clone(),
        FixedHeader(bytes_header(&codec)),
    )?;
    let generic_n = (args.codec_events / 10).max(1);
    let t = Instant::now();
    for _ in 0..generic_n {
        black_box(generic.read_value(&mut &bytes[..])?);
    }
    let decode_generic = rate(generic_n, t.elapsed());

    let dir = std::env::temp_dir().join(format!("baton-bench-{}", std::process::id()));
    let result = log_bench(&dir, &bytes, args.log_records, args.batch).await;
    let _ = std::fs::remove_dir_all(&dir);
    let (append, scan) = result?;

    let report = json!({
        "event_bytes": bytes.len(),
        "codec": {
            "events": args.codec_events,
            "encode_events_per_s": encode,
            "decode_events_per_s": decode,
            "decode_apache_avro_value_events_per_s": decode_generic,
            "decode_speedup_vs_apache_avro_value": decode / decode_generic.max(1e-9),
        },
        "embedded_log": {
            "records": args.log_records,
            "batch": args.batch,
            "fsync": "interval:100",
            "append_records_per_s": append,
            "scan_records_per_s": scan,
        }
    });
    if args.json {
        println!("{report}");
    } else {
        println!("event: StepSucceeded, {} bytes", bytes.len());
        println!("codec encode          {encode:>12.0} events/s");
        println!("codec decode          {decode:>12.0} events/s");
        println!("apache-avro Value     {decode_generic:>12.0} events/s (decode, same bytes)");
        println!(
            "log append (batched)  {append:>12.0} records/s (batch {}, fsync interval:100)",
            args.batch
        );
        println!("log full scan         {scan:>12.0} records/s");
    }
    Ok(ExitCode::SUCCESS)
}

async fn log_bench(
    dir: &std::path::Path,
    value: &[u8],
    records: u64,
    batch: usize,
) -> anyhow::Result<(f64, f64)> {
    let log = EmbeddedLog::open(EmbeddedConfig {
        fsync: FsyncPolicy::Interval(Duration::from_millis(100)),
        ..EmbeddedConfig::new(dir)
    })
    .with_context(|| format!("opening a scratch log in {}", dir.display()))?;
    log.create_topic(&TopicSpec::new("bench", 1)).await?;
    let value = Bytes::copy_from_slice(value);
    let key = Bytes::from_static(b"wf-000042");
    let batch = batch.max(1);
    let t = Instant::now();
    let mut written = 0u64;
    while written < records {
        let n = batch.min((records - written) as usize);
        let recs = (0..n)
            .map(|_| ProducerRecord::new(Some(key.clone()), value.clone()))
            .collect();
        log.append("bench", 0, recs).await?;
        written += n as u64;
    }
    log.flush().await?;
    let append = rate(records, t.elapsed());

    let t = Instant::now();
    let (mut next, mut seen) = (0u64, 0u64);
    loop {
        let got = log.read("bench", 0, next, 10_000).await?;
        let Some(last) = got.last() else { break };
        next = last.offset + 1;
        seen += got.len() as u64;
    }
    let scan = rate(seen, t.elapsed());
    anyhow::ensure!(seen == records, "scanned {seen} of {records} records");
    Ok((append, scan))
}

/// apache-avro 0.21 computes its own fingerprint from a non-canonical form
/// (see `codec::canonical`), so hand it the header Baton writes.
struct FixedHeader(Vec<u8>);

impl apache_avro::headers::HeaderBuilder for FixedHeader {
    fn build_header(&self) -> Vec<u8> {
        self.0.clone()
    }
}

fn bytes_header(codec: &crate::codec::Codec) -> Vec<u8> {
    let mut h = crate::codec::MAGIC.to_vec();
    h.extend_from_slice(&codec.fingerprint().to_le_bytes());
    h
}
