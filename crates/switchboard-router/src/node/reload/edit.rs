//! Edits of the running config through the management API: adding and removing realms, roles
//! and transports while the node runs.
//!
//! An edit is a reload whose new config is the running one with the edit made, instead of the
//! file read again: it goes through the same checks, diff and commit, applies all of its changes
//! or none, and publishes its report as a reload does. The config file is not written: the next
//! reload from the file (SIGHUP, `switchboard reload`) makes the node run what the file says
//! again, as Crossbar's management API changes last until the node restarts.

use serde_json::Value as Json;

use super::{ReloadReport, Reloader, State, endpoint_key, list, mask_secrets};
use crate::config::ConfigDraft;

impl Reloader {
    /// Adds a realm (a realm section as in the config file) to the router worker `worker` (its
    /// id; the first router worker when `None`).
    pub async fn add_realm(&self, realm: Json, worker: Option<&str>) -> ReloadReport {
        self.edit(
            |_, raw| {
                let name = section_name(&realm, "realm")?;
                if find_realm(raw, &name).is_some() {
                    return Err(format!("realm {name:?} exists"));
                }
                push(router_worker(raw, worker)?, "realms", realm);
                Ok(())
            },
            |_, _| {},
        )
        .await
    }

    /// Removes the realm `name`: its sessions get GOODBYE `wamp.close.system_shutdown`.
    pub async fn remove_realm(&self, name: &str) -> ReloadReport {
        self.edit(
            |_, raw| {
                let (w, r) = find_realm(raw, name).ok_or_else(|| no_such_realm(name))?;
                realms_mut(raw, w).remove(r);
                Ok(())
            },
            |_, _| {},
        )
        .await
    }

    /// The roles of the realm `name`, as configured (secrets masked); `None` for no such realm.
    pub async fn roles(&self, name: &str) -> Option<Json> {
        let state = self.state.lock().await;
        let raw = &state.parts.loaded.raw;
        let (w, r) = find_realm(raw, name)?;
        let mut roles = raw["workers"][w]["realms"][r]
            .get("roles")
            .cloned()
            .unwrap_or_else(|| Json::Array(Vec::new()));
        mask_secrets(&mut roles);
        Some(roles)
    }

    /// Adds a role (a role section as in the config file) to the realm `realm`: sessions may
    /// authenticate to it from their next HELLO on.
    pub async fn add_role(&self, realm: &str, role: Json) -> ReloadReport {
        self.edit(
            |_, raw| {
                let name = section_name(&role, "role")?;
                let (w, r) = find_realm(raw, realm).ok_or_else(|| no_such_realm(realm))?;
                let realm_section = &mut realms_mut(raw, w)[r];
                if list(realm_section, "roles")
                    .iter()
                    .any(|x| x.get("name").and_then(Json::as_str) == Some(&name))
                {
                    return Err(format!("realm {realm:?} has a role {name:?}"));
                }
                push(realm_section, "roles", role);
                Ok(())
            },
            |_, _| {},
        )
        .await
    }

    /// Removes the role `name` of the realm `realm`: the sessions holding it are closed with
    /// `wamp.close.killed`.
    pub async fn remove_role(&self, realm: &str, name: &str) -> ReloadReport {
        self.edit(
            |_, raw| {
                let (w, r) = find_realm(raw, realm).ok_or_else(|| no_such_realm(realm))?;
                let roles = realms_mut(raw, w)[r]
                    .get_mut("roles")
                    .and_then(Json::as_array_mut)
                    .ok_or_else(|| format!("realm {realm:?} has no role {name:?}"))?;
                let at = roles
                    .iter()
                    .position(|x| x.get("name").and_then(Json::as_str) == Some(name))
                    .ok_or_else(|| format!("realm {realm:?} has no role {name:?}"))?;
                roles.remove(at);
                Ok(())
            },
            |_, _| {},
        )
        .await
    }

    /// Stops the transport listening at `listen` (as `switchboard.transport.list` shows it): it
    /// accepts no more connections, those open go on. [`Self::start_transport`] with the same
    /// `listen` starts it again.
    pub async fn stop_transport(&self, listen: &str) -> ReloadReport {
        // Set by the edit, kept by `after` if the edit was applied.
        let stopped = std::sync::Mutex::new(None);
        self.edit(
            |state, raw| {
                let running = state
                    .transports
                    .iter()
                    .find(|t| t.addr.to_string() == listen)
                    .ok_or_else(|| format!("no transport listens at {listen}"))?;
                let (w, t) = find_transport(raw, &running.key).ok_or_else(|| {
                    format!("the transport at {listen} is not in the running config")
                })?;
                let worker = worker_id(&raw["workers"][w], w);
                let transports = raw["workers"][w]["transports"]
                    .as_array_mut()
                    .expect("found in it");
                *crate::locks::lock(&stopped) = Some(StoppedTransport {
                    worker,
                    section: transports.remove(t),
                });
                Ok(())
            },
            |state, report| {
                if report.ok()
                    && let Some(stopped) = crate::locks::lock(&stopped).take()
                {
                    state.stopped.insert(listen.to_owned(), stopped);
                }
            },
        )
        .await
    }

    /// Starts a transport: one [`Self::stop_transport`] stopped, by where it listened (on the
    /// worker it was on), or a new one (a transport section as in the config file) on the router
    /// worker `worker` (the first when `None`).
    pub async fn start_transport(&self, transport: Json, worker: Option<&str>) -> ReloadReport {
        let restarted = transport.as_str().map(str::to_owned);
        self.edit(
            |state, raw| {
                let (section, worker) = match &restarted {
                    Some(listen) => {
                        let stopped = state.stopped.get(listen).ok_or_else(|| {
                            format!(
                                "no transport was stopped at {listen}: give a transport's \
                                 config to start a new one"
                            )
                        })?;
                        (stopped.section.clone(), Some(stopped.worker.as_str()))
                    }
                    None if transport.is_object() => (transport, worker),
                    None => {
                        return Err(
                            "expected a transport's config, or where a stopped one listened".into(),
                        );
                    }
                };
                push(router_worker(raw, worker)?, "transports", section);
                Ok(())
            },
            // Forgotten once it listens again (`State::forget_restarted`): a transport whose
            // start waits for a restart stays startable.
            |_, _| {},
        )
        .await
    }

    /// Makes `edit` on a copy of the running config and applies the result as a reload would;
    /// then `after`, with the report, before any other reload or edit runs.
    async fn edit(
        &self,
        edit: impl FnOnce(&State, &mut Json) -> Result<(), String>,
        after: impl FnOnce(&mut State, &ReloadReport),
    ) -> ReloadReport {
        let mut state = self.state.lock().await;
        let mut raw = Json::clone(&state.parts.loaded.raw);
        let report = match edit(&state, &mut raw) {
            Err(e) => ReloadReport::error(e),
            Ok(()) => match state.plan_edit(&raw) {
                Err(report) => report,
                Ok(plan) => state.commit(plan, self.management.get()).await,
            },
        };
        after(&mut state, &report);
        self.conclude(&mut state, report).await
    }
}

/// A transport [`Reloader::stop_transport`] stopped: what starts it again.
pub(super) struct StoppedTransport {
    /// The id of the router worker it was on.
    worker: String,
    /// Its section of the config.
    pub(super) section: Json,
}

impl State {
    /// Checks an edited running config and works out what changes, as [`State::plan`] does for
    /// the file.
    fn plan_edit(&self, edited: &Json) -> Result<super::Plan, ReloadReport> {
        let loaded = &self.parts.loaded;
        // Problems are placed in the edited config, named so that nobody looks for them in the
        // file; its relative paths resolve where the file's do.
        let shown = loaded
            .base_dir
            .join("(running config, as edited through the management API)");
        let text = serde_json::to_string_pretty(edited).expect("a JSON value prints");
        // Its `${VAR}`s were substituted when the file was read: a value that still reads as one
        // (a substituted value like `$secret`, or a client's string) stays as it is, and no
        // environment is read.
        let draft = ConfigDraft::from_text_in(&text, &shown, &|name| Some(format!("${name}")));
        let prepared = crate::node::prepare_draft(draft).map_err(|errors| ReloadReport {
            errors: errors.0.iter().map(ToString::to_string).collect(),
            ..ReloadReport::default()
        })?;
        let mut plan = self.diff(prepared)?;
        // The next reload reads the file again.
        plan.loaded.file.clone_from(&loaded.file);
        Ok(plan)
    }
}

/// The `name` of a realm or role section.
fn section_name(section: &Json, what: &str) -> Result<String, String> {
    section
        .get("name")
        .and_then(Json::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("expected a {what}'s config: an object with a `name`"))
}

fn no_such_realm(name: &str) -> String {
    format!("no configured realm {name:?}")
}

fn is_router(worker: &Json) -> bool {
    worker.get("type").and_then(Json::as_str) == Some("router")
}

/// The router worker with the id `id` (Crossbar's `worker001` by position where it has none),
/// or the first router worker.
fn router_worker<'a>(raw: &'a mut Json, id: Option<&str>) -> Result<&'a mut Json, String> {
    let workers = raw
        .get_mut("workers")
        .and_then(Json::as_array_mut)
        .ok_or("the config has no workers")?;
    workers
        .iter_mut()
        .enumerate()
        .filter(|(_, w)| is_router(w))
        .find(|(i, w)| id.is_none_or(|id| worker_id(w, *i) == id))
        .map(|(_, w)| w)
        .ok_or_else(|| match id {
            Some(id) => format!("no router worker {id:?}"),
            None => "the config has no router worker".into(),
        })
}

/// The realms list of the worker at `w` (which has one).
fn realms_mut(raw: &mut Json, w: usize) -> &mut Vec<Json> {
    raw["workers"][w]["realms"]
        .as_array_mut()
        .expect("a worker with realms")
}

/// The id of the worker `worker` at position `w`: its `id`, else Crossbar's `worker001` by
/// position.
fn worker_id(worker: &Json, w: usize) -> String {
    worker
        .get("id")
        .and_then(Json::as_str)
        .map_or_else(|| format!("worker{:03}", w + 1), str::to_owned)
}

/// The worker and position of the configured (not template) realm `name`.
fn find_realm(raw: &Json, name: &str) -> Option<(usize, usize)> {
    list(raw, "workers")
        .iter()
        .enumerate()
        .filter(|(_, w)| is_router(w))
        .find_map(|(w, worker)| {
            list(worker, "realms")
                .iter()
                .position(|r| {
                    r.get("template").is_none()
                        && r.get("name").and_then(Json::as_str) == Some(name)
                })
                .map(|r| (w, r))
        })
}

/// The worker and position of the transport whose endpoint is `key`.
fn find_transport(raw: &Json, key: &str) -> Option<(usize, usize)> {
    list(raw, "workers")
        .iter()
        .enumerate()
        .filter(|(_, w)| is_router(w))
        .find_map(|(w, worker)| {
            list(worker, "transports")
                .iter()
                .position(|t| endpoint_key(t) == key)
                .map(|t| (w, t))
        })
}

/// Appends `item` to the list at `key` of `section`, creating the list where there is none.
fn push(section: &mut Json, key: &str, item: Json) {
    if let Some(object) = section.as_object_mut() {
        match object.entry(key).or_insert_with(|| Json::Array(Vec::new())) {
            Json::Array(items) => items.push(item),
            other => *other = Json::Array(vec![item]),
        }
    }
}
