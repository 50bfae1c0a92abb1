//! The background fsync thread of `FsyncPolicy::Interval`.
//!
//! Invariants:
//! - The thread only ever holds a `Weak` reference to the log's state (via
//!   the `tick` closure), so it never keeps a dropped log alive.
//! - Dropping the [`Flusher`] wakes the thread at once and joins it, so when
//!   the log's `drop` returns no fsync is still running and the data
//!   directory's lock can be taken by the next opener.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::log::LogError;

pub(crate) struct Flusher {
    stop: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Flusher {
    /// Calls `tick` every `interval` until the flusher is dropped or `tick`
    /// returns false (the log is gone).
    pub fn start(
        interval: Duration,
        tick: impl Fn() -> bool + Send + 'static,
    ) -> Result<Self, LogError> {
        let (stop, wake) = mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name("baton-log-fsync".to_string())
            .spawn(move || {
                // A message or a hang-up both mean "stop".
                while let Err(RecvTimeoutError::Timeout) = wake.recv_timeout(interval) {
                    if !tick() {
                        break;
                    }
                }
            })
            .map_err(|e| LogError::io("start the log's fsync thread", e))?;
        Ok(Self {
            stop: Some(stop),
            handle: Some(handle),
        })
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(handle) = self.handle.take() {
            if handle.join().is_err() {
                tracing::warn!("the log's fsync thread panicked");
            }
        }
    }
}
