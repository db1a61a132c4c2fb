//! The `Host` check against DNS rebinding.
//!
//! The origin check lets a page talk to its own origin, and "own" can only be judged from the
//! `Host` header. A page on `evil.example` whose name is rebound to this server's address (a
//! loopback or private one, typically) is then same-origin with it: its requests carry
//! `Host: evil.example` and `Origin: http://evil.example`, and pass. Naming the hosts the server
//! is really reached by closes that: a rebinding page cannot choose its `Host`.

use crate::error::{AuthConfigError, AuthError};

/// Which `Host` header values requests may carry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostPolicy {
    /// `(lowercase host, port)`; no port means any port.
    allowed: Vec<(String, Option<u16>)>,
}

impl HostPolicy {
    /// Builds the policy from `[auth] allowed_hosts`: `host` (any port) or `host:port`, IPv6
    /// addresses in brackets. It checks nothing while auth is off or the list is empty, so that
    /// an open or unconfigured server stays reachable under any name.
    pub fn new(allowed: &[String], auth_enabled: bool) -> Result<Self, AuthConfigError> {
        let parsed = allowed
            .iter()
            .map(|entry| {
                split_host(entry).ok_or_else(|| AuthConfigError::InvalidHost {
                    host: entry.clone(),
                    reason: "expected host or host:port (IPv6 in brackets), without scheme or path",
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { allowed: if auth_enabled { parsed } else { Vec::new() } })
    }

    /// Whether requests are checked at all.
    pub fn is_enabled(&self) -> bool {
        !self.allowed.is_empty()
    }

    /// Whether a request with this `Host` header value may proceed. Without a header (which
    /// HTTP/1.1 requires) it may not, once the policy checks anything.
    pub fn allows(&self, host: Option<&str>) -> bool {
        if self.allowed.is_empty() {
            return true;
        }
        let Some((host, port)) = host.and_then(split_host) else { return false };
        self.allowed.iter().any(|(name, want)| *name == host && want.is_none_or(|want| Some(want) == port))
    }

    /// [`HostPolicy::allows`] as a result carrying [`AuthError::HostNotAllowed`].
    pub fn check(&self, host: Option<&str>) -> Result<(), AuthError> {
        if self.allows(host) {
            Ok(())
        } else {
            Err(AuthError::HostNotAllowed)
        }
    }
}

/// Splits `host[:port]` into a lowercase host and its port, strictly: a DNS name or an IPv4
/// address, or an IPv6 address in brackets, and nothing else. Shared by the host and origin
/// policies, so that both read an authority the same way.
pub(crate) fn split_host(text: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if inside.is_empty() || !inside.chars().all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.')) {
            return None;
        }
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (format!("[{inside}]"), port)
    } else {
        let (host, port) = match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        };
        let valid = !host.is_empty()
            && !host.starts_with('.')
            && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'));
        if !valid {
            return None;
        }
        (host.to_owned(), port)
    };
    let port = match port {
        None => None,
        Some(digits)
            if !digits.is_empty() && digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(digits.parse().ok()?)
        }
        Some(_) => return None,
    };
    // A fully qualified name's trailing dot names the same host.
    let host = host.strip_suffix('.').unwrap_or(&host).to_ascii_lowercase();
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[&str], auth_enabled: bool) -> HostPolicy {
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        HostPolicy::new(&allowed, auth_enabled).expect("valid hosts")
    }

    #[test]
    fn host_table() {
        let listed = policy(&["live.example.com", "localhost:8080", "[::1]:8080", "10.0.0.5"], true);
        let table = [
            (Some("live.example.com"), true),
            (Some("LIVE.example.com:443"), true),
            (Some("live.example.com."), true),
            (Some("localhost:8080"), true),
            (Some("localhost:8081"), false),
            (Some("localhost"), false),
            (Some("[::1]:8080"), true),
            (Some("[::1]"), false),
            (Some("10.0.0.5:9000"), true),
            (Some("evil.example"), false),
            (Some("evil.example:8080"), false),
            (Some("live.example.com.evil.example"), false),
            (Some("live.example.com@evil"), false),
            (None, false),
        ];
        for (host, want) in table {
            assert_eq!(listed.allows(host), want, "{host:?}");
        }
        assert_eq!(listed.check(Some("evil.example")), Err(AuthError::HostNotAllowed));
    }

    #[test]
    fn an_empty_list_or_auth_off_checks_nothing() {
        for policy in [policy(&[], true), policy(&["live.example.com"], false)] {
            assert!(!policy.is_enabled());
            assert!(policy.allows(Some("evil.example")) && policy.allows(None));
        }
    }

    #[test]
    fn rejects_malformed_entries() {
        for bad in ["https://a.com", "a.com/", "a.com:", "a.com:99999", "[::1", "", ".a.com", "a b"] {
            assert!(HostPolicy::new(&[bad.to_owned()], true).is_err(), "{bad}");
        }
    }
}
