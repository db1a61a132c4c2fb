//! Channel names and subscription patterns.
//!
//! A channel is a `/`-separated name such as `metrics/system` or `transit/route/12`, with MQTT's
//! topic rules: any UTF-8 but NUL, empty levels allowed (`a//b`, `/a`, `a/`), and no `+` or `#`
//! in a concrete name. Subscriptions may use the MQTT wildcards `+` (exactly one level) and `#`
//! (all remaining levels) as whole levels, so that MQTT topics map onto channels one to one.
//!
//! Any character may therefore reach a wire format: every encoder escapes names for its own
//! syntax rather than relying on an alphabet.

use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};

use crate::error::Error;

/// Default for [`ChannelLimits::max_len`], in bytes.
///
/// Room for deep hierarchies and MQTT-style topics with long identifiers, while a name still never
/// dominates the size of a small publication (each message carries its channel).
pub const DEFAULT_MAX_CHANNEL_LEN: usize = 1024;

/// Default for [`ChannelLimits::max_levels`]; bounds the work of matching a pattern against a
/// name, which walks the levels.
pub const DEFAULT_MAX_CHANNEL_LEVELS: usize = 32;

/// Prefix of system channels (`$sys/presence`): only the server publishes there, and patterns
/// whose first level is a wildcard do not match them (as MQTT does for `$SYS`).
pub const SYSTEM_PREFIX: char = '$';

/// How long and how deep a channel name or pattern may be. A server passes its configured limits
/// to [`ChannelName::with_limits`] and [`ChannelFilter::with_limits`]; `new` uses the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelLimits {
    /// Longest name or pattern, in bytes.
    pub max_len: usize,
    /// Most `/`-separated levels (an empty level counts).
    pub max_levels: usize,
}

impl Default for ChannelLimits {
    fn default() -> Self {
        Self { max_len: DEFAULT_MAX_CHANNEL_LEN, max_levels: DEFAULT_MAX_CHANNEL_LEVELS }
    }
}

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

    /// Validates `name` as a concrete channel name within the default [`ChannelLimits`].
    pub fn new(name: &str) -> Result<Self, Error> {
        Self::with_limits(name, &ChannelLimits::default())
    }

    /// Validates `name` as a concrete channel name within `limits`.
    pub fn with_limits(name: &str, limits: &ChannelLimits) -> Result<Self, Error> {
        validate(name, false, limits)?;
        Ok(Self(Arc::from(name)))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a system channel (its name starts with `$`, as `$sys/presence`), which
    /// clients may read but not publish to.
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
    /// Validates `filter`, which may contain `+` levels and a final `#` level, within the default
    /// [`ChannelLimits`].
    pub fn new(filter: &str) -> Result<Self, Error> {
        Self::with_limits(filter, &ChannelLimits::default())
    }

    /// Validates `filter`, which may contain `+` levels and a final `#` level, within `limits`.
    pub fn with_limits(filter: &str, limits: &ChannelLimits) -> Result<Self, Error> {
        if validate(filter, true, limits)? {
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
/// `+` is one level (an empty one too), a final `#` is zero or more levels, and a pattern whose
/// first level is a wildcard never matches a `$` system channel.
fn pattern_matches(pattern: &str, channel: &str) -> bool {
    if channel.starts_with(SYSTEM_PREFIX) && matches!(pattern.split('/').next(), Some("+" | "#")) {
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
fn validate(name: &str, allow_wildcards: bool, limits: &ChannelLimits) -> Result<bool, Error> {
    if name.is_empty() {
        return Err(Error::InvalidChannel("\"\": must not be empty".to_owned()));
    }
    // Checked before the name is quoted in a message: a client's megabyte stays out of the reply.
    if name.len() > limits.max_len {
        return Err(Error::InvalidChannel(format!(
            "of {} bytes: longer than {} bytes",
            name.len(),
            limits.max_len
        )));
    }
    let invalid = |why: &str| Error::InvalidChannel(format!("{name:?}: {why}"));
    // MQTT forbids U+0000 in topics, and C-string APIs (logs, brokers) would cut the name there.
    if name.contains('\0') {
        return Err(invalid("must not contain NUL (U+0000)"));
    }
    let count = name.bytes().filter(|&b| b == b'/').count() + 1;
    if count > limits.max_levels {
        return Err(invalid(&format!("{count} levels, more than {}", limits.max_levels)));
    }
    let mut wildcard = false;
    let mut levels = name.split('/').peekable();
    while let Some(level) = levels.next() {
        match level {
            "+" | "#" if !allow_wildcards => {
                return Err(invalid("wildcards '+' and '#' are only allowed in subscriptions"));
            }
            "+" => wildcard = true,
            "#" if levels.peek().is_none() => wildcard = true,
            "#" => return Err(invalid("'#' must be the last level")),
            _ if level.contains(['+', '#']) => {
                return Err(invalid(
                    "'+' and '#' are wildcards, allowed only as whole levels of a subscription",
                ));
            }
            _ => {}
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

    /// Names valid both as a concrete channel and as an exact filter.
    const VALID_NAMES: &[&str] = &[
        "a",
        "metrics/system",
        "transit/route/12",
        "$sys/presence",
        "a.b:c@d=e~f_g-h",
        // MQTT allows empty levels, anywhere.
        "a//b",
        "/a",
        "a/",
        "/",
        "//",
        // Any character but NUL: spaces, commas, quotes, escapes, controls, line breaks, non-ASCII.
        "x y",
        "a/b,c",
        "q\"uote",
        "back\\slash",
        "line\nbreak",
        "cr\rlf",
        "tab\tbell\u{7}",
        "per%cent/?query/&amp",
        "é/ü/日本/🎉",
        // `$` is only special at the very start; elsewhere it is a plain character.
        "a/$b",
        "$",
        "\u{7f}\u{feff}",
    ];

    #[test]
    fn accepts_any_utf8_but_nul_as_a_name() {
        for ok in VALID_NAMES {
            let channel = ChannelName::new(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
            assert_eq!(channel.as_str(), *ok);
            assert!(matches!(ChannelFilter::new(ok), Ok(ChannelFilter::Exact(_))), "{ok:?}");
        }
    }

    #[test]
    fn rejects_bad_names() {
        let long = "a".repeat(DEFAULT_MAX_CHANNEL_LEN + 1);
        let deep = vec!["a"; DEFAULT_MAX_CHANNEL_LEVELS + 1].join("/");
        let table: &[(&str, &str)] = &[
            ("", "empty"),
            ("a\0b", "NUL"),
            ("\0", "NUL alone"),
            ("a/+", "single-level wildcard"),
            ("+", "single-level wildcard alone"),
            ("#", "multi-level wildcard"),
            ("a/#", "multi-level wildcard last"),
            ("a+b", "'+' inside a level"),
            ("a#", "'#' inside a level"),
            (&long, "too long"),
            (&deep, "too deep"),
        ];
        for (bad, why) in table {
            assert!(ChannelName::new(bad).is_err(), "{why}: {bad:?}");
        }
    }

    #[test]
    fn rejects_bad_patterns() {
        for bad in ["a/#/b", "#/a", "a+", "a/b#", "##", "+a/b", "a/+b", "a\0/#", ""] {
            assert!(ChannelFilter::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn limits_are_inclusive_and_configurable() {
        let at_len = "a".repeat(DEFAULT_MAX_CHANNEL_LEN);
        let at_levels = vec![""; DEFAULT_MAX_CHANNEL_LEVELS].join("/");
        assert!(ChannelName::new(&at_len).is_ok());
        assert!(ChannelName::new(&at_levels).is_ok(), "{} slashes", DEFAULT_MAX_CHANNEL_LEVELS - 1);
        assert!(ChannelName::new(&format!("{at_levels}/")).is_err());

        let small = ChannelLimits { max_len: 4, max_levels: 2 };
        let table = [("abcd", true), ("abcde", false), ("a/b", true), ("a/b/c", false), ("a//", false)];
        for (text, ok) in table {
            assert_eq!(ChannelName::with_limits(text, &small).is_ok(), ok, "{text:?}");
            assert_eq!(ChannelFilter::with_limits(text, &small).is_ok(), ok, "{text:?}");
        }
        assert!(ChannelFilter::with_limits("a/+/#", &small).is_err(), "three levels");

        let large = ChannelLimits { max_len: 4096, max_levels: 100 };
        let long = "a".repeat(4000);
        let deep = vec!["a"; 100].join("/");
        assert!(ChannelName::new(&long).is_err() && ChannelName::with_limits(&long, &large).is_ok());
        assert!(ChannelName::new(&deep).is_err() && ChannelName::with_limits(&deep, &large).is_ok());
    }

    #[test]
    fn an_overlong_name_is_not_echoed_in_the_error() {
        let long = "x".repeat(DEFAULT_MAX_CHANNEL_LEN * 4);
        let message = ChannelName::new(&long).expect_err("too long").to_string();
        assert!(message.len() < 100, "{message}");
    }

    #[test]
    fn classifies_filters() {
        let table = [
            ("a/b", false),
            ("a/+", true),
            ("#", true),
            ("+", true),
            ("+/+/#", true),
            ("a//+", true),
            ("/#", true),
            ("a b/c,d", false),
            ("a/$b", false),
        ];
        for (text, wildcard) in table {
            assert_eq!(matches!(filter(text), ChannelFilter::Wildcard(_)), wildcard, "{text:?}");
        }
    }

    #[test]
    fn system_channels_start_with_a_dollar() {
        for (text, system) in [("$sys/presence", true), ("$", true), ("a/$sys", false), ("sys", false)] {
            assert_eq!(name(text).is_system(), system, "{text:?}");
        }
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
            ("a/b", "a/b", true),
            ("a/b", "a/c", false),
            // `+` matches an empty level, and empty levels are levels like any other.
            ("a/+/b", "a//b", true),
            ("+/+", "/finance", true),
            ("/+", "/finance", true),
            ("+", "/finance", false),
            ("a/+", "a/", true),
            ("a/#", "a/", true),
            ("a/#", "a", true),
            ("a/#", "ab", false),
            ("#", "/", true),
            ("+/#", "/", true),
            ("a//#", "a//x/y", true),
            ("a//#", "a/x", false),
            // Odd characters are plain characters.
            ("x y/+", "x y/z,w", true),
            ("é/+", "é/ü", true),
            ("é/+", "e/ü", false),
            // A leading wildcard never matches a system channel; a literal `$` level does.
            ("#", "$sys/presence", false),
            ("+/presence", "$sys/presence", false),
            ("+", "$", false),
            ("$sys/#", "$sys/presence", true),
            ("$sys/+", "$sys/presence", true),
            ("a/#", "a/$b", true),
            ("+/+", "a/$b", true),
        ];
        for (pattern, channel, want) in table {
            assert_eq!(filter(pattern).matches(&name(channel)), want, "{pattern:?} vs {channel:?}");
        }
    }
}
