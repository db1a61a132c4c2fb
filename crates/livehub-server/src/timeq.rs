//! Reading history by time: the `from`/`to` and `step` parameters of `…/history` and
//! `…/series` (the series itself is in `series.rs`).

use std::sync::Arc;

use axum::http::StatusCode;
use livehub_core::{HistoryQuery, Publication};

use crate::error::ApiError;

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
