//! Avro Parsing Canonical Form (spec §"Parsing Canonical Form for Schemas"),
//! computed from the schema's JSON. The fingerprint in every event header is
//! the CRC-64-AVRO of this text, so it must match what Java, fastavro and
//! other libraries compute byte for byte.
//!
//! Why not apache-avro's `canonical_form()`: in 0.21 it strips `logicalType`
//! but leaves `{"type":"string"}` instead of `"string"`, so schemas with
//! logical types (our `uuid` and `timestamp-micros` fields) get a fingerprint
//! no other implementation agrees with.
//!
//! Rules applied: [PRIMITIVES] primitives in simple form; [FULLNAMES] names
//! made full with the enclosing namespace; [STRIP] only name, type, fields,
//! symbols, items, values, size kept; [ORDER] in that order; [STRINGS] JSON
//! escapes; [WHITESPACE] none. A named type is written in full once; later
//! references are its full name.

use std::collections::HashSet;

use serde_json::Value;

const PRIMITIVES: &[&str] = &[
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

/// The Parsing Canonical Form of a schema given as JSON.
pub fn parsing_canonical_form(schema: &Value) -> String {
    let mut out = String::with_capacity(4096);
    write(schema, "", &mut HashSet::new(), &mut out);
    out
}

fn quote(s: &str, out: &mut String) {
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\"")));
}

fn full_name(name: &str, namespace: &str) -> String {
    if name.contains('.') || namespace.is_empty() {
        name.to_string()
    } else {
        format!("{namespace}.{name}")
    }
}

fn write(v: &Value, ns: &str, defined: &mut HashSet<String>, out: &mut String) {
    match v {
        Value::String(s) if PRIMITIVES.contains(&s.as_str()) => quote(s, out),
        Value::String(s) => quote(&full_name(s, ns), out),
        Value::Array(branches) => {
            out.push('[');
            for (i, b) in branches.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(b, ns, defined, out);
            }
            out.push(']');
        }
        Value::Object(o) => {
            let ty = o.get("type");
            match ty.and_then(Value::as_str) {
                Some(t) if PRIMITIVES.contains(&t) => quote(t, out),
                Some(t @ ("record" | "error" | "enum" | "fixed")) => {
                    let name = o.get("name").and_then(Value::as_str).unwrap_or_default();
                    let own_ns = o.get("namespace").and_then(Value::as_str).unwrap_or(ns);
                    let full = full_name(name, own_ns);
                    // The namespace of a full name governs its nested types.
                    let inner_ns = full
                        .rsplit_once('.')
                        .map(|(n, _)| n)
                        .unwrap_or("")
                        .to_string();
                    if !defined.insert(full.clone()) {
                        quote(&full, out);
                        return;
                    }
                    out.push_str("{\"name\":");
                    quote(&full, out);
                    out.push_str(",\"type\":");
                    quote(if t == "error" { "error" } else { t }, out);
                    match t {
                        "enum" => {
                            out.push_str(",\"symbols\":[");
                            let symbols = o
                                .get("symbols")
                                .and_then(Value::as_array)
                                .cloned()
                                .unwrap_or_default();
                            for (i, s) in symbols.iter().enumerate() {
                                if i > 0 {
                                    out.push(',');
                                }
                                quote(s.as_str().unwrap_or_default(), out);
                            }
                            out.push(']');
                        }
                        "fixed" => {
                            let size = o.get("size").and_then(Value::as_u64).unwrap_or(0);
                            out.push_str(&format!(",\"size\":{size}"));
                        }
                        _ => {
                            out.push_str(",\"fields\":[");
                            let fields = o
                                .get("fields")
                                .and_then(Value::as_array)
                                .cloned()
                                .unwrap_or_default();
                            for (i, f) in fields.iter().enumerate() {
                                if i > 0 {
                                    out.push(',');
                                }
                                out.push_str("{\"name\":");
                                quote(
                                    f.get("name").and_then(Value::as_str).unwrap_or_default(),
                                    out,
                                );
                                out.push_str(",\"type\":");
                                write(
                                    f.get("type").unwrap_or(&Value::Null),
                                    &inner_ns,
                                    defined,
                                    out,
                                );
                                out.push('}');
                            }
                            out.push(']');
                        }
                    }
                    out.push('}');
                }
                Some("array") => {
                    out.push_str("{\"type\":\"array\",\"items\":");
                    write(o.get("items").unwrap_or(&Value::Null), ns, defined, out);
                    out.push('}');
                }
                Some("map") => {
                    out.push_str("{\"type\":\"map\",\"values\":");
                    write(o.get("values").unwrap_or(&Value::Null), ns, defined, out);
                    out.push('}');
                }
                // A reference by name in object form, or a nested type object.
                Some(other) => quote(&full_name(other, ns), out),
                None => write(ty.unwrap_or(&Value::Null), ns, defined, out),
            }
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::rabin::fingerprint;

    /// Vector computed with fastavro 1.x (`to_parsing_canonical_form`,
    /// `fingerprint(…, "CRC-64-AVRO")`), an independent implementation.
    #[test]
    fn matches_fastavro_including_logical_types() {
        let schema: Value = serde_json::from_str(
            r#"{"type":"record","name":"R","namespace":"n.s","fields":[
                {"name":"id","type":{"type":"string","logicalType":"uuid"},"doc":"x"},
                {"name":"t","type":{"type":"long","logicalType":"timestamp-micros"}},
                {"name":"o","type":["null",{"type":"string","logicalType":"uuid"}],"default":null},
                {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"],"default":"A"}},
                {"name":"f","type":{"type":"fixed","name":"F","size":4}},
                {"name":"m","type":{"type":"map","values":"E"}},
                {"name":"a","type":{"type":"array","items":{"type":"record","name":"Inner","namespace":"other","fields":[{"name":"x","type":"int"}]}}}]}"#,
        )
        .unwrap();
        let pcf = parsing_canonical_form(&schema);
        assert_eq!(
            pcf,
            r#"{"name":"n.s.R","type":"record","fields":[{"name":"id","type":"string"},{"name":"t","type":"long"},{"name":"o","type":["null","string"]},{"name":"e","type":{"name":"n.s.E","type":"enum","symbols":["A","B"]}},{"name":"f","type":{"name":"n.s.F","type":"fixed","size":4}},{"name":"m","type":{"type":"map","values":"n.s.E"}},{"name":"a","type":{"type":"array","items":{"name":"other.Inner","type":"record","fields":[{"name":"x","type":"int"}]}}}]}"#
        );
        // fastavro prints the fingerprint's little-endian bytes: 8494612112844d18.
        assert_eq!(
            fingerprint(pcf.as_bytes()).to_le_bytes(),
            [0x84, 0x94, 0x61, 0x21, 0x12, 0x84, 0x4d, 0x18]
        );
    }

    #[test]
    fn agrees_with_apache_avro_without_logical_types() {
        let text = r#"{"type":"record","name":"A","fields":[{"name":"x","type":{"type":"array","items":"long"}},{"name":"u","type":["null",{"type":"enum","name":"K","symbols":["P"]}]}]}"#;
        let ours = parsing_canonical_form(&serde_json::from_str(text).unwrap());
        let theirs = apache_avro::Schema::parse_str(text)
            .unwrap()
            .canonical_form();
        assert_eq!(ours, theirs);
    }
}
