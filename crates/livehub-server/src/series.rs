//! The downsampling endpoint `…/series`: numeric fields of a channel's JSON publications as
//! count, min, avg, max and last per time bucket, for charts that open with a range already
//! drawn (the dashboard asks for every field of a chart in one request).

use axum::http::StatusCode;
use livehub_core::{ChannelName, HistoryQuery, Node, Payload, Publication};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::series_fields::{FieldTree, Found};
use crate::timeq::{check_range, parse_step, parse_time};

/// Most buckets one field's series holds: more points than any chart is wide.
pub(crate) const MAX_BUCKETS: u64 = 10_000;

/// Most buckets one answer holds over all its fields: about 8 MB of JSON.
pub(crate) const MAX_CELLS: u64 = 100_000;

/// Most fields one request reads: the total and every core of a 127-core host.
pub(crate) const MAX_FIELDS: usize = 128;

/// Most publications one series request reads: bounds the work of one request (a day of a
/// 2 Hz channel).
pub(crate) const MAX_SCAN: usize = 200_000;

/// Widest time range one series request may cover: 31 days.
pub(crate) const MAX_SPAN_MS: u64 = 31 * 24 * 3600 * 1000;

/// The range a series covers when the request names no `from`: the last hour.
const DEFAULT_SPAN_MS: u64 = 3600 * 1000;

/// The bucket width when the request names no `step`: a minute.
const DEFAULT_STEP_MS: u64 = 60_000;

/// Publications read per page while computing a series.
const PAGE: usize = 1000;

/// What `…/series` was asked.
#[derive(Debug, Default)]
pub(crate) struct SeriesParams {
    /// The dotted paths, in the order asked, each once.
    pub(crate) fields: Vec<String>,
    pub(crate) from: Option<u64>,
    pub(crate) to: Option<u64>,
    pub(crate) step: Option<u64>,
}

impl SeriesParams {
    /// Parses the query string; unknown parameters are ignored, like the other read endpoints.
    /// `field` may repeat; a repeated path is read once.
    pub(crate) fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let mut params = Self::default();
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match key.as_ref() {
                "field" if !params.fields.iter().any(|f| *f == value) => {
                    params.fields.push(value.into_owned())
                }
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

/// One field's buckets and what it met that was not a number.
struct FieldSeries {
    buckets: Vec<Bucket>,
    non_numeric: u64,
    present: bool,
}

/// Where a series stands: what the store keeps of the channel, for an answer that says so.
pub(crate) struct SeriesContext {
    /// `memory`, `sqlite` or `postgres`: where history is kept.
    pub(crate) store: &'static str,
}

fn unknown_field(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "unknown_field", message)
}

/// Computes the series of `channel` for `params`, reading its history a page at a time and
/// every publication once, whatever the number of fields.
pub(crate) async fn series(
    node: &Node,
    channel: &ChannelName,
    params: SeriesParams,
    context: SeriesContext,
) -> Result<Value, ApiError> {
    let paths: Vec<Vec<&str>> = params.fields.iter().map(|f| f.split('.').collect()).collect();
    if paths.is_empty() || paths.iter().flatten().any(|s| s.is_empty()) {
        return Err(unknown_field("field must name a value in the data, such as field=cpu.total"));
    }
    if paths.len() > MAX_FIELDS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "too_many_fields",
            format!("{} fields asked; at most {MAX_FIELDS}", paths.len()),
        ));
    }
    let to = params.to.unwrap_or_else(|| node.config().clock.now_millis() + 1);
    let from = params.from.unwrap_or_else(|| to.saturating_sub(DEFAULT_SPAN_MS));
    check_range(Some(from), Some(to))?;
    if to - from > MAX_SPAN_MS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "range_too_large",
            format!("a series covers at most {} days", MAX_SPAN_MS / 86_400_000),
        ));
    }
    let step = params.step.unwrap_or(DEFAULT_STEP_MS);
    let buckets = (to - from).div_ceil(step);
    let cells = buckets.saturating_mul(paths.len() as u64);
    if buckets > MAX_BUCKETS || cells > MAX_CELLS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "too_many_buckets",
            format!(
                "{buckets} buckets asked for {} fields; at most {MAX_BUCKETS} per field and {MAX_CELLS} in all: \
                 make step larger, the range shorter or ask fewer fields",
                paths.len()
            ),
        ));
    }

    let tree = FieldTree::new(paths.iter().map(Vec::as_slice));
    let mut series: Vec<FieldSeries> = (0..paths.len())
        .map(|_| FieldSeries {
            buckets: vec![Bucket::default(); buckets as usize],
            non_numeric: 0,
            present: false,
        })
        .collect();
    let mut found = vec![Found::Missing; paths.len()];
    let mut scanned = 0usize;
    let mut after = 0;
    let mut oldest = None;
    let mut first: Option<std::sync::Arc<Publication>> = None;
    let position = loop {
        let query = HistoryQuery::after(after, PAGE).from_ms(from).to_ms(to);
        let history = node.history(channel, query).await?;
        oldest.get_or_insert(history.oldest);
        if first.is_none() {
            first = history.publications.first().cloned();
        }
        scanned += history.publications.len();
        if scanned > MAX_SCAN {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "range_too_large",
                format!("more than {MAX_SCAN} publications in the range: make it shorter"),
            ));
        }
        for publication in &history.publications {
            let Payload::Json(bytes) = &publication.data else { continue };
            if tree.read(bytes, &mut found).is_none() {
                continue;
            }
            let bucket = (publication.ts.saturating_sub(from) / step) as usize;
            for (field, found) in series.iter_mut().zip(&found) {
                match *found {
                    Found::Number(v) => {
                        field.present = true;
                        if let Some(bucket) = field.buckets.get_mut(bucket) {
                            bucket.add(v);
                        }
                    }
                    Found::Other => {
                        field.present = true;
                        field.non_numeric += 1;
                    }
                    Found::Missing => {}
                }
            }
        }
        match history.publications.last() {
            Some(last) if history.publications.len() == PAGE => after = last.position.offset,
            _ => break history.position,
        }
    };
    if scanned > 0 && !series.iter().any(|s| s.present) {
        let names = params.fields.join(", ");
        return Err(unknown_field(format!("no publication in the range has a field {names}")));
    }

    // When the oldest publication held is inside the range, the chart can say that nothing
    // before it is kept (a store in memory holds only its hot window).
    let oldest = oldest.unwrap_or(position.offset + 1);
    let oldest_ts = match first {
        Some(p) if p.position.offset == oldest => Some(p.ts),
        _ if oldest > position.offset => None,
        _ => node
            .history(channel, HistoryQuery::after(oldest - 1, 1))
            .await?
            .publications
            .first()
            .map(|p| p.ts),
    };
    let policy = node.config().history.policy_for(channel.as_str());
    let buckets_json = |s: &FieldSeries| -> Vec<Value> {
        s.buckets.iter().enumerate().map(|(i, b)| b.value(from + i as u64 * step)).collect()
    };
    let mut answer = json!({
        "channel": channel,
        "from": from,
        "to": to,
        "step_ms": step,
        "position": crate::protocol::position_value(&position),
        "oldest_ts": oldest_ts,
        "store": context.store,
        "retention": { "size": policy.size, "max_age_secs": policy.max_age.as_secs() },
    });
    if let [only] = series.as_slice() {
        answer["field"] = json!(params.fields[0]);
        answer["non_numeric"] = json!(only.non_numeric);
        answer["buckets"] = Value::Array(buckets_json(only));
    } else {
        answer["fields"] = json!(params.fields);
        answer["series"] = series
            .iter()
            .zip(&params.fields)
            .map(|(s, field)| json!({ "field": field, "non_numeric": s.non_numeric, "buckets": buckets_json(s) }))
            .collect();
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_repeat_and_are_read_once() {
        let params = SeriesParams::parse(Some("field=a.b&field=c&field=a.b&step=10s")).expect("parses");
        assert_eq!(params.fields, vec!["a.b", "c"]);
        assert_eq!(params.step, Some(10_000));
    }
}
