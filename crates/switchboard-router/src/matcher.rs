//! The URI pattern index shared by the broker and the dealer: exact, prefix and wildcard patterns
//! (spec, "Pattern-based Subscription" and "Pattern-based Registration"), each mapped to a value.
//!
//! Lookups never scan the patterns:
//! - exact: one hash lookup;
//! - prefix: one hash lookup per distinct prefix length in the index (a prefix is a plain string
//!   prefix, so `com.a.emergency` also matches `com.a.emergency-low`); URIs are short, so this is
//!   a few dozen lookups at most, whatever the number of patterns;
//! - wildcard: patterns are grouped by component count and stored in a trie per group whose
//!   nodes have an exact edge per component and one wildcard edge for an empty component; a
//!   lookup walks only the branches the URI's components can take.

use std::collections::{BTreeMap, HashMap};

use switchboard_proto::{Uri, UriMatch};

/// Patterns of all three policies, each mapped to a `T`.
#[derive(Debug, Clone)]
pub struct PatternIndex<T> {
    exact: HashMap<Uri, T>,
    prefix: HashMap<Uri, T>,
    /// How many prefix patterns have each length, so lookups probe only lengths in use.
    prefix_lengths: BTreeMap<usize, usize>,
    /// Wildcard tries by component count.
    wildcard: HashMap<usize, Node<T>>,
    wildcard_count: usize,
}

#[derive(Debug, Clone)]
struct Node<T> {
    exact: HashMap<Box<str>, Node<T>>,
    any: Option<Box<Node<T>>>,
    /// At a leaf (depth = component count): the pattern and its value.
    value: Option<(Uri, T)>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Self {
            exact: HashMap::new(),
            any: None,
            value: None,
        }
    }
}

impl<T> Default for PatternIndex<T> {
    fn default() -> Self {
        Self {
            exact: HashMap::new(),
            prefix: HashMap::new(),
            prefix_lengths: BTreeMap::new(),
            wildcard: HashMap::new(),
            wildcard_count: 0,
        }
    }
}

impl<T> PatternIndex<T> {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many patterns the index holds.
    pub fn len(&self) -> usize {
        self.exact.len() + self.prefix.len() + self.wildcard_count
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of exactly this pattern and policy.
    pub fn get(&self, pattern: &str, policy: UriMatch) -> Option<&T> {
        match policy {
            UriMatch::Exact => self.exact.get(pattern),
            UriMatch::Prefix => self.prefix.get(pattern),
            UriMatch::Wildcard => self
                .wildcard_leaf(pattern)
                .and_then(|n| n.value.as_ref().map(|(_, v)| v)),
        }
    }

    /// The value of exactly this pattern and policy, mutably.
    pub fn get_mut(&mut self, pattern: &str, policy: UriMatch) -> Option<&mut T> {
        match policy {
            UriMatch::Exact => self.exact.get_mut(pattern),
            UriMatch::Prefix => self.prefix.get_mut(pattern),
            UriMatch::Wildcard => {
                let mut node = self.wildcard.get_mut(&pattern.split('.').count())?;
                for component in pattern.split('.') {
                    node = if component.is_empty() {
                        node.any.as_deref_mut()?
                    } else {
                        node.exact.get_mut(component)?
                    };
                }
                node.value.as_mut().map(|(_, v)| v)
            }
        }
    }

    fn wildcard_leaf(&self, pattern: &str) -> Option<&Node<T>> {
        let mut node = self.wildcard.get(&pattern.split('.').count())?;
        for component in pattern.split('.') {
            node = if component.is_empty() {
                node.any.as_deref()?
            } else {
                node.exact.get(component)?
            };
        }
        Some(node)
    }

    /// Inserts or replaces the value of a pattern; returns the previous value.
    pub fn insert(&mut self, pattern: Uri, policy: UriMatch, value: T) -> Option<T> {
        match policy {
            UriMatch::Exact => self.exact.insert(pattern, value),
            UriMatch::Prefix => {
                let len = pattern.len();
                let old = self.prefix.insert(pattern, value);
                if old.is_none() {
                    *self.prefix_lengths.entry(len).or_insert(0) += 1;
                }
                old
            }
            UriMatch::Wildcard => {
                let mut node = self.wildcard.entry(pattern.split('.').count()).or_default();
                for component in pattern.split('.') {
                    node = if component.is_empty() {
                        node.any.get_or_insert_with(Box::default)
                    } else {
                        node.exact.entry(component.into()).or_default()
                    };
                }
                let old = node.value.replace((pattern, value)).map(|(_, v)| v);
                if old.is_none() {
                    self.wildcard_count += 1;
                }
                old
            }
        }
    }

    /// Removes a pattern; returns its value.
    pub fn remove(&mut self, pattern: &str, policy: UriMatch) -> Option<T> {
        match policy {
            UriMatch::Exact => self.exact.remove(pattern),
            UriMatch::Prefix => {
                let old = self.prefix.remove(pattern)?;
                if let Some(count) = self.prefix_lengths.get_mut(&pattern.len()) {
                    *count -= 1;
                    if *count == 0 {
                        self.prefix_lengths.remove(&pattern.len());
                    }
                }
                Some(old)
            }
            UriMatch::Wildcard => {
                let n = pattern.split('.').count();
                let root = self.wildcard.get_mut(&n)?;
                let components: Vec<&str> = pattern.split('.').collect();
                let old = remove_wildcard(root, &components)?;
                self.wildcard_count -= 1;
                if root.exact.is_empty() && root.any.is_none() && root.value.is_none() {
                    self.wildcard.remove(&n);
                }
                Some(old)
            }
        }
    }

    /// Calls `f` with every pattern that matches `uri` (for the broker: all subscriptions that get
    /// an event), exact first, then prefixes, then wildcards.
    pub fn for_each_match(&self, uri: &str, mut f: impl FnMut(&Uri, UriMatch, &T)) {
        if let Some((k, v)) = self.exact.get_key_value(uri) {
            f(k, UriMatch::Exact, v);
        }
        for &len in self.prefix_lengths.keys() {
            if len > uri.len() {
                break;
            }
            if let Some(prefix) = uri.get(..len)
                && let Some((k, v)) = self.prefix.get_key_value(prefix)
            {
                f(k, UriMatch::Prefix, v);
            }
        }
        if self.wildcard_count > 0 {
            let components: Vec<&str> = uri.split('.').collect();
            if let Some(root) = self.wildcard.get(&components.len()) {
                walk_wildcards(root, &components, &mut |k, v| f(k, UriMatch::Wildcard, v));
            }
        }
    }

    /// The single pattern a call to `uri` goes to (spec, "Pattern-based Registration"): an exact
    /// match, else the longest matching prefix, else a matching wildcard, the one whose first
    /// non-wildcard components come earliest winning (Crossbar's order: more specific leading
    /// components first).
    pub fn best_match(&self, uri: &str) -> Option<(&Uri, UriMatch, &T)> {
        if let Some((k, v)) = self.exact.get_key_value(uri) {
            return Some((k, UriMatch::Exact, v));
        }
        for &len in self.prefix_lengths.keys().rev() {
            if len > uri.len() {
                continue;
            }
            if let Some(prefix) = uri.get(..len)
                && let Some((k, v)) = self.prefix.get_key_value(prefix)
            {
                return Some((k, UriMatch::Prefix, v));
            }
        }
        if self.wildcard_count == 0 {
            return None;
        }
        let components: Vec<&str> = uri.split('.').collect();
        let root = self.wildcard.get(&components.len())?;
        first_wildcard(root, &components).map(|(k, v)| (k, UriMatch::Wildcard, v))
    }
}

fn remove_wildcard<T>(node: &mut Node<T>, components: &[&str]) -> Option<T> {
    let Some((first, rest)) = components.split_first() else {
        return node.value.take().map(|(_, v)| v);
    };
    if first.is_empty() {
        let child = node.any.as_deref_mut()?;
        let old = remove_wildcard(child, rest)?;
        if child.exact.is_empty() && child.any.is_none() && child.value.is_none() {
            node.any = None;
        }
        Some(old)
    } else {
        let child = node.exact.get_mut(*first)?;
        let old = remove_wildcard(child, rest)?;
        if child.exact.is_empty() && child.any.is_none() && child.value.is_none() {
            node.exact.remove(*first);
        }
        Some(old)
    }
}

fn walk_wildcards<'a, T>(
    node: &'a Node<T>,
    components: &[&str],
    f: &mut impl FnMut(&'a Uri, &'a T),
) {
    let Some((first, rest)) = components.split_first() else {
        if let Some((k, v)) = &node.value {
            f(k, v);
        }
        return;
    };
    if let Some(child) = node.exact.get(*first) {
        walk_wildcards(child, rest, f);
    }
    if let Some(child) = node.any.as_deref() {
        walk_wildcards(child, rest, f);
    }
}

/// The first wildcard match, preferring exact components over wildcards position by position.
fn first_wildcard<'a, T>(node: &'a Node<T>, components: &[&str]) -> Option<(&'a Uri, &'a T)> {
    let Some((first, rest)) = components.split_first() else {
        return node.value.as_ref().map(|(k, v)| (k, v));
    };
    node.exact
        .get(*first)
        .and_then(|child| first_wildcard(child, rest))
        .or_else(|| {
            node.any
                .as_deref()
                .and_then(|child| first_wildcard(child, rest))
        })
}

/// The index of a match policy in `[exact, prefix, wildcard]` lists.
pub(crate) fn policy_index(policy: UriMatch) -> usize {
    match policy {
        UriMatch::Exact => 0,
        UriMatch::Prefix => 1,
        UriMatch::Wildcard => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_order_matches_policy_index() {
        let order = [UriMatch::Exact, UriMatch::Prefix, UriMatch::Wildcard];
        for (i, p) in order.into_iter().enumerate() {
            assert_eq!(policy_index(p), i);
        }
    }

    fn uri(s: &str, p: UriMatch) -> Uri {
        Uri::parse_loose(s, p).expect("valid pattern")
    }

    fn matches(index: &PatternIndex<u32>, topic: &str) -> Vec<u32> {
        let mut out = Vec::new();
        index.for_each_match(topic, |_, _, v| out.push(*v));
        out.sort();
        out
    }

    #[test]
    fn all_three_policies_match_as_the_spec_says() {
        let mut index = PatternIndex::new();
        index.insert(uri("com.a.b", UriMatch::Exact), UriMatch::Exact, 1);
        index.insert(uri("com.a", UriMatch::Prefix), UriMatch::Prefix, 2);
        index.insert(uri("com.a.b", UriMatch::Prefix), UriMatch::Prefix, 3);
        index.insert(uri("com..b", UriMatch::Wildcard), UriMatch::Wildcard, 4);
        index.insert(uri("..", UriMatch::Wildcard), UriMatch::Wildcard, 5);
        assert_eq!(matches(&index, "com.a.b"), vec![1, 2, 3, 4, 5]);
        assert_eq!(matches(&index, "com.ab.c"), vec![2, 5]);
        assert_eq!(matches(&index, "com.x.b"), vec![4, 5]);
        assert_eq!(matches(&index, "com.a.b.c"), vec![2, 3]);
        assert_eq!(matches(&index, "org"), Vec::<u32>::new());
    }

    #[test]
    fn best_match_is_exact_then_longest_prefix_then_wildcard() {
        let mut index = PatternIndex::new();
        index.insert(uri("com.a", UriMatch::Prefix), UriMatch::Prefix, 2);
        index.insert(uri("com.a.b", UriMatch::Prefix), UriMatch::Prefix, 3);
        index.insert(uri("com..c", UriMatch::Wildcard), UriMatch::Wildcard, 4);
        index.insert(uri("com.x.", UriMatch::Wildcard), UriMatch::Wildcard, 5);
        assert_eq!(index.best_match("com.a.b.c").map(|m| *m.2), Some(3));
        assert_eq!(index.best_match("com.a.x").map(|m| *m.2), Some(2));
        assert_eq!(index.best_match("com.x.c").map(|m| *m.2), Some(5));
        assert_eq!(index.best_match("com.y.c").map(|m| *m.2), Some(4));
        index.insert(uri("com.a.b.c", UriMatch::Exact), UriMatch::Exact, 1);
        assert_eq!(index.best_match("com.a.b.c").map(|m| *m.2), Some(1));
    }

    #[test]
    fn removing_patterns_leaves_nothing_behind() {
        let mut index = PatternIndex::new();
        for (p, m) in [
            ("a.b", UriMatch::Exact),
            ("a.", UriMatch::Prefix),
            ("a..c", UriMatch::Wildcard),
        ] {
            index.insert(uri(p, m), m, 0u32);
        }
        assert_eq!(index.len(), 3);
        assert_eq!(index.remove("a..c", UriMatch::Wildcard), Some(0));
        assert_eq!(index.remove("a..c", UriMatch::Wildcard), None);
        assert_eq!(index.remove("a.", UriMatch::Prefix), Some(0));
        assert_eq!(index.remove("a.b", UriMatch::Exact), Some(0));
        assert!(index.is_empty());
        assert!(index.wildcard.is_empty() && index.prefix_lengths.is_empty());
    }

    /// Compares the index with a naive scan over random patterns and topics.
    #[test]
    fn index_agrees_with_a_naive_scan() {
        let words = ["a", "b", "c", "ab", "bc"];
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut index = PatternIndex::new();
        let mut naive: Vec<(Uri, UriMatch, u32)> = Vec::new();
        for id in 0..300u32 {
            let n = 1 + next(4);
            let policy = [UriMatch::Exact, UriMatch::Prefix, UriMatch::Wildcard][next(3)];
            let parts: Vec<&str> = (0..n)
                .map(|_| {
                    if policy == UriMatch::Wildcard && next(3) == 0 {
                        ""
                    } else {
                        words[next(words.len())]
                    }
                })
                .collect();
            let mut pattern = parts.join(".");
            if policy == UriMatch::Prefix && next(2) == 0 {
                pattern.truncate(pattern.len().saturating_sub(1));
            }
            let Ok(p) = Uri::parse_loose(&pattern, policy) else {
                continue;
            };
            if index.get(&pattern, policy).is_some() {
                continue;
            }
            index.insert(p.clone(), policy, id);
            naive.push((p, policy, id));
        }
        for _ in 0..500 {
            let n = 1 + next(4);
            let topic: Vec<&str> = (0..n).map(|_| words[next(words.len())]).collect();
            let topic = topic.join(".");
            let mut expected: Vec<u32> = naive
                .iter()
                .filter(|(p, m, _)| p.matches(*m, &topic))
                .map(|(_, _, id)| *id)
                .collect();
            expected.sort();
            assert_eq!(matches(&index, &topic), expected, "{topic}");
        }
    }
}
