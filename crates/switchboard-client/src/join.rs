//! Joining a realm over an open transport (spec, "Session Establishment"): HELLO with the client's
//! roles and features, then CHALLENGE/AUTHENTICATE rounds until WELCOME or ABORT.

use switchboard_proto::{Dict, Id, Message, Serializer, Value, codec, errors};
use switchboard_transport::Transport;

use crate::Error;
use crate::auth::{self, Credential};

/// What HELLO asks for: the realm and how to authenticate.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinOptions {
    /// The realm to join.
    pub realm: String,
    /// HELLO.Details.authid: who the client claims to be (routers ignore it for anonymous
    /// sessions).
    pub authid: Option<String>,
    /// HELLO.Details.authextra (the Cryptosign public key is added from the credential).
    pub authextra: Dict,
    /// The credentials to offer, in order of preference; empty for an anonymous session.
    pub credentials: Vec<Credential>,
}

impl JoinOptions {
    /// Joining `realm` anonymously.
    pub fn new(realm: impl Into<String>) -> Self {
        Self {
            realm: realm.into(),
            authid: None,
            authextra: Dict::new(),
            credentials: Vec::new(),
        }
    }

    /// The same options, offering one more credential after those already given.
    pub fn with_credential(mut self, credential: Credential) -> Self {
        self.credentials.push(credential);
        self
    }

    /// The same options, claiming `authid`.
    pub fn with_authid(self, authid: impl Into<String>) -> Self {
        Self {
            authid: Some(authid.into()),
            ..self
        }
    }

    /// Ticket authentication as `authid`.
    pub fn with_ticket(self, authid: impl Into<String>, ticket: impl Into<String>) -> Self {
        self.with_authid(authid)
            .with_credential(Credential::Ticket(ticket.into()))
    }

    /// WAMP-CRA authentication as `authid`.
    pub fn with_wampcra(self, authid: impl Into<String>, secret: impl Into<String>) -> Self {
        self.with_authid(authid)
            .with_credential(Credential::WampCra {
                secret: secret.into(),
            })
    }

    /// Cryptosign authentication with the Ed25519 key whose seed is `secret_key` (the router
    /// finds the principal by the public key when no authid is given).
    pub fn with_cryptosign(self, secret_key: [u8; 32]) -> Self {
        self.with_credential(Credential::Cryptosign { secret_key })
    }
}

/// The session the router opened.
#[derive(Debug)]
pub(crate) struct Welcome {
    pub(crate) session: Id,
    pub(crate) details: Dict,
}

/// The client's roles and the features it implements (spec, "Client: Role and Feature
/// Announcement"). The router reads `callee.features.call_canceling` and
/// `progressive_call_results` to decide whether to send INTERRUPT and progressive results.
fn roles() -> Dict {
    let role = |features: &[&str]| {
        let mut f = Dict::new();
        for name in features {
            f.insert((*name).into(), Value::Bool(true));
        }
        let mut r = Dict::new();
        r.insert("features".into(), Value::Dict(f));
        Value::Dict(r)
    };
    let mut roles = Dict::new();
    roles.insert(
        "caller".into(),
        role(&[
            "progressive_call_results",
            "call_canceling",
            "call_timeout",
            "caller_identification",
        ]),
    );
    roles.insert(
        "callee".into(),
        role(&[
            "progressive_call_results",
            "call_canceling",
            "pattern_based_registration",
            "shared_registration",
            "caller_identification",
        ]),
    );
    roles.insert(
        "publisher".into(),
        role(&[
            "publisher_exclusion",
            "subscriber_blackwhite_listing",
            "publisher_identification",
        ]),
    );
    roles.insert(
        "subscriber".into(),
        role(&["pattern_based_subscription", "publisher_identification"]),
    );
    roles
}

/// HELLO for `join`.
pub(crate) fn hello(join: &JoinOptions) -> Result<Message, Error> {
    let mut details = Dict::new();
    details.insert(
        "agent".into(),
        concat!("switchboard-client-", env!("CARGO_PKG_VERSION")).into(),
    );
    details.insert("roles".into(), Value::Dict(roles()));
    // spec, "Authentication": without authmethods the router treats the client as anonymous.
    if !join.credentials.is_empty() {
        details.insert(
            "authmethods".into(),
            Value::List(auth::authmethods(&join.credentials)),
        );
    }
    if let Some(authid) = &join.authid {
        details.insert("authid".into(), authid.as_str().into());
    }
    let authextra = auth::authextra(&join.credentials, &join.authextra)?;
    if !authextra.is_empty() {
        details.insert("authextra".into(), Value::Dict(authextra));
    }
    Ok(Message::Hello {
        realm: join.realm.clone(),
        details,
    })
}

/// Runs the opening handshake on `transport`.
pub(crate) async fn handshake<T: Transport>(
    transport: &mut T,
    join: &JoinOptions,
) -> Result<Welcome, Error> {
    let s = transport.serializer();
    send(transport, s, &hello(join)?).await?;
    loop {
        let bytes = transport.recv().await?.ok_or_else(|| {
            Error::Protocol("the router closed the connection during the handshake".into())
        })?;
        let msg = codec::decode(s, &bytes).map_err(|e| Error::Protocol(e.to_string()))?;
        match msg {
            Message::Welcome { session, details } => return Ok(Welcome { session, details }),
            Message::Abort { reason, details } => return Err(Error::Aborted { reason, details }),
            Message::Challenge { method, extra } => {
                match auth::answer(&join.credentials, &method, &extra) {
                    Ok(signature) => {
                        let authenticate = Message::Authenticate {
                            signature,
                            extra: Dict::new(),
                        };
                        send(transport, s, &authenticate).await?;
                    }
                    Err(e) => {
                        // spec, "Authentication": a client that cannot answer gives up with ABORT.
                        let abort = Message::abort(errors::AUTHENTICATION_FAILED, e.to_string());
                        let _ = send(transport, s, &abort).await;
                        transport.close().await;
                        return Err(e);
                    }
                }
            }
            other => {
                let why = format!(
                    "expected WELCOME, CHALLENGE or ABORT, got {}",
                    other.message_type().name()
                );
                let abort = Message::abort(errors::PROTOCOL_VIOLATION, why.clone());
                let _ = send(transport, s, &abort).await;
                transport.close().await;
                return Err(Error::Protocol(why));
            }
        }
    }
}

async fn send<T: Transport>(transport: &mut T, s: Serializer, msg: &Message) -> Result<(), Error> {
    let bytes = codec::encode(s, msg).map_err(|e| Error::Protocol(e.to_string()))?;
    transport.feed(bytes).await?;
    transport.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(hello: &Message, role: &str) -> Vec<String> {
        let Message::Hello { details, .. } = hello else {
            panic!("not HELLO")
        };
        details["roles"].as_dict().unwrap()[role].as_dict().unwrap()["features"]
            .as_dict()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    #[test]
    fn hello_announces_the_features_the_router_acts_on() {
        let h = hello(&JoinOptions::new("realm1")).unwrap();
        let callee = features(&h, "callee");
        assert!(callee.contains(&"call_canceling".to_owned()));
        assert!(callee.contains(&"progressive_call_results".to_owned()));
        assert!(features(&h, "caller").contains(&"call_timeout".to_owned()));
        let Message::Hello { realm, details } = h else {
            unreachable!()
        };
        assert_eq!(realm, "realm1");
        assert!(!details.contains_key("authmethods"), "anonymous by default");
    }

    #[test]
    fn hello_carries_authid_methods_and_extra() {
        let mut extra = Dict::new();
        extra.insert("custom".into(), 1u64.into());
        let join = JoinOptions {
            authextra: extra,
            ..JoinOptions::new("r").with_ticket("joe", "secret")
        };
        let Message::Hello { details, .. } = hello(&join).unwrap() else {
            unreachable!()
        };
        assert_eq!(details["authid"], Value::from("joe"));
        assert_eq!(
            details["authmethods"],
            Value::List(vec![Value::from("ticket")])
        );
        assert_eq!(
            details["authextra"].as_dict().unwrap()["custom"],
            1u64.into()
        );
        assert!(!format!("{join:?}").contains("secret"));
    }
}
