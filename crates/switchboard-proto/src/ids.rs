//! WAMP ids and their three scopes (spec, "Identifiers"): global (random), router and session.
//!
//! Every id is an integer in `[1, 2^53]` so that it survives a trip through JavaScript's doubles.

use std::sync::atomic::{AtomicU64, Ordering};

/// The largest id the spec allows: 2^53.
pub const MAX_ID: u64 = 1 << 53;

/// A WAMP id as it appears on the wire. Domain newtypes (`SessionId`, ...) live in the router.
pub type Id = u64;

/// A fresh id in the global scope: drawn uniformly at random from `[1, 2^53]` (session ids,
/// publication ids).
pub fn random_global_id() -> Id {
    rand::random_range(1..=MAX_ID)
}

/// Sequential ids for the session scope (request ids) and the router scope (subscription and
/// registration ids): 1, 2, 3, ... wrapping back to 1 after 2^53.
///
/// The router scope uses one generator per router; the high bits are free for a node number when ids
/// must be unique across a cluster.
#[derive(Debug)]
pub struct IdSequence(AtomicU64);

impl IdSequence {
    /// A sequence whose first id is 1.
    pub const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// The next id of the sequence.
    pub fn next_id(&self) -> Id {
        // fetch_update never fails here: the closure always returns Some.
        let prev = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(if n >= MAX_ID { 1 } else { n + 1 })
            })
            .unwrap_or(0);
        if prev >= MAX_ID { 1 } else { prev + 1 }
    }
}

impl Default for IdSequence {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_starts_at_one_and_wraps_after_2_pow_53() {
        let s = IdSequence::new();
        assert_eq!(s.next_id(), 1);
        assert_eq!(s.next_id(), 2);
        let s = IdSequence(AtomicU64::new(MAX_ID - 1));
        assert_eq!(s.next_id(), MAX_ID);
        assert_eq!(s.next_id(), 1);
    }

    #[test]
    fn random_ids_stay_in_range() {
        for _ in 0..1000 {
            let id = random_global_id();
            assert!((1..=MAX_ID).contains(&id));
        }
    }
}
