//! The state behind an `EmbeddedLog`: the writer's lock, the topic table
//! (loaded from `topic.json` files, created on demand), the partitions and
//! the consumer groups, with the plain blocking operations the async trait
//! methods delegate to.
//!
//! Invariants:
//! - A writer's `Store` holds the flock on `<root>/LOCK` for its whole life;
//!   dropping the store closes the file, which releases it.
//! - A topic is in the table only once its `topic.json` is durable, and its
//!   partition count never changes.
//! - A read-only store never creates, writes or truncates anything; it
//!   loads topics another process created when asked about them.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::config::{EmbeddedConfig, FsyncPolicy};
use super::files::{sync_dir, validate_topic_name, write_atomic};
use super::format;
use super::groups::Groups;
use super::partition::Partition;
use crate::log::{LogError, Offset, ProducerRecord, TopicPartition, TopicSpec};

/// The contents of `topic.json`.
#[derive(Serialize, Deserialize)]
struct TopicMeta {
    partitions: u32,
    compacted: bool,
}

pub(crate) struct Topic {
    pub spec: TopicSpec,
    pub partitions: Vec<Arc<Partition>>,
}

pub(crate) struct Store {
    pub config: EmbeddedConfig,
    topics_dir: PathBuf,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    pub groups: Groups,
    /// Held (flocked) for the life of a writer; closing it releases the lock.
    _lock: Option<File>,
}

/// In a topic directory: how many partition directories it has and a
/// segment file holding bytes, if any does (a topic that held records).
fn first_records(dir: &Path) -> Result<Option<(usize, PathBuf)>, LogError> {
    let list = |d: &Path| -> Result<Vec<fs::DirEntry>, LogError> {
        match fs::read_dir(d) {
            Ok(rd) => rd
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| LogError::io(format!("list {}", d.display()), e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(LogError::io(format!("list {}", d.display()), e)),
        }
    };
    let mut partitions = 0;
    let mut found = None;
    for p in list(dir)? {
        let is_partition = p
            .file_name()
            .to_str()
            .is_some_and(|n| n.parse::<u32>().is_ok());
        if !is_partition || !p.path().is_dir() {
            continue;
        }
        partitions += 1;
        for f in list(&p.path())? {
            let path = f.path();
            let seg = path.extension().is_some_and(|e| e == "seg");
            if found.is_none() && seg && f.metadata().is_ok_and(|m| m.len() > 0) {
                found = Some(path);
            }
        }
    }
    Ok(found.map(|f| (partitions, f)))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Takes the writer's exclusive lock on `<root>/LOCK` and records our pid
/// in it, so a second writer's error can say who holds it.
pub(crate) fn take_lock(root: &Path) -> Result<File, LogError> {
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

impl Store {
    /// Opens the directory: takes the lock and creates the layout
    /// (writer) or checks that it exists (read-only), then loads and
    /// recovers every topic.
    pub fn open(config: EmbeddedConfig) -> Result<Self, LogError> {
        let root = config.root.clone();
        let topics_dir = root.join("topics");
        let groups_dir = root.join("groups");
        let lock = if config.read_only {
            if !root.is_dir() {
                return Err(LogError::io(
                    format!("open log {} read-only", root.display()),
                    io::Error::new(io::ErrorKind::NotFound, "no log has been written there yet (check --data-dir, or run `baton produce` or `baton demo` first)"),
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
            // Make the new directory entries themselves durable.
            sync_dir(&root)?;
            if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
            Some(lock)
        };
        let durable = config.fsync == FsyncPolicy::Always;
        let store = Store {
            groups: Groups::new(groups_dir, config.read_only, durable),
            topics: RwLock::new(BTreeMap::new()),
            topics_dir,
            config,
            _lock: lock,
        };
        store.load_new_topics()?;
        Ok(store)
    }

    pub fn read_only_err(&self) -> LogError {
        LogError::ReadOnly(self.config.root.display().to_string())
    }

    /// Loads a topic's metadata and partitions from disk; `None` if it has
    /// no `topic.json` and no records (never created, or creation
    /// interrupted). A topic directory whose `topic.json` is gone but whose
    /// partitions hold records lost its metadata: that is refused, never
    /// taken for a new topic (creating it again could drop partitions).
    fn load_topic(&self, name: &str) -> Result<Option<Topic>, LogError> {
        let dir = self.topics_dir.join(name);
        let meta_path = dir.join("topic.json");
        let bytes = match fs::read(&meta_path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return match first_records(&dir)? {
                    None => Ok(None),
                    Some((partitions, seg)) => Err(LogError::Corrupt {
                        path: meta_path.display().to_string(),
                        position: 0,
                        reason: format!(
                            "the topic's metadata file is missing, but its partitions hold records \
                             ({} has data; partition directories found: {partitions}): it was \
                             deleted or lost, and the topic is not created again over its data. \
                             Restore it, e.g. `{{\"partitions\": {partitions}, \"compacted\": false}}` \
                             (compacted only for the status topic)",
                            seg.display()
                        ),
                    }),
                };
            }
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
    pub fn load_new_topics(&self) -> Result<(), LogError> {
        let entries = match fs::read_dir(&self.topics_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(LogError::io(
                    format!("list {}", self.topics_dir.display()),
                    e,
                ))
            }
        };
        for entry in entries {
            let entry = entry
                .map_err(|e| LogError::io(format!("list {}", self.topics_dir.display()), e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if validate_topic_name(&name).is_err() || self.topics_read().contains_key(&name) {
                continue;
            }
            if let Some(topic) = self.load_topic(&name)? {
                self.topics_write()
                    .entry(name)
                    .or_insert_with(|| Arc::new(topic));
            }
        }
        Ok(())
    }

    fn topics_read(&self) -> RwLockReadGuard<'_, BTreeMap<String, Arc<Topic>>> {
        self.topics.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn topics_write(&self) -> RwLockWriteGuard<'_, BTreeMap<String, Arc<Topic>>> {
        self.topics.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn topic(&self, name: &str) -> Result<Arc<Topic>, LogError> {
        validate_topic_name(name)?;
        if let Some(t) = self.topics_read().get(name) {
            return Ok(t.clone());
        }
        if self.config.read_only {
            if let Some(topic) = self.load_topic(name)? {
                let mut topics = self.topics_write();
                return Ok(topics
                    .entry(name.to_string())
                    .or_insert_with(|| Arc::new(topic))
                    .clone());
            }
        }
        Err(LogError::UnknownTopic(name.to_string()))
    }

    pub fn partition(&self, topic: &str, partition: u32) -> Result<Arc<Partition>, LogError> {
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

    pub fn create_topic(&self, spec: &TopicSpec) -> Result<(), LogError> {
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
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a topic needs at least one partition",
                ),
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
        let json = serde_json::to_vec_pretty(&meta).map_err(|e| {
            LogError::io(
                format!("encode metadata of `{}`", spec.name),
                io::Error::other(e),
            )
        })?;
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

    pub fn list_topics(&self) -> Result<Vec<TopicSpec>, LogError> {
        if self.config.read_only {
            self.load_new_topics()?;
        }
        Ok(self
            .topics_read()
            .values()
            .map(|t| t.spec.clone())
            .collect())
    }

    pub fn append(
        &self,
        topic: &str,
        partition: u32,
        records: Vec<ProducerRecord>,
    ) -> Result<Vec<Offset>, LogError> {
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
    pub fn sync_dirty(&self) -> Result<(), LogError> {
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
