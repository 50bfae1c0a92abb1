//! Helpers for the HTTP API tests: a data directory holding the golden
//! journal folded into stores, the API served in-process on a free port,
//! a minimal HTTP/1.1 client (no client crate needed), and the
//! schemathesis executable under test.
//!
//! The schemathesis test never skips: without `BATON_TEST_SCHEMATHESIS` it
//! fails and says how to get the executable (`tests/run.sh` installs it).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use baton::api::{serve, ApiContext};
use baton::codec::Codec;
use baton::domain::engine::EngineConfig;
use baton::engine::live::Live;
use baton::engine::replay::{replay_partition, JournalSource, Span};
use baton::log::embedded::{EmbeddedConfig, EmbeddedLog};
use baton::log::EventLog;
use baton::store::ProjectionStore;
use baton::telemetry::Telemetry;
use baton::topics::Topics;
use serde_json::Value;

const HOW: &str = "the schemathesis test needs the schemathesis CLI: run `tests/run.sh` (it \
installs it into target/interop-venv), or `python3 -m venv target/interop-venv && \
target/interop-venv/bin/pip install -r tests/api/requirements.txt`, and set \
BATON_TEST_SCHEMATHESIS=$PWD/target/interop-venv/bin/schemathesis";

/// The schemathesis executable (`BATON_TEST_SCHEMATHESIS`).
pub fn schemathesis() -> PathBuf {
    match std::env::var_os("BATON_TEST_SCHEMATHESIS") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!("BATON_TEST_SCHEMATHESIS is not set: {HOW}"),
    }
}

/// A workflow of the golden journal whose step timed out, was retried on
/// an agent that was then lost, and succeeded.
pub const STORY: &str = "wf-1795337847881-29";

pub use crate::common::golden_fixture as fixture;

/// A scratch data directory with the golden journal (60 workflows over 4
/// partitions) folded into its partition stores, as the engine leaves them.
pub fn golden() -> tempfile::TempDir {
    let dir = crate::common::golden_log_copy();
    let log = open_log(dir.path());
    let codec = Codec::builtin().unwrap();
    let topic = Topics::default().journal();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let source = JournalSource {
            log: log.as_ref(),
            codec: &codec,
            topic: &topic,
        };
        for p in 0..log.partition_count(&topic).await.unwrap() {
            let store = ProjectionStore::open(dir.path(), p).unwrap();
            let progress = AtomicU64::new(0);
            replay_partition(
                &source,
                p,
                Span::default(),
                &store,
                EngineConfig::default(),
                &progress,
            )
            .await
            .unwrap();
        }
    });
    dir
}

/// The embedded log of `data_dir` (created when missing).
pub fn open_log(data_dir: &Path) -> Arc<dyn EventLog> {
    Arc::new(EmbeddedLog::open(EmbeddedConfig::new(data_dir.join("log"))).unwrap())
}

/// An API context over `data_dir` with 4 partitions.
pub fn context(data_dir: &Path, live: Option<Arc<Live>>) -> ApiContext {
    ApiContext {
        data_dir: data_dir.to_path_buf(),
        topics: Topics::default(),
        log: open_log(data_dir),
        codec: Codec::builtin().unwrap(),
        partitions: 4,
        live,
        ready_max_lag: 100,
        telemetry: Telemetry::install().unwrap(),
    }
}

/// The API served in-process (on its own runtime thread) until dropped.
pub struct Api {
    pub addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Api {
    pub fn start(ctx: ApiContext) -> Api {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                serve(listener, ctx, stopped).await.unwrap();
            });
        });
        Api {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    pub fn get(&self, path: &str) -> Reply {
        request(self.addr, "GET", path)
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

/// One request on a fresh connection (`Connection: close`).
pub fn request(addr: SocketAddr, method: &str, path: &str) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}
