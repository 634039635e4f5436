//! The options of calls, publications, subscriptions and registrations, and how each maps to the
//! wire dictionary the spec names (CALL.Options, PUBLISH.Options, SUBSCRIBE.Options,
//! REGISTER.Options).
//!
//! Only options that differ from the spec's defaults are sent. `extra` carries anything else as
//! given (payload passthru keys, options of newer spec versions); the named fields win over it.

use std::time::Duration;

pub use switchboard_proto::UriMatch;
pub use switchboard_proto::options::{CancelMode, InvokePolicy};
use switchboard_proto::{Dict, Id, Value};

/// How many events a [`Subscription`](crate::Subscription) buffers by default (see
/// [`SubscribeOptions::capacity`]).
pub const DEFAULT_SUBSCRIPTION_CAPACITY: usize = 1024;

/// How many progressive results a [`CallHandle`](crate::CallHandle) buffers by default (see
/// [`CallOptions::progress_capacity`]).
pub const DEFAULT_PROGRESS_CAPACITY: usize = 1024;

/// Options of a call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallOptions {
    /// `timeout`: the dealer cancels the call (`wamp.error.timeout`) when it has not ended in
    /// this time (spec, "Call Timeouts"). Sent in whole milliseconds, rounded up; `None` (or
    /// zero) for no timeout.
    pub timeout: Option<Duration>,
    /// `receive_progress`: ask for progressive results (spec, "Progressive Call Results"). Set
    /// by [`Session::call_streaming`](crate::Session::call_streaming); with the other call
    /// methods progressive results are discarded.
    pub receive_progress: bool,
    /// `disclose_me`: ask the dealer to tell the callee who calls (spec, "Caller
    /// Identification").
    pub disclose_me: bool,
    /// Further CALL.Options, sent as given.
    pub extra: Dict,
    /// How many progressive results a [`CallHandle`](crate::CallHandle) buffers when they are
    /// not read (local, not sent). The buffer drops the oldest when full, as subscriptions do.
    pub progress_capacity: usize,
}

impl Default for CallOptions {
    fn default() -> Self {
        Self {
            timeout: None,
            receive_progress: false,
            disclose_me: false,
            extra: Dict::new(),
            progress_capacity: DEFAULT_PROGRESS_CAPACITY,
        }
    }
}

impl CallOptions {
    /// The same options with a timeout.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        Self {
            timeout: Some(timeout),
            ..self
        }
    }

    pub(crate) fn to_dict(&self) -> Dict {
        let mut d = self.extra.clone();
        if let Some(t) = self.timeout {
            let ms = t.as_nanos().div_ceil(1_000_000);
            let ms = u64::try_from(ms).unwrap_or(u64::MAX);
            if ms > 0 {
                d.insert("timeout".into(), ms.into());
            }
        }
        flag(&mut d, "receive_progress", self.receive_progress);
        flag(&mut d, "disclose_me", self.disclose_me);
        d
    }
}

/// Options of a publication (spec, "Publishing and Events", "Subscriber Black- and
/// Whitelisting", "Publisher Exclusion", "Publisher Identification", "Event Retention").
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublishOptions {
    /// `acknowledge`: wait for PUBLISHED (or ERROR) and return the publication id.
    pub acknowledge: bool,
    /// `exclude_me`: `Some(false)` to receive one's own event; `None` leaves the broker's
    /// default (the publisher is excluded).
    pub exclude_me: Option<bool>,
    /// `exclude`: sessions that must not receive the event.
    pub exclude: Vec<Id>,
    /// `exclude_authid`: authids that must not receive the event.
    pub exclude_authid: Vec<String>,
    /// `exclude_authrole`: authroles that must not receive the event.
    pub exclude_authrole: Vec<String>,
    /// `eligible`: when present, only these sessions may receive the event (an empty list
    /// means nobody).
    pub eligible: Option<Vec<Id>>,
    /// `eligible_authid`: when present, only sessions with these authids may receive it.
    pub eligible_authid: Option<Vec<String>>,
    /// `eligible_authrole`: when present, only sessions with these authroles may receive it.
    pub eligible_authrole: Option<Vec<String>>,
    /// `retain`: the broker keeps the event for later subscribers that ask for it.
    pub retain: bool,
    /// `disclose_me`: ask the broker to tell subscribers who published.
    pub disclose_me: bool,
    /// Further PUBLISH.Options, sent as given.
    pub extra: Dict,
}

impl PublishOptions {
    /// Options asking for PUBLISHED.
    pub fn acknowledged() -> Self {
        Self {
            acknowledge: true,
            ..Self::default()
        }
    }

    pub(crate) fn to_dict(&self) -> Dict {
        let mut d = self.extra.clone();
        flag(&mut d, "acknowledge", self.acknowledge);
        if let Some(exclude_me) = self.exclude_me {
            d.insert("exclude_me".into(), exclude_me.into());
        }
        let ids = |l: &[Id]| Value::List(l.iter().map(|&i| Value::UInt(i)).collect());
        let strs = |l: &[String]| Value::List(l.iter().map(|s| s.as_str().into()).collect());
        if !self.exclude.is_empty() {
            d.insert("exclude".into(), ids(&self.exclude));
        }
        if !self.exclude_authid.is_empty() {
            d.insert("exclude_authid".into(), strs(&self.exclude_authid));
        }
        if !self.exclude_authrole.is_empty() {
            d.insert("exclude_authrole".into(), strs(&self.exclude_authrole));
        }
        if let Some(l) = &self.eligible {
            d.insert("eligible".into(), ids(l));
        }
        if let Some(l) = &self.eligible_authid {
            d.insert("eligible_authid".into(), strs(l));
        }
        if let Some(l) = &self.eligible_authrole {
            d.insert("eligible_authrole".into(), strs(l));
        }
        flag(&mut d, "retain", self.retain);
        flag(&mut d, "disclose_me", self.disclose_me);
        d
    }
}

/// Options of a subscription.
///
/// # When the consumer lags
///
/// A [`Subscription`](crate::Subscription) buffers at most `capacity` events. When an event
/// arrives and the buffer is full, the **oldest** buffered event is dropped, and the stream
/// yields `Err(Lagged(n))` — `n` events were missed — before the next event it delivers. The
/// session never waits for a slow subscription and the buffer never grows past `capacity`.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscribeOptions {
    /// `match`: exact, prefix or wildcard.
    pub match_policy: UriMatch,
    /// `get_retained`: ask for the topic's retained event (spec, "Event Retention").
    pub get_retained: bool,
    /// How many events are buffered for a consumer that does not keep up (local, not sent; at
    /// least 1). [`DEFAULT_SUBSCRIPTION_CAPACITY`] by default.
    pub capacity: usize,
    /// Further SUBSCRIBE.Options, sent as given.
    pub extra: Dict,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        Self {
            match_policy: UriMatch::Exact,
            get_retained: false,
            capacity: DEFAULT_SUBSCRIPTION_CAPACITY,
            extra: Dict::new(),
        }
    }
}

impl SubscribeOptions {
    /// Default options with another match policy.
    pub fn matching(match_policy: UriMatch) -> Self {
        Self {
            match_policy,
            ..Self::default()
        }
    }

    pub(crate) fn to_dict(&self) -> Dict {
        let mut d = self.extra.clone();
        if self.match_policy != UriMatch::Exact {
            d.insert("match".into(), self.match_policy.as_str().into());
        }
        flag(&mut d, "get_retained", self.get_retained);
        d
    }
}

/// Options of a registration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegisterOptions {
    /// `match`: exact, prefix or wildcard.
    pub match_policy: UriMatch,
    /// `invoke`: how calls are shared between the callees of one procedure.
    pub invoke: InvokePolicy,
    /// `disclose_caller`: ask the dealer to tell this callee who calls (spec, "Caller
    /// Identification").
    pub disclose_caller: bool,
    /// Further REGISTER.Options, sent as given.
    pub extra: Dict,
}

impl RegisterOptions {
    /// Default options with another match policy.
    pub fn matching(match_policy: UriMatch) -> Self {
        Self {
            match_policy,
            ..Self::default()
        }
    }

    /// Default options with another invocation policy.
    pub fn invoking(invoke: InvokePolicy) -> Self {
        Self {
            invoke,
            ..Self::default()
        }
    }

    pub(crate) fn to_dict(&self) -> Dict {
        let mut d = self.extra.clone();
        if self.match_policy != UriMatch::Exact {
            d.insert("match".into(), self.match_policy.as_str().into());
        }
        if self.invoke != InvokePolicy::Single {
            d.insert("invoke".into(), self.invoke.as_str().into());
        }
        flag(&mut d, "disclose_caller", self.disclose_caller);
        d
    }
}

/// Sets a boolean option that is `false` by default in the spec only when it is `true`.
fn flag(d: &mut Dict, name: &str, on: bool) {
    if on {
        d.insert(name.into(), true.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(d: &Dict) -> Vec<&str> {
        d.keys().map(String::as_str).collect()
    }

    #[test]
    fn default_options_send_nothing() {
        assert!(CallOptions::default().to_dict().is_empty());
        assert!(PublishOptions::default().to_dict().is_empty());
        assert!(SubscribeOptions::default().to_dict().is_empty());
        assert!(RegisterOptions::default().to_dict().is_empty());
    }

    #[test]
    fn call_timeouts_are_whole_milliseconds_rounded_up() {
        let ms = |t| {
            CallOptions::default()
                .with_timeout(t)
                .to_dict()
                .get("timeout")
                .and_then(Value::as_u64)
        };
        assert_eq!(ms(Duration::from_millis(1500)), Some(1500));
        assert_eq!(ms(Duration::from_micros(1)), Some(1));
        assert_eq!(ms(Duration::ZERO), None);
    }

    #[test]
    fn publish_options_use_the_spec_names_and_types() {
        let o = PublishOptions {
            acknowledge: true,
            exclude_me: Some(false),
            exclude: vec![1],
            exclude_authid: vec!["a".into()],
            exclude_authrole: vec!["r".into()],
            eligible: Some(Vec::new()),
            eligible_authid: Some(vec!["b".into()]),
            eligible_authrole: Some(vec!["s".into()]),
            retain: true,
            disclose_me: true,
            extra: Dict::new(),
        }
        .to_dict();
        assert_eq!(
            keys(&o),
            [
                "acknowledge",
                "exclude_me",
                "exclude",
                "exclude_authid",
                "exclude_authrole",
                "eligible",
                "eligible_authid",
                "eligible_authrole",
                "retain",
                "disclose_me"
            ]
        );
        assert_eq!(o["exclude_me"], Value::Bool(false));
        assert_eq!(o["eligible"], Value::List(Vec::new()));
        assert_eq!(o["exclude"], Value::List(vec![Value::UInt(1)]));
        assert!(switchboard_proto::options::check_publish(&o).is_ok());
    }

    #[test]
    fn subscribe_and_register_options_name_their_policies() {
        let s = SubscribeOptions {
            get_retained: true,
            ..SubscribeOptions::matching(UriMatch::Wildcard)
        }
        .to_dict();
        assert_eq!(s["match"], Value::from("wildcard"));
        assert_eq!(s["get_retained"], Value::Bool(true));
        assert!(switchboard_proto::options::check_subscribe(&s).is_ok());
        let r = RegisterOptions {
            invoke: InvokePolicy::RoundRobin,
            disclose_caller: true,
            ..RegisterOptions::matching(UriMatch::Prefix)
        }
        .to_dict();
        assert_eq!(keys(&r), ["match", "invoke", "disclose_caller"]);
        assert_eq!(r["invoke"], Value::from("roundrobin"));
        assert!(switchboard_proto::options::check_register(&r).is_ok());
    }
}
