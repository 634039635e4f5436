//! Guest workers, through the binary: a failing guest is restarted with growing delays until its
//! restart limit; a guest that exits with success is not; its output is in the node's log under
//! its worker id; its environment, working directory and stdin are as configured; a shutdown stops
//! every guest (SIGKILL to the process group of one that ignores SIGTERM) and leaves no process
//! behind; `check` reports a program that cannot run and says that guests are restarted.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A node directory with a router worker on 127.0.0.1:0 and the given guest workers (JSON objects
/// without their `"type"`).
fn node_with_guests(guests: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut workers = vec![
        r#"{"type": "router",
          "realms": [{"name": "realm1", "roles": [{"name": "anonymous", "permissions": [
              {"uri": "", "match": "prefix", "allow": {"call": true, "register": true, "publish": true, "subscribe": true}}]}]}],
          "transports": [{"type": "websocket", "endpoint": {"type": "tcp", "port": 0, "interface": "127.0.0.1"}}]}"#
            .to_string(),
    ];
    workers.extend(
        guests
            .iter()
            .map(|g| format!("{{\"type\": \"guest\", {g}}}")),
    );
    let config = format!(
        "{{\"version\": 2, \"workers\": [\n{}\n]}}",
        workers.join(",\n")
    );
    std::fs::write(dir.path().join("config.json"), config).expect("write config");
    dir
}

/// A running node whose log (stderr, at level info) is collected line by line.
struct Node {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Node {
    fn start(dir: &Path, env: &[(&str, &str)]) -> Node {
        let mut child = Command::new(common::bin())
            .args(["start", "--loglevel", "info"])
            .arg(dir)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn switchboard");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().expect("log lock").push(line);
            }
        });
        Node { child, log }
    }

    /// Waits (up to 30 s) for a log line containing every one of `parts`, and returns it.
    fn wait_for_log(&self, parts: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(line) = self
                .log
                .lock()
                .expect("log lock")
                .iter()
                .find(|l| parts.iter().all(|p| l.contains(p)))
            {
                return line.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {parts:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_text(&self) -> String {
        self.log.lock().expect("log lock").join("\n")
    }

    /// SIGTERM, then the exit status (the node must be gone within 30 s).
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // Let the log reader catch up with the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return (status, self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "the node did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// Waits (up to 30 s) until `path` exists and `done` holds for its text.
fn wait_for_file(path: &Path, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && done(&text)
        {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{} never got done",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The pids of the live processes whose environment holds `marker` (zombies have none).
fn processes_marked(marker: &str) -> Vec<u32> {
    let needle = marker.as_bytes();
    std::fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.windows(needle.len()).any(|w| w == needle))
        })
        .collect()
}

#[test]
fn a_failing_guest_is_restarted_with_growing_delays_until_its_restart_limit() {
    let dir = node_with_guests(&[r#""id": "crasher", "executable": "sh",
        "arguments": ["-c", "date +%s.%N >> starts; exit 3"],
        "options": {"restart_backoff": {"initial": 0.2, "factor": 2, "jitter": 0, "max": 10},
                    "max_restarts": {"count": 3, "window": 60}}"#]);
    let node = Node::start(dir.path(), &[]);
    node.wait_for_log(&["crasher", "restarted 3 times within 60 s"]);
    let starts: Vec<f64> = std::fs::read_to_string(dir.path().join("starts"))
        .expect("starts")
        .lines()
        .map(|l| l.parse().expect("a time"))
        .collect();
    assert_eq!(starts.len(), 4, "one start and three restarts: {starts:?}");
    // Each delay is at least the backoff's: 0.2, 0.4, 0.8 s (the process itself takes time too).
    for (i, pair) in starts.windows(2).enumerate() {
        let least = 0.2 * 2f64.powi(i as i32);
        assert!(
            pair[1] - pair[0] >= least,
            "restart {} came after {:.3} s, before the backoff's {least} s: {starts:?}",
            i + 1,
            pair[1] - pair[0]
        );
    }
    node.wait_for_log(&["crasher", "guest worker failed: exit code 3"]);
    // A failed worker stays down.
    std::thread::sleep(Duration::from_millis(1600));
    let again = std::fs::read_to_string(dir.path().join("starts")).expect("starts");
    assert_eq!(again.lines().count(), 4, "{again}");
    let (status, log) = node.terminate();
    assert!(status.success(), "{status:?}\n{log}");
}

#[test]
fn a_guest_that_exits_with_success_is_not_restarted_and_its_output_is_logged_under_its_id() {
    let dir = node_with_guests(&[r#""id": "oneshot", "executable": "sh",
        "arguments": ["-c", "echo run >> runs; echo hello from the guest; echo to stderr >&2"]"#]);
    let node = Node::start(dir.path(), &[]);
    let line = node.wait_for_log(&["hello from the guest"]);
    assert!(line.contains("worker=oneshot"), "{line}");
    assert!(line.contains("stdout"), "{line}");
    let line = node.wait_for_log(&["to stderr"]);
    assert!(
        line.contains("worker=oneshot") && line.contains("stderr"),
        "{line}"
    );
    node.wait_for_log(&["oneshot", "exited with success"]);
    node.wait_for_log(&[
        "oneshot",
        "not restarted (options.restart is restart-on-failed)",
    ]);
    std::thread::sleep(Duration::from_millis(1000));
    let runs = std::fs::read_to_string(dir.path().join("runs")).expect("runs");
    assert_eq!(runs, "run\n");
    let (status, log) = node.terminate();
    assert!(status.success(), "{status:?}\n{log}");
}

#[test]
fn a_guest_gets_its_environment_working_directory_and_stdin() {
    let dir = node_with_guests(&[
        r#""id": "probe", "executable": "sh",
        "arguments": ["-c", "pwd > seen; echo \"FOO=$FOO\" >> seen; echo \"HOME=${HOME:-unset}\" >> seen; echo \"PU=$PYTHONUNBUFFERED ID=$SWITCHBOARD_WORKER_ID\" >> seen; cat >> seen; echo >> seen; echo done >> seen"],
        "options": {"workdir": "app", "restart": "restart-never",
                    "env": {"inherit": false, "vars": {"FOO": "bar", "PATH": "/usr/bin:/bin"}},
                    "stdin": {"type": "json", "value": {"hello": [1, 2]}}}"#,
        r#""id": "picky", "executable": "sh",
        "arguments": ["-c", "echo \"KEPT=$SB_TEST_KEPT LEFT=${SB_TEST_LEFT:-unset}\" > picky; cat >> picky"],
        "options": {"restart": "restart-never", "stdin": "close",
                    "env": {"inherit": ["SB_TEST_KEPT", "PATH"]}}"#,
    ]);
    std::fs::create_dir(dir.path().join("app")).expect("mkdir app");
    let node = Node::start(
        dir.path(),
        &[("SB_TEST_KEPT", "kept"), ("SB_TEST_LEFT", "left")],
    );
    let seen = wait_for_file(&dir.path().join("app").join("seen"), |t| {
        t.ends_with("done\n")
    });
    let app = dir.path().join("app").canonicalize().expect("canonical");
    let expected = format!(
        "{}\nFOO=bar\nHOME=unset\nPU=1 ID=probe\n{{\"hello\":[1,2]}}\ndone\n",
        app.display()
    );
    assert_eq!(seen, expected);
    node.wait_for_log(&["picky", "exited with success"]);
    let picky = std::fs::read_to_string(dir.path().join("picky")).expect("picky");
    assert_eq!(picky, "KEPT=kept LEFT=unset\n");
    let (status, log) = node.terminate();
    assert!(status.success(), "{status:?}\n{log}");
}

#[test]
fn shutdown_stops_every_guest_and_leaves_no_process_behind() {
    let marker = format!("SB_GUEST_TEST_{}", std::process::id());
    let guests = [
        format!(
            r#""id": "polite", "executable": "sh", "arguments": ["-c", "sleep 1000 & sleep 1000 & wait"],
            "options": {{"env": {{"vars": {{"{marker}": "1"}}}}}}"#
        ),
        // Ignores SIGTERM, and so do the children it starts: only SIGKILL ends them.
        format!(
            r#""id": "stubborn", "executable": "sh", "arguments": ["-c", "trap '' TERM; sleep 1000 & sleep 1000 & wait"],
            "options": {{"stop_timeout": 1, "env": {{"vars": {{"{marker}": "1"}}}}}}"#
        ),
    ];
    let dir = node_with_guests(&[&guests[0], &guests[1]]);
    let node = Node::start(dir.path(), &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while processes_marked(&marker).len() < 6 {
        assert!(
            Instant::now() < deadline,
            "the guests did not start their processes: {:?}",
            processes_marked(&marker)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, log) = node.terminate();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(
        log.contains("worker=stubborn") && log.contains("killing its process group"),
        "{log}"
    );
    assert!(
        log.contains("worker=polite") && log.contains("stopped"),
        "{log}"
    );
    let left = processes_marked(&marker);
    assert!(left.is_empty(), "processes left behind: {left:?}\n{log}");
}

#[test]
fn check_reports_a_guest_that_cannot_run_and_says_guests_are_restarted() {
    let dir = node_with_guests(&[
        r#""id": "missing", "executable": "no-such-program-for-switchboard""#,
        r#""id": "plain", "executable": "./script.sh""#,
        r#""id": "signal", "executable": "sh", "options": {"stop_signal": "BOGUS"}"#,
    ]);
    std::fs::write(dir.path().join("script.sh"), "#!/bin/sh\n").expect("write script");
    let out = Command::new(common::bin())
        .arg("check")
        .arg(dir.path())
        .output()
        .expect("run check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let file = dir.path().join("config.json").display().to_string();
    for (line, text) in [
        (
            6,
            "workers[1].executable: `no-such-program-for-switchboard` was not found",
        ),
        (7, "workers[2].executable: "),
        (7, "script.sh is not executable"),
        (
            8,
            "workers[3].options.stop_signal: expected one of TERM, INT",
        ),
    ] {
        let at = format!("{file}:{line}:");
        assert!(
            err.lines().any(|l| l.starts_with(&at) && l.contains(text)),
            "no line starting {at} with {text:?}:\n{err}"
        );
    }

    let dir = node_with_guests(&[r#""id": "backend", "executable": "sh""#]);
    let out = Command::new(common::bin())
        .arg("check")
        .arg(dir.path())
        .output()
        .expect("run check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("note: guest worker `backend` is restarted when it fails")
            && text.contains("Crossbar never restarts a guest"),
        "{text}"
    );
}

#[test]
fn a_node_killed_with_sigkill_leaves_no_guest_behind() {
    let marker = format!("SB_GUEST_ORPHAN_TEST_{}", std::process::id());
    let guest = format!(
        r#""id": "orphan", "executable": "sh", "arguments": ["-c", "trap '' TERM; sleep 1000 & wait"],
        "options": {{"env": {{"vars": {{"{marker}": "1"}}}}}}"#
    );
    let dir = node_with_guests(&[&guest]);
    let mut node = Node::start(dir.path(), &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while processes_marked(&marker).len() < 2 {
        assert!(Instant::now() < deadline, "the guest did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    node.child.kill().expect("SIGKILL the node");
    node.child.wait().expect("wait");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = processes_marked(&marker);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "guest processes outlived the node: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_watched_guest_is_restarted_when_its_files_change() {
    let marker = format!("SB_GUEST_WATCH_TEST_{}", std::process::id());
    let guests = [
        format!(
            r#""id": "server", "executable": "sh", "arguments": ["-c", "echo start >> starts; exec sleep 1000"],
            "options": {{"watch": {{"directories": ["src"], "action": "restart", "timeout": 0.2}},
                        "env": {{"vars": {{"{marker}": "1"}}}}}}"#
        ),
        // Fails at once and is not restarted: it comes back with the next change.
        r#""id": "script", "executable": "sh", "arguments": ["-c", "echo run >> runs; exit 1"],
            "options": {"restart": "restart-never", "watch": {"directories": ["src"], "timeout": 0.2}}"#
            .to_string(),
    ];
    let dir = node_with_guests(&[&guests[0], &guests[1]]);
    std::fs::create_dir(dir.path().join("src")).expect("mkdir src");
    let node = Node::start(dir.path(), &[]);
    wait_for_file(&dir.path().join("starts"), |t| t == "start\n");
    node.wait_for_log(&[
        "script",
        "waiting for a change under options.watch.directories",
    ]);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("runs")).expect("runs"),
        "run\n"
    );

    // An editor's swap file is no change.
    std::fs::write(dir.path().join("src").join(".app.js.swp"), "x").expect("write");
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("starts")).expect("starts"),
        "start\n"
    );

    // A change restarts both, once, the old process gone before the new one starts.
    std::fs::write(dir.path().join("src").join("app.js"), "// v2").expect("write");
    wait_for_file(&dir.path().join("starts"), |t| t == "start\nstart\n");
    wait_for_file(&dir.path().join("runs"), |t| t == "run\nrun\n");
    node.wait_for_log(&["server", "files changed under options.watch.directories"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        processes_marked(&marker).len(),
        1,
        "one server process after the restart"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("starts")).expect("starts"),
        "start\nstart\n"
    );
    let (status, log) = node.terminate();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(processes_marked(&marker).is_empty(), "{log}");
}

/// A file's content as a number of nanoseconds (written by `date +%s%N`).
fn nanos(path: &Path) -> u128 {
    let text = wait_for_file(path, |t| t.ends_with('\n'));
    text.trim().parse().expect("nanoseconds")
}

#[test]
fn a_guest_with_a_log_readiness_rule_holds_back_the_next_one_until_it_prints_it_or_times_out() {
    let dir = node_with_guests(&[
        r#""id": "first", "executable": "sh",
        "arguments": ["-c", "sleep 1; date +%s%N > first_ready; echo the first one is ready; exec sleep 60"],
        "options": {"ready": {"log": "first one is ready", "timeout": 20}}"#,
        r#""id": "second", "executable": "sh",
        "arguments": ["-c", "date +%s%N > second_started; echo never ready; exec sleep 60"],
        "options": {"ready": {"log": "a text it never prints", "timeout": 1}}"#,
        r#""id": "third", "executable": "sh",
        "arguments": ["-c", "date +%s%N > third_started; exec sleep 60"]"#,
    ]);
    let node = Node::start(dir.path(), &[]);
    let first_ready = nanos(&dir.path().join("first_ready"));
    let second_started = nanos(&dir.path().join("second_started"));
    assert!(
        second_started >= first_ready,
        "the second guest started {} ms before the first was ready",
        (first_ready - second_started) / 1_000_000
    );
    node.wait_for_log(&[
        "first",
        "guest worker is ready (it printed \"first one is ready\")",
    ]);
    // The second never gets ready: the third starts once its timeout has passed.
    let third_started = nanos(&dir.path().join("third_started"));
    assert!(
        third_started >= second_started + 900_000_000,
        "the third guest started {} ms after the second, before its 1 s readiness timeout",
        (third_started - second_started) / 1_000_000
    );
    node.wait_for_log(&[
        "second",
        "is not ready after 1s",
        "starting the next worker anyway",
    ]);
    let (status, log) = node.terminate();
    assert!(status.success(), "{status:?}\n{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_with_a_procedure_readiness_rule_holds_back_the_next_one_until_it_is_registered() {
    use switchboard_client::{
        Args, ConnectOptions, Endpoint, RegisterOptions, Session, TransportKind,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let config = r#"{"version": 2, "workers": [
        {"type": "router",
         "realms": [{"name": "realm1", "roles": [{"name": "anonymous", "permissions": [
             {"uri": "", "match": "prefix", "allow": {"call": true, "register": true, "publish": true, "subscribe": true}}]}]}],
         "transports": [{"type": "rawsocket", "endpoint": {"type": "unix", "path": "node.sock"}}]},
        {"type": "guest", "id": "backend", "executable": "sh", "arguments": ["-c", "exec sleep 60"],
         "options": {"ready": {"procedure": "com.example.add2", "timeout": 30}}},
        {"type": "guest", "id": "frontend", "executable": "sh",
         "arguments": ["-c", "date +%s%N > frontend_started; exec sleep 60"]}
    ]}"#;
    std::fs::write(dir.path().join("config.json"), config).expect("write config");
    let node = Node::start(dir.path(), &[]);
    node.wait_for_log(&["backend", "guest worker started"]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !dir.path().join("frontend_started").exists(),
        "the frontend started before com.example.add2 was registered"
    );
    let session = Session::connect(&ConnectOptions::new(
        Endpoint::Unix(dir.path().join("node.sock")),
        TransportKind::RawSocket,
        switchboard_proto::Serializer::Json,
        "realm1",
    ))
    .await
    .expect("join");
    let registered_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    session
        .register(
            "com.example.add2",
            RegisterOptions::default(),
            |_| async move { Ok(Args::default()) },
        )
        .await
        .expect("register");
    let path = dir.path().join("frontend_started");
    let started = tokio::task::spawn_blocking(move || nanos(&path))
        .await
        .expect("join");
    assert!(
        started >= registered_at,
        "the frontend started before the registration"
    );
    node.wait_for_log(&[
        "backend",
        "guest worker is ready (com.example.add2 is registered)",
    ]);
    session.leave().await.expect("leave");
    let (status, log) = node.terminate();
    assert!(status.success(), "{status:?}\n{log}");
}
