//! Cross-origin access for browsers on other origins: the HTTP API, SSE and the polling
//! endpoints. (WebSocket ignores CORS; its origin check is in `access`.)

use axum::http::{header, HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::poll::CURSOR_HEADER;
use crate::Config;

/// How long browsers may cache a preflight answer: an hour saves a round trip per request.
const PREFLIGHT_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// The CORS layer `config` asks for: any origin while auth is off and nothing is configured;
/// otherwise only the listed origins (`[cors]`, else `[auth.origins]`), with credentials.
pub(crate) fn layer(config: &Config) -> CorsLayer {
    let base = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("last-event-id"),
            HeaderName::from_static("idempotency-key"),
        ])
        .expose_headers([HeaderName::from_static(CURSOR_HEADER), header::RETRY_AFTER])
        .max_age(PREFLIGHT_MAX_AGE);
    let listed = if config.cors.allowed_origins.is_empty() {
        &config.auth.origins.allowed
    } else {
        &config.cors.allowed_origins
    };
    if listed.iter().any(|o| o == "*") || (listed.is_empty() && !config.auth.is_enabled()) {
        return base.allow_origin(AllowOrigin::any());
    }
    let origins: Vec<HeaderValue> = listed
        .iter()
        .filter(|o| !o.contains('*'))
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    let wildcards: Vec<String> = listed.iter().filter(|o| o.contains("://*.")).cloned().collect();
    base.allow_credentials(true).allow_origin(AllowOrigin::predicate(move |origin, _| {
        origins.contains(origin)
            || origin.to_str().is_ok_and(|origin| wildcards.iter().any(|w| matches_wildcard(w, origin)))
    }))
}

/// Whether `origin` (`https://a.example.com`) matches `pattern` (`https://*.example.com`): same
/// scheme, and at least one label in place of the `*`.
fn matches_wildcard(pattern: &str, origin: &str) -> bool {
    let Some((scheme, suffix)) = pattern.split_once("://*.") else { return false };
    let Some(rest) = origin.strip_prefix(scheme).and_then(|r| r.strip_prefix("://")) else { return false };
    rest.len() > suffix.len() + 1
        && rest.ends_with(suffix)
        && rest.as_bytes()[rest.len() - suffix.len() - 1] == b'.'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_origins_need_a_subdomain_and_the_same_scheme() {
        let p = "https://*.example.com";
        assert!(matches_wildcard(p, "https://a.example.com"));
        assert!(matches_wildcard(p, "https://a.b.example.com"));
        assert!(!matches_wildcard(p, "https://example.com"));
        assert!(!matches_wildcard(p, "http://a.example.com"));
        assert!(!matches_wildcard(p, "https://evilexample.com"));
        assert!(!matches_wildcard(p, "https://a.example.com.evil.org"));
    }
}
