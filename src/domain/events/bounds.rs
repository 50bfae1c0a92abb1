//! The bounds every event the engine writes stays within, so anything that
//! passes ingress validation can be journalled and dead-lettered (the codec
//! leaves `codec::INGRESS_HEADROOM_BYTES` between the ingress limit and the
//! limit of every other topic; these bounds keep the engine's additions
//! inside it).
//!
//! - Texts the engine writes into facts (reasons, messages, errors it
//!   composes) are at most [`MAX_TEXT_BYTES`]: longer ones are cut on a char
//!   boundary and end with `…[truncated, N bytes]`. Texts that are the
//!   input itself (a `StepFailed.error`, a `StepSucceeded.output`) are not
//!   cut: the ingress limit bounds them and the journal keeps what was said.
//! - Identifiers (workflow, step, agent ids, pools, kinds, capabilities)
//!   are at most [`MAX_ID_BYTES`]: facts repeat them (the correlation id,
//!   every step reference), so their size must not scale with the input.
//! - Durations (intervals, timeouts, deadlines, retry delays) lie in
//!   `0..=`[`MAX_DURATION_MS`]: in microseconds (how timestamps count) they
//!   stay far from `i64` overflow whatever the clock says.

use super::{Payload, Usage};

/// Longest text the engine composes into a fact, in bytes.
pub const MAX_TEXT_BYTES: usize = 4 << 10;
/// Longest identifier accepted on ingress, in bytes.
pub const MAX_ID_BYTES: usize = 256;
/// Longest interval, timeout, deadline or retry delay: 365 days, in ms.
pub const MAX_DURATION_MS: i64 = 365 * 24 * 3600 * 1000;

/// `text` cut to at most [`MAX_TEXT_BYTES`] (marker included) on a char
/// boundary, with a marker naming the original length; unchanged when it
/// fits.
pub fn bound_text(text: &str) -> String {
    bound_text_to(text, MAX_TEXT_BYTES)
}

/// [`bound_text`] with another bound (the marker always fits in 64 bytes).
pub fn bound_text_to(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let marker = format!("…[truncated, {} bytes]", text.len());
    let mut cut = max.saturating_sub(marker.len());
    while cut > 0 && !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = String::with_capacity(cut + marker.len());
    out.push_str(&text[..cut]);
    out.push_str(&marker);
    out
}

fn bound_in_place(text: &mut String) {
    if text.len() > MAX_TEXT_BYTES {
        *text = bound_text(text);
    }
}

/// Why an identifier is not accepted, if it is not.
pub fn check_id(what: &str, id: &str) -> Result<(), String> {
    if id.len() > MAX_ID_BYTES {
        return Err(format!(
            "{what} is {} bytes, over the limit of {MAX_ID_BYTES}",
            id.len()
        ));
    }
    Ok(())
}

/// Why a duration in ms is outside `min..=MAX_DURATION_MS`, if it is.
pub fn check_duration_ms(what: &str, ms: i64, min: i64) -> Result<(), String> {
    if !(min..=MAX_DURATION_MS).contains(&ms) {
        return Err(format!(
            "{what} must be between {min} and {MAX_DURATION_MS} ms (365 days), got {ms}"
        ));
    }
    Ok(())
}

/// Why reported usage is not accepted, if it is not: token counts are
/// non-negative, the cost finite and non-negative.
pub fn check_usage(u: &Usage) -> Result<(), String> {
    if u.tokens_in < 0 || u.tokens_out < 0 {
        return Err(format!(
            "usage token counts must be non-negative, got tokens_in {} and tokens_out {}",
            u.tokens_in, u.tokens_out
        ));
    }
    if !u.cost.is_finite() || u.cost < 0.0 {
        return Err(format!(
            "usage cost must be finite and non-negative, got {}",
            u.cost
        ));
    }
    Ok(())
}

impl Payload {
    /// Cuts the texts the engine composes into this fact to
    /// [`MAX_TEXT_BYTES`] (see the module comment for which ones).
    pub fn bound_texts(&mut self) {
        use Payload as P;
        match self {
            P::WorkflowRejected(e) => bound_in_place(&mut e.message),
            P::StepRejectedByAgent(e) => bound_in_place(&mut e.reason),
            P::RetryScheduled(e) => bound_in_place(&mut e.reason),
            P::StepExhausted(e) => bound_in_place(&mut e.last_error),
            P::StepSkipped(e) => bound_in_place(&mut e.reason),
            P::StepCancelled(e) => bound_in_place(&mut e.reason),
            P::WorkflowFailed(e) => bound_in_place(&mut e.reason),
            P::WorkflowCancelled(e) => bound_in_place(&mut e.reason),
            P::AgentHealthChanged(e) => bound_in_place(&mut e.reason),
            P::AgentDeregistered(e) => {
                if let Some(r) = e.reason.as_mut() {
                    bound_in_place(r)
                }
            }
            P::BottleneckDetected(e) => bound_in_place(&mut e.recommendation),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_text_is_cut_on_a_char_boundary_with_its_length() {
        // Given a text of 3-byte chars well over the bound
        let text = "€".repeat(10_000);
        // When it is bounded
        let out = bound_text(&text);
        // Then it fits, is valid UTF-8 by construction, and names the length
        assert!(out.len() <= MAX_TEXT_BYTES, "{}", out.len());
        assert!(out.ends_with("…[truncated, 30000 bytes]"), "{out:.40}");
        assert!(out.starts_with("€€€"));
    }

    #[test]
    fn a_short_text_is_unchanged() {
        assert_eq!(bound_text("boom"), "boom");
        let exact = "x".repeat(MAX_TEXT_BYTES);
        assert_eq!(bound_text(&exact), exact);
    }

    #[test]
    fn usage_must_be_finite_and_non_negative() {
        let u = |tokens_out, cost| Usage {
            tokens_in: 0,
            tokens_out,
            cost,
        };
        assert!(check_usage(&u(1, 0.5)).is_ok());
        assert!(check_usage(&u(0, -0.0)).is_ok());
        assert!(check_usage(&u(i64::MIN, 0.0)).is_err());
        assert!(check_usage(&u(0, -1e308)).is_err());
        assert!(check_usage(&u(0, f64::NAN)).is_err());
        assert!(check_usage(&u(0, f64::INFINITY)).is_err());
    }
}
