//! The WAMP meta API (spec, "Session Meta API", "Registration Meta API", "Subscription Meta
//! API"): procedures the router answers itself about a realm's sessions, registrations and
//! subscriptions, and the kill and revocation procedures (their meta events are `meta_events`'s).
//!
//! Meta procedures are called like any other (and authorized like any other); the session task
//! answers them directly instead of routing them to a callee.

use switchboard_proto::{Dict, Id, UriMatch, Value, errors};

use super::Realm;
use super::dealer::CallError;
use super::meta_events::session_details;
use crate::peer::{Peer, SessionId};

fn no_such_session(id: u64) -> CallError {
    CallError::from_uri(
        errors::NO_SUCH_SESSION,
        format!("no session {id} in this realm"),
    )
}

fn no_such_registration(id: u64) -> CallError {
    CallError::from_uri(
        errors::NO_SUCH_REGISTRATION,
        format!("no registration {id}"),
    )
}

fn no_such_subscription(id: u64) -> CallError {
    CallError::from_uri(
        errors::NO_SUCH_SUBSCRIPTION,
        format!("no subscription {id}"),
    )
}

fn ids(list: Vec<Id>) -> Value {
    Value::List(list.into_iter().map(Value::from).collect())
}

fn by_policy(lists: [Vec<Id>; 3]) -> Value {
    let [exact, prefix, wildcard] = lists;
    let mut d = Dict::new();
    d.insert("exact".into(), ids(exact));
    d.insert("prefix".into(), ids(prefix));
    d.insert("wildcard".into(), ids(wildcard));
    Value::Dict(d)
}

fn sessions_of(peers: Vec<Peer>) -> Value {
    ids(peers.into_iter().map(|p| p.id().0).collect())
}

/// The match policy of a lookup's options dict (`{"match": "prefix"}`), exact by default.
fn lookup_policy(options: Option<&Value>) -> UriMatch {
    options
        .and_then(Value::as_dict)
        .and_then(|d| d.get("match"))
        .and_then(Value::as_str)
        .and_then(UriMatch::parse)
        .unwrap_or(UriMatch::Exact)
}

/// Ends other sessions with GOODBYE `reason` (default `wamp.close.killed`); returns how many.
fn kill(peers: impl Iterator<Item = Peer>, kwargs: &Dict) -> u64 {
    let reason = kwargs
        .get("reason")
        .and_then(Value::as_str)
        .unwrap_or(errors::CLOSE_KILLED);
    let message = kwargs
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut n = 0;
    for p in peers {
        p.kill(reason, message.clone());
        n += 1;
    }
    n
}

/// The session meta procedures a cluster answers for all its nodes (the others' part gathered by
/// the cluster's end, `authz::CLUSTER_META_PROCEDURE`).
pub const CLUSTER_WIDE: &[&str] = &[
    "wamp.session.count",
    "wamp.session.list",
    "wamp.session.get",
    "wamp.session.kill",
    "wamp.session.kill_by_authid",
    "wamp.session.kill_by_authrole",
    "wamp.session.kill_all",
];

/// Merges this node's answer to a [`CLUSTER_WIDE`] procedure with the other nodes' (`there`:
/// a count, a list of session ids, or a session's details, already merged among them).
pub fn merge_cluster_answer(
    procedure: &str,
    here: Result<Value, CallError>,
    there: Value,
) -> Result<Value, CallError> {
    match procedure {
        "wamp.session.list" => here.map(|v| match (v, there) {
            (Value::List(mut mine), Value::List(theirs)) => {
                mine.extend(theirs);
                Value::List(mine)
            }
            (v, _) => v,
        }),
        "wamp.session.get" => match (here, there) {
            (Err(_), details @ Value::Dict(_)) => Ok(details),
            (here, _) => here,
        },
        "wamp.session.kill" => match (here, there.as_u64()) {
            (Err(_), Some(n)) if n > 0 => Ok(n.into()),
            (here, _) => here,
        },
        // Counts: sessions, or sessions killed.
        _ => here.map(|v| match (v.as_u64(), there.as_u64()) {
            (Some(a), Some(b)) => (a + b).into(),
            (_, _) => v,
        }),
    }
}

/// The router procedure that drops cached dynamic authorization decisions.
pub const INVALIDATE_AUTHORIZATION: &str = "switchboard.authorization.invalidate";

/// Answers a meta procedure called by `caller`; `None` when `procedure` is not one.
pub fn call(
    realm: &Realm,
    caller: &Peer,
    procedure: &str,
    args: &[Value],
    kwargs: &Dict,
) -> Option<Result<Value, CallError>> {
    let id_arg = |i: usize| args.get(i).and_then(Value::as_u64);
    let str_arg = |i: usize| args.get(i).and_then(Value::as_str);
    let bad = |what: &str| {
        Err(CallError::invalid_argument(format!(
            "{procedure}: expected {what}"
        )))
    };
    let others = || {
        realm
            .sessions()
            .into_iter()
            .filter(move |p| p.id() != caller.id())
    };
    let roles_filter = |peers: Vec<Peer>| -> Vec<Peer> {
        match args.first().and_then(Value::as_list) {
            Some(roles) => peers
                .into_iter()
                .filter(|p| {
                    roles
                        .iter()
                        .any(|r| r.as_str() == Some(p.identity().authrole.as_str()))
                })
                .collect(),
            None => peers,
        }
    };
    Some(match procedure {
        "wamp.session.count" => Ok((roles_filter(realm.sessions()).len() as u64).into()),
        "wamp.session.list" => Ok(sessions_of(roles_filter(realm.sessions()))),
        "wamp.session.get" => match id_arg(0) {
            Some(id) => realm
                .session(SessionId(id))
                .map(|p| session_details(&p))
                .ok_or_else(|| no_such_session(id)),
            None => bad("a session id"),
        },
        "wamp.session.kill" => match id_arg(0) {
            Some(id) if id == caller.id().0 => {
                Err(CallError::invalid_argument("a session cannot kill itself"))
            }
            Some(id) => match realm.session(SessionId(id)) {
                Some(p) => Ok(kill(std::iter::once(p), kwargs).into()),
                None => Err(no_such_session(id)),
            },
            None => bad("a session id"),
        },
        "wamp.session.kill_by_authid" => match str_arg(0) {
            Some(authid) => {
                Ok(kill(others().filter(|p| p.identity().authid == authid), kwargs).into())
            }
            None => bad("an authid"),
        },
        "wamp.session.kill_by_authrole" => match str_arg(0) {
            Some(role) => {
                Ok(kill(others().filter(|p| p.identity().authrole == role), kwargs).into())
            }
            None => bad("an authrole"),
        },
        "wamp.session.kill_all" => Ok(kill(others(), kwargs).into()),
        // Drops cached dynamic authorization decisions: of one session, or of every session of
        // the realm; answers how many sessions were affected.
        INVALIDATE_AUTHORIZATION => match args.first() {
            None => {
                let sessions = realm.sessions();
                sessions.iter().for_each(Peer::invalidate_authorization);
                Ok((sessions.len() as u64).into())
            }
            Some(v) => match v.as_u64() {
                Some(id) => match realm.session(SessionId(id)) {
                    Some(p) => {
                        p.invalidate_authorization();
                        Ok(1u64.into())
                    }
                    None => Err(no_such_session(id)),
                },
                None => bad("no argument or a session id"),
            },
        },

        "wamp.registration.list" => Ok(by_policy(realm.dealer.ids_by_policy())),
        "wamp.registration.lookup" => match str_arg(0) {
            Some(uri) => Ok(realm
                .dealer
                .lookup(uri, lookup_policy(args.get(1)))
                .map_or(Value::Null, Value::from)),
            None => bad("a procedure URI"),
        },
        "wamp.registration.match" => match str_arg(0) {
            Some(uri) => Ok(realm.dealer.matching(uri).map_or(Value::Null, Value::from)),
            None => bad("a procedure URI"),
        },
        "wamp.registration.get" => match id_arg(0) {
            Some(id) => realm
                .dealer
                .get(id)
                .map(|(uri, policy, invoke)| {
                    let mut d = Dict::new();
                    d.insert("id".into(), id.into());
                    d.insert("uri".into(), uri.as_str().into());
                    d.insert("match".into(), policy.as_str().into());
                    d.insert("invoke".into(), invoke.as_str().into());
                    Value::Dict(d)
                })
                .ok_or_else(|| no_such_registration(id)),
            None => bad("a registration id"),
        },
        "wamp.registration.list_callees" => match id_arg(0) {
            Some(id) => realm
                .dealer
                .callees(id)
                .map(sessions_of)
                .ok_or_else(|| no_such_registration(id)),
            None => bad("a registration id"),
        },
        "wamp.registration.count_callees" => match id_arg(0) {
            Some(id) => realm
                .dealer
                .callees(id)
                .map(|c| (c.len() as u64).into())
                .ok_or_else(|| no_such_registration(id)),
            None => bad("a registration id"),
        },
        "wamp.registration.remove_callee" => match (id_arg(0), id_arg(1)) {
            (Some(id), Some(session)) => {
                if realm.revoke_registration(id, SessionId(session), kwargs.get("reason")) {
                    Ok(Value::Null)
                } else {
                    Err(no_such_registration(id))
                }
            }
            _ => bad("a registration id and a session id"),
        },

        "wamp.subscription.list" => Ok(by_policy(realm.broker.ids_by_policy())),
        "wamp.subscription.lookup" => match str_arg(0) {
            Some(uri) => Ok(realm
                .broker
                .lookup(uri, lookup_policy(args.get(1)))
                .map_or(Value::Null, Value::from)),
            None => bad("a topic URI"),
        },
        "wamp.subscription.match" => match str_arg(0) {
            Some(uri) => Ok(ids(realm.broker.matching(uri))),
            None => bad("a topic URI"),
        },
        "wamp.subscription.get" => match id_arg(0) {
            Some(id) => realm
                .broker
                .get(id)
                .map(|(uri, policy)| {
                    let mut d = Dict::new();
                    d.insert("id".into(), id.into());
                    d.insert("uri".into(), uri.as_str().into());
                    d.insert("match".into(), policy.as_str().into());
                    Value::Dict(d)
                })
                .ok_or_else(|| no_such_subscription(id)),
            None => bad("a subscription id"),
        },
        "wamp.subscription.list_subscribers" => match id_arg(0) {
            Some(id) => realm
                .broker
                .subscribers(id)
                .map(sessions_of)
                .ok_or_else(|| no_such_subscription(id)),
            None => bad("a subscription id"),
        },
        "wamp.subscription.count_subscribers" => match id_arg(0) {
            Some(id) => realm
                .broker
                .subscribers(id)
                .map(|s| (s.len() as u64).into())
                .ok_or_else(|| no_such_subscription(id)),
            None => bad("a subscription id"),
        },
        "wamp.subscription.get_events" => match id_arg(0) {
            Some(id) => {
                let limit = id_arg(1).unwrap_or(u64::MAX) as usize;
                match realm.broker.history(id, limit) {
                    Some(events) => Ok(Value::List(
                        events.into_iter().map(|e| stored_event(id, e)).collect(),
                    )),
                    None => Err(no_such_subscription(id)),
                }
            }
            None => bad("a subscription id"),
        },
        "wamp.subscription.remove_subscriber" => match (id_arg(0), id_arg(1)) {
            (Some(id), Some(session)) => {
                if realm.revoke_subscription(id, SessionId(session), kwargs.get("reason")) {
                    Ok(Value::Null)
                } else {
                    Err(no_such_subscription(id))
                }
            }
            _ => bad("a subscription id and a session id"),
        },
        _ => return None,
    })
}

/// A stored event as `wamp.subscription.get_events` returns it.
fn stored_event(subscription: Id, e: super::broker::StoredEvent) -> Value {
    let mut d = Dict::new();
    d.insert("timestamp".into(), e.timestamp_ms.into());
    d.insert("subscription".into(), subscription.into());
    d.insert("publication".into(), e.publication.into());
    d.insert("topic".into(), e.topic.into());
    let decode = |r: Option<switchboard_proto::RawValue>| r.and_then(|r| r.to_value().ok());
    d.insert(
        "args".into(),
        decode(e.payload.args).unwrap_or(Value::List(Vec::new())),
    );
    d.insert(
        "kwargs".into(),
        decode(e.payload.kwargs).unwrap_or(Value::Dict(Dict::new())),
    );
    Value::Dict(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_answers_add_up_join_and_fill_in() {
        let ids = |l: &[u64]| Value::List(l.iter().map(|i| Value::from(*i)).collect());
        let merged = merge_cluster_answer("wamp.session.list", Ok(ids(&[1, 2])), ids(&[3]));
        assert_eq!(merged.unwrap(), ids(&[1, 2, 3]));
        let merged = merge_cluster_answer("wamp.session.count", Ok(2u64.into()), 5u64.into());
        assert_eq!(merged.unwrap(), Value::from(7u64));
        let merged = merge_cluster_answer("wamp.session.kill_all", Ok(1u64.into()), 2u64.into());
        assert_eq!(merged.unwrap(), Value::from(3u64));
        // A session of another node: its details, or killed there.
        let mut details = Dict::new();
        details.insert("session".into(), 9u64.into());
        let merged = merge_cluster_answer(
            "wamp.session.get",
            Err(no_such_session(9)),
            Value::Dict(details.clone()),
        );
        assert_eq!(merged.unwrap(), Value::Dict(details));
        let merged =
            merge_cluster_answer("wamp.session.kill", Err(no_such_session(9)), 1u64.into());
        assert_eq!(merged.unwrap(), Value::from(1u64));
        // Nowhere: the error stands; a node's own answer is kept where others say nothing.
        assert!(
            merge_cluster_answer("wamp.session.kill", Err(no_such_session(9)), 0u64.into())
                .is_err()
        );
        assert!(
            merge_cluster_answer("wamp.session.get", Err(no_such_session(9)), Value::Null).is_err()
        );
        let merged = merge_cluster_answer("wamp.session.count", Ok(2u64.into()), Value::Null);
        assert_eq!(merged.unwrap(), Value::from(2u64));
    }
}
