//! Delivery bookkeeping shared by `pubsub` and `fanout`: every publisher numbers its messages
//! 0, 1, 2, ...; every subscriber tracks, per publisher, what arrived, and at the end compares
//! with what the publisher had acknowledged.

use std::collections::HashSet;

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
    fn absurd_jumps_are_corrupt() {
        let mut t = Track::default();
        assert_eq!(t.arrive(u64::MAX), Arrival::Corrupt);
    }
}
