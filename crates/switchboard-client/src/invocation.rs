//! The callee side: async procedure handlers, the [`Invocation`] they are given, and the set of
//! invocations in progress that the session task polls.
//!
//! Handler futures run **inside** the session task (a `FuturesUnordered`), not as spawned tasks:
//! a handler may await anything without holding up other invocations or the session, and the
//! session stays the one owner of everything that belongs to it.
//!
//! - INTERRUPT (spec, "Call Canceling") drops the handler's future and answers ERROR
//!   `wamp.error.canceled`.
//! - A handler that panics (while being called or while being polled) is caught with
//!   `catch_unwind`; the panic is logged at error level and ends the session it belongs to (and
//!   only that session): the transport is closed, so the router cleans up as for a dropped
//!   connection, and [`Session::closed`](crate::Session::closed) reports
//!   [`CloseReason::HandlerPanicked`](crate::CloseReason::HandlerPanicked). A panic means the
//!   handler's own state can no longer be trusted, so carrying on with the session would be
//!   guessing.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use futures::FutureExt as _;
use futures::future::{AbortHandle, Abortable};
use futures::stream::{FuturesUnordered, StreamExt as _};
use switchboard_proto::{Dict, Id, Value};
use tokio::sync::{mpsc, oneshot};

use crate::command::Command;
use crate::{Args, CallError, Error};

/// What a procedure handler's future returns.
pub type HandlerResult = Result<Args, CallError>;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A registered procedure's handler, type-erased.
pub(crate) type Handler = Arc<dyn Fn(Invocation) -> BoxFuture<HandlerResult> + Send + Sync>;

/// Erases the handler's future type.
pub(crate) fn boxed_handler<F, Fut>(handler: F) -> Handler
where
    F: Fn(Invocation) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    Arc::new(move |invocation| Box::pin(handler(invocation)))
}

/// One call of a registered procedure, as its handler sees it.
#[derive(Debug)]
pub struct Invocation {
    /// The call's arguments.
    pub args: Args,
    details: Dict,
    procedure: String,
    request: Id,
    registration: Id,
    /// The session task, for progressive results. Weak, so that an invocation (which lives in
    /// the session task) never keeps the task's command channel open by itself.
    commands: mpsc::WeakSender<Command>,
}

impl Invocation {
    pub(crate) fn new(
        args: Args,
        details: Dict,
        registered: &str,
        request: Id,
        registration: Id,
        commands: mpsc::WeakSender<Command>,
    ) -> Self {
        // spec, "Pattern-based Registration": the dealer names the called procedure in the
        // details when the registration is a pattern.
        let procedure = details
            .get("procedure")
            .and_then(Value::as_str)
            .unwrap_or(registered)
            .to_owned();
        Self {
            args,
            details,
            procedure,
            request,
            registration,
            commands,
        }
    }

    /// Positional arguments.
    pub fn positional(&self) -> &[Value] {
        &self.args.args
    }

    /// Keyword arguments.
    pub fn kwargs(&self) -> &Dict {
        &self.args.kwargs
    }

    /// The arguments, taken out of the invocation.
    pub fn into_args(self) -> Args {
        self.args
    }

    /// INVOCATION.Details.
    pub fn details(&self) -> &Dict {
        &self.details
    }

    /// The procedure that was called: the registered URI, or for a pattern-based registration
    /// the URI the caller called.
    pub fn procedure(&self) -> &str {
        &self.procedure
    }

    /// The INVOCATION request id.
    pub fn request(&self) -> Id {
        self.request
    }

    /// The registration id.
    pub fn registration(&self) -> Id {
        self.registration
    }

    /// The caller's session id, when the dealer discloses it (spec, "Caller Identification").
    pub fn caller(&self) -> Option<Id> {
        self.details.get("caller").and_then(Value::as_u64)
    }

    /// The caller's authid, when disclosed.
    pub fn caller_authid(&self) -> Option<&str> {
        self.details.get("caller_authid").and_then(Value::as_str)
    }

    /// The caller's authrole, when disclosed.
    pub fn caller_authrole(&self) -> Option<&str> {
        self.details.get("caller_authrole").and_then(Value::as_str)
    }

    /// Whether the caller asked for progressive results (INVOCATION.Details.receive_progress).
    pub fn receive_progress(&self) -> bool {
        self.details
            .get("receive_progress")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// Sends a progressive result (YIELD with `progress: true`, spec "Progressive Call
    /// Results") and returns once it is written, so that the final result can never overtake
    /// it. Does nothing when the caller did not ask for progressive results: the spec allows
    /// them only then.
    pub async fn progress(&self, args: Args) -> Result<(), Error> {
        if !self.receive_progress() {
            return Ok(());
        }
        let commands = self.commands.upgrade().ok_or(Error::Closed)?;
        let (written, done) = oneshot::channel();
        commands
            .send(Command::Progress {
                request: self.request,
                args,
                written,
            })
            .await
            .map_err(|_| Error::Closed)?;
        done.await.map_err(|_| Error::Closed)?
    }
}

/// How an invocation ended.
pub(crate) enum Outcome {
    /// The handler returned.
    Returned(HandlerResult),
    /// The handler panicked; the message, when there is one.
    Panicked(String),
    /// INTERRUPT dropped the handler's future (already answered).
    Interrupted,
}

/// The invocations in progress, polled by the session task.
#[derive(Default)]
pub(crate) struct Running {
    futures: FuturesUnordered<BoxFuture<(Id, Outcome)>>,
    /// Abort handles and procedure names of the invocations still running, by INVOCATION
    /// request id.
    by_request: HashMap<Id, (AbortHandle, String)>,
}

impl Running {
    /// Calls `handler` and starts polling its future. A panic in the call itself is caught as if
    /// the future had panicked.
    pub(crate) fn start(&mut self, handler: &Handler, invocation: Invocation) {
        let request = invocation.request;
        let procedure = invocation.procedure.clone();
        let (abort, registration) = AbortHandle::new_pair();
        let future = match std::panic::catch_unwind(AssertUnwindSafe(|| handler(invocation))) {
            Ok(future) => {
                let guarded = AssertUnwindSafe(future).catch_unwind();
                Abortable::new(guarded, registration)
                    .map(move |r| {
                        let outcome = match r {
                            Ok(Ok(result)) => Outcome::Returned(result),
                            Ok(Err(panic)) => Outcome::Panicked(panic_message(panic.as_ref())),
                            Err(_aborted) => Outcome::Interrupted,
                        };
                        (request, outcome)
                    })
                    .boxed()
            }
            Err(panic) => {
                let message = panic_message(panic.as_ref());
                async move { (request, Outcome::Panicked(message)) }.boxed()
            }
        };
        self.by_request.insert(request, (abort, procedure));
        self.futures.push(future);
    }

    /// Whether `request` is still running (progressive results are only sent for those).
    pub(crate) fn is_running(&self, request: Id) -> bool {
        self.by_request.contains_key(&request)
    }

    /// Drops the handler future of `request`; `false` when it is not running (it already
    /// answered).
    pub(crate) fn interrupt(&mut self, request: Id) -> bool {
        match self.by_request.remove(&request) {
            Some((abort, _)) => {
                // The future is dropped when FuturesUnordered next polls it, which the abort
                // wakes it for.
                abort.abort();
                true
            }
            None => false,
        }
    }

    /// The next invocation to finish, with the procedure it was for; pending while none has.
    /// Interrupted invocations are skipped (their ERROR was sent already).
    pub(crate) async fn next_finished(&mut self) -> (Id, String, Outcome) {
        loop {
            let Some((request, outcome)) = self.futures.next().await else {
                return std::future::pending().await;
            };
            if let Outcome::Interrupted = outcome {
                continue;
            }
            let procedure = self
                .by_request
                .remove(&request)
                .map(|(_, p)| p)
                .unwrap_or_default();
            return (request, procedure, outcome);
        }
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".into()
    }
}
