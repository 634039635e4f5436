//! WAMP events into the database: each configured subscription of the bridge's session feeds a
//! handler function (one transaction per event, with the publisher's identity in the `wamp.*`
//! settings where it was disclosed) or a table (batched inserts). Events wait in the
//! subscription's bounded queue; when the database does not keep up the oldest are dropped,
//! counted and logged, and the broker never waits for the database.

use std::time::{Duration, Instant};

use serde_json::{Map, Value as Json};
use switchboard_client::{Event, Session, SubscribeOptions, Subscription};
use switchboard_proto::{UriMatch, Value};

use crate::catalog::quote_ident;
use crate::config::{SinkConfig, SubscriberConfig};

/// How often drops and failures are reported in the log.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// `schema.name` (or `name`), quoted.
pub(crate) fn quote_qualified(name: &str) -> String {
    name.split('.')
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(".")
}

fn to_json(value: &Value) -> Json {
    serde_json::to_value(value).unwrap_or(Json::Null)
}

/// One event as the database gets it: topic, args, kwargs, details.
fn row(event: &Event) -> (String, Json, Json, Json) {
    let args = Json::Array(event.args.args.iter().map(to_json).collect());
    let kwargs = Json::Object(
        event
            .args
            .kwargs
            .iter()
            .map(|(k, v)| (k.clone(), to_json(v)))
            .collect::<Map<String, Json>>(),
    );
    let mut details: Map<String, Json> = event
        .details
        .iter()
        .map(|(k, v)| (k.clone(), to_json(v)))
        .collect();
    details.insert("publication".into(), Json::from(event.publication));
    (event.topic.clone(), args, kwargs, Json::Object(details))
}

/// Subscribes each configured sink and feeds it until the session ends.
pub async fn start(
    id: &str,
    session: &Session,
    pool: deadpool_postgres::Pool,
    config: &SubscriberConfig,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for sink in &config.subscriptions {
        let options = SubscribeOptions {
            match_policy: match sink.match_policy.as_deref() {
                Some("prefix") => UriMatch::Prefix,
                Some("wildcard") => UriMatch::Wildcard,
                _ => UriMatch::Exact,
            },
            capacity: config.queue.unwrap_or(10_000).max(1),
            ..SubscribeOptions::default()
        };
        let subscription = match session.subscribe(&sink.topic, options).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(bridge = %id, topic = %sink.topic, "cannot subscribe: {e}");
                continue;
            }
        };
        tracing::info!(bridge = %id, topic = %sink.topic, "events into the database");
        let feed = Feed {
            id: id.to_owned(),
            sink: sink.clone(),
            pool: pool.clone(),
            max_rows: config.batch.max_rows.unwrap_or(500).max(1),
            max_delay: Duration::from_millis(config.batch.max_delay_ms.unwrap_or(50)),
            dropped: 0,
            failed: 0,
            reported: Instant::now(),
        };
        tasks.push(tokio::spawn(feed.run(subscription)));
    }
    tasks
}

/// One subscription's way into the database.
struct Feed {
    id: String,
    sink: SinkConfig,
    pool: deadpool_postgres::Pool,
    max_rows: usize,
    max_delay: Duration,
    dropped: u64,
    failed: u64,
    reported: Instant,
}

impl Feed {
    async fn run(mut self, mut subscription: Subscription) {
        let mut batch: Vec<Event> = Vec::new();
        loop {
            // Wait for the first event of a batch, then for more until the batch is full or
            // its first event waited `max_delay`.
            let next = if batch.is_empty() {
                subscription.next().await
            } else {
                let deadline = tokio::time::sleep(self.max_delay);
                tokio::select! {
                    next = subscription.next() => next,
                    () = deadline => {
                        self.flush(&mut batch).await;
                        continue;
                    }
                }
            };
            match next {
                None => {
                    self.flush(&mut batch).await;
                    return;
                }
                Some(Err(lagged)) => self.dropped += lagged.0,
                Some(Ok(event)) => {
                    if self.sink.function.is_some() {
                        self.call(&event).await;
                    } else {
                        batch.push(event);
                        if batch.len() >= self.max_rows {
                            self.flush(&mut batch).await;
                        }
                    }
                }
            }
            self.report();
        }
    }

    /// Counts events the database refused; the first since the last report is logged at once.
    fn failed(&mut self, count: u64, why: &str) {
        if self.failed == 0 {
            tracing::warn!(bridge = %self.id, topic = %self.sink.topic, "events not written to the database: {why}");
        }
        self.failed += count;
    }

    fn report(&mut self) {
        if (self.dropped > 0 || self.failed > 0) && self.reported.elapsed() >= REPORT_EVERY {
            tracing::warn!(
                bridge = %self.id,
                topic = %self.sink.topic,
                dropped = self.dropped,
                failed = self.failed,
                "events that did not reach the database (dropped: the database did not keep up; \
                 failed: it refused them)"
            );
            self.dropped = 0;
            self.failed = 0;
            self.reported = Instant::now();
        }
    }

    /// The handler function, in a transaction of its own with the publisher's identity.
    async fn call(&mut self, event: &Event) {
        let Some(function) = &self.sink.function else {
            return;
        };
        let (topic, args, kwargs, details) = row(event);
        let str_of = |key: &str| {
            details
                .get(key)
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .unwrap_or_default()
        };
        let (authid, authrole, session) = (
            str_of("publisher_authid"),
            str_of("publisher_authrole"),
            str_of("publisher"),
        );
        let sql = format!(
            "SELECT {}($1::text, $2::jsonb, $3::jsonb, $4::jsonb)",
            quote_qualified(function)
        );
        let outcome = async {
            let mut client = self.pool.get().await.map_err(|e| e.to_string())?;
            let tx = client
                .transaction()
                .await
                .map_err(|e| crate::describe(&e))?;
            tx.execute(
                "SELECT set_config('wamp.authid', $1, true), set_config('wamp.authrole', $2, true), \
                 set_config('wamp.session', $3, true)",
                &[&authid, &authrole, &session],
            )
            .await
            .map_err(|e| crate::describe(&e))?;
            tx.execute(&sql, &[&topic, &args, &kwargs, &details])
                .await
                .map_err(|e| crate::describe(&e))?;
            tx.commit().await.map_err(|e| crate::describe(&e))?;
            // What the handler set for its whole session does not reach the next use.
            client
                .batch_execute(crate::call::RESET_SESSION)
                .await
                .map_err(|e| crate::describe(&e))
        };
        if let Err(why) = outcome.await {
            self.failed(1, &why);
        }
    }

    /// Inserts the batch in one statement.
    async fn flush(&mut self, batch: &mut Vec<Event>) {
        if batch.is_empty() {
            return;
        }
        let Some(table) = &self.sink.insert else {
            batch.clear();
            return;
        };
        let rows: Vec<Json> = batch
            .iter()
            .map(|e| {
                let (topic, args, kwargs, details) = row(e);
                serde_json::json!({"topic": topic, "args": args, "kwargs": kwargs, "details": details})
            })
            .collect();
        let count = rows.len() as u64;
        batch.clear();
        let sql = format!(
            "INSERT INTO {} (topic, args, kwargs, details) \
             SELECT topic, args, kwargs, details FROM jsonb_to_recordset($1::jsonb) \
             AS x(topic text, args jsonb, kwargs jsonb, details jsonb)",
            quote_qualified(table)
        );
        let rows = Json::Array(rows);
        let outcome = async {
            let client = self.pool.get().await.map_err(|e| e.to_string())?;
            client
                .execute(&sql, &[&rows])
                .await
                .map_err(|e| crate::describe(&e))
        };
        if let Err(why) = outcome.await {
            self.failed(count, &why);
        }
    }
}
