//! Reading a node's config file: finds it in a node directory, parses it ([`super::parse`]) and
//! runs [`validate`](super::validate), giving every problem its file, line and column.

use std::path::{Path, PathBuf};

use super::parse::{original_path, parse_document, parse_text};
use super::syntax::Positions;
use super::{ConfigError, ConfigErrors, DEFAULT_CONFIG_JSON, NodeConfig};

/// A parsed config and where its relative paths resolve.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The parsed config.
    pub config: NodeConfig,
    /// The config file, if any.
    pub file: Option<PathBuf>,
    /// The directory relative paths in the config resolve against: the config file's own.
    pub base_dir: PathBuf,
    /// The document as read, `${VAR}`s substituted: what a config reload compares, key by key,
    /// with the running config.
    pub raw: std::sync::Arc<serde_json::Value>,
    /// Where the config's nodes are in the file, to place problems found after loading.
    source: SourceMap,
}

/// Where the nodes of a loaded config are in its file.
#[derive(Debug, Clone, Default)]
struct SourceMap {
    positions: Positions,
    /// List elements cut out because they could not be read: paths in the config have the indices
    /// of the config without them.
    cut_elements: Vec<String>,
}

impl SourceMap {
    /// Gives a problem found in the config (a path in the config's indices, no position) its file,
    /// the file's indices (in its path and in a path its message quotes) and its position.
    fn place(&self, mut e: ConfigError, file: Option<&Path>) -> ConfigError {
        e.path = original_path(&e.path, &self.cut_elements);
        if let Some((text, other)) = e.message.split_once(" is already used by ") {
            e.message = format!(
                "{text} is already used by {}",
                original_path(other, &self.cut_elements)
            );
        }
        e.position = e.position.or_else(|| self.positions.find(&e.path));
        e.file = e.file.or_else(|| file.map(Path::to_path_buf));
        e
    }
}

/// The file names `from_dir` looks for, in order (Crossbar's node directory last).
const CANDIDATES: [&str; 6] = [
    "config.json",
    "config.yaml",
    "config.yml",
    ".crossbar/config.json",
    ".crossbar/config.yaml",
    ".crossbar/config.yml",
];

impl LoadedConfig {
    /// The built-in default configuration.
    pub fn builtin() -> Self {
        // A unit test checks that the constant parses and validates.
        let config = parse_text(DEFAULT_CONFIG_JSON, false, &|_| None)
            .map(|(c, _)| c)
            .expect("the built-in default config is valid");
        let raw = super::syntax::parse_jsonc(DEFAULT_CONFIG_JSON)
            .map(|(v, _)| v)
            .expect("the built-in default config is valid");
        Self {
            config,
            file: None,
            base_dir: PathBuf::from("."),
            raw: std::sync::Arc::new(raw),
            source: SourceMap::default(),
        }
    }

    /// Loads the config of a node directory: `config.json`, `config.yaml`/`.yml`, or the same under
    /// `.crossbar/` (a Crossbar node directory). `None` when there is none.
    pub fn from_dir(dir: &Path) -> Result<Option<Self>, ConfigErrors> {
        ConfigDraft::from_dir(dir)
            .map(|draft| draft.finish(Vec::new()))
            .transpose()
    }

    /// Loads and validates one config file, reading `${VAR}`s from the process environment.
    pub fn from_file(file: &Path) -> Result<Self, ConfigErrors> {
        Self::from_file_with_env(file, &|name| std::env::var(name).ok())
    }

    /// Loads and validates one config file with the given environment lookup. Every problem is
    /// reported: those the types find and, on what could be read, those validation finds.
    pub fn from_file_with_env(
        file: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigErrors> {
        ConfigDraft::from_file_with_env(file, env).finish(Vec::new())
    }

    /// Loads and validates a config given as JSON text (comments allowed), as a program that embeds
    /// Switchboard or a test writes it; relative paths in it resolve against `base_dir`. Errors
    /// have a line and column but no file.
    pub fn from_json(text: &str, base_dir: &Path) -> Result<Self, ConfigErrors> {
        ConfigDraft::from_text(text, false, None, base_dir, &|name| {
            std::env::var(name).ok()
        })
        .finish(Vec::new())
    }

    /// Loads and validates a config given as YAML text, as [`Self::from_json`] does JSON.
    pub fn from_yaml(text: &str, base_dir: &Path) -> Result<Self, ConfigErrors> {
        ConfigDraft::from_text(text, true, None, base_dir, &|name| std::env::var(name).ok())
            .finish(Vec::new())
    }

    /// Runs the cross-reference checks (also part of `from_file`).
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let errors = super::validate::validate(&self.config, &self.base_dir);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Keys Crossbar accepts that have no effect here, one warning each (paths in
    /// [`config`](Self::config), to be placed with [`locate`](Self::locate)).
    pub fn warnings(&self) -> Vec<ConfigError> {
        super::validate::warnings(&self.config)
    }

    /// Places problems found in this config after loading (by the node's preparation, with paths
    /// in [`config`](Self::config)) in the file, as loading places its own: file, line, column.
    pub fn locate(&self, errors: Vec<ConfigError>) -> ConfigErrors {
        ConfigErrors(
            errors
                .into_iter()
                .map(|e| self.source.place(e, self.file.as_deref()))
                .collect(),
        )
    }
}

/// A config file read and validated as far as it could be: the config without the sections that
/// could not be read, and every problem found. The node's preparation builds what it can of that
/// config and adds its own problems with [`finish`](Self::finish), so that `check` and `start`
/// report every problem of a file at once.
#[derive(Debug)]
pub struct ConfigDraft {
    /// `None` when nothing could be read (the file, or its syntax).
    loaded: Option<LoadedConfig>,
    /// Every problem so far, placed in the file.
    errors: Vec<ConfigError>,
}

/// The node directory of `dir`: where its config file is (`dir`, or `dir/.crossbar` for a
/// Crossbar node directory), else `dir` itself. The control socket and the pid file live there,
/// as relative paths in the config resolve against it.
pub fn node_dir(dir: &Path) -> PathBuf {
    CANDIDATES
        .iter()
        .map(|name| dir.join(name))
        .find(|candidate| candidate.is_file())
        .and_then(|file| file.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| dir.to_path_buf())
}

impl ConfigDraft {
    /// Reads the config of a node directory (see [`LoadedConfig::from_dir`]); `None` when there is
    /// none.
    pub fn from_dir(dir: &Path) -> Option<Self> {
        CANDIDATES
            .iter()
            .map(|name| dir.join(name))
            .find(|candidate| candidate.is_file())
            .map(|file| Self::from_file(&file))
    }

    /// Reads one config file, reading `${VAR}`s from the process environment.
    pub fn from_file(file: &Path) -> Self {
        Self::from_file_with_env(file, &|name| std::env::var(name).ok())
    }

    /// Reads one config file with the given environment lookup: parses it, reporting every problem
    /// the types find, and validates what could be read.
    pub fn from_file_with_env(file: &Path, env: &dyn Fn(&str) -> Option<String>) -> Self {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => {
                let mut error = ConfigError::at("", format!("cannot read: {e}"));
                error.file = Some(file.to_path_buf());
                return Self {
                    loaded: None,
                    errors: vec![error],
                };
            }
        };
        let yaml = matches!(
            file.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        let base_dir = file.parent().unwrap_or(Path::new("."));
        Self::from_text(&text, yaml, Some(file), base_dir, env)
    }

    /// Reads a config from `text` as if it were the contents of `file` (YAML for a `.yaml` or
    /// `.yml` file, else JSON with comments; relative paths resolve against the file's directory):
    /// what a config checked before it is written in place is read as. `${VAR}`s are read with
    /// `env` (a text from a client must not read the process's environment back).
    pub fn from_text_in(text: &str, file: &Path, env: &dyn Fn(&str) -> Option<String>) -> Self {
        let yaml = matches!(
            file.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        let base_dir = file.parent().unwrap_or(Path::new("."));
        Self::from_text(text, yaml, Some(file), base_dir, env)
    }

    /// Reads a config from `text` (YAML or JSON with comments), found in `file` if it came from
    /// one; relative paths resolve against `base_dir`.
    fn from_text(
        text: &str,
        yaml: bool,
        file: Option<&Path>,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Self {
        let with_file = |mut e: ConfigError| {
            e.file = file.map(Path::to_path_buf);
            e
        };
        let parsed = parse_document(text, yaml, env);
        let base_dir = base_dir.to_path_buf();
        let mut errors: Vec<ConfigError> = parsed.errors.into_iter().map(with_file).collect();
        // Validation runs on what could be read (a syntax error leaves nothing to validate).
        let Some(config) = parsed.config else {
            return Self {
                loaded: None,
                errors,
            };
        };
        let loaded = LoadedConfig {
            config,
            file: file.map(Path::to_path_buf),
            base_dir,
            raw: std::sync::Arc::new(parsed.raw),
            source: SourceMap {
                positions: parsed.positions,
                cut_elements: parsed.cut_elements,
            },
        };
        let mut validation = super::validate::validate(&loaded.config, &loaded.base_dir);
        // A broken realm was left out, so "role not defined" may only mean it was in there.
        if parsed.realm_left_out {
            validation.retain(|e| !e.message.contains("is not defined in any realm"));
        }
        errors.extend(loaded.locate(validation).0);
        Self {
            loaded: Some(loaded),
            errors,
        }
    }

    /// The config as far as it could be read: sections with type errors are cut out, and it may
    /// have failed validation. `None` when nothing could be read.
    pub fn config(&self) -> Option<&LoadedConfig> {
        self.loaded.as_ref()
    }

    /// Adds the problems found in [`config`](Self::config) after loading (paths in that config's
    /// indices), and returns the config when there is no problem at all. A later problem at a path
    /// where loading already found one is left out: it is the same problem seen again (a JWT ticket
    /// without `jwks` cannot load its keys either), and loading words it better.
    pub fn finish(self, later: Vec<ConfigError>) -> Result<LoadedConfig, ConfigErrors> {
        let Self { loaded, mut errors } = self;
        if let Some(loaded) = &loaded {
            for e in loaded.locate(later).0 {
                if !errors.iter().any(|known| known.path == e.path) {
                    errors.push(e);
                }
            }
        }
        match loaded {
            Some(loaded) if errors.is_empty() => Ok(loaded),
            _ => Err(ConfigErrors(errors)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NodeConfig, ConfigErrors> {
        parse_text(text, false, &|name| {
            (name == "PORT").then(|| "9000".to_owned())
        })
        .map(|(c, _)| c)
    }

    fn only_error(text: &str) -> ConfigError {
        let ConfigErrors(mut errors) = parse(text).expect_err("invalid");
        assert_eq!(errors.len(), 1, "{errors:?}");
        errors.remove(0)
    }

    #[test]
    fn builtin_default_parses_and_validates() {
        let loaded = LoadedConfig::builtin();
        assert!(loaded.validate().is_ok());
    }

    #[test]
    fn a_config_given_as_text_loads_and_its_errors_have_positions_but_no_file() {
        let loaded = LoadedConfig::from_json(DEFAULT_CONFIG_JSON, Path::new("/srv/node"))
            .expect("the built-in config as text");
        assert_eq!(loaded.file, None);
        assert_eq!(loaded.base_dir, Path::new("/srv/node"));
        let errors = LoadedConfig::from_json("{\"version\": 2,\n \"workers\": 7}", Path::new("."))
            .expect_err("workers must be a list");
        let error = &errors.0[0];
        assert_eq!(error.file, None);
        assert_eq!(error.path, "workers");
        assert_eq!(error.position.map(|(line, _)| line), Some(2), "{error}");
    }

    #[test]
    fn comments_and_trailing_commas_are_accepted() {
        let cfg =
            parse("{ // node\n \"version\": 2, /* none */ \"workers\": [],\n}").expect("valid");
        assert_eq!(cfg.version, Some(2));
    }

    #[test]
    fn unknown_key_inside_a_tagged_section_is_unsupported_with_full_path_and_line() {
        let e = only_error("{\"workers\": [\n {\"type\": \"router\",\n  \"uplinks\": []}]}");
        assert_eq!(e.path, "workers[0].uplinks");
        assert!(
            e.message.starts_with("unsupported: `uplinks`"),
            "{}",
            e.message
        );
        assert_eq!(e.position, Some((3, 3)));
    }

    #[test]
    fn unsupported_type_points_at_the_type_key() {
        let e = only_error(r#"{"workers": [{"type": "websocket-testee"}]}"#);
        assert_eq!(e.path, "workers[0].type");
        assert_eq!(e.message, "unsupported: worker type `websocket-testee`");
    }

    #[test]
    fn errors_deep_inside_nested_tagged_sections_keep_their_path() {
        let e = only_error(
            r#"{"workers": [{"type": "router", "transports": [
               {"type": "web", "endpoint": {"type": "tcp", "port": "abc"}, "paths": {}}]}]}"#,
        );
        assert_eq!(e.path, "workers[0].transports[0].endpoint.port");
        assert!(e.message.contains("expected u16"), "{}", e.message);
    }

    #[test]
    fn env_vars_are_substituted_and_missing_ones_named() {
        let cfg = parse(r#"{"controller": {"id": "${PORT}"}}"#).expect("valid");
        assert_eq!(cfg.controller.and_then(|c| c.id).as_deref(), Some("9000"));
        let e = only_error(r#"{"controller": {"id": "$NOPE"}}"#);
        assert_eq!(e.path, "controller.id");
        assert_eq!(e.message, "environment variable `NOPE` is not set");
    }

    #[test]
    fn every_type_error_is_reported_not_just_the_first() {
        let ConfigErrors(errors) = parse(
            r#"{"version": 2, "workers": [{"type": "router", "uplinks": [],
                "realms": [{"roles": []}, {"name": "ok", "roles": [{"name": "r", "permissions": [{"uri": "", "match": "glob"}]}]}],
                "transports": [{"type": "mqtt"}, {"type": "rawsocket", "endpoint": {"type": "tcp", "port": "x"}}]}]}"#,
        )
        .expect_err("invalid");
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "workers[0].realms[0]",
                "workers[0].realms[1].roles[0].permissions[0].match",
                "workers[0].transports[0].type",
                "workers[0].transports[1].endpoint.port",
                "workers[0].uplinks",
            ],
            "{errors:?}"
        );
    }

    fn validation_errors(text: &str) -> Vec<(String, String)> {
        let cfg = parse(text).expect("parses");
        super::super::validate::validate(&cfg, Path::new("."))
            .into_iter()
            .map(|e| (e.path, e.message))
            .collect()
    }

    #[test]
    fn each_endpoint_of_a_transport_has_its_own_anonymous_role() {
        let errors = validation_errors(
            r#"{"workers": [{"type": "router", "realms": [{"name": "r", "roles": [{"name": "a"}, {"name": "b"}]}],
                "transports": [{"type": "universal", "endpoint": {"type": "tcp", "port": 0},
                  "rawsocket": {"auth": {"anonymous": {"type": "static", "role": "a"}}},
                  "websocket": {"ws": {"type": "websocket", "auth": {"anonymous": {"type": "static", "role": "b"}}}}}]}]}"#,
        );
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let e = only_error("{\n \"version\": 2,\n \"workers\": [}\n");
        assert_eq!(e.position.map(|p| p.0), Some(3));
    }

    #[test]
    fn yaml_configs_load_like_json() {
        let (cfg, _) = parse_text(
            "version: 2\nworkers:\n  - type: router\n    realms:\n      - name: realm1\n",
            true,
            &|_| None,
        )
        .expect("valid yaml");
        assert_eq!(cfg.workers.len(), 1);
    }
}
