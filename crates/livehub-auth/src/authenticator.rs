//! The [`Authenticator`]: turns credentials into an [`Identity`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::api_key::ApiKeys;
use crate::config::AuthConfig;
use crate::error::{AuthConfigError, AuthError};
use crate::grants::{GrantTemplates, ResolvedGrants};
use crate::identity::{Identity, IdentityKind};
use crate::jwt::JwtVerifier;
use crate::origin::OriginPolicy;
use crate::pattern::PatternTemplate;
use crate::rules::ChannelRules;

/// Verifies tokens and API keys against the configuration. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    shared: Arc<Shared>,
}

struct Shared {
    jwt: Option<JwtVerifier>,
    api_keys: ApiKeys,
    anonymous: GrantTemplates,
    roles: BTreeMap<String, GrantTemplates>,
    rules: Arc<ChannelRules>,
    origins: OriginPolicy,
    enabled: bool,
    required: bool,
    cookie: String,
}

impl Authenticator {
    /// Validates `config` and loads its keys. Unreadable files, bad keys, unknown algorithms,
    /// malformed patterns, prefixes, hashes or origins are errors here, never later.
    pub fn new(config: &AuthConfig) -> Result<Self, AuthConfigError> {
        let jwt = if config.jwt.has_keys() { Some(JwtVerifier::new(&config.jwt)?) } else { None };
        if !config.jwt.has_keys() {
            // Without keys nothing reads the algorithm list, but a typo there should still fail.
            for alg in &config.jwt.algorithms {
                alg.parse::<crate::Algorithm>()?;
            }
        }
        let roles = config
            .roles
            .iter()
            .map(|(name, grants)| {
                Ok((name.clone(), GrantTemplates::parse(grants, &format!("roles.{name}"))?))
            })
            .collect::<Result<_, AuthConfigError>>()?;
        if !is_cookie_name(&config.cookie) {
            return Err(AuthConfigError::InvalidCookie(config.cookie.clone()));
        }
        let enabled = config.is_enabled();
        Ok(Self {
            shared: Arc::new(Shared {
                jwt,
                api_keys: ApiKeys::new(&config.api_keys)?,
                anonymous: GrantTemplates::parse(&config.anonymous_grants(), "anonymous")?,
                roles,
                rules: Arc::new(ChannelRules::new(&config.channels)?),
                origins: OriginPolicy::new(&config.origins, enabled)?,
                enabled,
                required: config.is_required(),
                cookie: config.cookie.clone(),
            }),
        })
    }

    /// Whether auth is on (see [`AuthConfig::is_enabled`]).
    pub fn enabled(&self) -> bool {
        self.shared.enabled
    }

    /// Whether connections and requests without credentials are refused.
    pub fn required(&self) -> bool {
        self.shared.required
    }

    /// The origin policy for WebSocket, SSE and CORS.
    pub fn origins(&self) -> &OriginPolicy {
        &self.shared.origins
    }

    /// The name of the cookie that may carry the token.
    pub fn cookie_name(&self) -> &str {
        &self.shared.cookie
    }

    /// The identity of a caller without credentials (whether or not such callers are allowed).
    pub fn anonymous(&self) -> Identity {
        let mut grants = ResolvedGrants::default();
        self.shared.anonymous.resolve_into(None, &mut grants);
        Identity::new(None, IdentityKind::Anonymous, None, false, grants, Arc::clone(&self.shared.rules))
    }

    /// The identity for an optional credential: anonymous without one (or
    /// `Unauthorized("missing credentials")` when [`Authenticator::required`]), otherwise
    /// [`Authenticator::verify_credential`].
    pub fn authenticate(&self, credential: Option<&str>) -> Result<Identity, AuthError> {
        match credential {
            Some(credential) => self.verify_credential(credential),
            None if self.shared.required => Err(AuthError::Unauthorized("missing credentials")),
            None => Ok(self.anonymous()),
        }
    }

    /// Verifies a credential of either kind: a JWT when it is shaped like one (three
    /// dot-separated parts), an API key otherwise.
    pub fn verify_credential(&self, credential: &str) -> Result<Identity, AuthError> {
        if is_token_shaped(credential) {
            self.verify_token(credential)
        } else {
            self.verify_api_key(credential)
        }
    }

    /// Verifies a JWT now.
    pub fn verify_token(&self, token: &str) -> Result<Identity, AuthError> {
        self.verify_token_at(token, SystemTime::now(), Instant::now())
    }

    /// Verifies a JWT against wall-clock time `now`; `clock` paces the key-file checks.
    pub fn verify_token_at(
        &self,
        token: &str,
        now: SystemTime,
        clock: Instant,
    ) -> Result<Identity, AuthError> {
        let jwt = self.shared.jwt.as_ref().ok_or(AuthError::Unauthorized("tokens are not accepted"))?;
        let claims = jwt.verify(token, now, clock)?;
        let subject = claims.sub.as_deref();
        let mut grants = ResolvedGrants::default();
        self.shared.anonymous.resolve_into(subject, &mut grants);
        // The token's own patterns are resolved like configured ones; a malformed one grants
        // nothing rather than failing a token that is otherwise valid.
        let parse_all = |list: &[String]| -> Vec<PatternTemplate> {
            list.iter().filter_map(|p| PatternTemplate::parse(p, "token").ok()).collect()
        };
        let own = GrantTemplates::from_templates(parse_all(&claims.subscribe), parse_all(&claims.publish));
        own.resolve_into(subject, &mut grants);
        for role in &claims.roles {
            // Roles the configuration does not know grant nothing; issuers often add their own.
            if let Some(role) = self.shared.roles.get(role) {
                role.resolve_into(subject, &mut grants);
            }
        }
        // An `exp` beyond what `SystemTime` can hold is refused rather than allowed to overflow.
        let expires_at = match claims.exp {
            Some(secs) => Some(
                UNIX_EPOCH
                    .checked_add(Duration::from_secs(secs))
                    .ok_or(AuthError::Unauthorized("malformed time claim"))?,
            ),
            None => None,
        };
        Ok(Identity::new(
            claims.sub,
            IdentityKind::User,
            expires_at,
            false,
            grants,
            Arc::clone(&self.shared.rules),
        ))
    }

    /// Verifies an API key.
    pub fn verify_api_key(&self, key: &str) -> Result<Identity, AuthError> {
        let entry = self.shared.api_keys.find(key).ok_or(AuthError::Unauthorized("invalid API key"))?;
        let mut grants = ResolvedGrants::default();
        self.shared.anonymous.resolve_into(None, &mut grants);
        entry.grants.resolve_into(None, &mut grants);
        Ok(Identity::new(
            None,
            IdentityKind::ApiKey(entry.name.clone()),
            None,
            entry.admin,
            grants,
            Arc::clone(&self.shared.rules),
        ))
    }

    /// Reloads changed key files now instead of at the next verification's check (for a
    /// SIGHUP handler, say); returns whether the keys changed.
    pub fn reload_keys(&self) -> bool {
        self.shared.jwt.as_ref().is_some_and(JwtVerifier::reload_keys)
    }
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("enabled", &self.shared.enabled)
            .field("required", &self.shared.required)
            .field("jwt", &self.shared.jwt.is_some())
            .field("api_keys", &!self.shared.api_keys.is_empty())
            .finish_non_exhaustive()
    }
}

/// Whether `credential` is shaped like a JWT (three dot-separated parts) rather than an API key:
/// how [`Authenticator::verify_credential`] tells the two apart, and how a server decides that a
/// credential found outside the `Authorization` header is an API key it must refuse there.
pub fn is_token_shaped(credential: &str) -> bool {
    credential.bytes().filter(|&b| b == b'.').count() == 2
}

/// Whether `name` is an RFC 6265 cookie name (an HTTP token).
fn is_cookie_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

// End-to-end tests of the authenticator live in `authenticator/tests.rs`, beside the key files
// they need.
#[cfg(test)]
mod tests;
