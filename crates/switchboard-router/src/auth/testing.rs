//! Test helpers: an endpoint from an `auth` section in JSON, and HELLOs to drive its state
//! machine with, no socket involved.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use switchboard_proto::{Dict, Value};

use super::limiter::FailureLimiter;
use super::{Authenticated, ConnectionInfo, Denied, EndpointAuth, HelloRequest, HelloStep};
use super::{PendingAuth, SessionId};
use crate::config::AuthConfig;
use crate::realm::RealmRegistry;

/// The session id the test HELLOs get.
pub(super) const SESSION: SessionId = SessionId(0x5eed);

/// An endpoint with the `auth` section `json`.
pub(super) fn endpoint(json: &str) -> EndpointAuth {
    limited_endpoint(json, None)
}

/// An endpoint with the `auth` section `json` and a failure limiter.
pub(super) fn limited_endpoint(json: &str, limiter: Option<Arc<FailureLimiter>>) -> EndpointAuth {
    let cfg: AuthConfig = serde_json::from_str(json).expect("a valid auth section");
    EndpointAuth::from_config(Some(&cfg), Path::new("."), limiter).expect("a usable auth section")
}

/// A HELLO for `realm1` from a TCP client, built up by the test.
pub(super) struct Hello {
    details: Dict,
    pub(super) conn: ConnectionInfo,
    realm: String,
}

impl Hello {
    /// A HELLO listing `methods` in `authmethods`.
    pub(super) fn new(methods: &[&str]) -> Self {
        let mut hello = Self::without_methods();
        let list = methods.iter().map(|m| Value::from(*m)).collect();
        hello
            .details
            .insert("authmethods".into(), Value::List(list));
        hello
    }

    /// A HELLO without `authmethods`.
    pub(super) fn without_methods() -> Self {
        Self {
            details: Dict::new(),
            conn: ConnectionInfo {
                peer_addr: Some(SocketAddr::from(([192, 0, 2, 1], 40_000))),
                transport: "rawsocket",
                ..ConnectionInfo::default()
            },
            realm: "realm1".into(),
        }
    }

    /// Sets HELLO.Details.`key`.
    pub(super) fn detail(mut self, key: &str, value: Value) -> Self {
        self.details.insert(key.into(), value);
        self
    }

    /// Sets HELLO.Details.authid.
    pub(super) fn authid(self, authid: &str) -> Self {
        self.detail("authid", authid.into())
    }

    /// Sets HELLO.Details.authextra.`key`.
    pub(super) fn authextra(mut self, key: &str, value: Value) -> Self {
        let extra = self
            .details
            .entry("authextra".to_owned())
            .or_insert_with(|| Value::Dict(Dict::new()));
        if let Value::Dict(d) = extra {
            d.insert(key.into(), value);
        }
        self
    }

    /// Asks for `realm` instead of `realm1`.
    pub(super) fn realm(mut self, realm: &str) -> Self {
        self.realm = realm.into();
        self
    }

    /// Changes what the connection brings.
    pub(super) fn conn(mut self, change: impl FnOnce(&mut ConnectionInfo)) -> Self {
        change(&mut self.conn);
        self
    }

    /// Hands the HELLO to `auth`.
    pub(super) async fn send(&self, auth: &EndpointAuth) -> Result<HelloStep, Denied> {
        let realms = Arc::new(RealmRegistry::new(Vec::new()));
        auth.hello(HelloRequest {
            conn: &self.conn,
            realms: &realms,
            realm: &self.realm,
            details: &self.details,
            session: SESSION,
        })
        .await
    }
}

/// Sends `hello`, which must be answered with a CHALLENGE for `method`: the exchange and the
/// CHALLENGE extra.
pub(super) async fn expect_challenge(
    auth: &EndpointAuth,
    hello: Hello,
    method: &str,
) -> (PendingAuth, Dict) {
    match hello.send(auth).await {
        Ok(HelloStep::Challenge {
            method: asked,
            extra,
            pending,
        }) => {
            assert_eq!(asked, method);
            (pending, extra)
        }
        other => panic!("expected a {method} CHALLENGE, got {other:?}"),
    }
}

/// Sends `hello`, which must be welcomed at once.
pub(super) async fn expect_welcome(auth: &EndpointAuth, hello: Hello) -> Authenticated {
    match hello.send(auth).await {
        Ok(HelloStep::Welcome(who)) => who,
        other => panic!("expected WELCOME, got {other:?}"),
    }
}

/// Sends `hello`, which must be denied at once.
pub(super) async fn expect_denied(auth: &EndpointAuth, hello: Hello) -> Denied {
    match hello.send(auth).await {
        Err(denied) => denied,
        other => panic!("expected a denial, got {other:?}"),
    }
}
