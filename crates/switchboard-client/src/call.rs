//! The caller side of a call in flight: [`CallHandle`] for progressive results, the final result
//! and cancellation, and the session task's end of it ([`CallSink`]).
//!
//! Progressive results (spec, "Progressive Call Results") are buffered like subscription events:
//! at most [`CallOptions::progress_capacity`](crate::CallOptions::progress_capacity) of them, the
//! oldest dropped and counted as [`Lagged`] when the caller does not keep up, so that the session
//! task never waits for a caller. The final result (or error) is never dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use switchboard_proto::{Dict, Id, Message, Serializer, codec};
use tokio::sync::{mpsc, oneshot};

use crate::command::Command;
use crate::queue::{LagQueue, Lagged};
use crate::{Args, CancelMode, Error};

/// A call in flight.
///
/// [`CallHandle::progress`] (or the `Stream` of progressive results) yields progressive results
/// until the call ends; [`CallHandle::result`] then gives the final result or error.
#[derive(Debug)]
pub struct CallHandle {
    request: Id,
    serializer: Serializer,
    result: Option<oneshot::Receiver<Result<Args, Error>>>,
    progress: Arc<LagQueue<Args>>,
    commands: mpsc::Sender<Command>,
}

impl CallHandle {
    pub(crate) fn new(
        request: Id,
        serializer: Serializer,
        result: oneshot::Receiver<Result<Args, Error>>,
        progress: Arc<LagQueue<Args>>,
        commands: mpsc::Sender<Command>,
    ) -> Self {
        Self {
            request,
            serializer,
            result: Some(result),
            progress,
            commands,
        }
    }

    /// The CALL request id.
    pub fn request(&self) -> Id {
        self.request
    }

    /// The next progressive result, `Err(Lagged(n))` after `n` were dropped, or `None` once the
    /// call has ended.
    pub async fn progress(&mut self) -> Option<Result<Args, Lagged>> {
        std::future::poll_fn(|cx| self.progress.poll_next(cx)).await
    }

    /// The final result (progressive results not read are skipped). Cancel-safe: it can be
    /// awaited again if the wait was dropped; after it has returned once, it returns
    /// [`Error::Closed`].
    pub async fn result(&mut self) -> Result<Args, Error> {
        let Some(receiver) = self.result.as_mut() else {
            return Err(Error::Closed);
        };
        let outcome = receiver.await;
        self.result = None;
        outcome.map_err(|_| Error::Closed)?
    }

    /// Asks the dealer to cancel the call (CANCEL, spec "Call Canceling"). The call then ends
    /// as `mode` says, usually with ERROR `wamp.error.canceled` from [`CallHandle::result`].
    /// Canceling a call that has ended does nothing.
    pub async fn cancel(&self, mode: CancelMode) -> Result<(), Error> {
        let mut options = Dict::new();
        options.insert("mode".into(), mode.as_str().into());
        let cancel = Message::Cancel {
            request: self.request,
            options,
        };
        let bytes =
            codec::encode(self.serializer, &cancel).map_err(|e| Error::Protocol(e.to_string()))?;
        self.commands
            .send(Command::Send(bytes))
            .await
            .map_err(|_| Error::Closed)
    }
}

impl Stream for CallHandle {
    type Item = Result<Args, Lagged>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.progress.poll_next(cx)
    }
}

impl Drop for CallHandle {
    fn drop(&mut self) {
        self.progress.drop_consumer();
    }
}

/// The session task's end of a call: where its results go.
#[derive(Debug)]
pub(crate) struct CallSink {
    result: oneshot::Sender<Result<Args, Error>>,
    /// `None` when the caller did not ask for progressive results.
    progress: Option<Arc<LagQueue<Args>>>,
}

impl CallSink {
    pub(crate) fn new(
        result: oneshot::Sender<Result<Args, Error>>,
        progress: Option<Arc<LagQueue<Args>>>,
    ) -> Self {
        Self { result, progress }
    }

    /// A progressive result.
    pub(crate) fn progress(&self, args: Args) {
        if let Some(q) = &self.progress {
            q.push(args);
        }
    }

    /// The final result or error: the call ends.
    pub(crate) fn finish(self, outcome: Result<Args, Error>) {
        if let Some(q) = &self.progress {
            q.close();
        }
        // The caller may have stopped waiting; then nobody needs the result.
        let _ = self.result.send(outcome);
    }
}
