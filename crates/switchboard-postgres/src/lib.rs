//! The PostgreSQL bridge: SQL functions as WAMP procedures, WAMP events published from SQL. Each
//! configured `postgresql` component is one WAMP session of the router (joined in-process with the
//! component's realm and role), so the router's permissions bound what the database may register
//! and publish.

pub mod config;

/// The NOTIFY channel `wamp.publish` uses unless configured otherwise.
pub const DEFAULT_PUBLISH_CHANNEL: &str = "wamp_publish";
