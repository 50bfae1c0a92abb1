//! Fault injection over a demo directory: a failing disk or a careless
//! operator damages one file (a flipped byte, a truncated segment, a deleted
//! file) of every kind Baton keeps (log segments and their indexes, topic
//! metadata, consumer-group offsets, projection stores), then Baton opens
//! it (`tail` of every topic), verifies it (`replay --verify`) and runs it
//! (`demo`, which runs the engine on the directory and adds a few workflows).
//!
//! Each case must end in one of two ways, and this suite fails on anything
//! else:
//! - **unchanged**: every topic reads the same number of records per
//!   partition as before the fault, and after the run every workflow is
//!   there in the state it had; or
//! - **a precise refusal**: a command exits non-zero and says what is
//!   damaged (a file, an offset, "corrupt", a repair command).
//!
//! Truncating the active segment of a partition at any byte is what a crash
//! can leave on disk as far as that file can tell, so the log accepts it; the
//! engine must then notice that the journal or ingress lost records against
//! its checkpoint and committed offsets, and either rebuild every workflow
//! from ingress (journal) or refuse (ingress). Records of the output topics
//! the engine derives (assignments, status, alerts, dlq) cut off at a frame
//! boundary are not detectable by the embedded log; the suite truncates
//! only the journal and ingress, the topics the engine reads back.
//!
//! The cases are drawn from a fixed seed (printed; `BATON_FAULT_SEED`
//! overrides it, `BATON_FAULT_CASES` the count) so a failure reproduces.

mod common;

/// `assert!` for [`judge`]: a failed check ends the case with its message.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use baton::store::ProjectionStore;
use common::baton;

const PARTITIONS: u32 = 2;
const TOPICS: [&str; 6] = [
    "baton.ingress",
    "baton.journal",
    "baton.assignments",
    "baton.status",
    "baton.alerts",
    "baton.dlq",
];
const DEFAULT_SEED: u64 = 0x5eed_0024;
const DEFAULT_CASES: usize = 28;

/// What a data directory holds, as the suite compares it.
#[derive(Clone, Debug, PartialEq)]
struct Snapshot {
    /// Records per (topic, partition).
    records: BTreeMap<(String, u32), usize>,
    /// Workflow id → its status, from the projection stores.
    workflows: BTreeMap<String, String>,
}

fn args(extra: &[&str]) -> Vec<String> {
    let mut v = vec!["--partitions".to_string(), PARTITIONS.to_string()];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn run(dir: &Path, extra: &[&str]) -> Output {
    let a = args(extra);
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    baton(dir, &refs)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Text without terminal colour codes.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The error a failed command ended with (its last line naming an error).
fn error_line(text: &str) -> Option<String> {
    plain(text)
        .lines()
        .rev()
        .find(|l| l.to_lowercase().contains("error"))
        .map(|l| l.trim().chars().take(300).collect())
}

/// A refusal is precise when its error says what is damaged.
fn precise(text: &str) -> bool {
    let Some(line) = error_line(text) else {
        return false;
    };
    let t = line.to_lowercase();
    [
        "corrupt", "repair", "offset", ".seg", ".idx", ".json", "store", "damaged", "differ",
    ]
    .iter()
    .any(|w| t.contains(w))
}

/// Records per partition of `topic`, or the refusal's text.
fn count_records(dir: &Path, topic: &str) -> Result<BTreeMap<u32, usize>, String> {
    let out = run(dir, &["tail", "--topic", topic, "--from-beginning"]);
    if !out.status.success() {
        return Err(stderr(&out));
    }
    let mut counts = BTreeMap::new();
    for p in 0..PARTITIONS {
        counts.insert(p, 0);
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("tail printed a line that is not JSON ({e}): {line}"));
        let p = v["partition"].as_u64().expect("a partition") as u32;
        *counts.entry(p).or_default() += 1;
    }
    Ok(counts)
}

/// Every topic's record counts, or the first refusal.
fn records(dir: &Path) -> Result<BTreeMap<(String, u32), usize>, String> {
    let mut all = BTreeMap::new();
    for t in TOPICS {
        for (p, n) in count_records(dir, t).map_err(|e| format!("tail {t}: {e}"))? {
            all.insert((t.to_string(), p), n);
        }
    }
    Ok(all)
}

/// Workflow id → status from every partition's store, or the refusal.
fn workflows(dir: &Path) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for p in 0..PARTITIONS {
        let store = ProjectionStore::open_existing(dir, p)
            .map_err(|e| format!("store p-{p}: {e}"))?
            .ok_or_else(|| format!("store p-{p} is missing"))?;
        for w in store.workflows().map_err(|e| format!("store p-{p}: {e}"))? {
            out.insert(w.id.to_string(), format!("{:?}", w.status));
        }
    }
    Ok(out)
}

fn snapshot(dir: &Path) -> Snapshot {
    Snapshot {
        records: records(dir).expect("the baseline reads"),
        workflows: workflows(dir).expect("the baseline's stores read"),
    }
}

/// Every regular file under `dir`, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let path = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n != "LOCK") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// The kinds of file the suite damages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    JournalSegment,
    IngressSegment,
    OutputSegment,
    Index,
    TopicMeta,
    GroupOffsets,
    Store,
}

fn kind_of(rel: &Path) -> Kind {
    let s = rel.to_string_lossy();
    if s.starts_with("store") {
        Kind::Store
    } else if s.contains("/groups/") {
        Kind::GroupOffsets
    } else if s.ends_with("topic.json") {
        Kind::TopicMeta
    } else if s.ends_with(".idx") {
        Kind::Index
    } else if s.contains("baton.journal/") {
        Kind::JournalSegment
    } else if s.contains("baton.ingress/") {
        Kind::IngressSegment
    } else {
        Kind::OutputSegment
    }
}

#[derive(Clone, Debug)]
enum Fault {
    Flip { file: PathBuf, at: u64, mask: u8 },
    Truncate { file: PathBuf, to: u64 },
    Delete { file: PathBuf },
}

impl Fault {
    fn apply(&self, root: &Path) {
        match self {
            Fault::Flip { file, at, mask } => {
                let path = root.join(file);
                let mut bytes = std::fs::read(&path).unwrap();
                bytes[*at as usize] ^= mask;
                std::fs::write(&path, bytes).unwrap();
            }
            Fault::Truncate { file, to } => {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(root.join(file))
                    .unwrap();
                f.set_len(*to).unwrap();
            }
            Fault::Delete { file } => std::fs::remove_file(root.join(file)).unwrap(),
        }
    }

    fn file(&self) -> &Path {
        match self {
            Fault::Flip { file, .. } | Fault::Truncate { file, .. } | Fault::Delete { file } => {
                file
            }
        }
    }
}

/// Draws `n` faults over the baseline's files: every kind gets flips, the
/// journal and ingress segments also truncations, and some files are
/// deleted.
fn draw(rng: &mut fastrand::Rng, base: &Path, n: usize) -> Vec<Fault> {
    let all: Vec<(PathBuf, Kind, u64)> = files(base)
        .into_iter()
        .map(|p| {
            let len = std::fs::metadata(&p).unwrap().len();
            let rel = p.strip_prefix(base).unwrap().to_path_buf();
            let kind = kind_of(&rel);
            (rel, kind, len)
        })
        .filter(|(_, _, len)| *len > 0)
        .collect();
    let kinds = [
        Kind::JournalSegment,
        Kind::IngressSegment,
        Kind::OutputSegment,
        Kind::Index,
        Kind::TopicMeta,
        Kind::GroupOffsets,
        Kind::Store,
    ];
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let kind = kinds[i % kinds.len()];
        let of_kind: Vec<_> = all.iter().filter(|(_, k, _)| *k == kind).collect();
        let (file, _, len) = of_kind[rng.usize(..of_kind.len())].clone();
        let segment = matches!(kind, Kind::JournalSegment | Kind::IngressSegment);
        let fault = match rng.u8(..10) {
            0..=5 => Fault::Flip {
                file,
                at: rng.u64(..len),
                mask: 1 << rng.u8(..8),
            },
            6..=8 if segment => Fault::Truncate {
                file,
                to: rng.u64(..len),
            },
            _ if kind == Kind::OutputSegment => Fault::Flip {
                file,
                at: rng.u64(..len),
                mask: 1 << rng.u8(..8),
            },
            _ => Fault::Delete { file },
        };
        out.push(fault);
    }
    out
}

/// How one case ended.
#[derive(Debug)]
enum Verdict {
    Unchanged,
    Refused(#[allow(dead_code)] String),
}

/// Opens, verifies and runs the damaged directory; an `Err` is silent loss
/// or an imprecise refusal.
fn judge(case: &str, dir: &Path, fault: &Fault, before: &Snapshot) -> Result<Verdict, String> {
    let truncation = matches!(fault, Fault::Truncate { .. })
        || matches!(fault, Fault::Delete { file } if file.extension().is_some_and(|e| e == "seg"));
    let mut refused = None;

    // Open: every topic reads as before, or refuses precisely. A truncated
    // active segment is indistinguishable from a crash's torn tail here:
    // the engine below must notice instead.
    match records(dir) {
        Ok(now) if now == before.records => {}
        Ok(now) if truncation => {
            for (k, n) in &now {
                ensure!(
                    *n <= before.records[k],
                    "{case}: {k:?} grew from {} to {n} records without a run",
                    before.records[k]
                );
            }
        }
        Ok(now) => {
            return Err(format!(
            "{case}: silent loss: records changed without an error\nbefore {:?}\nafter  {now:?}",
            before.records
        ))
        }
        Err(e) => {
            ensure!(precise(&e), "{case}: tail refused imprecisely: {e}");
            refused = Some(format!("tail: {}", first_line(&e)));
        }
    }

    // Verify: passes, or fails saying why.
    let verify = run(dir, &["replay", "--verify"]);
    if !verify.status.success() {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&verify.stdout),
            stderr(&verify)
        );
        ensure!(
            precise(&text) || text.contains("differ"),
            "{case}: verify failed imprecisely: {text}"
        );
        refused.get_or_insert(format!("verify: {}", first_line(&text)));
    }

    // Run: the engine recovers and finishes its workflows, or refuses.
    let demo = run(
        dir,
        &[
            "demo",
            "--workflows",
            "6",
            "--agents",
            "3",
            "--no-http",
            "--duration",
            "30",
        ],
    );
    if !demo.status.success() {
        let e = stderr(&demo);
        ensure!(precise(&e), "{case}: the run refused imprecisely: {e}");
        return Ok(Verdict::Refused(
            refused.unwrap_or(format!("run: {}", first_line(&e))),
        ));
    }
    match workflows(dir) {
        Ok(after) => {
            for (id, status) in &before.workflows {
                match after.get(id) {
                    Some(s) if s == status => {}
                    Some(s) => {
                        return Err(format!(
                            "{case}: silent change: workflow {id} was {status}, now {s}"
                        ))
                    }
                    None => {
                        return Err(format!(
                            "{case}: silent loss: workflow {id} ({status}) is gone"
                        ))
                    }
                }
            }
        }
        Err(e) => {
            ensure!(precise(&e), "{case}: the stores refused imprecisely: {e}");
            return Ok(Verdict::Refused(
                refused.unwrap_or(format!("stores: {}", first_line(&e))),
            ));
        }
    }
    // Ingress is the source of truth: after an accepted run it never holds
    // fewer records than before (new ones were added).
    if let Ok(now) = count_records(dir, "baton.ingress") {
        for (p, n) in now {
            let was = before.records[&("baton.ingress".to_string(), p)];
            ensure!(
                n >= was,
                "{case}: silent loss: ingress partition {p} went from {was} to {n} records"
            );
        }
    }
    Ok(match refused {
        Some(r) => Verdict::Refused(r),
        None => Verdict::Unchanged,
    })
}

fn first_line(s: &str) -> String {
    error_line(s).unwrap_or_default()
}

#[test]
fn every_fault_is_refused_precisely_or_changes_nothing() {
    let seed = std::env::var("BATON_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let cases = std::env::var("BATON_FAULT_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    println!("fault injection: seed {seed} (BATON_FAULT_SEED), {cases} cases");

    let base = tempfile::tempdir().unwrap();
    let demo = run(
        base.path(),
        &[
            "demo",
            "--workflows",
            "150",
            "--agents",
            "4",
            "--no-http",
            "--duration",
            "60",
        ],
    );
    assert!(demo.status.success(), "baseline demo: {}", stderr(&demo));
    let before = snapshot(base.path());
    assert!(
        before.workflows.len() >= 150,
        "{:?}",
        before.workflows.len()
    );

    let mut rng = fastrand::Rng::with_seed(seed);
    let faults = draw(&mut rng, base.path(), cases);
    let mut summary = Vec::new();
    let mut failures = Vec::new();
    for (i, fault) in faults.iter().enumerate() {
        let work = tempfile::tempdir().unwrap();
        copy_dir(base.path(), work.path());
        fault.apply(work.path());
        let case = format!(
            "case {i} (seed {seed}): {fault:?} [{:?}]",
            kind_of(fault.file())
        );
        match judge(&case, work.path(), fault, &before) {
            Ok(verdict) => {
                println!("{case}: {verdict:?}");
                summary.push(verdict);
            }
            Err(e) => {
                println!("FAILED {e}");
                failures.push(e);
            }
        }
    }
    let refused = summary
        .iter()
        .filter(|v| matches!(v, Verdict::Refused(_)))
        .count();
    println!(
        "{cases} cases: {} unchanged, {refused} refused precisely, {} failed",
        summary.len() - refused,
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {cases} cases lost data silently or refused imprecisely (seed {seed}):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
