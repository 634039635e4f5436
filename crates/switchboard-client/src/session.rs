//! [`Session`]: the cheap, cloneable handle of a joined session. Every method encodes its message
//! on the caller's task and hands it to the session's task (see [`crate::driver`]) over a bounded
//! channel; answers come back over oneshot channels.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use switchboard_proto::ids::IdSequence;
use switchboard_proto::{Dict, Id, Message, Serializer, Value, codec};
use switchboard_transport::Transport;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument as _;

use crate::call::{CallHandle, CallSink};
use crate::command::{COMMAND_CAPACITY, Command, Pending};
use crate::driver::Driver;
use crate::invocation::{Invocation, boxed_handler};
use crate::join::Welcome;
use crate::queue::LagQueue;
use crate::subscription::{EventFeed, Sink, Subscription};
use crate::{
    Args, CallError, CallOptions, CloseReason, ConnectOptions, Error, JoinOptions, PublishOptions,
    RegisterOptions, SubscribeOptions,
};

/// A joined WAMP session.
///
/// Clones share the session. It lives until it is closed (by [`Session::leave`], by the router,
/// or by a lost connection) or until every handle is dropped — `Session` clones,
/// [`Subscription`]s, [`CallHandle`]s, and handlers that hold a clone — whereupon it leaves the
/// realm by itself.
#[derive(Clone, Debug)]
pub struct Session {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    id: Id,
    welcome: Dict,
    realm: String,
    serializer: Serializer,
    requests: Arc<IdSequence>,
    commands: mpsc::Sender<Command>,
    closed: watch::Receiver<Option<CloseReason>>,
}

impl Session {
    /// Opens a connection as `opts` say and joins (see [`ConnectOptions`]).
    pub async fn connect(opts: &ConnectOptions) -> Result<Session, Error> {
        crate::connect::connect(opts).await
    }

    /// Joins over an already open transport (an in-memory one for in-process sessions, or one a
    /// test controls): runs the opening handshake, then starts the session's task on the
    /// current tokio runtime.
    pub async fn join<T: Transport>(
        mut transport: T,
        join: &JoinOptions,
    ) -> Result<Session, Error> {
        // Boxed as `dyn Future + Send` here, where `T` is generic and the transport's futures
        // are Send by the trait's bounds: a caller with a concrete transport type then need not
        // prove it again through the handshake's body, which rustc fails at ("higher-ranked
        // lifetime error") for the transports' `async fn`s.
        let handshake: Pin<Box<dyn Future<Output = Result<Welcome, Error>> + Send + '_>> =
            Box::pin(crate::join::handshake(&mut transport, join));
        let welcome = handshake.await?;
        let serializer = transport.serializer();
        let (commands, receiver) = mpsc::channel(COMMAND_CAPACITY);
        let (closed_tx, closed) = watch::channel(None);
        let requests = Arc::new(IdSequence::new());
        let driver = Driver::new(
            transport,
            receiver,
            commands.downgrade(),
            requests.clone(),
            closed_tx,
        );
        let realm = welcome
            .details
            .get("realm")
            .and_then(Value::as_str)
            .unwrap_or(&join.realm)
            .to_owned();
        let detail = |key: &str| welcome.details.get(key).and_then(Value::as_str);
        let span = tracing::info_span!(
            "client_session",
            id = welcome.session,
            realm = %realm,
            authid = detail("authid").unwrap_or_default(),
            authrole = detail("authrole").unwrap_or_default(),
        );
        tokio::spawn(driver.run().instrument(span));
        Ok(Session {
            inner: Arc::new(Inner {
                id: welcome.session,
                welcome: welcome.details,
                realm,
                serializer,
                requests,
                commands,
                closed,
            }),
        })
    }

    /// The session id the router assigned.
    pub fn id(&self) -> Id {
        self.inner.id
    }

    /// WELCOME.Details.
    pub fn welcome_details(&self) -> &Dict {
        &self.inner.welcome
    }

    /// The realm joined (WELCOME.Details.realm when the router names it: a principal's realm can
    /// differ from the one asked for).
    pub fn realm(&self) -> &str {
        &self.inner.realm
    }

    /// The authid the router gave the session.
    pub fn authid(&self) -> Option<&str> {
        self.welcome_str("authid")
    }

    /// The session's role.
    pub fn authrole(&self) -> Option<&str> {
        self.welcome_str("authrole")
    }

    /// The authentication method the router used.
    pub fn authmethod(&self) -> Option<&str> {
        self.welcome_str("authmethod")
    }

    fn welcome_str(&self, key: &str) -> Option<&str> {
        self.inner.welcome.get(key).and_then(Value::as_str)
    }

    /// The serializer of the connection.
    pub fn serializer(&self) -> Serializer {
        self.inner.serializer
    }

    fn encode(&self, msg: &Message) -> Result<bytes::Bytes, Error> {
        codec::encode(self.inner.serializer, msg).map_err(|e| Error::Protocol(e.to_string()))
    }

    async fn command(&self, command: Command) -> Result<(), Error> {
        self.inner
            .commands
            .send(command)
            .await
            .map_err(|_| Error::Closed)
    }

    /// Sends `msg` as request `request`, to be answered through `pending`, and waits for the
    /// `answer`.
    async fn request<R>(
        &self,
        request: Id,
        msg: Message,
        pending: Pending,
        answer: oneshot::Receiver<Result<R, Error>>,
    ) -> Result<R, Error> {
        let message = self.encode(&msg)?;
        self.command(Command::Request {
            request,
            message,
            pending,
        })
        .await?;
        answer.await.map_err(|_| Error::Closed)?
    }

    /// Calls `procedure` and waits for its result.
    pub async fn call(&self, procedure: &str, args: Args) -> Result<Args, Error> {
        self.call_with(procedure, args, CallOptions::default())
            .await
    }

    /// Calls `procedure` with options and waits for its result (progressive results are
    /// discarded; see [`Session::call_streaming`]).
    pub async fn call_with(
        &self,
        procedure: &str,
        args: Args,
        options: CallOptions,
    ) -> Result<Args, Error> {
        let request = self.inner.requests.next_id();
        let msg = Message::Call {
            request,
            options: options.to_dict(),
            procedure: procedure.into(),
            payload: args.into_payload(self.inner.serializer)?,
        };
        let (reply, answer) = oneshot::channel();
        let pending = Pending::Call(CallSink::new(reply, None));
        self.request(request, msg, pending, answer).await
    }

    /// Calls `procedure` asking for progressive results (`receive_progress`), and returns a
    /// handle for them, the final result, and cancellation.
    pub async fn call_streaming(
        &self,
        procedure: &str,
        args: Args,
        options: CallOptions,
    ) -> Result<CallHandle, Error> {
        let options = CallOptions {
            receive_progress: true,
            ..options
        };
        self.call_handle(procedure, args, options).await
    }

    /// Calls `procedure` with `options` as given (progressive results only when
    /// `receive_progress` is set), and returns a handle for its result and cancellation: for
    /// relays that pass a call on as they got it.
    pub async fn call_handle(
        &self,
        procedure: &str,
        args: Args,
        options: CallOptions,
    ) -> Result<CallHandle, Error> {
        let request = self.inner.requests.next_id();
        let capacity = options.progress_capacity;
        let msg = Message::Call {
            request,
            options: options.to_dict(),
            procedure: procedure.into(),
            payload: args.into_payload(self.inner.serializer)?,
        };
        let progress = LagQueue::new(capacity);
        let (reply, answer) = oneshot::channel();
        // Created before the CALL is sent, so that the progress buffer is released if this
        // future is dropped half-way.
        let handle = CallHandle::new(
            request,
            self.inner.serializer,
            answer,
            progress.clone(),
            self.inner.commands.clone(),
        );
        self.command(Command::Request {
            request,
            message: self.encode(&msg)?,
            pending: Pending::Call(CallSink::new(reply, Some(progress))),
        })
        .await?;
        Ok(handle)
    }

    /// Publishes to `topic`. With `acknowledge`, waits for PUBLISHED and returns the publication
    /// id; otherwise returns `None` once the message is handed to the session.
    pub async fn publish(
        &self,
        topic: &str,
        args: Args,
        options: PublishOptions,
    ) -> Result<Option<Id>, Error> {
        let request = self.inner.requests.next_id();
        let msg = Message::Publish {
            request,
            options: options.to_dict(),
            topic: topic.into(),
            payload: args.into_payload(self.inner.serializer)?,
        };
        if !options.acknowledge {
            self.command(Command::Send(self.encode(&msg)?)).await?;
            return Ok(None);
        }
        let (reply, answer) = oneshot::channel();
        self.request(request, msg, Pending::Publish(reply), answer)
            .await
            .map(Some)
    }

    /// Subscribes to `topic` (see [`Subscription`] for how events are buffered).
    pub async fn subscribe(
        &self,
        topic: &str,
        options: SubscribeOptions,
    ) -> Result<Subscription, Error> {
        let request = self.inner.requests.next_id();
        let msg = Message::Subscribe {
            request,
            options: options.to_dict(),
            topic: topic.into(),
        };
        let queue = LagQueue::new(options.capacity);
        // The request id doubles as the key of this local subscription: unique in the session.
        let key = request;
        // Created first: if this future is dropped before SUBSCRIBED, dropping it tells the
        // session task that nobody reads the buffer.
        let mut subscription = Subscription::new(
            0,
            topic.to_owned(),
            key,
            queue.clone(),
            self.inner.commands.clone(),
        );
        let sink = Sink {
            key,
            topic: topic.to_owned(),
            queue,
            shared: false,
        };
        let (reply, answer) = oneshot::channel();
        let pending = Pending::Subscribe { sink, reply };
        let id = self.request(request, msg, pending, answer).await?;
        subscription.set_id(id);
        Ok(subscription)
    }

    /// Subscribes to `topic`, its events going into `feed` (shared with other subscriptions, in
    /// the order they arrive). Returns the router's subscription id; [`Session::unsubscribe`]
    /// ends it.
    pub async fn subscribe_into(
        &self,
        topic: &str,
        options: SubscribeOptions,
        feed: &EventFeed,
    ) -> Result<Id, Error> {
        let request = self.inner.requests.next_id();
        let msg = Message::Subscribe {
            request,
            options: options.to_dict(),
            topic: topic.into(),
        };
        let sink = Sink {
            key: request,
            topic: topic.to_owned(),
            queue: feed.queue(),
            shared: true,
        };
        let (reply, answer) = oneshot::channel();
        let pending = Pending::Subscribe { sink, reply };
        self.request(request, msg, pending, answer).await
    }

    /// Ends every local subscription with the router's id `subscription` and sends UNSUBSCRIBE
    /// (the router answers `wamp.error.no_such_subscription` for ids it does not know).
    /// [`Subscription::unsubscribe`] ends just one.
    pub async fn unsubscribe(&self, subscription: Id) -> Result<(), Error> {
        let request = self.inner.requests.next_id();
        let msg = Message::Unsubscribe {
            request,
            subscription,
        };
        let (reply, answer) = oneshot::channel();
        let pending = Pending::Unsubscribe {
            subscription,
            reply: Some(reply),
        };
        self.request(request, msg, pending, answer).await
    }

    /// Registers `procedure`; each call runs `handler` on the session's task, concurrently with
    /// other calls (see [`Invocation`]). Returns the registration id.
    ///
    /// The handler returns `Ok(result)` (YIELD) or `Err(CallError)` (ERROR with its URI). A
    /// handler that panics ends the session: see [`CloseReason::HandlerPanicked`].
    pub async fn register<F, Fut>(
        &self,
        procedure: &str,
        options: RegisterOptions,
        handler: F,
    ) -> Result<Id, Error>
    where
        F: Fn(Invocation) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Args, CallError>> + Send + 'static,
    {
        let request = self.inner.requests.next_id();
        let msg = Message::Register {
            request,
            options: options.to_dict(),
            procedure: procedure.into(),
        };
        let (reply, answer) = oneshot::channel();
        let pending = Pending::Register {
            procedure: procedure.to_owned(),
            handler: boxed_handler(handler),
            reply,
        };
        self.request(request, msg, pending, answer).await
    }

    /// Unregisters; calls still routed to the registration until the router confirms are
    /// answered.
    pub async fn unregister(&self, registration: Id) -> Result<(), Error> {
        let request = self.inner.requests.next_id();
        let msg = Message::Unregister {
            request,
            registration,
        };
        let (reply, answer) = oneshot::channel();
        let pending = Pending::Unregister {
            registration,
            reply,
        };
        self.request(request, msg, pending, answer).await
    }

    /// Leaves the realm: GOODBYE `wamp.close.close_realm`, then waits for the router's GOODBYE
    /// (spec, "Session Closing"; at most a few seconds). Requests still in flight fail with
    /// [`Error::Closed`]. `Err(Error::Closed)` when the session had already ended.
    pub async fn leave(&self) -> Result<(), Error> {
        let (done, ended) = oneshot::channel();
        self.command(Command::Leave { done }).await?;
        ended.await.map_err(|_| Error::Closed)
    }

    /// Waits until the session has ended, and says why.
    pub async fn closed(&self) -> CloseReason {
        let mut closed = self.inner.closed.clone();
        match closed.wait_for(Option::is_some).await {
            Ok(reason) => reason
                .clone()
                .unwrap_or_else(|| CloseReason::ConnectionLost("unknown".into())),
            // The task always publishes a reason before it ends; without one, it was torn down
            // with its runtime.
            Err(_) => CloseReason::ConnectionLost("the session task stopped".into()),
        }
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.borrow().is_some()
    }
}
