//! A small PromQL scanner for tests/docker_files.rs: finds the metric
//! names and label names of an expression (Grafana variables such as
//! `$__rate_interval` allowed) so the dashboard and the alert rules can be
//! checked against the metrics Baton defines. Not a parser: it only has to
//! tell metric names from functions, aggregations, keywords, labels,
//! strings and durations.

use std::collections::BTreeSet;

#[derive(Debug, Default, PartialEq)]
pub struct Scanned {
    /// Metric names with the label names of their matchers.
    pub selectors: Vec<(String, Vec<String>)>,
    /// Labels in by/without/on/ignoring/group_* clauses.
    pub grouping: BTreeSet<String>,
}

/// A small PromQL scanner: enough to find metric names (identifiers that
/// are not functions, keywords, labels, strings, durations or Grafana
/// variables) and label names.
pub fn scan_promql(expr: &str) -> Scanned {
    const GROUPING: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    const KEYWORDS: [&str; 8] = [
        "and", "or", "unless", "bool", "offset", "inf", "nan", "atan2",
    ];
    // Aggregation operators may be followed by `by (...)` instead of `(`.
    const AGGREGATIONS: [&str; 14] = [
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    ];
    let b: Vec<char> = expr.chars().collect();
    let mut out = Scanned::default();
    let mut i = 0;
    let skip_ws = |mut i: usize| {
        while i < b.len() && b[i].is_whitespace() {
            i += 1;
        }
        i
    };
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    while i < b.len() {
        let c = b[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&b, i);
        } else if c == '[' {
            while i < b.len() && b[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c == '{' {
            let (labels, end) = matchers(&b, i);
            out.selectors.extend(
                labels
                    .iter()
                    .filter(|(l, _)| l == "__name__")
                    .map(|(_, v)| (v.clone(), Vec::new())),
            );
            i = end;
        } else if c == '$' {
            i += 1;
            while i < b.len() && (is_ident(b[i]) || b[i] == '{' || b[i] == '}') {
                i += 1;
            }
        } else if c.is_ascii_digit() || c == '.' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '.') {
                i += 1;
            }
        } else if is_ident(c) {
            let start = i;
            while i < b.len() && is_ident(b[i]) {
                i += 1;
            }
            let word: String = b[start..i].iter().collect();
            let next = skip_ws(i);
            let lower = word.to_ascii_lowercase();
            if GROUPING.contains(&lower.as_str()) {
                if next < b.len() && b[next] == '(' {
                    let close = (next..b.len()).find(|&j| b[j] == ')').expect("unclosed (");
                    let inner: String = b[next + 1..close].iter().collect();
                    out.grouping.extend(
                        inner
                            .split(',')
                            .map(|s| s.trim().to_string())
                            .filter(|s| !s.is_empty()),
                    );
                    i = close + 1;
                }
            } else if KEYWORDS.contains(&lower.as_str())
                || AGGREGATIONS.contains(&lower.as_str())
                || (next < b.len() && b[next] == '(')
            {
                // An operator or a function / aggregation name.
            } else if next < b.len() && b[next] == '{' {
                let (labels, end) = matchers(&b, next);
                out.selectors
                    .push((word, labels.into_iter().map(|(l, _)| l).collect()));
                i = end;
            } else {
                out.selectors.push((word, Vec::new()));
            }
        } else {
            i += 1;
        }
    }
    out
}

fn skip_string(b: &[char], start: usize) -> usize {
    let quote = b[start];
    let mut i = start + 1;
    while i < b.len() && b[i] != quote {
        i += if b[i] == '\\' { 2 } else { 1 };
    }
    i + 1
}

/// The `(label, value)` matchers of `{...}` starting at `open`, and the
/// index after the closing brace.
fn matchers(b: &[char], open: usize) -> (Vec<(String, String)>, usize) {
    let mut out = Vec::new();
    let mut i = open + 1;
    let mut name = String::new();
    while i < b.len() && b[i] != '}' {
        let c = b[i];
        if c == '"' || c == '\'' || c == '`' {
            let end = skip_string(b, i);
            let value: String = b[i + 1..end - 1].iter().collect();
            out.push((name.trim().to_string(), value));
            name.clear();
            i = end;
        } else if c == ',' {
            name.clear();
            i += 1;
        } else {
            if !"=!~".contains(c) {
                name.push(c);
            }
            i += 1;
        }
    }
    (out, i + 1)
}

#[test]
fn the_promql_scanner_finds_metrics_and_labels_only() {
    let s = scan_promql(
        r#"histogram_quantile(0.99, sum by (le, instance) (rate(baton_decision_latency_seconds_bucket{job="baton", instance=~"a|b"}[$__rate_interval]))) > 1 and on (instance) up offset 5m or absent(up{job="x"}) * label_replace(vector(1), "dst", "$1", "src", "(.*)")"#,
    );
    assert_eq!(
        s.selectors,
        vec![
            (
                "baton_decision_latency_seconds_bucket".to_string(),
                vec!["job".to_string(), "instance".to_string()]
            ),
            ("up".to_string(), vec![]),
            ("up".to_string(), vec!["job".to_string()]),
        ]
    );
    assert_eq!(
        s.grouping,
        ["instance", "le"].iter().map(|s| s.to_string()).collect()
    );
    assert_eq!(
        scan_promql(r#"{__name__="baton_agents"}"#).selectors,
        vec![("baton_agents".to_string(), vec![])]
    );
}
