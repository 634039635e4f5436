//! The opening handshake: HELLO in; CHALLENGE and AUTHENTICATE when the authentication method
//! has them; WELCOME or ABORT out (spec, "Session Establishment").
//!
//! Authentication itself is a state machine without I/O (`crate::auth`): this file drives it,
//! sending the CHALLENGE it asks for and handing it the AUTHENTICATE that comes back, or the
//! reason none did (an ABORT, a timeout, a dropped connection, another message).

use std::sync::Arc;

use switchboard_proto::ids::random_global_id;
use switchboard_proto::{Dict, Message, Serializer, Uri, UriMatch, Value, codec, errors};
use switchboard_transport::Transport;
use tracing::debug;

use super::authorize::DynamicAuthorization;
use super::{HELLO_TIMEOUT, SessionConfig, TrustedIdentity, send_now};
use crate::auth::{
    AUTHENTICATE_TIMEOUT, Authenticated, ConnectionInfo, Denied, EndpointAuth, HelloRequest,
    HelloStep,
};
use crate::peer::{self, Connection, Identity, LinkPeer, Peer, SessionId};
use crate::realm::authz::{Role, TRUSTED_ROLE};
use crate::realm::stats::OTHER_AUTH_METHOD;
use crate::realm::{Realm, Visibility};

/// A session that passed the handshake.
pub(super) struct Joined {
    pub(super) realm: Arc<Realm>,
    pub(super) role: Arc<Role>,
    /// The realm's roles epoch the role was looked up under.
    pub(super) role_epoch: u64,
    pub(super) peer: Peer,
    pub(super) outbox: peer::Outbox,
    /// Whether the realm lists the session.
    pub(super) visibility: Visibility,
    /// The dynamic authorizer's side of the session, when its role has one.
    pub(super) dynamic: Option<Box<DynamicAuthorization>>,
}

/// The opening handshake. Returns `None` after sending ABORT (or when the peer went away).
pub(super) async fn handshake<T: Transport>(
    transport: &mut T,
    cfg: &SessionConfig,
    auth: Arc<EndpointAuth>,
    conn: Box<ConnectionInfo>,
) -> Option<Joined> {
    let first = tokio::select! {
        r = tokio::time::timeout(HELLO_TIMEOUT, transport.recv()) => r,
        _ = cfg.shutdown.cancelled() => return None,
    };
    let bytes = match first {
        Ok(Ok(Some(bytes))) => bytes,
        Ok(Ok(None)) => return None,
        Ok(Err(e)) => {
            debug!("connection failed before HELLO: {e}");
            return None;
        }
        Err(_) => {
            send_now(
                transport,
                &Message::abort(
                    errors::PROTOCOL_VIOLATION,
                    "no HELLO within the handshake timeout",
                ),
            )
            .await;
            return None;
        }
    };
    let serializer = transport.serializer();
    let outcome = async {
        let (realm, details) = read_hello(cfg, serializer, &bytes)?;
        // Until it joined or was refused: a realm a template just created stays meanwhile.
        let _joining = realm.joining();
        let session = SessionId(random_global_id());
        let request = HelloRequest {
            conn: &conn,
            realms: &cfg.realms,
            realm: realm.name(),
            details: &details,
            session,
        };
        let verdict = authenticate(transport, &auth, request).await;
        match &verdict {
            Ok(who) => realm.stats.authenticated(who.authmethod, true),
            Err(denied) if denied.failed_attempt => realm
                .stats
                .authenticated(denied.method.unwrap_or(OTHER_AUTH_METHOD), false),
            Err(_) => {}
        }
        let who = verdict.map_err(Refusal::from)?;
        let peer_max = transport.peer_max_message_bytes();
        let newcomer = Newcomer {
            realm,
            details,
            session,
            who,
            conn: Some(&conn),
            visibility: Visibility::Listed,
            serializer,
            peer_max_message_bytes: peer_max,
            sees_callers: false,
            link: None,
        };
        admit(cfg, newcomer)
    }
    .await;
    match outcome {
        Ok((joined, welcome)) => {
            send_now(transport, &welcome).await;
            Some(joined)
        }
        Err(refusal) => {
            send_now(transport, &refusal.abort()).await;
            None
        }
    }
}

/// Why a HELLO is refused: the ABORT's reason and text.
#[derive(Debug)]
pub(super) struct Refusal {
    reason: String,
    text: String,
}

impl Refusal {
    fn new(reason: &str, text: String) -> Self {
        Self {
            reason: reason.to_owned(),
            text,
        }
    }

    /// The ABORT that says it.
    pub(super) fn abort(self) -> Message {
        Message::abort(&self.reason, self.text)
    }
}

impl From<Denied> for Refusal {
    fn from(denied: Denied) -> Self {
        Self {
            reason: denied.reason,
            text: denied.message,
        }
    }
}

/// The realm HELLO asks for and HELLO's details, checked (spec, "HELLO"); `Err` is the ABORT
/// to answer with.
pub(super) fn read_hello(
    cfg: &SessionConfig,
    serializer: Serializer,
    bytes: &bytes::Bytes,
) -> Result<(Arc<Realm>, Dict), Refusal> {
    let abort = Refusal::new;
    let (realm_name, details) = match codec::decode(serializer, bytes) {
        Ok(Message::Hello { realm, details }) => (realm, details),
        Ok(other) => {
            let text = format!("expected HELLO, got {}", other.message_type().name());
            return Err(abort(errors::PROTOCOL_VIOLATION, text));
        }
        Err(e) => return Err(abort(errors::PROTOCOL_VIOLATION, e.to_string())),
    };
    // spec, "HELLO": Details.roles announces at least one client role.
    let announces_a_role = details
        .get("roles")
        .and_then(Value::as_dict)
        .is_some_and(|roles| !roles.is_empty());
    if !announces_a_role {
        let text = "HELLO.Details.roles must announce at least one role".to_owned();
        return Err(abort(errors::PROTOCOL_VIOLATION, text));
    }
    if Uri::parse_loose(&realm_name, UriMatch::Exact).is_err() {
        let text = format!("{realm_name:?} is not a valid realm URI");
        return Err(abort(errors::INVALID_URI, text));
    }
    match cfg.realms.get_or_create(&realm_name) {
        Some(realm) => Ok((realm, details)),
        None => {
            let text = format!("no realm named {realm_name:?} on this router");
            Err(abort(errors::NO_SUCH_REALM, text))
        }
    }
}

/// A session that passed authentication (or was vouched for), about to join.
pub(super) struct Newcomer<'a> {
    /// The realm HELLO asked for.
    pub(super) realm: Arc<Realm>,
    /// HELLO.Details.
    pub(super) details: Dict,
    /// The id the session gets.
    pub(super) session: SessionId,
    /// Who it is.
    pub(super) who: Authenticated,
    /// What the connection knows about the client; `None` for an in-process session.
    pub(super) conn: Option<&'a ConnectionInfo>,
    /// Whether the realm lists it.
    pub(super) visibility: Visibility,
    /// The serializer it speaks.
    pub(super) serializer: Serializer,
    /// The largest message it accepts, if it said.
    pub(super) peer_max_message_bytes: Option<usize>,
    /// Whether its invocations always name the caller (a trusted in-process bridge).
    pub(super) sees_callers: bool,
    /// The link an in-process session is the local end of (socket sessions say it in HELLO).
    pub(super) link: Option<LinkPeer>,
}

/// Joins a newcomer to its realm with its role; returns the joined session and the WELCOME to
/// send, or the ABORT to send (no such realm or role).
pub(super) fn admit(cfg: &SessionConfig, n: Newcomer<'_>) -> Result<(Joined, Message), Refusal> {
    let Newcomer {
        realm,
        details,
        session,
        who,
        conn,
        visibility,
        serializer,
        peer_max_message_bytes,
        sees_callers,
        link,
    } = n;
    // A dynamic authenticator may put the session into another realm than HELLO asked for.
    let realm = match &who.realm {
        Some(other) if other != realm.name() => {
            cfg.realms.get_or_create(other).ok_or_else(|| {
                let text =
                    format!("the authenticator assigned realm {other:?}, which does not exist");
                Refusal::new(errors::NO_SUCH_REALM, text)
            })?
        }
        _ => realm,
    };
    if realm.is_draining() {
        let text = "the router is shutting down and admits no new session".to_owned();
        return Err(Refusal::new(errors::SYSTEM_SHUTDOWN, text));
    }
    // Only the router's own sessions may fall back on the built-in trusted role.
    let builtin =
        (conn.is_none() && who.authrole == TRUSTED_ROLE).then(|| Arc::new(Role::trusted()));
    // Read before the role: a reload between the two makes the session look its role up again.
    let role_epoch = realm.roles_epoch();
    let Some(role) = realm.role(&who.authrole).or(builtin) else {
        let text = format!("realm {:?} has no role {:?}", realm.name(), who.authrole);
        return Err(Refusal::new(errors::NO_SUCH_ROLE, text));
    };
    if let Some(c) = conn.and_then(|c| c.cookie.as_ref())
        && c.fresh
    {
        c.jar.remember(&c.id, realm.name(), &who);
    }
    // Only a role that may link makes a session a link: a client says which router it comes
    // from in HELLO.Details.authextra.x_link; an in-process session is the local end of a link
    // only when its embedder says so (other `trusted` sessions are not links).
    let link = if conn.is_some() {
        role.may_link().then(|| link_from_hello(&details))
    } else {
        link.filter(|_| role.may_link())
    }
    .map(Arc::new);
    let identity = Identity {
        session,
        authid: who.authid.clone(),
        authrole: role.name().to_owned(),
        authmethod: who.authmethod,
        authprovider: who.authprovider,
        sees_callers: sees_callers || link.is_some(),
        listed: visibility == crate::realm::Visibility::Listed,
        link,
    };
    let connection = conn.map_or(Connection::IN_PROCESS, |c| Connection {
        transport: c.transport,
        peer_addr: c.peer_addr,
    });
    let (peer, outbox) = Peer::new(
        identity,
        connection,
        client_features(&details),
        serializer,
        peer_max_message_bytes,
        cfg.outbox_capacity,
    );
    realm.join(&peer, visibility);
    let welcome = welcome(session, realm.name(), &who);
    // Only a dynamically authorized session keeps these: every other session would carry them for
    // nothing (idle memory per session counts).
    let dynamic = role.authorizer().map(|_| {
        let mut d = Dict::new();
        d.insert("session".into(), session.0.into());
        d.insert("authid".into(), who.authid.as_str().into());
        d.insert("authrole".into(), who.authrole.as_str().into());
        d.insert("authmethod".into(), who.authmethod.into());
        d.insert("authprovider".into(), who.authprovider.into());
        d.insert("authextra".into(), Value::Dict(who.authextra.clone()));
        let transport = conn.map_or_else(in_process_details, ConnectionInfo::details);
        d.insert("transport".into(), Value::Dict(transport));
        Box::new(DynamicAuthorization {
            details: d,
            cache: Default::default(),
        })
    });
    let joined = Joined {
        realm,
        role,
        role_epoch,
        peer,
        outbox,
        visibility,
        dynamic,
    };
    Ok((joined, welcome))
}

/// Runs the endpoint's authentication for a HELLO, driving its CHALLENGE/AUTHENTICATE exchange.
async fn authenticate<T: Transport>(
    transport: &mut T,
    auth: &EndpointAuth,
    request: HelloRequest<'_>,
) -> Result<Authenticated, Denied> {
    // The auth futures are boxed: awaited inline they would be part of the session task's future,
    // which keeps its size for the whole life of the session (2,968 bytes inline, 2,336 boxed,
    // with RawSocket; one allocation per HELLO and one per AUTHENTICATE).
    match Box::pin(auth.hello(request)).await? {
        HelloStep::Welcome(who) => Ok(who),
        HelloStep::Challenge {
            method,
            extra,
            pending,
        } => {
            let challenge = Message::Challenge {
                method: method.to_owned(),
                extra,
            };
            send_now(transport, &challenge).await;
            match read_authenticate(transport).await {
                Ok((signature, extra)) => Box::pin(pending.authenticate(&signature, &extra)).await,
                Err(why) => Err(pending.abandon(why)),
            }
        }
    }
}

/// The identity an embedder vouches for, once HELLO asked for its realm.
pub(super) fn vouched(
    identity: &TrustedIdentity,
    hello_realm: &str,
) -> Result<Authenticated, Denied> {
    if identity.realm != hello_realm {
        return Err(Denied::new(
            errors::NO_SUCH_REALM,
            format!(
                "this in-process session may only join realm {:?}, not {hello_realm:?}",
                identity.realm
            ),
        ));
    }
    Ok(Authenticated {
        authid: identity.authid.clone(),
        authrole: identity.authrole.clone(),
        authmethod: "trusted",
        authprovider: "embedded",
        authextra: identity.authextra.clone(),
        realm: None,
    })
}

/// What a dynamic authorizer is told about the transport of an in-process session.
fn in_process_details() -> Dict {
    let mut d = Dict::new();
    d.insert("type".into(), "inprocess".into());
    d
}

/// Waits for the client's answer to a CHALLENGE: AUTHENTICATE's signature and extra, or why there
/// is none (spec, "Authentication": the client may ABORT instead).
async fn read_authenticate<T: Transport>(transport: &mut T) -> Result<(String, Dict), Denied> {
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

/// The client features of HELLO.Details.roles the dealer acts on.
fn client_features(details: &Dict) -> peer::ClientFeatures {
    let feature = |role: &str, name: &str| {
        details
            .get("roles")
            .and_then(Value::as_dict)
            .and_then(|r| r.get(role))
            .and_then(Value::as_dict)
            .and_then(|c| c.get("features"))
            .and_then(Value::as_dict)
            .and_then(|f| f.get(name))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    // The spec's feature list spells it call_canceling; its progressive call invocations section
    // writes call_cancelling. Accept both.
    let cancels = feature("callee", "call_canceling") || feature("callee", "call_cancelling");
    peer::ClientFeatures {
        callee_call_canceling: cancels,
        callee_progressive_call_results: feature("callee", "progressive_call_results"),
        // spec: a callee without call canceling does not support progressive call invocations.
        callee_progressive_call_invocations: cancels
            && feature("callee", "progressive_call_invocations"),
        caller_progressive_call_invocations: feature("caller", "progressive_call_invocations"),
    }
}

/// WELCOME, announcing exactly the features this router implements.
fn welcome(session: SessionId, realm: &str, who: &Authenticated) -> Message {
    let features = |list: &[&str]| {
        let mut f = Dict::new();
        for name in list {
            f.insert((*name).to_owned(), Value::Bool(true));
        }
        let mut role = Dict::new();
        role.insert("features".into(), Value::Dict(f));
        Value::Dict(role)
    };
    let mut roles = Dict::new();
    roles.insert(
        "broker".into(),
        features(&[
            "publisher_exclusion",
            "publisher_identification",
            "subscriber_blackwhite_listing",
            "pattern_based_subscription",
            "event_retention",
            "event_history",
            "session_meta_api",
            "subscription_meta_api",
            "subscription_revocation",
            "testament_meta_api",
            "payload_passthru_mode",
        ]),
    );
    roles.insert(
        "dealer".into(),
        features(&[
            "pattern_based_registration",
            "shared_registration",
            "progressive_call_results",
            "call_timeout",
            "call_canceling",
            "caller_identification",
            "progressive_call_invocations",
            "session_meta_api",
            "registration_meta_api",
            "registration_revocation",
            "testament_meta_api",
            "payload_passthru_mode",
        ]),
    );
    let mut details = Dict::new();
    details.insert("realm".into(), realm.into());
    details.insert("authid".into(), who.authid.as_str().into());
    details.insert("authrole".into(), who.authrole.as_str().into());
    details.insert("authmethod".into(), who.authmethod.into());
    details.insert("authprovider".into(), who.authprovider.into());
    if !who.authextra.is_empty() {
        details.insert("authextra".into(), Value::Dict(who.authextra.clone()));
    }
    details.insert("roles".into(), Value::Dict(roles));
    Message::Welcome {
        session: session.0,
        details,
    }
}

/// What a link's HELLO says about it: `authextra.x_link = {"node_id": ..., "mode": "mesh"|"tree"}`.
fn link_from_hello(details: &Dict) -> LinkPeer {
    let x_link = details
        .get("authextra")
        .and_then(Value::as_dict)
        .and_then(|a| a.get("x_link"))
        .and_then(Value::as_dict);
    let text = |key: &str| {
        x_link
            .and_then(|l| l.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    LinkPeer {
        node: text("node_id"),
        relay: text("mode") == "tree",
        shares_session_ids: false,
    }
}

#[cfg(test)]
mod tests {
    use switchboard_proto::Serializer;
    use switchboard_transport::rawsocket::{self, RawSocket};
    use switchboard_transport::{BoxedIo, DEFAULT_MAX_MESSAGE_BYTES};
    use tokio::io::AsyncReadExt as _;

    use super::*;

    /// The router's and the client's end of an in-memory RawSocket connection.
    async fn connection() -> (RawSocket, RawSocket) {
        let (router_io, client_io) = tokio::io::duplex(64 * 1024);
        let client = tokio::spawn(rawsocket::connect(
            Box::new(client_io),
            Serializer::Json,
            DEFAULT_MAX_MESSAGE_BYTES,
        ));
        let mut router_io: BoxedIo = Box::new(router_io);
        // The listener reads the first octet (RawSocket's magic) to tell RawSocket from HTTP.
        let mut magic = [0u8; 1];
        router_io.read_exact(&mut magic).await.unwrap();
        let router = rawsocket::accept(router_io, DEFAULT_MAX_MESSAGE_BYTES, &[Serializer::Json])
            .await
            .unwrap();
        (router, client.await.unwrap().unwrap())
    }

    /// An idle session costs its task's size: the established loop must not carry the
    /// handshake's state or a second copy of the transport (measured per session in
    /// `bench/results/2026-12-08-idle-memory.md`).
    #[tokio::test]
    async fn a_session_task_holds_its_transport_once_and_not_the_handshake() {
        let (router, _client) = connection().await;
        let transport = std::mem::size_of_val(&router);
        let cfg = SessionConfig::new(
            Arc::new(crate::realm::RealmRegistry::default()),
            tokio_util::sync::CancellationToken::new(),
        );
        let session = super::super::run(
            router,
            cfg,
            Arc::new(EndpointAuth::default()),
            Box::default(),
        );
        let size = std::mem::size_of_val(&session);
        assert!(
            size < transport + 1024,
            "a session's future is {size} bytes, its transport {transport}"
        );
    }

    /// What `read_authenticate` makes of the client sending `msg`.
    async fn answer_with(msg: Message) -> Result<(String, Dict), Denied> {
        let (mut router, mut client) = connection().await;
        send_now(&mut client, &msg).await;
        read_authenticate(&mut router).await
    }

    #[tokio::test]
    async fn authenticate_yields_its_signature_and_extra() {
        let mut extra = Dict::new();
        extra.insert("nonce".into(), "n".into());
        let answer = Message::Authenticate {
            signature: "sig".into(),
            extra: extra.clone(),
        };
        assert_eq!(answer_with(answer).await, Ok(("sig".into(), extra)));
    }

    #[tokio::test]
    async fn an_abort_instead_of_authenticate_is_the_client_giving_up() {
        let denied = answer_with(Message::abort("com.example.changed_mind", "bye"))
            .await
            .unwrap_err();
        assert_eq!(denied.reason, errors::AUTHENTICATION_FAILED);
        assert_eq!(
            denied.message,
            "the client gave up authenticating (com.example.changed_mind)"
        );
        assert!(!denied.failed_attempt);
    }

    #[tokio::test]
    async fn another_message_or_garbage_is_a_protocol_violation() {
        let denied = answer_with(Message::Goodbye {
            details: Dict::new(),
            reason: errors::CLOSE_NORMAL.into(),
        })
        .await
        .unwrap_err();
        assert_eq!(denied.reason, errors::PROTOCOL_VIOLATION);
        assert_eq!(denied.message, "expected AUTHENTICATE, got GOODBYE");
        let (mut router, mut client) = connection().await;
        client
            .feed(bytes::Bytes::from_static(b"[5,"))
            .await
            .unwrap();
        client.flush().await.unwrap();
        let denied = read_authenticate(&mut router).await.unwrap_err();
        assert_eq!(denied.reason, errors::PROTOCOL_VIOLATION);
    }

    #[tokio::test]
    async fn a_connection_that_ends_mid_challenge_is_reported() {
        let (mut router, client) = connection().await;
        drop(client);
        let denied = read_authenticate(&mut router).await.unwrap_err();
        assert_eq!(denied.reason, errors::AUTHENTICATION_FAILED);
        assert_eq!(denied.message, "the connection ended during authentication");
    }

    #[tokio::test(start_paused = true)]
    async fn silence_after_a_challenge_times_out() {
        let (mut router, _client) = connection().await;
        let started = tokio::time::Instant::now();
        let denied = read_authenticate(&mut router).await.unwrap_err();
        assert!(started.elapsed() >= AUTHENTICATE_TIMEOUT);
        assert_eq!(denied.reason, errors::AUTHENTICATION_FAILED);
        assert_eq!(
            denied.message,
            "no AUTHENTICATE within the authentication timeout"
        );
    }
}
