//! The embedded backend: an [`EventLog`] kept in segment files under one
//! directory, crash-safe, for a single writer process plus any number of
//! read-only readers (e.g. `baton tail --follow` beside a running producer).
//!
//! # Layout
//!
//! ```text
//! <root>/LOCK                                     exclusive flock of the writer (holds its pid)
//! <root>/topics/<topic>/topic.json                {"partitions": 3, "compacted": false}
//! <root>/topics/<topic>/<partition>/<base:020>.seg segment files, named by first offset
//! <root>/groups/<group>.json                      {"offsets": {"<topic>": {"<partition>": <next offset>}}}
//! ```
//!
//! `topic.json` is written last (temp + fsync + rename) when a topic is
//! created, so a topic directory without it is an interrupted creation and
//! is ignored. Group names are percent-encoded into file names (anything
//! outside `[a-zA-Z0-9_-]`), topic names are limited to Kafka's
//! `[a-zA-Z0-9._-]{1,249}` (not `.`/`..`) and used as they are.
//!
//! # Segment format
//!
//! A segment is a plain sequence of frames, no file header. One frame is
//! one `append` call, which is what makes an append atomic: a frame is
//! served only if it is complete and its CRC matches. All integers are
//! little-endian.
//!
//! ```text
//! frame:   u32 frame_len        bytes after this field
//!          u32 crc32            crc32fast (IEEE) of everything after this field
//!          u64 base_offset      offset of the first record; record i has base_offset + i
//!          u32 count            number of records, >= 1
//!          record * count
//! record:  i64 timestamp_ms
//!          varint key_len + 1   0 = no key (distinct from an empty key)
//!          [u8] key
//!          varint value_len,  [u8] value
//!          varint header_count
//!          (varint name_len, [u8] name (UTF-8), varint value_len, [u8] value) * header_count
//! ```
//!
//! Varints are unsigned LEB128. Offsets in this backend are dense (each
//! frame starts where the previous ended), which recovery checks; readers
//! of the trait must still not rely on that. An encoded frame larger than
//! `max_batch_bytes` (default 16 MiB) is rejected with
//! [`LogError::BatchTooLarge`].
//!
//! # Recovery
//!
//! Opening for writing validates the last segment of every partition frame
//! by frame (length, CRC, contiguous offsets) and truncates it at the first
//! bad frame, with a `tracing::warn!` naming the file and the bytes kept and
//! dropped. Earlier segments were fsynced when they were sealed; they are
//! validated and sparsely indexed (offset → position about every 4 KiB)
//! lazily, on their first read. The active segment rolls over once the
//! next frame would take it past `segment_bytes` (default 256 MiB).
//!
//! # Durability
//!
//! [`FsyncPolicy::Always`] fsyncs the segment before `append` returns and the
//! group file and directory before `commit` returns. [`FsyncPolicy::Interval`]
//! (default `interval:100`) leaves that to a background thread that fsyncs
//! dirty partitions every interval; an acknowledged batch then survives a
//! process crash at once (it is in the page cache) and a power loss after
//! the next tick. `flush()` and dropping the log fsync everything now.
//!
//! # Concurrency and blocking
//!
//! Each partition has a `std::sync::Mutex` around its segment list and high
//! watermark; reads only hold it to plan (find the segment and position) and
//! do their `pread`s outside it, so readers and the appender of a partition
//! hardly contend. The async methods do plain blocking file IO: it is page
//! cache IO measured in microseconds (an fsync under `Always` is ~0.2 ms), far
//! cheaper than a hop to `spawn_blocking`, and it keeps the backend usable
//! from any runtime flavour.
//!
//! # Read-only mode
//!
//! [`EmbeddedConfig::read_only`] takes no lock and never creates, writes or
//! truncates anything; `append`, `commit` and creating a new topic return
//! [`LogError::ReadOnly`]. When asked for offsets at or past what it knows
//! (and on every `high_watermark`), it rescans the files for frames, segments
//! and topics another process added, accepting only frames that validate, so
//! a batch still being written is invisible until complete.

mod config;
mod files;
mod format;
mod fsync;
mod groups;
mod partition;
mod segment;

pub use config::{
    EmbeddedConfig, FsyncPolicy, ParseFsyncPolicyError, DEFAULT_MAX_BATCH_BYTES,
    DEFAULT_SEGMENT_BYTES,
};

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use self::files::{sync_dir, validate_topic_name, write_atomic};
use self::fsync::Flusher;
use self::groups::Groups;
use self::partition::Partition;
use super::{EventLog, LogError, Offset, ProducerRecord, StoredRecord, TopicPartition, TopicSpec};

/// The contents of `topic.json`.
#[derive(Serialize, Deserialize)]
struct TopicMeta {
    partitions: u32,
    compacted: bool,
}

struct Topic {
    spec: TopicSpec,
    partitions: Vec<Arc<Partition>>,
}

struct Inner {
    config: EmbeddedConfig,
    topics_dir: PathBuf,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    groups: Groups,
    /// Held (flocked) for the life of a writer; closing it releases the lock.
    _lock: Option<File>,
}

/// The embedded log. See the module docs for format and guarantees.
pub struct EmbeddedLog {
    inner: Arc<Inner>,
    flusher: Option<Flusher>,
}

impl std::fmt::Debug for EmbeddedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedLog")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Takes the writer's exclusive lock on `<root>/LOCK` and records our pid
/// in it, so a second writer's error can say who holds it.
fn take_lock(root: &Path) -> Result<File, LogError> {
    let path = root.join("LOCK");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| LogError::io(format!("open lock file {}", path.display()), e))?;
    let locked = fs4::fs_std::FileExt::try_lock_exclusive(&file)
        .map_err(|e| LogError::io(format!("lock {}", path.display()), e))?;
    if !locked {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = holder.trim();
        return Err(LogError::Locked {
            path: path.display().to_string(),
            detail: if holder.is_empty() {
                "held by another process".to_string()
            } else {
                format!("held by pid {holder}")
            },
        });
    }
    file.set_len(0)
        .and_then(|()| file.write_all(std::process::id().to_string().as_bytes()))
        .map_err(|e| LogError::io(format!("write {}", path.display()), e))?;
    Ok(file)
}

impl EmbeddedLog {
    /// Opens (creating it if needed, unless read-only) the log at
    /// `config.root`, recovering torn tails when writable.
    pub fn open(config: EmbeddedConfig) -> Result<Self, LogError> {
        let root = config.root.clone();
        let topics_dir = root.join("topics");
        let groups_dir = root.join("groups");
        let lock = if config.read_only {
            if !root.is_dir() {
                return Err(LogError::io(
                    format!("open log {} read-only", root.display()),
                    io::Error::new(io::ErrorKind::NotFound, "no log has been written there yet"),
                ));
            }
            None
        } else {
            fs::create_dir_all(&root)
                .map_err(|e| LogError::io(format!("create {}", root.display()), e))?;
            let lock = take_lock(&root)?;
            for dir in [&topics_dir, &groups_dir] {
                fs::create_dir_all(dir)
                    .map_err(|e| LogError::io(format!("create {}", dir.display()), e))?;
            }
            Some(lock)
        };
        let durable = config.fsync == FsyncPolicy::Always;
        let inner = Arc::new(Inner {
            groups: Groups::new(groups_dir, config.read_only, durable),
            topics: RwLock::new(BTreeMap::new()),
            topics_dir,
            config,
            _lock: lock,
        });
        inner.load_new_topics()?;
        let flusher = match inner.config.fsync {
            FsyncPolicy::Interval(every) if !inner.config.read_only => {
                let weak = Arc::downgrade(&inner);
                Some(Flusher::start(every, move || match weak.upgrade() {
                    Some(inner) => {
                        if let Err(e) = inner.sync_dirty() {
                            tracing::warn!(error = %e, "background fsync of the log failed; will retry");
                        }
                        true
                    }
                    None => false,
                })?)
            }
            _ => None,
        };
        Ok(Self { inner, flusher })
    }

    /// The configuration this log was opened with.
    pub fn config(&self) -> &EmbeddedConfig {
        &self.inner.config
    }
}

impl Drop for EmbeddedLog {
    fn drop(&mut self) {
        drop(self.flusher.take());
        if !self.inner.config.read_only {
            if let Err(e) = self.inner.sync_dirty() {
                tracing::warn!(error = %e, "final fsync of the log failed");
            }
        }
    }
}

impl Inner {
    fn read_only_err(&self) -> LogError {
        LogError::ReadOnly(self.config.root.display().to_string())
    }

    /// Loads a topic's metadata and partitions from disk; `None` if it has
    /// no `topic.json` (never created, or creation interrupted).
    fn load_topic(&self, name: &str) -> Result<Option<Topic>, LogError> {
        let dir = self.topics_dir.join(name);
        let meta_path = dir.join("topic.json");
        let bytes = match fs::read(&meta_path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LogError::io(format!("read {}", meta_path.display()), e)),
        };
        let meta: TopicMeta = serde_json::from_slice(&bytes).map_err(|e| LogError::Corrupt {
            path: meta_path.display().to_string(),
            position: 0,
            reason: format!("bad topic metadata: {e}"),
        })?;
        let read_only = self.config.read_only;
        let partitions = (0..meta.partitions)
            .map(|p| {
                let pdir = dir.join(p.to_string());
                if !read_only {
                    fs::create_dir_all(&pdir)
                        .map_err(|e| LogError::io(format!("create {}", pdir.display()), e))?;
                }
                Partition::open(TopicPartition::new(name, p), pdir, read_only).map(Arc::new)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Topic {
            spec: TopicSpec {
                name: name.to_string(),
                partitions: meta.partitions,
                compacted: meta.compacted,
            },
            partitions,
        }))
    }

    /// Loads every topic on disk not loaded yet (at open, and when a
    /// read-only log lists topics another process may have created).
    fn load_new_topics(&self) -> Result<(), LogError> {
        let entries = match fs::read_dir(&self.topics_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(LogError::io(format!("list {}", self.topics_dir.display()), e)),
        };
        for entry in entries {
            let entry =
                entry.map_err(|e| LogError::io(format!("list {}", self.topics_dir.display()), e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if validate_topic_name(&name).is_err() || self.topics_read().contains_key(&name) {
                continue;
            }
            if let Some(topic) = self.load_topic(&name)? {
                self.topics_write().entry(name).or_insert_with(|| Arc::new(topic));
            }
        }
        Ok(())
    }

    fn topics_read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Topic>>> {
        self.topics.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn topics_write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Topic>>> {
        self.topics.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn topic(&self, name: &str) -> Result<Arc<Topic>, LogError> {
        validate_topic_name(name)?;
        if let Some(t) = self.topics_read().get(name) {
            return Ok(t.clone());
        }
        if self.config.read_only {
            if let Some(topic) = self.load_topic(name)? {
                let mut topics = self.topics_write();
                return Ok(topics.entry(name.to_string()).or_insert_with(|| Arc::new(topic)).clone());
            }
        }
        Err(LogError::UnknownTopic(name.to_string()))
    }

    fn partition(&self, topic: &str, partition: u32) -> Result<Arc<Partition>, LogError> {
        let t = self.topic(topic)?;
        t.partitions
            .get(partition as usize)
            .cloned()
            .ok_or_else(|| LogError::UnknownPartition {
                topic: topic.to_string(),
                partition,
                partitions: t.spec.partitions,
            })
    }

    fn create_topic(&self, spec: &TopicSpec) -> Result<(), LogError> {
        validate_topic_name(&spec.name)?;
        let check = |existing: &Topic| {
            if existing.spec.partitions == spec.partitions {
                Ok(())
            } else {
                Err(LogError::PartitionMismatch {
                    topic: spec.name.clone(),
                    existing: existing.spec.partitions,
                    requested: spec.partitions,
                })
            }
        };
        if self.config.read_only {
            return match self.topic(&spec.name) {
                Ok(t) => check(&t),
                Err(LogError::UnknownTopic(_)) => Err(self.read_only_err()),
                Err(e) => Err(e),
            };
        }
        if spec.partitions == 0 {
            return Err(LogError::io(
                format!("create topic `{}`", spec.name),
                io::Error::new(io::ErrorKind::InvalidInput, "a topic needs at least one partition"),
            ));
        }
        // Held across the creation so two creators cannot interleave.
        let mut topics = self.topics_write();
        if let Some(existing) = topics.get(&spec.name) {
            return check(existing);
        }
        let dir = self.topics_dir.join(&spec.name);
        let partitions = (0..spec.partitions)
            .map(|p| {
                let pdir = dir.join(p.to_string());
                fs::create_dir_all(&pdir)
                    .map_err(|e| LogError::io(format!("create {}", pdir.display()), e))?;
                Partition::open(TopicPartition::new(&spec.name, p), pdir, false).map(Arc::new)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let meta = TopicMeta {
            partitions: spec.partitions,
            compacted: spec.compacted,
        };
        let json = serde_json::to_vec_pretty(&meta)
            .map_err(|e| LogError::io(format!("encode metadata of `{}`", spec.name), io::Error::other(e)))?;
        sync_dir(&dir)?;
        write_atomic(&dir.join("topic.json"), &json, true)?;
        sync_dir(&self.topics_dir)?;
        topics.insert(
            spec.name.clone(),
            Arc::new(Topic {
                spec: spec.clone(),
                partitions,
            }),
        );
        Ok(())
    }

    fn list_topics(&self) -> Result<Vec<TopicSpec>, LogError> {
        if self.config.read_only {
            self.load_new_topics()?;
        }
        Ok(self.topics_read().values().map(|t| t.spec.clone()).collect())
    }

    fn append(&self, topic: &str, partition: u32, records: Vec<ProducerRecord>) -> Result<Vec<Offset>, LogError> {
        if self.config.read_only {
            return Err(self.read_only_err());
        }
        let part = self.partition(topic, partition)?;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let frame = format::encode_batch(&records, now_ms(), self.config.max_batch_bytes)?;
        let count = records.len() as u64;
        drop(records);
        let always = self.config.fsync == FsyncPolicy::Always;
        let base = part.append(frame, count, self.config.segment_bytes, always)?;
        Ok((base..base + count).collect())
    }

    /// fsyncs every dirty partition and the groups directory; keeps going
    /// after a failure and reports the first.
    fn sync_dirty(&self) -> Result<(), LogError> {
        let partitions: Vec<Arc<Partition>> = self
            .topics_read()
            .values()
            .flat_map(|t| t.partitions.iter().cloned())
            .collect();
        let mut first_err = None;
        for p in partitions {
            if let Err(e) = p.sync_if_dirty() {
                first_err.get_or_insert(e);
            }
        }
        if let Err(e) = self.groups.sync_if_dirty() {
            first_err.get_or_insert(e);
        }
        first_err.map_or(Ok(()), Err)
    }
}

#[async_trait]
impl EventLog for EmbeddedLog {
    async fn create_topic(&self, spec: &TopicSpec) -> Result<(), LogError> {
        self.inner.create_topic(spec)
    }

    async fn list_topics(&self) -> Result<Vec<TopicSpec>, LogError> {
        self.inner.list_topics()
    }

    async fn partition_count(&self, topic: &str) -> Result<u32, LogError> {
        Ok(self.inner.topic(topic)?.spec.partitions)
    }

    async fn append(
        &self,
        topic: &str,
        partition: u32,
        records: Vec<ProducerRecord>,
    ) -> Result<Vec<Offset>, LogError> {
        self.inner.append(topic, partition, records)
    }

    async fn read(
        &self,
        topic: &str,
        partition: u32,
        from: Offset,
        max_records: usize,
    ) -> Result<Vec<StoredRecord>, LogError> {
        self.inner.partition(topic, partition)?.read(from, max_records)
    }

    async fn high_watermark(&self, topic: &str, partition: u32) -> Result<Offset, LogError> {
        self.inner.partition(topic, partition)?.high_watermark()
    }

    async fn log_start(&self, topic: &str, partition: u32) -> Result<Offset, LogError> {
        Ok(self.inner.partition(topic, partition)?.log_start())
    }

    async fn commit(
        &self,
        group: &str,
        offsets: &[(TopicPartition, Offset)],
    ) -> Result<(), LogError> {
        if self.inner.config.read_only {
            return Err(self.inner.read_only_err());
        }
        for (tp, _) in offsets {
            self.inner.partition(&tp.topic, tp.partition)?;
        }
        self.inner.groups.commit(group, offsets)
    }

    async fn committed(
        &self,
        group: &str,
        tp: &TopicPartition,
    ) -> Result<Option<Offset>, LogError> {
        self.inner.partition(&tp.topic, tp.partition)?;
        self.inner.groups.committed(group, tp)
    }

    async fn flush(&self) -> Result<(), LogError> {
        if self.inner.config.read_only {
            return Ok(());
        }
        self.inner.sync_dirty()
    }
}
