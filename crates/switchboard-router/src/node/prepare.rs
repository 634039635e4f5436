//! Preparing a node: everything it needs before binding, built from a loaded config. Per transport
//! that is its [`Protocols`] (the TLS acceptor, the compiled `auth` of each endpoint, cookie jars,
//! static directories), which is where unusable material shows: a key file that cannot be read, a
//! JWKS that is no key set, a malformed credential. Each problem is reported with the file, line,
//! column and path in the config, like the problems loading finds, and all of them at once:
//! `switchboard check` and `switchboard start` both run this step, so `check` reports what `start`
//! would refuse. Binding the sockets is left to [`super::start_prepared`].

use std::path::Path;
use std::sync::Arc;

use crate::config::{
    ConfigDraft, ConfigError, ConfigErrors, EndpointConfig, LoadedConfig, RealmConfig,
    RestartPolicy, WorkerConfig,
};
use crate::listener::Protocols;

use super::component::PreparedComponents;
use super::function_auth::{self, PreparedFunction};
use super::guest::PreparedGuest;
use super::links;
use super::rest_components::{self, PreparedBuiltin};

/// A node ready to bind: its config, and what each transport serves.
pub struct PreparedNode {
    pub(super) loaded: LoadedConfig,
    pub(super) transports: Vec<PreparedTransport>,
    pub(super) guests: Vec<PreparedGuest>,
    /// The private directory of hosted components, if the node hosts any.
    pub(super) component_dir: Option<std::path::PathBuf>,
    /// The ticket principals of the private transport of router workers' components.
    pub(super) component_principals: serde_json::Map<String, serde_json::Value>,
    /// The function authenticators of its transports.
    pub(super) functions: Vec<PreparedFunction>,
    /// Crossbar's built-in components it runs in its process (the REST callee and subscriber).
    pub(super) builtins: Vec<PreparedBuiltin>,
    /// Keys without effect and what is served differently from what the config asks, placed in
    /// the file.
    warnings: ConfigErrors,
}

impl std::fmt::Debug for PreparedNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // What the transports serve (TLS acceptors, compiled auth) does not print; where they
        // listen does.
        let endpoints: Vec<String> = self
            .transports
            .iter()
            .map(|t| t.endpoint.to_string())
            .collect();
        f.debug_struct("PreparedNode")
            .field("file", &self.loaded.file)
            .field("endpoints", &endpoints)
            .finish_non_exhaustive()
    }
}

/// One transport, ready to bind.
pub(super) struct PreparedTransport {
    /// Where it listens.
    pub(super) endpoint: EndpointConfig,
    /// What it serves.
    pub(super) protocols: Protocols,
    /// Its place in the config (`workers[0].transports[1]`).
    pub(super) at: String,
    /// The node's own transport for its hosted components: not announced.
    pub(super) private: bool,
}

impl PreparedNode {
    /// The config the node was prepared from.
    pub fn config(&self) -> &LoadedConfig {
        &self.loaded
    }

    /// The realms the node hosts, in config order.
    pub fn realms(&self) -> impl Iterator<Item = &RealmConfig> {
        self.loaded
            .config
            .router_workers()
            .flat_map(|(_, w)| &w.realms)
            .filter(|r| !r.is_template())
    }

    /// The realm templates, in config order.
    pub fn templates(&self) -> impl Iterator<Item = &RealmConfig> {
        self.loaded
            .config
            .router_workers()
            .flat_map(|(_, w)| &w.realms)
            .filter(|r| r.is_template())
    }

    /// The guest workers the node starts, in config order.
    pub fn guests(&self) -> &[PreparedGuest] {
        &self.guests
    }

    /// Keys Crossbar accepts that have no effect here, and what is served differently from what
    /// the config asks (a static directory that does not exist): `switchboard check` prints them
    /// and `switchboard start` logs them, each with its place in the file.
    pub fn warnings(&self) -> &ConfigErrors {
        &self.warnings
    }

    /// What `switchboard check` and `switchboard start` tell a Crossbar user about this config
    /// where Switchboard behaves differently from Crossbar.
    pub fn notes(&self) -> Vec<String> {
        self.guests
            .iter()
            .filter(|g| !g.hosted_component && g.restart != RestartPolicy::Never)
            .map(|g| {
                format!(
                    "guest worker `{}` is restarted when it {} (options.restart: {}); Crossbar \
                     never restarts a guest, set options.restart to restart-never for that",
                    g.id,
                    if g.restart == RestartPolicy::Always {
                        "exits"
                    } else {
                        "fails"
                    },
                    g.restart.as_str()
                )
            })
            .collect()
    }
}

/// Prepares a node from a loaded (and so valid) config; every problem with its place in the file.
pub fn prepare(loaded: &LoadedConfig) -> Result<PreparedNode, ConfigErrors> {
    let Built {
        transports,
        guests,
        problems,
        component_dir,
        component_principals,
        functions,
        builtins,
    } = build(loaded);
    if !problems.is_empty() {
        return Err(loaded.locate(problems));
    }
    let warnings = warnings(loaded, &transports);
    Ok(PreparedNode {
        loaded: loaded.clone(),
        transports,
        guests,
        component_dir,
        component_principals,
        functions,
        builtins,
        warnings,
    })
}

/// Prepares the node of a config read as far as it could be: what could be read is prepared too,
/// so the problems of loading, validation and preparation are reported together.
pub fn prepare_draft(draft: ConfigDraft) -> Result<PreparedNode, ConfigErrors> {
    let Built {
        transports,
        guests,
        problems,
        component_dir,
        component_principals,
        functions,
        builtins,
    } = draft.config().map(build).unwrap_or_default();
    let loaded = draft.finish(problems)?;
    let warnings = warnings(&loaded, &transports);
    Ok(PreparedNode {
        loaded,
        transports,
        guests,
        component_dir,
        component_principals,
        functions,
        builtins,
        warnings,
    })
}

/// Loads, validates and prepares the config of a node directory (see
/// [`LoadedConfig::from_dir`]); `Ok(None)` when the directory has none. What `switchboard check`
/// and `switchboard start` run.
pub fn prepare_dir(dir: &Path) -> Result<Option<PreparedNode>, ConfigErrors> {
    ConfigDraft::from_dir(dir).map(prepare_draft).transpose()
}

/// The warnings of a config whose transports were built, placed in its file.
fn warnings(loaded: &LoadedConfig, transports: &[PreparedTransport]) -> ConfigErrors {
    let mut warnings = loaded.warnings();
    warnings.extend(transports.iter().flat_map(|t| {
        t.protocols
            .warnings
            .iter()
            .map(|w| ConfigError::at(format!("{}.{}", t.at, w.path), w.message.clone()))
    }));
    loaded.locate(warnings)
}

/// What [`build`] makes of a config.
#[derive(Default)]
struct Built {
    transports: Vec<PreparedTransport>,
    guests: Vec<PreparedGuest>,
    /// Paths as in `loaded.config`.
    problems: Vec<ConfigError>,
    component_dir: Option<std::path::PathBuf>,
    component_principals: serde_json::Map<String, serde_json::Value>,
    functions: Vec<PreparedFunction>,
    builtins: Vec<PreparedBuiltin>,
}

/// Builds every transport, guest worker, hosted component and function authenticator of
/// `loaded`, collecting the problems.
fn build(loaded: &LoadedConfig) -> Built {
    let realm_names: Arc<Vec<String>> = Arc::new(
        loaded
            .config
            .router_workers()
            .flat_map(|(_, w)| w.realms.iter().map(|r| r.name.clone()))
            .collect(),
    );
    let mut transports = Vec::new();
    let mut problems = Vec::new();
    for (w, worker) in loaded.config.router_workers() {
        for (t, transport) in worker.transports.iter().enumerate() {
            match Protocols::from_config(transport, &loaded.base_dir, realm_names.clone()) {
                Ok(protocols) => transports.push(PreparedTransport {
                    endpoint: transport.endpoint().clone(),
                    protocols,
                    at: format!("workers[{w}].transports[{t}]"),
                    private: false,
                }),
                Err(setup) => problems.extend(setup.into_iter().map(|e| {
                    ConfigError::at(
                        format!("workers[{w}].transports[{t}].{}", e.path),
                        e.message,
                    )
                })),
            }
        }
    }
    problems.extend(links::check_material(&loaded.config, &loaded.base_dir));
    let mut guests = Vec::new();
    for (w, worker) in loaded.config.workers.iter().enumerate() {
        if let WorkerConfig::Guest(guest) = worker {
            match PreparedGuest::prepare(worker.id(w), guest, &loaded.base_dir) {
                Ok(guest) => guests.push(guest),
                Err(setup) => problems.extend(
                    setup
                        .into_iter()
                        .map(|e| ConfigError::at(format!("workers[{w}].{}", e.path), e.message)),
                ),
            }
        }
    }
    let mut component_dir = None;
    let mut component_principals = serde_json::Map::new();
    match PreparedComponents::prepare(loaded) {
        Ok(None) => {}
        Ok(Some(components)) => {
            component_dir = Some(components.dir().to_path_buf());
            if let Some(private) = &components.transport {
                match Protocols::from_config(private, &loaded.base_dir, realm_names) {
                    Ok(protocols) => transports.push(PreparedTransport {
                        endpoint: private.endpoint().clone(),
                        protocols,
                        at: "components".into(),
                        private: true,
                    }),
                    Err(setup) => problems.extend(setup.into_iter().map(|e| {
                        ConfigError::at(
                            "workers",
                            format!("internal: the components' transport: {e}"),
                        )
                    })),
                }
            }
            guests.extend(components.processes);
            component_principals = components.principals;
        }
        Err(e) => problems.extend(e),
    }
    let functions = function_auth::prepare(loaded).unwrap_or_else(|e| {
        problems.extend(e);
        Vec::new()
    });
    Built {
        transports,
        guests,
        problems,
        component_dir,
        component_principals,
        functions,
        builtins: rest_components::prepare(loaded),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every problem of a config file, from loading to preparation.
    fn all_problems(text: &str) -> Vec<ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("config.json");
        std::fs::write(&file, text).expect("write");
        match prepare_draft(ConfigDraft::from_file(&file)) {
            Ok(_) => Vec::new(),
            Err(ConfigErrors(errors)) => errors,
        }
    }

    /// The (path, message) of every problem of a config file, from loading to preparation.
    fn problems(text: &str) -> Vec<(String, String)> {
        all_problems(text)
            .into_iter()
            .map(|e| (e.path, e.message))
            .collect()
    }

    const REALMS: &str = r#""realms": [{"name": "realm1", "roles": [{"name": "anonymous"}]}]"#;

    #[test]
    fn preparing_a_loaded_config_places_its_problems_in_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("config.json");
        let text = format!(
            "{{\"workers\": [{{\"type\": \"router\", {REALMS},\n\
             \"transports\": [{{\"type\": \"web\", \"endpoint\": {{\"type\": \"tcp\", \"port\": 0}},\n\
             \"paths\": {{\"/\": {{\"type\": \"static\",\n  \"directory\": \"gone\"}}}}}}]}}]}}"
        );
        std::fs::write(&file, text).expect("write");
        // A file where the directory should be.
        std::fs::write(dir.path().join("gone"), "").expect("write");
        // Loading has nothing to say against it: whether the directory is usable is preparation's.
        let loaded = LoadedConfig::from_file(&file).expect("loads");
        let ConfigErrors(errors) = prepare(&loaded).expect_err("the directory is a file");
        assert_eq!(errors.len(), 1, "{errors:?}");
        let e = &errors[0];
        assert_eq!(e.path, "workers[0].transports[0].paths./.directory");
        assert!(
            e.message.starts_with("cannot read `gone`: "),
            "{}",
            e.message
        );
        assert_eq!(e.file.as_deref(), Some(file.as_path()));
        assert_eq!(e.position, Some((4, 3)));
    }

    #[test]
    fn a_static_directory_that_does_not_exist_is_a_warning_placed_in_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("config.json");
        let text = format!(
            "{{\"workers\": [{{\"type\": \"router\", {REALMS},\n\
             \"transports\": [{{\"type\": \"web\", \"endpoint\": {{\"type\": \"tcp\", \"port\": 0}},\n\
             \"paths\": {{\"/\": {{\"type\": \"static\",\n  \"directory\": \"gone\"}}}}}}]}}]}}"
        );
        std::fs::write(&file, text).expect("write");
        let loaded = LoadedConfig::from_file(&file).expect("loads");
        let node = prepare(&loaded).expect("a missing directory does not stop the node");
        let ConfigErrors(warnings) = node.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let w = &warnings[0];
        assert_eq!(w.path, "workers[0].transports[0].paths./.directory");
        assert!(
            w.message.starts_with("`gone` does not exist"),
            "{}",
            w.message
        );
        assert_eq!(w.position, Some((4, 3)));
    }

    #[test]
    fn problems_of_transports_after_a_cut_out_one_keep_the_files_indices() {
        let errors = all_problems(&format!(
            r#"{{"workers": [{{"type": "router", {REALMS}, "transports": [
                {{"type": "mqtt"}},
                {{"type": "web", "endpoint": {{"type": "tcp", "port": 0}},
                  "paths": {{"/": {{"type": "static", "directory": "config.json"}}}}}}]}}]}}"#
        ));
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "workers[0].transports[0].type",
                "workers[0].transports[1].paths./.directory"
            ],
            "{errors:?}"
        );
        assert_eq!(errors[1].position.map(|p| p.0), Some(4), "{errors:?}");
    }

    #[test]
    fn a_problem_validation_reported_is_not_reported_again_by_preparation() {
        // Validation says a JWT ticket needs `jwks`; compiling the ticket fails for the same reason.
        let errors = problems(&format!(
            r#"{{"workers": [{{"type": "router", {REALMS}, "transports": [
                {{"type": "rawsocket", "endpoint": {{"type": "tcp", "port": 0}},
                  "auth": {{"ticket": {{"type": "jwt"}}}}}}]}}]}}"#
        ));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].0, "workers[0].transports[0].auth.ticket.jwks");
        assert!(
            errors[0].1.starts_with("type `jwt` needs `jwks`"),
            "{errors:?}"
        );
    }

    // From loading to preparation: roles and methods are validation's, the SCRAM credential and
    // the cryptosign key preparation's.
    #[test]
    fn auth_sections_are_checked_against_roles_methods_and_endpoints() {
        let errors = problems(
            r#"{"workers": [{"type": "router",
                "realms": [{"name": "r", "roles": [{"name": "user"},
                    {"name": "both", "authorizer": "com.example.authorize", "permissions": [{"uri": "x"}]}]}],
                "transports": [{"type": "rawsocket", "endpoint": {"type": "tcp", "port": 0},
                  "auth": {
                    "ticket": {"type": "static", "principals": {"joe": {"ticket": "t", "role": "nobody"}}},
                    "wampcra": {"type": "dynamic"},
                    "scram": {"type": "static", "principals": {"al": {"kdf": "md5", "iterations": 1, "salt": "s",
                        "stored-key": "00", "server-key": "zz", "role": "user"}}},
                    "cryptosign": {"type": "jwt", "principals": {"c": {"authorized_keys": ["abc"], "role": "user"}}},
                    "tls": {"type": "static", "principals": {}},
                    "cookie": {}
                  }}]}]}"#,
        );
        let at = "workers[0].transports[0].auth";
        let expect = [
            (
                "workers[0].realms[0].roles[1]".to_owned(),
                "either `permissions` or an `authorizer`",
            ),
            (
                format!("{at}.ticket.principals.joe.role"),
                "role `nobody` is not defined",
            ),
            (
                format!("{at}.wampcra.authenticator"),
                "needs the procedure URI",
            ),
            (format!("{at}.scram.principals.al"), "unknown kdf"),
            (
                format!("{at}.cryptosign.type"),
                "`jwt` exists for `ticket` only",
            ),
            (
                format!("{at}.cryptosign.principals.c.authorized_keys[0]"),
                "64 hex digits",
            ),
            (format!("{at}.tls"), "ca_certificates"),
            (
                format!("{at}.cookie"),
                "WebSocket endpoint with a `cookie` section",
            ),
        ];
        for (path, text) in expect {
            assert!(
                errors.iter().any(|(p, m)| *p == path && m.contains(text)),
                "no error at {path} saying {text:?}: {errors:?}"
            );
        }
        assert_eq!(errors.len(), 8, "{errors:?}");
    }
}
