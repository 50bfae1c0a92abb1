//! Static checks of `docker/` (there is no Docker engine in CI): the compose
//! file references only files that exist and agrees with the Dockerfile,
//! `docker/baton.toml` and the Prometheus config on ports, names and
//! environment variables; the optional fleet sits behind a profile; the
//! Grafana dashboard and the alert rules name only metrics Baton exports
//! (`baton::telemetry::names`) and the provisioned datasource; and
//! `promtool` accepts the Prometheus config, the rules and their unit tests.
//! promtool comes from `BATON_TEST_PROMTOOL` or PATH; without it the test
//! fails with how to install it (tests/run.sh does).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use baton::telemetry::names::{Kind, ALL, PROCESS};
use serde_json::Value;

#[path = "docker_files/promql.rs"]
mod promql;
use promql::scan_promql;

fn docker_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docker")
}

fn read(rel: &str) -> String {
    let path = docker_dir().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A YAML file as JSON values (one code path for YAML and JSON files).
fn yaml(rel: &str) -> Value {
    serde_yaml_ng::from_str(&read(rel)).unwrap_or_else(|e| panic!("docker/{rel}: {e}"))
}

fn compose() -> Value {
    yaml("compose.yaml")
}

fn services(compose: &Value) -> &serde_json::Map<String, Value> {
    compose["services"]
        .as_object()
        .expect("compose.yaml: `services` is a map")
}

fn str_list(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().map(scalar).collect(),
        Value::Null => Vec::new(),
        other => vec![scalar(other)],
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A service's environment, list (`K=V`) or map form.
fn environment(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), scalar(v))).collect(),
        Value::Array(a) => a
            .iter()
            .map(|e| {
                let e = scalar(e);
                let (k, v) = e.split_once('=').unwrap_or((&e, ""));
                (k.to_string(), v.to_string())
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// (source, target) of a service's volumes, short or long syntax.
fn volumes(service: &Value) -> Vec<(String, String)> {
    let Some(list) = service["volumes"].as_array() else {
        return Vec::new();
    };
    list.iter()
        .map(|v| match v {
            Value::String(s) => {
                let parts: Vec<&str> = s.split(':').collect();
                assert!(parts.len() >= 2, "volume `{s}` has no target");
                (parts[0].to_string(), parts[1].to_string())
            }
            other => (scalar(&other["source"]), scalar(&other["target"])),
        })
        .collect()
}

/// (host ip, host port, container port) of a service's published ports.
fn ports(service: &Value) -> Vec<(String, u16, u16)> {
    str_list(&service["ports"])
        .iter()
        .map(|p| {
            let parts: Vec<&str> = p.rsplitn(3, ':').collect();
            assert_eq!(parts.len(), 3, "port `{p}` must be HOST_IP:HOST:CONTAINER");
            let port = |s: &str| s.parse::<u16>().unwrap_or_else(|_| panic!("port `{p}`"));
            (parts[2].to_string(), port(parts[1]), port(parts[0]))
        })
        .collect()
}

fn port_of(addr: &str) -> u16 {
    let (_, port) = addr.rsplit_once(':').expect("HOST:PORT");
    port.parse()
        .unwrap_or_else(|_| panic!("`{addr}`: bad port"))
}

/// The `[http] addr` port of docker/baton.toml.
fn baton_toml_port() -> u16 {
    let table: toml::Table = toml::from_str(&read("baton.toml")).expect("docker/baton.toml");
    port_of(table["http"]["addr"].as_str().expect("[http] addr"))
}

#[test]
fn compose_references_only_existing_files() {
    let compose = compose();
    let dir = docker_dir();
    let declared: BTreeSet<String> = compose["volumes"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    for (name, service) in services(&compose) {
        if let Some(build) = service.get("build") {
            let context = dir.join(scalar(&build["context"]));
            assert!(
                context.is_dir(),
                "{name}: build context {context:?} missing"
            );
            let dockerfile = context.join(scalar(&build["dockerfile"]));
            assert!(dockerfile.is_file(), "{name}: {dockerfile:?} missing");
            check_dockerfile(&dockerfile, &context);
        }
        for (source, target) in volumes(service) {
            if source.starts_with('.') || source.starts_with('/') {
                let path = dir.join(&source);
                assert!(path.exists(), "{name}: volume source {source} missing");
            } else {
                assert!(
                    declared.contains(&source),
                    "{name}: volume `{source}` not declared under top-level `volumes`"
                );
            }
            assert!(
                target.starts_with('/'),
                "{name}: volume target {target} is not absolute"
            );
        }
    }
}

/// Every COPY source of the Dockerfile exists in the build context and is
/// not excluded by `<Dockerfile>.dockerignore`.
fn check_dockerfile(dockerfile: &Path, context: &Path) {
    let text = std::fs::read_to_string(dockerfile).unwrap();
    let ignore_path = PathBuf::from(format!("{}.dockerignore", dockerfile.display()));
    let ignored: Vec<String> = std::fs::read_to_string(&ignore_path)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    assert!(
        ignored.iter().any(|p| p == "target"),
        "{ignore_path:?} must keep target/ out of the build context"
    );
    let mut copies = 0;
    for line in text.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("COPY ") else {
            continue;
        };
        if rest.starts_with("--from") {
            continue;
        }
        let words: Vec<&str> = rest.split_whitespace().collect();
        for source in &words[..words.len() - 1] {
            copies += 1;
            assert!(
                context.join(source).exists(),
                "Dockerfile: COPY {source}: not in the build context"
            );
            for pattern in &ignored {
                let excluded =
                    *source == pattern.as_str() || source.starts_with(&format!("{pattern}/"));
                assert!(
                    !excluded,
                    "Dockerfile: COPY {source} is excluded by `{pattern}` in {ignore_path:?}"
                );
            }
        }
    }
    assert!(copies > 0, "no COPY lines in {dockerfile:?}");
}

#[test]
fn ports_agree_across_compose_config_dockerfile_and_prometheus() {
    let compose = compose();
    let svc = services(&compose);
    let http_port = baton_toml_port();
    for (name, service) in svc {
        for (ip, _, _) in ports(service) {
            assert_eq!(
                ip, "127.0.0.1",
                "{name}: host ports must be bound to 127.0.0.1"
            );
        }
    }
    let baton = &svc["baton"];
    assert!(
        ports(baton).iter().any(|(_, _, c)| *c == http_port),
        "compose baton must publish container port {http_port} (docker/baton.toml [http] addr)"
    );
    let health = str_list(&baton["healthcheck"]["test"]).join(" ");
    assert!(
        health.contains(&format!("/{http_port}")),
        "baton healthcheck must probe port {http_port}: {health}"
    );
    let dockerfile = read("Dockerfile");
    assert!(
        dockerfile.contains(&format!("EXPOSE {http_port}")),
        "Dockerfile must EXPOSE {http_port}"
    );

    let prom = yaml("prometheus/prometheus.yml");
    let jobs = prom["scrape_configs"].as_array().expect("scrape_configs");
    let job = jobs
        .iter()
        .find(|j| j["job_name"] == "baton")
        .expect("a scrape job named baton (alerts use up{job=\"baton\"})");
    let targets: Vec<String> = job["static_configs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| str_list(&c["targets"]))
        .collect();
    assert_eq!(
        targets,
        vec![format!("baton:{http_port}")],
        "Prometheus must scrape the compose service `baton` on its HTTP port"
    );

    // Grafana reaches Prometheus by service name and container port.
    let ds = yaml("grafana/provisioning/datasources/prometheus.yml");
    let url = scalar(&ds["datasources"][0]["url"]);
    let host_port = url.trim_start_matches("http://");
    let (host, port) = host_port.split_once(':').expect("datasource url host:port");
    assert!(
        svc.contains_key(host),
        "datasource url names service `{host}`, not in compose"
    );
    assert!(
        ports(&svc[host])
            .iter()
            .any(|(_, _, c)| c.to_string() == port),
        "datasource port {port} is not the {host} container port"
    );
}

#[test]
fn compose_environment_names_only_known_baton_variables() {
    let known: BTreeSet<&str> = baton::config::KEYS.iter().map(|(_, env, _)| *env).collect();
    let compose = compose();
    for (name, service) in services(&compose) {
        let env = environment(service);
        for key in env.keys().filter(|k| k.starts_with("BATON_")) {
            let ok = known.contains(key.as_str())
                || key == "BATON_CONFIG"
                || key.starts_with(baton::config::KAFKA_ENV_PREFIX);
            assert!(ok, "{name}: unknown environment variable {key} (known: {known:?}, BATON_CONFIG, BATON_KAFKA_*)");
        }
        if let Some(config) = env.get("BATON_CONFIG") {
            let mounted = volumes(service)
                .iter()
                .any(|(s, t)| s == "./baton.toml" && t == config);
            assert!(
                mounted,
                "{name}: BATON_CONFIG={config} but ./baton.toml is not mounted there"
            );
        }
    }
    let svc = services(&compose);
    assert_eq!(
        environment(&svc["baton"])
            .get("BATON_BROKERS")
            .map(String::as_str),
        Some("kafka:9092")
    );
}

#[test]
fn the_compose_config_file_loads() {
    let path = docker_dir().join("baton.toml");
    let loaded = baton::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let env: BTreeMap<_, _> = loaded.env.into_iter().collect();
    assert_eq!(
        env.get("BATON_HTTP_ADDR").map(String::as_str),
        Some("0.0.0.0:9464"),
        "in a container Baton must listen on every interface"
    );
    assert!(
        !env.contains_key("BATON_BROKERS"),
        "brokers come from compose (BATON_BROKERS), so the baked-in config also runs without Kafka"
    );
}

#[test]
fn the_fleet_is_optional_and_everything_else_starts_by_default() {
    let compose = compose();
    for (name, service) in services(&compose) {
        let profiles = str_list(&service["profiles"]);
        if name == "fleet" {
            assert_eq!(
                profiles,
                vec!["fleet".to_string()],
                "fleet must sit behind `profiles: [fleet]`"
            );
            let command = str_list(&service["command"]);
            assert!(
                command.starts_with(&["demo".into(), "--no-engine".into()]),
                "fleet runs `demo --no-engine`: {command:?}"
            );
            let env = environment(service);
            assert_eq!(
                env.get("BATON_BROKERS"),
                environment(&services(&compose)["baton"]).get("BATON_BROKERS")
            );
        } else {
            assert!(profiles.is_empty(), "{name} must start without a profile");
        }
    }
    for required in ["kafka", "baton", "fleet", "prometheus", "grafana"] {
        assert!(
            services(&compose).contains_key(required),
            "service {required} missing"
        );
    }
}

#[test]
fn grafana_provisioning_matches_compose_and_the_dashboard() {
    let compose = compose();
    let grafana = &services(&compose)["grafana"];
    let mounts = volumes(grafana);
    let target_of = |source: &str| {
        mounts
            .iter()
            .find(|(s, _)| s == source)
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| panic!("grafana must mount {source}"))
    };
    assert_eq!(
        target_of("./grafana/provisioning"),
        "/etc/grafana/provisioning"
    );
    let providers = yaml("grafana/provisioning/dashboards/baton.yml");
    let path = scalar(&providers["providers"][0]["options"]["path"]);
    assert_eq!(
        path,
        target_of("./grafana/dashboards"),
        "dashboard provider path must be where compose mounts docker/grafana/dashboards"
    );

    let uid =
        scalar(&yaml("grafana/provisioning/datasources/prometheus.yml")["datasources"][0]["uid"]);
    let dash: Value =
        serde_json::from_str(&read("grafana/dashboards/baton.json")).expect("dashboard JSON");
    let schema = dash["schemaVersion"].as_u64().expect("schemaVersion");
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");
    let mut ids = BTreeSet::new();
    let panels = dashboard_panels(&dash);
    assert!(panels.len() >= 12, "only {} panels", panels.len());
    for p in &panels {
        let title = scalar(&p["title"]);
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "duplicate panel id in {title}"
        );
        let g = &p["gridPos"];
        assert!(
            g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24,
            "{title}: wider than the grid"
        );
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(
            scalar(&p["datasource"]["uid"]),
            uid,
            "{title}: datasource uid"
        );
        let targets = p["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("{title}: no targets"));
        assert!(!targets.is_empty(), "{title}: no targets");
        for t in targets {
            assert_eq!(
                scalar(&t["datasource"]["uid"]),
                uid,
                "{title}: target datasource uid"
            );
            check_expr(&format!("dashboard panel `{title}`"), &scalar(&t["expr"]));
        }
    }
}

/// Every panel, rows' nested panels included.
fn dashboard_panels(dash: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dash["panels"].as_array().expect("panels") {
        out.push(p);
        if let Some(nested) = p["panels"].as_array() {
            out.extend(nested);
        }
    }
    out
}

#[test]
fn alert_rules_are_complete_and_name_only_exported_metrics() {
    let rules = yaml("prometheus/alerts.yml");
    let tests = read("prometheus/alerts_test.yml");
    let mut alerts = BTreeSet::new();
    for group in rules["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let name = scalar(&rule["alert"]);
            assert!(alerts.insert(name.clone()), "duplicate alert {name}");
            check_expr(&format!("alert {name}"), &scalar(&rule["expr"]));
            assert!(rule["for"].is_string(), "{name}: needs `for:`");
            let severity = scalar(&rule["labels"]["severity"]);
            assert!(
                ["critical", "warning", "info"].contains(&severity.as_str()),
                "{name}: severity `{severity}`"
            );
            for a in ["summary", "description", "runbook"] {
                assert!(
                    !scalar(&rule["annotations"][a]).is_empty(),
                    "{name}: annotation {a} missing"
                );
            }
            assert!(
                tests.contains(&format!("alertname: {name}\n")),
                "alerts_test.yml does not test {name}"
            );
        }
    }
    for wanted in [
        "BatonDown",
        "BatonConsumerLagGrowing",
        "BatonDecisionLatencyHigh",
        "BatonAgentsLost",
        "BatonSevereBottleneck",
        "BatonDeadLettersGrowing",
    ] {
        assert!(alerts.contains(wanted), "alert {wanted} missing");
    }
    // Each alert has a firing and a quiet case in the unit tests.
    let cases = yaml("prometheus/alerts_test.yml");
    let mut fired = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for test in cases["tests"].as_array().expect("tests") {
        for case in test["alert_rule_test"].as_array().into_iter().flatten() {
            let name = scalar(&case["alertname"]);
            let n = case["exp_alerts"].as_array().map_or(0, Vec::len);
            let set = if n > 0 { &mut fired } else { &mut quiet };
            set.insert(name);
        }
    }
    assert_eq!(fired, alerts, "alerts with a firing test case");
    assert_eq!(quiet, alerts, "alerts with a quiet test case");
}

/// Metric names an expression may use: Baton's (histograms as
/// `_bucket`/`_sum`/`_count`), the process metrics, and `up`.
fn exported() -> BTreeMap<String, BTreeSet<&'static str>> {
    let mut out = BTreeMap::new();
    for m in ALL {
        let mut labels: BTreeSet<&str> = m.labels.iter().copied().collect();
        if m.kind == Kind::Histogram {
            for suffix in ["_sum", "_count"] {
                out.insert(format!("{}{suffix}", m.name), labels.clone());
            }
            labels.insert("le");
            out.insert(format!("{}_bucket", m.name), labels);
        } else {
            out.insert(m.name.to_string(), labels);
        }
    }
    for (name, _, _) in PROCESS {
        out.insert(name.to_string(), BTreeSet::new());
    }
    out.insert("up".into(), BTreeSet::new());
    out
}

/// Fails unless `expr` names only exported metrics, with labels they carry
/// (plus the target labels `job` and `instance`).
fn check_expr(what: &str, expr: &str) {
    assert!(!expr.trim().is_empty(), "{what}: empty expression");
    let exported = exported();
    let scanned = scan_promql(expr);
    assert!(
        !scanned.selectors.is_empty(),
        "{what}: no metric in `{expr}`"
    );
    let all_labels: BTreeSet<&str> = exported.values().flatten().copied().collect();
    for (metric, labels) in &scanned.selectors {
        let known = exported.get(metric).unwrap_or_else(|| panic!("{what}: `{metric}` is not a metric Baton exports (src/telemetry/names.rs): `{expr}`"));
        for l in labels {
            assert!(
                known.contains(l.as_str()) || l == "job" || l == "instance",
                "{what}: `{metric}` has no label `{l}`"
            );
        }
    }
    for l in &scanned.grouping {
        assert!(
            all_labels.contains(l.as_str()) || ["job", "instance"].contains(&l.as_str()),
            "{what}: grouping by unknown label `{l}` in `{expr}`"
        );
    }
}

/// promtool from `BATON_TEST_PROMTOOL` or PATH; fails with an install hint.
fn promtool() -> PathBuf {
    let found = match std::env::var_os("BATON_TEST_PROMTOOL") {
        Some(p) => Some(PathBuf::from(p)),
        None => std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("promtool"))
                .find(|p| p.is_file())
        }),
    };
    match found {
        Some(p) if p.is_file() => p,
        _ => panic!(
            "promtool not found (set BATON_TEST_PROMTOOL or put it on PATH). Install it with \
             `apt-get install --no-install-recommends prometheus` (Debian/Ubuntu; tests/run.sh does this) \
             or from a Prometheus release archive"
        ),
    }
}

#[test]
fn promtool_accepts_the_config_the_rules_and_their_unit_tests() {
    let promtool = promtool();
    let dir = docker_dir().join("prometheus");
    for args in [
        ["check", "config", "prometheus.yml"],
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
    ] {
        let out = Command::new(&promtool)
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("run promtool");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!("$ promtool {}\n{text}", args.join(" "));
        assert!(
            out.status.success(),
            "promtool {} failed:\n{text}",
            args.join(" ")
        );
    }
}
