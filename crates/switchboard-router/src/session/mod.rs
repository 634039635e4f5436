//! Sessions: the opening handshake (HELLO -> WELCOME or ABORT), then the established session,
//! which routes the peer's PUBLISH and CALL on the session's own task and hands it what other
//! sessions queued into its outbox, until GOODBYE, a protocol violation, a dropped connection, a
//! kill or shutdown.
//!
//! A connection from outside ([`run`], one task per connection) and a session living in the
//! router's process ([`InlineSession`], made by the `embed` module) run this same code; they
//! differ in who drives it (the session's own task, or the in-process client's) and in how they
//! are admitted (authenticated, or vouched for by the embedder: [`TrustedIdentity`]).

mod authorize;
mod established;
mod handlers;
mod handshake;
mod inline;
mod procedures;

use std::sync::Arc;
use std::time::Duration;

use switchboard_proto::{Dict, Message, codec};
use switchboard_transport::Transport;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug_span};

use crate::auth::{ConnectionInfo, EndpointAuth};
use crate::peer::OUTBOX_CAPACITY_MESSAGES;
use crate::realm::{RealmRegistry, Visibility};
use established::Established;
use handshake::handshake;
pub use inline::InlineSession;

/// How long a new connection has to send HELLO.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the router waits for the peer's GOODBYE reply when it closes a session.
pub const GOODBYE_REPLY_TIMEOUT: Duration = Duration::from_secs(2);
/// How many queued messages are written before one flush.
const WRITE_BATCH_MESSAGES: usize = 64;
/// How long the router tries to deliver a session's last words (GOODBYE or ABORT) to a peer that may
/// have stopped reading.
pub const FINAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// What a session needs from the router and its transport's config.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// The realms sessions can join.
    pub realms: Arc<RealmRegistry>,
    /// Cancelled when the router shuts down.
    pub shutdown: CancellationToken,
    /// Outbox capacity per session.
    pub outbox_capacity: usize,
    /// How long a session's last words and closing handshake may take (the transport's
    /// `close_handshake_timeout`).
    pub final_write_timeout: Duration,
    /// The node's readiness, for the `health` and `metrics` web paths.
    pub status: Arc<crate::ops::NodeStatus>,
}

impl SessionConfig {
    /// A session config with the default anonymous role and outbox size.
    pub fn new(realms: Arc<RealmRegistry>, shutdown: CancellationToken) -> Self {
        Self {
            realms,
            shutdown,
            outbox_capacity: OUTBOX_CAPACITY_MESSAGES,
            final_write_timeout: FINAL_WRITE_TIMEOUT,
            status: Arc::new(crate::ops::NodeStatus::ready()),
        }
    }
}

/// Who an in-process session is. The embedder vouches for it, so HELLO's claims do not count;
/// WELCOME says `authmethod` `trusted` and `authprovider` `embedded`.
#[derive(Debug, Clone)]
pub struct TrustedIdentity {
    /// The realm the session joins (HELLO must name the same).
    pub realm: String,
    /// Its authid.
    pub authid: String,
    /// Its role: one of the realm's roles, or the built-in `trusted` role where the realm has
    /// no role of that name (see `Role::trusted`).
    pub authrole: String,
    /// What WELCOME.Details.authextra carries.
    pub authextra: Dict,
    /// Whether the realm's meta API lists it.
    pub visibility: Visibility,
    /// Whether its INVOCATIONs name the caller whatever the caller's role discloses: for the
    /// router's own trusted bridges (the PostgreSQL bridge hands the caller's identity to SQL),
    /// which, like an authorizer, belong to the router's trusted base.
    pub sees_callers: bool,
    /// Set for the local end of one of the node's own links (its role must be one that may
    /// link, such as the built-in `trusted`).
    pub link: Option<crate::peer::LinkPeer>,
}

impl TrustedIdentity {
    /// A listed session of `realm` as `authid` with `authrole`.
    pub fn new(
        realm: impl Into<String>,
        authid: impl Into<String>,
        authrole: impl Into<String>,
    ) -> Self {
        Self {
            realm: realm.into(),
            authid: authid.into(),
            authrole: authrole.into(),
            authextra: Dict::new(),
            visibility: Visibility::Listed,
            sees_callers: false,
            link: None,
        }
    }

    /// The same identity as the local end of a link to the router `link.node`.
    pub fn as_link(self, link: crate::peer::LinkPeer) -> Self {
        Self {
            link: Some(link),
            ..self
        }
    }

    /// The same identity, told who called in every INVOCATION (see `sees_callers`).
    pub fn seeing_callers(self) -> Self {
        Self {
            sees_callers: true,
            ..self
        }
    }

    /// The same identity, hidden from the realm's meta API.
    pub fn hidden(self) -> Self {
        Self {
            visibility: Visibility::Hidden,
            ..self
        }
    }

    /// The same identity with `authextra`.
    pub fn with_authextra(self, authextra: Dict) -> Self {
        Self { authextra, ..self }
    }
}

/// Runs a session on `transport` until it ends: authenticated by `auth`, with what the connection
/// knows about its client in `conn`.
///
/// Not an `async fn`: one stores its arguments twice (as passed and as bound), and a WebSocket
/// transport is close to a kilobyte. The block below keeps `transport` where it was captured and
/// only lends it out, so every idle session's task holds it once.
#[allow(clippy::manual_async_fn)]
pub fn run<T: Transport>(
    mut transport: T,
    cfg: SessionConfig,
    auth: Arc<EndpointAuth>,
    mut conn: Box<ConnectionInfo>,
) -> impl std::future::Future<Output = ()> + Send {
    async move {
        let serializer = transport.serializer();
        // Counts the connection as open while the session lasts (the handshake frees `conn`).
        let _open = conn.open.take();
        // The handshake's state (what only authentication needs) lives on the heap while it
        // runs, so that it does not size every established session's task.
        let Some(joined) = Box::pin(handshake(&mut transport, &cfg, auth, conn)).await else {
            transport.close().await;
            return;
        };
        let (mut session, outbox) = Established::new(joined);
        // A debug-level span: entering and leaving it on every poll of the session costs about 3%
        // of the router's CPU under load (perf), so it is only active when debug logging is on,
        // which is also the only level sessions log at.
        let span = debug_span!(
            "session",
            id = session.peer.id().0,
            realm = session.realm.name(),
            authid = %session.peer.identity().authid,
            authrole = %session.peer.identity().authrole,
            serializer = serializer.name(),
        );
        session
            .run(&mut transport, outbox, &cfg)
            .instrument(span)
            .await;
    }
}

/// Sends one router message directly on the transport (used before the outbox exists and for the
/// last words of a session).
pub(crate) async fn send_now<T: Transport>(transport: &mut T, msg: &Message) {
    match codec::encode(transport.serializer(), msg) {
        Ok(bytes) => {
            if transport.feed(bytes).await.is_ok() {
                let _ = transport.flush().await;
            }
        }
        Err(e) => tracing::error!("cannot encode router message: {e}"),
    }
}
