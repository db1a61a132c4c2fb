//! The development credentials of the `livehub` binary, checked by livehub-auth as the server
//! would check them: `livehub token` mints JWTs, `livehub apikey` makes and hashes API keys.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use livehub_auth::{hash_api_key, AuthConfig, AuthError, Authenticator, Identity, JwtConfig};
use livehub_core::{ChannelFilter, ChannelName};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_livehub");

/// A test key of livehub-auth.
fn key_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../livehub-auth/tests/keys").join(name)
}

/// Runs `livehub` with `args`, without any secret from the environment.
fn livehub(args: &[&str]) -> Output {
    Command::new(BIN).args(args).env_remove("LIVEHUB_TOKEN_SECRET").output().expect("run livehub")
}

/// Standard output of a successful run.
fn stdout_of(args: &[&str]) -> String {
    let out = livehub(args);
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf8")
}

/// The token printed by `livehub token`, which must be the only thing on standard output.
fn mint(args: &[&str]) -> String {
    let out = livehub(&[&["token"], args].concat());
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("development"), "warns on stderr");
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    let token = stdout.strip_suffix('\n').expect("one line");
    assert!(!token.contains(char::is_whitespace), "only the token: {stdout:?}");
    token.to_owned()
}

/// The decoded header and payload of a JWT.
fn decode(token: &str) -> (Value, Value) {
    let part = |p: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).expect("base64url")).expect("JSON")
    };
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    (part(parts[0]), part(parts[1]))
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs()
}

fn verify(jwt: JwtConfig, token: &str) -> Result<Identity, AuthError> {
    let auth = Authenticator::new(&AuthConfig { jwt, ..AuthConfig::default() }).expect("auth config");
    auth.verify_token(token)
}

fn hmac(secret: &str) -> JwtConfig {
    JwtConfig { hmac_secret: Some(secret.into()), ..JwtConfig::default() }
}

fn filter(text: &str) -> ChannelFilter {
    ChannelFilter::new(text).expect("filter")
}

#[test]
fn a_secret_mints_an_hs256_token_the_server_accepts() {
    let before = unix_now();
    let token = mint(&["--secret", "s3cret", "--sub", "alice", "--subscribe", "chat/#", "--ttl", "60"]);
    let after = unix_now();
    let (header, claims) = decode(&token);
    assert_eq!(header["alg"], "HS256");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["subscribe"], serde_json::json!(["chat/#"]));
    let exp = claims["exp"].as_u64().expect("exp");
    assert!((before + 60..=after + 60).contains(&exp), "exp {exp} is now + 60");
    let iat = claims["iat"].as_u64().expect("iat");
    assert!((before..=after).contains(&iat));
    assert!(claims.get("publish").is_none() && claims.get("nbf").is_none());

    let identity = verify(hmac("s3cret"), &token).expect("valid");
    assert_eq!(identity.subject(), Some("alice"));
    assert!(identity.may_subscribe(&filter("chat/room")).is_ok());
    assert!(identity.may_subscribe(&filter("news/x")).is_err());
    assert!(identity.may_publish(&ChannelName::new("chat/room").expect("name")).is_err());
    assert!(verify(hmac("other"), &token).is_err(), "the signature depends on the secret");
}

#[test]
fn every_flag_becomes_its_claim() {
    let token = mint(&[
        "--secret",
        "s3cret",
        "--alg",
        "HS512",
        "--kid",
        "dev-1",
        "--sub",
        "bob",
        "--publish",
        "users/{sub}/#",
        "--role",
        "admin",
        "--role",
        "ops",
        "--nbf-in",
        "30",
        "--iss",
        "dev",
        "--aud",
        "livehub",
        "--claim",
        "tenant=\"acme\"",
        "--claim",
        "n=[1,2]",
    ]);
    let (header, claims) = decode(&token);
    assert_eq!((header["alg"].as_str(), header["kid"].as_str()), (Some("HS512"), Some("dev-1")));
    assert_eq!(claims["publish"], serde_json::json!(["users/{sub}/#"]));
    assert_eq!(claims["roles"], serde_json::json!(["admin", "ops"]));
    assert_eq!((claims["iss"].as_str(), claims["aud"].as_str()), (Some("dev"), Some("livehub")));
    assert_eq!((claims["tenant"].as_str(), claims["n"].clone()), (Some("acme"), serde_json::json!([1, 2])));
    let (nbf, iat) = (claims["nbf"].as_u64().expect("nbf"), claims["iat"].as_u64().expect("iat"));
    assert_eq!(nbf, iat + 30);
    assert_eq!(claims["exp"].as_u64(), Some(iat + 3600), "the default lifetime is an hour");
}

#[test]
fn an_ec_key_mints_an_es256_token_its_public_key_verifies() {
    let private = key_file("ec_private.pem");
    let token = mint(&["--key", private.to_str().expect("utf8 path"), "--sub", "carol", "--publish", "a/#"]);
    let (header, _) = decode(&token);
    assert_eq!(header["alg"], "ES256", "inferred from the key");
    let jwt = JwtConfig { public_key_files: vec![key_file("ec_public.pem")], ..JwtConfig::default() };
    let identity = verify(jwt, &token).expect("valid");
    assert_eq!(identity.subject(), Some("carol"));
    assert!(identity.may_publish(&ChannelName::new("a/b").expect("name")).is_ok());
}

#[test]
fn the_key_and_defaults_come_from_a_server_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret_file = dir.path().join("dev.secret");
    std::fs::write(&secret_file, "file-secret-0123456789abcdef0123\n").expect("write secret");
    let with_file = dir.path().join("file.toml");
    std::fs::write(
        &with_file,
        format!(
            "[auth.jwt]\nhmac_secret_file = {:?}\nissuer = \"dev-idp\"\n",
            secret_file.display().to_string()
        ),
    )
    .expect("write config");
    let inline = dir.path().join("inline.toml");
    std::fs::write(&inline, "[auth.jwt]\nhmac_secret = \"from-config\"\naudience = \"hub\"\n")
        .expect("write");

    let token = mint(&["--config", with_file.to_str().expect("utf8"), "--sub", "dave"]);
    let (_, claims) = decode(&token);
    assert_eq!(claims["iss"], "dev-idp");
    let jwt = JwtConfig {
        hmac_secret: Some("file-secret-0123456789abcdef0123".into()),
        issuer: Some("dev-idp".into()),
        ..JwtConfig::default()
    };
    assert_eq!(verify(jwt, &token).expect("valid").subject(), Some("dave"));

    let token = mint(&["--config", inline.to_str().expect("utf8")]);
    assert_eq!(decode(&token).1["aud"], "hub");
    let jwt = JwtConfig { audience: Some("hub".into()), ..hmac("from-config") };
    assert!(verify(jwt, &token).is_ok());
}

#[test]
fn without_a_key_nothing_is_minted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keyless = dir.path().join("keyless.toml");
    std::fs::write(&keyless, "listen = \"127.0.0.1:8080\"\n").expect("write");
    for args in [
        vec!["token", "--sub", "alice"],
        vec!["token", "--config", keyless.to_str().expect("utf8")],
        vec!["token", "--secret", ""],
        vec!["token", "--secret", "s", "--alg", "RS256"],
        vec!["token", "--key", key_file("ec_public.pem").to_str().expect("utf8")],
    ] {
        let out = livehub(&args);
        assert!(!out.status.success(), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?} explains why");
    }
    let stderr = String::from_utf8(livehub(&["token"]).stderr).expect("utf8");
    assert!(stderr.contains("no signing key") && stderr.contains("--secret"), "{stderr}");
}

#[test]
fn the_secret_may_come_from_the_environment() {
    let out = Command::new(BIN)
        .args(["token", "--sub", "erin"])
        .env("LIVEHUB_TOKEN_SECRET", "env-secret")
        .stderr(Stdio::null())
        .output()
        .expect("run");
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).expect("utf8");
    assert!(verify(hmac("env-secret"), token.trim()).is_ok());
}

#[test]
fn apikey_prints_a_key_and_the_config_entry_that_accepts_it() {
    let stdout = stdout_of(&["apikey", "--name", "pub", "--publish", "sensors/#"]);
    let key = stdout
        .lines()
        .find_map(|l| l.strip_prefix("key:"))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a key line");
    assert!(key.starts_with("lh_"), "{stdout}");
    let snippet = &stdout[stdout.find("[[auth.api_keys]]").expect("config entry")..];
    let config = livehub_server::Config::from_toml(snippet).expect("the entry is valid config");
    let [entry] = config.auth.api_keys.as_slice() else { panic!("one key: {snippet}") };
    assert_eq!(entry.name, "pub");
    assert_eq!(entry.sha256, hash_api_key(key));
    assert_eq!(entry.publish, ["sensors/#"]);
    assert!(!entry.admin);

    let auth = Authenticator::new(&config.auth).expect("auth config");
    let identity = auth.verify_api_key(key).expect("the key is accepted");
    assert!(identity.may_publish(&ChannelName::new("sensors/t1").expect("name")).is_ok());
    assert!(identity.may_publish(&ChannelName::new("stocks/x").expect("name")).is_err());

    let other = stdout_of(&["apikey", "--name", "pub", "--publish", "sensors/#"]);
    assert!(!other.contains(key), "every key is new");
}

#[test]
fn apikey_refuses_bad_patterns_and_needs_a_name() {
    for args in [vec!["apikey", "--name", "p", "--publish", "a/#/b"], vec!["apikey", "--publish", "a/#"]] {
        let out = livehub(&args);
        assert!(!out.status.success() && out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn apikey_hash_prints_the_sha256() {
    // printf %s test | sha256sum
    let expected = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n";
    assert_eq!(stdout_of(&["apikey", "--hash", "test"]), expected);

    let mut child = Command::new(BIN)
        .args(["apikey", "--hash", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"test\n").expect("write");
    }
    let out = child.wait_with_output().expect("output");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).expect("utf8"),
        expected,
        "the line break is not part of the key"
    );
}
