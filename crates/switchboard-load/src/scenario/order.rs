//! Delivery bookkeeping shared by `pubsub` and `fanout`: every publisher numbers its messages
//! 0, 1, 2, ...; every subscriber tracks, per publisher, what arrived, and at the end compares
//! with what the publisher had acknowledged (the finals, which the coordinator hands out once
//! every publisher is done). The subscriber's receive loop lives here too, on any [`Wire`] (a
//! WAMP or hub connection, or a NATS subscription); what a message means is each scenario's to
//! decode.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::merge_all;
use crate::conn::Wire;
use crate::measure::{Progress, Tally, Window};

/// The largest jump forward a sequence number may make. A bigger one means a corrupt payload, and
/// remembering every skipped number would only eat memory.
const MAX_GAP: u64 = 1 << 22;

/// What one publisher sent, as its subscribers learn at the end of a run.
#[derive(Debug, Clone, Default)]
pub struct Sent {
    /// Messages 0..count were sent.
    pub count: u64,
    /// Those of them never acknowledged (an ERROR, or no answer before the drain deadline): a
    /// subscriber need not have them.
    pub unacked: HashSet<u64>,
}

/// How one message arrived.
#[derive(Debug, PartialEq, Eq)]
pub enum Arrival {
    /// The next one expected, or a later one (the skipped ones may still come).
    Fresh,
    /// One that had been skipped: it arrived out of order.
    Late,
    /// Already received.
    Duplicate,
    /// A sequence number too far ahead to be real.
    Corrupt,
}

/// One subscriber's view of one publisher.
#[derive(Debug, Default)]
pub struct Track {
    /// One past the highest sequence number received.
    next: u64,
    /// Numbers below `next` not received (yet).
    missing: HashSet<u64>,
}

impl Track {
    /// Records the arrival of `seq`.
    pub fn arrive(&mut self, seq: u64) -> Arrival {
        if seq == self.next {
            self.next += 1;
            Arrival::Fresh
        } else if seq > self.next {
            if seq - self.next > MAX_GAP {
                return Arrival::Corrupt;
            }
            self.missing.extend(self.next..seq);
            self.next = seq + 1;
            Arrival::Fresh
        } else if self.missing.remove(&seq) {
            Arrival::Late
        } else {
            Arrival::Duplicate
        }
    }

    /// How many acknowledged messages of `sent` never arrived.
    pub fn lost(&self, sent: &Sent) -> u64 {
        let acked = |s: &u64| *s < sent.count && !sent.unacked.contains(s);
        let holes = self.missing.iter().filter(|s| acked(s)).count() as u64;
        let tail_unacked = sent
            .unacked
            .iter()
            .filter(|s| **s >= self.next && **s < sent.count)
            .count() as u64;
        let tail = sent.count.saturating_sub(self.next) - tail_unacked;
        holes + tail
    }
}

/// What subscribers learn once the publishers are done.
pub struct Finals {
    /// Per publisher, what it sent.
    pub sent: Vec<Sent>,
    /// Subscribers stop waiting for missing messages here.
    pub deadline: Instant,
}

/// The finals channel's sending side, the coordinator's.
pub type FinalsTx = watch::Sender<Option<Arc<Finals>>>;

/// The finals channel: `None` while publishers are still running.
pub type FinalsRx = watch::Receiver<Option<Arc<Finals>>>;

/// A finals channel with no finals yet.
pub fn finals_channel() -> (FinalsTx, FinalsRx) {
    watch::channel(None)
}

/// The coordinator's part: awaits the publishers, hands what they sent to the subscribers, then
/// awaits the subscribers. The tallies are merged publishers first, in order.
pub async fn merge_publishers_then_subscribers(
    publishers: Vec<JoinHandle<(Sent, Tally)>>,
    subscribers: Vec<JoinHandle<Tally>>,
    finals: FinalsTx,
    window: &Window,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let mut sent = Vec::with_capacity(publishers.len());
    for t in publishers {
        let (s, t) = t.await?;
        sent.push(s);
        tally.merge(t);
    }
    // Subscribers get at least a moment after the last acknowledgement, even when publishers
    // used up the drain time.
    let deadline = window
        .drain_deadline
        .max(Instant::now() + Duration::from_millis(500));
    finals.send_replace(Some(Arc::new(Finals { sent, deadline })));
    tally.merge(merge_all(subscribers).await?);
    Ok(tally)
}

/// One subscriber's side of a run: a [`Track`] per publisher, the finals it waits for, and what
/// it counted.
pub struct Subscriber {
    /// What this subscriber counted.
    pub tally: Tally,
    tracks: Vec<Track>,
    finals: FinalsRx,
    window: Window,
    progress: Progress,
}

impl Subscriber {
    /// A subscriber of `publishers` publishers.
    pub fn new(publishers: usize, window: Window, finals: FinalsRx, progress: Progress) -> Self {
        Self {
            tally: Tally::default(),
            tracks: (0..publishers).map(|_| Track::default()).collect(),
            finals,
            window,
            progress,
        }
    }

    /// Counts one arrival of message `seq` of `publisher`, sent at the payload timestamp `stamp`.
    /// False, and nothing counted, when there is no such publisher.
    pub fn arrive(&mut self, publisher: usize, seq: u64, stamp: u64) -> bool {
        let Some(track) = self.tracks.get_mut(publisher) else {
            return false;
        };
        let now = Instant::now();
        match track.arrive(seq) {
            a @ (Arrival::Fresh | Arrival::Late) => {
                if a == Arrival::Late {
                    self.tally.reordered += 1;
                }
                self.progress.add(1);
                if self.window.contains(now) {
                    self.tally.ops += 1;
                    let sent_at = self.window.unstamp(stamp);
                    self.tally
                        .latency
                        .record(now.saturating_duration_since(sent_at));
                }
            }
            Arrival::Duplicate => self.tally.duplicated += 1,
            Arrival::Corrupt => self
                .tally
                .error(1, || format!("sequence number {seq} is implausible")),
        }
        true
    }

    /// Whether this subscriber has everything the publishers had acknowledged.
    fn complete(&self, finals: &Finals) -> bool {
        self.tracks
            .iter()
            .zip(&finals.sent)
            .all(|(t, s)| t.lost(s) == 0)
    }

    /// Receives on `conn`, handing every message to `on_message`, until this subscriber has every
    /// acknowledged message or the finals' deadline passes. Batches like the sending loop: every
    /// message already buffered before waiting again.
    pub async fn receive<W, F>(&mut self, conn: &mut W, mut on_message: F) -> anyhow::Result<()>
    where
        W: Wire,
        F: FnMut(&mut Self, Bytes) -> anyhow::Result<()>,
    {
        loop {
            let known = self.finals.borrow_and_update().clone();
            if let Some(f) = &known
                && self.complete(f)
            {
                return Ok(());
            }
            let deadline = known.as_ref().map(|f| f.deadline);
            let first = tokio::select! {
                changed = self.finals.changed() => {
                    // The sender lives until every subscriber is done, so this cannot fail.
                    changed.map_err(|_| anyhow!("finals channel closed"))?;
                    continue;
                }
                _ = sleep_until_opt(deadline) => return Ok(()),
                r = conn.recv() => r,
            };
            let mut incoming = first;
            loop {
                let msg = incoming?.ok_or_else(|| anyhow!("connection closed"))?;
                on_message(self, msg)?;
                match conn.try_recv() {
                    Some(r) => incoming = r,
                    None => break,
                }
            }
        }
    }

    /// Ends a subscriber's run: counts the failure that ended [`Subscriber::receive`], if any
    /// (naming `task`), then waits for the finals and counts the acknowledged messages that never
    /// arrived. Returns whether receiving ended without a failure.
    pub async fn finish(&mut self, received: anyhow::Result<()>, task: &str) -> bool {
        let healthy = match received {
            Ok(()) => true,
            Err(e) => {
                self.tally.failure(task, &e);
                false
            }
        };
        // The coordinator always publishes the finals; lost messages are judged against them.
        if let Ok(f) = self.finals.wait_for(Option::is_some).await
            && let Some(f) = f.as_ref()
        {
            for (t, s) in self.tracks.iter().zip(&f.sent) {
                self.tally.lost += t.lost(s);
            }
        }
        healthy
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_arrivals_lose_nothing() {
        let mut t = Track::default();
        for s in 0..10 {
            assert_eq!(t.arrive(s), Arrival::Fresh);
        }
        let sent = Sent {
            count: 10,
            ..Sent::default()
        };
        assert_eq!(t.lost(&sent), 0);
    }

    #[test]
    fn a_skipped_message_is_late_when_it_comes_and_lost_when_it_does_not() {
        let mut t = Track::default();
        assert_eq!(t.arrive(0), Arrival::Fresh);
        assert_eq!(t.arrive(3), Arrival::Fresh);
        assert_eq!(t.arrive(1), Arrival::Late);
        assert_eq!(t.arrive(1), Arrival::Duplicate);
        assert_eq!(t.arrive(3), Arrival::Duplicate);
        let sent = Sent {
            count: 6,
            ..Sent::default()
        };
        // 2 is a hole; 4 and 5 never came.
        assert_eq!(t.lost(&sent), 3);
    }

    #[test]
    fn unacknowledged_messages_are_not_lost() {
        let mut t = Track::default();
        t.arrive(0);
        t.arrive(2);
        let sent = Sent {
            count: 4,
            unacked: [1, 3].into_iter().collect(),
        };
        assert_eq!(t.lost(&sent), 0);
    }

    #[test]
    fn a_subscriber_counts_nothing_for_an_unknown_publisher() {
        let window = Window::new(Duration::ZERO, Duration::from_secs(60), Duration::ZERO);
        let (_finals_tx, finals_rx) = finals_channel();
        let mut sub = Subscriber::new(2, window, finals_rx, Progress::default());
        assert!(!sub.arrive(2, 0, 0));
        assert_eq!(sub.tally.ops, 0);
        assert!(sub.arrive(1, 0, 0));
        assert!(sub.arrive(1, 0, 0));
        assert_eq!((sub.tally.ops, sub.tally.duplicated), (1, 1));
    }

    #[test]
    fn absurd_jumps_are_corrupt() {
        let mut t = Track::default();
        assert_eq!(t.arrive(u64::MAX), Arrival::Corrupt);
    }
}
