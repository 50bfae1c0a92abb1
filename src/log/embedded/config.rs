//! Configuration of the embedded log: where it lives, how often it fsyncs,
//! how big segments and batches may get, and whether it may write at all.
//!
//! Invariant: `FsyncPolicy`'s `Display` output parses back with `FromStr` to
//! the same value, so the CLI can print a policy and accept it again.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// When appended data is forced to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// fsync the segment before `append` (and `commit`) returns: an
    /// acknowledged batch survives a power loss.
    Always,
    /// A background thread fsyncs dirty partitions every interval: an
    /// acknowledged batch survives a process crash at once, a power loss only
    /// after the next tick.
    Interval(Duration),
}

impl Default for FsyncPolicy {
    fn default() -> Self {
        FsyncPolicy::Interval(Duration::from_millis(100))
    }
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsyncPolicy::Always => f.write_str("always"),
            FsyncPolicy::Interval(d) => write!(f, "interval:{}", d.as_millis()),
        }
    }
}

/// Why an fsync policy string did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid fsync policy `{input}`: {reason} (expected `always` or `interval:<milliseconds>`, e.g. `interval:100`)")]
pub struct ParseFsyncPolicyError {
    pub input: String,
    pub reason: String,
}

impl FromStr for FsyncPolicy {
    type Err = ParseFsyncPolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| ParseFsyncPolicyError {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = s.trim();
        if trimmed.eq_ignore_ascii_case("always") {
            return Ok(FsyncPolicy::Always);
        }
        let Some((kind, ms)) = trimmed.split_once(':') else {
            return Err(err("unknown policy"));
        };
        if !kind.eq_ignore_ascii_case("interval") {
            return Err(err("unknown policy"));
        }
        let ms: u64 = ms
            .trim()
            .parse()
            .map_err(|_| err("the interval must be a whole number of milliseconds"))?;
        if ms == 0 {
            return Err(err("the interval must be at least 1 millisecond"));
        }
        Ok(FsyncPolicy::Interval(Duration::from_millis(ms)))
    }
}

/// Default size at which the active segment is sealed and a new one started.
pub const DEFAULT_SEGMENT_BYTES: u64 = 256 * 1024 * 1024;
/// Default limit on one encoded batch frame.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// How to open an [`EmbeddedLog`](super::EmbeddedLog).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmbeddedConfig {
    /// The log directory (the CLI passes `<data-dir>/log`).
    pub root: PathBuf,
    pub fsync: FsyncPolicy,
    /// Roll to a new segment once the active one would grow past this.
    pub segment_bytes: u64,
    /// Largest encoded batch `append` accepts (frame header included).
    pub max_batch_bytes: usize,
    /// Open without the lock; never write, truncate or create anything.
    pub read_only: bool,
}

impl EmbeddedConfig {
    /// A writable log at `root` with the default policy and sizes.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            fsync: FsyncPolicy::default(),
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            read_only: false,
        }
    }

    /// A read-only view of the log at `root` (for `tail --follow` beside a
    /// running writer).
    pub fn read_only(root: impl Into<PathBuf>) -> Self {
        Self {
            read_only: true,
            ..Self::new(root)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_and_print() {
        assert_eq!("always".parse::<FsyncPolicy>(), Ok(FsyncPolicy::Always));
        assert_eq!(
            "interval:100".parse::<FsyncPolicy>(),
            Ok(FsyncPolicy::Interval(Duration::from_millis(100)))
        );
        for p in [
            FsyncPolicy::Always,
            FsyncPolicy::Interval(Duration::from_millis(7)),
        ] {
            assert_eq!(p.to_string().parse::<FsyncPolicy>(), Ok(p));
        }
        assert_eq!(FsyncPolicy::default().to_string(), "interval:100");
    }

    #[test]
    fn bad_policies_explain_themselves() {
        for bad in [
            "",
            "sometimes",
            "interval",
            "interval:",
            "interval:x",
            "interval:0",
        ] {
            let e = bad.parse::<FsyncPolicy>().unwrap_err().to_string();
            assert!(
                e.contains("expected `always` or `interval:<milliseconds>`"),
                "{e}"
            );
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
    }
}
