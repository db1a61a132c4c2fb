//! Verification keys: loading them from secrets, PEM files and JWKS files, and reloading the
//! files when they change on disk.
//!
//! Reloading is pull-based: the verifier asks [`KeyStore::maybe_reload`] before each
//! verification, which looks at the files' modification times at most once per
//! [`RELOAD_CHECK_INTERVAL`]. No background task is needed, and an idle server reads nothing.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::DecodingKey;

use crate::algorithm::{Algorithm, KeyKind};
use crate::config::JwtConfig;
use crate::error::AuthConfigError;
use crate::sync::{read, try_lock, write};

/// How often, at most, key files are checked for changes. Rotations take effect within a
/// second, and a busy server costs one `stat` per file per second.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Shortest HMAC secret accepted without a warning: 256 bits, the size of an HS256 output.
const MIN_HMAC_SECRET_LEN: usize = 32;

/// One key that can verify signatures.
#[derive(Clone)]
pub(crate) struct VerifyKey {
    /// The `kid` a JWKS gave it; keys from PEM files and secrets have none.
    pub(crate) kid: Option<String>,
    /// The algorithms it may verify: those of its kind, or the one its JWK names.
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) key: DecodingKey,
}

impl VerifyKey {
    fn of_kind(kind: KeyKind, key: DecodingKey) -> Self {
        Self { kid: None, algorithms: kind.algorithms().to_vec(), key }
    }
}

/// The keys in force, reloaded from their files when those change.
pub(crate) struct KeyStore {
    fixed: Vec<VerifyKey>,
    watch: Mutex<Watch>,
    current: RwLock<Arc<[VerifyKey]>>,
}

struct Watch {
    last_check: Option<Instant>,
    files: Vec<WatchedFile>,
}

struct WatchedFile {
    path: PathBuf,
    format: FileFormat,
    stamp: Option<Stamp>,
    /// Whether the last look found the file missing, so that it is reported once, not each second.
    missing: bool,
    keys: Vec<VerifyKey>,
}

#[derive(Clone, Copy)]
enum FileFormat {
    Secret,
    Pem,
    Jwks,
}

/// What identifies a version of a file without reading it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

impl Stamp {
    fn of(path: &Path) -> std::io::Result<Self> {
        let meta = fs::metadata(path)?;
        Ok(Self { modified: meta.modified().ok(), len: meta.len() })
    }
}

impl KeyStore {
    /// Loads every key source of `config`; any unreadable or invalid one is an error.
    pub(crate) fn load(config: &JwtConfig) -> Result<Self, AuthConfigError> {
        if config.hmac_secret.is_some() && config.hmac_secret_file.is_some() {
            return Err(AuthConfigError::ConflictingSecret);
        }
        let mut fixed = Vec::new();
        if let Some(secret) = &config.hmac_secret {
            fixed.push(hmac_key(secret.as_bytes(), "jwt.hmac_secret")?);
        }
        let mut sources = Vec::new();
        sources.extend(config.hmac_secret_file.iter().map(|p| (p, FileFormat::Secret)));
        sources.extend(config.public_key_files.iter().map(|p| (p, FileFormat::Pem)));
        sources.extend(config.jwks_file.iter().map(|p| (p, FileFormat::Jwks)));
        let mut files = Vec::with_capacity(sources.len());
        for (path, format) in sources {
            let stamp =
                Stamp::of(path).map_err(|source| AuthConfigError::Read { path: path.clone(), source })?;
            let keys = load_file(path, format)?;
            files.push(WatchedFile { path: path.clone(), format, stamp: Some(stamp), missing: false, keys });
        }
        let current = collect(&fixed, &files);
        Ok(Self {
            fixed,
            watch: Mutex::new(Watch { last_check: None, files }),
            current: RwLock::new(current),
        })
    }

    /// The keys in force.
    pub(crate) fn keys(&self) -> Arc<[VerifyKey]> {
        read(&self.current).clone()
    }

    /// Reloads changed files unless they were checked less than [`RELOAD_CHECK_INTERVAL`] before
    /// `now`, or another thread is checking right now.
    pub(crate) fn maybe_reload(&self, now: Instant) {
        let Some(mut watch) = try_lock(&self.watch) else { return };
        if watch.files.is_empty()
            || watch
                .last_check
                .is_some_and(|last| now.saturating_duration_since(last) < RELOAD_CHECK_INTERVAL)
        {
            return;
        }
        watch.last_check = Some(now);
        self.reload_changed(&mut watch);
    }

    /// Reloads changed files now; returns whether the keys in force changed.
    pub(crate) fn reload_now(&self) -> bool {
        let mut watch = crate::sync::lock(&self.watch);
        self.reload_changed(&mut watch)
    }

    fn reload_changed(&self, watch: &mut Watch) -> bool {
        let mut changed = false;
        for file in &mut watch.files {
            let stamp = match Stamp::of(&file.path) {
                Ok(stamp) => stamp,
                Err(error) => {
                    if !file.missing {
                        tracing::warn!(path = %file.path.display(), %error, "cannot read key file; keeping its previous keys");
                        file.missing = true;
                    }
                    continue;
                }
            };
            file.missing = false;
            if file.stamp == Some(stamp) {
                continue;
            }
            // Remember the version even if it is invalid, so that it is reported once; the next
            // write to the file changes the stamp and is tried again.
            file.stamp = Some(stamp);
            match load_file(&file.path, file.format) {
                Ok(keys) => {
                    tracing::info!(path = %file.path.display(), keys = keys.len(), "reloaded key file");
                    file.keys = keys;
                    changed = true;
                }
                Err(error) => {
                    tracing::warn!(path = %file.path.display(), %error, "invalid key file; keeping its previous keys");
                }
            }
        }
        if changed {
            *write(&self.current) = collect(&self.fixed, &watch.files);
        }
        changed
    }
}

fn collect(fixed: &[VerifyKey], files: &[WatchedFile]) -> Arc<[VerifyKey]> {
    fixed.iter().chain(files.iter().flat_map(|f| &f.keys)).cloned().collect()
}

fn load_file(path: &Path, format: FileFormat) -> Result<Vec<VerifyKey>, AuthConfigError> {
    let bytes = fs::read(path).map_err(|source| AuthConfigError::Read { path: path.to_owned(), source })?;
    let origin = path.display().to_string();
    match format {
        FileFormat::Secret => {
            let text =
                std::str::from_utf8(&bytes).map_err(|_| invalid(&origin, "the secret is not UTF-8 text"))?;
            Ok(vec![hmac_key(text.trim().as_bytes(), &origin)?])
        }
        FileFormat::Pem => Ok(vec![pem_public_key(&bytes, &origin)?]),
        FileFormat::Jwks => jwks_keys(&bytes, &origin),
    }
}

fn invalid(origin: &str, reason: impl Into<String>) -> AuthConfigError {
    AuthConfigError::InvalidKey { origin: origin.to_owned(), reason: reason.into() }
}

/// An HMAC key from a secret's bytes.
pub(crate) fn hmac_key(secret: &[u8], origin: &str) -> Result<VerifyKey, AuthConfigError> {
    if secret.is_empty() {
        return Err(invalid(origin, "the HMAC secret is empty"));
    }
    if secret.len() < MIN_HMAC_SECRET_LEN {
        tracing::warn!(
            origin,
            "the HMAC secret is shorter than {MIN_HMAC_SECRET_LEN} bytes and easy to brute-force"
        );
    }
    Ok(VerifyKey::of_kind(KeyKind::Hmac, DecodingKey::from_secret(secret)))
}

/// A public key from a PEM file: RSA (SPKI or PKCS#1) or EC P-256/P-384 (SPKI).
pub(crate) fn pem_public_key(pem: &[u8], origin: &str) -> Result<VerifyKey, AuthConfigError> {
    let text = std::str::from_utf8(pem).map_err(|_| invalid(origin, "not a PEM text file"))?;
    // A private key here is a mistake worth naming: it must not sit on the verifying server.
    if text.contains("PRIVATE KEY-----") {
        return Err(invalid(
            origin,
            "this is a private key; configure the public key (openssl pkey -pubout)",
        ));
    }
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        return Ok(VerifyKey::of_kind(KeyKind::Rsa, key));
    }
    let key = DecodingKey::from_ec_pem(pem).map_err(|_| invalid(origin, "not a PEM RSA or EC public key"))?;
    let kind =
        ec_kind(&key).ok_or_else(|| invalid(origin, "only the EC curves P-256 and P-384 are supported"))?;
    Ok(VerifyKey::of_kind(kind, key))
}

/// The curve of an EC key, from the length of its uncompressed SEC1 point.
fn ec_kind(key: &DecodingKey) -> Option<KeyKind> {
    match key.try_get_as_bytes().ok()? {
        [4, rest @ ..] if rest.len() == 64 => Some(KeyKind::EcP256),
        [4, rest @ ..] if rest.len() == 96 => Some(KeyKind::EcP384),
        _ => None,
    }
}

/// The signing keys of a JWKS document. Keys for encryption, of unsupported types, or malformed
/// are skipped with a warning; a document without any usable key is an error.
pub(crate) fn jwks_keys(json: &[u8], origin: &str) -> Result<Vec<VerifyKey>, AuthConfigError> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let document: Document =
        serde_json::from_slice(json).map_err(|e| invalid(origin, format!("not a JWKS document: {e}")))?;
    let mut keys = Vec::new();
    for (index, value) in document.keys.into_iter().enumerate() {
        match jwk_key(value) {
            Ok(Some(key)) => keys.push(key),
            Ok(None) => {}
            Err(reason) => tracing::warn!(origin, index, reason, "skipping JWKS key"),
        }
    }
    if keys.is_empty() {
        return Err(invalid(origin, "the JWKS holds no usable signing key"));
    }
    Ok(keys)
}

/// One JWK as a verification key; `Ok(None)` for keys not meant for signatures.
fn jwk_key(value: serde_json::Value) -> Result<Option<VerifyKey>, &'static str> {
    let jwk: Jwk = serde_json::from_value(value).map_err(|_| "malformed JWK")?;
    if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return Ok(None);
    }
    let kind = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => KeyKind::Rsa,
        AlgorithmParameters::OctetKey(_) => KeyKind::Hmac,
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => KeyKind::EcP256,
            EllipticCurve::P384 => KeyKind::EcP384,
            _ => return Err("unsupported EC curve"),
        },
        _ => return Err("unsupported key type"),
    };
    let algorithms = match jwk.common.key_algorithm {
        None => kind.algorithms().to_vec(),
        Some(alg) => {
            let alg = Algorithm::ALL
                .into_iter()
                .find(|a| a.as_str() == alg.to_string())
                .ok_or("unsupported alg")?;
            // A JWK whose `alg` does not fit its key type would invite key confusion.
            if alg.key_kind() != kind {
                return Err("alg does not match the key type");
            }
            vec![alg]
        }
    };
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| "unusable key material")?;
    Ok(Some(VerifyKey { kid: jwk.common.key_id, algorithms, key }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_PUBLIC: &str = include_str!("../tests/keys/rsa_public.pem");
    const RSA_PRIVATE: &str = include_str!("../tests/keys/rsa_private.pem");
    const EC_PUBLIC: &str = include_str!("../tests/keys/ec_public.pem");

    #[test]
    fn classifies_pem_keys() {
        let rsa = pem_public_key(RSA_PUBLIC.as_bytes(), "rsa").expect("rsa");
        assert_eq!(rsa.algorithms, [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512]);
        let ec = pem_public_key(EC_PUBLIC.as_bytes(), "ec").expect("ec");
        assert_eq!(ec.algorithms, [Algorithm::ES256]);
    }

    #[test]
    fn refuses_private_and_garbage_pem() {
        let err = pem_public_key(RSA_PRIVATE.as_bytes(), "keys/rsa.pem").err().expect("private");
        assert!(err.to_string().contains("private key"), "{err}");
        assert!(pem_public_key(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "x").is_err());
        assert!(pem_public_key(b"hello", "x").is_err());
    }

    #[test]
    fn reads_jwks_and_skips_what_it_cannot_use() {
        let jwks = serde_json::json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA", "kid": "h1", "alg": "HS256"},
            {"kty": "oct", "k": "c2VjcmV0", "kid": "enc", "use": "enc"},
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "ed"},
            {"kty": "oct", "k": "c2VjcmV0", "kid": "mismatch", "alg": "RS256"},
            {"kty": "RSA", "kid": "broken"}
        ]});
        let keys = jwks_keys(jwks.to_string().as_bytes(), "jwks").expect("one usable key");
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("h1"));
        assert_eq!(keys[0].algorithms, [Algorithm::HS256]);
        assert!(jwks_keys(br#"{"keys": []}"#, "jwks").is_err());
        assert!(jwks_keys(b"not json", "jwks").is_err());
    }

    #[test]
    fn empty_secret_is_refused() {
        assert!(hmac_key(b"", "jwt.hmac_secret").is_err());
    }

    #[test]
    fn secret_and_secret_file_conflict() {
        let config = JwtConfig {
            hmac_secret: Some("a".repeat(32)),
            hmac_secret_file: Some("/nonexistent".into()),
            ..JwtConfig::default()
        };
        assert!(matches!(KeyStore::load(&config), Err(AuthConfigError::ConflictingSecret)));
    }

    #[test]
    fn missing_file_is_a_start_up_error() {
        let config =
            JwtConfig { public_key_files: vec!["/nonexistent/key.pem".into()], ..JwtConfig::default() };
        let err = KeyStore::load(&config).err().expect("missing file");
        assert!(err.to_string().contains("/nonexistent/key.pem"), "{err}");
    }
}
