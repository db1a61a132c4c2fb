//! Minting tokens, for development and tests (the future `livehub token` command).
//!
//! Production deployments get their tokens from an identity provider; this exists so that a
//! developer can try a secured server without one.

use jsonwebtoken::{EncodingKey, Header};

use crate::algorithm::{Algorithm, KeyKind};

/// Why a token could not be minted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MintError {
    /// The PEM text is not an RSA or EC P-256/P-384 private key.
    #[error("not a PEM RSA or EC (P-256, P-384) private key")]
    InvalidKey,
    /// The algorithm needs another kind of key (for example RS256 with an HMAC secret).
    #[error("{0} needs a different kind of key")]
    WrongKeyKind(Algorithm),
    /// The claims are not a JSON object, or signing failed.
    #[error("cannot sign the token: {0}")]
    Sign(String),
}

/// A signing key: an HMAC secret, or an RSA or EC private key.
#[derive(Clone)]
pub struct MintKey {
    kind: KeyKind,
    key: EncodingKey,
    kid: Option<String>,
}

impl MintKey {
    /// An HMAC key for HS256/384/512 from the secret's bytes.
    pub fn hmac(secret: &[u8]) -> Self {
        Self { kind: KeyKind::Hmac, key: EncodingKey::from_secret(secret), kid: None }
    }

    /// A private key in PEM: RSA (`BEGIN PRIVATE KEY` or `BEGIN RSA PRIVATE KEY`) or EC P-256 or
    /// P-384 (`BEGIN PRIVATE KEY`, as `openssl genpkey` writes it).
    pub fn from_pem(pem: &[u8]) -> Result<Self, MintError> {
        if let Ok(key) = EncodingKey::from_rsa_pem(pem) {
            return Ok(Self { kind: KeyKind::Rsa, key, kid: None });
        }
        let key = EncodingKey::from_ec_pem(pem).map_err(|_| MintError::InvalidKey)?;
        // The curve decides the algorithm; try signing a probe to learn it.
        for (kind, alg) in [(KeyKind::EcP256, Algorithm::ES256), (KeyKind::EcP384, Algorithm::ES384)] {
            if jsonwebtoken::encode(&Header::new(alg.to_jwt()), &serde_json::json!({}), &key).is_ok() {
                return Ok(Self { kind, key, kid: None });
            }
        }
        Err(MintError::InvalidKey)
    }

    /// The same key, writing `kid` into the headers of the tokens it signs.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The algorithms this key can sign with.
    pub fn algorithms(&self) -> &'static [Algorithm] {
        self.kind.algorithms()
    }
}

// By hand, so that key material never reaches a log line.
impl std::fmt::Debug for MintKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintKey").field("kind", &self.kind).field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// Signs `claims` (a JSON object such as `{"sub":"alice","exp":…,"roles":["user"]}`) with `key`.
pub fn mint_token(key: &MintKey, alg: Algorithm, claims: &serde_json::Value) -> Result<String, MintError> {
    if alg.key_kind() != key.kind {
        return Err(MintError::WrongKeyKind(alg));
    }
    if !claims.is_object() {
        return Err(MintError::Sign("the claims must be a JSON object".to_owned()));
    }
    let mut header = Header::new(alg.to_jwt());
    header.kid = key.kid.clone();
    jsonwebtoken::encode(&header, claims, &key.key).map_err(|e| MintError::Sign(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_PRIVATE: &[u8] = include_bytes!("../tests/keys/rsa_private.pem");
    const EC_PRIVATE: &[u8] = include_bytes!("../tests/keys/ec_private.pem");
    const EC_PUBLIC: &[u8] = include_bytes!("../tests/keys/ec_public.pem");

    #[test]
    fn reads_private_keys() {
        assert_eq!(
            MintKey::from_pem(RSA_PRIVATE).expect("rsa").algorithms(),
            [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512]
        );
        assert_eq!(MintKey::from_pem(EC_PRIVATE).expect("ec").algorithms(), [Algorithm::ES256]);
        assert_eq!(MintKey::from_pem(EC_PUBLIC).err(), Some(MintError::InvalidKey));
        assert_eq!(MintKey::from_pem(b"garbage").err(), Some(MintError::InvalidKey));
    }

    #[test]
    fn refuses_mismatched_algorithms_and_non_objects() {
        let hmac = MintKey::hmac(b"secret");
        let claims = serde_json::json!({"sub": "a"});
        assert_eq!(
            mint_token(&hmac, Algorithm::RS256, &claims),
            Err(MintError::WrongKeyKind(Algorithm::RS256))
        );
        assert!(mint_token(&hmac, Algorithm::HS256, &serde_json::json!([1])).is_err());
        let token = mint_token(&hmac.with_kid("k1"), Algorithm::HS384, &claims).expect("minted");
        assert_eq!(token.split('.').count(), 3);
    }

    #[test]
    fn debug_hides_the_key() {
        let key = MintKey::hmac(b"hunter2");
        assert!(!format!("{key:?}").contains("hunter2"));
    }
}
