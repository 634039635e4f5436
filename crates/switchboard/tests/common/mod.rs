//! Running the built `switchboard` binary in tests.

#![allow(dead_code)] // each test file uses a different part of this module

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_switchboard"))
}

/// A running `switchboard start` process and the addresses it printed.
pub struct RouterProcess {
    pub child: Child,
    pub tcp: String,
    pub unix: Option<PathBuf>,
}

/// A node directory whose config listens on 127.0.0.1:0 and on a Unix socket inside it.
pub fn node_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = r#"{"version": 2, "workers": [{"type": "router",
          "realms": [{"name": "realm1", "roles": [{"name": "anonymous", "permissions": [
              {"uri": "", "match": "prefix", "allow": {"call": true, "register": true, "publish": true, "subscribe": true}}]}]}],
          "transports": [
            {"type": "universal", "endpoint": {"type": "tcp", "port": 0, "interface": "127.0.0.1"},
              "rawsocket": {}, "websocket": {"ws": {"type": "websocket"}}},
            {"type": "universal", "endpoint": {"type": "unix", "path": "router.sock"},
              "rawsocket": {}, "websocket": {"ws": {"type": "websocket"}}}]}]}"#.to_string();
    std::fs::write(dir.path().join("config.json"), config).expect("write config");
    dir
}

/// Starts `switchboard start [dir]` and waits for its `listeners` "listening on" lines.
pub fn start(dir: Option<&Path>, listeners: usize) -> RouterProcess {
    start_with(dir, listeners, &[])
}

/// [`start`] with more arguments for `switchboard start`.
pub fn start_with(dir: Option<&Path>, listeners: usize, args: &[&str]) -> RouterProcess {
    let mut cmd = Command::new(bin());
    cmd.arg("start").arg("--loglevel").arg("warn").args(args);
    if let Some(d) = dir {
        cmd.arg(d);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn switchboard");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut tcp = None;
    let mut unix = None;
    let mut seen = 0;
    while seen < listeners {
        let line = lines
            .next()
            .expect("router printed its listeners")
            .expect("utf-8 line");
        if let Some(addr) = line.strip_prefix("switchboard listening on tcp:") {
            tcp = Some(addr.to_owned());
            seen += 1;
        } else if let Some(path) = line.strip_prefix("switchboard listening on unix:") {
            unix = Some(PathBuf::from(path));
            seen += 1;
        }
    }
    // Keep draining stdout so the router never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    RouterProcess {
        child,
        tcp: tcp.expect("tcp listener"),
        unix,
    }
}

impl RouterProcess {
    /// Sends SIGTERM and returns the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
        self.child.wait().expect("wait")
    }
}

impl Drop for RouterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}
