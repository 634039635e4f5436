//! Static authorization: may a role take an action on a URI, and does it disclose its identity?
//!
//! Precedence as Crossbar's: an exact permission beats any prefix permission, a longer prefix beats
//! a shorter one, and prefix beats wildcard. The first matching permission at the winning rank
//! decides everything about that URI ([`Decision`]). Sessions cache decisions per URI (see
//! `session::established`), so the hot path pays neither a lock nor an allocation.

use switchboard_proto::{Uri, UriMatch};

use crate::config::{RoleConfig, effective_match};

/// An action a role can be allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Action {
    Call,
    Register,
    Publish,
    Subscribe,
}

impl Action {
    /// Every action, in index order.
    pub const ALL: [Action; 4] = [
        Action::Call,
        Action::Register,
        Action::Publish,
        Action::Subscribe,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The action's name as authorizers are told it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Call => "call",
            Action::Register => "register",
            Action::Publish => "publish",
            Action::Subscribe => "subscribe",
        }
    }
}

#[derive(Debug, Clone)]
struct Permission {
    pattern: Uri,
    policy: UriMatch,
    decision: Decision,
}

/// What a role may do on one URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Decision {
    /// Indexed by [`Action::index`].
    allow: [bool; 4],
    /// Callees learn who called (INVOCATION.Details `caller`, `caller_authid`, `caller_authrole`).
    pub disclose_caller: bool,
    /// Subscribers learn who published (EVENT.Details `publisher`, ...).
    pub disclose_publisher: bool,
}

impl Decision {
    /// A decision about one action only (what a dynamic authorizer answers); `disclose` applies
    /// to the caller or publisher identity the action would carry.
    pub fn for_action(action: Action, allowed: bool, disclose: bool) -> Self {
        let mut allow = [false; 4];
        allow[action.index()] = allowed;
        Self {
            allow,
            disclose_caller: disclose,
            disclose_publisher: disclose,
        }
    }

    /// Whether `action` is allowed.
    pub fn allows(&self, action: Action) -> bool {
        self.allow[action.index()]
    }
}

/// The name of the built-in role of the router's own in-process sessions (see [`Role::trusted`]).
pub const TRUSTED_ROLE: &str = "trusted";

/// Procedures the router registers for itself (its function authenticators): only the `trusted`
/// role may call or register under this prefix, whatever a role's permissions say, so that no
/// client can use an authenticator as a password oracle or take its URI.
pub const RESERVED_PREFIX: &str = "switchboard.authenticator.";

impl Decision {
    /// Calling allowed, nothing else, nothing disclosed.
    pub fn call_only() -> Self {
        Self {
            allow: [true, false, false, false],
            ..Self::deny_all()
        }
    }

    /// Nothing allowed, nothing disclosed.
    pub fn deny_all() -> Self {
        Self {
            allow: [false; 4],
            disclose_caller: false,
            disclose_publisher: false,
        }
    }
}

/// The procedure through which a router tells a link that connected to it which subscriptions
/// and registrations it holds (snapshot, then changes, as progressive results). Only the router
/// registers it, and only sessions of a role that may link can call it.
pub const LINK_INTEREST_PROCEDURE: &str = "switchboard.link.interest";

/// The procedure a link calls to check that the router at the other end still answers (its
/// `ping`); like [`LINK_INTEREST_PROCEDURE`], the router's and for links only.
pub const LINK_PING_PROCEDURE: &str = "switchboard.link.ping";

/// Whether `uri` is one of the link protocol's procedures.
pub fn is_link_protocol(uri: &str) -> bool {
    uri == LINK_INTEREST_PROCEDURE || uri == LINK_PING_PROCEDURE
}

/// The procedure through which a node of a cluster asks the other nodes for their part of a
/// session meta procedure's answer (`wamp.session.count`, `list`, `get`, `kill`, ...): its
/// cluster end registers it; only the router calls it.
pub const CLUSTER_META_PROCEDURE: &str = "switchboard.cluster.meta";

/// Whether `role` may not touch `uri` because the router keeps it for itself.
pub fn reserved_for_router(uri: &str, role: &str) -> bool {
    (uri.starts_with(RESERVED_PREFIX) || is_link_protocol(uri) || uri == CLUSTER_META_PROCEDURE)
        && role != TRUSTED_ROLE
}

/// A role's compiled permissions.
#[derive(Debug, Clone)]
pub struct Role {
    name: String,
    permissions: Vec<Permission>,
    /// The dynamic authorizer that decides instead of `permissions`.
    authorizer: Option<String>,
    /// Whether its sessions may be router links (`"link": true`).
    link: bool,
}

impl Role {
    /// Compiles a role from its config. Invalid patterns were refused by config validation; any
    /// that slip through never match.
    pub fn from_config(cfg: &RoleConfig) -> Self {
        if cfg.allows_by_default() {
            return Self {
                name: cfg.name.clone(),
                permissions: vec![Permission {
                    pattern: Uri::parse_loose("", UriMatch::Prefix)
                        .expect("the empty prefix matches every URI"),
                    policy: UriMatch::Prefix,
                    decision: Decision {
                        allow: [true; 4],
                        disclose_caller: false,
                        disclose_publisher: false,
                    },
                }],
                authorizer: None,
                link: cfg.link,
            };
        }
        let permissions = cfg
            .permissions()
            .iter()
            .filter_map(|p| {
                let policy = effective_match(p);
                // Crossbar's legacy syntax writes a prefix as "com.example.*".
                let pattern = p.uri.strip_suffix('*').unwrap_or(&p.uri);
                let pattern = Uri::parse_loose(pattern, policy).ok()?;
                Some(Permission {
                    pattern,
                    policy,
                    decision: Decision {
                        allow: [
                            p.allow.call,
                            p.allow.register,
                            p.allow.publish,
                            p.allow.subscribe,
                        ],
                        disclose_caller: p.disclose.caller,
                        disclose_publisher: p.disclose.publisher,
                    },
                })
            })
            .collect();
        Self {
            name: cfg.name.clone(),
            permissions,
            authorizer: cfg.authorizer.clone(),
            link: cfg.link,
        }
    }

    /// The built-in `trusted` role: every action on every URI, nothing disclosed, may link. Only sessions
    /// that live in the router's process (its own caller, components the embedder vouches for)
    /// may get it, and only where the realm does not define a role of that name; a connection
    /// from outside never does.
    pub fn trusted() -> Self {
        let everything = Permission {
            pattern: Uri::parse_loose("", UriMatch::Prefix).expect("the empty prefix is valid"),
            policy: UriMatch::Prefix,
            decision: Decision {
                allow: [true; 4],
                disclose_caller: false,
                disclose_publisher: false,
            },
        };
        Self {
            name: TRUSTED_ROLE.to_owned(),
            permissions: vec![everything],
            authorizer: None,
            link: true,
        }
    }

    /// A role named `name` allowed nothing: what a session holds whose role a reload removed,
    /// until it is closed.
    pub fn deny_all(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            permissions: Vec::new(),
            authorizer: None,
            link: false,
        }
    }

    /// Whether the role's sessions may be router links: send `forward_for` and use the link
    /// protocol. The built-in `trusted` role may (the local end of the node's own links).
    pub fn may_link(&self) -> bool {
        self.link
    }

    /// The role's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The procedure that authorizes this role's actions, for a dynamically authorized role.
    pub fn authorizer(&self) -> Option<&str> {
        self.authorizer.as_deref()
    }

    /// Whether the role may take `action` on `uri`.
    pub fn may(&self, action: Action, uri: &str) -> bool {
        self.decide(uri).allows(action)
    }

    /// Everything the role may do on `uri`: the decision of the best-matching permission, or
    /// nothing at all when none matches.
    pub fn decide(&self, uri: &str) -> Decision {
        // Rank: exact = (2, 0), prefix = (1, len), wildcard = (0, 0); highest wins.
        let mut best: Option<((u8, usize), Decision)> = None;
        for p in &self.permissions {
            if !p.pattern.matches(p.policy, uri) {
                continue;
            }
            let rank = match p.policy {
                UriMatch::Exact => (2, 0),
                UriMatch::Prefix => (1, p.pattern.len()),
                UriMatch::Wildcard => (0, 0),
            };
            if best.is_none_or(|(r, _)| rank > r) {
                best = Some((rank, p.decision));
            }
        }
        best.map(|(_, d)| d).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(json: &str) -> Role {
        Role::from_config(&serde_json::from_str(json).expect("role json"))
    }

    #[test]
    fn exact_beats_prefix_and_longer_prefix_beats_shorter() {
        let r = role(
            r#"{"name":"r","permissions":[
            {"uri":"com.app.","match":"prefix","allow":{"call":true}},
            {"uri":"com.app.admin.","match":"prefix","allow":{"call":false}},
            {"uri":"com.app.admin.ping","match":"exact","allow":{"call":true}}]}"#,
        );
        assert!(r.may(Action::Call, "com.app.x"));
        assert!(!r.may(Action::Call, "com.app.admin.reset"));
        assert!(r.may(Action::Call, "com.app.admin.ping"));
        assert!(!r.may(Action::Call, "org.other"));
    }

    #[test]
    fn legacy_star_suffix_means_prefix() {
        let r =
            role(r#"{"name":"r","permissions":[{"uri":"com.app.*","allow":{"publish":true}}]}"#);
        assert!(r.may(Action::Publish, "com.app.topic"));
        assert!(!r.may(Action::Subscribe, "com.app.topic"));
    }

    #[test]
    fn prefix_beats_wildcard() {
        let r = role(
            r#"{"name":"r","permissions":[
            {"uri":"com..x","match":"wildcard","allow":{"subscribe":true}},
            {"uri":"com.a","match":"prefix","allow":{"subscribe":false}}]}"#,
        );
        assert!(!r.may(Action::Subscribe, "com.a.x"));
        assert!(r.may(Action::Subscribe, "com.b.x"));
    }
}
