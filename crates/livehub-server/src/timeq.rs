//! Reading history by time: the `from`/`to` parameters of `…/history` and the downsampling
//! endpoint `…/series`, which turns a numeric field of a channel's JSON publications into
//! count, min, avg, max and last per time bucket, for charts that open with the last hour drawn.

use std::sync::Arc;

use axum::http::StatusCode;
use livehub_core::{ChannelName, HistoryQuery, Node, Payload, Publication};
use serde_json::{json, Value};

use crate::error::ApiError;

/// Most buckets one series answer holds: more points than any chart is wide.
pub(crate) const MAX_BUCKETS: u64 = 10_000;

/// Most publications one series request reads: bounds the work of one request (about a day of
/// a 2 Hz channel).
pub(crate) const MAX_SERIES_SCAN: usize = 200_000;

/// Widest time range one series request may cover: 31 days.
pub(crate) const MAX_SERIES_SPAN_MS: u64 = 31 * 24 * 3600 * 1000;

/// The range a series covers when the request names no `from`: the last hour.
const DEFAULT_SERIES_SPAN_MS: u64 = 3600 * 1000;

/// Publications read per page while computing a series.
const SERIES_PAGE: usize = 1000;

/// A time in a query: Unix milliseconds (`1733390000000`) or RFC 3339
/// (`2024-12-05T09:13:20Z`, `2024-12-05T10:13:20.5+01:00`).
pub(crate) fn parse_time(name: &str, value: &str) -> Result<u64, ApiError> {
    let invalid = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_time",
            format!("{name} must be Unix milliseconds or an RFC 3339 time such as 2024-12-05T09:13:20Z"),
        )
    };
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse().map_err(|_| invalid());
    }
    let parsed = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map_err(|_| invalid())?;
    u64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).map_err(|_| invalid())
}

/// A step such as `500ms`, `60s`, `5m`, `1h` or `1d`, in milliseconds.
pub(crate) fn parse_step(value: &str) -> Result<u64, ApiError> {
    let invalid = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_range",
            "step must be a positive duration with a unit: 500ms, 60s, 5m, 1h or 1d",
        )
    };
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = value.split_at(digits);
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(invalid()),
    };
    match number.checked_mul(unit_ms) {
        Some(ms) if ms > 0 => Ok(ms),
        _ => Err(invalid()),
    }
}

/// Refuses a range that ends before it starts.
pub(crate) fn check_range(from: Option<u64>, to: Option<u64>) -> Result<(), ApiError> {
    match (from, to) {
        (Some(from), Some(to)) if to <= from => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_range",
            "to must be later than from (the range is from inclusive to exclusive)",
        )),
        _ => Ok(()),
    }
}

/// What `…/series` was asked.
#[derive(Debug, Default)]
pub(crate) struct SeriesParams {
    pub(crate) field: Option<String>,
    pub(crate) from: Option<u64>,
    pub(crate) to: Option<u64>,
    pub(crate) step: Option<u64>,
}

impl SeriesParams {
    /// Parses the query string; unknown parameters are ignored, like the other read endpoints.
    pub(crate) fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let mut params = Self::default();
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match key.as_ref() {
                "field" => params.field = Some(value.into_owned()),
                "from" => params.from = Some(parse_time("from", &value)?),
                "to" => params.to = Some(parse_time("to", &value)?),
                "step" => params.step = Some(parse_step(&value)?),
                _ => {}
            }
        }
        Ok(params)
    }
}

/// One bucket being filled.
#[derive(Clone, Copy, Default)]
struct Bucket {
    count: u64,
    min: f64,
    max: f64,
    sum: f64,
    last: f64,
}

impl Bucket {
    fn add(&mut self, v: f64) {
        if self.count == 0 {
            (self.min, self.max) = (v, v);
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.count += 1;
        self.sum += v;
        self.last = v;
    }

    fn value(&self, start: u64) -> Value {
        if self.count == 0 {
            return json!({ "t": start, "count": 0, "min": null, "avg": null, "max": null, "last": null });
        }
        json!({
            "t": start,
            "count": self.count,
            "min": self.min,
            "avg": self.sum / self.count as f64,
            "max": self.max,
            "last": self.last,
        })
    }
}

/// Where a publication's field is, and what it holds.
enum Found {
    Number(f64),
    Other,
    Missing,
}

/// The value at the dotted `path` (`cpu.total`, `cores.0`) of `publication`'s JSON data.
fn field(publication: &Publication, path: &[&str]) -> Found {
    let Payload::Json(bytes) = &publication.data else { return Found::Missing };
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else { return Found::Missing };
    let mut at = &value;
    for segment in path {
        let next = match at {
            Value::Object(map) => map.get(*segment),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        match next {
            Some(next) => at = next,
            None => return Found::Missing,
        }
    }
    match at.as_f64() {
        Some(v) => Found::Number(v),
        None => Found::Other,
    }
}

/// Computes the series of `channel` for `params`, reading its history a page at a time.
pub(crate) async fn series(
    node: &Node,
    channel: &ChannelName,
    params: SeriesParams,
) -> Result<Value, ApiError> {
    let path_text = params.field.unwrap_or_default();
    let path: Vec<&str> = path_text.split('.').collect();
    if path_text.is_empty() || path.iter().any(|s| s.is_empty()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "unknown_field",
            "field must name a value in the data, such as field=cpu.total",
        ));
    }
    let to = params.to.unwrap_or_else(|| node.config().clock.now_millis() + 1);
    let from = params.from.unwrap_or_else(|| to.saturating_sub(DEFAULT_SERIES_SPAN_MS));
    check_range(Some(from), Some(to))?;
    if to - from > MAX_SERIES_SPAN_MS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "range_too_large",
            format!("a series covers at most {} days", MAX_SERIES_SPAN_MS / 86_400_000),
        ));
    }
    let step = params.step.unwrap_or(60_000);
    let buckets = (to - from).div_ceil(step);
    if buckets > MAX_BUCKETS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "too_many_buckets",
            format!("{buckets} buckets asked; at most {MAX_BUCKETS}: make step larger or the range shorter"),
        ));
    }
    let mut filled = vec![Bucket::default(); buckets as usize];
    let (mut scanned, mut non_numeric, mut present) = (0usize, 0u64, false);
    let mut after = 0;
    let position = loop {
        let query = HistoryQuery::after(after, SERIES_PAGE).from_ms(from).to_ms(to);
        let history = node.history(channel, query).await?;
        scanned += history.publications.len();
        if scanned > MAX_SERIES_SCAN {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "range_too_large",
                format!("more than {MAX_SERIES_SCAN} publications in the range: make it shorter"),
            ));
        }
        for publication in &history.publications {
            let bucket = (publication.ts.saturating_sub(from) / step) as usize;
            match field(publication, &path) {
                Found::Number(v) => {
                    present = true;
                    if let Some(bucket) = filled.get_mut(bucket) {
                        bucket.add(v);
                    }
                }
                Found::Other => {
                    present = true;
                    non_numeric += 1;
                }
                Found::Missing => {}
            }
        }
        match history.publications.last() {
            Some(last) if history.publications.len() == SERIES_PAGE => after = last.position.offset,
            _ => break history.position,
        }
    };
    if scanned > 0 && !present {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "unknown_field",
            format!("no publication in the range has a field {path_text}"),
        ));
    }
    let buckets: Vec<Value> =
        filled.iter().enumerate().map(|(i, b)| b.value(from + i as u64 * step)).collect();
    Ok(json!({
        "channel": channel,
        "field": path_text,
        "from": from,
        "to": to,
        "step_ms": step,
        "position": crate::protocol::position_value(&position),
        "non_numeric": non_numeric,
        "buckets": buckets,
    }))
}

/// The publications of a time-bounded history read, with the `since` of the next page.
pub(crate) fn next_page(query: &HistoryQuery, publications: &[Arc<Publication>]) -> Option<u64> {
    if !query.is_forward() || publications.len() < query.limit {
        return None;
    }
    publications.last().map(|p| p.position.offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_unix_milliseconds_or_rfc3339() {
        assert_eq!(parse_time("from", "1733390000000").expect("ms"), 1_733_390_000_000);
        assert_eq!(parse_time("from", "2024-12-05T09:13:20Z").expect("utc"), 1_733_390_000_000);
        assert_eq!(parse_time("from", "2024-12-05T10:13:20.5+01:00").expect("offset"), 1_733_390_000_500);
        for bad in
            ["", "yesterday", "2024-12-05", "-5", "1e3", "1969-12-31T23:59:59Z", "99999999999999999999"]
        {
            let e = parse_time("from", bad).expect_err(bad);
            assert_eq!(e.code, "invalid_time", "{bad}");
        }
    }

    #[test]
    fn steps_have_units() {
        assert_eq!(parse_step("60s").expect("s"), 60_000);
        assert_eq!(parse_step("500ms").expect("ms"), 500);
        assert_eq!(parse_step("5m").expect("m"), 300_000);
        assert_eq!(parse_step("1d").expect("d"), 86_400_000);
        for bad in ["", "0s", "60", "s", "1y", "-1s", "99999999999999999999d"] {
            assert_eq!(parse_step(bad).expect_err(bad).code, "invalid_range", "{bad}");
        }
    }
}
