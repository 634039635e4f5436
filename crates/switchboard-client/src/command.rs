//! What the handles ask of the session task ([`Command`]), and the requests the task keeps until
//! the router answers them ([`Pending`]).
//!
//! Messages come encoded: the handles encode on their own tasks, the session task only writes.

use bytes::Bytes;
use switchboard_proto::Id;
use tokio::sync::oneshot;

use crate::call::CallSink;
use crate::invocation::Handler;
use crate::subscription::Sink;
use crate::{Args, Error};

/// How many commands may wait for the session task before senders wait in turn.
pub(crate) const COMMAND_CAPACITY: usize = 256;

/// What the handles ask the session task to do.
pub(crate) enum Command {
    /// Send a request whose answer is routed to `pending` under `request`.
    Request {
        request: Id,
        message: Bytes,
        pending: Pending,
    },
    /// Send a message that gets no answer (PUBLISH without acknowledge, CANCEL).
    Send(Bytes),
    /// One local subscription ends.
    Unsubscribe {
        subscription: Id,
        key: u64,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    /// A progressive result of a running invocation; `written` once it is on the wire.
    Progress {
        request: Id,
        args: Args,
        written: oneshot::Sender<Result<(), Error>>,
    },
    /// Leave the realm; `done` when the session has ended.
    Leave { done: oneshot::Sender<()> },
}

/// A request waiting for its answer.
pub(crate) enum Pending {
    Call(CallSink),
    Publish(oneshot::Sender<Result<Id, Error>>),
    Subscribe {
        sink: Sink,
        reply: oneshot::Sender<Result<Id, Error>>,
    },
    /// UNSUBSCRIBE of `subscription`; `reply` is `None` for the one the task sends itself when
    /// nobody listens any more.
    Unsubscribe {
        subscription: Id,
        reply: Option<oneshot::Sender<Result<(), Error>>>,
    },
    Register {
        procedure: String,
        handler: Handler,
        reply: oneshot::Sender<Result<Id, Error>>,
    },
    Unregister {
        registration: Id,
        reply: oneshot::Sender<Result<(), Error>>,
    },
}

impl Pending {
    /// Answers with ERROR (or with `Closed` when the session ends).
    pub(crate) fn fail(self, e: Error) {
        match self {
            Pending::Call(sink) => sink.finish(Err(e)),
            Pending::Publish(r) => drop(r.send(Err(e))),
            Pending::Subscribe { reply, .. } | Pending::Register { reply, .. } => {
                drop(reply.send(Err(e)))
            }
            Pending::Unsubscribe { reply, .. } => {
                if let Some(r) = reply {
                    drop(r.send(Err(e)));
                }
            }
            Pending::Unregister { reply, .. } => drop(reply.send(Err(e))),
        }
    }
}
