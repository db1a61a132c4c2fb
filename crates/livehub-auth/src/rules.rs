//! Per-prefix channel rules: the longest prefix that contains a channel decides who may read and
//! publish there; channels under no prefix follow the default (`granted` for both).

use livehub_core::ChannelName;

use crate::config::{ChannelRule, PublishRule, ReadRule};
use crate::error::AuthConfigError;
use crate::pattern::{intersect_subtree, levels, within_subtree};

/// The validated rules, longest prefix first.
#[derive(Clone, Debug, Default)]
pub(crate) struct ChannelRules {
    rules: Vec<Rule>,
}

#[derive(Clone, Debug)]
struct Rule {
    prefix: Vec<String>,
    read: ReadRule,
    publish: PublishRule,
}

/// One part of a subscription and the read rule that governs it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ReadRegion<'a> {
    /// The rule.
    pub(crate) read: ReadRule,
    /// The channels of the subscription that fall under the rule, as a filter's levels. It may
    /// also include channels of longer prefixes, which makes a `granted` check stricter, never
    /// looser.
    pub(crate) filter: Vec<&'a str>,
}

impl ChannelRules {
    /// Validates every prefix as a channel name and refuses duplicates.
    pub(crate) fn new(config: &[ChannelRule]) -> Result<Self, AuthConfigError> {
        let mut rules: Vec<Rule> = Vec::with_capacity(config.len());
        for rule in config {
            let invalid =
                |reason: String| AuthConfigError::InvalidRule { prefix: rule.prefix.clone(), reason };
            let name = ChannelName::new(&rule.prefix).map_err(|e| invalid(e.to_string()))?;
            let prefix: Vec<String> = levels(name.as_str()).into_iter().map(str::to_owned).collect();
            if rules.iter().any(|r| r.prefix == prefix) {
                return Err(invalid("the prefix has two rules".to_owned()));
            }
            rules.push(Rule { prefix, read: rule.read, publish: rule.publish });
        }
        rules.sort_by_key(|rule| std::cmp::Reverse(rule.prefix.len()));
        Ok(Self { rules })
    }

    /// The publish rule of the longest prefix containing `channel`.
    pub(crate) fn publish_rule(&self, channel: &ChannelName) -> PublishRule {
        let channel = levels(channel.as_str());
        self.rules
            .iter()
            .find(|r| within_subtree(&channel, &prefix_levels(r)))
            .map_or(PublishRule::default(), |r| r.publish)
    }

    /// Every read rule that governs some channel `filter` can match, with the part it governs.
    ///
    /// A subscription is allowed only if each region allows its part. A rule is skipped when its
    /// part lies entirely under a longer prefix, because the longer prefix decides there.
    pub(crate) fn read_regions<'a>(&'a self, filter: &[&'a str]) -> Vec<ReadRegion<'a>> {
        let mut regions = Vec::new();
        let shadowed = |part: &[&str], depth: usize| {
            self.rules
                .iter()
                .take_while(|longer| longer.prefix.len() > depth)
                .any(|longer| within_subtree(part, &prefix_levels(longer)))
        };
        for rule in &self.rules {
            let prefix = prefix_levels(rule);
            if let Some(part) = intersect_subtree(filter, &prefix) {
                if !shadowed(&part, prefix.len()) {
                    regions.push(ReadRegion { read: rule.read, filter: part });
                }
            }
        }
        // The default region is every channel under no prefix, reached by the whole filter.
        if !shadowed(filter, 0) {
            regions.push(ReadRegion { read: ReadRule::default(), filter: filter.to_vec() });
        }
        regions
    }
}

fn prefix_levels(rule: &Rule) -> Vec<&str> {
    rule.prefix.iter().map(String::as_str).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(list: &[(&str, ReadRule, PublishRule)]) -> ChannelRules {
        let config: Vec<ChannelRule> = list
            .iter()
            .map(|&(prefix, read, publish)| ChannelRule { prefix: prefix.to_owned(), read, publish })
            .collect();
        ChannelRules::new(&config).expect("valid rules")
    }

    fn regions(rules: &ChannelRules, filter: &str) -> Vec<(ReadRule, String)> {
        let levels = levels(filter);
        let mut out: Vec<_> =
            rules.read_regions(&levels).into_iter().map(|r| (r.read, r.filter.join("/"))).collect();
        out.sort_by(|a, b| a.1.cmp(&b.1));
        out
    }

    #[test]
    fn longest_prefix_decides_publishing() {
        let rules = rules(&[
            ("stocks", ReadRule::Granted, PublishRule::ApiKey),
            ("stocks/sandbox", ReadRule::Granted, PublishRule::Granted),
            ("metrics", ReadRule::Public, PublishRule::Denied),
        ]);
        let table = [
            ("stocks", PublishRule::ApiKey),
            ("stocks/AAPL", PublishRule::ApiKey),
            ("stocks/sandbox", PublishRule::Granted),
            ("stocks/sandbox/x", PublishRule::Granted),
            ("stocksx", PublishRule::Granted),
            ("metrics/system", PublishRule::Denied),
            ("chat", PublishRule::Granted),
        ];
        for (channel, want) in table {
            let name = ChannelName::new(channel).expect("valid");
            assert_eq!(rules.publish_rule(&name), want, "{channel}");
        }
    }

    #[test]
    fn splits_a_wildcard_into_regions() {
        use ReadRule::*;
        let rules = rules(&[
            ("stocks", Granted, PublishRule::Granted),
            ("stocks/free", Public, PublishRule::Granted),
            ("metrics", Authenticated, PublishRule::Granted),
        ]);
        let s = |x: &str| x.to_owned();
        assert_eq!(
            regions(&rules, "#"),
            [
                (Granted, s("#")),
                (Authenticated, s("metrics/#")),
                (Granted, s("stocks/#")),
                (Public, s("stocks/free/#"))
            ]
        );
        // Entirely under the public prefix: no other rule has a say.
        assert_eq!(regions(&rules, "stocks/free/#"), [(Public, s("stocks/free/#"))]);
        assert_eq!(regions(&rules, "stocks/free"), [(Public, s("stocks/free"))]);
        // A pattern that reaches the public prefix and its siblings.
        assert_eq!(regions(&rules, "stocks/+/x"), [(Granted, s("stocks/+/x")), (Public, s("stocks/free/x"))]);
        assert_eq!(regions(&rules, "news/+"), [(Granted, s("news/+"))]);
        assert_eq!(regions(&rules, "metrics/cpu"), [(Authenticated, s("metrics/cpu"))]);
    }

    #[test]
    fn rejects_bad_prefixes() {
        for bad in ["", "a/+", "a/#", "a\0b", "a+b"] {
            let config = [ChannelRule {
                prefix: bad.to_owned(),
                read: ReadRule::Public,
                publish: PublishRule::Granted,
            }];
            assert!(ChannelRules::new(&config).is_err(), "{bad:?}");
        }
        let twice = [
            ChannelRule { prefix: "a".into(), read: ReadRule::Public, publish: PublishRule::Granted },
            ChannelRule { prefix: "a".into(), read: ReadRule::Granted, publish: PublishRule::Granted },
        ];
        assert!(ChannelRules::new(&twice).is_err());
    }
}
