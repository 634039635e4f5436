//! How the cluster names things on NATS: WAMP URIs as subject tokens, the subjects a
//! subscription pattern needs, each node's own subjects, and the key-value keys of shared
//! interest.

use ring::digest;
use switchboard_proto::UriMatch;

/// A subject longer than this goes to the realm's overflow subject instead (NATS allows control
/// lines up to 4096 bytes).
const LONGEST_SUBJECT: usize = 3000;
/// The token of the overflow subject (`#long`, encoded): an encoded URI component never reads so.
const OVERFLOW_TOKEN: &str = "%23long";

/// One URI component (or a realm name) as one subject token: letters, digits, `_` and `-` pass,
/// every other byte becomes `%XX` (`%` itself too), so `.`, `*`, `>` and `$` never reach NATS.
/// The empty component becomes `%`, which no other component does.
pub fn token(component: &str) -> String {
    if component.is_empty() {
        return "%".into();
    }
    let mut out = String::with_capacity(component.len());
    for b in component.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Subjects of one cluster.
#[derive(Debug, Clone)]
pub struct Subjects {
    /// `sw.<cluster>`.
    base: String,
}

impl Subjects {
    /// The subjects of cluster `name` (a plain token, checked by the config).
    pub fn new(name: &str) -> Self {
        Self {
            base: format!("sw.{name}"),
        }
    }

    /// Every event subject of `realm`, as a prefix (`sw.C.e.R`).
    fn events(&self, realm: &str) -> String {
        format!("{}.e.{}", self.base, token(realm))
    }

    /// Where an event published to `topic` goes.
    pub fn event(&self, realm: &str, topic: &str) -> String {
        let mut s = self.events(realm);
        for c in topic.split('.') {
            s.push('.');
            s.push_str(&token(c));
        }
        if s.len() > LONGEST_SUBJECT {
            return self.overflow(realm);
        }
        s
    }

    /// Where events whose subject would be too long go; every node that has subscribers
    /// listens there and matches them itself.
    pub fn overflow(&self, realm: &str) -> String {
        format!("{}.{OVERFLOW_TOKEN}", self.events(realm))
    }

    /// Every event of `realm` (the `broadcast` fan-out).
    pub fn all_events(&self, realm: &str) -> String {
        format!("{}.>", self.events(realm))
    }

    /// The subject a node listens on for events matching a subscription to `uri` under
    /// `policy`. It may be wider than the pattern (a prefix that does not end a component):
    /// the node's own broker matches exactly when it delivers.
    pub fn interest(&self, realm: &str, uri: &str, policy: UriMatch) -> String {
        let components: Vec<&str> = uri.split('.').collect();
        let mut s = self.events(realm);
        match policy {
            UriMatch::Exact => return self.event(realm, uri),
            UriMatch::Wildcard => {
                for c in components {
                    s.push('.');
                    if c.is_empty() {
                        s.push('*');
                    } else {
                        s.push_str(&token(c));
                    }
                }
            }
            UriMatch::Prefix => {
                // `a.b.` covers `a.b.<anything>`; `a.b.c` also covers `a.b.cd`, so its last
                // component cannot be a token of the subject: either way every component but
                // the last is one.
                let whole = components.split_last().map_or(&[][..], |(_, rest)| rest);
                for c in whole {
                    s.push('.');
                    s.push_str(&token(c));
                }
                s.push_str(".>");
            }
        }
        if s.len() > LONGEST_SUBJECT {
            return self.all_events(realm);
        }
        s
    }

    /// Where INVOCATIONs for callees on `node` go.
    pub fn rpc(&self, node: &str) -> String {
        format!("{}.n.{node}.rpc", self.base)
    }

    /// Where the answers for calls from `node` go (`.<call>` appended per call).
    pub fn results(&self, node: &str) -> String {
        format!("{}.n.{node}.res", self.base)
    }

    /// Where a realm's session meta procedures are asked of every node (`tag`: the realm).
    pub fn meta(&self, tag: &str) -> String {
        format!("{}.m.{tag}", self.base)
    }

    /// Where cancellations of calls to `node` go.
    pub fn control(&self, node: &str) -> String {
        format!("{}.n.{node}.ctl", self.base)
    }
}

/// A short key-value-safe digest of `parts` (hex, 32 characters).
pub fn digest_key(parts: &[&str]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for p in parts {
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p.as_bytes());
    }
    hex::encode(&ctx.finish().as_ref()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_keep_component_boundaries_and_never_carry_nats_wildcards() {
        assert_eq!(token("com_example-1"), "com_example-1");
        assert_eq!(token("a*b>c$d%e"), "a%2Ab%3Ec%24d%25e");
        assert_eq!(token("x.y"), "x%2Ey");
        assert_eq!(token(""), "%");
        assert_ne!(token("%23long"), OVERFLOW_TOKEN);
    }

    #[test]
    fn patterns_map_onto_the_subjects_of_their_events() {
        let s = Subjects::new("prod");
        assert_eq!(s.event("realm1", "com.a.b"), "sw.prod.e.realm1.com.a.b");
        assert_eq!(s.event("my.realm", "x"), "sw.prod.e.my%2Erealm.x");
        assert_eq!(
            s.interest("realm1", "com.a.b", UriMatch::Exact),
            "sw.prod.e.realm1.com.a.b"
        );
        assert_eq!(
            s.interest("realm1", "com..b", UriMatch::Wildcard),
            "sw.prod.e.realm1.com.*.b"
        );
        assert_eq!(
            s.interest("realm1", "com.a.", UriMatch::Prefix),
            "sw.prod.e.realm1.com.a.>"
        );
        // `com.a.b` as a prefix also matches `com.a.bc`: the subject covers `com.a.*...`.
        assert_eq!(
            s.interest("realm1", "com.a.b", UriMatch::Prefix),
            "sw.prod.e.realm1.com.a.>"
        );
        assert_eq!(
            s.interest("realm1", "com", UriMatch::Prefix),
            "sw.prod.e.realm1.>"
        );
        let long = "a.".repeat(2000) + "b";
        assert_eq!(s.event("realm1", &long), s.overflow("realm1"));
        assert_eq!(s.rpc("n1"), "sw.prod.n.n1.rpc");
    }

    #[test]
    fn digests_are_stable_and_separate_their_parts() {
        assert_eq!(digest_key(&["a", "bc"]).len(), 32);
        assert_ne!(digest_key(&["a", "bc"]), digest_key(&["ab", "c"]));
        assert_eq!(digest_key(&["x"]), digest_key(&["x"]));
    }
}
