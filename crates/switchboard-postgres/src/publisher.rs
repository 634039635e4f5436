//! Events published from SQL (`wamp.publish(topic, args, kwargs, options)`), notify tier: the
//! bridge's listener connection hears each event as a NOTIFY on the publish channel when its
//! transaction commits, fetches it from `wamp.event_buffer` where it was too large for NOTIFY,
//! and publishes it through the bridge's session, so the bridge's role decides what it may
//! publish.

use serde_json::{Map, Value as Json};
use switchboard_client::{Args, PublishOptions, Session};
use switchboard_proto::{Dict, Value};

use crate::config::PublisherConfig;

/// An event as `wamp.publish` sends it (payload v1).
#[derive(Debug, PartialEq)]
pub struct Event {
    /// Its number (`wamp.publish_seq`).
    pub seq: i64,
    /// The topic.
    pub topic: String,
    /// Positional arguments.
    pub args: Vec<Json>,
    /// Keyword arguments.
    pub kwargs: Map<String, Json>,
    /// PUBLISH options.
    pub options: Map<String, Json>,
}

/// What a notification on the publish channel carries.
#[derive(Debug, PartialEq)]
pub enum Notified {
    /// The event itself.
    Event(Event),
    /// The number of an event waiting in `wamp.event_buffer`.
    Spilled(i64),
}

/// Reads a notification's payload.
pub fn parse(payload: &str) -> Result<Notified, String> {
    let json: Json = serde_json::from_str(payload).map_err(|e| format!("not JSON: {e}"))?;
    let Json::Object(mut o) = json else {
        return Err("not a JSON object".into());
    };
    if o.get("v").and_then(Json::as_i64) != Some(1) {
        return Err("not a version 1 event".into());
    }
    let seq = o.get("seq").and_then(Json::as_i64).ok_or("no `seq`")?;
    if let Some(r) = o.get("ref").and_then(Json::as_i64) {
        return Ok(Notified::Spilled(r));
    }
    let topic = match o.remove("topic") {
        Some(Json::String(t)) => t,
        _ => return Err("no `topic`".into()),
    };
    let args = match o.remove("args") {
        Some(Json::Array(a)) => a,
        None | Some(Json::Null) => Vec::new(),
        _ => return Err("`args` is no array".into()),
    };
    let kwargs = match o.remove("kwargs") {
        Some(Json::Object(k)) => k,
        None | Some(Json::Null) => Map::new(),
        _ => return Err("`kwargs` is no object".into()),
    };
    let options = match o.remove("options") {
        Some(Json::Object(k)) => k,
        None | Some(Json::Null) => Map::new(),
        _ => return Err("`options` is no object".into()),
    };
    Ok(Notified::Event(Event {
        seq,
        topic,
        args,
        kwargs,
        options,
    }))
}

fn to_value(json: Json) -> Value {
    serde_json::from_value(json).unwrap_or(Value::Null)
}

/// The PUBLISH options an event may carry (the others are ignored, with a log line).
fn publish_options(options: &Map<String, Json>) -> PublishOptions {
    let ids = |key: &str| {
        options
            .get(key)
            .and_then(Json::as_array)
            .map(|a| a.iter().filter_map(Json::as_u64).collect::<Vec<u64>>())
    };
    let names = |key: &str| {
        options.get(key).and_then(Json::as_array).map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect::<Vec<String>>()
        })
    };
    for key in options.keys() {
        if !matches!(
            key.as_str(),
            "exclude"
                | "exclude_authid"
                | "exclude_authrole"
                | "eligible"
                | "eligible_authid"
                | "eligible_authrole"
                | "retain"
        ) {
            tracing::warn!(option = %key, "wamp.publish: option not passed on");
        }
    }
    PublishOptions {
        acknowledge: true,
        exclude: ids("exclude").unwrap_or_default(),
        exclude_authid: names("exclude_authid").unwrap_or_default(),
        exclude_authrole: names("exclude_authrole").unwrap_or_default(),
        eligible: ids("eligible"),
        eligible_authid: names("eligible_authid"),
        eligible_authrole: names("eligible_authrole"),
        retain: options
            .get("retain")
            .and_then(Json::as_bool)
            .unwrap_or(false),
        ..PublishOptions::default()
    }
}

/// Publishes `event` through `session`, within the configured topic fence.
pub async fn publish(session: &Session, config: &PublisherConfig, event: Event) {
    if let Some(prefixes) = &config.topic_prefixes
        && !prefixes.iter().any(|p| event.topic.starts_with(p.as_str()))
    {
        tracing::warn!(topic = %event.topic, seq = event.seq, "wamp.publish: topic outside `topic_prefixes`, not published");
        return;
    }
    let options = publish_options(&event.options);
    let args = Args::new(
        event.args.into_iter().map(to_value).collect(),
        event
            .kwargs
            .into_iter()
            .map(|(k, v)| (k, to_value(v)))
            .collect::<Dict>(),
    );
    if let Err(e) = session.publish(&event.topic, args, options).await {
        tracing::warn!(topic = %event.topic, seq = event.seq, "wamp.publish: not published: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_events_or_references_to_spilled_ones() {
        let event = parse(r#"{"v":1,"seq":7,"topic":"com.example.t","args":[1],"kwargs":{"a":2},"options":{},"by":"app","authid":null}"#)
            .expect("an event");
        let Notified::Event(e) = event else {
            panic!("not an event")
        };
        assert_eq!(
            (e.seq, e.topic.as_str(), e.args.len()),
            (7, "com.example.t", 1)
        );
        assert_eq!(
            parse(r#"{"v":1,"seq":8,"ref":8}"#),
            Ok(Notified::Spilled(8))
        );
        for bad in [
            "",
            "[]",
            r#"{"v":2,"seq":1,"topic":"t"}"#,
            r#"{"v":1,"seq":1}"#,
            r#"{"v":1,"seq":1,"topic":"t","args":{}}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn event_options_become_publish_options() {
        let options: Map<String, Json> =
            serde_json::from_str(r#"{"eligible_authid":["joe"],"exclude":[5],"retain":true}"#)
                .expect("json");
        let o = publish_options(&options);
        assert_eq!(o.eligible_authid, Some(vec!["joe".to_owned()]));
        assert_eq!(o.exclude, vec![5]);
        assert!(o.retain && o.acknowledge);
    }
}
