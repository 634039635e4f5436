//! Guest workers at run time: each configured program is started in config order, in its own
//! process group, with its output in the node's log, restarted by its restart policy or when its
//! watched files change, and stopped (stop signal, then SIGKILL to the whole group) when the node
//! shuts down; a watchdog in the group ends it should the node be killed outright.
//!
//! One supervising task per guest owns its process. Preparing ([`PreparedGuest::prepare`])
//! resolves the executable and the working directory, so `switchboard check` reports a program
//! that cannot run before anything starts. A guest with `options.ready` holds back the ones after
//! it until it is ready (it printed a text, or a procedure got registered) or its timeout passed.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{
    ConfigError, DEFAULT_GUEST_READY_TIMEOUT_SECONDS, DEFAULT_GUEST_STOP_TIMEOUT_SECONDS,
    DEFAULT_GUEST_WATCH_DELAY_SECONDS, EnvInherit, GUEST_STOP_SIGNALS, GuestOutput, GuestStdin,
    GuestWorkerConfig, MaxRestarts, RestartBackoff, RestartPolicy, StdinKeyword,
};
use crate::ops::NodeStatus;
use crate::realm::RealmRegistry;

/// The longest output line logged as one; longer ones are logged in pieces of this size.
const MAX_LOG_LINE: u64 = 16 * 1024;

/// A guest worker ready to start: everything resolved against the node directory.
#[derive(Debug, Clone)]
pub struct PreparedGuest {
    /// The worker id.
    pub id: String,
    /// The resolved executable.
    pub program: PathBuf,
    args: Vec<String>,
    workdir: PathBuf,
    /// `None`: the node's whole environment; `Some(names)`: only these of it.
    inherit: Option<Vec<String>>,
    vars: Vec<(String, String)>,
    stdin: StdinPlan,
    stdout: GuestOutput,
    stderr: GuestOutput,
    /// The restart policy.
    pub restart: RestartPolicy,
    backoff: RestartBackoff,
    max_restarts: MaxRestarts,
    stop_signal: Signal,
    stop_timeout: Duration,
    watch: Option<WatchPlan>,
    /// When the guest counts as ready for the next worker to start.
    ready: Option<ReadyPlan>,
    /// Told when a line matches a `log` readiness rule (set when the guest starts).
    ready_signal: Option<Arc<watch::Sender<bool>>>,
    /// A process of a hosted component rather than a configured guest worker.
    pub(super) hosted_component: bool,
    /// What the management API sees of it and asks of it (set when the guest starts).
    handle: Option<Arc<GuestHandle>>,
}

/// How long removing a guest waits for its process to exit after its stop timeout (SIGKILL was
/// sent then) at most.
const REMOVE_WAIT: Duration = Duration::from_secs(10);

/// How many lines of its output the node keeps per guest for the management API's log tail.
pub const LOG_TAIL_LINES: usize = 500;

/// What the management API asks of a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestCommand {
    /// Stop it (if it runs) and start it again.
    Restart,
    /// Stop it, and keep it stopped until started.
    Stop,
    /// Start it, if it is not running.
    Start,
}

/// A guest as the management API sees it: its state, and a way to ask its supervisor to act.
#[derive(Debug)]
pub struct GuestHandle {
    /// The worker id.
    pub id: String,
    /// A configured guest worker (`guest`), or the process of hosted components (`component`).
    pub kind: &'static str,
    view: std::sync::Mutex<GuestView>,
    commands: mpsc::UnboundedSender<GuestCommand>,
    /// Cancelled when the guest is removed, or the node stops.
    stop: CancellationToken,
    /// Taken by the supervising task.
    receiver: std::sync::Mutex<Option<mpsc::UnboundedReceiver<GuestCommand>>>,
    /// How long its stop signal has before SIGKILL.
    stop_timeout: Duration,
}

/// A guest's state, as last seen by its supervisor.
#[derive(Debug, Clone, Default)]
pub struct GuestView {
    /// `starting`, `running`, `restarting` (waiting to be started again), `stopped` (by the
    /// API), `exited` (and not restarted by its policy), `failed` (could not start, or gave up).
    pub state: &'static str,
    /// The process id while it runs.
    pub pid: Option<u32>,
    /// How often it was started again after its first start.
    pub restarts: u64,
    /// How its last process ended (`exit code 1`, `killed by SIGKILL`).
    pub last_exit: Option<String>,
    /// The exit code of its last process, where it exited with one.
    pub exit_code: Option<i32>,
    /// Its latest output lines, oldest first (at most [`LOG_TAIL_LINES`]).
    pub log: VecDeque<String>,
}

impl GuestHandle {
    fn new(id: &str, kind: &'static str, stop: CancellationToken, stop_timeout: Duration) -> Self {
        let (commands, receiver) = mpsc::unbounded_channel();
        Self {
            id: id.to_owned(),
            kind,
            stop,
            stop_timeout,
            view: std::sync::Mutex::new(GuestView {
                state: "starting",
                ..GuestView::default()
            }),
            commands,
            receiver: std::sync::Mutex::new(Some(receiver)),
        }
    }

    /// Its state now.
    pub fn view(&self) -> GuestView {
        crate::locks::lock(&self.view).clone()
    }

    /// Asks its supervisor to act; `false` once the node stopped supervising it.
    pub fn command(&self, command: GuestCommand) -> bool {
        self.commands.send(command).is_ok()
    }

    fn update(&self, change: impl FnOnce(&mut GuestView)) {
        change(&mut crate::locks::lock(&self.view));
    }

    fn log(&self, stream: &str, line: &str) {
        let mut view = crate::locks::lock(&self.view);
        if view.log.len() >= LOG_TAIL_LINES {
            view.log.pop_front();
        }
        view.log.push_back(format!("[{stream}] {line}"));
    }
}

/// A guest's `options.ready`.
#[derive(Debug, Clone)]
struct ReadyPlan {
    rule: ReadyRule,
    timeout: Duration,
}

/// What makes a guest ready.
#[derive(Debug, Clone)]
enum ReadyRule {
    /// A line of its output contains this text.
    Log(String),
    /// This procedure is registered on this realm (the node's only realm when `None`).
    Procedure {
        procedure: String,
        realm: Option<String>,
    },
}

impl ReadyRule {
    fn describe(&self) -> String {
        match self {
            ReadyRule::Log(text) => format!("it printed {text:?}"),
            ReadyRule::Procedure { procedure, .. } => format!("{procedure} is registered"),
        }
    }
}

/// Restarting a guest when its files change (`options.watch`).
#[derive(Debug, Clone)]
struct WatchPlan {
    directories: Vec<PathBuf>,
    /// From the first change to the restart.
    delay: Duration,
}

/// What a guest's stdin gets.
#[derive(Debug, Clone)]
enum StdinPlan {
    /// A pipe the node keeps open and never writes (Crossbar's default).
    Open,
    /// End of file at once.
    Closed,
    /// These bytes, then end of file unless `close` is false.
    Write { bytes: Vec<u8>, close: bool },
}

impl PreparedGuest {
    /// Resolves the guest worker `id` against the node directory `base`: the
    /// working directory must exist, the executable must be an executable file (looked up in the
    /// working directory, then on `PATH`). Problems carry their path inside the worker.
    pub fn prepare(
        id: String,
        config: &GuestWorkerConfig,
        base: &Path,
    ) -> Result<Self, Vec<ConfigError>> {
        let options = &config.options;
        let mut problems = Vec::new();
        let workdir = match &options.workdir {
            Some(dir) => base.join(dir),
            None => base.to_path_buf(),
        };
        if !workdir.is_dir() {
            problems.push(ConfigError::at(
                "options.workdir",
                format!("{} is not a directory", workdir.display()),
            ));
        }
        let path_var = options
            .env
            .vars
            .get("PATH")
            .cloned()
            .or_else(|| std::env::var("PATH").ok())
            .unwrap_or_default();
        let program = match resolve_executable(&config.executable, &workdir, &path_var) {
            Ok(program) => Some(program),
            Err(message) => {
                problems.push(ConfigError::at("executable", message));
                None
            }
        };
        let mut watch = None;
        if let Some(w) = &options.watch {
            let mut directories = Vec::new();
            for (i, dir) in w.directories.iter().enumerate() {
                let path = base.join(dir);
                if path.is_dir() {
                    directories.push(path);
                } else {
                    problems.push(ConfigError::at(
                        format!("options.watch.directories[{i}]"),
                        format!("{} is not a directory", path.display()),
                    ));
                }
            }
            watch = Some(WatchPlan {
                directories,
                delay: Duration::from_secs_f64(
                    w.timeout
                        .filter(|t| t.is_finite() && *t >= 0.0)
                        .unwrap_or(DEFAULT_GUEST_WATCH_DELAY_SECONDS),
                ),
            });
        }
        let stdin = match &options.stdin {
            None => StdinPlan::Open,
            Some(GuestStdin::Keyword(StdinKeyword::Close)) => StdinPlan::Closed,
            Some(GuestStdin::Value(v)) => StdinPlan::Write {
                bytes: serde_json::to_vec(&v.value).unwrap_or_default(),
                close: v.close,
            },
        };
        let stop_signal = stop_signal(options.stop_signal.as_deref().unwrap_or("TERM"));
        let (Some(program), Some(stop_signal), true) = (program, stop_signal, problems.is_empty())
        else {
            // The stop signal and the numbers are checked by validation, with their paths.
            return Err(problems);
        };
        let inherit = match &options.env.inherit {
            EnvInherit::All(true) => None,
            EnvInherit::All(false) => Some(Vec::new()),
            EnvInherit::Names(names) => Some(names.clone()),
        };
        let mut vars: Vec<(String, String)> = options
            .env
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // Python buffers its output when it goes to a pipe, which holds a guest's log lines back
        // (Crossbar sets this too, unless the config does).
        if !options.env.vars.contains_key("PYTHONUNBUFFERED") {
            vars.push(("PYTHONUNBUFFERED".into(), "1".into()));
        }
        vars.push(("SWITCHBOARD_WORKER_ID".into(), id.clone()));
        Ok(Self {
            id,
            program,
            args: config.arguments.clone(),
            workdir,
            inherit,
            vars,
            stdin,
            stdout: options.stdout,
            stderr: options.stderr,
            restart: options.restart,
            backoff: options.restart_backoff,
            max_restarts: options.max_restarts,
            stop_signal,
            stop_timeout: Duration::from_secs_f64(
                options
                    .stop_timeout
                    .unwrap_or(DEFAULT_GUEST_STOP_TIMEOUT_SECONDS),
            ),
            watch,
            ready: options.ready.as_ref().and_then(|r| {
                let rule = match (&r.log, &r.procedure) {
                    (Some(text), None) => ReadyRule::Log(text.clone()),
                    (None, Some(procedure)) => ReadyRule::Procedure {
                        procedure: procedure.clone(),
                        realm: r.realm.clone(),
                    },
                    // Validation refused anything else.
                    _ => return None,
                };
                Some(ReadyPlan {
                    rule,
                    timeout: Duration::from_secs_f64(
                        r.timeout.unwrap_or(DEFAULT_GUEST_READY_TIMEOUT_SECONDS),
                    ),
                })
            }),
            ready_signal: None,
            hosted_component: false,
            handle: None,
        })
    }

    /// A process the node runs for one of its own purposes (a hosted component): `program` with
    /// `args` in `workdir`, the node's environment plus `vars`, stdin closed, output logged,
    /// restarted when it fails with the default backoff and limit, stopped with SIGTERM.
    pub(super) fn supervised(
        id: String,
        program: PathBuf,
        args: Vec<String>,
        workdir: PathBuf,
        vars: Vec<(String, String)>,
    ) -> Self {
        let mut vars = vars;
        vars.push(("PYTHONUNBUFFERED".into(), "1".into()));
        vars.push(("SWITCHBOARD_WORKER_ID".into(), id.clone()));
        Self {
            id,
            program,
            args,
            workdir,
            inherit: None,
            vars,
            stdin: StdinPlan::Closed,
            stdout: GuestOutput::Log,
            stderr: GuestOutput::Log,
            restart: RestartPolicy::OnFailed,
            backoff: RestartBackoff::default(),
            max_restarts: MaxRestarts::default(),
            stop_signal: Signal::SIGTERM,
            stop_timeout: Duration::from_secs_f64(DEFAULT_GUEST_STOP_TIMEOUT_SECONDS),
            watch: None,
            ready: None,
            ready_signal: None,
            hosted_component: true,
            handle: None,
        }
    }

    /// Points a hosted component's process at the node's component directory `to` in place of
    /// `from`, the one its preparation made (a reload prepares a directory of its own, but the
    /// running node's is the one that exists).
    pub(super) fn relocate(&mut self, from: &std::path::Path, to: &std::path::Path) {
        let (from, to) = (from.display().to_string(), to.display().to_string());
        for text in self
            .args
            .iter_mut()
            .chain(self.vars.iter_mut().map(|(_, value)| value))
        {
            if text.contains(&from) {
                *text = text.replace(&from, &to);
            }
        }
    }

    /// Starts the process once, in a process group of its own.
    fn spawn(&self) -> std::io::Result<Running> {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .current_dir(&self.workdir)
            .process_group(0)
            // Should the supervising task be dropped without stopping it (a panic), the process
            // does not outlive its handle.
            .kill_on_drop(true)
            .stdin(match self.stdin {
                StdinPlan::Closed => Stdio::null(),
                StdinPlan::Open | StdinPlan::Write { .. } => Stdio::piped(),
            })
            .stdout(output(self.stdout))
            .stderr(output(self.stderr));
        if let Some(names) = &self.inherit {
            command.env_clear();
            for name in names {
                if let Some(value) = std::env::var_os(name) {
                    command.env(name, value);
                }
            }
        }
        command.envs(self.vars.iter().map(|(k, v)| (k, v)));
        let mut child = command.spawn()?;
        let pid = child.id().unwrap_or_default();
        if let Err(e) = spawn_watchdog(pid) {
            tracing::warn!(worker = %self.id, pid, "no watchdog for this guest (it would outlive a node killed with SIGKILL): {e}");
        }
        let span = tracing::info_span!("guest", worker = %self.id, pid);
        let ready = match (&self.ready, &self.ready_signal) {
            (
                Some(ReadyPlan {
                    rule: ReadyRule::Log(text),
                    ..
                }),
                Some(signal),
            ) => Some((text.clone(), signal.clone())),
            _ => None,
        };
        if let Some(out) = child.stdout.take() {
            let handle = self.handle.clone();
            tokio::spawn(log_lines(
                out,
                span.clone(),
                "stdout",
                ready.clone(),
                handle,
            ));
        }
        if let Some(err) = child.stderr.take() {
            let handle = self.handle.clone();
            tokio::spawn(log_lines(err, span.clone(), "stderr", ready, handle));
        }
        let stdin = child.stdin.take();
        let stdin = match (&self.stdin, stdin) {
            (StdinPlan::Write { bytes, close }, Some(mut pipe)) => {
                // A process that never reads its stdin must not block the supervisor: the value
                // is written by a task of its own, which keeps the pipe open afterwards if asked.
                let (bytes, close) = (bytes.clone(), *close);
                let writer = tokio::spawn(async move {
                    let _ = pipe.write_all(&bytes).await;
                    let _ = pipe.flush().await;
                    (!close).then_some(pipe)
                });
                StdinHolder::Writing(writer)
            }
            (_, pipe) => StdinHolder::Pipe(pipe),
        };
        Ok(Running {
            child,
            pid,
            span,
            _stdin: stdin,
            started: Instant::now(),
        })
    }

    /// Sends the stop signal to the process group, and SIGKILL once the stop timeout has passed.
    async fn stop(&self, running: &mut Running) -> Option<ExitStatus> {
        signal_group(running.pid, self.stop_signal);
        let status = match tokio::time::timeout(self.stop_timeout, running.child.wait()).await {
            Ok(status) => status.ok(),
            Err(_) => {
                tracing::warn!(
                    parent: &running.span,
                    "did not exit within {:?} of SIG{}: killing its process group",
                    self.stop_timeout,
                    signal_name(self.stop_signal)
                );
                signal_group(running.pid, Signal::SIGKILL);
                running.child.wait().await.ok()
            }
        };
        // What the process started and left in its group goes with it.
        signal_group(running.pid, Signal::SIGKILL);
        status
    }
}

/// A started process.
struct Running {
    child: Child,
    pid: u32,
    span: tracing::Span,
    /// Held for as long as the process runs: dropping an open pipe would close the guest's stdin.
    _stdin: StdinHolder,
    started: Instant,
}

/// The node's end of a guest's stdin.
enum StdinHolder {
    Pipe(#[allow(dead_code)] Option<ChildStdin>),
    Writing(#[allow(dead_code)] JoinHandle<Option<ChildStdin>>),
}

/// The guest workers of a running node: cheap to clone, shared with the management API and the
/// config reload, which add and remove guests while the node runs.
#[derive(Clone)]
pub struct GuestSupervisor {
    inner: Arc<Guests>,
}

/// A guest's id and the task supervising it.
type Supervising = (String, JoinHandle<()>);

struct Guests {
    /// The supervised guests, in start order.
    list: std::sync::Mutex<Vec<Arc<GuestHandle>>>,
    /// Cancelled at shutdown: no further guest starts, and every started one stops.
    stop: CancellationToken,
    /// Starts the configured guests in order; yields each one's id and supervising task.
    starter: std::sync::Mutex<Option<JoinHandle<Vec<Supervising>>>>,
    /// The supervising tasks of guests a reload added.
    added: std::sync::Mutex<Vec<Supervising>>,
    realms: Arc<RealmRegistry>,
    status: Arc<NodeStatus>,
}

impl GuestSupervisor {
    /// Starts every guest in config order (each process is started before the next one, and a
    /// guest with `options.ready` is waited for) and supervises them. `realms` answers whether
    /// a `procedure` readiness rule holds.
    ///
    /// Until a guest with `options.ready` is ready, `status` lists it as not ready (the
    /// `health` web path's `ready` answers 503).
    pub fn start(
        guests: Vec<PreparedGuest>,
        realms: Arc<RealmRegistry>,
        status: Arc<NodeStatus>,
    ) -> Self {
        let stop = CancellationToken::new();
        let mut guests = guests;
        let handles = guests.iter_mut().map(|g| attach_handle(g, &stop)).collect();
        for guest in &guests {
            if let Some(plan) = &guest.ready {
                status.wait_for(
                    readiness_name(&guest.id),
                    format!("waiting until {}", plan.rule.describe()),
                );
            }
        }
        let starter = tokio::spawn(start_in_order(
            guests,
            realms.clone(),
            status.clone(),
            stop.clone(),
        ));
        Self {
            inner: Arc::new(Guests {
                list: std::sync::Mutex::new(handles),
                stop,
                starter: std::sync::Mutex::new(Some(starter)),
                added: std::sync::Mutex::new(Vec::new()),
                realms,
                status,
            }),
        }
    }

    /// What the management API sees of each guest, in start order.
    pub fn handles(&self) -> Vec<Arc<GuestHandle>> {
        crate::locks::lock(&self.inner.list).clone()
    }

    /// The ids of the guest workers, in start order.
    pub fn ids(&self) -> Vec<String> {
        self.handles().iter().map(|h| h.id.clone()).collect()
    }

    /// Starts and supervises a guest a config reload added (its readiness rule, if any, is
    /// waited for in the background, holding up nothing else).
    pub fn add(&self, mut guest: PreparedGuest) {
        let inner = &self.inner;
        let handle = attach_handle(&mut guest, &inner.stop);
        crate::locks::lock(&inner.list).push(handle.clone());
        let ready = guest.ready.clone().map(|plan| {
            let (signal, ready) = watch::channel(false);
            guest.ready_signal = Some(Arc::new(signal));
            inner.status.wait_for(
                readiness_name(&guest.id),
                format!("waiting until {}", plan.rule.describe()),
            );
            (plan, ready)
        });
        tracing::info!(worker = %guest.id, program = %guest.program.display(), "starting guest worker");
        let first = guest.spawn();
        let id = guest.id.clone();
        let task = tokio::spawn(supervise(guest, first, handle.stop.clone()));
        crate::locks::lock(&inner.added).push((id.clone(), task));
        if let Some((plan, ready)) = ready {
            let (realms, status, stop) = (
                inner.realms.clone(),
                inner.status.clone(),
                handle.stop.clone(),
            );
            tokio::spawn(async move {
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = wait_ready(&id, &plan, ready, &realms, &status) => {}
                }
            });
        }
    }

    /// Stops the guest `id` (a config reload removed it, or changed it: it is started again
    /// next), waits until its process has exited (its stop signal, then SIGKILL after its stop
    /// timeout), and forgets it; `false` when there is none. Waiting keeps the old process and
    /// the new one of a changed guest from running together (both binding one port).
    pub async fn remove(&self, id: &str) -> bool {
        let removed = {
            let mut list = crate::locks::lock(&self.inner.list);
            let index = list.iter().position(|h| h.id == id);
            index.map(|i| list.remove(i))
        };
        let Some(handle) = removed else {
            return false;
        };
        handle.stop.cancel();
        self.inner.status.done(&readiness_name(id));
        // The supervisor clears the pid once the process has exited; a bound on the wait keeps a
        // process the kernel cannot reap from holding up the reload for ever.
        let deadline = tokio::time::Instant::now() + handle.stop_timeout + REMOVE_WAIT;
        while handle.view().pid.is_some() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Stops every guest (its stop signal, then SIGKILL to its process group after its stop
    /// timeout) and waits until all have exited.
    pub async fn stop(&self) {
        let inner = &self.inner;
        inner.stop.cancel();
        let starter = crate::locks::lock(&inner.starter).take();
        let mut tasks = match starter {
            Some(starter) => starter.await.unwrap_or_default(),
            None => Vec::new(),
        };
        tasks.append(&mut crate::locks::lock(&inner.added));
        for (id, task) in tasks {
            if let Err(e) = task.await {
                tracing::error!(worker = %id, "guest supervisor ended abnormally: {e}");
            }
        }
    }
}

/// Gives `guest` the handle the management API sees it through, with its own stop token (a
/// child of the supervisor's, so a reload can stop it alone).
fn attach_handle(guest: &mut PreparedGuest, stop: &CancellationToken) -> Arc<GuestHandle> {
    let kind = if guest.hosted_component {
        "component"
    } else {
        "guest"
    };
    let handle = Arc::new(GuestHandle::new(
        &guest.id,
        kind,
        stop.child_token(),
        guest.stop_timeout,
    ));
    guest.handle = Some(handle.clone());
    handle
}

/// Starts `guests` one after the other, waiting for each one's readiness where it has a rule.
async fn start_in_order(
    guests: Vec<PreparedGuest>,
    realms: Arc<RealmRegistry>,
    status: Arc<NodeStatus>,
    stop: CancellationToken,
) -> Vec<(String, JoinHandle<()>)> {
    let mut started = Vec::new();
    for mut guest in guests {
        if stop.is_cancelled() {
            break;
        }
        let ready = guest.ready.clone().map(|plan| {
            let (signal, ready) = watch::channel(false);
            guest.ready_signal = Some(Arc::new(signal));
            (plan, ready)
        });
        tracing::info!(worker = %guest.id, program = %guest.program.display(), "starting guest worker");
        let first = guest.spawn();
        let id = guest.id.clone();
        let token = guest
            .handle
            .as_ref()
            .map_or_else(|| stop.child_token(), |h| h.stop.clone());
        started.push((id.clone(), tokio::spawn(supervise(guest, first, token))));
        if let Some((plan, ready)) = ready {
            tokio::select! {
                () = stop.cancelled() => break,
                () = wait_ready(&id, &plan, ready, &realms, &status) => {}
            }
        }
    }
    started
}

/// Waits until the guest `id` is ready by `plan`, or its timeout passes.
async fn wait_ready(
    id: &str,
    plan: &ReadyPlan,
    mut ready: watch::Receiver<bool>,
    realms: &RealmRegistry,
    status: &NodeStatus,
) {
    let became_ready = async {
        match &plan.rule {
            ReadyRule::Log(_) => {
                let _ = ready.wait_for(|ready| *ready).await;
            }
            ReadyRule::Procedure { procedure, realm } => {
                while !is_registered(realms, realm.as_deref(), procedure).await {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    };
    let what = plan.rule.describe();
    match tokio::time::timeout(plan.timeout, became_ready).await {
        Ok(()) => {
            tracing::info!(worker = %id, "guest worker is ready ({what})");
            status.done(&readiness_name(id));
        }
        Err(_) => {
            tracing::warn!(
                worker = %id,
                "guest worker is not ready after {:?} (options.ready: waiting until {what}): starting the next worker anyway",
                plan.timeout
            );
            status.wait_for(
                readiness_name(id),
                format!(
                    "not ready after {:?}: {what} has not happened",
                    plan.timeout
                ),
            );
        }
    }
}

/// How the node's readiness names a guest worker.
fn readiness_name(id: &str) -> String {
    format!("worker {id}")
}

/// Whether `procedure` is registered on `realm` (the node's only realm when `None`), asked
/// through the meta API like any session would.
async fn is_registered(realms: &RealmRegistry, realm: Option<&str>, procedure: &str) -> bool {
    let realm = match realm {
        Some(name) => realms.get(name),
        // The node's only realm: its control socket's internal realm does not count.
        None => realms
            .all()
            .into_iter()
            .find(|r| r.name() != crate::realm::CONTROL_REALM),
    };
    let Some(realm) = realm else {
        return false;
    };
    matches!(
        realm
            .router_call(
                "wamp.registration.lookup",
                vec![procedure.into()],
                Duration::from_secs(2),
            )
            .await,
        Ok(id) if !matches!(id, switchboard_proto::Value::Null)
    )
}

/// Runs one guest until it is stopped, restarting it by its policy, when its files change, and
/// when the management API asks (restart, stop, start).
async fn supervise(
    guest: PreparedGuest,
    mut spawned: std::io::Result<Running>,
    stop: CancellationToken,
) {
    // Held for as long as the guest is supervised: dropping the watcher ends the watching.
    let (_watcher, mut changes) = match &guest.watch {
        Some(plan) => match FileWatch::start(plan) {
            Ok((watcher, changes)) => (Some(watcher), Some(changes)),
            Err(e) => {
                tracing::error!(worker = %guest.id, "cannot watch options.watch.directories: {e}");
                (None, None)
            }
        },
        None => (None, None),
    };
    let handle = guest.handle.clone();
    let mut commands = handle
        .as_ref()
        .and_then(|h| crate::locks::lock(&h.receiver).take());
    let set = |change: &dyn Fn(&mut GuestView)| {
        if let Some(h) = &handle {
            h.update(change);
        }
    };
    let ended = |status: Option<ExitStatus>| {
        let text = status.map(describe);
        let code = status.and_then(|s| s.code());
        // Until the supervisor decides what comes next: the caller sets the state after.
        move |v: &mut GuestView| {
            v.state = "restarting";
            v.pid = None;
            v.last_exit.clone_from(&text);
            v.exit_code = code;
        }
    };
    let delay_after_change = guest.watch.as_ref().map_or(Duration::ZERO, |w| w.delay);
    let mut restarts: VecDeque<Instant> = VecDeque::new();
    let mut delay = guest.backoff.initial;
    let mut first = true;
    'supervise: loop {
        if !first {
            set(&|v| v.restarts += 1);
        }
        first = false;
        let (failed, uptime) = match spawned {
            Ok(mut running) => {
                tracing::info!(parent: &running.span, "guest worker started");
                let pid = running.pid;
                set(&|v| {
                    v.state = "running";
                    v.pid = Some(pid);
                });
                let status = loop {
                    tokio::select! {
                        status = running.child.wait() => break status,
                        () = stop.cancelled() => {
                            let status = guest.stop(&mut running).await;
                            tracing::info!(
                                parent: &running.span,
                                "guest worker stopped ({})",
                                status.map_or_else(|| "status unknown".into(), describe)
                            );
                            set(&ended(status));
                            set(&|v| v.state = "stopped");
                            return;
                        }
                        () = next_change(&mut changes) => {
                            tracing::info!(
                                parent: &running.span,
                                "files changed under options.watch.directories: restarting the guest worker in {delay_after_change:?}"
                            );
                            if !settle(&mut changes, delay_after_change, &stop).await {
                                guest.stop(&mut running).await;
                                return;
                            }
                            // The old process is gone before the new one starts.
                            let status = guest.stop(&mut running).await;
                            tracing::info!(
                                parent: &running.span,
                                "guest worker stopped for the restart ({})",
                                status.map_or_else(|| "status unknown".into(), describe)
                            );
                            set(&ended(status));
                            // New code: the restart history starts over.
                            restarts.clear();
                            delay = guest.backoff.initial;
                            spawned = guest.spawn();
                            continue 'supervise;
                        }
                        command = next_command(&mut commands) => {
                            if command == GuestCommand::Start {
                                continue; // it runs already
                            }
                            let what = if command == GuestCommand::Stop { "stop" } else { "restart" };
                            tracing::info!(parent: &running.span, "{what} asked for through the management API");
                            let status = guest.stop(&mut running).await;
                            set(&ended(status));
                            if command == GuestCommand::Stop {
                                set(&|v| v.state = "stopped");
                                if !wait_for_start(&mut commands, &stop).await {
                                    return;
                                }
                            }
                            restarts.clear();
                            delay = guest.backoff.initial;
                            spawned = guest.spawn();
                            continue 'supervise;
                        }
                    }
                };
                // Children it left in its group do not outlive it.
                signal_group(running.pid, Signal::SIGKILL);
                set(&ended(status.as_ref().ok().copied()));
                let failed = match &status {
                    Ok(status) if status.success() => {
                        tracing::info!(parent: &running.span, "guest worker exited with success");
                        false
                    }
                    Ok(status) => {
                        tracing::warn!(parent: &running.span, "guest worker failed: {}", describe(*status));
                        true
                    }
                    Err(e) => {
                        tracing::warn!(parent: &running.span, "guest worker lost: {e}");
                        true
                    }
                };
                (failed, running.started.elapsed())
            }
            Err(e) => {
                tracing::error!(worker = %guest.id, program = %guest.program.display(), "guest worker could not start: {e}");
                let text = format!("could not start: {e}");
                set(&|v| {
                    v.pid = None;
                    v.last_exit = Some(text.clone());
                    v.exit_code = None;
                });
                (true, Duration::ZERO)
            }
        };
        let restart = match guest.restart {
            RestartPolicy::Never => false,
            RestartPolicy::OnFailed => failed,
            RestartPolicy::Always => true,
        };
        if uptime.as_secs_f64() >= guest.backoff.reset_after {
            delay = guest.backoff.initial;
        }
        let now = Instant::now();
        let window = Duration::from_secs_f64(guest.max_restarts.window);
        while restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            restarts.pop_front();
        }
        let gave_up = restart && restarts.len() >= guest.max_restarts.count as usize;
        if !restart || gave_up {
            if gave_up {
                tracing::error!(
                    worker = %guest.id,
                    "guest worker failed: restarted {} times within {} s (options.max_restarts); not restarting it again",
                    restarts.len(),
                    guest.max_restarts.window
                );
            } else {
                tracing::info!(worker = %guest.id, "not restarted (options.restart is {})", guest.restart.as_str());
            }
            set(&|v| v.state = if failed { "failed" } else { "exited" });
            // A watched guest comes back with the next change of its files; any guest when the
            // management API starts it.
            if changes.is_some() {
                tracing::info!(worker = %guest.id, "waiting for a change under options.watch.directories");
            }
            loop {
                tokio::select! {
                    () = next_change(&mut changes) => {
                        if !settle(&mut changes, delay_after_change, &stop).await {
                            return;
                        }
                        tracing::info!(worker = %guest.id, "files changed under options.watch.directories: starting the guest worker");
                        break;
                    }
                    command = next_command(&mut commands) => {
                        if command != GuestCommand::Stop {
                            tracing::info!(worker = %guest.id, "start asked for through the management API");
                            break;
                        }
                    }
                    () = stop.cancelled() => return,
                }
            }
            restarts.clear();
            delay = guest.backoff.initial;
            spawned = guest.spawn();
            continue;
        }
        restarts.push_back(now);
        let wait = jittered(delay, guest.backoff.jitter);
        delay = (delay * guest.backoff.factor).min(guest.backoff.max);
        tracing::info!(worker = %guest.id, "restarting guest worker in {wait:.2?}");
        set(&|v| v.state = "restarting");
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return,
            () = next_change(&mut changes) => {
                if !settle(&mut changes, delay_after_change, &stop).await {
                    return;
                }
            }
            command = next_command(&mut commands) => {
                if command == GuestCommand::Stop {
                    set(&|v| v.state = "stopped");
                    if !wait_for_start(&mut commands, &stop).await {
                        return;
                    }
                }
                restarts.clear();
                delay = guest.backoff.initial;
            }
        }
        spawned = guest.spawn();
    }
}

/// The management API's next command for a guest; never, for a guest it cannot reach.
async fn next_command(
    commands: &mut Option<mpsc::UnboundedReceiver<GuestCommand>>,
) -> GuestCommand {
    match commands {
        Some(rx) => match rx.recv().await {
            Some(command) => command,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// Waits, for a guest stopped through the management API, until it is asked to start (`true`)
/// or the node stops (`false`).
async fn wait_for_start(
    commands: &mut Option<mpsc::UnboundedReceiver<GuestCommand>>,
    stop: &CancellationToken,
) -> bool {
    loop {
        tokio::select! {
            command = next_command(commands) => {
                if command != GuestCommand::Stop {
                    return true;
                }
            }
            () = stop.cancelled() => return false,
        }
    }
}

/// Watching a guest's directories: each relevant change is one message on the channel.
struct FileWatch;

impl FileWatch {
    fn start(
        plan: &WatchPlan,
    ) -> notify::Result<(notify::RecommendedWatcher, mpsc::UnboundedReceiver<()>)> {
        use notify::Watcher as _;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event
                    && is_relevant(&event)
                {
                    let _ = tx.send(());
                }
            })?;
        for dir in &plan.directories {
            watcher.watch(dir, notify::RecursiveMode::Recursive)?;
        }
        Ok((watcher, rx))
    }
}

/// A change that should restart a guest: files created, written, renamed or removed, except an
/// editor's swap, backup and lock files.
fn is_relevant(event: &notify::Event) -> bool {
    use notify::EventKind;
    let kind = matches!(
        event.kind,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
    );
    let editor_file = |path: &Path| {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        name.ends_with('~')
            || name.ends_with(".swp")
            || name.ends_with(".swx")
            || name.starts_with(".#")
            || name == "4913"
    };
    kind && !event.paths.iter().all(|p| editor_file(p))
}

/// The next change, or never without a watch.
async fn next_change(changes: &mut Option<mpsc::UnboundedReceiver<()>>) {
    match changes {
        Some(rx) => {
            if rx.recv().await.is_none() {
                // The watcher is gone: no more changes.
                *changes = None;
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// Waits `delay` after a change, taking in the changes that come meanwhile (an editor or a build
/// writes several files: one restart). `false` when the node is stopping.
async fn settle(
    changes: &mut Option<mpsc::UnboundedReceiver<()>>,
    delay: Duration,
    stop: &CancellationToken,
) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        () = stop.cancelled() => return false,
    }
    if let Some(rx) = changes {
        while rx.try_recv().is_ok() {}
    }
    true
}

/// What a guest's watchdog runs: while the node (`$1`) lives, nothing; once it is gone, SIGKILL to
/// the whole process group, the watchdog included.
const WATCHDOG_SCRIPT: &str = r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done; kill -KILL 0"#;

/// Starts a watchdog in the process group of the guest `pid`: a shell that polls the node's pid
/// every second and kills the group once the node is gone, so that a node killed with SIGKILL
/// (which runs no clean-up) leaves no guest behind. The kernel's parent-death signal would do
/// this without a process, but setting it needs code between fork and exec, which only `unsafe`
/// reaches in Rust. The watchdog dies with the group whenever the node stops or reaps the guest;
/// its handle is dropped at once and tokio reaps it.
fn spawn_watchdog(pid: u32) -> std::io::Result<()> {
    let group = i32::try_from(pid).map_err(std::io::Error::other)?;
    Command::new("/bin/sh")
        .arg("-c")
        .arg(WATCHDOG_SCRIPT)
        .arg("switchboard-guest-watchdog")
        .arg(std::process::id().to_string())
        .process_group(group)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(drop)
}

/// `delay` seconds, lengthened or shortened at random by up to `jitter` of it.
fn jittered(delay: f64, jitter: f64) -> Duration {
    let factor = if jitter > 0.0 {
        1.0 + rand::random_range(-jitter..=jitter)
    } else {
        1.0
    };
    Duration::from_secs_f64((delay * factor).max(0.0))
}

/// Logs each line `reader` yields under `span` (the worker id and pid), until end of file.
async fn log_lines(
    reader: impl AsyncRead + Unpin,
    span: tracing::Span,
    stream: &'static str,
    ready: Option<(String, Arc<watch::Sender<bool>>)>,
    handle: Option<Arc<GuestHandle>>,
) {
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader)
            .take(MAX_LOG_LINE)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\n', '\r']);
                tracing::info!(parent: &span, stream, "{text}");
                if let Some(handle) = &handle {
                    handle.log(stream, text);
                }
                if let Some((needle, signal)) = &ready
                    && text.contains(needle.as_str())
                {
                    signal.send_replace(true);
                }
            }
        }
    }
}

fn output(mode: GuestOutput) -> Stdio {
    match mode {
        GuestOutput::Log => Stdio::piped(),
        GuestOutput::Drop | GuestOutput::Close => Stdio::null(),
    }
}

/// Sends `signal` to the process group led by `pid`; a group that is gone already is fine.
fn signal_group(pid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pid)
        && pid > 0
    {
        let _ = killpg(Pid::from_raw(pid), signal);
    }
}

/// How a process ended, in words.
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => match Signal::try_from(signal) {
            Ok(s) => format!("killed by {s}"),
            Err(_) => format!("killed by signal {signal}"),
        },
        (None, None) => "ended".into(),
    }
}

/// The signal `options.stop_signal` names (one of [`GUEST_STOP_SIGNALS`]).
pub(crate) fn stop_signal(name: &str) -> Option<Signal> {
    let name = name.strip_prefix("SIG").unwrap_or(name);
    if !GUEST_STOP_SIGNALS.contains(&name) {
        return None;
    }
    Some(match name {
        "INT" => Signal::SIGINT,
        "HUP" => Signal::SIGHUP,
        "QUIT" => Signal::SIGQUIT,
        "USR1" => Signal::SIGUSR1,
        "USR2" => Signal::SIGUSR2,
        "KILL" => Signal::SIGKILL,
        _ => Signal::SIGTERM,
    })
}

fn signal_name(signal: Signal) -> &'static str {
    signal.as_str().trim_start_matches("SIG")
}

/// Finds the executable a guest names: in its working directory first (a name with a slash only
/// there), then on `path_var`; it must be a file with an execute bit.
fn resolve_executable(name: &str, workdir: &Path, path_var: &str) -> Result<PathBuf, String> {
    if name.is_empty() {
        return Err("expected the program to run, got an empty string".into());
    }
    let local = workdir.join(name);
    if name.contains('/') || local.is_file() {
        return check_executable(&local).map(|()| local);
    }
    for dir in std::env::split_paths(path_var) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return check_executable(&candidate).map(|()| candidate);
        }
    }
    Err(format!(
        "`{name}` was not found: it is not in {} and not on PATH",
        workdir.display()
    ))
}

fn check_executable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => Err(format!("{} is not a file", path.display())),
        Ok(meta) if meta.permissions().mode() & 0o111 == 0 => Err(format!(
            "{} is not executable (mode {:o}; chmod +x it)",
            path.display(),
            meta.permissions().mode() & 0o777
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}
