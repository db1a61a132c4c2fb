//! The `Origin` check for WebSocket and SSE (cross-site WebSocket hijacking) and CORS.
//!
//! Browsers always send `Origin` on WebSocket handshakes and cross-origin requests; other
//! clients usually send none and cannot be protected this way, so a missing `Origin` is allowed.

use crate::config::OriginConfig;
use crate::error::{AuthConfigError, AuthError};
use crate::hosts::split_host;

/// Which origins may connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginPolicy {
    any: bool,
    exact: Vec<Origin>,
    /// `https://*.example.com` as (scheme, `.example.com`, port).
    wildcard: Vec<Origin>,
    null: bool,
}

/// A parsed origin: lowercase scheme and host, and the port when it is not the scheme's default.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl OriginPolicy {
    /// Builds the policy. An empty list means same-origin only when `auth_enabled`, any origin
    /// otherwise; a non-empty list always admits same-origin requests too.
    pub fn new(config: &OriginConfig, auth_enabled: bool) -> Result<Self, AuthConfigError> {
        let mut policy = Self {
            any: config.allowed.is_empty() && !auth_enabled,
            exact: vec![],
            wildcard: vec![],
            null: false,
        };
        for entry in &config.allowed {
            let invalid = |reason: &str| AuthConfigError::InvalidOrigin {
                origin: entry.clone(),
                reason: reason.to_owned(),
            };
            match entry.as_str() {
                "*" => policy.any = true,
                "null" => policy.null = true,
                _ => {
                    let (scheme, rest) =
                        split_scheme(entry).ok_or_else(|| invalid("expected scheme://host[:port]"))?;
                    if let Some(suffix) = rest.strip_prefix("*.") {
                        let mut origin = parse_authority(scheme, suffix)
                            .ok_or_else(|| invalid("expected scheme://*.domain[:port] without a path"))?;
                        origin.host.insert(0, '.');
                        policy.wildcard.push(origin);
                    } else {
                        let origin = parse_authority(scheme, rest)
                            .ok_or_else(|| invalid("expected scheme://host[:port] without a path"))?;
                        policy.exact.push(origin);
                    }
                }
            }
        }
        Ok(policy)
    }

    /// A policy that allows every origin.
    pub fn allow_any() -> Self {
        Self { any: true, exact: vec![], wildcard: vec![], null: false }
    }

    /// Whether every origin is allowed.
    pub fn allows_any(&self) -> bool {
        self.any
    }

    /// Whether a request with this `Origin` header value, sent to this `Host` header value, may
    /// proceed.
    pub fn allows(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else { return true };
        if self.any {
            return true;
        }
        if origin == "null" {
            return self.null;
        }
        let Some(origin) = split_scheme(origin).and_then(|(scheme, rest)| parse_authority(scheme, rest))
        else {
            return false;
        };
        if host.is_some_and(|host| same_origin(&origin, host)) {
            return true;
        }
        self.exact.contains(&origin)
            || self.wildcard.iter().any(|w| {
                w.scheme == origin.scheme
                    && w.port == origin.port
                    && origin.host.len() > w.host.len()
                    && origin.host.ends_with(&w.host)
            })
    }

    /// [`OriginPolicy::allows`] as a result carrying [`AuthError::OriginNotAllowed`].
    pub fn check(&self, origin: Option<&str>, host: Option<&str>) -> Result<(), AuthError> {
        if self.allows(origin, host) {
            Ok(())
        } else {
            Err(AuthError::OriginNotAllowed)
        }
    }
}

/// Whether `origin` names the same host and port as the `Host` header `host`, which carries no
/// scheme: its port defaults to the origin scheme's.
fn same_origin(origin: &Origin, host: &str) -> bool {
    parse_authority(&origin.scheme, host).is_some_and(|h| h.host == origin.host && h.port == origin.port)
}

fn split_scheme(text: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = text.split_once("://")?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some((scheme, rest))
}

/// Parses `host[:port]` (IPv6 in brackets) strictly: no user info, path, query or fragment. A
/// port that is the scheme's default is no port.
fn parse_authority(scheme: &str, authority: &str) -> Option<Origin> {
    let (host, port) = split_host(authority)?;
    let scheme = scheme.to_ascii_lowercase();
    let port = port.filter(|port| Some(*port) != default_port(&scheme));
    Some(Origin { scheme, host, port })
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[&str], auth_enabled: bool) -> OriginPolicy {
        let config = OriginConfig { allowed: allowed.iter().map(|s| s.to_string()).collect() };
        OriginPolicy::new(&config, auth_enabled).expect("valid origins")
    }

    #[test]
    fn origin_table() {
        let off = policy(&[], false);
        let same = policy(&[], true);
        let listed =
            policy(&["https://app.example.com", "http://localhost:5173", "https://*.example.org"], true);
        let star = policy(&["*"], true);
        let null = policy(&["null"], true);
        let host = Some("live.example.com");
        let table = [
            // (policy, origin, host, allowed)
            (&off, Some("https://evil.test"), host, true),
            (&off, None, host, true),
            (&same, None, host, true),
            (&same, Some("https://live.example.com"), host, true),
            (&same, Some("https://LIVE.example.com:443"), host, true),
            (&same, Some("http://live.example.com"), host, true),
            (&same, Some("https://live.example.com:8443"), host, false),
            (&same, Some("https://live.example.com:8443"), Some("live.example.com:8443"), true),
            (&same, Some("http://localhost:8080"), Some("localhost:8080"), true),
            (&same, Some("http://[::1]:8080"), Some("[::1]:8080"), true),
            (&same, Some("https://evil.test"), host, false),
            (&same, Some("https://live.example.com.evil.test"), host, false),
            (&same, Some("https://live.example.com"), None, false),
            (&same, Some("null"), host, false),
            (&same, Some("garbage"), host, false),
            (&listed, Some("https://app.example.com"), host, true),
            (&listed, Some("https://app.example.com/"), host, false),
            (&listed, Some("http://app.example.com"), host, false),
            (&listed, Some("http://localhost:5173"), host, true),
            (&listed, Some("http://localhost:5174"), host, false),
            (&listed, Some("https://a.example.org"), host, true),
            (&listed, Some("https://a.b.example.org"), host, true),
            (&listed, Some("https://example.org"), host, false),
            (&listed, Some("https://badexample.org"), host, false),
            (&listed, Some("https://a.example.org:444"), host, false),
            (&listed, Some("https://user@app.example.com"), host, false),
            (&listed, Some("https://live.example.com"), host, true),
            (&star, Some("https://anything.test"), host, true),
            (&star, Some("null"), host, true),
            (&null, Some("null"), host, true),
        ];
        for (policy, origin, host, want) in table {
            assert_eq!(policy.allows(origin, host), want, "{origin:?} to {host:?}");
        }
    }

    #[test]
    fn rejects_malformed_config() {
        for bad in [
            "example.com",
            "https://",
            "https://a.com/",
            "https://a.com/path",
            "https://a.com:99999",
            "https://*",
            "ftp//x",
            "https://a b",
            "https://*.",
            "https://a.com:",
        ] {
            let config = OriginConfig { allowed: vec![bad.to_owned()] };
            assert!(OriginPolicy::new(&config, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn check_maps_to_the_error() {
        assert_eq!(
            policy(&[], true).check(Some("https://evil.test"), Some("a.test")),
            Err(AuthError::OriginNotAllowed)
        );
        assert_eq!(OriginPolicy::allow_any().check(Some("https://evil.test"), None), Ok(()));
    }
}
