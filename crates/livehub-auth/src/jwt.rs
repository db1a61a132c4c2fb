//! Token verification: header, algorithm and key choice, signature, then the time, issuer and
//! audience claims against a clock that the caller passes in.
//!
//! `jsonwebtoken` checks only the signature here; the claims are checked by this module, so
//! that tests can use a synthetic clock and so that `aud` is ignored when no audience is set.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use serde::Deserialize;

use crate::algorithm::Algorithm;
use crate::config::JwtConfig;
use crate::error::{AuthConfigError, AuthError};
use crate::keys::{KeyStore, VerifyKey};

/// Longest token accepted, in bytes. Real tokens are well under 2 KiB; the cap bounds the work
/// an unauthenticated client can cause before its signature is checked.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Verifies tokens with the configured keys and rules.
pub(crate) struct JwtVerifier {
    keys: KeyStore,
    allowed: Vec<Algorithm>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: u64,
    require_exp: bool,
}

/// The claims of a verified token that livehub uses.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct VerifiedClaims {
    pub(crate) sub: Option<String>,
    pub(crate) exp: Option<u64>,
    pub(crate) roles: Vec<String>,
    pub(crate) subscribe: Vec<String>,
    pub(crate) publish: Vec<String>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    exp: Option<f64>,
    #[serde(default)]
    nbf: Option<f64>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    aud: Option<OneOrMany>,
    #[serde(default)]
    roles: Option<OneOrMany>,
    #[serde(default)]
    subscribe: Option<Vec<String>>,
    #[serde(default)]
    publish: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(one) => vec![one],
            Self::Many(many) => many,
        }
    }

    fn contains(&self, wanted: &str) -> bool {
        match self {
            Self::One(one) => one == wanted,
            Self::Many(many) => many.iter().any(|m| m == wanted),
        }
    }
}

const MALFORMED: AuthError = AuthError::Unauthorized("malformed token");
const BAD_SIGNATURE: AuthError = AuthError::Unauthorized("invalid token signature");

impl JwtVerifier {
    /// Loads the keys and checks that at least one allowed algorithm can be verified.
    pub(crate) fn new(config: &JwtConfig) -> Result<Self, AuthConfigError> {
        let allowed = if config.algorithms.is_empty() {
            Algorithm::DEFAULT_ALLOWED.to_vec()
        } else {
            config.algorithms.iter().map(|a| a.parse()).collect::<Result<Vec<Algorithm>, _>>()?
        };
        let keys = KeyStore::load(config)?;
        let usable = keys.keys().iter().any(|k| k.algorithms.iter().any(|a| allowed.contains(a)));
        if !usable {
            let names: Vec<&str> = allowed.iter().map(|a| a.as_str()).collect();
            return Err(AuthConfigError::NoUsableKey(names.join(", ")));
        }
        Ok(Self {
            keys,
            allowed,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway: config.leeway_secs,
            require_exp: config.require_exp,
        })
    }

    /// Reloads changed key files now; returns whether the keys changed.
    pub(crate) fn reload_keys(&self) -> bool {
        self.keys.reload_now()
    }

    /// Verifies `token` at wall-clock time `now`, after looking for changed key files (at most
    /// once per second of `clock`).
    pub(crate) fn verify(
        &self,
        token: &str,
        now: SystemTime,
        clock: Instant,
    ) -> Result<VerifiedClaims, AuthError> {
        self.keys.maybe_reload(clock);
        if token.len() > MAX_TOKEN_LEN {
            return Err(MALFORMED);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(MALFORMED);
        };
        let header: Header = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(MALFORMED)?;
        // RFC 7515: a recipient must reject extensions it does not understand, and it knows none.
        if header.crit.is_some() {
            return Err(AuthError::Unauthorized("unsupported critical header"));
        }
        let alg = Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == header.alg && self.allowed.contains(a))
            .ok_or(AuthError::Unauthorized("token algorithm not allowed"))?;
        let claims = self.check_signature(token, alg, header.kid.as_deref())?;
        self.check_claims(claims, now)
    }

    /// Tries the keys that may verify `alg`: those with the token's `kid`, or, when none has it
    /// or the token names none, every key of the right type without a `kid` or any key at all.
    fn check_signature(&self, token: &str, alg: Algorithm, kid: Option<&str>) -> Result<Claims, AuthError> {
        let keys = self.keys.keys();
        let fits = |k: &&VerifyKey| k.algorithms.contains(&alg);
        let by_kid: Vec<&VerifyKey> = match kid {
            Some(kid) => keys.iter().filter(fits).filter(|k| k.kid.as_deref() == Some(kid)).collect(),
            None => Vec::new(),
        };
        let candidates: Vec<&VerifyKey> = if !by_kid.is_empty() {
            by_kid
        } else if kid.is_some() {
            keys.iter().filter(fits).filter(|k| k.kid.is_none()).collect()
        } else {
            keys.iter().filter(fits).collect()
        };
        if candidates.is_empty() {
            return Err(AuthError::Unauthorized("no key for this token"));
        }
        let mut validation = jsonwebtoken::Validation::new(alg.to_jwt());
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => match e.kind() {
                    ErrorKind::Json(_)
                    | ErrorKind::Base64(_)
                    | ErrorKind::Utf8(_)
                    | ErrorKind::InvalidToken => return Err(MALFORMED),
                    // A wrong signature or a key the algorithm cannot use: try the next key.
                    _ => {}
                },
            }
        }
        Err(BAD_SIGNATURE)
    }

    fn check_claims(&self, claims: Claims, now: SystemTime) -> Result<VerifiedClaims, AuthError> {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
        let exp = claims.exp.map(numeric_date).transpose()?;
        let nbf = claims.nbf.map(numeric_date).transpose()?;
        match exp {
            None if self.require_exp => return Err(AuthError::Unauthorized("token without exp")),
            // RFC 7519: the token may be used only before `exp`.
            Some(exp) if exp.saturating_add(self.leeway) <= now => return Err(AuthError::TokenExpired),
            _ => {}
        }
        if nbf.is_some_and(|nbf| nbf > now.saturating_add(self.leeway)) {
            return Err(AuthError::TokenNotYetValid);
        }
        if let Some(issuer) = &self.issuer {
            if claims.iss.as_deref() != Some(issuer) {
                return Err(AuthError::Unauthorized("wrong token issuer"));
            }
        }
        if let Some(audience) = &self.audience {
            if !claims.aud.as_ref().is_some_and(|aud| aud.contains(audience)) {
                return Err(AuthError::Unauthorized("wrong token audience"));
            }
        }
        Ok(VerifiedClaims {
            sub: claims.sub,
            exp,
            roles: claims.roles.map(OneOrMany::into_vec).unwrap_or_default(),
            subscribe: claims.subscribe.unwrap_or_default(),
            publish: claims.publish.unwrap_or_default(),
        })
    }
}

/// A JWT NumericDate (seconds, possibly fractional) as whole seconds.
fn numeric_date(value: f64) -> Result<u64, AuthError> {
    if value.is_finite() && value >= 0.0 && value < u64::MAX as f64 {
        // Truncation is the intent: sub-second precision does not matter for expiry.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Ok(value as u64)
    } else {
        Err(AuthError::Unauthorized("malformed time claim"))
    }
}

// The tests need key files, tokens and a temporary directory, so they live in `jwt/tests.rs`.
#[cfg(test)]
mod tests;
