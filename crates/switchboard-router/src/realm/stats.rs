//! A realm's counters for the node's metrics: plain atomics bumped where the routing happens (no
//! registry, label lookup or lock per message), read when the metrics are scraped.
//!
//! Relaxed ordering throughout: each counter only ever grows and is read on its own.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use switchboard_proto::{Message, Serializer};

use super::authz::Action;
use crate::locks::lock;

/// The messages a client sends in an established session, as counted (`type` label).
pub const INBOUND_TYPES: [&str; 10] = [
    "publish",
    "subscribe",
    "unsubscribe",
    "call",
    "cancel",
    "register",
    "unregister",
    "yield",
    "error",
    "goodbye",
];

/// How a call ended, for its caller (`outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// The callee's final RESULT.
    Ok,
    /// An ERROR from the callee.
    Error,
    /// Refused by the router: no callee, not authorized, a payload it could not pass on.
    Refused,
    /// Canceled by the caller, or its callee left or could not take it.
    Canceled,
    /// The dealer's timeout passed first.
    Timeout,
}

impl CallOutcome {
    /// Every outcome, in label order.
    pub const ALL: [CallOutcome; 5] = [
        CallOutcome::Ok,
        CallOutcome::Error,
        CallOutcome::Refused,
        CallOutcome::Canceled,
        CallOutcome::Timeout,
    ];

    /// The `outcome` label.
    pub fn label(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::Error => "error",
            CallOutcome::Refused => "refused",
            CallOutcome::Canceled => "canceled",
            CallOutcome::Timeout => "timeout",
        }
    }
}

/// The authentication methods counted by name (`method` label); any other (none chosen yet: an
/// address over its failure limit) counts as [`OTHER_AUTH_METHOD`]. A fixed list keeps the label
/// set bounded whatever clients offer.
pub const AUTH_METHODS: [&str; 7] = [
    "anonymous",
    "ticket",
    "wampcra",
    "scram",
    "cryptosign",
    "tls",
    "cookie",
];

/// The `method` label of an authentication not under one of [`AUTH_METHODS`].
pub const OTHER_AUTH_METHOD: &str = "other";

/// How many `method` labels there are: [`AUTH_METHODS`] and [`OTHER_AUTH_METHOD`].
const AUTH_METHOD_LABELS: usize = AUTH_METHODS.len() + 1;

/// The `method` label of `method`: its index in [`AUTH_METHODS`], or the last one (`other`).
fn auth_method_index(method: &str) -> usize {
    AUTH_METHODS
        .iter()
        .position(|m| *m == method)
        .unwrap_or(AUTH_METHODS.len())
}

/// The `method` label at `index`: one of [`AUTH_METHODS`], or [`OTHER_AUTH_METHOD`] past them.
pub fn auth_method_label(index: usize) -> &'static str {
    AUTH_METHODS
        .get(index)
        .copied()
        .unwrap_or(OTHER_AUTH_METHOD)
}

/// The bucket bounds of a [`DurationHistogram`], in seconds (`le` label; +Inf comes after them)
/// and in nanoseconds (what an observation is compared with); at most 16 of them.
pub trait Buckets: Default {
    /// The bounds in seconds, ascending.
    const SECONDS: &'static [f64];
    /// The same bounds in nanoseconds.
    const NANOS: &'static [u64];
    /// The unit the sum is kept in, in nanoseconds: small enough for the durations, large enough
    /// that the sum of them all does not wrap (sessions: thousands of them for weeks).
    const SUM_UNIT_NANOS: u64;
}

/// The most bounds a histogram has.
const MAX_BOUNDS: usize = 16;

/// A call's: from 100 µs, about what a call between two local sessions takes, to 10 s.
#[derive(Debug, Default)]
pub struct CallBuckets;

impl Buckets for CallBuckets {
    const SECONDS: &'static [f64] = &[
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0,
    ];
    // Nanoseconds: 584 years of summed call time.
    const SUM_UNIT_NANOS: u64 = 1;
    const NANOS: &'static [u64] = &[
        100_000,
        250_000,
        500_000,
        1_000_000,
        2_500_000,
        5_000_000,
        10_000_000,
        25_000_000,
        50_000_000,
        100_000_000,
        250_000_000,
        500_000_000,
        1_000_000_000,
        2_500_000_000,
        5_000_000_000,
        10_000_000_000,
    ];
}

/// A session's: from a second (a client that connects for one call) to a week.
#[derive(Debug, Default)]
pub struct SessionBuckets;

impl Buckets for SessionBuckets {
    const SECONDS: &'static [f64] = &[
        1.0, 10.0, 60.0, 300.0, 1_800.0, 3_600.0, 14_400.0, 86_400.0, 604_800.0,
    ];
    // Milliseconds: 100,000 sessions of a year each sum to 3 * 10^15 of 1.8 * 10^19.
    const SUM_UNIT_NANOS: u64 = 1_000_000;
    const NANOS: &'static [u64] = &[
        1_000_000_000,
        10_000_000_000,
        60_000_000_000,
        300_000_000_000,
        1_800_000_000_000,
        3_600_000_000_000,
        14_400_000_000_000,
        86_400_000_000_000,
        604_800_000_000_000,
    ];
}

// Each kind of bounds fits the buckets, in both units.
const _: () = assert!(
    CallBuckets::NANOS.len() <= MAX_BOUNDS
        && CallBuckets::SECONDS.len() == CallBuckets::NANOS.len()
        && SessionBuckets::NANOS.len() <= MAX_BOUNDS
        && SessionBuckets::SECONDS.len() == SessionBuckets::NANOS.len()
);

/// A histogram of durations with fixed buckets: one counter per bucket (not cumulative: one
/// observation bumps one bucket) and the sum, so an observation is two atomic additions. The
/// count is the buckets' total, so the page's `_count` always equals its `+Inf` bucket.
#[derive(Debug, Default)]
pub struct DurationHistogram<B: Buckets> {
    /// Observations per bucket of `B`, then those above its last bound (the rest unused).
    buckets: [AtomicU64; MAX_BOUNDS + 1],
    /// The sum of the observations, in `B::SUM_UNIT_NANOS`.
    sum: AtomicU64,
    bounds: std::marker::PhantomData<B>,
}

impl<B: Buckets> DurationHistogram<B> {
    /// Counts one duration.
    #[inline]
    pub fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        // Most observations fall into the first buckets: a scan from the bottom ends soonest.
        let bucket = B::NANOS
            .iter()
            .position(|bound| nanos <= *bound)
            .unwrap_or(B::NANOS.len());
        bump(&self.buckets[bucket], 1);
        bump(&self.sum, nanos / B::SUM_UNIT_NANOS);
    }

    /// The histogram now.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: B::SECONDS,
            buckets: self.buckets[..=B::NANOS.len()]
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            sum_seconds: self.sum.load(Ordering::Relaxed) as f64 * B::SUM_UNIT_NANOS as f64 / 1e9,
        }
    }
}

/// A snapshot of a [`DurationHistogram`].
#[derive(Debug, Clone, Default)]
pub struct HistogramSnapshot {
    /// The upper bounds of the buckets, in seconds.
    pub bounds: &'static [f64],
    /// Observations per bucket (not cumulative), then those above the last bound.
    pub buckets: Vec<u64>,
    /// The sum of the observations, in seconds.
    pub sum_seconds: f64,
}

impl HistogramSnapshot {
    /// How many observations there are.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// Calls and publications of the URIs the config lists for their own series
/// (`controller.options.metrics.uris`), by URI: `[calls, publications]`.
#[derive(Debug, Default)]
pub struct UriCounters {
    counters: std::collections::HashMap<String, [AtomicU64; 2]>,
}

impl UriCounters {
    /// Counters for `uris`.
    pub fn new(uris: &[String]) -> Self {
        Self {
            counters: uris
                .iter()
                .map(|u| (u.clone(), Default::default()))
                .collect(),
        }
    }
}

/// Why the router dropped a message for a session (`reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// A subscriber's outbox was full: it is closed as a slow consumer.
    SlowConsumer,
    /// A router link's outbox was full: the event is dropped, the link stays.
    Link,
}

/// A realm's counters.
#[derive(Debug, Default)]
pub struct RealmStats {
    messages_in: [AtomicU64; INBOUND_TYPES.len()],
    events_published: AtomicU64,
    events_delivered: AtomicU64,
    dropped: [AtomicU64; 2],
    calls: [AtomicU64; CallOutcome::ALL.len()],
    denied: [AtomicU64; Action::ALL.len()],
    /// Sessions joined, by authmethod and serializer (a join is rare next to messages: a lock is
    /// fine here, and it keeps the label set to what actually occurs).
    opened: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// Authentications for the realm by method ([`auth_method_index`]): `[succeeded, refused]`.
    auth: [[AtomicU64; 2]; AUTH_METHOD_LABELS],
    /// How long calls took from CALL in to the caller's first RESULT or ERROR.
    call_durations: DurationHistogram<CallBuckets>,
    /// How long sessions lasted, counted when they leave.
    session_durations: DurationHistogram<SessionBuckets>,
    /// Bytes sessions that left had sent and been sent (`[in, out]`); those of the sessions still
    /// there are added at a scrape, from their own counters.
    bytes_of_left_sessions: [AtomicU64; 2],
    /// Per-URI counters, where the config lists URIs (set once, before the realm routes).
    uris: std::sync::OnceLock<UriCounters>,
}

/// A snapshot of [`RealmStats`], for the metrics page.
#[derive(Debug, Clone, Default)]
pub struct StatsSnapshot {
    /// Inbound messages by [`INBOUND_TYPES`].
    pub messages_in: [u64; INBOUND_TYPES.len()],
    /// PUBLISH messages routed.
    pub events_published: u64,
    /// EVENT messages queued to subscribers.
    pub events_delivered: u64,
    /// Messages dropped: slow consumers, router links.
    pub dropped: [(&'static str, u64); 2],
    /// Calls by [`CallOutcome::ALL`].
    pub calls: [u64; CallOutcome::ALL.len()],
    /// Actions denied by [`Action::ALL`].
    pub denied: [u64; Action::ALL.len()],
    /// Sessions joined by (authmethod, serializer).
    pub opened: Vec<((String, &'static str), u64)>,
    /// Authentications by method (index: [`auth_method_label`]): `[succeeded, refused]`.
    pub auth: [[u64; 2]; AUTH_METHOD_LABELS],
    /// Call durations.
    pub call_durations: HistogramSnapshot,
    /// Session durations (of the sessions that left).
    pub session_durations: HistogramSnapshot,
    /// Calls and publications by listed URI: `(uri, [calls, publications])`, sorted by URI.
    pub uris: Vec<(String, [u64; 2])>,
}

impl StatsSnapshot {
    /// HELLOs whose credentials (or identity) were refused, whatever the method.
    pub fn auth_failures(&self) -> u64 {
        self.auth.iter().map(|[_, refused]| refused).sum()
    }
}

fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl RealmStats {
    /// Counts a message a client sent in an established session (others are not counted).
    #[inline]
    pub fn message_in(&self, msg: &Message) {
        let index = match msg {
            Message::Publish { .. } => 0,
            Message::Subscribe { .. } => 1,
            Message::Unsubscribe { .. } => 2,
            Message::Call { .. } => 3,
            Message::Cancel { .. } => 4,
            Message::Register { .. } => 5,
            Message::Unregister { .. } => 6,
            Message::Yield { .. } => 7,
            Message::Error { .. } => 8,
            Message::Goodbye { .. } => 9,
            _ => return,
        };
        bump(&self.messages_in[index], 1);
        if let Some(uris) = self.uris.get() {
            let (uri, kind) = match msg {
                Message::Call { procedure, .. } => (procedure, 0),
                Message::Publish { topic, .. } => (topic, 1),
                _ => return,
            };
            if let Some(counters) = uris.counters.get(uri.as_str()) {
                bump(&counters[kind], 1);
            }
        }
    }

    /// The bytes in and out of the sessions that left.
    pub fn bytes_of_left_sessions(&self) -> [u64; 2] {
        self.bytes_of_left_sessions
            .each_ref()
            .map(|c| c.load(Ordering::Relaxed))
    }

    /// Gives the URIs the config lists their own series (once; later calls change nothing).
    pub fn count_uris(&self, uris: &[String]) {
        if !uris.is_empty() {
            let _ = self.uris.set(UriCounters::new(uris));
        }
    }

    /// Counts a session that left after `lasted`, having sent `bytes_in` and been sent
    /// `bytes_out`.
    pub fn session_left(&self, lasted: Duration, bytes_in: u64, bytes_out: u64) {
        self.session_durations.observe(lasted);
        bump(&self.bytes_of_left_sessions[0], bytes_in);
        bump(&self.bytes_of_left_sessions[1], bytes_out);
    }

    /// Counts one routed publication (a session's, unless `by_session` is false: the router's
    /// own meta events) and the `delivered` EVENTs it queued.
    #[inline]
    pub fn published(&self, by_session: bool, delivered: u64) {
        if by_session {
            bump(&self.events_published, 1);
        }
        if delivered > 0 {
            bump(&self.events_delivered, delivered);
        }
    }

    /// Counts a message dropped for `why`.
    pub fn dropped(&self, why: Dropped) {
        bump(&self.dropped[why as usize], 1);
    }

    /// Counts a call that ended with `outcome`; `started` is when its CALL came in, unless its
    /// caller already had an answer (a progressive result, see [`Self::call_answered`]) or none
    /// is coming.
    #[inline]
    pub fn call_ended(&self, outcome: CallOutcome, started: Option<Instant>) {
        bump(&self.calls[outcome as usize], 1);
        if let Some(started) = started {
            self.call_answered(started);
        }
    }

    /// Counts how long the call whose CALL came in at `started` waited for its caller's first
    /// answer (RESULT or ERROR, progressive results included).
    #[inline]
    pub fn call_answered(&self, started: Instant) {
        self.call_durations.observe(started.elapsed());
    }

    /// Counts an action the session's role was denied.
    pub fn denied(&self, action: Action) {
        bump(&self.denied[action as usize], 1);
    }

    /// Counts a session that joined with `authmethod` over `serializer`.
    pub fn session_opened(&self, authmethod: &str, serializer: Serializer) {
        *lock(&self.opened)
            .entry((authmethod.to_owned(), serializer.name()))
            .or_default() += 1;
    }

    /// Counts an authentication for the realm with `method`: `accepted`, or its credentials (or
    /// identity) were refused. (A HELLO refused for the router's own reasons, or for offering no
    /// method that applies, authenticated nothing and is not counted.)
    pub fn authenticated(&self, method: &str, accepted: bool) {
        bump(
            &self.auth[auth_method_index(method)][usize::from(!accepted)],
            1,
        );
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            messages_in: self.messages_in.each_ref().map(load),
            events_published: load(&self.events_published),
            events_delivered: load(&self.events_delivered),
            dropped: [
                (
                    "slow_consumer",
                    load(&self.dropped[Dropped::SlowConsumer as usize]),
                ),
                ("link", load(&self.dropped[Dropped::Link as usize])),
            ],
            calls: self.calls.each_ref().map(load),
            denied: self.denied.each_ref().map(load),
            opened: lock(&self.opened)
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            auth: self.auth.each_ref().map(|by| by.each_ref().map(load)),
            call_durations: self.call_durations.snapshot(),
            session_durations: self.session_durations.snapshot(),
            uris: {
                let mut uris: Vec<(String, [u64; 2])> = self
                    .uris
                    .get()
                    .map(|u| {
                        u.counters
                            .iter()
                            .map(|(uri, c)| (uri.clone(), c.each_ref().map(load)))
                            .collect()
                    })
                    .unwrap_or_default();
                uris.sort();
                uris
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_lands_in_the_first_bucket_whose_bound_it_does_not_exceed() {
        let stats = RealmStats::default();
        let micros = Duration::from_micros;
        for d in [
            micros(40),
            micros(100),
            micros(101),
            micros(300),
            micros(2_000),
        ] {
            stats.call_durations.observe(d);
        }
        stats.call_durations.observe(Duration::from_secs(11));
        let snapshot = stats.snapshot().call_durations;
        // <= 100 µs, <= 250 µs, <= 500 µs, <= 2.5 ms, and above 10 s.
        assert_eq!(snapshot.buckets[0], 2);
        assert_eq!(snapshot.buckets[1], 1);
        assert_eq!(snapshot.buckets[2], 1);
        assert_eq!(snapshot.buckets[4], 1);
        assert_eq!(snapshot.buckets[CallBuckets::SECONDS.len()], 1);
        assert_eq!(snapshot.buckets.len(), CallBuckets::SECONDS.len() + 1);
        assert_eq!(snapshot.count(), 6);
        assert!(
            (snapshot.sum_seconds - 11.002_541).abs() < 1e-9,
            "{snapshot:?}"
        );
    }

    #[test]
    fn listed_uris_count_their_calls_and_publications_and_others_nothing() {
        let stats = RealmStats::default();
        let call = |procedure: &str| Message::Call {
            request: 1,
            options: switchboard_proto::Dict::new(),
            procedure: procedure.into(),
            payload: Default::default(),
        };
        stats.message_in(&call("com.example.add2"));
        stats.count_uris(&["com.example.add2".into(), "com.example.tick".into()]);
        stats.message_in(&call("com.example.add2"));
        stats.message_in(&call("com.example.other"));
        let snapshot = stats.snapshot();
        assert_eq!(
            snapshot.uris,
            [
                ("com.example.add2".to_owned(), [1, 0]),
                ("com.example.tick".to_owned(), [0, 0])
            ]
        );
    }

    #[test]
    fn only_a_first_answer_is_timed() {
        let stats = RealmStats::default();
        stats.call_ended(CallOutcome::Ok, Some(Instant::now()));
        stats.call_ended(CallOutcome::Ok, None);
        stats.call_answered(Instant::now());
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.calls[CallOutcome::Ok as usize], 2);
        assert_eq!(snapshot.call_durations.count(), 2);
    }

    #[test]
    fn authentications_count_by_known_method_and_others_together() {
        let stats = RealmStats::default();
        stats.authenticated("ticket", true);
        stats.authenticated("ticket", false);
        stats.authenticated("ticket", false);
        stats.authenticated("made-up", false);
        let snapshot = stats.snapshot();
        let ticket = auth_method_index("ticket");
        assert_eq!(auth_method_label(ticket), "ticket");
        assert_eq!(snapshot.auth[ticket], [1, 2]);
        assert_eq!(snapshot.auth[AUTH_METHODS.len()], [0, 1]);
        assert_eq!(auth_method_label(AUTH_METHODS.len()), OTHER_AUTH_METHOD);
        assert_eq!(snapshot.auth_failures(), 3);
    }
}
