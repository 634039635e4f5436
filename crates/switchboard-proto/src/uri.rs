//! WAMP URIs: the strict and loose syntax rules, and the three match policies (exact, prefix,
//! wildcard) of pattern-based subscriptions and registrations (spec, "URIs" and "Pattern-based
//! Subscription").

use std::fmt;
use std::sync::Arc;

/// How a subscription or registration URI is matched against topics and procedures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum UriMatch {
    /// The URI must equal the topic or procedure.
    #[default]
    Exact,
    /// The URI is a string prefix of the topic or procedure.
    Prefix,
    /// Empty components of the URI match any single component.
    Wildcard,
}

impl UriMatch {
    /// Parses the `match` option value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "exact" => Some(Self::Exact),
            "prefix" => Some(Self::Prefix),
            "wildcard" => Some(Self::Wildcard),
            _ => None,
        }
    }

    /// The option value as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::Prefix => "prefix",
            Self::Wildcard => "wildcard",
        }
    }
}

/// Why a URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// The URI is the empty string where an exact URI is required.
    #[error("URI is empty")]
    Empty,
    /// A component is empty where the match policy does not allow it.
    #[error("URI {0:?} has an empty component")]
    EmptyComponent(String),
    /// A character is not allowed by the URI rule in force.
    #[error("URI {0:?} contains a character the {1} URI rule does not allow")]
    BadCharacter(String, &'static str),
}

/// A validated WAMP URI, cheap to clone (routing tables key on it).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uri(Arc<str>);

impl Uri {
    /// Checks `s` against the loose rule (spec: components without whitespace, `.` or `#`), with empty
    /// components allowed only for prefix and wildcard patterns. A prefix pattern may be `""`.
    pub fn parse_loose(s: &str, policy: UriMatch) -> Result<Self, UriError> {
        Self::check(s, policy, false)?;
        Ok(Self(Arc::from(s)))
    }

    /// Checks `s` against the strict rule (spec: components of `[0-9a-z_]` only).
    pub fn parse_strict(s: &str, policy: UriMatch) -> Result<Self, UriError> {
        Self::check(s, policy, true)?;
        Ok(Self(Arc::from(s)))
    }

    /// Checks `s` against the loose rule without building a [`Uri`] (no allocation on success).
    pub fn check_loose(s: &str, policy: UriMatch) -> Result<(), UriError> {
        Self::check(s, policy, false)
    }

    fn check(s: &str, policy: UriMatch, strict: bool) -> Result<(), UriError> {
        let rule = if strict { "strict" } else { "loose" };
        let char_ok = |c: char| {
            if strict {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
            } else {
                !c.is_whitespace() && c != '#'
            }
        };
        match policy {
            UriMatch::Exact => {
                if s.is_empty() {
                    return Err(UriError::Empty);
                }
                for component in s.split('.') {
                    if component.is_empty() {
                        return Err(UriError::EmptyComponent(s.to_owned()));
                    }
                    if !component.chars().all(char_ok) {
                        return Err(UriError::BadCharacter(s.to_owned(), rule));
                    }
                }
            }
            // Prefix patterns are plain string prefixes ("com.myapp." and "" are both fine);
            // wildcard patterns may have empty components anywhere.
            UriMatch::Prefix | UriMatch::Wildcard => {
                if !s.split('.').all(|c| c.chars().all(char_ok)) {
                    return Err(UriError::BadCharacter(s.to_owned(), rule));
                }
            }
        }
        Ok(())
    }

    /// The URI as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this pattern, under `policy`, matches the concrete URI `uri`.
    pub fn matches(&self, policy: UriMatch, uri: &str) -> bool {
        match policy {
            UriMatch::Exact => &*self.0 == uri,
            UriMatch::Prefix => uri.starts_with(&*self.0),
            UriMatch::Wildcard => {
                let mut pattern = self.0.split('.');
                let mut target = uri.split('.');
                loop {
                    match (pattern.next(), target.next()) {
                        (None, None) => return true,
                        (Some(p), Some(t)) if p.is_empty() || p == t => {}
                        _ => return false,
                    }
                }
            }
        }
    }
}

impl fmt::Debug for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// Routing tables key on Uri and are looked up with the &str of an incoming message; Arc<str> hashes
// and compares exactly as str does, which is what Borrow requires.
impl std::borrow::Borrow<str> for Uri {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Uri {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loose_rule_accepts_mixed_case_and_refuses_whitespace_and_hash() {
        assert!(Uri::parse_loose("com.MyApp.topic-1", UriMatch::Exact).is_ok());
        assert!(Uri::parse_loose("com.my app", UriMatch::Exact).is_err());
        assert!(Uri::parse_loose("com.my#app", UriMatch::Exact).is_err());
    }

    #[test]
    fn strict_rule_allows_only_lowercase_digits_and_underscore() {
        assert!(Uri::parse_strict("com.myapp.topic_1", UriMatch::Exact).is_ok());
        assert!(Uri::parse_strict("com.MyApp", UriMatch::Exact).is_err());
        assert!(Uri::parse_strict("com.my-app", UriMatch::Exact).is_err());
    }

    #[test]
    fn exact_uris_have_no_empty_components() {
        assert_eq!(Uri::parse_loose("", UriMatch::Exact), Err(UriError::Empty));
        assert!(Uri::parse_loose("com..topic", UriMatch::Exact).is_err());
        assert!(Uri::parse_loose("com.topic.", UriMatch::Exact).is_err());
        assert!(Uri::parse_loose("com..topic", UriMatch::Wildcard).is_ok());
        assert!(Uri::parse_loose("", UriMatch::Prefix).is_ok());
    }

    #[test]
    fn wildcard_matches_one_component_per_empty_slot() {
        let p = Uri::parse_loose("com..update", UriMatch::Wildcard).expect("valid");
        assert!(p.matches(UriMatch::Wildcard, "com.foo.update"));
        assert!(!p.matches(UriMatch::Wildcard, "com.foo.bar.update"));
        assert!(!p.matches(UriMatch::Wildcard, "com.foo.create"));
    }

    #[test]
    fn prefix_is_a_string_prefix() {
        let p = Uri::parse_loose("com.a.emergency", UriMatch::Prefix).expect("valid");
        assert!(p.matches(UriMatch::Prefix, "com.a.emergency-low"));
        assert!(!p.matches(UriMatch::Prefix, "com.a.other"));
    }
}
