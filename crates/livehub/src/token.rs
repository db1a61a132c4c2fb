//! `livehub token`: mints a development JWT that a local server accepts.
//!
//! Production tokens come from an identity provider. This exists so that a developer can try a
//! secured server, and script against it (`TOKEN=$(livehub token …)`), without one; so the
//! token alone goes to standard output and everything else to standard error.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Args;
use livehub_auth::{mint_token, Algorithm, Authenticator, MintKey, Pattern, SUBJECT_PLACEHOLDER};
use livehub_server::Config;
use serde_json::{Map, Value};

use crate::failure;

/// Environment variable holding the HMAC secret, used when no flag and no config name a key.
const SECRET_ENV: &str = "LIVEHUB_TOKEN_SECRET";

/// Lifetime of a token unless `--ttl` says otherwise: a working session, short enough that a
/// leaked development token soon stops mattering.
const DEFAULT_TTL_SECS: u64 = 3600;

/// Arguments of `token`.
#[derive(Args)]
pub(crate) struct TokenArgs {
    #[command(flatten)]
    key: KeySource,
    /// Server configuration (livehub.toml) to mint for: its auth.jwt.hmac_secret or
    /// hmac_secret_file signs unless a key flag is given, its issuer and audience are the
    /// defaults, and the token is checked against it.
    #[arg(long, value_name = "TOML")]
    config: Option<PathBuf>,
    /// Signature algorithm: HS256, HS384, HS512, RS256, RS384, RS512, ES256 or ES384 [default:
    /// HS256 with a secret, RS256 with an RSA key, ES256 or ES384 after the EC key's curve].
    #[arg(long, value_name = "ALG", value_parser = parse_algorithm)]
    alg: Option<Algorithm>,
    /// Key id for the header (`kid`), when the server picks keys from a JWKS.
    #[arg(long)]
    kid: Option<String>,
    /// Subject (`sub`): who the holder is; `{sub}` in grant patterns stands for it.
    #[arg(long)]
    sub: Option<String>,
    /// Channel pattern the holder may subscribe to (`subscribe` claim); repeatable.
    #[arg(long = "subscribe", value_name = "PATTERN")]
    subscribe: Vec<String>,
    /// Channel pattern the holder may publish to (`publish` claim); repeatable.
    #[arg(long = "publish", value_name = "PATTERN")]
    publish: Vec<String>,
    /// Role (`roles` claim), granted what the server's [auth.roles.<ROLE>] says; repeatable.
    #[arg(long = "role", value_name = "ROLE")]
    roles: Vec<String>,
    /// Lifetime in seconds: `exp` is now plus this (`iat` is now).
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_TTL_SECS)]
    ttl: u64,
    /// Not valid before this many seconds from now (`nbf`).
    #[arg(long, value_name = "SECS")]
    nbf_in: Option<u64>,
    /// Issuer (`iss`) [default: the config's auth.jwt.issuer].
    #[arg(long)]
    iss: Option<String>,
    /// Audience (`aud`); repeatable, an array when given more than once [default: the config's
    /// auth.jwt.audience].
    #[arg(long)]
    aud: Vec<String>,
    /// Any other claim, as NAME=JSON (`--claim tenant='"acme"'`); applied last, so it replaces a
    /// claim set by another flag; repeatable.
    #[arg(long = "claim", value_name = "NAME=JSON", value_parser = parse_claim)]
    claims: Vec<(String, Value)>,
}

/// The signing key; at most one of these. Without any, the key comes from `--config`, then
/// from LIVEHUB_TOKEN_SECRET.
#[derive(Args)]
#[group(multiple = false)]
struct KeySource {
    /// HMAC secret (HS256/384/512). Other local users can see command lines: prefer
    /// --secret-file or the LIVEHUB_TOKEN_SECRET environment variable.
    #[arg(long)]
    secret: Option<String>,
    /// File holding the HMAC secret; surrounding whitespace is trimmed, as the server does.
    #[arg(long, value_name = "PATH")]
    secret_file: Option<PathBuf>,
    /// PEM private key, RSA (RS256/384/512) or EC P-256 (ES256) or P-384 (ES384).
    #[arg(long, value_name = "PEM")]
    key: Option<PathBuf>,
}

/// Mints the token and prints it alone on standard output.
pub(crate) fn run(args: TokenArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => Some(Config::from_file(path)?),
        None => None,
    };
    let mut key = signing_key(&args.key, config.as_ref(), args.config.as_deref())?;
    if let Some(kid) = &args.kid {
        key = key.with_kid(kid.as_str());
    }
    let alg = match args.alg {
        Some(alg) if !key.algorithms().contains(&alg) => {
            bail!("{alg} cannot be signed with this key; it signs {}", list(key.algorithms()))
        }
        Some(alg) => alg,
        None => default_algorithm(&key, config.as_ref()),
    };
    let claims = claims(&args, config.as_ref(), unix_now()?)?;
    let token = mint_token(&key, alg, &claims).context("cannot mint the token")?;
    eprintln!(
        "livehub token: a development token ({alg}) signed on this machine; in production, \
         tokens come from your identity provider"
    );
    if let (Some(config), Some(path)) = (&config, &args.config) {
        check_against(&token, config, path);
    }
    failure::print_line(&token)
}

/// The key named by the flags, else by the config, else by the environment.
fn signing_key(
    source: &KeySource,
    config: Option<&Config>,
    config_path: Option<&Path>,
) -> anyhow::Result<MintKey> {
    if let Some(secret) = &source.secret {
        return hmac(secret.as_bytes(), "--secret");
    }
    if let Some(path) = &source.secret_file {
        return hmac(&read_secret_file(path)?, &path.display().to_string());
    }
    if let Some(path) = &source.key {
        let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        return MintKey::from_pem(&pem).with_context(|| format!("{} cannot sign tokens", path.display()));
    }
    if let (Some(config), Some(path)) = (config, config_path) {
        let jwt = &config.auth.jwt;
        if let Some(secret) = &jwt.hmac_secret {
            return hmac(secret.as_bytes(), "auth.jwt.hmac_secret");
        }
        if let Some(file) = &jwt.hmac_secret_file {
            return hmac(&read_secret_file(file)?, &file.display().to_string());
        }
        bail!(
            "{} has no auth.jwt.hmac_secret or hmac_secret_file to sign with; pass --key with the \
             private key of one of its public keys",
            path.display()
        );
    }
    if let Ok(secret) = std::env::var(SECRET_ENV) {
        return hmac(secret.as_bytes(), SECRET_ENV);
    }
    bail!(
        "no signing key: pass --secret, --secret-file, --key <private.pem> or --config \
         <livehub.toml>, or set {SECRET_ENV}"
    )
}

fn hmac(secret: &[u8], origin: &str) -> anyhow::Result<MintKey> {
    if secret.is_empty() {
        bail!("the HMAC secret from {origin} is empty");
    }
    Ok(MintKey::hmac(secret))
}

/// Reads a secret file the way the server does: its bytes, surrounding whitespace trimmed.
fn read_secret_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(bytes.trim_ascii().to_vec())
}

/// The first algorithm of the key that the server accepts (the config's `auth.jwt.algorithms`,
/// or the server's defaults), else the key's first.
fn default_algorithm(key: &MintKey, config: Option<&Config>) -> Algorithm {
    let configured: Vec<Algorithm> = config
        .map(|c| c.auth.jwt.algorithms.iter().filter_map(|a| a.parse().ok()).collect())
        .unwrap_or_default();
    let allowed = if configured.is_empty() { &Algorithm::DEFAULT_ALLOWED[..] } else { &configured[..] };
    let algorithms = key.algorithms();
    algorithms.iter().copied().find(|a| allowed.contains(a)).unwrap_or(algorithms[0])
}

/// The claims, under the names livehub-auth reads.
fn claims(args: &TokenArgs, config: Option<&Config>, now: u64) -> anyhow::Result<Value> {
    let jwt = config.map(|c| &c.auth.jwt);
    let mut claims = Map::new();
    if let Some(sub) = &args.sub {
        claims.insert("sub".into(), sub.as_str().into());
    }
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), now.saturating_add(args.ttl).into());
    if let Some(secs) = args.nbf_in {
        claims.insert("nbf".into(), now.saturating_add(secs).into());
    }
    if let Some(iss) = args.iss.as_ref().or_else(|| jwt.and_then(|j| j.issuer.as_ref())) {
        claims.insert("iss".into(), iss.as_str().into());
    }
    match args.aud.as_slice() {
        [] => {
            if let Some(aud) = jwt.and_then(|j| j.audience.as_ref()) {
                claims.insert("aud".into(), aud.as_str().into());
            }
        }
        [aud] => {
            claims.insert("aud".into(), aud.as_str().into());
        }
        many => {
            claims.insert("aud".into(), many.into());
        }
    }
    if !args.roles.is_empty() {
        claims.insert("roles".into(), args.roles.as_slice().into());
    }
    for (name, patterns) in [("subscribe", &args.subscribe), ("publish", &args.publish)] {
        // The server ignores a malformed pattern in a token; here it is a typo worth stopping.
        for pattern in patterns {
            Pattern::new(&pattern.replace(SUBJECT_PLACEHOLDER, "x"))
                .with_context(|| format!("--{name} {pattern:?} is not a valid channel pattern"))?;
        }
        if !patterns.is_empty() {
            claims.insert(name.into(), patterns.as_slice().into());
        }
    }
    for (name, value) in &args.claims {
        claims.insert(name.clone(), value.clone());
    }
    Ok(Value::Object(claims))
}

/// Warns when the server that `config` describes would refuse `token` now.
fn check_against(token: &str, config: &Config, path: &Path) {
    // A warning, not an error: a token meant for later (`--nbf-in`) or for another
    // configuration is still a legitimate thing to mint.
    match Authenticator::new(&config.auth) {
        Ok(auth) => {
            if let Err(e) = auth.verify_token(token) {
                eprintln!(
                    "livehub token: warning: the server configured by {} would refuse this token \
                     now: {e}",
                    path.display()
                );
            }
        }
        Err(e) => {
            eprintln!("livehub token: warning: cannot check the token against {}: {e}", path.display());
        }
    }
}

fn unix_now() -> anyhow::Result<u64> {
    Ok(SystemTime::now().duration_since(UNIX_EPOCH).context("the clock is before 1970")?.as_secs())
}

fn list(algorithms: &[Algorithm]) -> String {
    algorithms.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ")
}

/// Parses an algorithm name, in any case (`hs256` is HS256).
fn parse_algorithm(text: &str) -> Result<Algorithm, String> {
    text.to_ascii_uppercase().parse().map_err(|_| format!("expected one of {}", list(&Algorithm::ALL)))
}

/// Parses `NAME=JSON`.
fn parse_claim(text: &str) -> Result<(String, Value), String> {
    let (name, json) = text.split_once('=').ok_or("expected NAME=JSON")?;
    if name.is_empty() {
        return Err("the claim name is empty".to_owned());
    }
    let value = serde_json::from_str(json)
        .map_err(|e| format!("the value is not JSON ({e}); quote a string: {name}='\"text\"'"))?;
    Ok((name.to_owned(), value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        token: TokenArgs,
    }

    fn args(line: &[&str]) -> TokenArgs {
        Cli::try_parse_from(std::iter::once("token").chain(line.iter().copied())).expect("parses").token
    }

    #[test]
    fn claims_use_the_names_the_server_reads() {
        let args = args(&[
            "--sub",
            "alice",
            "--subscribe",
            "chat/#",
            "--subscribe",
            "users/{sub}/#",
            "--publish",
            "chat/+",
            "--role",
            "admin",
            "--ttl",
            "60",
            "--nbf-in",
            "5",
            "--iss",
            "dev",
            "--aud",
            "a",
            "--aud",
            "b",
            "--claim",
            "tenant=\"acme\"",
            "--claim",
            "iat=1",
        ]);
        let claims = claims(&args, None, 1000).expect("valid");
        assert_eq!(
            claims,
            serde_json::json!({
                "sub": "alice", "iat": 1, "exp": 1060, "nbf": 1005, "iss": "dev", "aud": ["a", "b"],
                "roles": ["admin"], "subscribe": ["chat/#", "users/{sub}/#"], "publish": ["chat/+"],
                "tenant": "acme",
            })
        );
    }

    #[test]
    fn the_config_supplies_issuer_audience_and_algorithm() {
        let config = Config::from_toml(
            "[auth.jwt]\nhmac_secret = \"s\"\nissuer = \"i\"\naudience = \"a\"\nalgorithms = [\"HS512\"]",
        )
        .expect("config");
        let claims = claims(&args(&[]), Some(&config), 0).expect("valid");
        assert_eq!((claims["iss"].as_str(), claims["aud"].as_str()), (Some("i"), Some("a")));
        assert_eq!(claims["exp"], DEFAULT_TTL_SECS);
        assert_eq!(default_algorithm(&MintKey::hmac(b"s"), Some(&config)), Algorithm::HS512);
        assert_eq!(default_algorithm(&MintKey::hmac(b"s"), None), Algorithm::HS256);
    }

    #[test]
    fn refuses_malformed_patterns_and_claims() {
        assert!(claims(&args(&["--subscribe", "a/#/b"]), None, 0).is_err());
        assert!(claims(&args(&["--publish", "a+b"]), None, 0).is_err());
        for bad in ["tenant", "=1", "tenant=acme"] {
            assert!(parse_claim(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_algorithm("es256"), Ok(Algorithm::ES256));
        assert!(parse_algorithm("none").is_err());
    }

    #[test]
    fn key_flags_exclude_each_other() {
        let cli = Cli::try_parse_from(["token", "--secret", "a", "--key", "k.pem"]);
        assert!(cli.is_err());
    }
}
