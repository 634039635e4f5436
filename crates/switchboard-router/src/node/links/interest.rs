//! What a link mirrors: the realm's interest changes, filtered (split horizon, `mesh` or `tree`,
//! `wamp.*`, the link's allow-lists and direction flags) and folded into one entry per
//! (kind, URI, match), and how those entries cross the link as the progressive results of
//! `switchboard.link.interest`.

use std::collections::{HashMap, HashSet};

use switchboard_client::InvokePolicy;
use switchboard_proto::{Dict, UriMatch, Value};

use crate::config::{LinkDirection, LinkFilterEntry, LinkForwarding, LinkMode, effective_match};
use crate::peer::SessionId;
use crate::realm::{Interest, InterestChange};

/// One mirrored interest: a subscription or a registration pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    /// A subscription (`true`) or a registration.
    pub subscription: bool,
    /// The pattern.
    pub uri: String,
    /// Its match policy.
    pub policy: UriMatch,
}

/// An interest appearing (with the registration's invocation policy) or going away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    /// Appearing (`true`) or going away.
    pub added: bool,
    /// Which.
    pub key: Key,
    /// The invocation policy of a registration.
    pub invoke: InvokePolicy,
}

/// Which changes a link mirrors from one router, seen from that router.
#[derive(Debug, Clone)]
pub struct Filter {
    /// Sessions never mirrored: the link's own session on that router.
    pub own_session: Option<SessionId>,
    /// The router on the other side: interest learned from it is never sent back (`tree`).
    pub other_node: String,
    /// `mesh`: only interest of that router's own clients; `tree`: links' interest too.
    pub mode: LinkMode,
    /// Subscriptions mirrored at all.
    pub subscriptions: bool,
    /// Registrations mirrored at all.
    pub registrations: bool,
    /// Allow-lists (`None`: everything but `wamp.*`).
    pub topics: Option<Vec<LinkFilterEntry>>,
    /// Allow-lists of procedures.
    pub procedures: Option<Vec<LinkFilterEntry>>,
    /// Which direction of the allow-lists applies: `Out` for our interest mirrored there, `In`
    /// for theirs mirrored here.
    pub direction: LinkDirection,
}

impl Filter {
    /// The filter of this router's interest mirrored on the other router (our subscriptions
    /// and registrations, as `forward_local_*` say).
    pub fn outgoing(
        forwarding: LinkForwarding,
        mode: LinkMode,
        topics: Option<Vec<LinkFilterEntry>>,
        procedures: Option<Vec<LinkFilterEntry>>,
    ) -> Self {
        Self {
            own_session: None,
            other_node: String::new(),
            mode,
            subscriptions: forwarding.local_events,
            registrations: forwarding.local_invocations,
            topics,
            procedures,
            direction: LinkDirection::Out,
        }
    }

    /// Whether `change` is mirrored.
    fn admits(&self, change: &InterestChange) -> bool {
        let i = &change.interest;
        if Some(change.session) == self.own_session || router_uri(&i.uri) {
            return false;
        }
        if !(if i.subscription {
            self.subscriptions
        } else {
            self.registrations
        }) {
            return false;
        }
        if let Some(link) = &change.link {
            match self.mode {
                LinkMode::Mesh => return false,
                LinkMode::Tree if !link.node.is_empty() && link.node == self.other_node => {
                    return false;
                }
                LinkMode::Tree => {}
            }
        }
        let allow = if i.subscription {
            &self.topics
        } else {
            &self.procedures
        };
        allow.as_ref().is_none_or(|entries| {
            entries
                .iter()
                .filter(|e| {
                    e.direction
                        .is_none_or(|d| d == LinkDirection::Both || d == self.direction)
                })
                .any(|e| allows(e, i))
        })
    }
}

/// URIs that belong to each router itself and never cross a link: the meta API (`wamp.`), the
/// link protocol and link meta procedures and topic (`switchboard.link.`), and the router's
/// helper procedures (`switchboard.authenticator.`).
fn router_uri(uri: &str) -> bool {
    ["wamp.", "switchboard.link.", "switchboard.authenticator."]
        .iter()
        .any(|prefix| uri.starts_with(prefix))
}

/// Whether an allow-list entry covers an interest: the interest's pattern must be one the entry
/// matches (an exact URI it matches, or a pattern no wider than the entry's).
fn allows(entry: &LinkFilterEntry, i: &Interest) -> bool {
    let policy = match entry.match_policy {
        Some(m) => m.into(),
        None => effective_match(&crate::config::PermissionConfig {
            uri: entry.uri.clone(),
            match_policy: None,
            allow: Default::default(),
            disclose: Default::default(),
            cache: None,
        }),
    };
    let pattern = entry.uri.strip_suffix('*').unwrap_or(&entry.uri);
    match (policy, i.policy) {
        (UriMatch::Exact, _) => i.policy == UriMatch::Exact && i.uri == pattern,
        (UriMatch::Prefix, UriMatch::Exact | UriMatch::Prefix) => i.uri.starts_with(pattern),
        (UriMatch::Wildcard, UriMatch::Exact) => {
            let Ok(p) = switchboard_proto::Uri::parse_loose(pattern, UriMatch::Wildcard) else {
                return false;
            };
            p.matches(UriMatch::Wildcard, &i.uri)
        }
        (UriMatch::Wildcard, UriMatch::Wildcard) => i.uri == pattern,
        _ => false,
    }
}

/// The sessions holding each mirrored interest; a [`Delta`] when an interest appears or goes.
#[derive(Debug)]
pub struct Table {
    filter: Filter,
    holders: HashMap<Key, (InvokePolicy, HashSet<SessionId>)>,
}

impl Table {
    /// An empty table applying `filter`.
    pub fn new(filter: Filter) -> Self {
        Self {
            filter,
            holders: HashMap::new(),
        }
    }

    /// Applies one change; the delta, if the interest appeared or went away.
    pub fn apply(&mut self, change: &InterestChange) -> Option<Delta> {
        if !self.filter.admits(change) {
            return None;
        }
        let i = &change.interest;
        let key = Key {
            subscription: i.subscription,
            uri: i.uri.clone(),
            policy: i.policy,
        };
        if change.added {
            let (_, sessions) = self
                .holders
                .entry(key.clone())
                .or_insert_with(|| (i.invoke, HashSet::new()));
            let first = sessions.is_empty();
            sessions.insert(change.session);
            first.then_some(Delta {
                added: true,
                key,
                invoke: i.invoke,
            })
        } else {
            let (invoke, sessions) = self.holders.get_mut(&key)?;
            let invoke = *invoke;
            if !sessions.remove(&change.session) || !sessions.is_empty() {
                return None;
            }
            self.holders.remove(&key);
            Some(Delta {
                added: false,
                key,
                invoke,
            })
        }
    }
}

impl Delta {
    /// The delta as it crosses the link.
    pub fn to_value(&self) -> Value {
        let mut d = Dict::new();
        d.insert(
            "op".into(),
            if self.added { "add" } else { "remove" }.into(),
        );
        let kind = if self.key.subscription {
            "subscription"
        } else {
            "registration"
        };
        d.insert("type".into(), kind.into());
        d.insert("uri".into(), self.key.uri.as_str().into());
        d.insert("match".into(), self.key.policy.as_str().into());
        if !self.key.subscription {
            d.insert("invoke".into(), self.invoke.as_str().into());
        }
        Value::Dict(d)
    }

    /// A delta read from the link; `None` for anything malformed.
    pub fn from_value(v: &Value) -> Option<Self> {
        let d = v.as_dict()?;
        let text = |k: &str| d.get(k).and_then(Value::as_str);
        let added = match text("op")? {
            "add" => true,
            "remove" => false,
            _ => return None,
        };
        let subscription = match text("type")? {
            "subscription" => true,
            "registration" => false,
            _ => return None,
        };
        let policy = UriMatch::parse(text("match").unwrap_or("exact"))?;
        let invoke = match text("invoke") {
            None => InvokePolicy::Single,
            Some(name) => {
                let mut o = Dict::new();
                o.insert("invoke".into(), name.into());
                InvokePolicy::from_options(&o)
            }
        };
        Some(Self {
            added,
            key: Key {
                subscription,
                uri: text("uri")?.to_owned(),
                policy,
            },
            invoke,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::peer::LinkPeer;

    fn change(added: bool, session: u64, uri: &str, link: Option<&str>) -> InterestChange {
        InterestChange {
            added,
            interest: Interest {
                subscription: true,
                uri: uri.into(),
                policy: UriMatch::Prefix,
                invoke: InvokePolicy::Single,
            },
            session: SessionId(session),
            link: link.map(|node| {
                Arc::new(LinkPeer {
                    node: node.into(),
                    relay: false,
                    shares_session_ids: false,
                })
            }),
            listed: true,
        }
    }

    fn filter(mode: LinkMode) -> Filter {
        Filter {
            other_node: "B".into(),
            ..Filter::outgoing(
                LinkForwarding {
                    local_events: true,
                    remote_events: true,
                    local_invocations: true,
                    remote_invocations: true,
                },
                mode,
                None,
                None,
            )
        }
    }

    #[test]
    fn one_delta_per_pattern_however_many_sessions_hold_it() {
        let mut t = Table::new(filter(LinkMode::Mesh));
        assert!(t.apply(&change(true, 1, "com.a", None)).is_some());
        assert!(t.apply(&change(true, 2, "com.a", None)).is_none());
        assert!(t.apply(&change(false, 1, "com.a", None)).is_none());
        let gone = t
            .apply(&change(false, 2, "com.a", None))
            .expect("last holder left");
        assert!(!gone.added);
        assert_eq!(Delta::from_value(&gone.to_value()), Some(gone));
    }

    #[test]
    fn mesh_mirrors_only_clients_tree_everything_but_the_other_side_and_never_wamp() {
        let mut mesh = Table::new(filter(LinkMode::Mesh));
        assert!(mesh.apply(&change(true, 1, "com.a", Some("C"))).is_none());
        assert!(
            mesh.apply(&change(true, 1, "wamp.session.on_join", None))
                .is_none()
        );
        let mut tree = Table::new(filter(LinkMode::Tree));
        assert!(tree.apply(&change(true, 1, "com.a", Some("C"))).is_some());
        assert!(tree.apply(&change(true, 2, "com.b", Some("B"))).is_none());
    }

    #[test]
    fn allow_lists_cover_patterns_no_wider_than_theirs() {
        let mut f = filter(LinkMode::Mesh);
        f.topics = Some(vec![LinkFilterEntry {
            uri: "com.app.".into(),
            match_policy: Some(crate::config::MatchPolicy::Prefix),
            direction: Some(LinkDirection::Out),
        }]);
        let mut t = Table::new(f);
        assert!(t.apply(&change(true, 1, "com.app.x", None)).is_some());
        assert!(t.apply(&change(true, 1, "com.", None)).is_none());
        assert!(t.apply(&change(true, 1, "org.app.x", None)).is_none());
    }
}
