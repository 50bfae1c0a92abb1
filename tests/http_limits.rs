//! The HTTP server's bounds, as a bounded load check: half-sent requests
//! and idle connections are closed after the header-read timeout (set
//! small here), and a request over the in-flight cap gets 503 with
//! `Retry-After` and a JSON body. No timing assertions: the waits below
//! are generous upper bounds (a hung connection fails the test, a slow
//! machine does not).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use baton::api::limits::{bounded, serve_bounded, HttpLimits};

struct Server {
    addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    release: Arc<tokio::sync::Semaphore>,
    entered: std::sync::mpsc::Receiver<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.release.add_permits(1000);
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A server with `/held` (waits until the test releases it) behind the limits.
fn start(limits: HttpLimits) -> Server {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let (entered_tx, entered) = std::sync::mpsc::channel();
    let r = release.clone();
    let app = Router::new()
        .route(
            "/held",
            get(move || {
                let r = r.clone();
                let tx = entered_tx.clone();
                async move {
                    let _ = tx.send(());
                    let _ = r.acquire().await.map(|p| p.forget());
                    "released"
                }
            }),
        )
        .route("/ok", get(|| async { "ok" }));
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            serve_bounded(listener, bounded(app, limits), limits, stopped)
                .await
                .unwrap();
        });
    });
    Server {
        addr,
        stop,
        release,
        entered,
        thread: Some(thread),
    }
}

fn send(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn half_sent_and_idle_connections_are_closed_after_the_header_timeout() {
    let server = start(HttpLimits {
        header_timeout: Duration::from_millis(300),
        ..HttpLimits::default()
    });
    let mut conns = Vec::new();
    for i in 0..60 {
        let mut s = TcpStream::connect(server.addr).unwrap();
        // Generous: a connection still open after this is a failure.
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        if i % 2 == 0 {
            // Half-sent: a request line and one header, never the blank line.
            s.write_all(b"GET /ok HTTP/1.1\r\nHost: t\r\nX-Slow: ")
                .unwrap();
        }
        conns.push(s);
    }
    for mut s in conns {
        let mut buf = Vec::new();
        match s.read_to_end(&mut buf) {
            Ok(_) => {}
            Err(e) => assert!(
                !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "a slow connection was left open: {e}"
            ),
        }
    }
    // The server still answers.
    assert!(send(server.addr, "/ok").starts_with("HTTP/1.1 200"));
}

#[test]
fn over_the_in_flight_cap_is_503_with_retry_after_and_json() {
    let server = start(HttpLimits {
        max_in_flight: 1,
        ..HttpLimits::default()
    });
    let addr = server.addr;
    let first = std::thread::spawn(move || send(addr, "/held"));
    server
        .entered
        .recv_timeout(Duration::from_secs(30))
        .expect("the first request reached its handler");
    let shed = send(server.addr, "/ok");
    assert!(shed.starts_with("HTTP/1.1 503"), "{shed}");
    let lower = shed.to_ascii_lowercase();
    assert!(lower.contains("\r\nretry-after: 1\r\n"), "{shed}");
    assert!(lower.contains("content-type: application/json"), "{shed}");
    let body = shed.split("\r\n\r\n").nth(1).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["code"], "overloaded");
    server.release.add_permits(1);
    assert!(first.join().unwrap().starts_with("HTTP/1.1 200"));
    // The permit is back: the next request is served.
    assert!(send(server.addr, "/ok").starts_with("HTTP/1.1 200"));
}
