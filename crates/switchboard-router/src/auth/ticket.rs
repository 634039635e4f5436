//! Ticket authentication (spec, "Ticket-based Authentication"): an empty CHALLENGE asks for the
//! ticket, which AUTHENTICATE carries as its signature. A ticket is a configured shared secret, is
//! judged by an authenticator procedure (which gets it in its details as `ticket`, as Crossbar's
//! do), or is a JWT of an identity provider ([`super::jwt`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use switchboard_proto::Dict;

use super::dynamic::{Authenticator, Query};
use super::jwt::JwtValidator;
use super::principals::static_identity;
use super::{Authenticated, Context, Denied, constant_time_eq, denied};
use crate::config::{AuthKind, TicketAuthConfig, TicketPrincipal};

/// Where tickets are checked.
#[derive(Debug)]
pub(super) enum Tickets {
    Static(BTreeMap<String, TicketPrincipal>),
    Dynamic(Authenticator),
    /// Shared with the exchanges in flight, which outlive a borrow of the endpoint.
    Jwt(Arc<JwtTickets>),
}

/// JWT tickets: the provider's keys, and the claims that name the principal.
#[derive(Debug)]
pub(super) struct JwtTickets {
    validator: JwtValidator,
    authid_claim: String,
    role_claim: String,
}

impl Tickets {
    /// The `ticket` section. `base_dir` resolves a relative JWKS file name.
    pub(super) fn from_config(cfg: &TicketAuthConfig, base_dir: &Path) -> Result<Self, String> {
        Ok(match cfg.kind {
            AuthKind::Static => Tickets::Static(cfg.principals.clone()),
            AuthKind::Dynamic | AuthKind::Function => Tickets::Dynamic(Authenticator {
                procedure: cfg.dynamic().procedure().unwrap_or_default(),
                realm: cfg.authenticator_realm.clone(),
            }),
            AuthKind::Jwt => {
                let Some(jwks) = &cfg.jwks else {
                    return Err("ticket type jwt needs `jwks`".into());
                };
                Tickets::Jwt(Arc::new(JwtTickets {
                    validator: JwtValidator::from_jwks_file(
                        &base_dir.join(jwks),
                        cfg.issuer.clone(),
                        cfg.audience.clone(),
                        cfg.leeway.unwrap_or(0),
                    )?,
                    authid_claim: cfg.authid_claim.clone().unwrap_or_else(|| "sub".into()),
                    role_claim: cfg.role_claim.clone().unwrap_or_else(|| "role".into()),
                }))
            }
        })
    }

    /// The CHALLENGE extra (empty) and the exchange waiting for the ticket.
    pub(super) fn start(&self, ctx: &Context<'_>) -> Result<(Dict, Pending), Denied> {
        let pending = match self {
            Tickets::Static(principals) => {
                // A static principal must exist before we ask for its ticket.
                let (authid, p) = ctx.by_authid(principals, "ticket")?;
                Pending::Static {
                    ticket: p.ticket.clone(),
                    identity: static_identity(
                        authid.clone(),
                        p.role.clone(),
                        "ticket",
                        p.realm.as_deref(),
                    ),
                }
            }
            Tickets::Dynamic(authenticator) => Pending::Dynamic {
                authenticator: authenticator.clone(),
                query: ctx.query("ticket"),
            },
            Tickets::Jwt(jwt) => Pending::Jwt {
                jwt: Arc::clone(jwt),
                hello_authid: ctx.authid.map(str::to_owned),
            },
        };
        Ok((Dict::new(), pending))
    }
}

/// A ticket exchange waiting for AUTHENTICATE. (No `Debug`: it may hold the expected ticket.)
pub(super) enum Pending {
    Static {
        ticket: String,
        identity: Authenticated,
    },
    Dynamic {
        authenticator: Authenticator,
        query: Query,
    },
    Jwt {
        jwt: Arc<JwtTickets>,
        hello_authid: Option<String>,
    },
}

impl Pending {
    /// Checks the ticket AUTHENTICATE carried.
    pub(super) async fn authenticate(self, ticket: &str) -> Result<Authenticated, Denied> {
        match self {
            Pending::Static {
                ticket: expected,
                identity,
            } => {
                if !constant_time_eq(ticket.as_bytes(), expected.as_bytes()) {
                    return Err(denied("invalid ticket"));
                }
                Ok(identity)
            }
            Pending::Dynamic {
                authenticator,
                mut query,
            } => {
                query.details.insert("ticket".into(), ticket.into());
                let answer = authenticator.ask(query).await?;
                answer.into_authenticated("ticket")
            }
            Pending::Jwt { jwt, hello_authid } => jwt.authenticate(ticket, hello_authid.as_deref()),
        }
    }
}

impl JwtTickets {
    /// The identity a valid token names; HELLO's authid, when given, must be the token's.
    fn authenticate(
        &self,
        token: &str,
        hello_authid: Option<&str>,
    ) -> Result<Authenticated, Denied> {
        let claims = self
            .validator
            .validate(token)
            .map_err(|why| denied(&format!("invalid token: {why}")))?;
        let claim = |name: &str| claims.get(name).and_then(serde_json::Value::as_str);
        let authid_claim = &self.authid_claim;
        let role_claim = &self.role_claim;
        let authid = claim(authid_claim)
            .ok_or_else(|| denied(&format!("the token has no {authid_claim:?} claim")))?;
        let role = claim(role_claim)
            .ok_or_else(|| denied(&format!("the token has no {role_claim:?} claim")))?;
        if let Some(asked) = hello_authid
            && asked != authid
        {
            return Err(denied("the token is for another authid than HELLO's"));
        }
        Ok(Authenticated {
            authprovider: "jwt",
            ..static_identity(authid.to_owned(), role.to_owned(), "ticket", None)
        })
    }
}

#[cfg(test)]
mod tests {
    use switchboard_proto::errors;

    use super::*;
    use crate::auth::testing::{Hello, endpoint, expect_challenge, expect_denied};

    const AUTH: &str = r#"{"ticket": {"type": "static", "principals": {
        "joe": {"ticket": "secret-ticket", "role": "frontend"},
        "ghost": {"ticket": "boo", "role": "spook", "realm": "realm2"}}}}"#;

    #[tokio::test]
    async fn the_right_ticket_gives_the_principals_identity() {
        let auth = endpoint(AUTH);
        let (pending, _) =
            expect_challenge(&auth, Hello::new(&["ticket"]).authid("joe"), "ticket").await;
        let who = pending
            .authenticate("secret-ticket", &Dict::new())
            .await
            .unwrap();
        assert_eq!(
            (who.authid.as_str(), who.authrole.as_str()),
            ("joe", "frontend")
        );
        assert_eq!((who.authmethod, who.authprovider), ("ticket", "static"));
        assert_eq!(who.realm, None);

        let (pending, extra) =
            expect_challenge(&auth, Hello::new(&["ticket"]).authid("ghost"), "ticket").await;
        assert!(extra.is_empty());
        let who = pending.authenticate("boo", &Dict::new()).await.unwrap();
        assert_eq!(who.realm.as_deref(), Some("realm2"));
        assert_eq!(who.authrole, "spook");
    }

    #[tokio::test]
    async fn a_wrong_ticket_is_denied_without_naming_it() {
        let auth = endpoint(AUTH);
        let (pending, _) =
            expect_challenge(&auth, Hello::new(&["ticket"]).authid("joe"), "ticket").await;
        let denied = pending
            .authenticate("secret-ticket!", &Dict::new())
            .await
            .unwrap_err();
        assert_eq!(denied.reason, errors::AUTHENTICATION_DENIED);
        assert_eq!(denied.message, "invalid ticket");
        assert!(denied.failed_attempt);
    }

    #[tokio::test]
    async fn an_unknown_or_missing_authid_gets_no_challenge() {
        let auth = endpoint(AUTH);
        let denied = expect_denied(&auth, Hello::new(&["ticket"]).authid("nobody")).await;
        assert_eq!(denied.reason, errors::NO_SUCH_PRINCIPAL);
        assert_eq!(denied.message, r#"no ticket principal "nobody""#);
        let denied = expect_denied(&auth, Hello::new(&["ticket"])).await;
        assert_eq!(denied.reason, errors::NO_SUCH_PRINCIPAL);
        assert_eq!(
            denied.message,
            "ticket authentication needs HELLO.Details.authid"
        );
    }
}
