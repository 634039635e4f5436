//! The one background task of a session: it owns the transport and everything the session has
//! in flight, and is the only place that reads or writes the connection.
//!
//! It waits on three things at once: commands from the handles ([`Session`](crate::Session)
//! clones, subscriptions, call handles, invocations) over a bounded channel, messages from the
//! router, and the futures of the procedure handlers it runs (see [`crate::invocation`]). It never
//! waits for a consumer: events and progressive results go into bounded buffers (see
//! [`crate::queue`]), replies into oneshot channels.
//!
//! The session ends when the router says GOODBYE (answered with `wamp.close.goodbye_and_out`) or
//! ABORT, when the connection drops, when a handler panics, when the router breaks the protocol,
//! or when we leave (GOODBYE `wamp.close.close_realm`, then the router's GOODBYE) — which also
//! happens when every handle is dropped. Then every request in flight fails with
//! [`Error::Closed`], every subscription stream ends, the transport is closed, and the
//! [`CloseReason`] is published for [`Session::closed`](crate::Session::closed).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use switchboard_proto::ids::IdSequence;
use switchboard_proto::{Dict, Id, Message, MessageType, Serializer, Value, codec, errors};
use switchboard_transport::{Transport, TransportError};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error};

use crate::command::{Command, Pending};
use crate::invocation::{Handler, Invocation, Outcome, Running};
use crate::subscription::{Sink, pattern_topic};
use crate::{Args, CloseReason, Error};

/// How long [`Session::leave`](crate::Session::leave) waits for the router's GOODBYE, and how long
/// closing the transport may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The reason Autobahn gives when a client leaves.
const CLOSE_REALM: &str = "wamp.close.close_realm";

/// What the session task owns.
pub(crate) struct Driver<T> {
    transport: T,
    serializer: Serializer,
    commands: mpsc::Receiver<Command>,
    /// Handed to invocations for progressive results; weak so that only handles keep the
    /// session alive.
    weak_commands: mpsc::WeakSender<Command>,
    requests: Arc<IdSequence>,
    pending: HashMap<Id, Pending>,
    sinks_by_subscription: HashMap<Id, Vec<Sink>>,
    handlers_by_registration: HashMap<Id, (String, Handler)>,
    running: Running,
    /// `Some` once we sent GOODBYE: whoever waits for the session to end.
    leaving: Option<Vec<oneshot::Sender<()>>>,
    closed: watch::Sender<Option<CloseReason>>,
    /// Messages were written but not flushed: the loop flushes before it waits again.
    unflushed: bool,
}

/// How many commands already waiting go into one flush of the transport.
const COMMANDS_PER_FLUSH: usize = 64;

/// Why the loop stopped.
type Ended = CloseReason;

impl<T: Transport> Driver<T> {
    pub(crate) fn new(
        transport: T,
        commands: mpsc::Receiver<Command>,
        weak_commands: mpsc::WeakSender<Command>,
        requests: Arc<IdSequence>,
        closed: watch::Sender<Option<CloseReason>>,
    ) -> Self {
        Self {
            serializer: transport.serializer(),
            transport,
            commands,
            weak_commands,
            requests,
            pending: HashMap::new(),
            sinks_by_subscription: HashMap::new(),
            handlers_by_registration: HashMap::new(),
            running: Running::default(),
            leaving: None,
            closed,
            unflushed: false,
        }
    }

    /// Runs the session until it ends, then cleans up.
    pub(crate) async fn run(mut self) {
        let reason = self.serve().await;
        debug!(%reason, "session ended");
        // The last words (ABORT, GOODBYE) go out before the transport closes.
        if self.unflushed {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.transport.flush()).await;
        }
        for (_, p) in self.pending.drain() {
            p.fail(Error::Closed);
        }
        for sink in self.sinks_by_subscription.values().flatten() {
            sink.queue.close();
        }
        self.sinks_by_subscription.clear();
        // Dropping the running handler futures cancels them.
        self.running = Running::default();
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.transport.close()).await;
        self.closed.send_replace(Some(reason));
        for done in self.leaving.take().unwrap_or_default() {
            let _ = done.send(());
        }
    }

    async fn serve(&mut self) -> Ended {
        let mut commands_open = true;
        let leave_deadline = tokio::time::sleep(Duration::MAX);
        tokio::pin!(leave_deadline);
        loop {
            if self.unflushed {
                // Commands already waiting go out in the same write: a relay's calls and events
                // come in bursts, and a write per message would cost a system call each.
                for _ in 0..COMMANDS_PER_FLUSH {
                    let Ok(c) = self.commands.try_recv() else {
                        break;
                    };
                    if let Err(end) = self.handle_command(c, leave_deadline.as_mut()).await {
                        return end;
                    }
                }
                self.unflushed = false;
                if let Err(e) = self.transport.flush().await {
                    return self.lost(e.to_string());
                }
            }
            let leaving = self.leaving.is_some();
            tokio::select! {
                command = self.commands.recv(), if commands_open => match command {
                    Some(c) => {
                        if let Err(end) = self.handle_command(c, leave_deadline.as_mut()).await {
                            return end;
                        }
                    }
                    None => {
                        // Every handle is gone: nobody can use the session any more.
                        commands_open = false;
                        if let Err(end) = self.start_leaving(None, leave_deadline.as_mut()).await {
                            return end;
                        }
                    }
                },
                incoming = self.transport.recv() => {
                    let bytes = match incoming {
                        Ok(Some(bytes)) => bytes,
                        Ok(None) => return self.lost("the router closed the connection".into()),
                        Err(e) => return self.lost(e.to_string()),
                    };
                    let msg = match codec::decode(self.serializer, &bytes) {
                        Ok(msg) => msg,
                        Err(e) => return self.violation(format!("undecodable message: {e}")).await,
                    };
                    if let Some(end) = self.handle_message(msg).await {
                        return end;
                    }
                },
                (request, procedure, outcome) = self.running.next_finished(), if !leaving => {
                    if let Some(end) = self.handle_finished(request, procedure, outcome).await {
                        return end;
                    }
                },
                () = &mut leave_deadline, if leaving => {
                    return CloseReason::Left;
                },
            }
        }
    }

    fn lost(&self, why: String) -> Ended {
        if self.leaving.is_some() {
            // We asked to go; the router may close without waiting for anything else.
            CloseReason::Left
        } else {
            CloseReason::ConnectionLost(why)
        }
    }

    /// ABORT `wamp.error.protocol_violation` (spec, "Protocol Errors") and end.
    async fn violation(&mut self, why: String) -> Ended {
        debug!("router broke the protocol: {why}");
        let _ = self
            .send(&Message::abort(errors::PROTOCOL_VIOLATION, why.clone()))
            .await;
        CloseReason::ProtocolViolation(why)
    }

    async fn send(&mut self, msg: &Message) -> Result<(), Ended> {
        match codec::encode(self.serializer, msg) {
            Ok(bytes) => self.write(bytes).await,
            Err(e) => {
                // Only messages the task builds itself get here, from values it decoded or was
                // given already encoded; an encoding failure is a bug, not a reason to end.
                error!("cannot encode {}: {e}", msg.message_type().name());
                Ok(())
            }
        }
    }

    /// Queues a message on the transport; the loop flushes before it waits for anything.
    async fn write(&mut self, bytes: Bytes) -> Result<(), Ended> {
        let written: Result<(), TransportError> = self.transport.feed(bytes).await;
        self.unflushed = true;
        written.map_err(|e| self.lost(e.to_string()))
    }

    async fn handle_command(
        &mut self,
        command: Command,
        deadline: std::pin::Pin<&mut tokio::time::Sleep>,
    ) -> Result<(), Ended> {
        if let Command::Leave { done } = command {
            return self.start_leaving(Some(done), deadline).await;
        }
        if self.leaving.is_some() {
            // spec, "Session Closing": after GOODBYE nothing else is sent; dropping the command
            // answers its sender with `Closed`.
            return Ok(());
        }
        match command {
            Command::Request {
                request,
                message,
                pending,
            } => {
                self.pending.insert(request, pending);
                self.write(message).await
            }
            Command::Send(message) => self.write(message).await,
            Command::Unsubscribe {
                subscription,
                key,
                reply,
            } => self.unsubscribe_local(subscription, key, reply).await,
            Command::Progress {
                request,
                args,
                written,
            } => {
                // A handler that moved its invocation elsewhere and reports progress after its
                // final answer would break the protocol: only running invocations may.
                if !self.running.is_running(request) {
                    let _ = written.send(Err(Error::Closed));
                    return Ok(());
                }
                let mut options = Dict::new();
                options.insert("progress".into(), true.into());
                match args.into_payload(self.serializer) {
                    Ok(payload) => {
                        let progress = Message::Yield {
                            request,
                            options,
                            payload,
                        };
                        self.send(&progress).await?;
                        let _ = written.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = written.send(Err(e));
                    }
                }
                Ok(())
            }
            // Handled before the match.
            Command::Leave { .. } => Ok(()),
        }
    }

    async fn start_leaving(
        &mut self,
        done: Option<oneshot::Sender<()>>,
        deadline: std::pin::Pin<&mut tokio::time::Sleep>,
    ) -> Result<(), Ended> {
        match &mut self.leaving {
            Some(waiting) => waiting.extend(done),
            None => {
                self.leaving = Some(done.into_iter().collect());
                deadline.reset(tokio::time::Instant::now() + CLOSE_TIMEOUT);
                self.send(&Message::goodbye(CLOSE_REALM)).await?;
            }
        }
        Ok(())
    }

    /// Removes one local subscription; UNSUBSCRIBE when it was the last one of `subscription`
    /// (or when there is none locally, so that the router answers for unknown ids).
    async fn unsubscribe_local(
        &mut self,
        subscription: Id,
        key: u64,
        reply: oneshot::Sender<Result<(), Error>>,
    ) -> Result<(), Ended> {
        if let Some(sinks) = self.sinks_by_subscription.get_mut(&subscription) {
            // Subscriptions dropped without unsubscribing go too.
            sinks.retain(|s| {
                let keep = s.key != key && !s.queue.consumer_gone();
                if !keep {
                    s.end();
                }
                keep
            });
            if !sinks.is_empty() {
                let _ = reply.send(Ok(()));
                return Ok(());
            }
            self.sinks_by_subscription.remove(&subscription);
        }
        self.send_unsubscribe(subscription, Some(reply)).await
    }

    async fn send_unsubscribe(
        &mut self,
        subscription: Id,
        reply: Option<oneshot::Sender<Result<(), Error>>>,
    ) -> Result<(), Ended> {
        let request = self.requests.next_id();
        self.pending.insert(
            request,
            Pending::Unsubscribe {
                subscription,
                reply,
            },
        );
        self.send(&Message::Unsubscribe {
            request,
            subscription,
        })
        .await
    }

    /// Handles one message from the router; `Some` when the session ends.
    async fn handle_message(&mut self, msg: Message) -> Option<Ended> {
        if self.leaving.is_some() {
            // spec, "Session Closing": while shutting down, only the GOODBYE answer matters.
            return match msg {
                Message::Goodbye { .. } => Some(CloseReason::Left),
                Message::Abort { reason, details } => {
                    Some(CloseReason::Aborted { reason, details })
                }
                _ => None,
            };
        }
        let result = match msg {
            Message::Event {
                subscription,
                publication,
                details,
                payload,
            } => match Args::from_payload(&payload) {
                Ok(args) => self.deliver(subscription, publication, details, args).await,
                Err(e) => {
                    debug!(
                        subscription,
                        "dropping an EVENT whose payload is invalid: {e}"
                    );
                    Ok(())
                }
            },
            Message::Invocation {
                request,
                registration,
                details,
                payload,
            } => self.invoke(request, registration, details, &payload).await,
            Message::Interrupt { request, .. } => {
                // spec, "Call Canceling": the callee stops and answers ERROR; an invocation that
                // already answered is not answered twice.
                if self.running.interrupt(request) {
                    self.send(&Message::error(
                        MessageType::Invocation,
                        request,
                        errors::CANCELED,
                    ))
                    .await
                } else {
                    Ok(())
                }
            }
            Message::Result {
                request,
                details,
                payload,
            } => {
                let progress = details.get("progress").and_then(Value::as_bool) == Some(true);
                let args = Args::from_payload(&payload);
                if progress {
                    if let (Some(Pending::Call(sink)), Ok(args)) =
                        (self.pending.get(&request), args)
                    {
                        sink.progress(args);
                    }
                } else if let Some(Pending::Call(sink)) = self.pending.remove(&request) {
                    sink.finish(args);
                }
                Ok(())
            }
            Message::Error {
                request,
                error,
                payload,
                ..
            } => {
                if let Some(p) = self.pending.remove(&request) {
                    p.fail(Error::from_wamp(error, &payload));
                }
                Ok(())
            }
            Message::Published {
                request,
                publication,
            } => {
                if let Some(Pending::Publish(reply)) = self.pending.remove(&request) {
                    let _ = reply.send(Ok(publication));
                }
                Ok(())
            }
            Message::Subscribed {
                request,
                subscription,
            } => {
                if let Some(Pending::Subscribe { sink, reply }) = self.pending.remove(&request) {
                    // Kept even when the subscriber stopped waiting: the first event then finds
                    // nobody listening and unsubscribes.
                    self.sinks_by_subscription
                        .entry(subscription)
                        .or_default()
                        .push(sink);
                    let _ = reply.send(Ok(subscription));
                }
                Ok(())
            }
            Message::Unsubscribed { request, details } => {
                self.unsubscribed(request, details.as_ref());
                Ok(())
            }
            Message::Registered {
                request,
                registration,
            } => {
                if let Some(Pending::Register {
                    procedure,
                    handler,
                    reply,
                }) = self.pending.remove(&request)
                {
                    self.handlers_by_registration
                        .insert(registration, (procedure, handler));
                    let _ = reply.send(Ok(registration));
                }
                Ok(())
            }
            Message::Unregistered { request, details } => {
                self.unregistered(request, details.as_ref());
                Ok(())
            }
            Message::Goodbye { reason, details } => {
                // spec, "Session Closing": GOODBYE is answered with GOODBYE.
                let _ = self.send(&Message::goodbye(errors::GOODBYE_AND_OUT)).await;
                return Some(CloseReason::Goodbye { reason, details });
            }
            Message::Abort { reason, details } => {
                return Some(CloseReason::Aborted { reason, details });
            }
            other => {
                let why = format!(
                    "a client does not receive {} in an established session",
                    other.message_type().name()
                );
                return Some(self.violation(why).await);
            }
        };
        result.err()
    }

    async fn deliver(
        &mut self,
        subscription: Id,
        publication: Id,
        details: Dict,
        args: Args,
    ) -> Result<(), Ended> {
        let Some(sinks) = self.sinks_by_subscription.get_mut(&subscription) else {
            return Ok(());
        };
        let topic = pattern_topic(&details);
        sinks.retain(|s| s.deliver(publication, &details, &args, topic));
        if sinks.is_empty() {
            // Every local subscription was dropped: the router need not send these any more.
            self.sinks_by_subscription.remove(&subscription);
            return self.send_unsubscribe(subscription, None).await;
        }
        Ok(())
    }

    /// UNSUBSCRIBED: the answer to our UNSUBSCRIBE, or (request 0, spec "Subscription
    /// Revocation") the router ending a subscription. Either way its streams end.
    fn unsubscribed(&mut self, request: Id, details: Option<&Dict>) {
        if request == 0 {
            let revoked = details.and_then(|d| d.get("subscription")?.as_u64());
            for sink in revoked
                .and_then(|id| self.sinks_by_subscription.remove(&id))
                .unwrap_or_default()
            {
                sink.end();
            }
        } else if let Some(Pending::Unsubscribe {
            subscription,
            reply,
        }) = self.pending.remove(&request)
        {
            // Local subscriptions still there (an unsubscribe by id) end with it. A SUBSCRIBE sent
            // after the UNSUBSCRIBE is answered after this, so its subscription is not affected.
            for sink in self
                .sinks_by_subscription
                .remove(&subscription)
                .unwrap_or_default()
            {
                sink.end();
            }
            if let Some(reply) = reply {
                let _ = reply.send(Ok(()));
            }
        }
    }

    /// UNREGISTERED: the answer to our UNREGISTER, or (request 0, spec "Registration
    /// Revocation") the router ending a registration.
    fn unregistered(&mut self, request: Id, details: Option<&Dict>) {
        if request == 0 {
            if let Some(id) = details.and_then(|d| d.get("registration")?.as_u64()) {
                self.handlers_by_registration.remove(&id);
            }
        } else if let Some(Pending::Unregister {
            registration,
            reply,
        }) = self.pending.remove(&request)
        {
            // The handler stays until now: the dealer may route calls to it until it has
            // processed UNREGISTER.
            self.handlers_by_registration.remove(&registration);
            let _ = reply.send(Ok(()));
        }
    }

    /// INVOCATION: starts the handler, or answers ERROR when there is none.
    async fn invoke(
        &mut self,
        request: Id,
        registration: Id,
        details: Dict,
        payload: &switchboard_proto::Payload,
    ) -> Result<(), Ended> {
        let Some((procedure, handler)) = self.handlers_by_registration.get(&registration) else {
            return self
                .send(&Message::error(
                    MessageType::Invocation,
                    request,
                    errors::NO_SUCH_REGISTRATION,
                ))
                .await;
        };
        let args = match Args::from_payload(payload) {
            Ok(args) => args,
            Err(_) => {
                return self
                    .send(&Message::error(
                        MessageType::Invocation,
                        request,
                        errors::INVALID_ARGUMENT,
                    ))
                    .await;
            }
        };
        let invocation = Invocation::new(
            args,
            details,
            procedure,
            request,
            registration,
            self.weak_commands.clone(),
        );
        let handler = handler.clone();
        self.running.start(&handler, invocation);
        Ok(())
    }

    /// A handler finished: YIELD or ERROR, or for a panic the end of the session.
    async fn handle_finished(
        &mut self,
        request: Id,
        procedure: String,
        outcome: Outcome,
    ) -> Option<Ended> {
        let answer = match outcome {
            Outcome::Returned(Ok(args)) => match args.into_payload(self.serializer) {
                Ok(payload) => Message::Yield {
                    request,
                    options: Dict::new(),
                    payload,
                },
                Err(_) => {
                    Message::error(MessageType::Invocation, request, errors::INVALID_ARGUMENT)
                }
            },
            Outcome::Returned(Err(call_error)) => call_error.into_message(request, self.serializer),
            Outcome::Panicked(message) => {
                error!(
                    %procedure,
                    panic = %message,
                    "a procedure handler panicked; ending its session"
                );
                return Some(CloseReason::HandlerPanicked { procedure, message });
            }
            Outcome::Interrupted => return None,
        };
        self.send(&answer).await.err()
    }
}

#[cfg(test)]
mod tests;
