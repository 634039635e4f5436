//! Authentication: which method a HELLO gets, the method's challenge, and the identity it yields.
//!
//! An endpoint's `auth` section compiles into an [`EndpointAuth`]. The handshake hands it the HELLO;
//! [`EndpointAuth::authenticate`] takes the first method in the client's `authmethods` that the
//! endpoint offers and that applies to this connection (a cookie that is known, a client
//! certificate that was presented), runs that method's exchange (CHALLENGE, then AUTHENTICATE),
//! and returns the [`Authenticated`] identity or the ABORT it ends in ([`Denied`]).
//!
//! Principals come from the config (`static`), from an authenticator procedure (`dynamic`, see
//! [`dynamic`]), or for tickets from a JWT of an identity provider ([`jwt`]). Secrets are compared
//! in constant time and never logged: [`Denied`] messages say what failed, not what was sent.

pub mod cookie;
pub mod cryptosign;
pub mod dynamic;
pub mod jwt;
pub mod limiter;
pub mod scram;
pub mod wampcra;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use switchboard_proto::{Dict, Message, Value, codec, errors};
use switchboard_transport::Transport;
use tracing::info;

use crate::config::{
    AuthConfig, AuthKind, CryptosignPrincipal, MethodAuthConfig, ScramPrincipal, TicketAuthConfig,
    TicketPrincipal, TlsPrincipal, WampCraPrincipal,
};
use crate::peer::SessionId;
use crate::realm::RealmRegistry;
use cookie::CookieJar;
use dynamic::{Answer, Authenticator};
use limiter::FailureLimiter;

/// How long a client has to answer a CHALLENGE.
pub const AUTHENTICATE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

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

/// What the router knows about a client certificate the TLS handshake verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// SHA-1 of the DER certificate, uppercase colon-separated hex (Crossbar's `certificate-sha1`).
    pub sha1: String,
    /// The subject's common name, if it has one.
    pub common_name: Option<String>,
}

impl ClientCertificate {
    /// Fingerprint and common name of a DER certificate.
    pub fn from_der(der: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
        let sha1 = digest
            .as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        let common_name = x509_parser::parse_x509_certificate(der)
            .ok()
            .and_then(|(_, cert)| {
                cert.subject()
                    .iter_common_name()
                    .next()
                    .and_then(|cn| cn.as_str().ok().map(str::to_owned))
            });
        Self { sha1, common_name }
    }

    /// Whether `fingerprint` (as written in a config: any case, with or without colons) is this
    /// certificate's.
    fn matches_sha1(&self, fingerprint: &str) -> bool {
        let normalize = |s: &str| {
            s.chars()
                .filter(|c| *c != ':')
                .map(|c| c.to_ascii_uppercase())
                .collect::<String>()
        };
        normalize(fingerprint) == normalize(&self.sha1)
    }
}

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
}

impl ConnectionInfo {
    /// The peer as Crossbar writes it (`tcp4:127.0.0.1:53412`, `unix`).
    pub fn peer_text(&self) -> String {
        match self.peer_addr {
            Some(SocketAddr::V4(a)) => format!("tcp4:{}:{}", a.ip(), a.port()),
            Some(SocketAddr::V6(a)) => format!("tcp6:{}:{}", a.ip(), a.port()),
            None => "unix".into(),
        }
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
        }
    }

    /// The verdict of a dynamic authenticator: whatever URI it chose, a refusal is a failed
    /// attempt (an authenticator may well refuse with `wamp.error.authentication_failed`).
    pub fn by_authenticator(reason: String, message: String) -> Self {
        Self {
            reason,
            message,
            failed_attempt: true,
        }
    }
}

/// Static principals or a dynamic authenticator.
#[derive(Debug)]
enum Principals<P> {
    Static(BTreeMap<String, P>),
    Dynamic(Authenticator),
}

impl<P: Clone> Principals<P> {
    fn from_config(cfg: &MethodAuthConfig<P>) -> Self {
        match (&cfg.kind, &cfg.authenticator) {
            (AuthKind::Dynamic, Some(procedure)) => Principals::Dynamic(Authenticator {
                procedure: procedure.clone(),
                realm: cfg.authenticator_realm.clone(),
            }),
            // Validation refused a dynamic method without an authenticator.
            _ => Principals::Static(cfg.principals.clone()),
        }
    }
}

/// Where tickets are checked.
#[derive(Debug)]
enum Tickets {
    Static(BTreeMap<String, TicketPrincipal>),
    Dynamic(Authenticator),
    Jwt {
        validator: jwt::JwtValidator,
        authid_claim: String,
        role_claim: String,
    },
}

/// The authentication methods of one WebSocket or RawSocket endpoint.
#[derive(Debug)]
pub struct EndpointAuth {
    /// The role of anonymous sessions, when anonymous authentication is offered.
    anonymous: Option<String>,
    ticket: Option<Tickets>,
    wampcra: Option<Principals<WampCraPrincipal>>,
    /// The keys of salted static WAMP-CRA principals, derived once at load (PBKDF2 is slow on
    /// purpose; doing it per HELLO would hand clients a cheap way to burn CPU).
    wampcra_keys: HashMap<String, Vec<u8>>,
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
            anonymous: Some("anonymous".into()),
            ticket: None,
            wampcra: None,
            wampcra_keys: HashMap::new(),
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
                .map(|a| a.role.clone().unwrap_or_else(|| "anonymous".into())),
            ticket: cfg
                .ticket
                .as_ref()
                .map(|t| tickets(t, base_dir))
                .transpose()?,
            wampcra: cfg.wampcra.as_ref().map(Principals::from_config),
            wampcra_keys: cfg
                .wampcra
                .iter()
                .filter(|c| c.kind == AuthKind::Static)
                .flat_map(|c| c.principals.iter())
                .filter_map(|(authid, p)| {
                    let salting = wampcra_salting(p)?;
                    Some((
                        authid.clone(),
                        wampcra::signing_key(&p.secret, Some(&salting)),
                    ))
                })
                .collect(),
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

    /// Authenticates a HELLO for `realm` on `conn`; `session` is the id the session will get.
    pub async fn authenticate<T: Transport>(
        &self,
        transport: &mut T,
        conn: &ConnectionInfo,
        realms: &RealmRegistry,
        realm: &str,
        hello: &Dict,
        session: SessionId,
    ) -> Result<Authenticated, Denied> {
        let ip = conn.peer_addr.map(|a| a.ip());
        // An attempt counts as failed from its start and is forgiven when it does not fail, so
        // that attempts made in parallel cannot get past the limit.
        let limiter = self.limiter.as_ref().zip(ip);
        if let Some((limiter, ip)) = limiter
            && !limiter.begin_attempt(ip)
        {
            return Err(Denied::new(
                errors::AUTHENTICATION_DENIED,
                "too many failed authentication attempts from this address; try again later",
            ));
        }
        let outcome = self
            .run(transport, conn, realms, realm, hello, session)
            .await;
        if let Some((limiter, ip)) = limiter
            && outcome
                .as_ref()
                .map_or_else(|d| !d.failed_attempt, |_| true)
        {
            limiter.forgive(ip);
        }
        if let Err(denied) = &outcome {
            // Failed logins are what an operator (or fail2ban) watches for; the message says
            // what failed, never what was sent.
            let authid = hello.get("authid").and_then(Value::as_str).unwrap_or("");
            info!(
                peer = %conn.peer_text(),
                authid,
                reason = %denied.reason,
                "authentication denied: {}",
                denied.message
            );
        }
        outcome
    }

    async fn run<T: Transport>(
        &self,
        transport: &mut T,
        conn: &ConnectionInfo,
        realms: &RealmRegistry,
        realm: &str,
        hello: &Dict,
        session: SessionId,
    ) -> Result<Authenticated, Denied> {
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
        let hello_authid = hello.get("authid").and_then(Value::as_str);
        let empty = Dict::new();
        let authextra = hello
            .get("authextra")
            .and_then(Value::as_dict)
            .unwrap_or(&empty);
        let ctx = Context {
            conn,
            realms,
            realm,
            session,
            authid: hello_authid,
            authextra,
        };
        for method in &offered {
            match *method {
                "anonymous" => {
                    if let Some(role) = &self.anonymous {
                        // HELLO's authid is not believed: an anonymous client could otherwise
                        // pose as any principal to authorizers, callees and the meta API (as
                        // Crossbar, anonymous sessions get a generated authid).
                        return Ok(Authenticated {
                            authid: format!("anonymous-{:x}", session.0),
                            authrole: role.clone(),
                            authmethod: "anonymous",
                            authprovider: "static",
                            authextra: Dict::new(),
                            realm: None,
                        });
                    }
                }
                "ticket" => {
                    if let Some(tickets) = &self.ticket {
                        return ticket(transport, &ctx, tickets).await;
                    }
                }
                "wampcra" => {
                    if let Some(principals) = &self.wampcra {
                        return wampcra_exchange(transport, &ctx, principals, &self.wampcra_keys)
                            .await;
                    }
                }
                "scram" => {
                    if let Some(principals) = &self.scram {
                        return scram_exchange(transport, &ctx, principals).await;
                    }
                }
                "cryptosign" => {
                    if let Some(principals) = &self.cryptosign {
                        return cryptosign_exchange(transport, &ctx, principals).await;
                    }
                }
                "tls" => {
                    if let (Some(principals), Some(cert)) =
                        (&self.tls, conn.client_certificate.as_ref())
                    {
                        return tls_certificate(&ctx, principals, cert).await;
                    }
                }
                "cookie" => {
                    if self.cookie
                        && let Some(c) = &conn.cookie
                        && let Some(known) = c.jar.authenticated(&c.id, realm)
                    {
                        return Ok(known);
                    }
                }
                _ => {}
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
}

fn tickets(cfg: &TicketAuthConfig, base_dir: &Path) -> Result<Tickets, String> {
    Ok(match cfg.kind {
        AuthKind::Static => Tickets::Static(cfg.principals.clone()),
        AuthKind::Dynamic => Tickets::Dynamic(Authenticator {
            procedure: cfg.authenticator.clone().unwrap_or_default(),
            realm: cfg.authenticator_realm.clone(),
        }),
        AuthKind::Jwt => {
            let Some(jwks) = &cfg.jwks else {
                return Err("ticket type jwt needs `jwks`".into());
            };
            Tickets::Jwt {
                validator: jwt::JwtValidator::from_jwks_file(
                    &base_dir.join(jwks),
                    cfg.issuer.clone(),
                    cfg.audience.clone(),
                    cfg.leeway.unwrap_or(0),
                )?,
                authid_claim: cfg.authid_claim.clone().unwrap_or_else(|| "sub".into()),
                role_claim: cfg.role_claim.clone().unwrap_or_else(|| "role".into()),
            }
        }
    })
}

/// What every method needs to know about the HELLO it answers.
struct Context<'a> {
    conn: &'a ConnectionInfo,
    realms: &'a RealmRegistry,
    realm: &'a str,
    session: SessionId,
    authid: Option<&'a str>,
    authextra: &'a Dict,
}

impl Context<'_> {
    /// The principal's authid, which static methods need.
    fn required_authid(&self, method: &str) -> Result<&str, Denied> {
        self.authid.ok_or_else(|| {
            Denied::new(
                errors::NO_SUCH_PRINCIPAL,
                format!("{method} authentication needs HELLO.Details.authid"),
            )
        })
    }

    fn no_such_principal(&self, method: &str, authid: &str) -> Denied {
        Denied::new(
            errors::NO_SUCH_PRINCIPAL,
            format!("no {method} principal {authid:?}"),
        )
    }

    /// The details an authenticator gets (Crossbar's): the HELLO's authid and authextra, the method,
    /// the session id and the transport.
    fn authenticator_details(&self, method: &str) -> Dict {
        let mut d = Dict::new();
        d.insert("authmethod".into(), method.into());
        if let Some(authid) = self.authid {
            d.insert("authid".into(), authid.into());
        }
        d.insert("authextra".into(), Value::Dict(self.authextra.clone()));
        d.insert("realm".into(), self.realm.into());
        d.insert("session".into(), self.session.0.into());
        d.insert("transport".into(), Value::Dict(self.conn.details()));
        d
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

/// Sends CHALLENGE and waits for AUTHENTICATE: its signature and extra.
async fn challenge<T: Transport>(
    transport: &mut T,
    method: &str,
    extra: Dict,
) -> Result<(String, Dict), Denied> {
    let msg = Message::Challenge {
        method: method.to_owned(),
        extra,
    };
    crate::session::send_now(transport, &msg).await;
    let answer = tokio::time::timeout(AUTHENTICATE_TIMEOUT, transport.recv()).await;
    let bytes = match answer {
        Ok(Ok(Some(bytes))) => bytes,
        Ok(_) => {
            return Err(Denied::new(
                errors::AUTHENTICATION_FAILED,
                "the connection ended during authentication",
            ));
        }
        Err(_) => {
            return Err(Denied::new(
                errors::AUTHENTICATION_FAILED,
                "no AUTHENTICATE within the authentication timeout",
            ));
        }
    };
    match codec::decode(transport.serializer(), &bytes) {
        Ok(Message::Authenticate { signature, extra }) => Ok((signature, extra)),
        Ok(Message::Abort { reason, .. }) => Err(Denied::new(
            errors::AUTHENTICATION_FAILED,
            format!("the client gave up authenticating ({reason})"),
        )),
        Ok(other) => Err(Denied::new(
            errors::PROTOCOL_VIOLATION,
            format!("expected AUTHENTICATE, got {}", other.message_type().name()),
        )),
        Err(e) => Err(Denied::new(errors::PROTOCOL_VIOLATION, e.to_string())),
    }
}

fn denied(message: &str) -> Denied {
    Denied::new(errors::AUTHENTICATION_DENIED, message)
}

/// A static principal's identity, before the role is checked by the handshake. A principal with a
/// `realm` joins that realm whatever HELLO asked for, as in Crossbar.
fn authenticated(
    authid: String,
    authrole: String,
    authmethod: &'static str,
    realm: Option<&String>,
) -> Authenticated {
    Authenticated {
        authid,
        authrole,
        authmethod,
        authprovider: "static",
        authextra: Dict::new(),
        realm: realm.cloned(),
    }
}

async fn ticket<T: Transport>(
    transport: &mut T,
    ctx: &Context<'_>,
    tickets: &Tickets,
) -> Result<Authenticated, Denied> {
    // A static principal must exist before we ask for its ticket.
    let principal = match tickets {
        Tickets::Static(principals) => {
            let authid = ctx.required_authid("ticket")?;
            let p = principals
                .get(authid)
                .ok_or_else(|| ctx.no_such_principal("ticket", authid))?;
            Some((authid, p))
        }
        _ => None,
    };
    let (signature, _) = challenge(transport, "ticket", Dict::new()).await?;
    match tickets {
        Tickets::Static(_) => {
            let Some((authid, p)) = principal else {
                return Err(denied("no principal"));
            };
            if !constant_time_eq(signature.as_bytes(), p.ticket.as_bytes()) {
                return Err(denied("invalid ticket"));
            }
            Ok(authenticated(
                authid.to_owned(),
                p.role.clone(),
                "ticket",
                p.realm.as_ref(),
            ))
        }
        Tickets::Dynamic(authenticator) => {
            let mut details = ctx.authenticator_details("ticket");
            details.insert("ticket".into(), signature.into());
            let answer = authenticator.authenticate(ctx, details).await?;
            answer.into_authenticated(ctx, "ticket")
        }
        Tickets::Jwt {
            validator,
            authid_claim,
            role_claim,
        } => {
            let claims = validator
                .validate(&signature)
                .map_err(|why| denied(&format!("invalid token: {why}")))?;
            let claim = |name: &str| claims.get(name).and_then(serde_json::Value::as_str);
            let authid = claim(authid_claim)
                .ok_or_else(|| denied(&format!("the token has no {authid_claim:?} claim")))?;
            let role = claim(role_claim)
                .ok_or_else(|| denied(&format!("the token has no {role_claim:?} claim")))?;
            if let Some(asked) = ctx.authid
                && asked != authid
            {
                return Err(denied("the token is for another authid than HELLO's"));
            }
            Ok(Authenticated {
                authprovider: "jwt",
                ..authenticated(authid.to_owned(), role.to_owned(), "ticket", None)
            })
        }
    }
}

/// Where a WAMP-CRA or WAMP-SCRAM principal came from: the config, or an authenticator's answer
/// (which then also decides the identity: its authid, realm and extra).
enum Source<P> {
    Static(P),
    Dynamic(P, Answer),
}

impl<P> Source<P> {
    fn principal(&self) -> &P {
        match self {
            Source::Static(p) | Source::Dynamic(p, _) => p,
        }
    }

    fn provider(&self) -> &'static str {
        match self {
            Source::Static(_) => "static",
            Source::Dynamic(..) => "dynamic",
        }
    }

    /// The identity after a successful exchange.
    fn identity(
        self,
        ctx: &Context<'_>,
        method: &'static str,
        authid: &str,
        role: impl Fn(&P) -> &String,
        realm: impl Fn(&P) -> Option<&String>,
    ) -> Result<Authenticated, Denied> {
        match self {
            Source::Static(p) => Ok(authenticated(
                authid.to_owned(),
                role(&p).clone(),
                method,
                realm(&p),
            )),
            Source::Dynamic(_, answer) => answer.into_authenticated(ctx, method),
        }
    }
}

async fn wampcra_exchange<T: Transport>(
    transport: &mut T,
    ctx: &Context<'_>,
    principals: &Principals<WampCraPrincipal>,
    derived_keys: &HashMap<String, Vec<u8>>,
) -> Result<Authenticated, Denied> {
    let authid = ctx.required_authid("wampcra")?;
    let source = match principals {
        Principals::Static(map) => Source::Static(
            map.get(authid)
                .cloned()
                .ok_or_else(|| ctx.no_such_principal("wampcra", authid))?,
        ),
        Principals::Dynamic(authenticator) => {
            let answer = authenticator
                .authenticate(ctx, ctx.authenticator_details("wampcra"))
                .await?;
            Source::Dynamic(answer.wampcra_principal()?, answer)
        }
    };
    let principal = source.principal();
    let salting = wampcra_salting(principal);
    let key = match (&source, derived_keys.get(authid)) {
        // Static salted keys are derived once, when the config is loaded.
        (Source::Static(_), Some(key)) => key.clone(),
        (_, _) if salting.is_some() => {
            // PBKDF2 takes as long as the authenticator asked for: not on a runtime thread.
            let (secret, salting) = (principal.secret.clone(), salting.clone());
            tokio::task::spawn_blocking(move || wampcra::signing_key(&secret, salting.as_ref()))
                .await
                .map_err(|_| {
                    Denied::new(errors::AUTHENTICATION_FAILED, "deriving the key failed")
                })?
        }
        _ => wampcra::signing_key(&principal.secret, None),
    };
    let text = wampcra::challenge_text(authid, &principal.role, source.provider(), ctx.session.0);
    let mut extra = Dict::new();
    extra.insert("challenge".into(), text.as_str().into());
    if let Some(s) = &salting {
        extra.insert("salt".into(), s.salt.as_str().into());
        extra.insert("iterations".into(), u64::from(s.iterations).into());
        extra.insert("keylen".into(), (s.keylen as u64).into());
    }
    let (signature, _) = challenge(transport, "wampcra", extra).await?;
    if !wampcra::verify(&key, &text, &signature) {
        return Err(denied("invalid signature"));
    }
    source.identity(ctx, "wampcra", authid, |p| &p.role, |p| p.realm.as_ref())
}

/// The PBKDF2 parameters of a salted WAMP-CRA principal (Autobahn's defaults where absent).
fn wampcra_salting(p: &WampCraPrincipal) -> Option<wampcra::Salting> {
    p.salt.as_ref().map(|salt| wampcra::Salting {
        salt: salt.clone(),
        iterations: p.iterations.unwrap_or(1000),
        keylen: p.keylen.unwrap_or(32),
    })
}

async fn scram_exchange<T: Transport>(
    transport: &mut T,
    ctx: &Context<'_>,
    principals: &Principals<ScramPrincipal>,
) -> Result<Authenticated, Denied> {
    let authid = ctx.required_authid("scram")?;
    let Some(client_nonce) = ctx.authextra.get("nonce").and_then(Value::as_str) else {
        return Err(Denied::new(
            errors::AUTHENTICATION_FAILED,
            "WAMP-SCRAM needs HELLO.Details.authextra.nonce",
        ));
    };
    // The nonce goes into the comma-separated AuthMessage as is.
    if client_nonce.is_empty() || client_nonce.contains(',') {
        return Err(Denied::new(
            errors::AUTHENTICATION_FAILED,
            "the WAMP-SCRAM nonce must be a non-empty base64 string",
        ));
    }
    let binding = ctx.channel_binding()?;
    let source = match principals {
        Principals::Static(map) => Source::Static(
            map.get(authid)
                .cloned()
                .ok_or_else(|| ctx.no_such_principal("scram", authid))?,
        ),
        Principals::Dynamic(authenticator) => {
            let answer = authenticator
                .authenticate(ctx, ctx.authenticator_details("scram"))
                .await?;
            Source::Dynamic(answer.scram_principal()?, answer)
        }
    };
    let credential = scram_credential(source.principal()).map_err(|why| {
        Denied::new(
            errors::AUTHENTICATION_FAILED,
            format!("the SCRAM credential of {authid:?} is unusable: {why}"),
        )
    })?;
    let (exchange, extra) = scram::ScramExchange::start(authid, client_nonce, credential, binding);
    let (signature, extra) = challenge(transport, "scram", extra).await?;
    let server_signature = exchange
        .finish(&signature, &extra)
        .map_err(|why| denied(&format!("invalid proof: {why}")))?;
    let mut done = source.identity(ctx, "scram", authid, |p| &p.role, |p| p.realm.as_ref())?;
    done.authextra
        .insert("scram_server_signature".into(), server_signature.into());
    Ok(done)
}

/// The stored credential of a SCRAM principal.
pub fn scram_credential(p: &ScramPrincipal) -> Result<scram::ScramCredential, String> {
    let kdf = match p.kdf.as_str() {
        "argon2id-13" => scram::Kdf::Argon2id13 {
            memory: p.memory.ok_or("argon2id-13 needs `memory`")?,
        },
        "pbkdf2" => scram::Kdf::Pbkdf2,
        other => return Err(format!("unknown kdf {other:?} (argon2id-13 or pbkdf2)")),
    };
    let key = |name: &str, hex_text: &str| {
        hex::decode(hex_text).map_err(|_| format!("`{name}` is not hex"))
    };
    // As Crossbar: the config holds the salt in hex (what Autobahn's derive_scram_credential
    // writes), the client gets it in base64 and base64-decodes it for its KDF.
    let salt = key("salt", &p.salt)?;
    Ok(scram::ScramCredential {
        kdf,
        iterations: p.iterations,
        salt: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, salt),
        stored_key: key("stored-key", &p.stored_key)?,
        server_key: key("server-key", &p.server_key)?,
    })
}

async fn cryptosign_exchange<T: Transport>(
    transport: &mut T,
    ctx: &Context<'_>,
    principals: &Principals<CryptosignPrincipal>,
) -> Result<Authenticated, Denied> {
    let Some(pubkey_hex) = ctx.authextra.get("pubkey").and_then(Value::as_str) else {
        return Err(Denied::new(
            errors::AUTHENTICATION_FAILED,
            "WAMP-Cryptosign needs HELLO.Details.authextra.pubkey",
        ));
    };
    let Some(pubkey) = cryptosign::parse_public_key(pubkey_hex) else {
        return Err(denied(
            "authextra.pubkey is not an Ed25519 public key in hex",
        ));
    };
    let binding = ctx.channel_binding()?;
    let same_key = |k: &String| cryptosign::parse_public_key(k) == Some(pubkey);
    let identity = match principals {
        Principals::Static(map) => {
            let found = match ctx.authid {
                Some(authid) => map
                    .get_key_value(authid)
                    .ok_or_else(|| ctx.no_such_principal("cryptosign", authid))?,
                None => map
                    .iter()
                    .find(|(_, p)| p.authorized_keys.iter().any(same_key))
                    .ok_or_else(|| {
                        Denied::new(
                            errors::NO_SUCH_PRINCIPAL,
                            "no principal has this public key",
                        )
                    })?,
            };
            let (authid, p) = found;
            if !p.authorized_keys.iter().any(same_key) {
                return Err(denied(
                    "the public key is not authorized for this principal",
                ));
            }
            authenticated(
                authid.clone(),
                p.role.clone(),
                "cryptosign",
                p.realm.as_ref(),
            )
        }
        Principals::Dynamic(authenticator) => {
            let answer = authenticator
                .authenticate(ctx, ctx.authenticator_details("cryptosign"))
                .await?;
            // The authenticator vouches for the key: it must name the key the client signs with.
            let vouched = answer
                .field_str("pubkey")
                .and_then(cryptosign::parse_public_key);
            if vouched != Some(pubkey) {
                return Err(denied(
                    "the authenticator did not authorize this public key",
                ));
            }
            answer.into_authenticated(ctx, "cryptosign")?
        }
    };
    let nonce = cryptosign::new_challenge();
    let mut extra = Dict::new();
    extra.insert("challenge".into(), hex::encode(nonce).into());
    if let Some(b) = &binding {
        extra.insert("channel_binding".into(), b.kind.into());
    }
    let (signature, _) = challenge(transport, "cryptosign", extra).await?;
    if !cryptosign::verify(&pubkey, &nonce, binding.as_ref(), &signature) {
        return Err(denied("invalid signature"));
    }
    let mut done = identity;
    done.authextra.insert("pubkey".into(), pubkey_hex.into());
    Ok(done)
}

async fn tls_certificate(
    ctx: &Context<'_>,
    principals: &Principals<TlsPrincipal>,
    cert: &ClientCertificate,
) -> Result<Authenticated, Denied> {
    let matches = |authid: &str, p: &TlsPrincipal| match &p.certificate_sha1 {
        Some(fingerprint) => cert.matches_sha1(fingerprint),
        None => cert.common_name.as_deref() == Some(authid),
    };
    match principals {
        Principals::Static(map) => {
            // The certificate decides who the client is, as in Crossbar: HELLO's authid only
            // picks among the principals the certificate matches.
            let preferred = ctx
                .authid
                .and_then(|a| map.get_key_value(a))
                .filter(|(a, p)| matches(a, p));
            let (authid, p) = preferred
                .or_else(|| map.iter().find(|(a, p)| matches(a, p)))
                .ok_or_else(|| {
                    Denied::new(
                        errors::NO_SUCH_PRINCIPAL,
                        "no principal matches the client certificate",
                    )
                })?;
            Ok(authenticated(
                authid.clone(),
                p.role.clone(),
                "tls",
                p.realm.as_ref(),
            ))
        }
        Principals::Dynamic(authenticator) => {
            let answer = authenticator
                .authenticate(ctx, ctx.authenticator_details("tls"))
                .await?;
            answer.into_authenticated(ctx, "tls")
        }
    }
}

/// Constant-time equality of two byte strings (the length is not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_fingerprints_compare_in_any_spelling() {
        let cert = ClientCertificate {
            sha1: "B6:E5:00:0A".into(),
            common_name: None,
        };
        assert!(cert.matches_sha1("b6:e5:00:0a"));
        assert!(cert.matches_sha1("B6E5000A"));
        assert!(!cert.matches_sha1("B6:E5:00:0B"));
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
