//! The router procedures a session answers itself instead of routing them to a callee: its
//! testaments (spec, "Testament": `wamp.session.add_testament`, `flush_testaments`) and the realm's
//! meta API (`realm::meta_api`).

use switchboard_proto::{Uri, UriMatch, Value, errors};

use super::established::Established;
use crate::realm::authz::{Action, CLUSTER_META_PROCEDURE};
use crate::realm::meta_api;

/// How long the other nodes of a cluster have to answer a meta procedure.
const CLUSTER_META_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// An event a session left to be published when it ends (spec, "Testament").
#[derive(Debug)]
pub(super) struct Testament {
    topic: Uri,
    options: switchboard_proto::Dict,
    payload: switchboard_proto::Payload,
}

impl Established {
    /// Publishes the testaments the session left, as it ends.
    pub(super) fn publish_testaments(&mut self) {
        for t in std::mem::take(&mut self.testaments) {
            let _ = self.realm.broker.publish(
                Some(&self.peer),
                &t.options,
                &t.topic,
                &t.payload,
                false,
            );
        }
    }

    /// Calls to the router's own procedures (`wamp.session.add_testament`,
    /// `wamp.session.flush_testaments`); `None` for any other procedure.
    pub(super) async fn router_procedure(
        &mut self,
        procedure: &str,
        payload: &switchboard_proto::Payload,
    ) -> Option<Result<switchboard_proto::Payload, crate::realm::dealer::CallError>> {
        use switchboard_proto::{Dict, Payload, RawValue};
        let serializer = self.peer.serializer();
        let result = |v: Value| {
            Ok(Payload {
                args: RawValue::from_value(serializer, &Value::List(vec![v])).ok(),
                kwargs: None,
            })
        };
        match procedure {
            "wamp.session.add_testament" => {
                let bad = |text: &str| Err(crate::realm::dealer::CallError::invalid_argument(text));
                let args = match payload.args.as_ref().map(RawValue::to_value) {
                    Some(Ok(Value::List(l))) => l,
                    _ => return Some(bad("expected [topic, args, kwargs]")),
                };
                let kwargs = match payload.kwargs.as_ref().map(RawValue::to_value) {
                    Some(Ok(Value::Dict(d))) => d,
                    _ => Dict::new(),
                };
                let Some(topic) = args.first().and_then(Value::as_str) else {
                    return Some(bad("the first argument must be the topic URI"));
                };
                let Ok(topic) = Uri::parse_loose(topic, UriMatch::Exact) else {
                    return Some(bad("the topic is not a valid URI"));
                };
                let options = kwargs
                    .get("publish_options")
                    .and_then(Value::as_dict)
                    .cloned()
                    .unwrap_or_default();
                let may_publish = if self.role.authorizer().is_some() {
                    match Box::pin(self.dynamic_decision(
                        Action::Publish,
                        &topic,
                        UriMatch::Exact,
                        &options,
                    ))
                    .await
                    {
                        Ok(d) => d.allows(Action::Publish),
                        Err(text) => {
                            return Some(Err(crate::realm::dealer::CallError::from_uri(
                                errors::AUTHORIZATION_FAILED,
                                text,
                            )));
                        }
                    }
                } else {
                    self.role.may(Action::Publish, &topic)
                };
                if !may_publish {
                    return Some(Err(crate::realm::dealer::CallError::not_authorized(
                        "the role may not publish to the testament's topic",
                    )));
                }
                let event_args = args.get(1).cloned().unwrap_or(Value::List(Vec::new()));
                let event_kwargs = args.get(2).cloned().unwrap_or(Value::Dict(Dict::new()));
                self.testaments.push(Testament {
                    topic,
                    options,
                    payload: Payload {
                        args: RawValue::from_value(serializer, &event_args).ok(),
                        kwargs: RawValue::from_value(serializer, &event_kwargs).ok(),
                    },
                });
                Some(result(Value::Null))
            }
            "wamp.session.flush_testaments" => {
                let n = self.testaments.len() as u64;
                self.testaments.clear();
                Some(result(n.into()))
            }
            _ if procedure.starts_with("wamp.")
                || procedure == meta_api::INVALIDATE_AUTHORIZATION =>
            {
                let args = match payload.args.as_ref().map(RawValue::to_value) {
                    Some(Ok(Value::List(l))) => l,
                    _ => Vec::new(),
                };
                let kwargs = match payload.kwargs.as_ref().map(RawValue::to_value) {
                    Some(Ok(Value::Dict(d))) => d,
                    _ => Dict::new(),
                };
                let here = meta_api::call(&self.realm, &self.peer, procedure, &args, &kwargs)?;
                let answer = if self.answered_by_cluster(procedure) {
                    self.cluster_wide(procedure, args, kwargs, here).await
                } else {
                    here
                };
                Some(answer.and_then(result))
            }
            _ => None,
        }
    }
}

impl Established {
    /// Whether handling `msg` may wait: a session meta procedure that the other nodes of a
    /// cluster answer too.
    pub(super) fn may_wait(&self, msg: &switchboard_proto::Message) -> bool {
        match msg {
            switchboard_proto::Message::Call { procedure, .. } => {
                procedure.starts_with("wamp.session.") && self.answered_by_cluster(procedure)
            }
            _ => false,
        }
    }

    /// Whether the cluster this node is in (if any) answers `procedure` with this node.
    fn answered_by_cluster(&self, procedure: &str) -> bool {
        self.may_await
            && meta_api::CLUSTER_WIDE.contains(&procedure)
            && !self.peer.link().is_some_and(|l| l.shares_session_ids)
            && self.realm.dealer.matching(CLUSTER_META_PROCEDURE).is_some()
    }

    /// A session meta procedure answered for the whole cluster: this node's answer `here`
    /// merged with the other nodes', which the cluster's end of this realm gathers
    /// ([`CLUSTER_META_PROCEDURE`], registered only in cluster mode). Where they do not answer,
    /// the answer is this node's alone.
    async fn cluster_wide(
        &self,
        procedure: &str,
        args: Vec<Value>,
        kwargs: switchboard_proto::Dict,
        here: Result<Value, crate::realm::dealer::CallError>,
    ) -> Result<Value, crate::realm::dealer::CallError> {
        let asked = vec![
            procedure.into(),
            Value::List(args),
            Value::Dict(kwargs),
            self.peer.id().0.into(),
        ];
        let there = match self
            .realm
            .router_call(CLUSTER_META_PROCEDURE, asked, CLUSTER_META_TIMEOUT)
            .await
        {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(realm = %self.realm.name(), "{procedure}: the other nodes did not answer: {e}");
                return here;
            }
        };
        meta_api::merge_cluster_answer(procedure, here, there)
    }
}
