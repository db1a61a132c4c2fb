//! The dashboard at `/`: three files built from `web/` and compiled into the binary, so that
//! `livehub serve` shows it on a machine without Node.js and without a network.

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::App;

/// One embedded file.
struct Asset {
    body: &'static [u8],
    content_type: &'static str,
}

const INDEX: Asset =
    Asset { body: include_bytes!("../../../web/dist/index.html"), content_type: "text/html; charset=utf-8" };
const SCRIPT: Asset = Asset {
    body: include_bytes!("../../../web/dist/app.js"),
    content_type: "text/javascript; charset=utf-8",
};
const STYLE: Asset =
    Asset { body: include_bytes!("../../../web/dist/app.css"), content_type: "text/css; charset=utf-8" };

/// Everything the page loads comes from this server; the live connection goes back to it too.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// `GET /`.
pub(crate) async fn index(State(app): State<App>, headers: HeaderMap) -> Response {
    serve(&app, &INDEX, &headers)
}

/// `GET /assets/app.js`.
pub(crate) async fn script(State(app): State<App>, headers: HeaderMap) -> Response {
    serve(&app, &SCRIPT, &headers)
}

/// `GET /assets/app.css`.
pub(crate) async fn style(State(app): State<App>, headers: HeaderMap) -> Response {
    serve(&app, &STYLE, &headers)
}

fn serve(app: &App, asset: &Asset, headers: &HeaderMap) -> Response {
    if !app.config().dashboard.enabled {
        return crate::ApiError::new(StatusCode::NOT_FOUND, "not_found", "the dashboard is disabled")
            .into_response();
    }
    // The names carry no content hash, so browsers revalidate every load; the ETag makes that a
    // 304 with no body.
    let etag = etag(asset.body);
    let cache = [
        (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (ETAG, HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\""))),
        (HeaderName::from_static("x-content-type-options"), HeaderValue::from_static("nosniff")),
        (
            HeaderName::from_static("content-security-policy"),
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
    ];
    let fresh = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"));
    if fresh {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    (cache, [(CONTENT_TYPE, HeaderValue::from_static(asset.content_type))], asset.body).into_response()
}

/// A strong validator: FNV-1a of the bytes, which only changes with a new build.
fn etag(body: &[u8]) -> String {
    let hash = body
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3));
    format!("\"{hash:016x}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_differ_by_content_and_are_quoted() {
        assert_ne!(etag(b"a"), etag(b"b"));
        assert_eq!(etag(b"a"), etag(b"a"));
        assert!(etag(b"").starts_with('"') && etag(b"").ends_with('"'));
    }
}
