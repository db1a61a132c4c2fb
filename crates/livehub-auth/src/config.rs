//! The `[auth]` and rate-limit configuration, deserialized with defaults and
//! `deny_unknown_fields`.
//!
//! Every default is the anonymous, zero-config mode: no keys, so auth is off and anyone may
//! subscribe and publish anywhere (except publishing to `$` system channels).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use crate::error::AuthConfigError;

/// Name of the cookie a browser may carry its token in, unless configured otherwise.
pub const DEFAULT_COOKIE: &str = "livehub_token";

/// Clock skew allowed on `exp` and `nbf`, unless configured otherwise: enough for servers whose
/// clocks drift a little, short enough that an expired token dies soon after its time.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;

/// Who may connect, subscribe and publish.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Whether a connection must present a token or API key. Unset means "yes as soon as any JWT
    /// key or API key is configured". `false` with keys configured lets clients without
    /// credentials connect as anonymous (and read `public` channels); `true` without keys turns
    /// auth on with nobody able to log in, except through public channel rules.
    pub required: Option<bool>,
    /// How tokens are verified.
    pub jwt: JwtConfig,
    /// What callers without credentials may do, and what every identity may do at least.
    /// Unset means everything while auth is off, and nothing once it is on.
    pub anonymous: Option<Grants>,
    /// Grants for each role a token may name in its `roles` claim.
    pub roles: BTreeMap<String, Grants>,
    /// Rules per channel prefix; the longest matching prefix wins.
    pub channels: Vec<ChannelRule>,
    /// API keys for the HTTP publish and admin API, stored as SHA-256 hashes.
    pub api_keys: Vec<ApiKeyConfig>,
    /// Which browser origins may open WebSocket and SSE connections.
    pub origins: OriginConfig,
    /// The names (`host` or `host:port`) clients reach the server by. Once auth is on and this
    /// is not empty, a request with any other `Host` header is refused with `host_not_allowed`,
    /// which stops DNS-rebinding pages from passing as the server's own origin.
    pub allowed_hosts: Vec<String>,
    /// Name of the cookie that may carry the token.
    pub cookie: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            required: None,
            jwt: JwtConfig::default(),
            anonymous: None,
            roles: BTreeMap::new(),
            channels: Vec::new(),
            api_keys: Vec::new(),
            origins: OriginConfig::default(),
            allowed_hosts: Vec::new(),
            cookie: DEFAULT_COOKIE.to_owned(),
        }
    }
}

impl AuthConfig {
    /// Whether any credential can be verified: a JWT key source or an API key is configured.
    pub fn has_credentials(&self) -> bool {
        self.jwt.has_keys() || !self.api_keys.is_empty()
    }

    /// Whether auth is on: credentials are configured, or `required = true` says so.
    /// Being on changes the defaults of [`AuthConfig::anonymous`] and of the origin policy.
    pub fn is_enabled(&self) -> bool {
        self.has_credentials() || self.required == Some(true)
    }

    /// Whether connections without credentials are refused (see [`AuthConfig::required`]).
    pub fn is_required(&self) -> bool {
        self.required.unwrap_or_else(|| self.has_credentials())
    }

    /// The anonymous grants in force: the configured ones, or the default for the mode.
    pub fn anonymous_grants(&self) -> Grants {
        match &self.anonymous {
            Some(grants) => grants.clone(),
            None if self.is_enabled() => Grants::default(),
            None => Grants::everything(),
        }
    }
}

/// How tokens are verified. Any number of key sources may be combined.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// Shared secret for HS256/384/512, as text (its UTF-8 bytes are the key).
    pub hmac_secret: Option<String>,
    /// File holding the HMAC secret; surrounding whitespace is trimmed. Reloaded on change.
    pub hmac_secret_file: Option<PathBuf>,
    /// PEM public keys (`BEGIN PUBLIC KEY` or `BEGIN RSA PUBLIC KEY`), RSA or EC P-256/P-384.
    /// Reloaded on change.
    pub public_key_files: Vec<PathBuf>,
    /// A JWKS file (`{"keys":[…]}`); tokens pick their key by `kid`. Reloaded on change.
    pub jwks_file: Option<PathBuf>,
    /// Allowed `alg` values. Empty means HS256, HS384, HS512, RS256 and ES256; a token is further
    /// limited to the algorithms its key's type can verify.
    pub algorithms: Vec<String>,
    /// Required `iss`, if set.
    pub issuer: Option<String>,
    /// Required `aud` (the claim may be a string or an array containing it), if set.
    /// When unset, a token's `aud` is not checked.
    pub audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    /// Whether tokens without `exp` are refused. On by default: a token that never expires
    /// cannot be revoked short of rotating the key.
    pub require_exp: bool,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            hmac_secret: None,
            hmac_secret_file: None,
            public_key_files: Vec::new(),
            jwks_file: None,
            algorithms: Vec::new(),
            issuer: None,
            audience: None,
            leeway_secs: DEFAULT_LEEWAY_SECS,
            require_exp: true,
        }
    }
}

impl JwtConfig {
    /// Whether any key source is configured.
    pub fn has_keys(&self) -> bool {
        self.hmac_secret.is_some()
            || self.hmac_secret_file.is_some()
            || !self.public_key_files.is_empty()
            || self.jwks_file.is_some()
    }
}

// By hand, so that the secret never reaches a log line.
impl fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtConfig")
            .field("hmac_secret", &self.hmac_secret.as_ref().map(|_| "[redacted]"))
            .field("hmac_secret_file", &self.hmac_secret_file)
            .field("public_key_files", &self.public_key_files)
            .field("jwks_file", &self.jwks_file)
            .field("algorithms", &self.algorithms)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway_secs)
            .field("require_exp", &self.require_exp)
            .finish()
    }
}

/// Channel patterns an identity may subscribe and publish to.
///
/// Patterns use the MQTT wildcards (`+` one level, `#` the rest). `{sub}` is replaced by the
/// token's subject, which must then be a single plain channel level; otherwise (or without a
/// subject) the pattern grants nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Grants {
    /// Patterns that may be subscribed to (a wildcard subscription must lie inside one of them).
    pub subscribe: Vec<String>,
    /// Patterns of the channels that may be published to.
    pub publish: Vec<String>,
}

impl Grants {
    /// Everything: every channel including `$` system channels to read, every ordinary channel
    /// to publish to. The anonymous grants while auth is off.
    pub fn everything() -> Self {
        // `$SYS/#`: the MQTT broker's figures, under the name Mosquitto users know.
        let subscribe = vec!["#".to_owned(), "$sys/#".to_owned(), "$SYS/#".to_owned()];
        Self { subscribe, publish: vec!["#".to_owned()] }
    }
}

/// Overrides for the channels under one prefix.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelRule {
    /// A channel name; the rule covers it and every channel below it (`stocks` covers `stocks`
    /// and `stocks/AAPL`, not `stocksfoo`).
    pub prefix: String,
    /// Who may subscribe.
    #[serde(default)]
    pub read: ReadRule,
    /// Who may publish.
    #[serde(default)]
    pub publish: PublishRule,
}

/// Who may subscribe to the channels under a prefix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadRule {
    /// Anyone, including connections without credentials.
    Public,
    /// Any authenticated identity (a token or an API key), whatever its grants.
    Authenticated,
    /// Identities whose subscribe grants cover the subscription.
    #[default]
    Granted,
}

/// Who may publish to the channels under a prefix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PublishRule {
    /// Identities whose publish grants match the channel.
    #[default]
    Granted,
    /// Only API keys whose publish grants match the channel; never a client token.
    ApiKey,
    /// Nobody through any API; only the server's own sources publish there.
    Denied,
}

/// One API key, identified by the SHA-256 of its text so that the key is never stored in clear.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// A name for logs and for [`crate::IdentityKind::ApiKey`].
    pub name: String,
    /// Hex SHA-256 of the key (`printf %s "$KEY" | sha256sum`).
    pub sha256: String,
    /// Patterns of the channels the key may publish to.
    #[serde(default)]
    pub publish: Vec<String>,
    /// Patterns the key may subscribe to or read the history of.
    #[serde(default)]
    pub subscribe: Vec<String>,
    /// Whether the key may use the admin API.
    #[serde(default)]
    pub admin: bool,
}

/// Which browser origins may open WebSocket and SSE connections (cross-site WebSocket hijacking
/// protection) and call the HTTP API.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OriginConfig {
    /// Exact origins (`https://app.example.com`, `http://localhost:5173`), wildcard subdomains
    /// (`https://*.example.com`), `null`, or `*` for any. Empty means same-origin only once auth
    /// is on, and any origin while it is off. Requests without `Origin` (non-browser clients)
    /// are always allowed.
    pub allowed: Vec<String>,
}

/// Rate limits; `0` switches a limit off.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// Open connections per client IP. Generous, because offices and mobile carriers put many
    /// users behind one address; it stops one host from exhausting the server's sockets.
    pub connections_per_ip: u32,
    /// Sustained client messages (commands) per second on one connection.
    pub messages_per_sec: f64,
    /// Client messages one connection may send in a burst above the sustained rate.
    pub message_burst: u32,
    /// Sustained publications per second from one client IP, over all its connections and
    /// HTTP requests.
    pub publishes_per_sec_per_ip: f64,
    /// Publications one client IP may send in a burst above the sustained rate.
    pub publish_burst_per_ip: u32,
    /// Sustained reads per second from one client IP: `GET /api/channels…` requests, long
    /// polls and SSE stream opens. Bounds how fast one host can make the server look up
    /// channels; a dashboard makes a few reads a second.
    pub reads_per_sec_per_ip: f64,
    /// Reads one client IP may make in a burst above the sustained rate; covers a page opening
    /// every chart's history at once.
    pub read_burst_per_ip: u32,
    /// Failed credential checks (a wrong API key, a badly signed or expired token) one client
    /// IP earns back per second. Once its burst is spent, every credential it presents is
    /// refused with `rate_limited` before it is verified, so guessing keys is slow and costs
    /// the server no signature checks.
    pub auth_failures_per_sec_per_ip: f64,
    /// Failed credential checks one client IP may make in a row before it is throttled.
    pub auth_failure_burst_per_ip: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            connections_per_ip: 1000,
            messages_per_sec: 100.0,
            message_burst: 200,
            publishes_per_sec_per_ip: 1000.0,
            publish_burst_per_ip: 2000,
            reads_per_sec_per_ip: 1000.0,
            read_burst_per_ip: 2000,
            // A person mistyping or a client with a stale token retries a few times; a guesser
            // needs millions of tries and gets one a second.
            auth_failures_per_sec_per_ip: 1.0,
            auth_failure_burst_per_ip: 10,
        }
    }
}

impl RateLimits {
    /// Checks that every rate is a finite number of at least zero.
    pub fn validate(&self) -> Result<(), AuthConfigError> {
        for (name, rate) in [
            ("messages_per_sec", self.messages_per_sec),
            ("publishes_per_sec_per_ip", self.publishes_per_sec_per_ip),
            ("reads_per_sec_per_ip", self.reads_per_sec_per_ip),
            ("auth_failures_per_sec_per_ip", self.auth_failures_per_sec_per_ip),
        ] {
            if !rate.is_finite() || rate < 0.0 {
                return Err(AuthConfigError::InvalidLimit(name));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> AuthConfig {
        toml::from_str(text).expect("valid config")
    }

    #[test]
    fn defaults_are_anonymous_mode() {
        let config = AuthConfig::default();
        assert_eq!(parse(""), config);
        assert!(!config.is_enabled());
        assert!(!config.is_required());
        assert_eq!(config.anonymous_grants(), Grants::everything());
        assert_eq!(config.cookie, "livehub_token");
        assert_eq!(config.jwt.leeway_secs, 30);
        assert!(config.jwt.require_exp);
    }

    #[test]
    fn parses_a_full_config() {
        let config = parse(
            r##"
            required = true
            cookie = "tok"
            allowed_hosts = ["live.example.com"]
            [jwt]
            hmac_secret = "s3cret"
            public_key_files = ["keys/rsa.pem"]
            jwks_file = "keys/jwks.json"
            algorithms = ["HS256", "RS256"]
            issuer = "https://id.example.com"
            audience = "livehub"
            leeway_secs = 5
            [anonymous]
            subscribe = ["public/#"]
            [roles.admin]
            subscribe = ["#", "$sys/#"]
            publish = ["#"]
            [roles.user]
            subscribe = ["users/{sub}/#"]
            publish = ["users/{sub}/#"]
            [[channels]]
            prefix = "public"
            read = "public"
            [[channels]]
            prefix = "metrics"
            read = "authenticated"
            publish = "denied"
            [[api_keys]]
            name = "ingest"
            sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
            publish = ["stocks/#"]
            admin = true
            [origins]
            allowed = ["https://*.example.com"]
            "##,
        );
        assert!(config.is_enabled() && config.is_required());
        assert_eq!(config.jwt.algorithms, ["HS256", "RS256"]);
        assert_eq!(config.roles["user"].publish, ["users/{sub}/#"]);
        assert_eq!(config.channels[1].read, ReadRule::Authenticated);
        assert_eq!(config.channels[1].publish, PublishRule::Denied);
        assert_eq!(config.channels[0].publish, PublishRule::Granted);
        assert!(config.api_keys[0].admin);
        assert_eq!(config.allowed_hosts, ["live.example.com"]);
        assert_eq!(config.anonymous_grants().subscribe, ["public/#"]);
    }

    #[test]
    fn rejects_unknown_fields() {
        for bad in [
            "requird = true",
            "[jwt]\nsecret = \"x\"",
            "[[channels]]\nprefix = \"a\"\nwrite = \"public\"",
            "[[channels]]\nprefix = \"a\"\nread = \"everyone\"",
        ] {
            assert!(toml::from_str::<AuthConfig>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn enabled_and_required_follow_keys_and_the_flag() {
        let with_key = |required| AuthConfig {
            required,
            jwt: JwtConfig { hmac_secret: Some("k".into()), ..JwtConfig::default() },
            ..AuthConfig::default()
        };
        let without_key = |required| AuthConfig { required, ..AuthConfig::default() };
        let table = [
            (with_key(None), true, true),
            (with_key(Some(false)), true, false),
            (with_key(Some(true)), true, true),
            (without_key(None), false, false),
            (without_key(Some(false)), false, false),
            (without_key(Some(true)), true, true),
        ];
        for (config, enabled, required) in table {
            assert_eq!(config.is_enabled(), enabled, "{:?}", config.required);
            assert_eq!(config.is_required(), required, "{:?}", config.required);
        }
        assert_eq!(with_key(Some(false)).anonymous_grants(), Grants::default());
    }

    #[test]
    fn debug_hides_the_secret() {
        let jwt = JwtConfig { hmac_secret: Some("hunter2".into()), ..JwtConfig::default() };
        assert!(!format!("{jwt:?}").contains("hunter2"));
    }

    #[test]
    fn rate_limits_validate() {
        assert!(RateLimits::default().validate().is_ok());
        let bad = RateLimits { messages_per_sec: -1.0, ..RateLimits::default() };
        assert!(bad.validate().is_err());
        let nan = RateLimits { publishes_per_sec_per_ip: f64::NAN, ..RateLimits::default() };
        assert!(nan.validate().is_err());
        let reads = RateLimits { reads_per_sec_per_ip: f64::INFINITY, ..RateLimits::default() };
        assert!(reads.validate().is_err());
        let failures = RateLimits { auth_failures_per_sec_per_ip: f64::INFINITY, ..RateLimits::default() };
        assert!(failures.validate().is_err());
    }
}
