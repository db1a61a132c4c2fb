//! Channel names and subscription patterns.
//!
//! A channel is a `/`-separated name such as `metrics/system` or `transit/route/12`.
//! Subscriptions may use the MQTT wildcards `+` (exactly one level) and `#` (all remaining levels),
//! so that MQTT topics map onto channels one to one.

use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};

use crate::error::Error;

/// Longest channel name or pattern accepted, in bytes.
///
/// Long enough for deep hierarchies (`transit/city/route/12/vehicle/4711`), short enough that a
/// name never dominates the size of a small publication.
pub const MAX_CHANNEL_LEN: usize = 255;

/// Most levels a channel name may have; bounds the work of matching a pattern.
pub const MAX_CHANNEL_LEVELS: usize = 16;

/// Prefix of system channels (`$sys/presence`): only the server publishes there, and patterns
/// that start with a wildcard do not match them (as MQTT does for `$SYS`).
pub const SYSTEM_PREFIX: char = '$';

/// A validated, concrete channel name (no wildcards). Cheap to clone.
#[derive(Clone, Eq, PartialOrd, Ord)]
pub struct ChannelName(Arc<str>);

impl std::hash::Hash for ChannelName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl PartialEq for ChannelName {
    /// Publications of one channel share one name (the broker's), so fan-out's comparisons are
    /// settled by the pointer; the characters are compared only for names from elsewhere.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl ChannelName {
    /// Whether both are the same allocation (not just equal names).
    pub(crate) fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Validates `name` as a concrete channel name.
    pub fn new(name: &str) -> Result<Self, Error> {
        validate(name, false)?;
        Ok(Self(Arc::from(name)))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a system channel (`$sys/...`), which clients may read but not publish to.
    pub fn is_system(&self) -> bool {
        self.0.starts_with(SYSTEM_PREFIX)
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl Serialize for ChannelName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// What a subscription asks for: one channel, or every channel a wildcard pattern matches.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum ChannelFilter {
    /// Exactly one channel.
    Exact(ChannelName),
    /// A pattern containing `+` or `#`.
    Wildcard(Arc<str>),
}

impl ChannelFilter {
    /// Validates `filter`, which may contain `+` levels and a final `#` level.
    pub fn new(filter: &str) -> Result<Self, Error> {
        if validate(filter, true)? {
            Ok(Self::Wildcard(Arc::from(filter)))
        } else {
            Ok(Self::Exact(ChannelName(Arc::from(filter))))
        }
    }

    /// The filter as text.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Exact(name) => name.as_str(),
            Self::Wildcard(pattern) => pattern,
        }
    }

    /// Whether `channel` is selected by this filter.
    pub fn matches(&self, channel: &ChannelName) -> bool {
        match self {
            Self::Exact(name) => name == channel,
            Self::Wildcard(pattern) => pattern_matches(pattern, channel.as_str()),
        }
    }
}

impl fmt::Display for ChannelFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Matches a validated wildcard pattern against a concrete channel name, with MQTT semantics:
/// `+` is one level, a final `#` is zero or more levels, and a leading wildcard never matches a
/// `$` system channel.
fn pattern_matches(pattern: &str, channel: &str) -> bool {
    if channel.starts_with(SYSTEM_PREFIX) && !pattern.starts_with(SYSTEM_PREFIX) {
        return false;
    }
    let mut levels = channel.split('/');
    for want in pattern.split('/') {
        match want {
            "#" => return true,
            "+" => {
                if levels.next().is_none() {
                    return false;
                }
            }
            literal => {
                if levels.next() != Some(literal) {
                    return false;
                }
            }
        }
    }
    levels.next().is_none()
}

/// Checks the syntax of a name or (when `allow_wildcards`) a pattern; returns whether it contains
/// a wildcard.
fn validate(name: &str, allow_wildcards: bool) -> Result<bool, Error> {
    let invalid = |why: &str| Error::InvalidChannel(format!("{name:?}: {why}"));
    if name.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if name.len() > MAX_CHANNEL_LEN {
        return Err(Error::InvalidChannel(format!(
            "channel name of {} bytes is longer than {MAX_CHANNEL_LEN}",
            name.len()
        )));
    }
    let levels: Vec<&str> = name.split('/').collect();
    if levels.len() > MAX_CHANNEL_LEVELS {
        return Err(invalid("too many levels"));
    }
    let mut wildcard = false;
    for (i, level) in levels.iter().enumerate() {
        if level.is_empty() {
            return Err(invalid("empty level (leading, trailing or double '/')"));
        }
        match *level {
            "+" | "#" if !allow_wildcards => {
                return Err(invalid("wildcards are only allowed in subscriptions"));
            }
            "+" => wildcard = true,
            "#" if i + 1 == levels.len() => wildcard = true,
            "#" => return Err(invalid("'#' must be the last level")),
            _ => {
                for (j, c) in level.chars().enumerate() {
                    let system = c == SYSTEM_PREFIX && i == 0 && j == 0;
                    if !(c.is_ascii_alphanumeric()
                        || matches!(c, '_' | '-' | '.' | ':' | '@' | '=' | '~')
                        || system)
                    {
                        return Err(invalid(
                            "allowed characters are A-Z a-z 0-9 _ - . : @ = ~ and a leading $",
                        ));
                    }
                }
            }
        }
    }
    Ok(wildcard)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(s: &str) -> ChannelFilter {
        ChannelFilter::new(s).expect("valid filter")
    }

    fn name(s: &str) -> ChannelName {
        ChannelName::new(s).expect("valid name")
    }

    #[test]
    fn accepts_ordinary_names() {
        for ok in
            ["a", "metrics/system", "stocks/AAPL", "transit/route/12", "$sys/presence", "a.b:c@d=e~f_g-h"]
        {
            assert!(ChannelName::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_bad_names() {
        let long = "a".repeat(MAX_CHANNEL_LEN + 1);
        let deep = vec!["a"; MAX_CHANNEL_LEVELS + 1].join("/");
        for bad in ["", "/a", "a/", "a//b", "a b", "é", "a/+", "#", "a/$b", "a\nb", &long, &deep] {
            assert!(ChannelName::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rejects_bad_patterns() {
        for bad in ["a/#/b", "a+", "a/b#", "##"] {
            assert!(ChannelFilter::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn classifies_filters() {
        assert!(matches!(filter("a/b"), ChannelFilter::Exact(_)));
        assert!(matches!(filter("a/+"), ChannelFilter::Wildcard(_)));
        assert!(matches!(filter("#"), ChannelFilter::Wildcard(_)));
    }

    #[test]
    fn matches_like_mqtt() {
        let table = [
            ("stocks/+", "stocks/AAPL", true),
            ("stocks/+", "stocks/AAPL/bid", false),
            ("stocks/+", "stocks", false),
            ("stocks/#", "stocks", true),
            ("stocks/#", "stocks/AAPL/bid", true),
            ("+/route/+", "transit/route/12", true),
            ("#", "anything/at/all", true),
            ("#", "$sys/presence", false),
            ("+/presence", "$sys/presence", false),
            ("$sys/#", "$sys/presence", true),
            ("a/b", "a/b", true),
            ("a/b", "a/c", false),
        ];
        for (pattern, channel, want) in table {
            assert_eq!(filter(pattern).matches(&name(channel)), want, "{pattern} vs {channel}");
        }
    }
}
