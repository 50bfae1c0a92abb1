//! The schema registry: every known version of the envelope schema, keyed by
//! fingerprint, plus the catalog of event types. Built from the `.avsc` files
//! embedded at compile time (see `build.rs`).
//!
//! - The **current** envelope is assembled from `schemas/envelope.avsc` and
//!   the named types it references (`common/`, `ingress/`, `journal/`,
//!   `results/`), inlined at first use into one self-contained schema, so
//!   any Avro library computes the same fingerprint from the bundle.
//! - Every envelope version that ever wrote data is frozen, bundled, under
//!   `schemas/history/envelope.vN.avsc`. Invariant (tested): the current
//!   bundle equals the newest frozen version, and the current schema can read
//!   every frozen one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use apache_avro::Schema;
use serde_json::{Map, Value};

use super::error::SchemaError;
use super::{canonical, rabin};

include!(concat!(env!("OUT_DIR"), "/schema_files.rs"));

/// One version of the envelope schema.
#[derive(Debug)]
pub struct EnvelopeVersion {
    /// `current` or the history file stem, e.g. `envelope.v1`.
    pub label: String,
    pub schema: Schema,
    pub canonical_form: String,
    pub fingerprint: u64,
}

/// A named type in the catalog (records and enums of the current schema).
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    pub name: String,
    /// `record` or `enum`.
    pub kind: String,
    /// File under `schemas/`.
    pub file: String,
    pub doc: String,
    /// Field names and docs (records) or symbols (enums).
    pub members: Vec<(String, String)>,
}

/// All envelope versions and the event catalog.
#[derive(Debug)]
pub struct SchemaRegistry {
    current: Arc<EnvelopeVersion>,
    versions: HashMap<u64, Arc<EnvelopeVersion>>,
    bundle: Value,
    catalog: Vec<CatalogEntry>,
}

impl SchemaRegistry {
    /// The registry of the schemas compiled into this binary (built once).
    pub fn builtin() -> Result<Arc<SchemaRegistry>, SchemaError> {
        static BUILTIN: OnceLock<Result<Arc<SchemaRegistry>, String>> = OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                SchemaRegistry::from_files(SCHEMA_FILES)
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(|reason| SchemaError::Avro {
                what: "built-in schemas".into(),
                reason,
            })
    }

    /// Builds a registry from `(path, contents)` pairs laid out like `schemas/`.
    pub fn from_files(files: &[(&str, &str)]) -> Result<SchemaRegistry, SchemaError> {
        let mut named: BTreeMap<String, (String, Value)> = BTreeMap::new();
        let mut history = Vec::new();
        let mut envelope = None;
        for (path, text) in files {
            let json: Value = serde_json::from_str(text).map_err(|e| SchemaError::Json {
                file: path.to_string(),
                reason: e.to_string(),
            })?;
            if path.starts_with("history/") {
                history.push((path.to_string(), json));
                continue;
            }
            if *path == "envelope.avsc" {
                envelope = Some(json.clone());
            }
            let name = json
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| SchemaError::Unnamed {
                    file: path.to_string(),
                })?
                .to_string();
            if let Some((first, _)) = named.get(&name) {
                return Err(SchemaError::Duplicate {
                    name,
                    first: first.clone(),
                    second: path.to_string(),
                });
            }
            named.insert(name, (path.to_string(), json));
        }
        let envelope = envelope.ok_or_else(|| SchemaError::Avro {
            what: "envelope.avsc".into(),
            reason: "missing".into(),
        })?;

        let mut defined = HashSet::new();
        let bundle = inline(&envelope, &named, &mut defined);
        let current = Arc::new(version("current", &bundle)?);
        let catalog = named
            .iter()
            .map(|(name, (file, json))| catalog_entry(name, file, json))
            .collect();

        let mut versions = HashMap::new();
        versions.insert(current.fingerprint, current.clone());
        for (path, json) in history {
            let label = path
                .trim_start_matches("history/")
                .trim_end_matches(".avsc")
                .to_string();
            let v = Arc::new(version(&label, &json)?);
            // The newest frozen version normally equals the current one; keep
            // the `current` entry for it.
            versions.entry(v.fingerprint).or_insert(v);
        }
        Ok(SchemaRegistry {
            current,
            versions,
            bundle,
            catalog,
        })
    }

    /// The envelope schema this build reads and writes.
    pub fn current(&self) -> &Arc<EnvelopeVersion> {
        &self.current
    }

    /// A known envelope version by fingerprint.
    pub fn version(&self, fingerprint: u64) -> Option<&Arc<EnvelopeVersion>> {
        self.versions.get(&fingerprint)
    }

    /// Every known version, current first, then by label.
    pub fn versions(&self) -> Vec<&Arc<EnvelopeVersion>> {
        let mut v: Vec<_> = self.versions.values().collect();
        v.sort_by_key(|x| (x.fingerprint != self.current.fingerprint, x.label.clone()));
        v
    }

    /// The self-contained current envelope schema, pretty-printed JSON (what
    /// to give other Avro libraries, and what gets frozen into `history/`).
    pub fn bundle_json(&self) -> String {
        serde_json::to_string_pretty(&self.bundle).unwrap_or_default()
    }

    /// The named types of the current schema, sorted by name.
    pub fn catalog(&self) -> &[CatalogEntry] {
        &self.catalog
    }
}

fn version(label: &str, json: &Value) -> Result<EnvelopeVersion, SchemaError> {
    let schema = Schema::parse(json).map_err(|e| SchemaError::Avro {
        what: label.to_string(),
        reason: e.to_string(),
    })?;
    let canonical_form = canonical::parsing_canonical_form(json);
    Ok(EnvelopeVersion {
        label: label.to_string(),
        fingerprint: rabin::fingerprint(canonical_form.as_bytes()),
        canonical_form,
        schema,
    })
}

/// Replaces the first reference to each named type with its definition.
fn inline(
    v: &Value,
    named: &BTreeMap<String, (String, Value)>,
    defined: &mut HashSet<String>,
) -> Value {
    match v {
        Value::String(s) => match named.get(s.trim_start_matches("baton.")) {
            Some((_, def)) if !defined.contains(s.trim_start_matches("baton.")) => {
                inline(def, named, defined)
            }
            _ => v.clone(),
        },
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| inline(i, named, defined)).collect())
        }
        Value::Object(obj) => {
            if let Some(name) = obj.get("name").and_then(Value::as_str) {
                if matches!(
                    obj.get("type").and_then(Value::as_str),
                    Some("record" | "enum" | "fixed")
                ) {
                    defined.insert(name.to_string());
                }
            }
            let mut out = Map::new();
            for (k, val) in obj {
                let val = match k.as_str() {
                    "type" | "items" | "values" => inline(val, named, defined),
                    "fields" => match val {
                        Value::Array(fields) => Value::Array(
                            fields
                                .iter()
                                .map(|f| match f {
                                    Value::Object(fo) => {
                                        let mut fo = fo.clone();
                                        if let Some(t) = fo.get("type").cloned() {
                                            fo.insert("type".into(), inline(&t, named, defined));
                                        }
                                        Value::Object(fo)
                                    }
                                    other => other.clone(),
                                })
                                .collect(),
                        ),
                        other => other.clone(),
                    },
                    _ => val.clone(),
                };
                out.insert(k.clone(), val);
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

fn catalog_entry(name: &str, file: &str, json: &Value) -> CatalogEntry {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
    let kind = text(json.get("type"));
    let members = match kind.as_str() {
        "record" => json
            .get("fields")
            .and_then(Value::as_array)
            .map(|fs| {
                fs.iter()
                    .map(|f| (text(f.get("name")), text(f.get("doc"))))
                    .collect()
            })
            .unwrap_or_default(),
        "enum" => json
            .get("symbols")
            .and_then(Value::as_array)
            .map(|ss| {
                ss.iter()
                    .map(|s| (s.as_str().unwrap_or_default().to_string(), String::new()))
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    CatalogEntry {
        name: name.to_string(),
        kind,
        file: file.to_string(),
        doc: text(json.get("doc")),
        members,
    }
}
