//! Sessions that live in the router's own process: components an embedder hosts, and (as they
//! come) bridges, the local side of links and the management API. Everything that plugs into the
//! router is a WAMP session; this module is how one joins without a socket.
//!
//! An in-process session is a [`switchboard_client::Session`] whose transport is the router's side
//! of the session itself ([`InlineSession`]): what the client sends is handled inline, on the
//! client's own task, by exactly the code that handles a socket session's messages (the same
//! authorization, so a denied action is denied; the same meta events, testaments and clean-up when
//! it ends), and what the router queues for it is read from its outbox. The node counts it among
//! its sessions, so shutdown tells it GOODBYE `wamp.close.system_shutdown` and waits for it. The
//! only difference from a socket session is the admission: the embedder vouches for its identity
//! ([`TrustedIdentity`]) instead of authenticating it.
//!
//! Messages stay encoded (MessagePack) between the client and the router, which keeps one code
//! path; what the inline design saves is the router's own task per session and the task switches
//! in and out of it. `bench/results/` has what an in-process call and publication cost, next to
//! the same over WebSocket and next to a design with a router task per in-process session.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt as _;
use switchboard_client::{JoinOptions, Session};
use switchboard_proto::Serializer;
use tokio_util::task::TaskTracker;

use crate::session::SessionConfig;
pub use crate::session::{InlineSession, TrustedIdentity};

/// The serializer in-process sessions speak: MessagePack keeps binary values as they are and is
/// the cheapest of the three to encode and decode.
pub const IN_PROCESS_SERIALIZER: Serializer = Serializer::MsgPack;

/// An application component hosted in the router's process: it gets a joined session and may
/// register procedures, subscribe, call and publish through it, under its role's permissions.
///
/// ```no_run
/// use switchboard_client::{Args, RegisterOptions, Session};
/// use switchboard_router::embed::{Component, ComponentError};
///
/// struct Adder;
///
/// impl Component for Adder {
///     async fn on_join(&self, session: Session) -> Result<(), ComponentError> {
///         session
///             .register("com.example.add2", RegisterOptions::default(), |call| async move {
///                 let sum: i64 = call.positional().iter().filter_map(|v| v.as_i64()).sum();
///                 Ok(Args::positional(vec![sum.into()]))
///             })
///             .await?;
///         Ok(())
///     }
/// }
/// ```
pub trait Component: Send + Sync + 'static {
    /// Runs once the component's session has joined. The session stays joined after this
    /// returns `Ok` (its registrations and subscriptions keep serving) until the router ends it
    /// (shutdown, `wamp.session.kill`) or the component leaves. An `Err`, or a panic, ends only
    /// this session: it is logged and the session leaves.
    fn on_join(&self, session: Session) -> impl Future<Output = Result<(), ComponentError>> + Send;
}

/// What a component's `on_join` may fail with.
pub type ComponentError = Box<dyn std::error::Error + Send + Sync>;

/// Joins in-process sessions to a running node; cheap to clone.
#[derive(Debug, Clone)]
pub struct InProcess {
    sessions: SessionConfig,
    tracker: TaskTracker,
}

impl InProcess {
    /// In-process sessions on the node's realms, tracked (and shut down) with its other sessions.
    pub(crate) fn new(sessions: SessionConfig, tracker: TaskTracker) -> Self {
        Self { sessions, tracker }
    }

    /// The router's side of a new in-process session as `identity`, for a client to join over
    /// (what [`Self::join`] does with `switchboard-client`).
    pub fn transport(&self, identity: TrustedIdentity) -> InlineSession {
        InlineSession::new(
            self.sessions.clone(),
            identity,
            IN_PROCESS_SERIALIZER,
            self.tracker.token(),
        )
    }

    /// Joins a session as `identity` (its realm must exist, and its role must be one of the
    /// realm's or the built-in `trusted`; otherwise the join fails with the router's ABORT).
    pub async fn join(
        &self,
        identity: TrustedIdentity,
    ) -> Result<Session, switchboard_client::Error> {
        let join = JoinOptions::new(identity.realm.clone());
        Session::join(self.transport(identity), &join).await
    }

    /// Hosts `component` in a session joined as `identity`: joins (an `Err` when the router
    /// refuses it), then runs its `on_join` on its own task, which keeps the session open until
    /// it ends. Returns a handle to the component's session.
    pub async fn host<C: Component>(
        &self,
        identity: TrustedIdentity,
        component: C,
    ) -> Result<Session, switchboard_client::Error> {
        let name = identity.authid.clone();
        let session = self.join(identity).await?;
        tokio::spawn(run_component(name, component, session.clone()));
        Ok(session)
    }
}

/// The in-process session of a web path that acts for HTTP clients (an HTTP bridge path, an
/// upload path's progress events): joined on first use, and joined again after it was closed (a
/// kill through the meta API, a failure).
#[derive(Debug)]
pub struct SessionOnDemand {
    identity: TrustedIdentity,
    slot: tokio::sync::Mutex<Option<Session>>,
}

impl SessionOnDemand {
    /// A session that will join as `identity`.
    pub fn new(identity: TrustedIdentity) -> Self {
        Self {
            identity,
            slot: tokio::sync::Mutex::new(None),
        }
    }

    /// The open session, joining it if there is none.
    pub async fn get(
        &self,
        sessions: &SessionConfig,
        tracker: &TaskTracker,
    ) -> Result<Session, switchboard_client::Error> {
        let mut slot = self.slot.lock().await;
        if let Some(session) = slot.as_ref().filter(|s| !s.is_closed()) {
            return Ok(session.clone());
        }
        let in_process = InProcess::new(sessions.clone(), tracker.clone());
        let session = in_process.join(self.identity.clone()).await?;
        *slot = Some(session.clone());
        Ok(session)
    }
}

/// A hosted component's life: `on_join`, then waiting for its session to end.
async fn run_component<C: Component>(name: String, component: C, session: Session) {
    // A panic in `on_join` must end this component's session only, never the router.
    let outcome = AssertUnwindSafe(component.on_join(session.clone()))
        .catch_unwind()
        .await;
    let failure = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(panic) => Some(format!("panicked: {}", panic_text(panic.as_ref()))),
    };
    if let Some(why) = failure {
        tracing::error!(component = %name, "component failed in on_join: {why}; its session leaves");
        let _ = session.leave().await;
        return;
    }
    // The session's registrations and subscriptions live as long as a handle to it: keep this one
    // until the router or the component ends it.
    let why = session.closed().await;
    tracing::info!(component = %name, "component session ended: {why}");
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a non-text panic")
}
