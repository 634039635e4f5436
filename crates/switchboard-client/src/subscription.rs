//! Subscriptions as bounded streams of [`Event`]s.
//!
//! The session task pushes each EVENT into the [`Subscription`]'s buffer and never waits for it.
//! The buffer holds [`SubscribeOptions::capacity`](crate::SubscribeOptions::capacity) events;
//! when a consumer lags and the buffer is full, the **oldest** event is dropped and the stream
//! then yields `Err(Lagged(n))`, `n` being the number of events missed, before the next event.
//! So a slow consumer costs bounded memory, never stalls the session (calls, invocations and
//! other subscriptions go on), and always learns that it missed something.
//!
//! Several local subscriptions to the same topic share the router's subscription (the router
//! answers with the same id); UNSUBSCRIBE is sent when the last of them unsubscribes. A
//! subscription that is dropped without [`Subscription::unsubscribe`] stops receiving at once,
//! and the router's subscription is removed when the next event for it finds nobody listening.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use switchboard_proto::{Dict, Id, Value};
use tokio::sync::{mpsc, oneshot};

use crate::command::Command;
use crate::queue::{LagQueue, Lagged};
use crate::{Args, Error};

/// An event received on a subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Publication id.
    pub publication: Id,
    /// EVENT.Details (the publisher, when disclosed; `retained`; ...).
    pub details: Dict,
    /// Payload.
    pub args: Args,
    /// The topic the event was published to: EVENT.Details.topic for pattern-based
    /// subscriptions, the subscribed topic otherwise.
    pub topic: String,
}

/// One local subscription: an async stream of its events.
///
/// Items are `Ok(event)`, or `Err(Lagged(n))` when `n` older events were dropped because the
/// consumer did not keep up (see [`SubscribeOptions`](crate::SubscribeOptions)). The stream ends when the subscription
/// is unsubscribed, revoked by the router, or the session ends.
#[derive(Debug)]
pub struct Subscription {
    id: Id,
    topic: String,
    key: u64,
    queue: Arc<LagQueue<Event>>,
    commands: mpsc::Sender<Command>,
}

impl Subscription {
    pub(crate) fn new(
        id: Id,
        topic: String,
        key: u64,
        queue: Arc<LagQueue<Event>>,
        commands: mpsc::Sender<Command>,
    ) -> Self {
        Self {
            id,
            topic,
            key,
            queue,
            commands,
        }
    }

    pub(crate) fn set_id(&mut self, id: Id) {
        self.id = id;
    }

    /// The router's subscription id.
    pub fn id(&self) -> Id {
        self.id
    }

    /// The subscribed topic (or pattern).
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The next event, `Err(Lagged(n))` after events were dropped, or `None` when the
    /// subscription has ended.
    pub async fn next(&mut self) -> Option<Result<Event, Lagged>> {
        std::future::poll_fn(|cx| self.queue.poll_next(cx)).await
    }

    /// What [`Subscription::next`] would return now, without waiting; `None` when nothing is
    /// buffered.
    pub fn try_next(&mut self) -> Option<Result<Event, Lagged>> {
        self.queue.try_next()
    }

    /// Ends this subscription; the router is told (UNSUBSCRIBE) when no other local subscription
    /// shares it.
    pub async fn unsubscribe(self) -> Result<(), Error> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Unsubscribe {
                subscription: self.id,
                key: self.key,
                reply,
            })
            .await
            .map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }
}

impl Stream for Subscription {
    type Item = Result<Event, Lagged>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.queue.poll_next(cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.queue.drop_consumer();
    }
}

/// One bounded stream of the events of several subscriptions, in the order the router sent them
/// (events of separate [`Subscription`]s can be read in another order than they arrived). Made
/// for relays, such as a router link, that pass every event on in order. The same lag rule as a
/// [`Subscription`]'s applies; the stream ends when the session does.
#[derive(Debug, Clone)]
pub struct EventFeed {
    queue: Arc<LagQueue<Event>>,
}

impl EventFeed {
    /// A feed buffering at most `capacity` events.
    pub fn new(capacity: usize) -> Self {
        Self {
            queue: LagQueue::new(capacity),
        }
    }

    pub(crate) fn queue(&self) -> Arc<LagQueue<Event>> {
        self.queue.clone()
    }

    /// The next event of any subscription feeding it, `Err(Lagged(n))` after `n` were dropped,
    /// or `None` once the session has ended.
    pub async fn next(&self) -> Option<Result<Event, Lagged>> {
        std::future::poll_fn(|cx| self.queue.poll_next(cx)).await
    }
}

/// The session task's end of one local subscription.
#[derive(Debug)]
pub(crate) struct Sink {
    pub(crate) key: u64,
    pub(crate) topic: String,
    pub(crate) queue: Arc<LagQueue<Event>>,
    /// The queue is an [`EventFeed`] that other subscriptions share: ending this subscription
    /// leaves it open.
    pub(crate) shared: bool,
}

impl Sink {
    /// This subscription ended: its stream ends, unless it feeds a shared [`EventFeed`].
    pub(crate) fn end(&self) {
        if !self.shared {
            self.queue.close();
        }
    }

    /// Delivers an event; `false` when the consumer is gone.
    pub(crate) fn deliver(
        &self,
        publication: Id,
        details: &Dict,
        args: &Args,
        pattern_topic: Option<&str>,
    ) -> bool {
        self.queue.push(Event {
            publication,
            details: details.clone(),
            args: args.clone(),
            topic: pattern_topic.unwrap_or(&self.topic).to_owned(),
        })
    }
}

/// EVENT.Details.topic, which the broker adds for pattern-based subscriptions.
pub(crate) fn pattern_topic(details: &Dict) -> Option<&str> {
    details.get("topic").and_then(Value::as_str)
}
