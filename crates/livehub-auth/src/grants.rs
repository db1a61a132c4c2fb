//! Configured grants as validated templates, and their resolution into an identity's patterns.

use crate::config::Grants;
use crate::error::AuthConfigError;
use crate::pattern::{Pattern, PatternTemplate};

/// A validated [`Grants`]: subscribe and publish pattern templates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct GrantTemplates {
    subscribe: Vec<PatternTemplate>,
    publish: Vec<PatternTemplate>,
}

impl GrantTemplates {
    /// Validates every pattern of `grants`; `context` names the setting in errors.
    pub(crate) fn parse(grants: &Grants, context: &str) -> Result<Self, AuthConfigError> {
        Self::from_lists(&grants.subscribe, &grants.publish, context)
    }

    /// Validates two pattern lists; `context` names the setting in errors.
    pub(crate) fn from_lists(
        subscribe: &[String],
        publish: &[String],
        context: &str,
    ) -> Result<Self, AuthConfigError> {
        let parse = |list: &[String], what: &str| {
            list.iter()
                .map(|p| PatternTemplate::parse(p, &format!("{context}.{what}")))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self { subscribe: parse(subscribe, "subscribe")?, publish: parse(publish, "publish")? })
    }

    /// Grants from already validated templates.
    pub(crate) fn from_templates(subscribe: Vec<PatternTemplate>, publish: Vec<PatternTemplate>) -> Self {
        Self { subscribe, publish }
    }

    /// Adds what these grants give an identity with `subject` to `into`.
    pub(crate) fn resolve_into(&self, subject: Option<&str>, into: &mut ResolvedGrants) {
        for template in &self.subscribe {
            if let Some(pattern) = template.resolve(subject) {
                push_unique(&mut into.subscribe, pattern);
            }
        }
        for template in &self.publish {
            if let Some(pattern) = template.resolve(subject) {
                push_unique(&mut into.publish, pattern);
            }
        }
    }
}

/// The patterns one identity holds, with templates resolved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ResolvedGrants {
    pub(crate) subscribe: Vec<Pattern>,
    pub(crate) publish: Vec<Pattern>,
}

fn push_unique(list: &mut Vec<Pattern>, pattern: Pattern) {
    if !list.contains(&pattern) {
        list.push(pattern);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[Pattern]) -> Vec<&str> {
        list.iter().map(Pattern::as_str).collect()
    }

    #[test]
    fn resolves_and_deduplicates() {
        let user = Grants {
            subscribe: vec!["users/{sub}/#".into(), "news/#".into()],
            publish: vec!["users/{sub}/outbox".into()],
        };
        let reader = Grants { subscribe: vec!["news/#".into()], publish: vec![] };
        let user = GrantTemplates::parse(&user, "roles.user").expect("valid");
        let reader = GrantTemplates::parse(&reader, "roles.reader").expect("valid");
        let mut resolved = ResolvedGrants::default();
        user.resolve_into(Some("alice"), &mut resolved);
        reader.resolve_into(Some("alice"), &mut resolved);
        assert_eq!(strings(&resolved.subscribe), ["users/alice/#", "news/#"]);
        assert_eq!(strings(&resolved.publish), ["users/alice/outbox"]);

        let mut anonymous = ResolvedGrants::default();
        user.resolve_into(None, &mut anonymous);
        assert_eq!(strings(&anonymous.subscribe), ["news/#"]);
        assert!(anonymous.publish.is_empty());
    }

    #[test]
    fn errors_name_the_setting() {
        let bad = Grants { subscribe: vec![], publish: vec!["a/#/b".into()] };
        let err = GrantTemplates::parse(&bad, "roles.writer").expect_err("invalid");
        assert!(err.to_string().contains("roles.writer.publish"), "{err}");
    }
}
