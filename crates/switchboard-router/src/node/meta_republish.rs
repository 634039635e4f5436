//! Every realm's meta events, republished on the management realm as
//! `switchboard.realm.<realm>.meta.<event>`, so that one management session sees the whole node:
//! a hidden in-process session of the node per realm subscribes to `wamp.` (prefix) there and
//! publishes what it gets through the management API's session.

use switchboard_client::{PublishOptions, Session, SubscribeOptions};

use std::sync::Arc;

use crate::realm::{CONTROL_REALM, Realm, RealmRegistry};

/// The meta events of realm `realm` are republished as `switchboard.realm.<realm>.meta.<event>`
/// (`<event>` the meta topic after `wamp.`: `session.on_join`, `registration.on_create`, ...).
pub fn republished_meta_topic(realm: &str, meta_topic: &str) -> String {
    format!(
        "switchboard.realm.{realm}.meta.{}",
        meta_topic.strip_prefix("wamp.").unwrap_or(meta_topic)
    )
}

/// Republishes every meta event of every served realm on the management session's realm, so
/// that one management session sees the whole node. Each realm is watched by a hidden
/// in-process session of the node that subscribes to `wamp.` (prefix) like any subscriber;
/// returns those sessions, which must live as long as the API.
pub(super) async fn republish_meta_events(
    management: &Session,
    realms: &RealmRegistry,
    in_process: &crate::embed::InProcess,
) -> Result<std::collections::HashMap<String, Session>, (String, switchboard_client::Error)> {
    let mut watchers = std::collections::HashMap::new();
    for realm in served(realms) {
        let name = realm.name().to_owned();
        let watcher = republish_realm(management, &name, in_process)
            .await
            .map_err(|e| (name.clone(), e))?;
        watchers.insert(name, watcher);
    }
    Ok(watchers)
}

/// Republishes the meta events of realm `name` through `management` (see
/// [`republish_meta_events`]), for as long as the returned watcher session lasts.
pub(super) async fn republish_realm(
    management: &Session,
    name: &str,
    in_process: &crate::embed::InProcess,
) -> Result<Session, switchboard_client::Error> {
    let identity =
        crate::embed::TrustedIdentity::new(name, "management", crate::realm::authz::TRUSTED_ROLE)
            .hidden();
    let watcher = in_process.join(identity).await?;
    let options = SubscribeOptions {
        match_policy: switchboard_proto::UriMatch::Prefix,
        ..SubscribeOptions::default()
    };
    let mut events = watcher.subscribe("wamp.", options).await?;
    let management = management.clone();
    let name = name.to_owned();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            // A lagging watcher skips what it missed: meta events are at most once anyway.
            let Ok(event) = event else { continue };
            let topic = republished_meta_topic(&name, &event.topic);
            if management
                .publish(&topic, event.args, PublishOptions::default())
                .await
                .is_err()
            {
                return;
            }
        }
    });
    Ok(watcher)
}

/// The realms the API shows: the configured ones, not the control socket's.
pub(super) fn served(realms: &RealmRegistry) -> Vec<Arc<Realm>> {
    let mut all: Vec<_> = realms
        .all()
        .into_iter()
        .filter(|r| r.name() != CONTROL_REALM)
        .collect();
    all.sort_by(|a, b| a.name().cmp(b.name()));
    all
}
