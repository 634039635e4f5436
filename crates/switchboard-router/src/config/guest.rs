//! Guest workers: any executable the node starts and supervises (Crossbar's `"type": "guest"`),
//! with Crossbar's keys and Switchboard's supervision keys (`restart`, `restart_backoff`,
//! `max_restarts`, `stop_signal`, `stop_timeout`) under `options`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A guest worker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestWorkerConfig {
    /// Worker id (default `worker001`, `worker002`, ... by position, as Crossbar numbers them).
    #[serde(default)]
    pub id: Option<String>,
    /// The program: a path (relative to `options.workdir`) or a name looked up on `PATH`.
    pub executable: String,
    /// Its arguments.
    #[serde(default)]
    pub arguments: Vec<String>,
    /// How it runs and is supervised.
    #[serde(default)]
    pub options: GuestOptions,
}

/// A guest worker's `options`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestOptions {
    /// A title shown in logs.
    #[serde(default)]
    pub title: Option<String>,
    /// The working directory, relative to the node directory (default: the node directory).
    #[serde(default)]
    pub workdir: Option<String>,
    /// The environment.
    #[serde(default)]
    pub env: GuestEnv,
    /// What the process reads on stdin (default: a pipe that stays open and gets nothing, as
    /// Crossbar leaves it).
    #[serde(default)]
    pub stdin: Option<GuestStdin>,
    /// What happens to stdout (default: each line goes to the node's log).
    #[serde(default)]
    pub stdout: GuestOutput,
    /// What happens to stderr (default: each line goes to the node's log).
    #[serde(default)]
    pub stderr: GuestOutput,
    /// Restart the process when files under these directories change (Crossbar's key).
    #[serde(default)]
    pub watch: Option<GuestWatch>,
    /// When the node starts the process again after it exited (Switchboard's key; Crossbar never
    /// restarts a guest).
    #[serde(default)]
    pub restart: RestartPolicy,
    /// The delays between restarts (Switchboard's key).
    #[serde(default)]
    pub restart_backoff: RestartBackoff,
    /// How many restarts in how long make the worker `failed` (Switchboard's key).
    #[serde(default)]
    pub max_restarts: MaxRestarts,
    /// The signal that asks the process to stop (Switchboard's key): `TERM` (default), `INT`,
    /// `HUP`, `QUIT`, `USR1`, `USR2` or `KILL`.
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// Seconds the process has to exit after the stop signal before its process group gets
    /// SIGKILL (Switchboard's key; default 10).
    #[serde(default)]
    pub stop_timeout: Option<f64>,
    /// When the guest counts as ready, which the next worker in config order waits for
    /// (Switchboard's key; without it the next one starts right after this one's process).
    #[serde(default)]
    pub ready: Option<GuestReady>,
}

/// A guest's `options.ready`: one condition, and how long the node waits for it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestReady {
    /// Ready once a line of its stdout or stderr contains this text.
    #[serde(default)]
    pub log: Option<String>,
    /// Ready once this procedure is registered (by anyone) on `realm`.
    #[serde(default)]
    pub procedure: Option<String>,
    /// The realm of `procedure` (default: the node's realm, where it has exactly one).
    #[serde(default)]
    pub realm: Option<String>,
    /// Seconds to wait; then the next worker starts anyway, with a warning (default 30).
    #[serde(default)]
    pub timeout: Option<f64>,
}

/// The default of `options.ready.timeout`, in seconds.
pub const DEFAULT_GUEST_READY_TIMEOUT_SECONDS: f64 = 30.0;

/// A guest's `options.env`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestEnv {
    /// `true` (default): the node's whole environment; `false`: none of it; a list: those names.
    #[serde(default = "inherit_all")]
    pub inherit: EnvInherit,
    /// Variables set after inheriting.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
}

impl Default for GuestEnv {
    fn default() -> Self {
        Self {
            inherit: inherit_all(),
            vars: BTreeMap::new(),
        }
    }
}

fn inherit_all() -> EnvInherit {
    EnvInherit::All(true)
}

/// What a guest inherits of the node's environment.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum EnvInherit {
    /// All (`true`) or nothing (`false`).
    All(bool),
    /// These variables.
    Names(Vec<String>),
}

/// A guest's `options.stdin`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum GuestStdin {
    /// `"close"`: stdin is closed at start (the process reads end of file).
    Keyword(StdinKeyword),
    /// `{"type": "json", "value": ..., "close": true}`: the value is written to stdin as JSON,
    /// then stdin is closed unless `close` is false.
    Value(StdinValue),
}

/// The one keyword form of `options.stdin`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StdinKeyword {
    /// Closed at start.
    Close,
}

/// A value written to a guest's stdin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdinValue {
    /// The encoding; only `json`.
    #[serde(rename = "type")]
    pub kind: StdinEncoding,
    /// What is written.
    pub value: serde_json::Value,
    /// Whether stdin is closed after the value (default true).
    #[serde(default = "yes")]
    pub close: bool,
}

fn yes() -> bool {
    true
}

/// How a stdin value is encoded.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StdinEncoding {
    /// One JSON document.
    Json,
}

/// Where a guest's stdout or stderr goes.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum GuestOutput {
    /// Each line into the node's log, under the worker's id.
    #[default]
    Log,
    /// Discarded.
    Drop,
    /// Discarded too. (Crossbar closes its end of the pipe, so that a guest writing to it dies of
    /// SIGPIPE; Switchboard gives the process `/dev/null` instead.)
    Close,
}

/// A guest's `options.watch`: restart it when its files change.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestWatch {
    /// Directories watched, with everything below them; relative to the node directory.
    pub directories: Vec<String>,
    /// What a change does: `restart` (the only action).
    #[serde(default)]
    pub action: Option<String>,
    /// Seconds from the first change to the restart (more changes in between restart it once;
    /// default 1, as in Crossbar).
    #[serde(default)]
    pub timeout: Option<f64>,
}

/// The default of `options.watch.timeout`, in seconds.
pub const DEFAULT_GUEST_WATCH_DELAY_SECONDS: f64 = 1.0;

/// When a guest is started again after it exited.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Never (what Crossbar does with every guest).
    #[serde(rename = "restart-never")]
    Never,
    /// When it exited with a non-zero status or was killed by a signal (the default).
    #[default]
    #[serde(rename = "restart-on-failed", alias = "restart-failed")]
    OnFailed,
    /// Whenever it exited.
    #[serde(rename = "restart-always")]
    Always,
}

impl RestartPolicy {
    /// The config value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Never => "restart-never",
            Self::OnFailed => "restart-on-failed",
            Self::Always => "restart-always",
        }
    }
}

/// Exponential backoff between restarts, in seconds.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestartBackoff {
    /// The first delay.
    pub initial: f64,
    /// The longest delay.
    pub max: f64,
    /// Each delay is the previous one times this.
    pub factor: f64,
    /// Each delay is shortened or lengthened at random by up to this fraction.
    pub jitter: f64,
    /// A process that stayed up this long starts the delays over.
    pub reset_after: f64,
}

impl Default for RestartBackoff {
    fn default() -> Self {
        Self {
            initial: 0.5,
            max: 30.0,
            factor: 2.0,
            jitter: 0.2,
            reset_after: 60.0,
        }
    }
}

/// How many restarts within how many seconds make a guest `failed` (no more restarts).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaxRestarts {
    /// Restarts allowed within `window`.
    pub count: u32,
    /// The window, in seconds.
    pub window: f64,
}

impl Default for MaxRestarts {
    fn default() -> Self {
        Self {
            count: 10,
            window: 300.0,
        }
    }
}

/// The default of `options.stop_timeout`, in seconds.
pub const DEFAULT_GUEST_STOP_TIMEOUT_SECONDS: f64 = 10.0;

/// The signals `options.stop_signal` may name.
pub const GUEST_STOP_SIGNALS: &[&str] = &["TERM", "INT", "HUP", "QUIT", "USR1", "USR2", "KILL"];
