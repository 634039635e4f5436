//! Dynamic authentication: the router calls an authenticator procedure (registered by any
//! component, on the realm the client joins or on `authenticator-realm`) with
//! `(realm, authid, details)`, as Crossbar does, and reads the principal from its answer.
//!
//! The answer is a role name, or a dictionary with `role` and optionally `authid`, `realm` and
//! `extra` (WELCOME's authextra); for WAMP-CRA, WAMP-SCRAM and WAMP-Cryptosign the dictionary also
//! carries what the router checks the client's answer against (`secret`; the SCRAM credential;
//! `pubkey`), which each method reads in its own `Principal::from_answer`. An ERROR from the
//! authenticator ends the handshake with that error's URI, so applications can tell clients why;
//! an authenticator that is missing, fails to answer in time or answers something else ends it
//! with `wamp.error.authentication_failed`.

use std::sync::Arc;
use std::time::Duration;

use switchboard_proto::{Dict, Value, errors};

use super::{Authenticated, Denied};
use crate::realm::RealmRegistry;
use crate::realm::router_caller::CallFailure;

/// How long the router waits for an authenticator.
pub const AUTHENTICATOR_TIMEOUT: Duration = Duration::from_secs(10);

/// An authenticator procedure.
#[derive(Debug, Clone)]
pub struct Authenticator {
    /// Its URI.
    pub procedure: String,
    /// The realm it is registered on; the joining realm when `None`.
    pub realm: Option<String>,
}

/// What an authenticator is asked about one HELLO. Owned, so that a question can wait for the
/// client's AUTHENTICATE (a dynamic ticket is checked only once the client has sent it).
#[derive(Debug)]
pub(super) struct Query {
    pub(super) realms: Arc<RealmRegistry>,
    /// The realm HELLO asked for.
    pub(super) realm: String,
    /// HELLO's authid.
    pub(super) authid: Option<String>,
    /// Crossbar's details: authmethod, authid, authextra, realm, session, transport.
    pub(super) details: Dict,
}

/// An authenticator's answer.
#[derive(Debug)]
pub(super) struct Answer {
    fields: Dict,
    procedure: String,
    /// HELLO's authid, the identity's authid when the answer names none.
    hello_authid: Option<String>,
}

impl Authenticator {
    /// Calls the authenticator with `query` as `(realm, authid, details)`.
    pub(super) async fn ask(&self, query: Query) -> Result<Answer, Denied> {
        let Query {
            realms,
            realm: hello_realm,
            authid: hello_authid,
            details,
        } = query;
        let realm_name = self.realm.as_deref().unwrap_or(&hello_realm);
        let Some(realm) = realms.get(realm_name) else {
            return Err(Denied::new(
                errors::AUTHENTICATION_FAILED,
                format!("the authenticator's realm {realm_name:?} does not exist"),
            ));
        };
        let authid = hello_authid.as_deref().map_or(Value::Null, Value::from);
        let args = vec![hello_realm.as_str().into(), authid, Value::Dict(details)];
        let result = realm
            .router_call(&self.procedure, args, AUTHENTICATOR_TIMEOUT)
            .await;
        let failed = |why: String| {
            Denied::new(
                errors::AUTHENTICATION_FAILED,
                format!("dynamic authenticator {}: {why}", self.procedure),
            )
        };
        let fields = match result {
            Ok(Value::Str(role)) => {
                let mut d = Dict::new();
                d.insert("role".into(), role.into());
                d
            }
            Ok(Value::Dict(d)) => d,
            Ok(other) => {
                return Err(failed(format!(
                    "expected a role or a dictionary, got {}",
                    type_name(&other)
                )));
            }
            Err(CallFailure::Unavailable(why)) => {
                // The details (a URI, the dealer's wording) are for the operator, not for an
                // unauthenticated client.
                tracing::warn!(
                    "dynamic authenticator {} unavailable: {why}",
                    self.procedure
                );
                return Err(failed("unavailable".into()));
            }
            // The authenticator's own verdict, passed on as Crossbar does.
            Err(CallFailure::Error { uri, message }) => {
                let message = message.unwrap_or_else(|| format!("denied by {}", self.procedure));
                return Err(Denied::by_authenticator(uri, message));
            }
        };
        Ok(Answer {
            fields,
            procedure: self.procedure.clone(),
            hello_authid,
        })
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Int(_) | Value::UInt(_) | Value::Float(_) => "a number",
        Value::Str(_) => "a string",
        Value::Bytes(_) => "binary",
        Value::List(_) => "a list",
        Value::Dict(_) => "a dictionary",
    }
}

impl Answer {
    /// A denial for an answer that lacks what the method needs.
    pub(super) fn malformed(&self, what: &str) -> Denied {
        Denied::new(
            errors::AUTHENTICATION_FAILED,
            format!("dynamic authenticator {}: {what}", self.procedure),
        )
    }

    /// A string field of the answer.
    pub(super) fn field_str(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(Value::as_str)
    }

    /// An unsigned integer field of the answer.
    pub(super) fn field_u64(&self, name: &str) -> Option<u64> {
        self.fields.get(name).and_then(Value::as_u64)
    }

    /// A string field the answer must have.
    pub(super) fn required_str(&self, name: &str) -> Result<String, Denied> {
        self.field_str(name)
            .map(str::to_owned)
            .ok_or_else(|| self.malformed(&format!("the answer has no string {name:?}")))
    }

    /// The identity the answer grants.
    pub(super) fn into_authenticated(self, method: &'static str) -> Result<Authenticated, Denied> {
        let role = self.required_str("role")?;
        let authid = match (self.field_str("authid"), self.hello_authid.as_deref()) {
            (Some(a), _) | (None, Some(a)) => a.to_owned(),
            (None, None) => {
                return Err(self.malformed("no authid: neither HELLO nor the answer has one"));
            }
        };
        let authextra = match self.fields.get("extra") {
            Some(Value::Dict(d)) => d.clone(),
            None | Some(Value::Null) => Dict::new(),
            Some(_) => return Err(self.malformed("`extra` must be a dictionary")),
        };
        Ok(Authenticated {
            authid,
            authrole: role,
            authmethod: method,
            authprovider: "dynamic",
            authextra,
            realm: self.field_str("realm").map(str::to_owned),
        })
    }
}
