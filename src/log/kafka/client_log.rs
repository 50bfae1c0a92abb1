//! What librdkafka reports, turned into a few useful log lines.
//!
//! Every client (the producer, the admin client, each partition reader, the
//! group member) reports a broker failure on its own, often as several
//! lines; during an outage that is hundreds of lines a second. Here:
//! - librdkafka's own log lines go to `debug` (target `librdkafka`): the
//!   error callback reports the same failures;
//! - errors are logged at `warn` at most once per kind per
//!   [`REPEAT_AFTER`], process-wide, saying how many were folded in;
//! - "partition EOF" is not an error for Baton's readers and is dropped.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// How long the same kind of error stays quiet after it was logged.
pub const REPEAT_AFTER: Duration = Duration::from_secs(10);

/// The context of every Baton Kafka client that needs no other hooks.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientLogs;

impl rdkafka::ClientContext for ClientLogs {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        report_error(&error, reason);
    }
}

impl rdkafka::consumer::ConsumerContext for ClientLogs {}

/// librdkafka's log line, at debug level.
pub fn log(level: RDKafkaLogLevel, fac: &str, message: &str) {
    tracing::debug!(target: "librdkafka", level = ?level, facility = fac, "{message}");
}

/// One warning per kind of error per [`REPEAT_AFTER`].
pub fn report_error(error: &KafkaError, reason: &str) {
    if matches!(
        error,
        KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
    ) {
        return;
    }
    let kind = kind_of(error);
    static SEEN: OnceLock<Mutex<HashMap<String, (Instant, u64)>>> = OnceLock::new();
    let folded = {
        let Ok(mut seen) = SEEN.get_or_init(Default::default).lock() else {
            return;
        };
        let now = Instant::now();
        match seen.get_mut(&kind) {
            Some((at, folded)) if now.duration_since(*at) < REPEAT_AFTER => {
                *folded += 1;
                return;
            }
            Some((at, folded)) => {
                *at = now;
                std::mem::take(folded)
            }
            None => {
                seen.insert(kind, (now, 0));
                0
            }
        }
    };
    tracing::warn!(error = %error, reason, folded, "kafka client error (repeats of this kind are folded for 10 s)");
}

/// The kind of an error: its code, without the changing details.
fn kind_of(error: &KafkaError) -> String {
    match error.rdkafka_error_code() {
        Some(code) => format!("{code:?}"),
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_ignore_details() {
        let a = KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure);
        let b = KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure);
        assert_eq!(kind_of(&a), kind_of(&b));
        assert_ne!(
            kind_of(&a),
            kind_of(&KafkaError::Global(RDKafkaErrorCode::AllBrokersDown))
        );
    }
}
