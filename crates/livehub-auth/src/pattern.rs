//! Grant patterns, and the question at the heart of permissions: does a grant cover everything a
//! subscription could ever match?
//!
//! Coverage is decided on levels, never by trying channels: `+` covers exactly one level, `#`
//! covers all remaining levels (including none), and a literal covers only itself. A pattern
//! whose first level is a wildcard matches no `$` system channel, exactly as in
//! `livehub_core::ChannelFilter::matches`.

use std::fmt;
use std::sync::Arc;

use livehub_core::{ChannelFilter, ChannelName, SYSTEM_PREFIX};

use crate::error::AuthConfigError;

/// The placeholder that a pattern template replaces with the token's subject.
pub const SUBJECT_PLACEHOLDER: &str = "{sub}";

/// A validated grant pattern such as `stocks/+` or `users/alice/#`. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Pattern(Arc<str>);

impl Pattern {
    /// Validates `text` with the channel syntax, wildcards allowed.
    pub fn new(text: &str) -> Result<Self, livehub_core::Error> {
        ChannelFilter::new(text)?;
        Ok(Self(Arc::from(text)))
    }

    /// The pattern as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether every channel `filter` can match is also matched by this pattern.
    pub fn covers(&self, filter: &ChannelFilter) -> bool {
        covers(&levels(&self.0), &levels(filter.as_str()))
    }

    /// Whether `channel` is matched by this pattern.
    pub fn matches(&self, channel: &ChannelName) -> bool {
        covers(&levels(&self.0), &levels(channel.as_str()))
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

/// A configured pattern that may contain [`SUBJECT_PLACEHOLDER`], validated once at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PatternTemplate {
    text: String,
    /// The pattern itself when it has no placeholder, so resolving it costs a clone.
    fixed: Option<Pattern>,
}

impl PatternTemplate {
    /// Validates `text`, with a stand-in subject for any placeholder; `context` names the setting
    /// in the error.
    pub(crate) fn parse(text: &str, context: &str) -> Result<Self, AuthConfigError> {
        let invalid = |reason: String| AuthConfigError::InvalidPattern {
            context: context.to_owned(),
            pattern: text.to_owned(),
            reason,
        };
        // Braces are plain characters in a channel name, but in a grant one outside the
        // placeholder is a misspelt placeholder far more often than a channel's name.
        if text.replace(SUBJECT_PLACEHOLDER, "").contains(['{', '}']) {
            return Err(invalid(format!("'{{' or '}}' outside {SUBJECT_PLACEHOLDER}")));
        }
        if text.contains(SUBJECT_PLACEHOLDER) {
            Pattern::new(&text.replace(SUBJECT_PLACEHOLDER, "x")).map_err(|e| invalid(e.to_string()))?;
            Ok(Self { text: text.to_owned(), fixed: None })
        } else {
            let pattern = Pattern::new(text).map_err(|e| invalid(e.to_string()))?;
            Ok(Self { text: text.to_owned(), fixed: Some(pattern) })
        }
    }

    /// The pattern for an identity with `subject`, or `None` when the template needs a subject
    /// and there is none, or the subject could change the pattern's shape.
    pub(crate) fn resolve(&self, subject: Option<&str>) -> Option<Pattern> {
        if let Some(fixed) = &self.fixed {
            return Some(fixed.clone());
        }
        // A subject is spliced in only if it is one plain level: a `/`, `+`, `#` or a leading
        // `$` in it could otherwise widen the grant to other users' channels or to the system
        // channels. Such a subject gets nothing from this template rather than an escaped
        // variant, so that two different subjects can never resolve to the same channel.
        let subject = subject.filter(|s| is_plain_level(s))?;
        Pattern::new(&self.text.replace(SUBJECT_PLACEHOLDER, subject)).ok()
    }
}

/// Whether `s` can stand as one literal channel level anywhere in a pattern.
fn is_plain_level(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '@' | '=' | '~'))
}

/// Splits a validated name or pattern into its levels.
pub(crate) fn levels(text: &str) -> Vec<&str> {
    text.split('/').collect()
}

/// Whether every channel matched by `filter` is matched by `grant`. Both are validated level
/// lists; `filter` may itself contain wildcards.
pub(crate) fn covers(grant: &[&str], filter: &[&str]) -> bool {
    // A grant starting with a wildcard matches no system channel, so it cannot cover a filter
    // whose first level names one.
    if starts_with_system(filter) && matches!(grant.first(), Some(&("+" | "#"))) {
        return false;
    }
    let mut i = 0;
    loop {
        match (grant.get(i).copied(), filter.get(i).copied()) {
            // `#` covers whatever the filter still has, even nothing (`a/#` matches `a`).
            (Some("#"), _) => return true,
            (None, None) => return true,
            // The filter reaches deeper than the grant, or stops where the grant needs more.
            (None, Some(_)) | (Some(_), None) => return false,
            // The filter's `#` reaches any depth; only a `#` in the grant covers that.
            (Some(_), Some("#")) => return false,
            // A `+` covers one level of anything, a filter's `+` included.
            (Some("+"), Some(_)) => {}
            (Some(literal), Some(wanted)) => {
                if literal != wanted {
                    return false;
                }
            }
        }
        i += 1;
    }
}

/// The channels of `filter` that lie in the subtree of the literal `prefix` (the prefix itself
/// and everything below it), as a filter; `None` when there are none.
pub(crate) fn intersect_subtree<'a>(filter: &[&'a str], prefix: &[&'a str]) -> Option<Vec<&'a str>> {
    let system = starts_with_system(prefix);
    for (i, &level) in prefix.iter().enumerate() {
        match filter.get(i).copied() {
            // The filter stops above the prefix: its channels are too short.
            None => return None,
            Some("#") | Some("+") if i == 0 && system => return None,
            Some("#") => {
                let mut subtree = prefix.to_vec();
                subtree.push("#");
                return Some(subtree);
            }
            Some("+") => {}
            Some(wanted) => {
                if wanted != level {
                    return None;
                }
            }
        }
    }
    let mut inside = prefix.to_vec();
    inside.extend_from_slice(&filter[prefix.len()..]);
    Some(inside)
}

/// Whether every channel of `filter` lies in the subtree of the literal `prefix`.
pub(crate) fn within_subtree(filter: &[&str], prefix: &[&str]) -> bool {
    // The prefix's levels are literals, so equality also rules out a wildcard above its depth.
    filter.len() >= prefix.len() && prefix.iter().zip(filter).all(|(p, f)| p == f)
}

fn starts_with_system(levels: &[&str]) -> bool {
    levels.first().is_some_and(|l| l.starts_with(SYSTEM_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(s: &str) -> ChannelFilter {
        ChannelFilter::new(s).expect("valid filter")
    }

    fn pattern(s: &str) -> Pattern {
        Pattern::new(s).expect("valid pattern")
    }

    #[test]
    fn coverage_table() {
        let table = [
            // (grant, requested, covered)
            ("a/#", "a/+", true),
            ("+/+", "a/+", true),
            ("a/+", "a/#", false),
            ("#", "#", true),
            ("a/#", "#", false),
            ("+/#", "#", false),
            ("+", "#", false),
            ("#", "a/b/c", true),
            ("#", "a/+/c", true),
            ("a/#", "a", true),
            ("a/#", "a/#", true),
            ("a/#", "b/#", false),
            ("a/+", "a", false),
            ("a/+", "a/b", true),
            ("a/+", "a/b/c", false),
            ("a/+", "a/+", true),
            ("a/b", "a/+", false),
            ("a/b", "a/b", true),
            ("a/+/c", "a/+/c", true),
            ("a/+/c", "a/+/#", false),
            ("a/+/#", "a/#", false),
            ("a/+/#", "a/b/#", true),
            ("+/b", "+/b", true),
            ("a/b/#", "a/+/#", false),
            ("#", "$sys/presence", false),
            ("+/presence", "$sys/presence", false),
            ("$sys/#", "$sys/presence", true),
            ("$sys/+", "$sys/#", false),
            ("$sys/#", "#", false),
            ("#", "+/presence", true),
        ];
        for (grant, requested, want) in table {
            assert_eq!(pattern(grant).covers(&filter(requested)), want, "{grant} covers {requested}");
        }
    }

    #[test]
    fn coverage_agrees_with_matching_on_concrete_channels() {
        let channels = ["a", "a/b", "a/b/c", "b", "$sys/presence", "users/alice/inbox"];
        let patterns = ["#", "a/#", "a/+", "+/b", "+/+/+", "$sys/#", "users/+/inbox", "a"];
        for p in patterns {
            for c in channels {
                let name = ChannelName::new(c).expect("valid name");
                assert_eq!(pattern(p).matches(&name), filter(p).matches(&name), "{p} vs {c}");
            }
        }
    }

    #[test]
    fn templates_substitute_a_plain_subject() {
        let template = PatternTemplate::parse("users/{sub}/#", "test").expect("valid");
        assert_eq!(template.resolve(Some("alice")).map(|p| p.to_string()), Some("users/alice/#".into()));
        assert_eq!(template.resolve(Some("a.b@c")).map(|p| p.to_string()), Some("users/a.b@c/#".into()));
        let inline = PatternTemplate::parse("inbox-{sub}", "test").expect("valid");
        assert_eq!(inline.resolve(Some("bob")).map(|p| p.to_string()), Some("inbox-bob".into()));
    }

    #[test]
    fn subjects_cannot_widen_a_template() {
        let template = PatternTemplate::parse("users/{sub}/#", "test").expect("valid");
        for evil in ["#", "+", "alice/#", "..", "a/../b", "$sys", "alice bob", "", "é", "a+b", "x#"] {
            let resolved = template.resolve(Some(evil));
            // Whatever a subject resolves to stays inside a single user's subtree.
            if let Some(p) = &resolved {
                assert!(is_plain_level(evil), "{evil:?} resolved to {p}");
                assert!(pattern("users/+/#").covers(&filter(p.as_str())));
            }
        }
        assert!(template.resolve(Some("alice/#")).is_none());
        assert!(template.resolve(Some("+")).is_none());
        assert!(template.resolve(None).is_none());
        // `..` is an ordinary level name in livehub (no path semantics), so it is allowed.
        assert_eq!(template.resolve(Some("..")).map(|p| p.to_string()), Some("users/../#".into()));
    }

    #[test]
    fn templates_without_placeholder_ignore_the_subject() {
        let template = PatternTemplate::parse("news/#", "test").expect("valid");
        assert_eq!(template.resolve(None).map(|p| p.to_string()), Some("news/#".into()));
    }

    #[test]
    fn bad_templates_are_config_errors() {
        for bad in ["", "a\0b", "a/#/b", "{sub", "a+b", "users/{subject}", "users/{sub}}"] {
            let err = PatternTemplate::parse(bad, "roles.x.subscribe").expect_err(bad);
            assert!(err.to_string().contains("roles.x.subscribe"), "{err}");
        }
    }

    #[test]
    fn intersects_with_a_subtree() {
        let table: [(&str, &str, Option<&str>); 12] = [
            ("#", "stocks", Some("stocks/#")),
            ("stocks/#", "stocks", Some("stocks/#")),
            ("stocks/+", "stocks", Some("stocks/+")),
            ("+/AAPL", "stocks", Some("stocks/AAPL")),
            ("+/+/x", "stocks/free", Some("stocks/free/x")),
            ("stocks", "stocks", Some("stocks")),
            ("stocks", "stocks/free", None),
            ("news/#", "stocks", None),
            ("+", "stocks/free", None),
            ("#", "$sys", None),
            ("+/presence", "$sys", None),
            ("$sys/#", "$sys", Some("$sys/#")),
        ];
        for (f, prefix, want) in table {
            let got = intersect_subtree(&levels(f), &levels(prefix)).map(|l| l.join("/"));
            assert_eq!(got.as_deref(), want, "{f} within {prefix}");
        }
    }

    #[test]
    fn within_subtree_needs_literal_prefix_levels() {
        let table = [
            ("stocks/free/#", "stocks/free", true),
            ("stocks/free", "stocks/free", true),
            ("stocks/+/x", "stocks/free", false),
            ("stocks/#", "stocks/free", false),
            ("stocks", "stocks/free", false),
            ("#", "stocks", false),
        ];
        for (f, prefix, want) in table {
            assert_eq!(within_subtree(&levels(f), &levels(prefix)), want, "{f} within {prefix}");
        }
    }
}
