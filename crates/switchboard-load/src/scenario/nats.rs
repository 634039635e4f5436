//! The bare-broker reference: `rpc` and `pubsub` against a NATS server (`--url nats://host:port`),
//! so that a reader sees where a WAMP router stands against a broker that only moves bytes. The
//! NATS connections run through the same sending and receiving loops, and the same checks, as
//! `echo` and `fanout`, with the server standing in for the echo server or the hub.
//!
//! - `rpc` as request-reply: one responder connection subscribes to a subject and publishes every
//!   request back to its reply subject (the counterpart of the WAMP callee the tool registers);
//!   `--callers` connections keep `--in-flight` requests outstanding each, with their own inbox
//!   as the reply subject. Both routes take two hops through the server (CALL to INVOCATION and
//!   YIELD to RESULT; request to responder and reply to caller). Every reply must equal its
//!   request, in order (one responder answers each caller in the order it asked).
//! - `pubsub` as fan-out: `--subscribers` connections subscribe to one subject; `--publishers`
//!   connections keep `--in-flight` messages outstanding each. A message counts as acknowledged
//!   when the publisher's own copy comes back: each publisher subscribes to the subject too, and
//!   NATS delivers a connection's messages to its own subscriptions. That is the closest honest
//!   counterpart of WAMP's acknowledged PUBLISH: one more message from the server per
//!   publication (WAMP's PUBLISHED), sent once the server has routed it, with flow control per
//!   message. Core NATS has no acknowledgement of its own, and a flush only waits for the client's
//!   own socket; a ping every K messages would stall the window instead of sliding it. With more
//!   than one publisher, each also gets the others' messages (and ignores them), work a WAMP
//!   router does not do.
//!
//! Messages are the `echo` and `fanout` headers followed by `--payload` bytes of padding, as the
//! WAMP scenarios put `--payload` bytes of padding next to their numbers. Serializers, realms,
//! authentication and the multi-router options mean nothing here and are refused.

use anyhow::{Context as _, anyhow};
use async_nats::{Client, Subject};
use bytes::Bytes;
use futures::{FutureExt as _, StreamExt as _, TryStreamExt as _};
use tokio_util::sync::CancellationToken;

use super::echo::{ECHO_HEADER, FANOUT_HEADER, echo_loop, measure_fanout};
use super::{Ctx, Load, Outcome, PubSubParams, measure, merge_all, run_id, spawn_each};
use crate::conn::{OPEN_TIMEOUT, Target, Wire};
use crate::measure::Tally;

/// One NATS connection as a [`Wire`]: what it feeds goes to `subject` (with `reply_to` as the
/// reply subject, if any), what it receives comes from one subscription. Dropping it unsubscribes
/// and closes the connection.
struct NatsWire {
    client: Client,
    subject: Subject,
    reply_to: Option<Subject>,
    incoming: async_nats::Subscriber,
}

impl Wire for NatsWire {
    async fn recv(&mut self) -> anyhow::Result<Option<Bytes>> {
        Ok(self.incoming.next().await.map(|m| m.payload))
    }

    fn try_recv(&mut self) -> Option<anyhow::Result<Option<Bytes>>> {
        self.incoming
            .next()
            .now_or_never()
            .map(|m| Ok(m.map(|m| m.payload)))
    }

    async fn feed(&mut self, msg: Bytes) -> anyhow::Result<()> {
        match &self.reply_to {
            Some(reply) => {
                self.client
                    .publish_with_reply(self.subject.clone(), reply.clone(), msg)
                    .await?;
            }
            None => self.client.publish(self.subject.clone(), msg).await?,
        }
        Ok(())
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        // The client's connection task writes whenever it runs out of commands: waiting for it
        // here would only add a wake-up and a round through its channel per batch.
        Ok(())
    }

    async fn close(&mut self) {
        // Dropping the client and its subscription closes the connection; nothing is left to
        // send by the time a loop closes.
    }
}

/// Connects to the NATS server of `target`.
async fn connect(target: &Target) -> anyhow::Result<Client> {
    async_nats::ConnectOptions::new()
        .connection_timeout(OPEN_TIMEOUT)
        .connect(format!("nats://{}", target.addr))
        .await
        .with_context(|| format!("connecting to NATS at {}", target.url))
}

/// Waits until the server has processed everything `client` sent so far (its subscriptions above
/// all): an empty message to a private subject, through the server and back.
async fn round_trip(client: &Client) -> anyhow::Result<()> {
    let inbox = Subject::from(client.new_inbox());
    let mut probe = client.subscribe(inbox.clone()).await?;
    client.publish(inbox, Bytes::new()).await?;
    tokio::time::timeout(OPEN_TIMEOUT, probe.next())
        .await
        .map_err(|_| anyhow!("no round trip through NATS within {OPEN_TIMEOUT:?}"))?
        .ok_or_else(|| anyhow!("the NATS connection closed"))?;
    Ok(())
}

/// A connection subscribed to `subject`, the server knowing it, that publishes on `subject`.
async fn subscribed(target: &Target, subject: &Subject) -> anyhow::Result<NatsWire> {
    let client = connect(target).await?;
    let incoming = client.subscribe(subject.clone()).await?;
    round_trip(&client).await?;
    Ok(NatsWire {
        client,
        subject: subject.clone(),
        reply_to: None,
        incoming,
    })
}

/// A caller: requests go to `subject`, replies come to its own inbox.
async fn caller(target: &Target, subject: &Subject) -> anyhow::Result<NatsWire> {
    let client = connect(target).await?;
    let inbox = Subject::from(client.new_inbox());
    // The server handles a connection's commands in order: this subscription is in place before
    // the first request can be answered.
    let incoming = client.subscribe(inbox.clone()).await?;
    Ok(NatsWire {
        client,
        subject: subject.clone(),
        reply_to: Some(inbox),
        incoming,
    })
}

/// Runs `rpc` as request-reply: `callers` connections with `load` each, one responder.
pub async fn run_request_reply(ctx: &Ctx, callers: usize, load: Load) -> anyhow::Result<Outcome> {
    let subject = Subject::from(format!("{}.echo.r{}", ctx.uri_prefix, run_id()));
    let responder = connect(&ctx.target).await.context("the responder")?;
    let requests = responder.subscribe(subject.clone()).await?;
    round_trip(&responder).await.context("the responder")?;
    let callers: Vec<NatsWire> = futures::stream::iter(0..callers)
        .map(|_| caller(&ctx.target, &subject))
        .buffer_unordered(64)
        .try_collect()
        .await
        .context("callers connect")?;
    let size = ECHO_HEADER + load.payload;

    measure(ctx, "rpc", |window| async move {
        let stop = CancellationToken::new();
        let responder_task = tokio::spawn(respond(responder, requests, stop.clone()));
        let tasks = spawn_each(callers, |id, wire| {
            echo_loop(wire, id, size, load.in_flight, window, ctx.progress.clone())
        });
        let mut tally = merge_all(tasks).await?;
        stop.cancel();
        tally.merge(responder_task.await?);
        Ok(tally)
    })
    .await
}

/// The responder: publishes every request back to its reply subject until `stop`.
async fn respond(
    client: Client,
    mut requests: async_nats::Subscriber,
    stop: CancellationToken,
) -> Tally {
    let mut tally = Tally::default();
    loop {
        let next = tokio::select! {
            () = stop.cancelled() => break,
            next = requests.next() => next,
        };
        let Some(request) = next else {
            tally.error(1, || "responder: the subscription ended".into());
            break;
        };
        let Some(reply) = request.reply else {
            tally.error(1, || "responder: a request without a reply subject".into());
            continue;
        };
        if let Err(e) = client.publish(reply, request.payload).await {
            tally.error(1, || format!("responder: {e}"));
            break;
        }
    }
    tally
}

/// Runs `pubsub` as fan-out on one subject.
pub async fn run_fanout(ctx: &Ctx, p: PubSubParams) -> anyhow::Result<Outcome> {
    let subject = Subject::from(format!("{}.topic.t{}", ctx.uri_prefix, run_id()));
    let join = |n: usize| {
        futures::stream::iter(0..n)
            .map(|_| subscribed(&ctx.target, &subject))
            .buffer_unordered(64)
            .try_collect::<Vec<_>>()
    };
    let subscribers = join(p.subscribers).await.context("subscribers connect")?;
    let publishers = join(p.publishers).await.context("publishers connect")?;
    let size = FANOUT_HEADER + p.load.payload;

    measure_fanout(ctx, "pubsub", p, subscribers, publishers, size).await
}
