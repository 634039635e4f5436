//! Events published from SQL (`wamp.publish(topic, args, kwargs, options)`). Notify tier: the
//! bridge's listener connection hears each event as a NOTIFY on the publish channel when its
//! transaction commits, fetching it from `wamp.event_buffer` where it was too large for NOTIFY.
//! Outbox tier: the NOTIFY is only a doorbell, and the bridge reads the events from the outbox
//! table. Either way it publishes them through the bridge's session, so the bridge's role
//! decides what it may publish.

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

/// The bridge's session ended before the router accepted an event: it was not published.
#[derive(Debug)]
pub struct SessionGone;

/// Publishes `event` through `session`, within the configured topic fence. An event the router
/// refuses (the role may not publish the topic, say) is logged and counts as handled: publishing
/// it again would be refused again. Only a session that ended leaves it unpublished.
pub async fn publish(
    session: &Session,
    config: &PublisherConfig,
    event: Event,
) -> Result<(), SessionGone> {
    if let Some(prefixes) = &config.topic_prefixes
        && !prefixes.iter().any(|p| event.topic.starts_with(p.as_str()))
    {
        tracing::warn!(topic = %event.topic, seq = event.seq, "wamp.publish: topic outside `topic_prefixes`, not published");
        return Ok(());
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
    match session.publish(&event.topic, args, options).await {
        Ok(_) => Ok(()),
        Err(switchboard_client::Error::Wamp { uri, .. }) => {
            tracing::warn!(topic = %event.topic, seq = event.seq, "wamp.publish: refused by the router: {uri}");
            Ok(())
        }
        Err(e) => {
            tracing::warn!(topic = %event.topic, seq = event.seq, "wamp.publish: not published: {e}");
            Err(SessionGone)
        }
    }
}

/// Events read from an outbox at a time.
const OUTBOX_BATCH: i64 = 500;

/// Why draining the outbox stopped early.
#[derive(Debug)]
pub enum DrainError {
    /// The database connection failed: the rest waits for the next drain.
    Database(tokio_postgres::Error),
    /// The session ended: the events stay in the outbox for the next bridge.
    SessionGone,
}

/// The outbox tier: publishes every event waiting in the outbox for this channel, oldest first,
/// and deletes each batch once the router has accepted all of it. A bridge that dies in between
/// leaves the batch for the next one (at-least-once). Rows are deleted, not passed by a cursor:
/// a transaction that took a lower `seq` but committed later is still published.
pub async fn drain_outbox(
    client: &tokio_postgres::Client,
    session: &Session,
    config: &PublisherConfig,
) -> Result<u64, DrainError> {
    let table = config.outbox_table();
    let select = client
        .prepare(&format!(
            "SELECT seq, topic, args::text, kwargs::text, options::text FROM {table} \
             WHERE channel = $1 ORDER BY seq LIMIT {OUTBOX_BATCH}"
        ))
        .await
        .map_err(DrainError::Database)?;
    let delete = client
        .prepare(&format!(
            "DELETE FROM {table} WHERE channel = $1 AND seq = ANY($2)"
        ))
        .await
        .map_err(DrainError::Database)?;
    let channel = config.channel();
    let mut published = 0;
    loop {
        let rows = client
            .query(&select, &[&channel])
            .await
            .map_err(DrainError::Database)?;
        if rows.is_empty() {
            return Ok(published);
        }
        let mut seqs = Vec::with_capacity(rows.len());
        // Sent one after the other, answered together: the router keeps one session's order.
        let mut pending = Vec::with_capacity(rows.len());
        for row in &rows {
            let seq: i64 = match row.try_get(0) {
                Ok(seq) => seq,
                Err(e) => {
                    tracing::error!(
                        "{table}: `seq` is not a bigint ({e}): the outbox cannot be read"
                    );
                    return Ok(published);
                }
            };
            seqs.push(seq);
            match outbox_event(row) {
                Ok(event) => pending.push(publish(session, config, event)),
                Err(why) => {
                    tracing::warn!(seq, "wamp.outbox: skipping a malformed event: {why}");
                }
            }
        }
        for outcome in futures::future::join_all(pending).await {
            outcome.map_err(|SessionGone| DrainError::SessionGone)?;
        }
        client
            .execute(&delete, &[&channel, &seqs])
            .await
            .map_err(DrainError::Database)?;
        published += seqs.len() as u64;
    }
}

/// An outbox row as an event.
fn outbox_event(row: &tokio_postgres::Row) -> Result<Event, String> {
    let json = |i: usize, what: &str| -> Result<Option<Json>, String> {
        row.try_get::<_, Option<String>>(i)
            .map_err(|e| format!("`{what}`: {e}"))?
            .map(|text| serde_json::from_str(&text).map_err(|e| format!("`{what}`: {e}")))
            .transpose()
    };
    let args = match json(2, "args")? {
        Some(Json::Array(a)) => a,
        None | Some(Json::Null) => Vec::new(),
        _ => return Err("`args` is no array".into()),
    };
    let kwargs = match json(3, "kwargs")? {
        Some(Json::Object(k)) => k,
        None | Some(Json::Null) => Map::new(),
        _ => return Err("`kwargs` is no object".into()),
    };
    let options = match json(4, "options")? {
        Some(Json::Object(o)) => o,
        None | Some(Json::Null) => Map::new(),
        _ => return Err("`options` is no object".into()),
    };
    Ok(Event {
        seq: row.try_get(0).map_err(|e| format!("`seq`: {e}"))?,
        topic: row
            .try_get::<_, Option<String>>(1)
            .map_err(|e| format!("`topic`: {e}"))?
            .ok_or("no `topic`")?,
        args,
        kwargs,
        options,
    })
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
