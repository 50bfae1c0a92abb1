//! Helpers for the Kafka tests: the broker under test and the `tansu`
//! binary for tests that run their own broker.
//!
//! Kafka tests never skip: without `BATON_TEST_KAFKA` they fail and say how
//! to start a broker (the test command, `tests/run.sh`, does it for you).
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use baton::log::kafka::{KafkaConfig, KafkaLog};

const HOW: &str = "Kafka tests need a broker: run `tests/run.sh` (it installs and starts tansu), \
or start one yourself, e.g. `tansu broker --listener-url tcp://127.0.0.1:9092 \
--advertised-listener-url tcp://127.0.0.1:9092 --storage-engine memory://tansu/`, \
and set BATON_TEST_KAFKA=127.0.0.1:9092";

/// The broker under test (`host:port`).
pub fn brokers() -> String {
    match std::env::var("BATON_TEST_KAFKA") {
        Ok(b) if !b.trim().is_empty() => b,
        _ => panic!("BATON_TEST_KAFKA is not set. {HOW}"),
    }
}

/// A name no earlier run on the same broker used.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:x}", fastrand::u64(..))
}

pub async fn connect(brokers: &str, atomic: &[&str]) -> KafkaLog {
    let mut c = KafkaConfig::new(brokers);
    c.atomic_topics = atomic.iter().map(|s| s.to_string()).collect();
    KafkaLog::connect(c)
        .await
        .unwrap_or_else(|e| panic!("connecting to {brokers}: {e}. {HOW}"))
}

/// The tansu binary (`BATON_TEST_TANSU`, else `tansu` on PATH).
pub fn tansu_bin() -> PathBuf {
    std::env::var_os("BATON_TEST_TANSU")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("tansu"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A free port below Linux's ephemeral range (32768-60999): clients that
/// keep reconnecting while their broker restarts get ephemeral local ports,
/// and one of them could otherwise take the broker's own port.
fn broker_port() -> u16 {
    loop {
        let p = fastrand::u16(20_000..32_000);
        if TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

/// A tansu broker owned by one test (killed on drop).
pub struct Broker {
    pub port: u16,
    storage: String,
    log: PathBuf,
    child: Option<Child>,
}

impl Broker {
    /// Starts tansu on a free port with `storage` (`memory://tansu/` or
    /// `sqlite://…`), waiting until it accepts connections.
    pub fn start(storage: &str, log_dir: &Path) -> Broker {
        let mut b = Broker {
            port: broker_port(),
            storage: storage.to_string(),
            log: log_dir.join("tansu.log"),
            child: None,
        };
        b.restart();
        b
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        // A restart on the same port can fail: tansu 0.6.0 panics in its
        // listener task on AddrInUse (a socket of the killed broker, or a
        // client's reconnect, may still hold the port for a moment) and the
        // process stays up serving nothing. So wait for its "ready" line,
        // and start it again when the bind failed.
        for attempt in 1..=20u32 {
            let (ready_before, in_use_before) = self.log_counts();
            let url = format!("tcp://127.0.0.1:{}", self.port);
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)
                .expect("broker log file");
            let child = Command::new(tansu_bin())
                .args([
                    "broker",
                    "--listener-url",
                    &url,
                    "--advertised-listener-url",
                    &url,
                ])
                .args(["--storage-engine", &self.storage])
                // sqlite:// paths are relative to the working directory.
                .current_dir(self.log.parent().unwrap_or(Path::new(".")))
                .stdout(Stdio::from(log.try_clone().expect("log file")))
                .stderr(Stdio::from(log))
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}. {HOW}", tansu_bin().display()));
            self.child = Some(child);
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let (ready, in_use) = self.log_counts();
                if ready > ready_before
                    && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                {
                    return;
                }
                let exited = self
                    .child
                    .as_mut()
                    .is_some_and(|c| c.try_wait().ok().flatten().is_some());
                if in_use > in_use_before || exited {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "tansu did not get ready on {}",
                    self.port
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            eprintln!(
                "tansu could not listen on {} (attempt {attempt}); starting it again",
                self.port
            );
            self.stop();
            std::thread::sleep(Duration::from_millis(250 * u64::from(attempt)));
        }
        panic!("tansu never listened on {}", self.port);
    }

    /// How many times the log says "ready" and "AddrInUse".
    fn log_counts(&self) -> (usize, usize) {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        (
            text.matches("ready in").count(),
            text.matches("AddrInUse").count(),
        )
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}
