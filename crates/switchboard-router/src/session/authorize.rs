//! Authorization of a session's actions: the role's static permissions through the session's own
//! decision cache, or the role's dynamic authorizer (called through the router's caller, with its
//! cacheable answers kept per session and invalidated by epoch).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use switchboard_proto::{Id, MessageType, Uri, UriMatch, Value, errors};

use super::established::Established;
use crate::realm::authz::{Action, Decision, Role};

/// The dynamic authorizer's side of a session.
#[derive(Debug, Default)]
pub(super) struct DynamicAuthorization {
    /// Who this session is, as its dynamic authorizer is told.
    pub(super) details: switchboard_proto::Dict,
    /// Decisions that allowed caching, by action and match policy, then URI (looked up by `&str`,
    /// so a cached decision costs no allocation).
    pub(super) cache: HashMap<(Action, UriMatch), HashMap<Uri, CachedDecision>>,
}

/// A dynamic authorizer's decision, kept while it is valid.
#[derive(Debug, Clone, Copy)]
pub(super) struct CachedDecision {
    decision: Decision,
    /// The session's authorization epoch when it was made; invalidation bumps the epoch.
    epoch: u64,
    /// When the decision expires; `None` keeps it for the session's lifetime.
    until: Option<Instant>,
}

/// The longest cache lifetime an authorizer's answer is held to; longer ones last the session.
const MAX_CACHE_SECONDS: u64 = 365 * 24 * 3600;

/// How long the router waits for a dynamic authorizer before refusing the action.
pub const AUTHORIZER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How many URIs a session's authorization cache holds before it starts over.
const AUTHZ_CACHE_ENTRIES: usize = 1024;
impl Established {
    /// Looks the session's role up again when a config reload replaced the realm's roles, and
    /// drops every decision cached under the old ones: the next action is checked against the new
    /// permissions. One atomic load when nothing changed. A role that is gone leaves the session
    /// allowed nothing (the reload closes such sessions).
    pub(super) fn follow_role_changes(&mut self) {
        let epoch = self.realm.roles_epoch();
        if epoch == self.role_epoch {
            return;
        }
        self.role_epoch = epoch;
        self.authz_cache.clear();
        let name = self.role.name().to_owned();
        self.role = match self.realm.role(&name) {
            Some(role) => role,
            // The router's own sessions hold the built-in role, which no config defines.
            None if name == crate::realm::authz::TRUSTED_ROLE => return,
            None => Arc::new(Role::deny_all(&name)),
        };
        match (&mut self.dynamic, self.role.authorizer()) {
            (Some(dynamic), Some(_)) => dynamic.cache.clear(),
            (None, Some(_)) => {
                // Statically authorized until now: the authorizer learns who the session is
                // (without the transport details, which the session did not keep).
                let who = self.peer.identity();
                let mut d = switchboard_proto::Dict::new();
                d.insert("session".into(), who.session.0.into());
                d.insert("authid".into(), who.authid.as_str().into());
                d.insert("authrole".into(), who.authrole.as_str().into());
                d.insert("authmethod".into(), who.authmethod.into());
                d.insert("authprovider".into(), who.authprovider.into());
                self.dynamic = Some(Box::new(DynamicAuthorization {
                    details: d,
                    cache: Default::default(),
                }));
            }
            (_, None) => self.dynamic = None,
        }
    }

    /// Checks an exact URI and the role's permission for `action`, through the session's decision
    /// cache; on failure answers with ERROR and returns `None`. A cache hit costs one hash lookup:
    /// no lock, no allocation.
    pub(super) async fn authorize(
        &mut self,
        kind: MessageType,
        request: Id,
        uri: &str,
        action: Action,
        options: &switchboard_proto::Dict,
    ) -> Option<(Uri, Decision)> {
        self.follow_role_changes();
        // The link protocol is part of what a role that may link is allowed, whatever its
        // permissions or authorizer say about other URIs.
        if action == Action::Call
            && crate::realm::authz::is_link_protocol(uri)
            && self.peer.link().is_some()
            && let Ok(uri) = Uri::parse_loose(uri, UriMatch::Exact)
        {
            return Some((uri, Decision::call_only()));
        }
        if self.role.authorizer().is_some() {
            if crate::realm::authz::reserved_for_router(uri, self.role.name()) {
                let text = format!("{uri} is reserved for the router");
                self.deny(kind, request, action, &text);
                return None;
            }
            if let Some((uri, decision)) = self.cached_dynamic(action, UriMatch::Exact, uri) {
                if decision.allows(action) {
                    return Some((uri, decision));
                }
                self.deny_dynamically(kind, request, &uri, action);
                return None;
            }
            let uri = match Uri::parse_loose(uri, UriMatch::Exact) {
                Ok(u) => u,
                Err(e) => {
                    self.reply_error(kind, request, errors::INVALID_URI, &e.to_string());
                    return None;
                }
            };
            // Boxed: the authorizer call's future is large, and inlining it would grow every
            // session's task for the sake of the dynamic roles only.
            let decision = Box::pin(self.authorize_dynamically(
                kind,
                request,
                &uri,
                UriMatch::Exact,
                action,
                options,
            ))
            .await?;
            return Some((uri, decision));
        }
        let cached = self
            .authz_cache
            .get_key_value(uri)
            .map(|(u, d)| (u.clone(), *d));
        let (uri, decision) = match cached {
            Some(hit) => hit,
            None => {
                // Only valid URIs enter the cache, so a hit needs no URI check either.
                let uri = match Uri::parse_loose(uri, UriMatch::Exact) {
                    Ok(u) => u,
                    Err(e) => {
                        self.reply_error(kind, request, errors::INVALID_URI, &e.to_string());
                        return None;
                    }
                };
                // (Checked on a cache miss only: the decision is cached with the URI.)
                let decision =
                    if crate::realm::authz::reserved_for_router(uri.as_str(), self.role.name()) {
                        Decision::deny_all()
                    } else {
                        self.role.decide(&uri)
                    };
                if self.authz_cache.len() >= AUTHZ_CACHE_ENTRIES {
                    self.authz_cache.clear();
                }
                self.authz_cache.insert(uri.clone(), decision);
                (uri, decision)
            }
        };
        if !decision.allows(action) {
            let text =
                format!("role {:?} may not {action:?} {uri}", self.role.name()).to_lowercase();
            self.deny(kind, request, action, &text);
            return None;
        }
        Some((uri, decision))
    }

    /// [`Self::authorize`] for SUBSCRIBE and REGISTER, whose URI may be a prefix or wildcard
    /// pattern: the pattern must be valid under its policy, and the role must allow the action on
    /// the pattern itself (as Crossbar checks it). Patterns bypass the decision cache.
    pub(super) async fn authorize_pattern(
        &mut self,
        kind: MessageType,
        request: Id,
        uri: &str,
        policy: UriMatch,
        action: Action,
        options: &switchboard_proto::Dict,
    ) -> Option<Uri> {
        self.follow_role_changes();
        if policy == UriMatch::Exact {
            return self
                .authorize(kind, request, uri, action, options)
                .await
                .map(|(u, _)| u);
        }
        let pattern = match Uri::parse_loose(uri, policy) {
            Ok(u) => u,
            Err(e) => {
                self.reply_error(kind, request, errors::INVALID_URI, &e.to_string());
                return None;
            }
        };
        if crate::realm::authz::reserved_for_router(uri, self.role.name()) {
            let text = format!("{uri} is reserved for the router");
            self.deny(kind, request, action, &text);
            return None;
        }
        if self.role.authorizer().is_some() {
            Box::pin(self.authorize_dynamically(kind, request, &pattern, policy, action, options))
                .await?;
            return Some(pattern);
        }
        if !self.role.decide(&pattern).allows(action) {
            let text =
                format!("role {:?} may not {action:?} {pattern}", self.role.name()).to_lowercase();
            self.deny(kind, request, action, &text);
            return None;
        }
        Some(pattern)
    }

    /// Asks the role's dynamic authorizer about `action` on `uri` (or serves a cached answer);
    /// on refusal or failure answers with ERROR and returns `None`.
    async fn authorize_dynamically(
        &mut self,
        kind: MessageType,
        request: Id,
        uri: &Uri,
        policy: UriMatch,
        action: Action,
        options: &switchboard_proto::Dict,
    ) -> Option<Decision> {
        match self.dynamic_decision(action, uri, policy, options).await {
            Ok(d) if d.allows(action) => Some(d),
            Ok(_) => {
                self.deny_dynamically(kind, request, uri, action);
                None
            }
            Err(text) => {
                self.reply_error(kind, request, errors::AUTHORIZATION_FAILED, &text);
                None
            }
        }
    }

    /// Answers with ERROR `wamp.error.not_authorized` and counts the denial for the metrics.
    fn deny(&self, kind: MessageType, request: Id, action: Action, text: &str) {
        self.realm.stats.denied(action);
        self.reply_error(kind, request, errors::NOT_AUTHORIZED, text);
    }

    fn deny_dynamically(&self, kind: MessageType, request: Id, uri: &Uri, action: Action) {
        let text = format!(
            "the authorizer of role {:?} denied {} on {uri}",
            self.role.name(),
            action.as_str()
        );
        self.deny(kind, request, action, &text);
    }

    /// A still valid cached decision of the dynamic authorizer about `action` on `uri`, with the
    /// cached (validated) URI.
    fn cached_dynamic(
        &self,
        action: Action,
        policy: UriMatch,
        uri: &str,
    ) -> Option<(Uri, Decision)> {
        let dynamic = self.dynamic.as_ref()?;
        let (cached_uri, hit) = dynamic.cache.get(&(action, policy))?.get_key_value(uri)?;
        let valid = hit.epoch == self.peer.authorization_epoch()
            && hit.until.is_none_or(|t| Instant::now() < t);
        valid.then(|| (cached_uri.clone(), hit.decision))
    }

    /// The dynamic authorizer's decision: from the cache while a cached one is valid, else by
    /// calling the authorizer with `(session, uri, action, options)` as Crossbar does. The answer
    /// is a boolean, or `{"allow", "disclose", "cache"}` where `cache` is `true` (keep it for the
    /// session) or a number of seconds. `Err` says why there is no decision.
    pub(super) async fn dynamic_decision(
        &mut self,
        action: Action,
        uri: &Uri,
        policy: UriMatch,
        options: &switchboard_proto::Dict,
    ) -> Result<Decision, String> {
        if let Some((_, decision)) = self.cached_dynamic(action, policy, uri.as_str()) {
            return Ok(decision);
        }
        let epoch = self.peer.authorization_epoch();
        let (Some(authorizer), Some(dynamic)) = (
            self.role.authorizer().map(str::to_owned),
            self.dynamic.as_mut(),
        ) else {
            return Err("the role has no authorizer".into());
        };
        let args = vec![
            Value::Dict(dynamic.details.clone()),
            uri.as_str().into(),
            action.as_str().into(),
            Value::Dict(options.clone()),
        ];
        let answer = self
            .realm
            .router_call(&authorizer, args, AUTHORIZER_TIMEOUT)
            .await
            .map_err(|e| format!("authorizer {authorizer} failed: {e}"))?;
        let malformed = || {
            format!(
                "authorizer {authorizer} answered neither a boolean nor {{\"allow\": boolean, ...}}"
            )
        };
        let (allowed, disclose, keep) = match &answer {
            Value::Bool(b) => (*b, false, None),
            Value::Dict(d) => {
                let allowed = d
                    .get("allow")
                    .and_then(Value::as_bool)
                    .ok_or_else(malformed)?;
                let disclose = d.get("disclose").and_then(Value::as_bool).unwrap_or(false);
                let keep = match d.get("cache") {
                    None | Some(Value::Null) | Some(Value::Bool(false)) => None,
                    Some(Value::Bool(true)) => Some(None),
                    // Lifetimes beyond a year are kept for the session: adding them to the clock
                    // could overflow, and no session lives that long.
                    Some(Value::UInt(secs)) if *secs > 0 => Some(
                        (*secs <= MAX_CACHE_SECONDS)
                            .then(|| Instant::now() + std::time::Duration::from_secs(*secs)),
                    ),
                    Some(Value::Float(secs)) if secs.is_finite() && *secs > 0.0 => Some(
                        (*secs <= MAX_CACHE_SECONDS as f64)
                            .then(|| Instant::now() + std::time::Duration::from_secs_f64(*secs)),
                    ),
                    Some(Value::UInt(_)) | Some(Value::Float(_)) => None,
                    Some(_) => return Err(malformed()),
                };
                (allowed, disclose, keep)
            }
            _ => return Err(malformed()),
        };
        let decision = Decision::for_action(action, allowed, disclose);
        if let (Some(until), Some(dynamic)) = (keep, self.dynamic.as_mut()) {
            let cache = dynamic.cache.entry((action, policy)).or_default();
            if cache.len() >= AUTHZ_CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(
                uri.clone(),
                CachedDecision {
                    decision,
                    epoch,
                    until,
                },
            );
        }
        Ok(decision)
    }
}
