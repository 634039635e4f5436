//! The PostgreSQL bridge: SQL functions as WAMP procedures, WAMP events published from SQL. Each
//! configured `postgresql` component is one WAMP session of the router (joined in-process with the
//! component's realm and role), so the router's permissions bound what the database may register
//! and publish.

pub mod config;

/// The NOTIFY channel `wamp.publish` uses unless configured otherwise.
pub const DEFAULT_PUBLISH_CHANNEL: &str = "wamp_publish";

/// The NOTIFY channel of Crossbar's `crossbar.publish` (its 2016 PostgreSQL publisher).
pub const CROSSBAR_PUBLISH_CHANNEL: &str = "crossbar_publish";

mod bridge;
mod call;
mod catalog;
mod durable;
mod publisher;
mod subscriber;
pub mod tls;

pub use bridge::{Bridge, CROSSBAR_SCHEMA, HELPER_SCHEMA, LISTENER_RECONNECT_TOPIC, pg_config};

/// A database error as a log line: the server's message and SQLSTATE where it sent one (the
/// error's own text says only "db error"), else the error with its causes ("error performing
/// TLS handshake: invalid peer certificate: UnknownIssuer").
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => {
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                text.push_str(": ");
                text.push_str(&c.to_string());
                cause = c.source();
            }
            text
        }
    }
}
