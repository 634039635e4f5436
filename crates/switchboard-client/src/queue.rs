//! The bounded queue between the session task and a consumer that reads at its own pace: the
//! events of a [`Subscription`](crate::Subscription) and the progressive results of a
//! [`CallHandle`](crate::CallHandle).
//!
//! The session task must never wait for a consumer (it also answers invocations and routes every
//! other reply of the session) and must never buffer without bound. So a push into a full queue
//! drops the oldest item and counts it; the consumer learns how many it missed, as one
//! [`Lagged`] item, before the next item it does get. Newer items win because a consumer that has
//! fallen behind is better served by the present state than by a backlog that only grows older.
//!
//! The lock is a std mutex: it is held for a few pointer moves, never across an `.await`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// The consumer fell behind: this many items were dropped, oldest first, to make room for newer
/// ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the consumer lagged behind: {0} items were dropped")]
pub struct Lagged(pub u64);

/// The producer's and the consumer's shared view of one queue.
#[derive(Debug)]
pub(crate) struct LagQueue<T> {
    state: Mutex<State<T>>,
}

#[derive(Debug)]
struct State<T> {
    items: VecDeque<T>,
    capacity: usize,
    /// Items dropped since the consumer last heard about it.
    missed: u64,
    /// No more items will come (unsubscribed, the call ended, or the session closed).
    closed: bool,
    /// The consumer is gone: pushing is pointless, and the producer may clean up.
    consumer_gone: bool,
    waker: Option<Waker>,
}

impl<T> LagQueue<T> {
    /// A queue that holds at most `capacity` items (at least one).
    pub(crate) fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                items: VecDeque::new(),
                capacity: capacity.max(1),
                missed: 0,
                closed: false,
                consumer_gone: false,
                waker: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while the lock is held can only come from an allocation failure inside
        // VecDeque; the state is still consistent then, so poisoning is ignored.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds an item, dropping the oldest one if the queue is full. Returns `false` when the
    /// consumer is gone (the item is discarded).
    pub(crate) fn push(&self, item: T) -> bool {
        let waker = {
            let mut s = self.lock();
            if s.consumer_gone {
                return false;
            }
            if s.closed {
                return true;
            }
            if s.items.len() >= s.capacity {
                s.items.pop_front();
                s.missed += 1;
            }
            s.items.push_back(item);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    /// No more items: the consumer reads what is queued, then the end.
    pub(crate) fn close(&self) {
        let waker = {
            let mut s = self.lock();
            s.closed = true;
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Whether the consumer dropped its end.
    pub(crate) fn consumer_gone(&self) -> bool {
        self.lock().consumer_gone
    }

    /// Called by the consumer's `Drop`.
    pub(crate) fn drop_consumer(&self) {
        let mut s = self.lock();
        s.consumer_gone = true;
        s.items.clear();
    }

    /// The next item: first the count of dropped items if there is one, then the oldest queued
    /// item; `None` once the queue is closed and empty.
    pub(crate) fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<Result<T, Lagged>>> {
        let mut s = self.lock();
        match s.try_next() {
            Some(item) => Poll::Ready(Some(item)),
            None if s.closed => Poll::Ready(None),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// What [`LagQueue::poll_next`] would return now, without waiting: `None` when nothing is
    /// queued (whether or not more may come).
    pub(crate) fn try_next(&self) -> Option<Result<T, Lagged>> {
        self.lock().try_next()
    }
}

impl<T> State<T> {
    fn try_next(&mut self) -> Option<Result<T, Lagged>> {
        if self.missed > 0 {
            let missed = std::mem::take(&mut self.missed);
            return Some(Err(Lagged(missed)));
        }
        self.items.pop_front().map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use super::*;

    #[test]
    fn a_full_queue_drops_the_oldest_and_reports_the_count_before_the_next_item() {
        let q = LagQueue::new(4);
        for n in 1..=10 {
            assert!(q.push(n));
        }
        assert_eq!(q.try_next(), Some(Err(Lagged(6))));
        assert_eq!(q.try_next(), Some(Ok(7)));
        // More items overflow again while the consumer is part-way through.
        for n in 11..=13 {
            q.push(n);
        }
        assert_eq!(q.try_next(), Some(Err(Lagged(2))));
        assert_eq!(q.try_next(), Some(Ok(10)));
        assert_eq!(q.try_next(), Some(Ok(11)));
        assert_eq!(q.try_next(), Some(Ok(12)));
        assert_eq!(q.try_next(), Some(Ok(13)));
        assert_eq!(q.try_next(), None);
    }

    #[test]
    fn a_zero_capacity_still_holds_one_item() {
        let q = LagQueue::new(0);
        q.push(1);
        q.push(2);
        assert_eq!(q.try_next(), Some(Err(Lagged(1))));
        assert_eq!(q.try_next(), Some(Ok(2)));
    }

    #[tokio::test]
    async fn a_closed_queue_yields_what_it_holds_then_ends() {
        let q = LagQueue::new(8);
        q.push("a");
        q.close();
        q.push("ignored");
        assert_eq!(poll_fn(|cx| q.poll_next(cx)).await, Some(Ok("a")));
        assert_eq!(poll_fn(|cx| q.poll_next(cx)).await, None);
    }

    #[tokio::test]
    async fn a_waiting_consumer_is_woken_by_a_push() {
        let q = LagQueue::new(8);
        let producer = {
            let q = q.clone();
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                q.push(42)
            })
        };
        assert_eq!(poll_fn(|cx| q.poll_next(cx)).await, Some(Ok(42)));
        assert!(producer.await.unwrap());
    }

    #[test]
    fn pushing_after_the_consumer_left_is_refused() {
        let q = LagQueue::new(8);
        q.push(1);
        q.drop_consumer();
        assert!(q.consumer_gone());
        assert!(!q.push(2));
    }
}
