//! Authentication: which method a HELLO gets, and each method as a state machine that does no
//! I/O of its own, so that the session handshake, an HTTP login or a unit test can drive it.
//!
//! An endpoint's `auth` section compiles into an [`EndpointAuth`]. [`EndpointAuth::hello`] takes
//! a HELLO ([`HelloRequest`]), picks the first method in the client's `authmethods` that the
//! endpoint offers and that applies to this connection (a cookie that is known, a client
//! certificate that was presented), and either grants the identity at once
//! ([`HelloStep::Welcome`]) or asks for a CHALLENGE to be sent ([`HelloStep::Challenge`]); the
//! [`PendingAuth`] it hands out checks the client's AUTHENTICATE. Either ends in the
//! [`Authenticated`] identity or the ABORT it gets ([`Denied`]). Reading AUTHENTICATE, its
//! timeout ([`AUTHENTICATE_TIMEOUT`]) and the ways a client can fail to send it are the driver's
//! (`session/handshake.rs`).
//!
//! Each method has its file (ticket, wampcra, scram, cryptosign, tls; cookie); the principal
//! resolution they share is in `principals.rs`. Principals come from the config (`static`), from
//! an authenticator procedure (`dynamic`, see [`dynamic`]), or for tickets from a JWT of an
//! identity provider ([`jwt`]). Every attempt counts in the endpoint's failure limiter
//! ([`limiter`]) from HELLO until its verdict. Secrets are compared in constant time and never
//! logged: [`Denied`] messages say what failed, not what was sent.

pub mod cookie;
pub mod cryptosign;
pub mod dynamic;
pub mod jwt;
pub mod limiter;
mod principals;
pub mod scram;
#[cfg(test)]
mod testing;
mod ticket;
mod tls;
pub mod wampcra;

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use switchboard_proto::{Dict, Value, errors};

use crate::config::{AuthConfig, CryptosignPrincipal, ScramPrincipal, TlsPrincipal};
use crate::peer::SessionId;
use crate::realm::RealmRegistry;
use cookie::CookieJar;
use dynamic::Query;
use limiter::{Attempt, FailureLimiter};
use principals::Principals;
pub use scram::scram_credential;
pub use tls::ClientCertificate;

/// How long a client has to answer a CHALLENGE: the driver of the exchange enforces it.
pub const AUTHENTICATE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS channel binding data a challenge can be tied to (spec, "Channel Binding").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelBinding {
    /// The binding type as named on the wire: only `tls-server-end-point` (RFC 5929) is possible
    /// with rustls, which does not expose `tls-unique`.
    pub kind: &'static str,
    /// The binding data: for `tls-server-end-point`, the hash of the server's leaf certificate
    /// (`crate::tls::server_end_point`).
    pub data: Vec<u8>,
}

/// The channel binding type this router supports.
pub const TLS_SERVER_END_POINT: &str = "tls-server-end-point";

/// A connection's tracking cookie.
#[derive(Debug, Clone)]
pub struct TrackingCookie {
    /// The endpoint's jar.
    pub jar: Arc<CookieJar>,
    /// The cookie id.
    pub id: String,
    /// Whether the id was issued to this connection (Set-Cookie on its upgrade response). Only a
    /// fresh id may be bound to the identity the connection authenticates as: binding a known one
    /// would let whoever planted it in a browser take over the login (session fixation).
    pub fresh: bool,
}

/// What a connection brings to authentication besides its HELLO.
#[derive(Debug, Clone, Default)]
pub struct ConnectionInfo {
    /// The client's address (TCP only).
    pub peer_addr: Option<SocketAddr>,
    /// `websocket` or `rawsocket`.
    pub transport: &'static str,
    /// The verified client certificate, if one was presented.
    pub client_certificate: Option<ClientCertificate>,
    /// Channel binding data, on TLS connections.
    pub channel_binding: Option<ChannelBinding>,
    /// The connection's tracking cookie (WebSocket endpoints with a `cookie` section).
    pub cookie: Option<TrackingCookie>,
    /// Counts the connection as open in its transport's count (the metrics) for as long as
    /// this or a copy lives: past the HTTP exchange, through the WAMP session it carries.
    pub open: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl ConnectionInfo {
    /// The peer as Crossbar writes it (`tcp4:127.0.0.1:53412`, `unix`).
    pub fn peer_text(&self) -> String {
        peer_text(self.peer_addr)
    }

    /// Transport details for authenticators and authorizers.
    pub fn details(&self) -> Dict {
        let mut d = Dict::new();
        d.insert("type".into(), self.transport.into());
        d.insert("peer".into(), self.peer_text().into());
        d.insert(
            "is_secure".into(),
            Value::Bool(self.channel_binding.is_some()),
        );
        if let Some(cert) = &self.client_certificate {
            let mut c = Dict::new();
            c.insert("sha1".into(), cert.sha1.as_str().into());
            if let Some(cn) = &cert.common_name {
                c.insert("cn".into(), cn.as_str().into());
            }
            d.insert("client_cert".into(), Value::Dict(c));
        }
        if let Some(c) = &self.cookie {
            d.insert("cbtid".into(), c.id.as_str().into());
        }
        d
    }
}

/// A session's identity after authentication.
#[derive(Debug, Clone, PartialEq)]
pub struct Authenticated {
    /// The authenticated id.
    pub authid: String,
    /// The role.
    pub authrole: String,
    /// The method used.
    pub authmethod: &'static str,
    /// Who vouched: `static`, `dynamic`, `jwt` or `cookie`.
    pub authprovider: &'static str,
    /// WELCOME.Details.authextra.
    pub authextra: Dict,
    /// The realm the session joins when the principal names one (a static principal's `realm`, or
    /// a dynamic authenticator's answer), whatever HELLO asked for.
    pub realm: Option<String>,
}

/// Why authentication ended in ABORT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// The ABORT reason (an error URI).
    pub reason: String,
    /// ABORT.Details.message.
    pub message: String,
    /// Whether this counts as a failed attempt for rate limiting: the client presented credentials
    /// (or an identity) that were refused, as opposed to the router failing or the client not
    /// offering any usable method.
    pub failed_attempt: bool,
    /// The method that refused, when one was chosen (one of the metrics' known methods,
    /// `crate::realm::stats::AUTH_METHODS`).
    pub method: Option<&'static str>,
}

impl Denied {
    /// A denial with a reason and message; the router's own technical reasons do not count as
    /// failed attempts, every other reason does.
    pub fn new(reason: &str, message: impl Into<String>) -> Self {
        let technical = [
            errors::NO_AUTH_METHOD,
            errors::AUTHENTICATION_FAILED,
            errors::PROTOCOL_VIOLATION,
            errors::NO_SUCH_ROLE,
        ];
        Self {
            reason: reason.to_owned(),
            message: message.into(),
            failed_attempt: !technical.contains(&reason),
            method: None,
        }
    }

    /// The same denial, by `method` (left unset for a method the metrics do not know by name).
    pub fn during(self, method: &str) -> Self {
        let known = crate::realm::stats::AUTH_METHODS
            .iter()
            .find(|m| **m == method)
            .copied();
        Self {
            method: known.or(self.method),
            ..self
        }
    }

    /// The verdict of a dynamic authenticator: whatever URI it chose, a refusal is a failed
    /// attempt (an authenticator may well refuse with `wamp.error.authentication_failed`).
    pub fn by_authenticator(reason: String, message: String) -> Self {
        Self {
            reason,
            message,
            failed_attempt: true,
            method: None,
        }
    }
}

/// The peer as Crossbar writes it (`tcp4:127.0.0.1:53412`, `unix`).
pub(crate) fn peer_text(addr: Option<SocketAddr>) -> String {
    match addr {
        Some(SocketAddr::V4(a)) => format!("tcp4:{}:{}", a.ip(), a.port()),
        Some(SocketAddr::V6(a)) => format!("tcp6:{}:{}", a.ip(), a.port()),
        None => "unix".into(),
    }
}

/// A HELLO to authenticate, with what the router knows besides it.
#[derive(Debug, Clone, Copy)]
pub struct HelloRequest<'a> {
    /// The connection the HELLO came on.
    pub conn: &'a ConnectionInfo,
    /// The realms: dynamic authenticators are procedures on one of them.
    pub realms: &'a Arc<RealmRegistry>,
    /// The realm HELLO asked for (the driver checked that it exists).
    pub realm: &'a str,
    /// HELLO.Details.
    pub details: &'a Dict,
    /// The id the session will get (anonymous authids and WAMP-CRA challenges carry it).
    pub session: SessionId,
}

/// Where a HELLO leads.
#[derive(Debug)]
pub enum HelloStep {
    /// The method needs no exchange (anonymous, cookie, TLS client certificate): WELCOME.
    Welcome(Authenticated),
    /// The method asks the client: send CHALLENGE(`method`, `extra`) and hand the client's
    /// AUTHENTICATE to `pending` (or tell it why none came).
    Challenge {
        /// CHALLENGE.AuthMethod.
        method: &'static str,
        /// CHALLENGE.Extra.
        extra: Dict,
        /// The exchange waiting for AUTHENTICATE.
        pending: PendingAuth,
    },
}

/// An exchange waiting for the client's AUTHENTICATE. It owns everything it needs (no borrow of
/// the request or the endpoint), so a driver may keep it between two requests.
///
/// It holds the attempt's place in the failure limiter: [`PendingAuth::authenticate`] and
/// [`PendingAuth::abandon`] settle it (and log a denial); dropping it unfinished forgives it.
pub struct PendingAuth {
    method: &'static str,
    /// Boxed (a few hundred bytes for the largest method): a driver holds the `PendingAuth` while
    /// it waits for AUTHENTICATE, and a session task's future keeps the size of its largest state
    /// for the whole life of the session.
    check: Box<Check>,
    attempt: Attempt,
}

// By hand: the exchange holds keys and secrets, which must not reach a log line through `{:?}`.
impl fmt::Debug for PendingAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingAuth")
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl PendingAuth {
    /// Checks AUTHENTICATE's signature and extra; the identity, or why it was refused.
    pub async fn authenticate(
        self,
        signature: &str,
        extra: &Dict,
    ) -> Result<Authenticated, Denied> {
        let outcome = match *self.check {
            Check::Ticket(p) => p.authenticate(signature).await,
            Check::WampCra(p) => p.authenticate(signature),
            Check::Scram(p) => p.authenticate(signature, extra),
            Check::Cryptosign(p) => p.authenticate(signature),
        };
        let method = self.method;
        self.attempt
            .settle(outcome)
            .map_err(|denied| denied.during(method))
    }

    /// Ends the exchange without an AUTHENTICATE (the client gave up, broke the protocol, went
    /// away or took too long): `why` is logged and returned for the ABORT.
    pub fn abandon(self, why: Denied) -> Denied {
        self.attempt.deny(why.during(self.method))
    }
}

/// What checks the answer to a CHALLENGE, per method.
enum Check {
    Ticket(ticket::Pending),
    WampCra(wampcra::Pending),
    Scram(scram::Pending),
    Cryptosign(cryptosign::Pending),
}

/// How anonymous sessions are admitted.
#[derive(Debug)]
enum Anonymous {
    /// With this role, and this authid or a generated one each.
    Static {
        role: String,
        authid: Option<String>,
    },
    /// As an authenticator decides (asked with a generated authid).
    Dynamic(dynamic::Authenticator),
}

/// The authentication methods of one WebSocket or RawSocket endpoint.
#[derive(Debug)]
pub struct EndpointAuth {
    /// How anonymous sessions are admitted, when anonymous authentication is offered.
    anonymous: Option<Anonymous>,
    ticket: Option<ticket::Tickets>,
    wampcra: Option<wampcra::WampCra>,
    scram: Option<Principals<ScramPrincipal>>,
    cryptosign: Option<Principals<CryptosignPrincipal>>,
    tls: Option<Principals<TlsPrincipal>>,
    cookie: bool,
    limiter: Option<Arc<FailureLimiter>>,
}

impl Default for EndpointAuth {
    /// No `auth` section: anonymous sessions with role `anonymous`, as Crossbar.
    fn default() -> Self {
        Self {
            anonymous: Some(Anonymous::Static {
                role: "anonymous".into(),
                authid: None,
            }),
            ticket: None,
            wampcra: None,
            scram: None,
            cryptosign: None,
            tls: None,
            cookie: false,
            limiter: None,
        }
    }
}

impl EndpointAuth {
    /// Compiles an endpoint's `auth` section. `base_dir` resolves relative file names (a JWKS);
    /// `limiter` is the transport's failure limiter, shared by its endpoints.
    pub fn from_config(
        cfg: Option<&AuthConfig>,
        base_dir: &Path,
        limiter: Option<Arc<FailureLimiter>>,
    ) -> Result<Self, String> {
        let Some(cfg) = cfg else {
            return Ok(Self {
                limiter,
                ..Self::default()
            });
        };
        Ok(Self {
            anonymous: cfg
                .anonymous
                .as_ref()
                .map(|a| match a.dynamic().procedure() {
                    Some(procedure) => Anonymous::Dynamic(dynamic::Authenticator {
                        procedure,
                        realm: a.authenticator_realm.clone(),
                    }),
                    None => Anonymous::Static {
                        role: a.role.clone().unwrap_or_else(|| "anonymous".into()),
                        authid: a.authid.clone(),
                    },
                }),
            ticket: cfg
                .ticket
                .as_ref()
                .map(|t| ticket::Tickets::from_config(t, base_dir))
                .transpose()?,
            wampcra: cfg.wampcra.as_ref().map(wampcra::WampCra::from_config),
            scram: cfg.scram.as_ref().map(Principals::from_config),
            cryptosign: cfg.cryptosign.as_ref().map(Principals::from_config),
            tls: cfg.tls.as_ref().map(Principals::from_config),
            cookie: cfg.cookie.is_some(),
            limiter,
        })
    }

    /// Whether the `tls` method is configured (client certificates should be asked for).
    pub fn wants_client_certificates(&self) -> bool {
        self.tls.is_some()
    }

    /// The names of the methods offered, for error messages.
    fn offered(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        let mut add = |on: bool, name| {
            if on {
                names.push(name)
            }
        };
        add(self.anonymous.is_some(), "anonymous");
        add(self.ticket.is_some(), "ticket");
        add(self.wampcra.is_some(), "wampcra");
        add(self.scram.is_some(), "scram");
        add(self.cryptosign.is_some(), "cryptosign");
        add(self.tls.is_some(), "tls");
        add(self.cookie, "cookie");
        names
    }

    /// Starts authenticating a HELLO: the identity, the CHALLENGE to send, or the ABORT.
    ///
    /// The attempt counts in the failure limiter from here on, so that attempts made in parallel
    /// cannot get past the limit; it is forgiven when it does not end in refused credentials.
    pub async fn hello(&self, request: HelloRequest<'_>) -> Result<HelloStep, Denied> {
        let hello_authid = request.details.get("authid").and_then(Value::as_str);
        let attempt = Attempt::begin(self.limiter.as_ref(), request.conn.peer_addr, hello_authid)?;
        match self.choose(&request).await {
            Ok(Step::Welcome(who)) => attempt.settle(Ok(who)).map(HelloStep::Welcome),
            Ok(Step::Challenge(method, extra, check)) => Ok(HelloStep::Challenge {
                method,
                extra,
                pending: PendingAuth {
                    method,
                    check,
                    attempt,
                },
            }),
            Err(denied) => Err(attempt.deny(denied)),
        }
    }

    /// The first of HELLO's methods that applies, and its first step.
    async fn choose(&self, request: &HelloRequest<'_>) -> Result<Step, Denied> {
        let hello = request.details;
        // spec, "Authentication": without authmethods the client asks for anonymous access.
        let offered: Vec<&str> = match hello.get("authmethods") {
            None => vec!["anonymous"],
            Some(Value::List(list)) => list.iter().filter_map(Value::as_str).collect(),
            Some(_) => {
                return Err(Denied::new(
                    errors::PROTOCOL_VIOLATION,
                    "HELLO.Details.authmethods must be a list of strings",
                ));
            }
        };
        let empty = Dict::new();
        let ctx = Context {
            conn: request.conn,
            realms: request.realms,
            realm: request.realm,
            session: request.session,
            authid: hello.get("authid").and_then(Value::as_str),
            authextra: hello
                .get("authextra")
                .and_then(Value::as_dict)
                .unwrap_or(&empty),
        };
        for method in &offered {
            // A refusal names the method that refused (the metrics count by method).
            let step = self
                .start(method, &ctx, request)
                .await
                .map_err(|denied| denied.during(method))?;
            if let Some(step) = step {
                return Ok(step);
            }
        }
        Err(Denied::new(
            errors::NO_AUTH_METHOD,
            format!(
                "none of the offered authentication methods {offered:?} can be used here; this \
                 transport offers {:?}",
                self.offered()
            ),
        ))
    }
    /// The first step of `method` for this HELLO; `None` when this endpoint does not offer it, or
    /// it does not apply to this connection (no known cookie, no client certificate).
    async fn start(
        &self,
        method: &str,
        ctx: &Context<'_>,
        request: &HelloRequest<'_>,
    ) -> Result<Option<Step>, Denied> {
        match method {
            "anonymous" => match &self.anonymous {
                Some(Anonymous::Static { role, authid }) => {
                    return Ok(Some(Step::Welcome(anonymous(
                        role,
                        authid.as_deref(),
                        ctx.session,
                    ))));
                }
                Some(Anonymous::Dynamic(authenticator)) => {
                    // As Crossbar: the authenticator is asked about a generated authid, which
                    // the session keeps unless the answer names another.
                    let mut query = ctx.query("anonymous");
                    let authid = anonymous_authid(ctx.session);
                    query
                        .details
                        .insert("authid".into(), authid.as_str().into());
                    query.authid = Some(authid);
                    let answer = authenticator.ask(query).await?;
                    return answer
                        .into_authenticated("anonymous")
                        .map(|who| Some(Step::Welcome(who)));
                }
                None => {}
            },
            "ticket" => {
                if let Some(tickets) = &self.ticket {
                    let (extra, p) = tickets.start(ctx)?;
                    let check = Box::new(Check::Ticket(p));
                    return Ok(Some(Step::Challenge("ticket", extra, check)));
                }
            }
            "wampcra" => {
                if let Some(wampcra) = &self.wampcra {
                    let (extra, p) = wampcra.start(ctx).await?;
                    let check = Box::new(Check::WampCra(p));
                    return Ok(Some(Step::Challenge("wampcra", extra, check)));
                }
            }
            "scram" => {
                if let Some(principals) = &self.scram {
                    let (extra, p) = scram::start(principals, ctx).await?;
                    let check = Box::new(Check::Scram(p));
                    return Ok(Some(Step::Challenge("scram", extra, check)));
                }
            }
            "cryptosign" => {
                if let Some(principals) = &self.cryptosign {
                    let (extra, p) = cryptosign::start(principals, ctx).await?;
                    let check = Box::new(Check::Cryptosign(p));
                    return Ok(Some(Step::Challenge("cryptosign", extra, check)));
                }
            }
            "tls" => {
                if let (Some(principals), Some(cert)) =
                    (&self.tls, request.conn.client_certificate.as_ref())
                {
                    let who = tls::authenticate(principals, ctx, cert).await?;
                    return Ok(Some(Step::Welcome(who)));
                }
            }
            "cookie" => {
                if self.cookie
                    && let Some(c) = &request.conn.cookie
                    && let Some(known) = c.jar.authenticated(&c.id, request.realm)
                {
                    return Ok(Some(Step::Welcome(known)));
                }
            }
            _ => {}
        }
        Ok(None)
    }
}

/// A method's first step: the identity, or (method, CHALLENGE.Extra, the check of the answer).
enum Step {
    Welcome(Authenticated),
    Challenge(&'static str, Dict, Box<Check>),
}

/// An anonymous session's identity. HELLO's authid is not believed: an anonymous client could
/// otherwise pose as any principal to authorizers, callees and the meta API (as Crossbar,
/// anonymous sessions get a generated authid, or the one the config gives them all).
fn anonymous(role: &str, authid: Option<&str>, session: SessionId) -> Authenticated {
    Authenticated {
        authid: authid.map_or_else(|| anonymous_authid(session), str::to_owned),
        authrole: role.to_owned(),
        authmethod: "anonymous",
        authprovider: "static",
        authextra: Dict::new(),
        realm: None,
    }
}

/// The authid an anonymous session gets unless the config or an authenticator gives another.
fn anonymous_authid(session: SessionId) -> String {
    format!("anonymous-{:x}", session.0)
}

/// What every method needs to know about the HELLO it answers.
struct Context<'a> {
    conn: &'a ConnectionInfo,
    realms: &'a Arc<RealmRegistry>,
    realm: &'a str,
    session: SessionId,
    authid: Option<&'a str>,
    authextra: &'a Dict,
}

impl Context<'_> {
    /// What an authenticator is asked (Crossbar's details): the HELLO's authid and authextra, the
    /// method, the session id and the transport.
    fn query(&self, method: &str) -> Query {
        let mut d = Dict::new();
        d.insert("authmethod".into(), method.into());
        if let Some(authid) = self.authid {
            d.insert("authid".into(), authid.into());
        }
        d.insert("authextra".into(), Value::Dict(self.authextra.clone()));
        d.insert("realm".into(), self.realm.into());
        d.insert("session".into(), self.session.0.into());
        d.insert("transport".into(), Value::Dict(self.conn.details()));
        Query {
            realms: Arc::clone(self.realms),
            realm: self.realm.to_owned(),
            authid: self.authid.map(str::to_owned),
            details: d,
        }
    }

    /// The channel binding the client asked for in authextra, checked against what this
    /// connection can offer.
    fn channel_binding(&self) -> Result<Option<ChannelBinding>, Denied> {
        match self.authextra.get("channel_binding") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Str(kind)) if kind == TLS_SERVER_END_POINT => {
                match &self.conn.channel_binding {
                    Some(b) => Ok(Some(b.clone())),
                    None => Err(Denied::new(
                        errors::AUTHENTICATION_FAILED,
                        "channel binding tls-server-end-point needs a TLS connection",
                    )),
                }
            }
            Some(Value::Str(kind)) if kind == "tls-unique" => Err(Denied::new(
                errors::AUTHENTICATION_FAILED,
                "channel binding tls-unique is not supported (the TLS library does not expose \
                 it, and TLS 1.3 has no tls-unique); use tls-server-end-point",
            )),
            Some(other) => Err(Denied::new(
                errors::AUTHENTICATION_FAILED,
                format!("unsupported channel binding {other:?}"),
            )),
        }
    }
}

/// A refusal of the client's credentials.
fn denied(message: &str) -> Denied {
    Denied::new(errors::AUTHENTICATION_DENIED, message)
}

/// Constant-time equality of two byte strings (the length is not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use testing::{
        Hello, SESSION, endpoint, expect_challenge, expect_denied, expect_welcome, limited_endpoint,
    };

    #[test]
    fn a_pending_exchange_can_outlive_its_request_and_move_between_tasks() {
        fn owned_and_send<T: Send + 'static>() {}
        owned_and_send::<PendingAuth>();
    }

    #[tokio::test]
    async fn anonymous_sessions_get_a_generated_authid_whatever_hello_says() {
        let auth = endpoint(r#"{"anonymous": {"type": "static", "role": "guest"}}"#);
        let who = expect_welcome(&auth, Hello::new(&["anonymous"]).authid("joe")).await;
        assert_eq!(who.authid, format!("anonymous-{:x}", SESSION.0));
        assert_eq!(who.authrole, "guest");
        assert_eq!((who.authmethod, who.authprovider), ("anonymous", "static"));
        assert!(who.authextra.is_empty() && who.realm.is_none());
        // spec, "Authentication": a HELLO without authmethods asks for anonymous access.
        let who = expect_welcome(&auth, Hello::without_methods()).await;
        assert_eq!(who.authmethod, "anonymous");
        // Without an `auth` section, anonymous is all there is, with role `anonymous`.
        let who = expect_welcome(&EndpointAuth::default(), Hello::without_methods()).await;
        assert_eq!(who.authrole, "anonymous");
    }

    const TICKET_AND_ANONYMOUS: &str = r#"{
        "anonymous": {"type": "static"},
        "ticket": {"type": "static", "principals": {"joe": {"ticket": "t", "role": "frontend"}}},
        "tls": {"type": "static", "principals": {"joe": {"role": "frontend"}}},
        "cookie": {}}"#;

    #[tokio::test]
    async fn the_first_listed_method_that_applies_is_chosen() {
        let auth = endpoint(TICKET_AND_ANONYMOUS);
        // cryptosign is not offered; tls and cookie are, but this connection has no client
        // certificate and no cookie: anonymous, listed next, applies before ticket.
        let hello = Hello::new(&["cryptosign", "tls", "cookie", "anonymous", "ticket"]);
        assert_eq!(expect_welcome(&auth, hello).await.authmethod, "anonymous");
        let hello = Hello::new(&["ticket", "anonymous"]).authid("joe");
        expect_challenge(&auth, hello, "ticket").await;
    }

    #[tokio::test]
    async fn no_usable_method_names_the_offered_and_available_ones() {
        let auth = endpoint(TICKET_AND_ANONYMOUS);
        let denied = expect_denied(&auth, Hello::new(&["wampcra", "tls", "bogus"])).await;
        assert_eq!(denied.reason, errors::NO_AUTH_METHOD);
        assert_eq!(
            denied.message,
            r#"none of the offered authentication methods ["wampcra", "tls", "bogus"] can be used here; this transport offers ["anonymous", "ticket", "tls", "cookie"]"#
        );
        assert!(!denied.failed_attempt);
        let denied = expect_denied(&auth, Hello::new(&[])).await;
        assert_eq!(denied.reason, errors::NO_AUTH_METHOD);
        let not_a_list = Hello::without_methods().detail("authmethods", "ticket".into());
        let denied = expect_denied(&auth, not_a_list).await;
        assert_eq!(denied.reason, errors::PROTOCOL_VIOLATION);
        assert_eq!(
            denied.message,
            "HELLO.Details.authmethods must be a list of strings"
        );
    }

    const TICKET: &str = r#"{"ticket": {"type": "static", "principals": {
        "joe": {"ticket": "right", "role": "frontend"}}}}"#;

    /// A ticket login from the test HELLO's address; whether it was welcomed.
    async fn ticket_login(auth: &EndpointAuth, ticket: &str) -> Result<Authenticated, Denied> {
        let hello = Hello::new(&["ticket"]).authid("joe");
        match hello.send(auth).await? {
            HelloStep::Challenge { pending, .. } => {
                pending.authenticate(ticket, &Dict::new()).await
            }
            HelloStep::Welcome(who) => panic!("a ticket login without a challenge: {who:?}"),
        }
    }

    fn limiter(failures: u32) -> Arc<FailureLimiter> {
        Arc::new(FailureLimiter::new(
            failures,
            std::time::Duration::from_secs(60),
        ))
    }

    #[tokio::test]
    async fn an_address_is_refused_after_its_failures_even_with_the_right_ticket() {
        let auth = limited_endpoint(TICKET, Some(limiter(2)));
        for _ in 0..2 {
            let denied = ticket_login(&auth, "wrong").await.unwrap_err();
            assert_eq!(denied.message, "invalid ticket");
        }
        let denied = ticket_login(&auth, "right").await.unwrap_err();
        assert_eq!(denied.reason, errors::AUTHENTICATION_DENIED);
        assert_eq!(
            denied.message,
            "too many failed authentication attempts from this address; try again later"
        );
        // The refusal comes at HELLO, before anything is asked, and for every method.
        let denied = expect_denied(&auth, Hello::without_methods()).await;
        assert!(denied.message.starts_with("too many failed"));
        // Unix socket clients have no address and are not limited.
        let local = Hello::new(&["ticket"])
            .authid("joe")
            .conn(|c| c.peer_addr = None);
        let (pending, _) = expect_challenge(&auth, local, "ticket").await;
        assert!(pending.authenticate("right", &Dict::new()).await.is_ok());
    }

    #[tokio::test]
    async fn successes_and_failures_that_are_not_the_clients_are_forgiven() {
        let auth = limited_endpoint(TICKET, Some(limiter(1)));
        for _ in 0..3 {
            ticket_login(&auth, "right").await.unwrap();
        }
        // No such method, an exchange the driver abandons (the client went away) and one it
        // drops unfinished do not count either.
        expect_denied(&auth, Hello::new(&["wampcra"])).await;
        let hello = || Hello::new(&["ticket"]).authid("joe");
        let (pending, _) = expect_challenge(&auth, hello(), "ticket").await;
        let gone = Denied::new(errors::AUTHENTICATION_FAILED, "the connection ended");
        assert_eq!(pending.abandon(gone.clone()), gone.during("ticket"));
        let (pending, _) = expect_challenge(&auth, hello(), "ticket").await;
        drop(pending);
        // One failure uses up the allowance of 1.
        ticket_login(&auth, "wrong").await.unwrap_err();
        let denied = ticket_login(&auth, "right").await.unwrap_err();
        assert!(denied.message.starts_with("too many failed"));
    }

    #[tokio::test]
    async fn a_refusal_names_the_method_that_refused_once_one_was_chosen() {
        let auth = limited_endpoint(TICKET, Some(limiter(1)));
        let refused = ticket_login(&auth, "wrong").await.unwrap_err();
        assert!(refused.failed_attempt);
        assert_eq!(refused.method, Some("ticket"));
        // Over its failure limit, the address is refused before any method is chosen.
        let blocked = ticket_login(&auth, "right").await.unwrap_err();
        assert!(blocked.failed_attempt);
        assert_eq!(blocked.method, None);
    }

    #[tokio::test]
    async fn an_exchange_in_flight_counts_until_it_is_settled() {
        let limiter = limiter(1);
        let auth = limited_endpoint(TICKET, Some(Arc::clone(&limiter)));
        let ip: IpAddr = [192, 0, 2, 1].into();
        let (pending, _) =
            expect_challenge(&auth, Hello::new(&["ticket"]).authid("joe"), "ticket").await;
        // A second HELLO in parallel finds the allowance used up by the first.
        assert!(!limiter.begin_attempt(ip));
        pending.authenticate("right", &Dict::new()).await.unwrap();
        assert!(limiter.begin_attempt(ip));
    }

    #[test]
    fn failed_attempts_are_credential_denials_only() {
        assert!(Denied::new(errors::AUTHENTICATION_DENIED, "").failed_attempt);
        assert!(Denied::new(errors::NO_SUCH_PRINCIPAL, "").failed_attempt);
        assert!(Denied::new("com.example.invalid_ticket", "").failed_attempt);
        assert!(!Denied::new(errors::NO_AUTH_METHOD, "").failed_attempt);
        assert!(!Denied::new(errors::AUTHENTICATION_FAILED, "").failed_attempt);
        let verdict = Denied::by_authenticator(errors::AUTHENTICATION_FAILED.into(), "no".into());
        assert!(verdict.failed_attempt);
    }

    #[test]
    fn constant_time_eq_needs_equal_lengths_and_bytes() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret!"));
    }
}
