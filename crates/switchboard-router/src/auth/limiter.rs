//! Failed-authentication rate limiting per client IP address (a transport's `auth_rate_limit`).
//!
//! Each address keeps the times of its failures in the current window. Once it reaches the limit,
//! its HELLOs are denied without looking at their credentials until the oldest failure leaves the
//! window, so guessing a secret online costs `window / failures` per guess.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many addresses are tracked before expired ones are swept out.
const SWEEP_AT_ADDRESSES: usize = 10_000;

/// Failure counts of one transport.
#[derive(Debug)]
pub struct FailureLimiter {
    failures: usize,
    window: Duration,
    by_address: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl FailureLimiter {
    /// A limiter allowing `failures` failures per `window`.
    pub fn new(failures: u32, window: Duration) -> Self {
        Self {
            failures: failures as usize,
            window,
            by_address: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `ip` has used up its failures in the current window.
    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let mut map = lock(&self.by_address);
        match map.get_mut(&ip) {
            Some(times) => {
                expire(times, now, self.window);
                times.len() >= self.failures
            }
            None => false,
        }
    }

    /// Counts a failed attempt from `ip`.
    pub fn record_failure(&self, ip: IpAddr) {
        let now = Instant::now();
        let mut map = lock(&self.by_address);
        if map.len() >= SWEEP_AT_ADDRESSES {
            map.retain(|_, times| {
                expire(times, now, self.window);
                !times.is_empty()
            });
        }
        let times = map.entry(ip).or_default();
        expire(times, now, self.window);
        times.push_back(now);
        // Only the last `failures` matter for the decision.
        while times.len() > self.failures.max(1) {
            times.pop_front();
        }
    }
}

fn expire(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while times
        .front()
        .is_some_and(|t| now.duration_since(*t) >= window)
    {
        times.pop_front();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_blocked_after_its_failures_and_others_are_not() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(60));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..2 {
            limiter.record_failure(a);
        }
        assert!(!limiter.is_blocked(a));
        limiter.record_failure(a);
        assert!(limiter.is_blocked(a));
        assert!(!limiter.is_blocked(b));
    }

    #[test]
    fn failures_leave_the_window() {
        let limiter = FailureLimiter::new(1, Duration::from_millis(30));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        limiter.record_failure(a);
        assert!(limiter.is_blocked(a));
        std::thread::sleep(Duration::from_millis(40));
        assert!(!limiter.is_blocked(a));
    }
}
