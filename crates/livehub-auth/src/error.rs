//! The errors of the crate: [`AuthError`] is what a client sees, [`AuthConfigError`] is what an
//! operator sees when the configuration or a key file is wrong.

use std::fmt;
use std::path::PathBuf;

/// What a denied identity tried to do; shown in [`AuthError::Forbidden`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Subscribe to a channel or pattern (or read its history).
    Subscribe,
    /// Publish to a channel.
    Publish,
    /// Use the admin API.
    Admin,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Subscribe => "subscribe to",
            Self::Publish => "publish to",
            Self::Admin => "use the admin API on",
        })
    }
}

/// A refused connection, subscription or publication. [`AuthError::code`] is the stable,
/// documented code a client sees, and [`AuthError::status`] the HTTP status it maps to.
///
/// No message ever contains the presented token or key, nor anything that depends on whether a
/// channel exists: reasons are fixed strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credentials where they are required, or credentials that are malformed, badly signed,
    /// from the wrong issuer or for the wrong audience, or use an algorithm that is not allowed.
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// The token's `exp` has passed (beyond the allowed clock skew).
    #[error("the token has expired")]
    TokenExpired,
    /// The token's `nbf` lies in the future (beyond the allowed clock skew).
    #[error("the token is not valid yet")]
    TokenNotYetValid,
    /// The identity is valid but lacks the permission.
    #[error("forbidden: not allowed to {0} this channel")]
    Forbidden(Action),
    /// The request's `Origin` is not on the allow-list.
    #[error("origin not allowed")]
    OriginNotAllowed,
    /// The request's `Host` is not in `[auth] allowed_hosts` (a DNS-rebinding page, say).
    #[error("host not allowed")]
    HostNotAllowed,
    /// A token bucket ran dry: too many messages or publications.
    #[error("rate limit exceeded, slow down")]
    RateLimited,
    /// The client's address already holds as many connections as it may.
    #[error("too many connections from this address")]
    TooManyConnections,
}

impl AuthError {
    /// The stable code for this error, as documented in `docs/protocol.md`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "unauthorized",
            Self::TokenExpired => "token_expired",
            Self::TokenNotYetValid => "token_not_yet_valid",
            Self::Forbidden(_) => "forbidden",
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::HostNotAllowed => "host_not_allowed",
            Self::RateLimited => "rate_limited",
            Self::TooManyConnections => "too_many_connections",
        }
    }

    /// The HTTP status code that goes with [`AuthError::code`].
    pub fn status(&self) -> u16 {
        match self {
            Self::Unauthorized(_) | Self::TokenExpired | Self::TokenNotYetValid => 401,
            Self::Forbidden(_) | Self::OriginNotAllowed | Self::HostNotAllowed => 403,
            Self::RateLimited | Self::TooManyConnections => 429,
        }
    }
}

/// A configuration or key-file problem found while building an [`crate::Authenticator`] or an
/// [`crate::OriginPolicy`]. Messages name the offending setting or file, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    /// A key file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key (PEM file, JWKS entry or secret) could not be used.
    #[error("invalid key in {origin}: {reason}")]
    InvalidKey {
        /// Where the key came from (a path or a setting).
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `jwt.algorithms` names an algorithm this crate does not verify.
    #[error("unknown or unsupported JWT algorithm {0:?} (supported: HS256 HS384 HS512 RS256 RS384 RS512 ES256 ES384)")]
    UnknownAlgorithm(String),
    /// Both `jwt.hmac_secret` and `jwt.hmac_secret_file` are set.
    #[error("set only one of jwt.hmac_secret and jwt.hmac_secret_file")]
    ConflictingSecret,
    /// Keys are configured, but none of them can verify any allowed algorithm.
    #[error("no configured JWT key can verify any of the allowed algorithms ({0})")]
    NoUsableKey(String),
    /// A grant pattern is malformed.
    #[error("invalid pattern {pattern:?} in {context}: {reason}")]
    InvalidPattern {
        /// Where the pattern was configured (`roles.admin.subscribe`, …).
        context: String,
        /// The pattern.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A channel rule's prefix is malformed or repeated.
    #[error("invalid channel rule for prefix {prefix:?}: {reason}")]
    InvalidRule {
        /// The prefix.
        prefix: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An API key entry is malformed or repeated.
    #[error("invalid API key entry {name:?}: {reason}")]
    InvalidApiKey {
        /// The entry's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An allowed origin is malformed.
    #[error("invalid allowed origin {origin:?}: {reason}")]
    InvalidOrigin {
        /// The origin as configured.
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An allowed host is malformed.
    #[error("invalid allowed host {host:?}: {reason}")]
    InvalidHost {
        /// The host as configured.
        host: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The cookie name is not a valid cookie token.
    #[error("invalid cookie name {0:?}")]
    InvalidCookie(String),
    /// A rate limit is negative or not a number.
    #[error("invalid rate limit {0}: must be a finite number >= 0")]
    InvalidLimit(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses_are_stable() {
        let table = [
            (AuthError::Unauthorized("missing credentials"), "unauthorized", 401),
            (AuthError::TokenExpired, "token_expired", 401),
            (AuthError::TokenNotYetValid, "token_not_yet_valid", 401),
            (AuthError::Forbidden(Action::Publish), "forbidden", 403),
            (AuthError::OriginNotAllowed, "origin_not_allowed", 403),
            (AuthError::HostNotAllowed, "host_not_allowed", 403),
            (AuthError::RateLimited, "rate_limited", 429),
            (AuthError::TooManyConnections, "too_many_connections", 429),
        ];
        for (error, code, status) in table {
            assert_eq!(error.code(), code);
            assert_eq!(error.status(), status, "{code}");
        }
    }

    #[test]
    fn forbidden_names_the_action_not_the_channel() {
        assert_eq!(
            AuthError::Forbidden(Action::Subscribe).to_string(),
            "forbidden: not allowed to subscribe to this channel"
        );
    }
}
