//! A topic trie: wildcard patterns stored level by level, so that finding the patterns a channel
//! matches walks the channel's levels instead of testing every pattern.
//!
//! A pattern `a/+/c` is the path root → `a` → `+` → `c`, with its value at the last node; a
//! pattern ending in `#` keeps its value in the `#` slot of the node before it (`a/#` at `a`,
//! `#` at the root), because `#` matches whatever is left, including nothing. Matching a channel
//! follows, at each of its levels, the literal child of that name and the `+` child, and takes
//! the `#` value of every node it reaches. The semantics are those of
//! [`ChannelFilter::matches`](crate::ChannelFilter::matches), MQTT's: `+` is exactly one level
//! (an empty one too), `a/#` matches `a`, and a pattern whose first level is a wildcard never
//! matches a `$` system channel.

use std::collections::HashMap;

use crate::channel::SYSTEM_PREFIX;

/// Values keyed by pattern, found by the channels they match.
pub(crate) struct TopicTrie<V> {
    root: Node<V>,
    len: usize,
}

/// One level of the patterns stored. Its maps and slots allocate nothing while empty.
struct Node<V> {
    /// Children by literal level; a level is any text without `/`, the empty text included.
    literals: HashMap<Box<str>, Node<V>>,
    /// The child for a `+` level.
    plus: Option<Box<Node<V>>>,
    /// The value of the pattern that ends here.
    value: Option<V>,
    /// The value of the pattern that ends here with a further `#` level.
    hash: Option<V>,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Self { literals: HashMap::new(), plus: None, value: None, hash: None }
    }
}

impl<V> Node<V> {
    fn is_empty(&self) -> bool {
        self.value.is_none() && self.hash.is_none() && self.plus.is_none() && self.literals.is_empty()
    }
}

/// A pattern's next level and the rest, or `None` after its last.
fn split(rest: Option<&str>) -> Option<(&str, Option<&str>)> {
    let rest = rest?;
    Some(match rest.split_once('/') {
        Some((level, next)) => (level, Some(next)),
        None => (rest, None),
    })
}

impl<V> Default for TopicTrie<V> {
    fn default() -> Self {
        Self { root: Node::default(), len: 0 }
    }
}

impl<V> TopicTrie<V> {
    /// How many patterns it holds.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The value of `pattern`, made by `make` if there was none; and whether it was made.
    pub(crate) fn get_or_insert_with(&mut self, pattern: &str, make: impl FnOnce() -> V) -> (&mut V, bool) {
        let mut node = &mut self.root;
        let mut rest = Some(pattern);
        let slot = loop {
            match split(rest) {
                None => break &mut node.value,
                Some(("#", None)) => break &mut node.hash,
                Some(("+", next)) => {
                    node = node.plus.get_or_insert_with(Box::default);
                    rest = next;
                }
                Some((literal, next)) => {
                    // Looked up before inserting, so that an existing level costs no allocation.
                    if !node.literals.contains_key(literal) {
                        node.literals.insert(literal.into(), Node::default());
                    }
                    node = node.literals.get_mut(literal).unwrap_or_else(|| unreachable!("inserted above"));
                    rest = next;
                }
            }
        };
        let made = slot.is_none();
        if made {
            self.len += 1;
        }
        (slot.get_or_insert_with(make), made)
    }

    /// Runs `update` on the value of `pattern`, if it has one, and removes the value when
    /// `update` returns true; returns the value removed. Nodes left empty are pruned, so a trie
    /// whose patterns came and went is as small as one that never had them.
    pub(crate) fn remove_if(&mut self, pattern: &str, update: impl FnOnce(&mut V) -> bool) -> Option<V> {
        let removed = remove_in(&mut self.root, Some(pattern), update);
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// Calls `f` with the value of every pattern that matches `channel`, once each.
    ///
    /// The walk visits only nodes whose path matches the channel so far: one or two per level
    /// in practice (the literal child and the `+` child), however many patterns are stored.
    pub(crate) fn for_each_match<'a>(&'a self, channel: &str, mut f: impl FnMut(&'a V)) {
        let root = &self.root;
        if channel.starts_with(SYSTEM_PREFIX) {
            // A leading wildcard never reaches a system channel: only literal first levels.
            if let Some((level, next)) = split(Some(channel)) {
                if let Some(child) = root.literals.get(level) {
                    walk(child, next, &mut f);
                }
            }
            return;
        }
        walk(root, Some(channel), &mut f);
    }

    /// Calls `f` with every value, in no particular order.
    pub(crate) fn for_each<'a>(&'a self, mut f: impl FnMut(&'a V)) {
        fn visit<'a, V>(node: &'a Node<V>, f: &mut impl FnMut(&'a V)) {
            node.value.iter().chain(&node.hash).for_each(&mut *f);
            node.literals.values().chain(node.plus.as_deref()).for_each(|child| visit(child, f));
        }
        visit(&self.root, &mut f);
    }
}

/// Matches the channel levels in `rest` (`None` once all are consumed) below `node`.
fn walk<'a, V>(node: &'a Node<V>, rest: Option<&str>, f: &mut impl FnMut(&'a V)) {
    if let Some(value) = &node.hash {
        f(value);
    }
    let Some((level, next)) = split(rest) else {
        if let Some(value) = &node.value {
            f(value);
        }
        return;
    };
    // Most nodes of a large trie have literal children or a `+` child, not both; checking for
    // emptiness first spares the hash of the level when there are none.
    if !node.literals.is_empty() {
        if let Some(child) = node.literals.get(level) {
            walk(child, next, f);
        }
    }
    if let Some(child) = &node.plus {
        walk(child, next, f);
    }
}

/// [`TopicTrie::remove_if`] below `node`, pruning children it leaves empty.
fn remove_in<V>(node: &mut Node<V>, rest: Option<&str>, update: impl FnOnce(&mut V) -> bool) -> Option<V> {
    let slot = match split(rest) {
        None => &mut node.value,
        Some(("#", None)) => &mut node.hash,
        Some(("+", next)) => {
            let child = node.plus.as_deref_mut()?;
            let removed = remove_in(child, next, update);
            if child.is_empty() {
                node.plus = None;
            }
            return removed;
        }
        Some((literal, next)) => {
            let child = node.literals.get_mut(literal)?;
            let removed = remove_in(child, next, update);
            if child.is_empty() {
                node.literals.remove(literal);
            }
            return removed;
        }
    };
    let value = slot.as_mut()?;
    if update(value) {
        slot.take()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{ChannelFilter, ChannelName};

    /// A trie whose values are the patterns themselves.
    fn trie(patterns: &[&str]) -> TopicTrie<String> {
        let mut trie = TopicTrie::default();
        for p in patterns {
            let (_, made) = trie.get_or_insert_with(p, || p.to_string());
            assert!(made, "{p} inserted twice");
        }
        trie
    }

    fn matches(trie: &TopicTrie<String>, channel: &str) -> Vec<String> {
        let mut found = Vec::new();
        trie.for_each_match(channel, |p| found.push(p.clone()));
        found.sort();
        found
    }

    /// The patterns of `patterns` that `ChannelFilter::matches` says select `channel`.
    fn scan(patterns: &[&str], channel: &ChannelName) -> Vec<String> {
        let mut found: Vec<String> = patterns
            .iter()
            .filter(|p| ChannelFilter::new(p).expect("valid pattern").matches(channel))
            .map(|p| p.to_string())
            .collect();
        found.sort();
        found
    }

    const PATTERNS: [&str; 16] = [
        "#",
        "+",
        "+/+",
        "+/#",
        "a",
        "a/#",
        "a/+",
        "a/b",
        "a/+/c",
        "a/b/#",
        "+/b/+",
        "+/b/#",
        "$sys/#",
        "$sys/+",
        "$sys/presence",
        "x/+/+/#",
    ];

    #[test]
    fn matches_as_the_filters_do() {
        let all = trie(&PATTERNS);
        for channel in [
            "a",
            "b",
            "a/b",
            "a/c",
            "a/b/c",
            "a/x/c",
            "a/b/c/d",
            "q/b",
            "q/b/r",
            "q/b/r/s",
            "$sys",
            "$sys/presence",
            "$sys/other/x",
            "$other/b",
            "x/1/2",
            "x/1/2/3/4",
            "x/1",
        ] {
            let name = ChannelName::new(channel).expect("valid channel");
            assert_eq!(matches(&all, channel), scan(&PATTERNS, &name), "{channel}");
        }
    }

    #[test]
    fn levels_may_be_empty_or_any_text() {
        // Channel names are being widened to empty levels and any UTF-8 but NUL; the trie takes
        // levels as they come and needs no validation of its own.
        let all = trie(&["+", "+/+", "a/+", "a//b", "é/#", "/+", "+/b"]);
        assert_eq!(matches(&all, ""), ["+"]);
        assert_eq!(matches(&all, "/"), ["+/+", "/+"]);
        assert_eq!(matches(&all, "a/"), ["+/+", "a/+"]);
        assert_eq!(matches(&all, "a//b"), ["a//b"]);
        assert_eq!(matches(&all, "/b"), ["+/+", "+/b", "/+"]);
        assert_eq!(matches(&all, "é"), ["+", "é/#"]);
        assert_eq!(matches(&all, "é/ü/ö"), ["é/#"]);
        assert_eq!(matches(&all, "$é"), Vec::<String>::new());
    }

    #[test]
    fn removal_prunes_every_empty_node() {
        let mut all = trie(&PATTERNS);
        assert_eq!(all.len(), PATTERNS.len());
        // A value that asks to stay is kept.
        assert_eq!(all.remove_if("a/+/c", |_| false), None);
        assert_eq!(all.len(), PATTERNS.len());
        assert_eq!(all.remove_if("a/+/d", |_| true), None);
        assert_eq!(all.remove_if("nothing/here", |_| true), None);
        for p in PATTERNS {
            assert_eq!(all.remove_if(p, |_| true).as_deref(), Some(p));
        }
        assert_eq!(all.len(), 0);
        assert!(all.root.is_empty(), "nodes were left behind");
    }

    #[test]
    fn for_each_visits_every_value_once() {
        let all = trie(&PATTERNS);
        let mut seen = Vec::new();
        all.for_each(|p| seen.push(p.as_str()));
        seen.sort_unstable();
        let mut want = PATTERNS.to_vec();
        want.sort_unstable();
        assert_eq!(seen, want);
    }

    /// A small deterministic generator (xorshift), so that a failure can be replayed.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }

        fn path(&mut self, levels: &[&str], most: usize) -> String {
            let n = 1 + self.below(most);
            (0..n).map(|_| levels[self.below(levels.len())]).collect::<Vec<_>>().join("/")
        }
    }

    #[test]
    fn random_patterns_match_as_a_scan_does() {
        // A small alphabet, so that random patterns and channels often meet. Levels the channel
        // syntax refuses today (empty ones, non-ASCII) are skipped by the oracle's validation
        // and tested once it accepts them.
        const LEVELS: [&str; 6] = ["a", "b", "$s", "", "é", "c"];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut hits = 0;
        for round in 0..50 {
            let mut patterns: Vec<String> = Vec::new();
            let mut all = TopicTrie::default();
            while patterns.len() < 40 {
                let mut p = rng.path(&LEVELS, 4);
                // Wildcards in random places: `+` anywhere, `#` last.
                p = p
                    .split('/')
                    .map(|l| if rng.below(3) == 0 { "+" } else { l })
                    .collect::<Vec<_>>()
                    .join("/");
                if rng.below(4) == 0 {
                    p.push_str("/#");
                }
                if ChannelFilter::new(&p).is_err() || patterns.contains(&p) {
                    continue;
                }
                all.get_or_insert_with(&p, || p.clone());
                patterns.push(p);
            }
            // Remove a few, so that pruning is checked against the scan too.
            for _ in 0..10 {
                let p = patterns.swap_remove(rng.below(patterns.len()));
                assert_eq!(all.remove_if(&p, |_| true), Some(p));
            }
            let refs: Vec<&str> = patterns.iter().map(String::as_str).collect();
            let mut checked = 0;
            while checked < 200 {
                let channel = rng.path(&LEVELS, 5);
                let Ok(name) = ChannelName::new(&channel) else { continue };
                checked += 1;
                let want = scan(&refs, &name);
                hits += want.len();
                assert_eq!(matches(&all, &channel), want, "round {round}: {channel}");
            }
        }
        // The alphabet is small enough that the comparisons are mostly about matches found.
        assert!(hits > 10_000, "only {hits} matches in all: the test lost its power");
    }
}
