//! The durable publish tier: `wamp.publish` writes each event as a transactional logical
//! decoding message into the WAL, and the publishing bridge streams them from its replication
//! slot (pgoutput, a publication without tables), publishes them, and confirms a transaction's
//! end to the server only once the router has accepted all its events. The slot keeps what is
//! not confirmed, so events survive the bridge, its node and the database restarting, with
//! neither a table nor NOTIFY's size limit (at-least-once: a transaction whose events were
//! published just before the bridge died is streamed again).

use pgwire_replication::{Lsn, ReplicationClient, ReplicationConfig, ReplicationEvent};
use switchboard_client::Session;

use crate::config::{PostgresConnectionConfig, PublisherConfig};
use crate::publisher::{self, Notified};

/// Why the stream stopped.
#[derive(Debug)]
pub enum StreamEnd {
    /// The replication connection failed or the server ended it: connect again later.
    Lost(String),
    /// The session ended: the bridge stops.
    SessionGone,
}

/// The prefix of the logical messages of `channel`.
pub fn message_prefix(channel: &str) -> String {
    format!("wamp:{channel}")
}

/// Makes sure the slot exists (created with pgoutput where it does not) and that the publication
/// does, on an ordinary connection of the bridge. Returns how far the slot lags behind the WAL,
/// in bytes, where the server says.
pub async fn prepare_slot(
    client: &tokio_postgres::Client,
    config: &PublisherConfig,
) -> Result<Option<i64>, String> {
    let slot = config.slot();
    let publication = config.publication();
    let published = client
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $1",
            &[&publication],
        )
        .await
        .map_err(|e| crate::describe(&e))?;
    if published.is_none() {
        return Err(format!(
            "the publication `{publication}` does not exist: create it (it lists no table) with \
             CREATE PUBLICATION {publication};"
        ));
    }
    let found = client
        .query_opt(
            "SELECT plugin, pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), \
             confirmed_flush_lsn)::bigint, database = pg_catalog.current_database() \
             FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(|e| crate::describe(&e))?;
    match found {
        Some(row) => {
            let plugin: Option<String> = row.get(0);
            if row.get::<_, Option<bool>>(2) != Some(true) {
                return Err(format!(
                    "the replication slot `{slot}` belongs to another database (slot names are \
                     the server's): give this bridge a `slot` of its own"
                ));
            }
            if plugin.as_deref() != Some("pgoutput") {
                return Err(format!(
                    "the replication slot `{slot}` is not a logical slot of pgoutput ({})",
                    plugin.as_deref().unwrap_or("physical")
                ));
            }
            Ok(row.get(1))
        }
        None => {
            client
                .execute(
                    "SELECT pg_catalog.pg_create_logical_replication_slot($1, 'pgoutput')",
                    &[&slot],
                )
                .await
                .map_err(|e| {
                    format!(
                        "cannot create the replication slot `{slot}` (the login role needs \
                         REPLICATION, and the server wal_level=logical): {}",
                        crate::describe(&e)
                    )
                })?;
            tracing::info!(%slot, "replication slot created");
            Ok(Some(0))
        }
    }
}

/// Streams the slot and publishes the channel's events until the connection is lost or the
/// session ends.
pub async fn stream(
    connection: &PostgresConnectionConfig,
    config: &PublisherConfig,
    session: &Session,
    application_name: &str,
) -> StreamEnd {
    let prefix = message_prefix(config.channel());
    let mut replication = ReplicationConfig::new(
        connection.host.as_deref().unwrap_or("127.0.0.1"),
        &connection.user,
        connection.password.as_deref().unwrap_or_default(),
        &connection.database,
        config.slot(),
        config.publication(),
    )
    .with_port(connection.port.unwrap_or(5432))
    // Without TLS: `check` refuses the durable tier on a connection whose mode requires it.
    .with_tls(pgwire_replication::TlsConfig::disabled())
    // From where the slot was confirmed: what the server still holds is what was not.
    .with_start_lsn(Lsn::ZERO);
    replication.application_name = Some(application_name.to_owned());
    // How soon the server hears what was published: a bridge that dies streams again at most
    // this much.
    replication.status_interval = std::time::Duration::from_secs(1);
    let mut client = match ReplicationClient::connect(replication).await {
        Ok(client) => client,
        Err(e) => return StreamEnd::Lost(format!("cannot start replication: {e}")),
    };
    tracing::info!(slot = %config.slot(), "streaming the durable tier's events");
    // Between a transaction's Begin and Commit, nothing may be confirmed.
    let mut in_transaction = false;
    let mut foreign_warned = false;
    loop {
        let event = match client.recv().await {
            Ok(Some(event)) => event,
            Ok(None) => return StreamEnd::Lost("the server ended the replication stream".into()),
            Err(e) => return StreamEnd::Lost(e.to_string()),
        };
        match event {
            ReplicationEvent::Message {
                transactional,
                lsn,
                prefix: message_prefix,
                content,
            } if message_prefix == prefix => {
                let text = String::from_utf8_lossy(&content);
                match publisher::parse(&text) {
                    Ok(Notified::Event(event)) => {
                        if publisher::publish(session, config, event).await.is_err() {
                            return StreamEnd::SessionGone;
                        }
                    }
                    Ok(Notified::Spilled(_)) | Err(_) => {
                        tracing::warn!(%lsn, "ignoring a logical message that is no event");
                    }
                }
                if !transactional {
                    client.update_applied_lsn(lsn);
                }
            }
            ReplicationEvent::Message {
                prefix: other, lsn, ..
            } if other.starts_with("wamp:") && !foreign_warned => {
                // Confirming past them loses them for the bridge of that channel.
                foreign_warned = true;
                tracing::error!(%lsn, slot = %config.slot(), "the slot carries events of another channel ({other}): they are not published; give each channel's bridge a slot of its own");
            }
            ReplicationEvent::Begin { .. } => in_transaction = true,
            // The transaction's events are all published (each publish waited for the router's
            // acknowledgement).
            ReplicationEvent::Commit { end_lsn, .. } => {
                in_transaction = false;
                client.update_applied_lsn(end_lsn);
            }
            // Outside a transaction the server has sent everything up to `wal_end`: confirming it
            // lets the slot release the WAL of transactions that carried no event, which
            // pgoutput does not send at all.
            ReplicationEvent::KeepAlive { wal_end, .. } if !in_transaction => {
                client.update_applied_lsn(wal_end);
            }
            _ => {}
        }
    }
}
