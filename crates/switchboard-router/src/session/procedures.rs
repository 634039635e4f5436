//! The router procedures a session answers itself instead of routing them to a callee: its
//! testaments (spec, "Testament": `wamp.session.add_testament`, `flush_testaments`) and the realm's
//! meta API (`realm::meta_api`).

use switchboard_proto::{Uri, UriMatch, Value, errors};

use super::established::Established;
use crate::realm::authz::Action;
use crate::realm::meta_api;

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
                meta_api::call(&self.realm, &self.peer, procedure, &args, &kwargs)
                    .map(|r| r.and_then(result))
            }
            _ => None,
        }
    }
}
