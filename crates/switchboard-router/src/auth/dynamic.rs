//! Dynamic authentication: the router calls an authenticator procedure (registered by any
//! component, on the realm the client joins or on `authenticator-realm`) with
//! `(realm, authid, details)`, as Crossbar does, and reads the principal from its answer.
//!
//! The answer is a role name, or a dictionary with `role` and optionally `authid`, `realm` and
//! `extra` (WELCOME's authextra); for WAMP-CRA, WAMP-SCRAM and WAMP-Cryptosign the dictionary also
//! carries what the router checks the client's answer against (`secret`; the SCRAM credential;
//! `pubkey`). An ERROR from the authenticator ends the handshake with that error's URI, so
//! applications can tell clients why; an authenticator that is missing, fails to answer in time or
//! answers something else ends it with `wamp.error.authentication_failed`.

use std::time::Duration;

use switchboard_proto::{Dict, Value, errors};

use super::{Authenticated, Context, Denied};
use crate::config::{ScramPrincipal, WampCraPrincipal};
use crate::router_call::CallFailure;

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

/// An authenticator's answer.
#[derive(Debug)]
pub(crate) struct Answer {
    fields: Dict,
    procedure: String,
}

impl Authenticator {
    /// Calls the authenticator for the HELLO described by `ctx`, with `details`.
    pub(super) async fn authenticate(
        &self,
        ctx: &Context<'_>,
        details: Dict,
    ) -> Result<Answer, Denied> {
        let realm_name = self.realm.as_deref().unwrap_or(ctx.realm);
        let Some(realm) = ctx.realms.get(realm_name) else {
            return Err(Denied::new(
                errors::AUTHENTICATION_FAILED,
                format!("the authenticator's realm {realm_name:?} does not exist"),
            ));
        };
        let authid = ctx.authid.map_or(Value::Null, Value::from);
        let args = vec![ctx.realm.into(), authid, Value::Dict(details)];
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
    fn malformed(&self, what: &str) -> Denied {
        Denied::new(
            errors::AUTHENTICATION_FAILED,
            format!("dynamic authenticator {}: {what}", self.procedure),
        )
    }

    /// A string field of the answer.
    pub(super) fn field_str(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(Value::as_str)
    }

    fn required_str(&self, name: &str) -> Result<String, Denied> {
        self.field_str(name)
            .map(str::to_owned)
            .ok_or_else(|| self.malformed(&format!("the answer has no string {name:?}")))
    }

    /// The identity the answer grants.
    pub(super) fn into_authenticated(
        self,
        ctx: &Context<'_>,
        method: &'static str,
    ) -> Result<Authenticated, Denied> {
        let role = self.required_str("role")?;
        let authid = match (self.field_str("authid"), ctx.authid) {
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

    /// The WAMP-CRA principal in the answer.
    pub(super) fn wampcra_principal(&self) -> Result<WampCraPrincipal, Denied> {
        let number = |name: &str| self.fields.get(name).and_then(Value::as_u64);
        Ok(WampCraPrincipal {
            secret: self.required_str("secret")?,
            role: self.required_str("role")?,
            salt: self.field_str("salt").map(str::to_owned),
            iterations: number("iterations").and_then(|n| u32::try_from(n).ok()),
            keylen: number("keylen").and_then(|n| usize::try_from(n).ok()),
            realm: self.field_str("realm").map(str::to_owned),
        })
    }

    /// The WAMP-SCRAM principal in the answer.
    pub(super) fn scram_principal(&self) -> Result<ScramPrincipal, Denied> {
        let number = |name: &str| {
            self.fields
                .get(name)
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
        };
        Ok(ScramPrincipal {
            kdf: self.required_str("kdf")?,
            iterations: number("iterations")
                .ok_or_else(|| self.malformed("the answer has no integer \"iterations\""))?,
            memory: number("memory"),
            salt: self.required_str("salt")?,
            stored_key: self.required_str("stored-key")?,
            server_key: self.required_str("server-key")?,
            role: self.required_str("role")?,
            realm: self.field_str("realm").map(str::to_owned),
        })
    }
}
