use livehub_core::{ChannelFilter, ChannelName};
use serde_json::{json, Value};

use super::*;
use crate::api_key::hash_api_key;
use crate::config::{ApiKeyConfig, ChannelRule, Grants, JwtConfig, PublishRule, ReadRule};
use crate::error::Action;
use crate::mint::{mint_token, MintKey};
use crate::Algorithm;

const SECRET: &str = "0123456789abcdef0123456789abcdef";
const INGEST_KEY: &str = "lh_ingest-key";
const ADMIN_KEY: &str = "lh_admin-key";

fn grants(subscribe: &[&str], publish: &[&str]) -> Grants {
    Grants {
        subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
        publish: publish.iter().map(|s| s.to_string()).collect(),
    }
}

fn api_key(name: &str, key: &str, publish: &[&str], admin: bool) -> ApiKeyConfig {
    ApiKeyConfig {
        name: name.into(),
        sha256: hash_api_key(key),
        publish: publish.iter().map(|s| s.to_string()).collect(),
        subscribe: vec![],
        admin,
    }
}

fn rule(prefix: &str, read: ReadRule, publish: PublishRule) -> ChannelRule {
    ChannelRule { prefix: prefix.into(), read, publish }
}

/// A secured configuration like the one `docs/security.md` will show.
fn secured(required: Option<bool>) -> AuthConfig {
    AuthConfig {
        required,
        jwt: JwtConfig { hmac_secret: Some(SECRET.into()), ..JwtConfig::default() },
        roles: [
            ("admin".to_owned(), grants(&["#", "$sys/#"], &["#"])),
            ("user".to_owned(), grants(&["users/{sub}/#", "chat/#"], &["users/{sub}/#", "chat/+"])),
        ]
        .into(),
        channels: vec![
            rule("public", ReadRule::Public, PublishRule::Granted),
            rule("stocks", ReadRule::Authenticated, PublishRule::ApiKey),
            rule("metrics", ReadRule::Public, PublishRule::Denied),
        ],
        api_keys: vec![
            api_key("ingest", INGEST_KEY, &["stocks/#", "metrics/#"], false),
            api_key("ops", ADMIN_KEY, &[], true),
        ],
        ..AuthConfig::default()
    }
}

fn auth(config: &AuthConfig) -> Authenticator {
    Authenticator::new(config).expect("valid config")
}

fn token(claims: Value) -> String {
    let mut full =
        json!({"exp": SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() + 600});
    if let (Some(map), Value::Object(extra)) = (full.as_object_mut(), claims) {
        map.extend(extra);
    }
    mint_token(&MintKey::hmac(SECRET.as_bytes()), Algorithm::HS256, &full).expect("minted")
}

fn can_sub(identity: &Identity, filter: &str) -> bool {
    identity.may_subscribe(&ChannelFilter::new(filter).expect("valid filter")).is_ok()
}

fn can_pub(identity: &Identity, channel: &str) -> bool {
    identity.may_publish(&ChannelName::new(channel).expect("valid channel")).is_ok()
}

#[test]
fn anonymous_mode_allows_everything_but_system_publishing() {
    let auth = auth(&AuthConfig::default());
    assert!(!auth.enabled() && !auth.required());
    assert!(auth.origins().allows_any());
    let anon = auth.authenticate(None).expect("anonymous");
    assert_eq!(anon.kind(), &IdentityKind::Anonymous);
    for filter in ["#", "a/b", "$sys/presence", "$sys/#"] {
        assert!(can_sub(&anon, filter), "{filter}");
    }
    assert!(can_pub(&anon, "demo/ticks"));
    assert!(!can_pub(&anon, "$sys/presence"));
    assert_eq!(auth.verify_token("a.b.c").err(), Some(AuthError::Unauthorized("tokens are not accepted")));
    assert_eq!(auth.verify_api_key("anything").err(), Some(AuthError::Unauthorized("invalid API key")));
}

#[test]
fn secured_mode_requires_credentials() {
    let auth = auth(&secured(None));
    assert!(auth.enabled() && auth.required());
    assert!(!auth.origins().allows_any());
    assert_eq!(auth.authenticate(None).err(), Some(AuthError::Unauthorized("missing credentials")));
    assert!(auth.authenticate(Some(&token(json!({"sub": "alice"})))).is_ok());
}

#[test]
fn optional_credentials_give_anonymous_public_reads_only() {
    let auth = auth(&secured(Some(false)));
    let anon = auth.authenticate(None).expect("anonymous allowed");
    let table = [
        ("public/news", true),
        ("public/#", true),
        ("metrics/cpu", true),
        ("stocks/AAPL", false),
        ("chat/lobby", false),
        ("#", false),
        ("$sys/presence", false),
    ];
    for (filter, want) in table {
        assert_eq!(can_sub(&anon, filter), want, "{filter}");
    }
    assert!(!can_pub(&anon, "public/news"));
}

#[test]
fn roles_and_token_patterns_make_the_grants() {
    let auth = auth(&secured(None));
    let alice = auth
        .verify_token(&token(json!({"sub": "alice", "roles": ["user", "no-such-role"], "subscribe": ["news/+"], "publish": ["chat/{sub}/typing", "a/#/b"]})))
        .expect("valid token");
    assert_eq!(alice.kind(), &IdentityKind::User);
    assert_eq!(alice.subject(), Some("alice"));
    assert!(!alice.is_admin());
    assert!(alice.expires_at().is_some());
    let subscribe = [
        ("users/alice/inbox", true),
        ("users/alice/#", true),
        ("users/bob/inbox", false),
        ("users/+/inbox", false),
        ("chat/#", true),
        ("news/world", true),
        ("news/#", false),
        ("stocks/AAPL", true), // authenticated read
        ("public/x", true),
        ("#", false),
        ("$sys/presence", false),
    ];
    for (filter, want) in subscribe {
        assert_eq!(can_sub(&alice, filter), want, "subscribe {filter}");
    }
    let publish = [
        ("users/alice/outbox", true),
        ("users/bob/outbox", false),
        ("chat/lobby", true),
        ("chat/alice/typing", true),
        ("stocks/AAPL", false), // API keys only
        ("metrics/cpu", false), // nobody
    ];
    for (channel, want) in publish {
        assert_eq!(can_pub(&alice, channel), want, "publish {channel}");
    }

    let admin = auth.verify_token(&token(json!({"sub": "root", "roles": "admin"}))).expect("valid token");
    assert!(can_sub(&admin, "#") && can_sub(&admin, "$sys/presence"));
    assert!(can_pub(&admin, "anything/at/all"));
    assert!(!can_pub(&admin, "stocks/AAPL") && !can_pub(&admin, "metrics/cpu"));
}

#[test]
fn a_subject_cannot_inject_wildcards() {
    let auth = auth(&secured(None));
    for evil in ["+", "#", "bob/#", "alice/../bob", "$sys", "a b"] {
        let identity =
            auth.verify_token(&token(json!({"sub": evil, "roles": ["user"]}))).expect("valid token");
        for filter in ["users/bob/inbox", "users/#", "users/+/inbox", "$sys/presence"] {
            assert!(!can_sub(&identity, filter), "sub {evil:?} reached {filter}");
        }
        assert!(!can_pub(&identity, "users/bob/inbox"), "sub {evil:?}");
        // The rest of the role still applies.
        assert!(can_sub(&identity, "chat/lobby"));
    }
}

#[test]
fn api_keys_publish_where_their_patterns_and_the_rules_allow() {
    let auth = auth(&secured(None));
    let ingest = auth.verify_api_key(INGEST_KEY).expect("valid key");
    assert_eq!(ingest.kind(), &IdentityKind::ApiKey("ingest".into()));
    assert!(can_pub(&ingest, "stocks/AAPL"));
    assert!(!can_pub(&ingest, "metrics/cpu"), "denied prefix");
    assert!(!can_pub(&ingest, "chat/lobby"), "outside its patterns");
    assert_eq!(ingest.may_admin(), Err(AuthError::Forbidden(Action::Admin)));

    let ops = auth.verify_credential(ADMIN_KEY).expect("valid key");
    assert!(ops.is_admin() && ops.may_admin().is_ok());
    assert!(!can_pub(&ops, "stocks/AAPL"));

    for wrong in ["lh_wrong", "", INGEST_KEY.trim_start_matches("lh_")] {
        assert_eq!(
            auth.verify_api_key(wrong).err(),
            Some(AuthError::Unauthorized("invalid API key")),
            "{wrong:?}"
        );
    }
    // Credentials shaped like a JWT go to the token verifier.
    assert!(auth.verify_credential(&token(json!({"sub": "alice"}))).is_ok());
}

#[test]
fn explicit_anonymous_grants_apply_to_everyone() {
    let mut config = secured(Some(false));
    config.anonymous = Some(grants(&["$sys/presence"], &[]));
    let auth = auth(&config);
    assert!(can_sub(&auth.anonymous(), "$sys/presence"));
    let alice = auth.verify_token(&token(json!({"sub": "alice"}))).expect("valid token");
    assert!(can_sub(&alice, "$sys/presence"));
    assert!(can_sub(&auth.verify_api_key(INGEST_KEY).expect("key"), "$sys/presence"));
}

#[test]
fn token_errors_pass_through_without_the_token() {
    let auth = auth(&secured(None));
    let expired = token(json!({"sub": "alice", "exp": 1}));
    let err = auth.verify_token(&expired).expect_err("expired");
    assert_eq!(err, AuthError::TokenExpired);
    let garbage = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.c2lnbmF0dXJl";
    let err = auth.verify_token(garbage).expect_err("bad signature");
    assert!(!err.to_string().contains("eyJ"), "{err}");
    assert_eq!(err.code(), "unauthorized");
}

#[test]
fn rejects_bad_configuration() {
    let mut bad_role = secured(None);
    bad_role.roles.insert("broken".into(), grants(&["a/#/b"], &[]));
    let mut bad_cookie = secured(None);
    bad_cookie.cookie = "my token".into();
    let bad_alg = AuthConfig {
        jwt: JwtConfig { algorithms: vec!["none".into()], ..JwtConfig::default() },
        ..AuthConfig::default()
    };
    let mut bad_rule = secured(None);
    bad_rule.channels.push(rule("a/+", ReadRule::Public, PublishRule::Granted));
    let mut bad_origin = secured(None);
    bad_origin.origins.allowed = vec!["example.com".into()];
    let bad_anonymous = AuthConfig { anonymous: Some(grants(&["a/#/b"], &[])), ..AuthConfig::default() };
    for (name, config) in [
        ("role", bad_role),
        ("cookie", bad_cookie),
        ("alg", bad_alg),
        ("rule", bad_rule),
        ("origin", bad_origin),
        ("anonymous", bad_anonymous),
    ] {
        assert!(Authenticator::new(&config).is_err(), "{name}");
    }
}

#[test]
fn handles_are_cheap_clones_sharing_state() {
    let auth = auth(&secured(None));
    let clone = auth.clone();
    assert!(Arc::ptr_eq(&auth.shared, &clone.shared));
    assert_eq!(clone.cookie_name(), "livehub_token");
    assert!(!format!("{auth:?}").contains(SECRET));
}
