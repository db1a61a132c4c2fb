//! The dashboard at `/`: the files built from `web/` (`web/dist`) compiled into the binary, so
//! that `livehub serve` shows it on a machine without Node.js and without a network.
//!
//! `index.html` is served at `/`; the scripts and the stylesheet at `/assets/{name}`: `app.js`
//! (an ES module), `app.css`, and the chunks `app.js` imports on demand (`chunk-<hash>.js`:
//! the SignalR and MQTT clients), whose names `build.rs` reads from `web/dist`.

use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::App;

/// Every file of `web/dist`, by name, sorted.
const FILES: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/dashboard_files.rs"));

/// One embedded file.
struct Asset {
    body: &'static [u8],
    content_type: &'static str,
}

impl Asset {
    /// The file `name` of `web/dist`, with the type its extension says; `None` when there is no
    /// such file or it is not a script or a stylesheet (the page itself is served only at `/`).
    fn named(name: &str) -> Option<Asset> {
        let content_type = match name.rsplit_once('.')?.1 {
            "js" => "text/javascript; charset=utf-8",
            "css" => "text/css; charset=utf-8",
            _ => return None,
        };
        Some(Asset { body: file(name)?, content_type })
    }
}

fn file(name: &str) -> Option<&'static [u8]> {
    FILES.binary_search_by(|(n, _)| (*n).cmp(name)).ok().map(|i| FILES[i].1)
}

/// Everything the page loads comes from this server; the live connection goes back to it too.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// `GET /`.
pub(crate) async fn index(State(app): State<App>, headers: HeaderMap) -> Response {
    let page =
        Asset { body: file("index.html").unwrap_or_default(), content_type: "text/html; charset=utf-8" };
    serve(&app, Some(page), &headers)
}

/// `GET /assets/{name}`.
pub(crate) async fn asset(State(app): State<App>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    serve(&app, Asset::named(&name), &headers)
}

fn serve(app: &App, asset: Option<Asset>, headers: &HeaderMap) -> Response {
    if !app.config().dashboard.enabled {
        return crate::ApiError::new(StatusCode::NOT_FOUND, "not_found", "the dashboard is disabled")
            .into_response();
    }
    let Some(asset) = asset else {
        return crate::ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such file").into_response();
    };
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
    fn the_built_files_are_embedded_and_typed() {
        assert!(file("index.html").is_some_and(|body| !body.is_empty()));
        assert_eq!(Asset::named("app.js").map(|a| a.content_type), Some("text/javascript; charset=utf-8"));
        assert_eq!(Asset::named("app.css").map(|a| a.content_type), Some("text/css; charset=utf-8"));
        assert!(Asset::named("index.html").is_none(), "the page is served at / only");
        assert!(Asset::named("nothing.js").is_none());
        assert!(Asset::named("../app.js").is_none());
        assert!(FILES.windows(2).all(|w| w[0].0 < w[1].0), "sorted, for the binary search");
    }

    #[test]
    fn etags_differ_by_content_and_are_quoted() {
        assert_ne!(etag(b"a"), etag(b"b"));
        assert_eq!(etag(b"a"), etag(b"a"));
        assert!(etag(b"").starts_with('"') && etag(b"").ends_with('"'));
    }
}
