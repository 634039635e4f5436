//! Failed-authentication rate limiting per client IP address (a transport's `auth_rate_limit`).
//!
//! Each source (an IPv4 address, or an IPv6 /64 network) keeps the times of its failures in the
//! current window. Once it reaches the limit, its HELLOs are denied without looking at their
//! credentials until the oldest failure leaves the window, so guessing a secret online costs
//! `window / failures` per guess.
//!
//! An authentication counts through an `Attempt`, which the auth state machine begins at HELLO
//! and settles when the method's verdict is in, however many messages that takes.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchboard_proto::errors;
use tracing::info;

use super::{Authenticated, Denied, peer_text};
use crate::locks::lock;

/// How many addresses are tracked before expired ones are first swept out; later sweeps wait
/// until the table has doubled again, so sweeping stays amortized constant per attempt.
const FIRST_SWEEP_AT: usize = 10_000;

/// Failure counts of one transport.
#[derive(Debug)]
pub struct FailureLimiter {
    failures: usize,
    window: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    by_source: HashMap<IpAddr, VecDeque<Instant>>,
    sweep_at: usize,
}

/// The source an address counts for: the address itself for IPv4, its /64 network for IPv6 (one
/// host usually has a whole /64 to pick addresses from).
fn source(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
    }
}

impl FailureLimiter {
    /// A limiter allowing `failures` failures per `window` (validation keeps both above zero).
    pub fn new(failures: u32, window: Duration) -> Self {
        Self {
            failures: (failures as usize).max(1),
            window,
            state: Mutex::new(State {
                by_source: HashMap::new(),
                sweep_at: FIRST_SWEEP_AT,
            }),
        }
    }

    /// Starts an attempt from `ip`: `false` when its source has used up its failures in the
    /// current window. Otherwise the attempt counts as a failure until [`Self::forgive`] takes it
    /// back, so attempts made in parallel cannot get past the limit.
    pub fn begin_attempt(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let mut state = lock(&self.state);
        if state.by_source.len() >= state.sweep_at {
            let window = self.window;
            state.by_source.retain(|_, times| {
                expire(times, now, window);
                !times.is_empty()
            });
            state.sweep_at = (state.by_source.len() * 2).max(FIRST_SWEEP_AT);
        }
        let times = state.by_source.entry(source(ip)).or_default();
        expire(times, now, self.window);
        if times.len() >= self.failures {
            return false;
        }
        times.push_back(now);
        true
    }

    /// Takes back the failure [`Self::begin_attempt`] counted: the attempt succeeded, or ended
    /// for a reason that is not the client's credentials.
    pub fn forgive(&self, ip: IpAddr) {
        let mut state = lock(&self.state);
        if let Some(times) = state.by_source.get_mut(&source(ip)) {
            times.pop_back();
        }
    }

    /// Whether `ip`'s source has used up its failures in the current window.
    #[cfg(test)]
    fn is_blocked(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let mut state = lock(&self.state);
        state.by_source.get_mut(&source(ip)).is_some_and(|times| {
            expire(times, now, self.window);
            times.len() >= self.failures
        })
    }
}

/// One authentication as the limiter sees it: a failure from [`Attempt::begin`] on, taken back
/// when it ends in anything but the client's credentials being refused.
///
/// Only [`Attempt::settle`] and [`Attempt::deny`] end an attempt with a verdict, and they also
/// log a denial; an attempt dropped without one (an exchange nobody finished) is forgiven, as it
/// refused no credentials. The auth state machine owns its attempts, so no driver can forget one.
#[derive(Debug)]
pub(super) struct Attempt {
    /// The limiter and address the attempt counts against, until it is settled.
    counted: Option<(Arc<FailureLimiter>, IpAddr)>,
    peer: Option<SocketAddr>,
    /// HELLO's authid, for the log line of a denial.
    authid: Option<String>,
}

impl Attempt {
    /// Starts an attempt from `peer` (none on Unix sockets, which are not limited). Refused before
    /// any credential is looked at when the address used up its failures; that refusal is not
    /// logged, so a client hammering a blocked address cannot flood the log.
    pub(super) fn begin(
        limiter: Option<&Arc<FailureLimiter>>,
        peer: Option<SocketAddr>,
        authid: Option<&str>,
    ) -> Result<Self, Denied> {
        let counted = limiter.zip(peer).map(|(l, a)| (Arc::clone(l), a.ip()));
        if let Some((limiter, ip)) = &counted
            && !limiter.begin_attempt(*ip)
        {
            return Err(Denied::new(
                errors::AUTHENTICATION_DENIED,
                "too many failed authentication attempts from this address; try again later",
            ));
        }
        Ok(Self {
            counted,
            peer,
            authid: authid.map(str::to_owned),
        })
    }

    /// Ends the attempt with its verdict: a refusal of the client's credentials stays counted,
    /// anything else is forgiven; a denial is logged.
    pub(super) fn settle(
        mut self,
        outcome: Result<Authenticated, Denied>,
    ) -> Result<Authenticated, Denied> {
        match &outcome {
            Ok(_) => self.forgive(),
            Err(denied) => self.record_denial(denied),
        }
        outcome
    }

    /// Ends the attempt with a denial ([`Self::settle`] with an error).
    pub(super) fn deny(mut self, denied: Denied) -> Denied {
        self.record_denial(&denied);
        denied
    }

    fn record_denial(&mut self, denied: &Denied) {
        if denied.failed_attempt {
            // Stays counted: the limiter is left alone when the attempt is dropped.
            self.counted = None;
        } else {
            self.forgive();
        }
        // Failed logins are what an operator (or fail2ban) watches for; the message says what
        // failed, never what was sent.
        info!(
            peer = %peer_text(self.peer),
            authid = self.authid.as_deref().unwrap_or(""),
            reason = %denied.reason,
            "authentication denied: {}",
            denied.message
        );
    }

    fn forgive(&mut self) {
        if let Some((limiter, ip)) = self.counted.take() {
            limiter.forgive(ip);
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.forgive();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(limiter: &FailureLimiter, ip: IpAddr) {
        assert!(limiter.begin_attempt(ip), "{ip} is not blocked yet");
    }

    #[test]
    fn an_address_is_blocked_after_its_failures_and_others_are_not() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(60));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        fail(&limiter, a);
        fail(&limiter, a);
        assert!(!limiter.is_blocked(a));
        fail(&limiter, a);
        assert!(limiter.is_blocked(a));
        assert!(!limiter.begin_attempt(a));
        assert!(!limiter.is_blocked(b));
    }

    #[test]
    fn forgiven_attempts_do_not_count_but_parallel_ones_do() {
        let limiter = FailureLimiter::new(2, Duration::from_secs(60));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..10 {
            fail(&limiter, a);
            limiter.forgive(a);
        }
        assert!(!limiter.is_blocked(a));
        // Two attempts in flight at once use up the allowance before either has failed.
        fail(&limiter, a);
        fail(&limiter, a);
        assert!(!limiter.begin_attempt(a));
    }

    #[test]
    fn ipv6_addresses_count_per_64_network() {
        let limiter = FailureLimiter::new(1, Duration::from_secs(60));
        fail(&limiter, "2001:db8:1:2::1".parse().unwrap());
        assert!(limiter.is_blocked("2001:db8:1:2:ffff::9".parse().unwrap()));
        assert!(!limiter.is_blocked("2001:db8:1:3::1".parse().unwrap()));
    }

    #[test]
    fn failures_leave_the_window() {
        let limiter = FailureLimiter::new(1, Duration::from_millis(30));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        fail(&limiter, a);
        assert!(limiter.is_blocked(a));
        std::thread::sleep(Duration::from_millis(40));
        assert!(!limiter.is_blocked(a));
    }
}
