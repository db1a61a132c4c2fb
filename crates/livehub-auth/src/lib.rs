//! livehub's access control: who may connect, subscribe and publish.
//!
//! - [`Authenticator`] turns a JWT or an API key into an [`Identity`], built from an
//!   [`AuthConfig`] (the `[auth]` section). Without keys it is in anonymous mode, where anyone
//!   may do anything but publish to `$` system channels.
//! - [`Identity::may_subscribe`] and [`Identity::may_publish`] apply the identity's grant
//!   patterns and the per-prefix [`ChannelRule`]s. A wildcard subscription passes only if every
//!   channel it could match is allowed.
//! - [`OriginPolicy`] guards WebSocket and SSE against cross-site hijacking.
//! - [`HostPolicy`] guards against DNS rebinding by checking the `Host` header.
//! - [`TokenBucket`], [`KeyedLimiter`] and [`ConnectionLimiter`] implement the rate limits of
//!   [`RateLimits`].
//! - [`mint_token`] signs development tokens.
//!
//! Every refusal is an [`AuthError`] with a stable code and HTTP status. Nothing here knows
//! about HTTP frameworks or transports: the server extracts credentials, origins and client
//! addresses, and asks.

mod algorithm;
mod api_key;
mod authenticator;
mod config;
mod connections;
mod error;
mod grants;
mod hosts;
mod identity;
mod jwt;
mod keys;
mod limits;
mod mint;
mod origin;
mod pattern;
mod rules;
mod sync;

pub use algorithm::Algorithm;
pub use api_key::{generate_api_key, hash_api_key, MAX_API_KEY_LEN};
pub use authenticator::{is_token_shaped, Authenticator};
pub use config::{
    ApiKeyConfig, AuthConfig, ChannelRule, Grants, JwtConfig, OriginConfig, PublishRule, RateLimits,
    ReadRule, DEFAULT_COOKIE, DEFAULT_LEEWAY_SECS,
};
pub use connections::{ConnectionGuard, ConnectionLimiter};
pub use error::{Action, AuthConfigError, AuthError};
pub use hosts::HostPolicy;
pub use identity::{Identity, IdentityKind};
pub use jwt::MAX_TOKEN_LEN;
pub use keys::RELOAD_CHECK_INTERVAL;
pub use limits::{KeyedLimiter, TokenBucket};
pub use mint::{mint_token, MintError, MintKey};
pub use origin::OriginPolicy;
pub use pattern::{Pattern, SUBJECT_PLACEHOLDER};
