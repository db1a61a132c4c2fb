//! Publishing and reading history over the HTTP API, for the tests that restart or kill the
//! binary over a store and then check what it kept.

// Each test binary includes `common` and uses only part of it.
#![allow(dead_code)]

use serde_json::{json, Value};

/// Publishes `{"v": v}` to `channel` with the idempotency key `k{v}`: the acknowledgement, or
/// the status and the error body.
pub(crate) async fn publish(
    http: &reqwest::Client,
    url: &str,
    channel: &str,
    v: u64,
) -> Result<Value, (u16, Value)> {
    let body = json!({ "channel": channel, "data": { "v": v }, "key": format!("k{v}") });
    let response = http.post(format!("{url}/api/publish")).json(&body).send().await.expect("publish");
    let status = response.status().as_u16();
    let answer: Value = response.json().await.expect("publish answer");
    if (200..300).contains(&status) {
        Ok(answer)
    } else {
        Err((status, answer))
    }
}

/// Every publication of `channel` after `since` in `epoch` (any epoch when empty): the recovery
/// read, or its error.
pub(crate) async fn recover(
    http: &reqwest::Client,
    url: &str,
    channel: &str,
    since: u64,
    epoch: &str,
) -> Value {
    let epoch = if epoch.is_empty() { String::new() } else { format!("&epoch={epoch}") };
    let query = format!("{url}/api/channels/{channel}/history?since={since}{epoch}&limit=1000");
    http.get(query).send().await.expect("history").json().await.expect("history JSON")
}

/// The offsets and `v` values of a history answer's publications, in order.
pub(crate) fn offsets_and_values(history: &Value) -> Vec<(u64, u64)> {
    history["publications"]
        .as_array()
        .expect("publications")
        .iter()
        .map(|p| (p["offset"].as_u64().expect("offset"), p["data"]["v"].as_u64().expect("v")))
        .collect()
}
