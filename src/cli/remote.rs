//! Asking a running Baton over its HTTP API (`--api URL`), for commands
//! whose local answer needs the stores a running engine holds.
//!
//! Invariant: an answer the API gives (200 or a JSON error) is returned as
//! such; only transport failures are errors, naming the URL.

use std::time::Duration;

/// GETs `base` + `path`: `Ok(Ok(body))` on 200, `Ok(Err(message))` for an
/// API error (its JSON `message`), `Err` when the API cannot be reached.
pub async fn get(base: &str, path: &str) -> anyhow::Result<Result<String, String>> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let shown = url.clone();
    tokio::task::spawn_blocking(move || {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(30)))
                .http_status_as_error(false)
                .build(),
        );
        let mut response = agent.get(&url).call()?;
        let status = response.status();
        let body = response.body_mut().read_to_string()?;
        if status.is_success() {
            return Ok(Ok(body));
        }
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| format!("{status}: {body}"));
        Ok(Err(message))
    })
    .await?
    .map_err(|e: ureq::Error| anyhow::anyhow!("cannot reach the Baton API at {shown}: {e}"))
}

/// Percent-encodes a path segment (RFC 3986 unreserved characters stay).
pub fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
