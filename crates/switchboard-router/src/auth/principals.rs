//! Principal resolution, the step WAMP-CRA, WAMP-SCRAM, WAMP-Cryptosign and TLS share: find the
//! principal a HELLO claims among the configured ones (`static`) or ask the method's authenticator
//! (`dynamic`), and know the identity the session gets once the method's own check passes.
//!
//! What a method checks (a key, a credential, a public key, a certificate) lives in the method's
//! file, which also says how to read its principal from an authenticator's answer
//! ([`Principal::from_answer`]).

use std::collections::BTreeMap;

use switchboard_proto::{Dict, errors};

use super::dynamic::{Answer, Authenticator};
use super::{Authenticated, Context, Denied};
use crate::config::{AuthKind, MethodAuthConfig};

/// A method's principal: the config's entry, or its counterpart in an authenticator's answer.
pub(super) trait Principal: Clone {
    /// The method's name on the wire (`authmethod`).
    const METHOD: &'static str;
    /// The role a static principal grants.
    fn role(&self) -> &str;
    /// The realm a static principal joins, whatever HELLO asked for.
    fn realm(&self) -> Option<&str>;
    /// The principal an authenticator's answer describes. Its role and realm are not read: a
    /// dynamic identity comes from the whole answer ([`Answer::into_authenticated`]).
    fn from_answer(answer: &Answer) -> Result<Self, Denied>;
}

/// Static principals or a dynamic authenticator.
#[derive(Debug)]
pub(super) enum Principals<P> {
    Static(BTreeMap<String, P>),
    Dynamic(Authenticator),
}

impl<P: Clone> Principals<P> {
    /// The principals of a method's config section.
    pub(super) fn from_config(cfg: &MethodAuthConfig<P>) -> Self {
        match (cfg.kind, cfg.dynamic().procedure()) {
            (AuthKind::Dynamic | AuthKind::Function, Some(procedure)) => {
                Principals::Dynamic(Authenticator {
                    procedure,
                    realm: cfg.authenticator_realm.clone(),
                })
            }
            // Validation refused a dynamic method without an authenticator.
            _ => Principals::Static(cfg.principals.clone()),
        }
    }
}

impl<P: Principal> Principals<P> {
    /// Finds the principal for the HELLO in `ctx`: `pick` chooses among static principals (most
    /// methods by HELLO's authid, see [`Context::by_authid`]); an authenticator is asked with
    /// Crossbar's details.
    pub(super) async fn resolve<'p>(
        &'p self,
        ctx: &Context<'_>,
        pick: impl FnOnce(&'p BTreeMap<String, P>) -> Result<(&'p String, &'p P), Denied>,
    ) -> Result<Found<P>, Denied> {
        match self {
            Principals::Static(map) => {
                let (authid, p) = pick(map)?;
                Ok(Found::from_static(authid, p))
            }
            Principals::Dynamic(authenticator) => {
                let answer = authenticator.ask(ctx.query(P::METHOD)).await?;
                let principal = P::from_answer(&answer)?;
                Ok(Found {
                    principal,
                    provider: "dynamic",
                    identity: answer.into_authenticated(P::METHOD),
                })
            }
        }
    }
}

/// A principal found for a HELLO, and the identity the session gets once the client proves to be
/// that principal. (No `Debug`: a principal may hold a secret.)
pub(super) struct Found<P> {
    /// What the method checks the client's answer against.
    pub(super) principal: P,
    /// Who vouched for the principal: `static` or `dynamic`.
    pub(super) provider: &'static str,
    /// Unchecked until the method asks for it: WAMP-CRA and WAMP-SCRAM ask after the client's
    /// proof, WAMP-Cryptosign and TLS before any challenge, which is the order their ABORTs for a
    /// malformed authenticator answer have always come in.
    identity: Result<Authenticated, Denied>,
}

impl<P: Principal> Found<P> {
    /// A configured principal: the identity is the authid and the principal's role and realm.
    pub(super) fn from_static(authid: &str, p: &P) -> Self {
        Found {
            principal: p.clone(),
            provider: "static",
            identity: Ok(static_identity(
                authid.to_owned(),
                p.role().to_owned(),
                P::METHOD,
                p.realm(),
            )),
        }
    }
}

impl<P> Found<P> {
    /// Whether the principal is a configured one.
    pub(super) fn is_static(&self) -> bool {
        self.provider == "static"
    }

    /// The identity, once the method's check passed.
    pub(super) fn into_identity(self) -> Result<Authenticated, Denied> {
        self.identity
    }

    /// Keeps what the rest of the exchange needs: the identity, not the secret.
    pub(super) fn without_principal(self) -> Found<()> {
        Found {
            principal: (),
            provider: self.provider,
            identity: self.identity,
        }
    }
}

/// A configured principal's identity, before the handshake checks the role. A principal with a
/// `realm` joins that realm whatever HELLO asked for, as in Crossbar.
pub(super) fn static_identity(
    authid: String,
    authrole: String,
    authmethod: &'static str,
    realm: Option<&str>,
) -> Authenticated {
    Authenticated {
        authid,
        authrole,
        authmethod,
        authprovider: "static",
        authextra: Dict::new(),
        realm: realm.map(str::to_owned),
    }
}

impl Context<'_> {
    /// The static principal named by HELLO's authid, which the method needs.
    pub(super) fn by_authid<'p, P>(
        &self,
        principals: &'p BTreeMap<String, P>,
        method: &str,
    ) -> Result<(&'p String, &'p P), Denied> {
        let authid = self.required_authid(method)?;
        principals
            .get_key_value(authid)
            .ok_or_else(|| self.no_such_principal(method, authid))
    }

    /// HELLO's authid, which methods that look principals up by it need.
    pub(super) fn required_authid(&self, method: &str) -> Result<&str, Denied> {
        self.authid.ok_or_else(|| {
            Denied::new(
                errors::NO_SUCH_PRINCIPAL,
                format!("{method} authentication needs HELLO.Details.authid"),
            )
        })
    }

    /// The denial for an authid no principal has.
    pub(super) fn no_such_principal(&self, method: &str, authid: &str) -> Denied {
        Denied::new(
            errors::NO_SUCH_PRINCIPAL,
            format!("no {method} principal {authid:?}"),
        )
    }
}
