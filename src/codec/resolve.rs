//! Avro schema resolution as a transcoder: reads a datum written with an
//! older writer schema and writes the same datum in the reader (current)
//! schema's binary form, which the fast path then decodes.
//!
//! Rules (Avro spec, "Schema Resolution"): record fields match by name (or
//! reader alias); writer-only fields are skipped; reader-only fields take
//! their default. Enum symbols match by name (else the reader's enum
//! default). Union branches match by *name* for named types and by type for
//! the rest, with the numeric promotions int→long→float→double and
//! string↔bytes. apache-avro's own `Value::resolve` picks the first union
//! branch that structurally fits, which confuses records sharing field
//! names; this module exists to get that right.
//!
//! Named types match by name or by one of the reader's aliases.
//!
//! Invariant: like the fast decoder, every read is bounds-checked; hostile
//! input yields an error, never a panic or an oversized allocation.

use std::collections::HashMap;

use apache_avro::schema::{RecordSchema, Schema, UnionSchema};
use serde_json::Value as Json;

use super::binary::de::{DatumError, Decoder};
use super::binary::write_long;

/// Named types of a schema by short and full name.
struct Names<'s>(HashMap<String, &'s Schema>);

impl<'s> Names<'s> {
    fn of(schema: &'s Schema) -> Self {
        let mut names = Names(HashMap::new());
        names.collect(schema);
        names
    }

    fn collect(&mut self, s: &'s Schema) {
        let name = match s {
            Schema::Record(r) => Some(&r.name),
            Schema::Enum(e) => Some(&e.name),
            Schema::Fixed(f) => Some(&f.name),
            _ => None,
        };
        if let Some(n) = name {
            if self.0.insert(n.name.clone(), s).is_some() {
                return;
            }
            self.0.insert(n.fullname(None), s);
        }
        match s {
            Schema::Record(r) => r.fields.iter().for_each(|f| self.collect(&f.schema)),
            Schema::Array(a) => self.collect(&a.items),
            Schema::Map(m) => self.collect(&m.types),
            Schema::Union(u) => u.variants().iter().for_each(|v| self.collect(v)),
            _ => {}
        }
    }

    fn deref(&self, s: &'s Schema) -> &'s Schema {
        match s {
            Schema::Ref { name } => self
                .0
                .get(&name.name)
                .or_else(|| self.0.get(&name.fullname(None)))
                .copied()
                .unwrap_or(s),
            _ => s,
        }
    }
}

/// Transcodes `input` (one datum in `writer`) into `reader`'s encoding.
/// Returns the new bytes and how many input bytes the datum used.
pub fn transcode(
    writer: &Schema,
    reader: &Schema,
    input: &[u8],
) -> Result<(Vec<u8>, usize), DatumError> {
    let t = Transcoder {
        wn: Names::of(writer),
        rn: Names::of(reader),
    };
    let mut d = Decoder { input, pos: 0 };
    let mut out = Vec::with_capacity(input.len() + 16);
    t.value(writer, reader, &mut d, &mut out, 0)?;
    Ok((out, d.pos))
}

struct Transcoder<'w, 'r> {
    wn: Names<'w>,
    rn: Names<'r>,
}

/// Schemas nest a few levels; anything deeper is hostile or a bug.
const MAX_DEPTH: usize = 64;

fn short_name(s: &Schema) -> Option<&str> {
    match s {
        Schema::Record(r) => Some(&r.name.name),
        Schema::Enum(e) => Some(&e.name.name),
        Schema::Fixed(f) => Some(&f.name.name),
        _ => None,
    }
}

/// Short names a reader's named type also answers to (its aliases).
fn aliases(s: &Schema) -> Vec<String> {
    let list = match s {
        Schema::Record(r) => r.aliases.as_ref(),
        Schema::Enum(e) => e.aliases.as_ref(),
        Schema::Fixed(f) => f.aliases.as_ref(),
        _ => None,
    };
    list.map(|a| a.iter().map(|x| x.name()).collect())
        .unwrap_or_default()
}

/// The primitive kind a schema is encoded as (logical types by their base).
fn base(s: &Schema) -> &'static str {
    match s {
        Schema::Null => "null",
        Schema::Boolean => "boolean",
        Schema::Int | Schema::Date | Schema::TimeMillis => "int",
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => "long",
        Schema::Float => "float",
        Schema::Double => "double",
        Schema::Bytes | Schema::Decimal(_) | Schema::BigDecimal => "bytes",
        Schema::String | Schema::Uuid => "string",
        Schema::Array(_) => "array",
        Schema::Map(_) => "map",
        Schema::Union(_) => "union",
        Schema::Record(_) => "record",
        Schema::Enum(_) => "enum",
        Schema::Fixed(_) | Schema::Duration => "fixed",
        Schema::Ref { .. } => "ref",
    }
}

fn promotable(w: &str, r: &str) -> bool {
    w == r
        || matches!(
            (w, r),
            ("int", "long" | "float" | "double")
                | ("long", "float" | "double")
                | ("float", "double")
                | ("string", "bytes")
                | ("bytes", "string")
        )
}

impl<'w, 'r> Transcoder<'w, 'r> {
    fn matches(&self, w: &Schema, r: &Schema) -> bool {
        let (w, r) = (self.wn.deref(w), self.rn.deref(r));
        match (short_name(w), short_name(r)) {
            (Some(a), Some(b)) => {
                (a == b || aliases(r).iter().any(|x| x == a)) && base(w) == base(r)
            }
            (None, None) => match (w, r) {
                (Schema::Array(a), Schema::Array(b)) => self.matches(&a.items, &b.items),
                (Schema::Map(a), Schema::Map(b)) => self.matches(&a.types, &b.types),
                _ => promotable(base(w), base(r)),
            },
            _ => false,
        }
    }

    fn value(
        &self,
        w: &'w Schema,
        r: &'r Schema,
        d: &mut Decoder,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), DatumError> {
        if depth > MAX_DEPTH {
            return Err(d.invalid("schema nesting too deep"));
        }
        let (w, r) = (self.wn.deref(w), self.rn.deref(r));
        match (w, r) {
            (Schema::Union(wu), _) => {
                let branch = d.read_branch(wu.variants().len())?;
                let wb = &wu.variants()[branch];
                self.value(wb, r, d, out, depth + 1)
            }
            (_, Schema::Union(ru)) => {
                let (i, rb) = self.pick_branch(w, ru).ok_or_else(|| {
                    d.invalid(format!(
                        "no branch of the reader union matches writer type {}",
                        base(w)
                    ))
                })?;
                write_long(out, i as i64);
                self.value(w, rb, d, out, depth + 1)
            }
            (Schema::Record(_) | Schema::Enum(_) | Schema::Fixed(_), _) if !self.matches(w, r) => {
                Err(d.invalid(format!(
                    "writer type {} cannot be read as {}",
                    short_name(w).unwrap_or("?"),
                    short_name(r).unwrap_or(base(r))
                )))
            }
            (Schema::Record(wr), Schema::Record(rr)) => self.record(wr, rr, d, out, depth),
            (Schema::Enum(we), Schema::Enum(re)) => {
                let i = d.read_branch(we.symbols.len())?;
                let symbol = &we.symbols[i];
                let j = re
                    .symbols
                    .iter()
                    .position(|s| s == symbol)
                    .or_else(|| {
                        re.default
                            .as_ref()
                            .and_then(|def| re.symbols.iter().position(|s| s == def))
                    })
                    .ok_or_else(|| {
                        d.invalid(format!("enum symbol {symbol} unknown to the reader"))
                    })?;
                write_long(out, j as i64);
                Ok(())
            }
            (Schema::Array(wa), Schema::Array(ra)) => self.blocks(
                d,
                out,
                |t, d, out| t.value(&wa.items, &ra.items, d, out, depth + 1),
                false,
            ),
            (Schema::Map(wm), Schema::Map(rm)) => self.blocks(
                d,
                out,
                |t, d, out| t.value(&wm.types, &rm.types, d, out, depth + 1),
                true,
            ),
            (Schema::Fixed(wf), Schema::Fixed(rf)) if wf.size == rf.size => {
                out.extend_from_slice(d.take(wf.size)?);
                Ok(())
            }
            _ => self.primitive(base(w), base(r), d, out),
        }
    }

    fn pick_branch<'a>(&self, w: &Schema, ru: &'a UnionSchema) -> Option<(usize, &'a Schema)> {
        let variants = ru.variants();
        // An exact match first, then a promotion, as the spec orders it.
        variants
            .iter()
            .position(|rb| self.matches(w, rb) && base(self.wn.deref(w)) == base(self.rn.deref(rb)))
            .or_else(|| variants.iter().position(|rb| self.matches(w, rb)))
            .map(|i| (i, &variants[i]))
    }

    fn primitive(
        &self,
        w: &str,
        r: &str,
        d: &mut Decoder,
        out: &mut Vec<u8>,
    ) -> Result<(), DatumError> {
        if !promotable(w, r) {
            return Err(d.invalid(format!("writer type {w} cannot be read as {r}")));
        }
        match (w, r) {
            ("null", _) => Ok(()),
            ("boolean", _) => {
                let b = d.take(1)?[0];
                if b > 1 {
                    return Err(d.invalid(format!("boolean byte {b:#04x}")));
                }
                out.push(b);
                Ok(())
            }
            ("int", "int") | ("int", "long") | ("long", "long") => {
                let v = if w == "int" {
                    d.read_int()? as i64
                } else {
                    d.read_long()?
                };
                write_long(out, v);
                Ok(())
            }
            ("int" | "long", "float" | "double") => {
                let v = if w == "int" {
                    d.read_int()? as f64
                } else {
                    d.read_long()? as f64
                };
                if r == "float" {
                    out.extend_from_slice(&(v as f32).to_le_bytes());
                } else {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                Ok(())
            }
            ("float", "float") => {
                out.extend_from_slice(d.take(4)?);
                Ok(())
            }
            ("float", "double") => {
                let b = d.take(4)?;
                let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64;
                out.extend_from_slice(&v.to_le_bytes());
                Ok(())
            }
            ("double", "double") => {
                out.extend_from_slice(d.take(8)?);
                Ok(())
            }
            ("string", _) => {
                let s = d.read_str()?;
                write_long(out, s.len() as i64);
                out.extend_from_slice(s.as_bytes());
                Ok(())
            }
            ("bytes", _) => {
                let len = d.read_len("bytes length")?;
                let b = d.take(len)?;
                if r == "string" && std::str::from_utf8(b).is_err() {
                    return Err(d.invalid("bytes read as string are not UTF-8"));
                }
                write_long(out, len as i64);
                out.extend_from_slice(b);
                Ok(())
            }
            _ => Err(d.invalid(format!("writer type {w} cannot be read as {r}"))),
        }
    }

    fn blocks(
        &self,
        d: &mut Decoder,
        out: &mut Vec<u8>,
        mut item: impl FnMut(&Self, &mut Decoder, &mut Vec<u8>) -> Result<(), DatumError>,
        keyed: bool,
    ) -> Result<(), DatumError> {
        loop {
            let n = d.read_block_count()?;
            if n == 0 {
                out.push(0);
                return Ok(());
            }
            write_long(out, n as i64);
            for _ in 0..n {
                if keyed {
                    self.primitive("string", "string", d, out)?;
                }
                item(self, d, out)?;
            }
        }
    }

    fn record(
        &self,
        wr: &'w RecordSchema,
        rr: &'r RecordSchema,
        d: &mut Decoder,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), DatumError> {
        // Writer order on the wire, reader order in the output: transcode each
        // kept field into its own buffer, then emit in reader order.
        let mut parts: Vec<Option<Vec<u8>>> = vec![None; rr.fields.len()];
        for wf in &wr.fields {
            let reader_field = rr.fields.iter().position(|rf| {
                rf.name == wf.name || rf.aliases.as_ref().is_some_and(|a| a.contains(&wf.name))
            });
            match reader_field {
                Some(i) => {
                    let mut buf = Vec::new();
                    self.value(&wf.schema, &rr.fields[i].schema, d, &mut buf, depth + 1)?;
                    parts[i] = Some(buf);
                }
                None => {
                    // Skipped field: transcode into a scratch buffer as itself.
                    let mut scratch = Vec::new();
                    let skip = Transcoder {
                        wn: Names(self.wn.0.clone()),
                        rn: Names(self.wn.0.clone()),
                    };
                    skip.value(&wf.schema, &wf.schema, d, &mut scratch, depth + 1)?;
                }
            }
        }
        for (rf, part) in rr.fields.iter().zip(parts) {
            match part {
                Some(bytes) => out.extend_from_slice(&bytes),
                None => {
                    let default = rf.default.as_ref().ok_or_else(|| {
                        d.invalid(format!(
                            "reader field {}.{} is missing in the writer data and has no default",
                            rr.name.name, rf.name
                        ))
                    })?;
                    self.default(&rf.schema, default, out)
                        .map_err(|m| d.invalid(format!("default of {}: {m}", rf.name)))?;
                }
            }
        }
        Ok(())
    }

    /// Encodes a JSON field default in the reader schema.
    fn default(&self, s: &'r Schema, v: &Json, out: &mut Vec<u8>) -> Result<(), String> {
        let s = self.rn.deref(s);
        match (s, v) {
            (Schema::Union(u), _) => {
                let first = u.variants().first().ok_or("empty union")?;
                out.push(0);
                self.default(first, v, out)
            }
            (Schema::Null, Json::Null) => Ok(()),
            (Schema::Boolean, Json::Bool(b)) => {
                out.push(*b as u8);
                Ok(())
            }
            (Schema::Record(r), Json::Object(o)) => {
                for f in &r.fields {
                    let fv = o
                        .get(&f.name)
                        .or(f.default.as_ref())
                        .ok_or_else(|| format!("no value for {}", f.name))?;
                    self.default(&f.schema, fv, out)?;
                }
                Ok(())
            }
            (Schema::Enum(e), Json::String(sym)) => {
                let i = e
                    .symbols
                    .iter()
                    .position(|x| x == sym)
                    .ok_or("unknown symbol")?;
                write_long(out, i as i64);
                Ok(())
            }
            (Schema::Array(a), Json::Array(items)) => {
                if !items.is_empty() {
                    write_long(out, items.len() as i64);
                    for i in items {
                        self.default(&a.items, i, out)?;
                    }
                }
                out.push(0);
                Ok(())
            }
            (Schema::Map(m), Json::Object(o)) => {
                if !o.is_empty() {
                    write_long(out, o.len() as i64);
                    for (k, val) in o {
                        write_long(out, k.len() as i64);
                        out.extend_from_slice(k.as_bytes());
                        self.default(&m.types, val, out)?;
                    }
                }
                out.push(0);
                Ok(())
            }
            (_, Json::Number(n)) => match base(s) {
                "int" | "long" => {
                    write_long(out, n.as_i64().ok_or("not an integer")?);
                    Ok(())
                }
                "float" => {
                    out.extend_from_slice(
                        &(n.as_f64().ok_or("not a number")? as f32).to_le_bytes(),
                    );
                    Ok(())
                }
                "double" => {
                    out.extend_from_slice(&n.as_f64().ok_or("not a number")?.to_le_bytes());
                    Ok(())
                }
                other => Err(format!("number default for {other}")),
            },
            (_, Json::String(text)) if base(s) == "string" => {
                write_long(out, text.len() as i64);
                out.extend_from_slice(text.as_bytes());
                Ok(())
            }
            // Bytes and fixed defaults are ISO-8859-1 text: one char per byte.
            (_, Json::String(text)) if matches!(base(s), "bytes" | "fixed") => {
                let bytes: Vec<u8> = text
                    .chars()
                    .map(|c| {
                        u8::try_from(u32::from(c))
                            .map_err(|_| format!("default char {c:?} is not ISO-8859-1"))
                    })
                    .collect::<Result<_, _>>()?;
                match s {
                    Schema::Fixed(f) if f.size != bytes.len() => {
                        return Err(format!(
                            "fixed default has {} bytes, not {}",
                            bytes.len(),
                            f.size
                        ))
                    }
                    Schema::Fixed(_) | Schema::Duration => {}
                    _ => write_long(out, bytes.len() as i64),
                }
                out.extend_from_slice(&bytes);
                Ok(())
            }
            _ => Err(format!("default {v} does not fit type {}", base(s))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(s: &str) -> Schema {
        Schema::parse_str(s).unwrap()
    }

    fn run(w: &str, r: &str, datum: &[u8]) -> Result<Vec<u8>, DatumError> {
        transcode(&schema(w), &schema(r), datum).map(|(out, used)| {
            assert_eq!(used, datum.len());
            out
        })
    }

    const TWO: &str = r#"[{"type":"record","name":"A","fields":[{"name":"x","type":"int"}]},
                          {"type":"record","name":"B","fields":[{"name":"x","type":"int"}]}]"#;

    #[test]
    fn union_branches_match_by_record_name_not_shape() {
        let reader = r#"[{"type":"record","name":"B","fields":[{"name":"x","type":"int"}]},
                         {"type":"record","name":"A","fields":[{"name":"x","type":"int"}]}]"#;
        // Writer branch 1 (B, x=3) is reader branch 0.
        assert_eq!(run(TWO, reader, &[2, 6]).unwrap(), vec![0, 6]);
    }

    #[test]
    fn promotions_defaults_and_enum_symbols() {
        let w = r#"{"type":"record","name":"R","fields":[{"name":"n","type":"int"},
                   {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}}]}"#;
        let r = r#"{"type":"record","name":"R","fields":[
                   {"name":"e","type":{"type":"enum","name":"E","symbols":["B","A"]}},
                   {"name":"n","type":"long"},
                   {"name":"b","type":"bytes","default":"\u00ff"},
                   {"name":"s","type":["null","string"],"default":null}]}"#;
        // n=1 (int), e=B (index 1) → e=B (reader index 0), n=1 (long), b=[FF], s=null.
        assert_eq!(run(w, r, &[2, 2]).unwrap(), vec![0, 2, 2, 0xff, 0]);
    }

    #[test]
    fn renamed_records_need_an_alias() {
        let w = r#"{"type":"record","name":"Old","fields":[{"name":"x","type":"int"}]}"#;
        let aliased = r#"{"type":"record","name":"New","aliases":["Old"],"fields":[{"name":"x","type":"int"}]}"#;
        assert_eq!(run(w, aliased, &[4]).unwrap(), vec![4]);
        let unrelated = r#"{"type":"record","name":"New","fields":[{"name":"x","type":"int"}]}"#;
        let err = run(w, unrelated, &[4]).unwrap_err();
        assert!(
            format!("{err:?}").contains("cannot be read as New"),
            "{err:?}"
        );
    }

    #[test]
    fn missing_field_without_default_is_an_error() {
        let w = r#"{"type":"record","name":"R","fields":[]}"#;
        let r = r#"{"type":"record","name":"R","fields":[{"name":"x","type":"int"}]}"#;
        assert!(run(w, r, &[]).is_err());
    }
}
