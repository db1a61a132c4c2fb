//! Who is on the other end of a connection or request, and what they may do.

use std::sync::Arc;
use std::time::SystemTime;

use livehub_core::{ChannelFilter, ChannelName};

use crate::config::{PublishRule, ReadRule};
use crate::error::{Action, AuthError};
use crate::grants::ResolvedGrants;
use crate::pattern::{covers, levels, Pattern};
use crate::rules::ChannelRules;

/// How an identity proved itself.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum IdentityKind {
    /// No credentials.
    Anonymous,
    /// A verified JWT.
    User,
    /// An API key, with the name it has in the configuration.
    ApiKey(String),
}

/// An authenticated (or anonymous) caller with its resolved grants. Cheap to clone.
///
/// Permission checks look only at the identity, its grants and the channel rules, never at
/// channel state, so a denial cannot reveal whether a channel exists.
#[derive(Clone, Debug)]
pub struct Identity {
    subject: Option<String>,
    kind: IdentityKind,
    expires_at: Option<SystemTime>,
    admin: bool,
    grants: Arc<ResolvedGrants>,
    rules: Arc<ChannelRules>,
}

impl Identity {
    pub(crate) fn new(
        subject: Option<String>,
        kind: IdentityKind,
        expires_at: Option<SystemTime>,
        admin: bool,
        grants: ResolvedGrants,
        rules: Arc<ChannelRules>,
    ) -> Self {
        Self { subject, kind, expires_at, admin, grants: Arc::new(grants), rules }
    }

    /// The token's `sub`, if any.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// How the identity proved itself.
    pub fn kind(&self) -> &IdentityKind {
        &self.kind
    }

    /// Whether the identity presented valid credentials.
    pub fn is_authenticated(&self) -> bool {
        self.kind != IdentityKind::Anonymous
    }

    /// When the token's `exp` passes (without leeway); `None` for identities that never expire.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// Whether the token has expired at `now` (without leeway: a live connection is closed at
    /// `exp`, while a new token gets the leeway when it is verified).
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|exp| now >= exp)
    }

    /// Whether the identity may use the admin API.
    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// The patterns the identity may subscribe inside.
    pub fn subscribe_grants(&self) -> &[Pattern] {
        &self.grants.subscribe
    }

    /// The patterns of the channels the identity may publish to.
    pub fn publish_grants(&self) -> &[Pattern] {
        &self.grants.publish
    }

    /// Checks a subscription (or a history read). A wildcard is allowed only if every channel it
    /// could ever match is allowed: if it could reach a forbidden prefix, it is denied, even if
    /// it also reaches allowed channels.
    pub fn may_subscribe(&self, filter: &ChannelFilter) -> Result<(), AuthError> {
        let filter = levels(filter.as_str());
        let allowed = self.rules.read_regions(&filter).into_iter().all(|region| match region.read {
            ReadRule::Public => true,
            ReadRule::Authenticated => self.is_authenticated(),
            ReadRule::Granted => {
                self.grants.subscribe.iter().any(|grant| covers(&levels(grant.as_str()), &region.filter))
            }
        });
        if allowed {
            Ok(())
        } else {
            Err(AuthError::Forbidden(Action::Subscribe))
        }
    }

    /// Checks a publication. `$` system channels are never publishable through the API; a
    /// `denied` prefix is closed to everyone, and an `api_key` prefix to everyone but API keys.
    pub fn may_publish(&self, channel: &ChannelName) -> Result<(), AuthError> {
        let forbidden = Err(AuthError::Forbidden(Action::Publish));
        if channel.is_system() {
            return forbidden;
        }
        match self.rules.publish_rule(channel) {
            PublishRule::Denied => return forbidden,
            PublishRule::ApiKey if !matches!(self.kind, IdentityKind::ApiKey(_)) => return forbidden,
            PublishRule::ApiKey | PublishRule::Granted => {}
        }
        if self.grants.publish.iter().any(|grant| grant.matches(channel)) {
            Ok(())
        } else {
            forbidden
        }
    }

    /// Checks access to the admin API.
    pub fn may_admin(&self) -> Result<(), AuthError> {
        if self.admin {
            Ok(())
        } else {
            Err(AuthError::Forbidden(Action::Admin))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ChannelRule;

    fn identity(
        kind: IdentityKind,
        subscribe: &[&str],
        publish: &[&str],
        rules: &[(&str, ReadRule, PublishRule)],
    ) -> Identity {
        let pattern = |p: &&str| Pattern::new(p).expect("valid pattern");
        let grants = ResolvedGrants {
            subscribe: subscribe.iter().map(pattern).collect(),
            publish: publish.iter().map(pattern).collect(),
        };
        let rules: Vec<ChannelRule> = rules
            .iter()
            .map(|&(prefix, read, publish)| ChannelRule { prefix: prefix.into(), read, publish })
            .collect();
        let rules = Arc::new(ChannelRules::new(&rules).expect("valid rules"));
        Identity::new(None, kind, None, false, grants, rules)
    }

    fn sub(identity: &Identity, filter: &str) -> bool {
        identity.may_subscribe(&ChannelFilter::new(filter).expect("valid filter")).is_ok()
    }

    fn publ(identity: &Identity, channel: &str) -> bool {
        identity.may_publish(&ChannelName::new(channel).expect("valid channel")).is_ok()
    }

    const RULES: &[(&str, ReadRule, PublishRule)] = &[
        ("public", ReadRule::Public, PublishRule::Granted),
        ("members", ReadRule::Authenticated, PublishRule::Granted),
        ("stocks", ReadRule::Granted, PublishRule::ApiKey),
        ("metrics", ReadRule::Granted, PublishRule::Denied),
        ("secret", ReadRule::Granted, PublishRule::Granted),
    ];

    #[test]
    fn wildcards_must_not_reach_forbidden_channels() {
        let user = identity(IdentityKind::User, &["news/#", "stocks/+", "+/summary"], &[], &[]);
        let table = [
            ("news/world", true),
            ("news/#", true),
            ("news/+/x", true),
            ("stocks/AAPL", true),
            ("stocks/+", true),
            ("stocks/#", false),
            ("stocks/AAPL/bid", false),
            ("#", false),
            ("+/summary", true),
            ("+/+", false),
            ("weather/summary", true),
            ("$sys/presence", false),
        ];
        for (filter, want) in table {
            assert_eq!(sub(&user, filter), want, "{filter}");
        }
    }

    #[test]
    fn channel_rules_apply_to_reads() {
        let anonymous = identity(IdentityKind::Anonymous, &[], &[], RULES);
        let user = identity(IdentityKind::User, &[], &[], RULES);
        let granted = identity(IdentityKind::User, &["secret/#"], &[], RULES);
        let table = [
            // (identity, filter, allowed)
            (&anonymous, "public/news", true),
            (&anonymous, "public/#", true),
            (&anonymous, "members/chat", false),
            (&user, "members/chat", true),
            (&user, "members/#", true),
            (&user, "secret/plans", false),
            (&granted, "secret/plans", true),
            (&granted, "secret/#", true),
            // Reaches `public` (fine) but also `secret` and the default region: denied.
            (&granted, "+/news", false),
            (&anonymous, "+/news", false),
            (&anonymous, "#", false),
        ];
        for (who, filter, want) in table {
            assert_eq!(sub(who, filter), want, "{:?} {filter}", who.kind());
        }
    }

    #[test]
    fn a_wide_grant_still_needs_every_region() {
        let everything = identity(IdentityKind::Anonymous, &["#"], &[], RULES);
        // `members` needs an authenticated identity, so `#` is denied to an anonymous one.
        assert!(!sub(&everything, "#"));
        assert!(sub(&everything, "secret/#"));
        let everything = identity(IdentityKind::User, &["#"], &[], RULES);
        assert!(sub(&everything, "#"));
    }

    #[test]
    fn system_channels_are_readable_only_when_granted() {
        let plain = identity(IdentityKind::User, &["#"], &["#"], &[]);
        let with_sys = identity(IdentityKind::User, &["#", "$sys/#"], &["#"], &[]);
        assert!(!sub(&plain, "$sys/presence"));
        assert!(sub(&with_sys, "$sys/presence"));
        assert!(sub(&with_sys, "$sys/#"));
        // Never publishable, whatever the grants.
        assert!(!publ(&with_sys, "$sys/presence"));
        let system_grant = identity(IdentityKind::ApiKey("k".into()), &[], &["$sys/#"], &[]);
        assert!(!publ(&system_grant, "$sys/presence"));
    }

    #[test]
    fn channel_rules_apply_to_publishing() {
        let user = identity(IdentityKind::User, &[], &["#"], RULES);
        let key = identity(IdentityKind::ApiKey("ingest".into()), &[], &["stocks/#", "metrics/#"], RULES);
        let table = [
            (&user, "chat/room", true),
            (&user, "public/news", true),
            (&user, "stocks/AAPL", false),
            (&key, "stocks/AAPL", true),
            (&key, "chat/room", false),
            (&user, "metrics/cpu", false),
            (&key, "metrics/cpu", false),
        ];
        for (who, channel, want) in table {
            assert_eq!(publ(who, channel), want, "{:?} {channel}", who.kind());
        }
    }

    #[test]
    fn denials_say_nothing_about_the_channel() {
        let user = identity(IdentityKind::User, &[], &[], &[]);
        let err =
            user.may_subscribe(&ChannelFilter::new("secret/plans").expect("valid")).expect_err("denied");
        assert_eq!(err.code(), "forbidden");
        assert!(!err.to_string().contains("secret"));
        assert_eq!(user.may_admin(), Err(AuthError::Forbidden(Action::Admin)));
    }

    #[test]
    fn expiry_is_exact() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000);
        let mut user = identity(IdentityKind::User, &[], &[], &[]);
        user.expires_at = Some(at);
        assert!(!user.is_expired(at - std::time::Duration::from_secs(1)));
        assert!(user.is_expired(at));
        assert!(!identity(IdentityKind::Anonymous, &[], &[], &[]).is_expired(at));
    }
}
