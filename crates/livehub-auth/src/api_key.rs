//! API keys for the HTTP publish and admin API, known to the server only by their SHA-256.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::ApiKeyConfig;
use crate::error::AuthConfigError;
use crate::grants::GrantTemplates;

/// Longest API key accepted, in bytes; bounds the hashing an unauthenticated client can cause.
pub const MAX_API_KEY_LEN: usize = 512;

/// Random bytes in a key made by [`generate_api_key`]: 256 bits, beyond guessing.
const GENERATED_KEY_BYTES: usize = 32;

/// The configured keys.
#[derive(Clone, Debug, Default)]
pub(crate) struct ApiKeys {
    keys: Vec<ApiKeyEntry>,
}

/// One configured key.
#[derive(Clone, Debug)]
pub(crate) struct ApiKeyEntry {
    pub(crate) name: String,
    hash: [u8; 32],
    pub(crate) grants: GrantTemplates,
    pub(crate) admin: bool,
}

impl ApiKeys {
    /// Validates names, hashes and patterns; names and hashes must be unique.
    pub(crate) fn new(config: &[ApiKeyConfig]) -> Result<Self, AuthConfigError> {
        let mut keys: Vec<ApiKeyEntry> = Vec::with_capacity(config.len());
        for entry in config {
            let invalid = |reason: &str| AuthConfigError::InvalidApiKey {
                name: entry.name.clone(),
                reason: reason.to_owned(),
            };
            if entry.name.is_empty() {
                return Err(invalid("the name must not be empty"));
            }
            let hash =
                parse_hex_sha256(&entry.sha256).ok_or_else(|| invalid("sha256 must be 64 hex digits"))?;
            if keys.iter().any(|k| k.name == entry.name) {
                return Err(invalid("two keys have this name"));
            }
            if keys.iter().any(|k| k.hash == hash) {
                return Err(invalid("another key has the same hash"));
            }
            let grants = GrantTemplates::from_lists(
                &entry.subscribe,
                &entry.publish,
                &format!("api_keys.{}", entry.name),
            )?;
            keys.push(ApiKeyEntry { name: entry.name.clone(), hash, grants, admin: entry.admin });
        }
        Ok(Self { keys })
    }

    /// Whether any key is configured.
    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The entry whose hash matches `key`. Every configured hash is compared in constant time.
    pub(crate) fn find(&self, key: &str) -> Option<&ApiKeyEntry> {
        if key.is_empty() || key.len() > MAX_API_KEY_LEN {
            return None;
        }
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut found = None;
        for entry in &self.keys {
            if bool::from(entry.hash.ct_eq(&digest)) {
                found = Some(entry);
            }
        }
        found
    }
}

/// The lowercase hex SHA-256 of `key`: the value for `api_keys.sha256`.
pub fn hash_api_key(key: &str) -> String {
    Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random API key (`lh_` and 43 base64url characters) to hand to a publisher.
pub fn generate_api_key() -> String {
    let mut bytes = [0u8; GENERATED_KEY_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    format!("lh_{}", URL_SAFE_NO_PAD.encode(bytes))
}

fn parse_hex_sha256(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let digit = |c: u8| (c as char).to_digit(16);
        // Both digits are below 16, so the byte cannot overflow.
        *byte = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str, sha256: &str) -> ApiKeyConfig {
        ApiKeyConfig {
            name: name.into(),
            sha256: sha256.into(),
            publish: vec!["a/#".into()],
            subscribe: vec![],
            admin: false,
        }
    }

    #[test]
    fn hashes_like_sha256sum() {
        // printf %s test | sha256sum
        assert_eq!(hash_api_key("test"), "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
    }

    #[test]
    fn finds_the_matching_key() {
        let keys = ApiKeys::new(&[
            config("one", &hash_api_key("key-one")),
            config("two", &hash_api_key("key-two").to_uppercase()),
        ])
        .expect("valid");
        assert_eq!(keys.find("key-one").map(|k| k.name.as_str()), Some("one"));
        assert_eq!(keys.find("key-two").map(|k| k.name.as_str()), Some("two"));
        for wrong in ["key-three", "", "key-one ", "KEY-ONE", &"x".repeat(MAX_API_KEY_LEN + 1)] {
            assert!(keys.find(wrong).is_none(), "{wrong:?}");
        }
    }

    #[test]
    fn rejects_bad_entries() {
        let good = hash_api_key("k");
        let table = [
            vec![config("", &good)],
            vec![config("short", "abcd")],
            vec![config("not-hex", &"g".repeat(64))],
            vec![config("a", &good), config("a", &hash_api_key("other"))],
            vec![config("a", &good), config("b", &good)],
        ];
        for entries in table {
            assert!(ApiKeys::new(&entries).is_err(), "{entries:?}");
        }
        let mut bad_pattern = config("p", &good);
        bad_pattern.publish = vec!["a/#/b".into()];
        let err = ApiKeys::new(&[bad_pattern]).expect_err("bad pattern");
        assert!(err.to_string().contains("api_keys.p.publish"), "{err}");
    }

    #[test]
    fn generated_keys_are_distinct_and_hashable() {
        let (a, b) = (generate_api_key(), generate_api_key());
        assert_ne!(a, b);
        assert!(a.starts_with("lh_") && a.len() == 46, "{a}");
        let keys = ApiKeys::new(&[config("gen", &hash_api_key(&a))]).expect("valid");
        assert!(keys.find(&a).is_some());
        assert!(keys.find(&b).is_none());
    }
}
