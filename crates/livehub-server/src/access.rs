//! Access control at the edge: where credentials come from, the origin check, the per-address
//! connection, publish and read limits, and the counters of what was refused.
//!
//! `livehub-auth` decides; this module only gathers what it needs from a request, and turns its
//! refusals into HTTP answers and close codes.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;

use axum::extract::{ConnectInfo, Request};
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use livehub_auth::{
    is_token_shaped, AuthConfigError, AuthError, Authenticator, ConnectionGuard, ConnectionLimiter,
    HostPolicy, Identity, KeyedLimiter, OriginConfig, OriginPolicy, RateLimits, TokenBucket,
};
use livehub_core::{ChannelFilter, ChannelName, Disconnect};

use crate::error::ApiError;
use crate::Config;

/// Query parameters that may carry a token: browsers cannot set headers on a WebSocket or an
/// `EventSource`.
pub(crate) const TOKEN_PARAMS: [&str; 2] = ["token", "access_token"];

/// Why a credential that is not a token is refused in the query string or the cookie (an API
/// key, as the authenticator would read it); it never quotes the key.
const API_KEY_CARRIER: &str = "API keys are accepted only in the Authorization: Bearer header";

/// How often idle per-address publish, read and failure buckets are dropped.
pub(crate) const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Codes of the limits outside access control that `/api/metrics` counts with the refusals.
const LIMIT_CODES: [&str; 4] = ["too_many_subscriptions", "invalid_channel", "too_large", "message_too_big"];

tokio::task_local! {
    /// The client address of the request being handled, set by [`with_peer`] around every
    /// request. The per-address failure budget needs it where the REST handlers check
    /// credentials ([`Access::identify_api`]), which know no address otherwise; long-lived
    /// connections pass theirs to [`Access::admit`]. Outside a request (a live connection's
    /// `refresh`) there is none, and the budget is not consulted.
    static PEER: IpAddr;
}

/// The address [`with_peer`] recorded for the request being handled, if any.
fn current_peer() -> Option<IpAddr> {
    PEER.try_with(|peer| *peer).ok()
}

/// A router layer: runs the request with its client address where [`Access`] can find it.
pub(crate) async fn with_peer(request: Request, next: Next) -> Response {
    match request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip()) {
        Some(peer) => PEER.scope(peer, next.run(request)).await,
        None => next.run(request).await,
    }
}

/// The access state every handler shares: verifier, limiters and refusal counters.
pub(crate) struct Access {
    authenticator: Authenticator,
    /// The identity of every caller without a credential (everyone, while auth is off): built
    /// once and shared, so an anonymous connection holds a pointer rather than its own grants.
    anonymous: Arc<Identity>,
    /// Origins allowed to call the HTTP API from a browser: the CORS list. Checked on the server
    /// too, because a form or `text/plain` POST reaches it without a preflight, cookie included.
    api_origins: OriginPolicy,
    /// The names the server is reached by, against DNS rebinding: checked with the origin.
    hosts: HostPolicy,
    limits: RateLimits,
    connections: ConnectionLimiter<IpAddr>,
    publishes: KeyedLimiter<IpAddr>,
    reads: KeyedLimiter<IpAddr>,
    /// Failed credential checks per address: spent on each failure, and once empty every
    /// credential from the address is refused unverified.
    failures: KeyedLimiter<IpAddr>,
    // Refusals are rare next to messages; a mutex-guarded map keeps the code simple.
    refused: Mutex<BTreeMap<&'static str, u64>>,
}

/// What a long-lived connection holds from its admission: who it is and its per-address slot.
pub(crate) struct Admission {
    /// The caller.
    pub(crate) identity: Arc<Identity>,
    /// Frees the address's connection slot when dropped.
    pub(crate) _slot: Option<ConnectionGuard<IpAddr>>,
}

impl Access {
    /// Builds the verifier from the configuration; a bad key file or limit is an error at start.
    pub(crate) fn new(config: &Config) -> Result<Self, AuthConfigError> {
        config.rate_limits.validate()?;
        let limits = config.rate_limits.clone();
        let cors = &config.cors.allowed_origins;
        let api_origins = if cors.is_empty() {
            OriginPolicy::new(&config.auth.origins, config.auth.is_enabled())?
        } else {
            OriginPolicy::new(&OriginConfig { allowed: cors.clone() }, config.auth.is_enabled())?
        };
        let authenticator = Authenticator::new(&config.auth)?;
        let hosts = HostPolicy::new(&config.auth.allowed_hosts, config.auth.is_enabled())?;
        if authenticator.enabled() && !hosts.is_enabled() {
            tracing::warn!(
                "auth is on but [auth] allowed_hosts is empty: a DNS-rebinding page can pass as this \
                 server's own origin; list the names clients use to reach it"
            );
        }
        Ok(Self {
            hosts,
            anonymous: Arc::new(authenticator.anonymous()),
            authenticator,
            api_origins,
            connections: ConnectionLimiter::new(limits.connections_per_ip),
            publishes: KeyedLimiter::new(limits.publishes_per_sec_per_ip, limits.publish_burst_per_ip),
            reads: KeyedLimiter::new(limits.reads_per_sec_per_ip, limits.read_burst_per_ip),
            failures: KeyedLimiter::new(
                limits.auth_failures_per_sec_per_ip,
                limits.auth_failure_burst_per_ip,
            ),
            limits,
            refused: Mutex::new(BTreeMap::new()),
        })
    }

    /// Whether credentials are checked at all.
    pub(crate) fn enabled(&self) -> bool {
        self.authenticator.enabled()
    }

    /// Who the request is, from its credential (or anonymous when it has none and that is
    /// allowed).
    /// `peer`'s failure budget is checked first and spent on a failure.
    fn identify(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        peer: Option<IpAddr>,
    ) -> Result<Arc<Identity>, AuthError> {
        // With auth off, a stray credential (a cookie from a secured instance on another port of
        // the same host, say) must not lock anyone out of an open server.
        if !self.authenticator.enabled() {
            return Ok(Arc::clone(&self.anonymous));
        }
        let Some((credential, carrier)) = credential(headers, query, self.authenticator.cookie_name()) else {
            if self.authenticator.required() {
                return Err(self.refuse(AuthError::Unauthorized("missing credentials")));
            }
            return Ok(Arc::clone(&self.anonymous));
        };
        self.throttled(peer, || {
            // A URL or a cookie ends up in proxy logs, browser history and storage: fine for a
            // short-lived token, not for a key that lives until it is revoked.
            if carrier != Carrier::Header && !is_token_shaped(&credential) {
                Err(AuthError::Unauthorized(API_KEY_CARRIER))
            } else {
                self.authenticator.verify_credential(&credential)
            }
        })
    }

    /// Runs a credential check under `peer`'s failure budget: an address that spent it is
    /// refused before its credential is even looked at (a guesser gets one try a second, and
    /// costs no signature check), and a failed check spends from it.
    fn throttled(
        &self,
        peer: Option<IpAddr>,
        verify: impl FnOnce() -> Result<Identity, AuthError>,
    ) -> Result<Arc<Identity>, AuthError> {
        let now = Instant::now();
        if peer.is_some_and(|peer| !self.failures.has_token(&peer, now)) {
            return Err(self.refuse(AuthError::RateLimited));
        }
        let verified = verify();
        if verified.is_err() {
            if let Some(peer) = peer {
                self.failures.try_take(&peer, now);
            }
        }
        verified.map(Arc::new).map_err(|e| self.refuse(e))
    }

    /// Who an HTTP API request is, after checking its browser origin against the API's.
    pub(crate) fn identify_api(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Arc<Identity>, AuthError> {
        let origin = headers.get(ORIGIN).and_then(|v| v.to_str().ok());
        let host = headers.get(HOST).and_then(|v| v.to_str().ok());
        self.hosts.check(host).map_err(|e| self.refuse(e))?;
        self.api_origins.check(origin, host).map_err(|e| self.refuse(e))?;
        self.identify(headers, query, current_peer())
    }

    /// Admits a long-lived connection (WebSocket, SSE, a long poll): the origin, the credential
    /// and a connection slot for the address.
    pub(crate) fn admit(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        peer: IpAddr,
    ) -> Result<Admission, AuthError> {
        self.check_origin(headers)?;
        let identity = self.identify(headers, query, Some(peer))?;
        // A token inside its leeway verifies, but a stream opened with it would end at once:
        // say so now, so the client fetches a fresh one instead of looping.
        if identity.is_expired(SystemTime::now()) {
            return Err(self.refuse(AuthError::TokenExpired));
        }
        let slot = if self.limits.connections_per_ip == 0 {
            None
        } else {
            Some(self.connections.try_acquire(peer).map_err(|e| self.refuse(e))?)
        };
        Ok(Admission { identity, _slot: slot })
    }

    /// Admits an MQTT connection by the credential its `CONNECT` carries (the password, see
    /// `docs/mqtt.md`): a token or an API key, checked under the address's failure budget like
    /// any other, and a connection slot for the address. There is no browser origin to check.
    pub(crate) fn admit_credential(
        &self,
        credential: Option<&str>,
        peer: IpAddr,
    ) -> Result<Admission, AuthError> {
        let identity = match credential.filter(|c| !c.is_empty()) {
            _ if !self.authenticator.enabled() => Arc::clone(&self.anonymous),
            None if self.authenticator.required() => {
                return Err(self.refuse(AuthError::Unauthorized("missing credentials")))
            }
            None => Arc::clone(&self.anonymous),
            Some(credential) => {
                self.throttled(Some(peer), || self.authenticator.verify_credential(credential))?
            }
        };
        if identity.is_expired(SystemTime::now()) {
            return Err(self.refuse(AuthError::TokenExpired));
        }
        let slot = if self.limits.connections_per_ip == 0 {
            None
        } else {
            Some(self.connections.try_acquire(peer).map_err(|e| self.refuse(e))?)
        };
        Ok(Admission { identity, _slot: slot })
    }

    /// Refuses a request to a host name not in `[auth] allowed_hosts`, or a browser request from
    /// an origin the policy does not allow.
    pub(crate) fn check_origin(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        let origin = headers.get(ORIGIN).and_then(|v| v.to_str().ok());
        let host = headers.get(HOST).and_then(|v| v.to_str().ok());
        self.hosts.check(host).map_err(|e| self.refuse(e))?;
        self.authenticator.origins().check(origin, host).map_err(|e| self.refuse(e))
    }

    /// Whether `identity` may read `filter` (subscribe, stream, history); a refusal is counted.
    pub(crate) fn may_read(&self, identity: &Identity, filter: &ChannelFilter) -> Result<(), AuthError> {
        identity.may_subscribe(filter).map_err(|e| self.refuse(e))
    }

    /// Whether `identity` may publish to `channel`; a refusal is counted. `$` channels pass here:
    /// the node refuses them with `read_only_channel` whoever asks, and that is the code clients
    /// know.
    pub(crate) fn may_publish(&self, identity: &Identity, channel: &ChannelName) -> Result<(), AuthError> {
        if channel.is_system() {
            return Ok(());
        }
        identity.may_publish(channel).map_err(|e| self.refuse(e))
    }

    /// Takes `n` publications from `peer`'s budget, all or none.
    pub(crate) fn publish_allowed(&self, peer: IpAddr, n: usize) -> Result<(), AuthError> {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        self.publishes.check_n(&peer, n, Instant::now()).map_err(|e| self.refuse(e))
    }

    /// Takes one read (a REST read, a long poll, an SSE open) from `peer`'s budget.
    pub(crate) fn read_allowed(&self, peer: IpAddr) -> Result<(), AuthError> {
        self.reads.check(&peer, Instant::now()).map_err(|e| self.refuse(e))
    }

    /// A fresh per-connection message budget, or `None` when unlimited.
    pub(crate) fn message_bucket(&self) -> Option<TokenBucket> {
        (self.limits.messages_per_sec > 0.0).then(|| {
            TokenBucket::new(self.limits.messages_per_sec, self.limits.message_burst.max(1), Instant::now())
        })
    }

    /// Verifies a token sent over a live connection (`refresh`), under `peer`'s failure budget
    /// like any credential: one connection must not be a free token-guessing loop.
    pub(crate) fn refresh(&self, token: &str, peer: IpAddr) -> Result<Arc<Identity>, AuthError> {
        self.throttled(Some(peer), || self.authenticator.verify_token(token))
    }

    /// Counts a refusal by its code and hands it back.
    pub(crate) fn refuse(&self, error: AuthError) -> AuthError {
        self.count(error.code());
        error
    }

    /// Counts an error the channel model or the framing answered, when it is a limit: the
    /// subscription count, the channel-name length (`invalid_channel`), the data and message size.
    pub(crate) fn count_limit(&self, code: &'static str) {
        if LIMIT_CODES.contains(&code) {
            self.count(code);
        }
    }

    fn count(&self, code: &'static str) {
        let mut refused = self.refused.lock();
        *refused.entry(code).or_default() += 1;
    }

    /// Refusals so far, by code.
    pub(crate) fn refused(&self) -> BTreeMap<&'static str, u64> {
        self.refused.lock().clone()
    }

    /// Drops idle per-address buckets.
    pub(crate) fn sweep(&self) {
        self.publishes.sweep(Instant::now());
        self.reads.sweep(Instant::now());
        self.failures.sweep(Instant::now());
    }
}

/// Where a request carried its credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Carrier {
    /// `Authorization: Bearer`: the only place an API key is accepted.
    Header,
    /// `?token=` or `?access_token=`.
    Query,
    /// The auth cookie.
    Cookie,
}

/// The credential of a request and where it was found: `Authorization: Bearer`, then `?token=` /
/// `?access_token=`, then the cookie.
pub(crate) fn credential(
    headers: &HeaderMap,
    query: Option<&str>,
    cookie: &str,
) -> Option<(String, Carrier)> {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|v| !v.is_empty());
    if let Some(bearer) = bearer {
        return Some((bearer.to_owned(), Carrier::Header));
    }
    let from_query = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, v)| TOKEN_PARAMS.contains(&k.as_ref()) && !v.is_empty())
        .map(|(_, v)| (v.into_owned(), Carrier::Query));
    if from_query.is_some() {
        return from_query;
    }
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == cookie && !value.is_empty())
        .map(|(_, value)| (value.to_owned(), Carrier::Cookie))
}

/// How long until `identity`'s token expires, if it does.
pub(crate) fn time_left(identity: &Identity) -> Option<Duration> {
    identity.expires_at().map(|at| at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// The close frame for a refusal on a WebSocket: 1008 (policy) with the code as reason, or 4029
/// (try again later) for limits.
pub(crate) fn disconnect_for(error: &AuthError) -> Disconnect {
    match error {
        AuthError::TooManyConnections | AuthError::RateLimited => Disconnect::try_again_later(error.code()),
        AuthError::TokenExpired => Disconnect::TOKEN_EXPIRED,
        _ => Disconnect::policy(error.code()),
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::FORBIDDEN);
        ApiError::new(status, e.code(), e.to_string())
    }
}

/// The HTTP answer for a refusal (a 429 also says when to try again).
pub(crate) fn refusal(error: AuthError) -> Response {
    ApiError::from(error).into_response()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).expect("valid header"));
        }
        map
    }

    #[test]
    fn credentials_are_found_in_order() {
        let cookie = "livehub_token";
        let all = headers(&[("authorization", "Bearer H"), ("cookie", "a=1; livehub_token=C")]);
        let found = |headers: &HeaderMap, query: Option<&str>| credential(headers, query, cookie);
        assert_eq!(found(&all, Some("token=Q")), Some(("H".to_owned(), Carrier::Header)));
        let no_header = headers(&[("cookie", "a=1; livehub_token=C")]);
        assert_eq!(found(&no_header, Some("x=1&access_token=Q")), Some(("Q".to_owned(), Carrier::Query)));
        assert_eq!(found(&no_header, Some("x=1")), Some(("C".to_owned(), Carrier::Cookie)));
        assert_eq!(credential(&HeaderMap::new(), None, cookie), None);
        let basic = headers(&[("authorization", "Basic abc")]);
        assert_eq!(credential(&basic, None, cookie), None, "only bearer tokens");
        let empty = headers(&[("authorization", "Bearer "), ("cookie", "livehub_token=")]);
        assert_eq!(credential(&empty, Some("token="), cookie), None, "empty values are no credential");
    }

    #[test]
    fn refusals_map_to_close_codes() {
        assert_eq!(disconnect_for(&AuthError::TokenExpired).code, 4003);
        assert_eq!(disconnect_for(&AuthError::TooManyConnections).code, 4029);
        assert_eq!(disconnect_for(&AuthError::OriginNotAllowed).code, 1008);
        assert_eq!(disconnect_for(&AuthError::OriginNotAllowed).reason, "origin_not_allowed");
    }
}
