use std::fs;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::EncodingKey;
use serde_json::{json, Value};

use super::*;
use crate::mint::{mint_token, MintKey};

/// The synthetic "now" of these tests, in seconds since the Unix epoch.
const NOW: u64 = 1_800_000_000;
const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn key_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys").join(name)
}

fn key_bytes(name: &str) -> Vec<u8> {
    fs::read(key_path(name)).expect("test key")
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

fn claims(extra: Value) -> Value {
    let mut claims = json!({"sub": "alice", "exp": NOW + 3600});
    if let (Some(map), Value::Object(extra)) = (claims.as_object_mut(), extra) {
        map.extend(extra);
    }
    claims
}

fn hmac() -> MintKey {
    MintKey::hmac(SECRET.as_bytes())
}

fn rsa() -> MintKey {
    MintKey::from_pem(&key_bytes("rsa_private.pem")).expect("rsa key")
}

fn rsa2() -> MintKey {
    MintKey::from_pem(&key_bytes("rsa2_private.pem")).expect("rsa key")
}

fn ec() -> MintKey {
    MintKey::from_pem(&key_bytes("ec_private.pem")).expect("ec key")
}

fn mint(key: &MintKey, alg: Algorithm, claims: &Value) -> String {
    mint_token(key, alg, claims).expect("minted")
}

fn verifier(config: JwtConfig) -> JwtVerifier {
    JwtVerifier::new(&config).expect("valid jwt config")
}

fn hs_config() -> JwtConfig {
    JwtConfig { hmac_secret: Some(SECRET.into()), ..JwtConfig::default() }
}

fn all_keys_config() -> JwtConfig {
    JwtConfig { public_key_files: vec![key_path("rsa_public.pem"), key_path("ec_public.pem")], ..hs_config() }
}

fn verify(verifier: &JwtVerifier, token: &str) -> Result<VerifiedClaims, AuthError> {
    verifier.verify(token, now(), Instant::now())
}

/// A token with a hand-made header and no valid signature.
fn forged(header: Value, claims: &Value, signature: &str) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.{signature}", part(&header), part(claims))
}

#[test]
fn accepts_every_default_algorithm() {
    let verifier = verifier(all_keys_config());
    let table = [
        (hmac(), Algorithm::HS256),
        (hmac(), Algorithm::HS384),
        (hmac(), Algorithm::HS512),
        (rsa(), Algorithm::RS256),
        (ec(), Algorithm::ES256),
    ];
    for (key, alg) in table {
        let token = mint(&key, alg, &claims(json!({"roles": ["user"]})));
        let verified = verify(&verifier, &token).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(verified.sub.as_deref(), Some("alice"), "{alg}");
        assert_eq!(verified.exp, Some(NOW + 3600));
        assert_eq!(verified.roles, ["user"]);
    }
}

#[test]
fn checks_expiry_and_not_before_with_leeway() {
    let verifier = verifier(hs_config());
    let table = [
        (json!({"exp": NOW + 1}), Ok(())),
        (json!({"exp": NOW - 10}), Ok(())),
        (json!({"exp": NOW - 29}), Ok(())),
        // Valid only before `exp` (RFC 7519), leeway included.
        (json!({"exp": NOW - 30}), Err(AuthError::TokenExpired)),
        (json!({"exp": NOW - 31}), Err(AuthError::TokenExpired)),
        (json!({"exp": NOW - 86_400}), Err(AuthError::TokenExpired)),
        (json!({"nbf": NOW + 10}), Ok(())),
        (json!({"nbf": NOW + 30}), Ok(())),
        (json!({"nbf": NOW + 31}), Err(AuthError::TokenNotYetValid)),
        (json!({"nbf": NOW + 86_400}), Err(AuthError::TokenNotYetValid)),
        (json!({"exp": (NOW as f64) + 0.5}), Ok(())),
        (json!({"exp": "tomorrow"}), Err(AuthError::Unauthorized("malformed token"))),
        (json!({"exp": -5}), Err(AuthError::Unauthorized("malformed time claim"))),
    ];
    for (extra, want) in table {
        let token = mint(&hmac(), Algorithm::HS256, &claims(extra.clone()));
        assert_eq!(verify(&verifier, &token).map(|_| ()), want, "{extra}");
    }
}

#[test]
fn requires_exp_unless_told_otherwise() {
    let token = mint(&hmac(), Algorithm::HS256, &json!({"sub": "alice"}));
    assert_eq!(
        verify(&verifier(hs_config()), &token).err(),
        Some(AuthError::Unauthorized("token without exp"))
    );
    let lenient = verifier(JwtConfig { require_exp: false, ..hs_config() });
    assert_eq!(verify(&lenient, &token).map(|c| c.exp), Ok(None));
}

#[test]
fn rejects_wrong_signatures() {
    let verifier = verifier(all_keys_config());
    let other_secret = MintKey::hmac(b"another-secret-another-secret-00");
    let bad_sig = AuthError::Unauthorized("invalid token signature");
    for (key, alg) in [(other_secret, Algorithm::HS256), (rsa2(), Algorithm::RS256)] {
        let token = mint(&key, alg, &claims(json!({})));
        assert_eq!(verify(&verifier, &token).err(), Some(bad_sig), "{alg}");
    }
    // A valid signature over other claims.
    let good = mint(&hmac(), Algorithm::HS256, &claims(json!({})));
    let admin = mint(&hmac(), Algorithm::HS256, &claims(json!({"roles": ["admin"]})));
    let parts: Vec<&str> = good.split('.').collect();
    let admin_payload = admin.split('.').nth(1).expect("payload");
    let spliced = format!("{}.{}.{}", parts[0], admin_payload, parts[2]);
    assert_eq!(verify(&verifier, &spliced).err(), Some(bad_sig));
}

#[test]
fn checks_issuer_and_audience() {
    let strict = verifier(JwtConfig {
        issuer: Some("https://id.example.com".into()),
        audience: Some("livehub".into()),
        ..hs_config()
    });
    let lax = verifier(hs_config());
    let wrong_iss = Err(AuthError::Unauthorized("wrong token issuer"));
    let wrong_aud = Err(AuthError::Unauthorized("wrong token audience"));
    let table = [
        (json!({"iss": "https://id.example.com", "aud": "livehub"}), Ok(()), Ok(())),
        (json!({"iss": "https://id.example.com", "aud": ["other", "livehub"]}), Ok(()), Ok(())),
        (json!({"iss": "https://evil.example.com", "aud": "livehub"}), wrong_iss, Ok(())),
        (json!({"aud": "livehub"}), wrong_iss, Ok(())),
        (json!({"iss": "https://id.example.com", "aud": "other"}), wrong_aud, Ok(())),
        (json!({"iss": "https://id.example.com", "aud": ["other"]}), wrong_aud, Ok(())),
        (json!({"iss": "https://id.example.com"}), wrong_aud, Ok(())),
    ];
    for (extra, strict_want, lax_want) in table {
        let token = mint(&hmac(), Algorithm::HS256, &claims(extra.clone()));
        assert_eq!(verify(&strict, &token).map(|_| ()), strict_want, "strict {extra}");
        assert_eq!(verify(&lax, &token).map(|_| ()), lax_want, "lax {extra}");
    }
}

#[test]
fn rejects_alg_none() {
    let verifier = verifier(hs_config());
    let not_allowed = Some(AuthError::Unauthorized("token algorithm not allowed"));
    for alg in ["none", "None", "NONE", ""] {
        let token = forged(json!({"alg": alg, "typ": "JWT"}), &claims(json!({})), "");
        assert_eq!(verify(&verifier, &token).err(), not_allowed, "{alg:?}");
    }
    // The same with a signature part copied from a valid token.
    let valid = mint(&hmac(), Algorithm::HS256, &claims(json!({})));
    let signature = valid.rsplit('.').next().expect("signature");
    let token = forged(json!({"alg": "none"}), &claims(json!({})), signature);
    assert_eq!(verify(&verifier, &token).err(), not_allowed);
}

#[test]
fn rejects_algorithms_not_allowed() {
    let only_hs512 = verifier(JwtConfig { algorithms: vec!["HS512".into()], ..hs_config() });
    let token = mint(&hmac(), Algorithm::HS256, &claims(json!({})));
    assert_eq!(
        verify(&only_hs512, &token).err(),
        Some(AuthError::Unauthorized("token algorithm not allowed"))
    );
    assert!(verify(&only_hs512, &mint(&hmac(), Algorithm::HS512, &claims(json!({})))).is_ok());
    // RS384 works with an RSA key, but only when listed.
    let rs384 = mint(&rsa(), Algorithm::RS384, &claims(json!({})));
    assert!(verify(&verifier(all_keys_config()), &rs384).is_err());
    let listed = verifier(JwtConfig { algorithms: vec!["RS384".into()], ..all_keys_config() });
    assert!(verify(&listed, &rs384).is_ok());
}

#[test]
fn rsa_public_key_is_never_an_hmac_secret() {
    // The classic key-confusion attack: sign HS256 with the public key's PEM text as the secret.
    let pem = key_bytes("rsa_public.pem");
    let token = mint(&MintKey::hmac(&pem), Algorithm::HS256, &claims(json!({})));
    let rsa_only =
        verifier(JwtConfig { public_key_files: vec![key_path("rsa_public.pem")], ..JwtConfig::default() });
    assert!(verify(&rsa_only, &token).is_err());
    let hs_listed = verifier(JwtConfig {
        public_key_files: vec![key_path("rsa_public.pem")],
        algorithms: vec!["HS256".into(), "RS256".into()],
        ..JwtConfig::default()
    });
    assert_eq!(verify(&hs_listed, &token).err(), Some(AuthError::Unauthorized("no key for this token")));
    // Alongside a real HMAC secret, the PEM still is not one.
    assert_eq!(
        verify(&verifier(all_keys_config()), &token).err(),
        Some(AuthError::Unauthorized("invalid token signature"))
    );
}

#[test]
fn rejects_malformed_tokens() {
    let verifier = verifier(hs_config());
    let valid = mint(&hmac(), Algorithm::HS256, &claims(json!({})));
    let oversized = format!("{valid}{}", "A".repeat(MAX_TOKEN_LEN));
    let roles_number = mint(&hmac(), Algorithm::HS256, &claims(json!({"roles": 5})));
    let crit = forged(json!({"alg": "HS256", "crit": ["exp"]}), &claims(json!({})), "x");
    let table = [
        ("", "malformed token"),
        ("abc", "malformed token"),
        ("a.b", "malformed token"),
        ("a.b.c.d", "malformed token"),
        ("!!!.e30.x", "malformed token"),
        (&oversized, "malformed token"),
        (&roles_number, "malformed token"),
        (&crit, "unsupported critical header"),
    ];
    for (token, reason) in table {
        assert_eq!(verify(&verifier, token).err(), Some(AuthError::Unauthorized(reason)), "{token:.40}");
    }
}

#[test]
fn reads_grant_claims() {
    let verifier = verifier(hs_config());
    let extra =
        json!({"roles": "admin", "subscribe": ["news/#"], "publish": ["chat/{sub}"], "other": {"x": 1}});
    let verified = verify(&verifier, &mint(&hmac(), Algorithm::HS256, &claims(extra))).expect("valid");
    assert_eq!(verified.roles, ["admin"]);
    assert_eq!(verified.subscribe, ["news/#"]);
    assert_eq!(verified.publish, ["chat/{sub}"]);
}

#[test]
fn config_errors() {
    let unknown = JwtVerifier::new(&JwtConfig { algorithms: vec!["none".into()], ..hs_config() });
    assert!(matches!(unknown, Err(AuthConfigError::UnknownAlgorithm(_))));
    let unusable = JwtVerifier::new(&JwtConfig { algorithms: vec!["ES256".into()], ..hs_config() });
    assert!(matches!(unusable, Err(AuthConfigError::NoUsableKey(_))));
}

fn rsa_jwk(private_pem: &str, kid: &str) -> Jwk {
    let key = EncodingKey::from_rsa_pem(&key_bytes(private_pem)).expect("rsa");
    let mut jwk = Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::RS256).expect("jwk");
    jwk.common.key_id = Some(kid.to_owned());
    jwk
}

fn write_jwks(path: &Path, keys: Vec<Jwk>) {
    fs::write(path, serde_json::to_vec(&JwkSet { keys }).expect("json")).expect("write jwks");
}

fn ec_jwk(kid: &str) -> Jwk {
    let key = EncodingKey::from_ec_pem(&key_bytes("ec_private.pem")).expect("ec");
    let mut jwk = Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::ES256).expect("jwk");
    jwk.common.key_id = Some(kid.to_owned());
    jwk
}

#[test]
fn picks_jwks_keys_by_kid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jwks.json");
    write_jwks(
        &path,
        vec![rsa_jwk("rsa_private.pem", "k1"), rsa_jwk("rsa2_private.pem", "k2"), ec_jwk("e1")],
    );
    let verifier = verifier(JwtConfig { jwks_file: Some(path), ..JwtConfig::default() });
    let c = claims(json!({}));
    let no_key = Err(AuthError::Unauthorized("no key for this token"));
    let table = [
        (rsa().with_kid("k1"), Algorithm::RS256, Ok(())),
        (rsa2().with_kid("k2"), Algorithm::RS256, Ok(())),
        (ec().with_kid("e1"), Algorithm::ES256, Ok(())),
        (rsa2().with_kid("k1"), Algorithm::RS256, Err(AuthError::Unauthorized("invalid token signature"))),
        (rsa().with_kid("k9"), Algorithm::RS256, no_key),
        // A kid of another key type is no key for this algorithm.
        (ec().with_kid("k1"), Algorithm::ES256, no_key),
        // Without a kid every key of the right type is tried.
        (rsa2(), Algorithm::RS256, Ok(())),
        (ec(), Algorithm::ES256, Ok(())),
    ];
    for (i, (key, alg, want)) in table.into_iter().enumerate() {
        assert_eq!(verify(&verifier, &mint(&key, alg, &c)).map(|_| ()), want, "case {i}");
    }
}

#[test]
fn es384_needs_a_p384_key_and_a_listing() {
    let p384 = MintKey::from_pem(&key_bytes("ec384_private.pem")).expect("p384 key");
    assert_eq!(p384.algorithms(), [Algorithm::ES384]);
    let config = JwtConfig {
        public_key_files: vec![key_path("ec_public.pem"), key_path("ec384_public.pem")],
        ..JwtConfig::default()
    };
    let token = mint(&p384, Algorithm::ES384, &claims(json!({})));
    assert!(verify(&verifier(config.clone()), &token).is_err(), "ES384 is not allowed by default");
    let listed = verifier(JwtConfig { algorithms: vec!["ES256".into(), "ES384".into()], ..config });
    assert!(verify(&listed, &token).is_ok());
    // The P-256 key keeps verifying ES256 alongside.
    assert!(verify(&listed, &mint(&ec(), Algorithm::ES256, &claims(json!({})))).is_ok());
}

/// Rewrites a file and moves its modification time, as a key rotation would.
fn replace_file(path: &Path, contents: &[u8], version: u64) {
    fs::write(path, contents).expect("write");
    let file = fs::File::options().write(true).open(path).expect("open");
    file.set_modified(UNIX_EPOCH + Duration::from_secs(NOW + version)).expect("set mtime");
}

#[test]
fn reloads_a_rotated_pem_file_and_keeps_keys_when_the_new_file_is_bad() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("key.pem");
    replace_file(&path, &key_bytes("rsa_public.pem"), 1);
    let verifier = verifier(JwtConfig { public_key_files: vec![path.clone()], ..JwtConfig::default() });
    let (old, new) = (
        mint(&rsa(), Algorithm::RS256, &claims(json!({}))),
        mint(&rsa2(), Algorithm::RS256, &claims(json!({}))),
    );
    let at = |token: &str, clock: Instant| verifier.verify(token, now(), clock).is_ok();
    let t0 = Instant::now();
    assert!(at(&old, t0));
    assert!(!at(&new, t0));

    replace_file(&path, &key_bytes("rsa2_public.pem"), 2);
    // Checked less than a second ago: the old key is still in force.
    assert!(at(&old, t0 + Duration::from_millis(500)));
    assert!(!at(&new, t0 + Duration::from_millis(500)));
    assert!(at(&new, t0 + Duration::from_secs(1)));
    assert!(!at(&old, t0 + Duration::from_secs(1)));

    replace_file(&path, b"not a key", 3);
    assert!(at(&new, t0 + Duration::from_secs(2)), "an invalid file keeps the previous key");
    fs::remove_file(&path).expect("remove");
    assert!(at(&new, t0 + Duration::from_secs(3)), "a missing file keeps the previous key");

    replace_file(&path, &key_bytes("rsa_public.pem"), 4);
    assert!(verifier.reload_keys(), "an explicit reload needs no wait");
    assert!(at(&old, t0 + Duration::from_secs(3)));
}

#[test]
fn reloads_jwks_and_secret_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let jwks = dir.path().join("jwks.json");
    let secret = dir.path().join("secret");
    write_jwks(&jwks, vec![rsa_jwk("rsa_private.pem", "k1")]);
    replace_file(&secret, format!("{SECRET}\n").as_bytes(), 1);
    let verifier = verifier(JwtConfig {
        jwks_file: Some(jwks.clone()),
        hmac_secret_file: Some(secret.clone()),
        ..JwtConfig::default()
    });
    let c = claims(json!({}));
    let hs_new_key = MintKey::hmac(b"rotated-secret-rotated-secret-00");
    assert!(
        verify(&verifier, &mint(&hmac(), Algorithm::HS256, &c)).is_ok(),
        "the trailing newline is trimmed"
    );
    assert!(verify(&verifier, &mint(&rsa().with_kid("k1"), Algorithm::RS256, &c)).is_ok());

    write_jwks(&jwks, vec![rsa_jwk("rsa2_private.pem", "k2")]);
    replace_file(&secret, b"rotated-secret-rotated-secret-00", 2);
    assert!(verifier.reload_keys());
    assert!(verify(&verifier, &mint(&rsa2().with_kid("k2"), Algorithm::RS256, &c)).is_ok());
    assert!(verify(&verifier, &mint(&rsa().with_kid("k1"), Algorithm::RS256, &c)).is_err());
    assert!(verify(&verifier, &mint(&hs_new_key, Algorithm::HS256, &c)).is_ok());
    assert!(verify(&verifier, &mint(&hmac(), Algorithm::HS256, &c)).is_err());
    assert!(!verifier.reload_keys(), "nothing changed since");
}
