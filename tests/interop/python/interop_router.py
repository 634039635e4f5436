"""Start and stop the router under test (Switchboard, or Crossbar.io for
validating the suite itself).

Environment:

* ``SWITCHBOARD_BIN``: path of the switchboard binary
  (default ``<repo>/target/debug/switchboard``).
* ``INTEROP_ROUTER``: ``switchboard`` (default) or ``crossbar``.
* ``CROSSBAR_BIN``: crossbar executable when ``INTEROP_ROUTER=crossbar``
  (default: ``crossbar`` on ``PATH``).
* ``INTEROP_STARTUP_TIMEOUT``: seconds to wait for the router to listen
  (default 10 for switchboard, 60 for crossbar).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
REALM = "realm1"


def router_kind() -> str:
    kind = os.environ.get("INTEROP_ROUTER", "switchboard").strip().lower()
    if kind not in ("switchboard", "crossbar"):
        raise RuntimeError(f"INTEROP_ROUTER must be 'switchboard' or 'crossbar', not {kind!r}")
    return kind


def switchboard_bin() -> Path:
    return Path(os.environ.get("SWITCHBOARD_BIN", str(REPO_ROOT / "target" / "debug" / "switchboard")))


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_config(port: int, unix_path: str, kind: str = "switchboard") -> dict:
    """A Crossbar.io-format (version 2) node config: one router worker, realm1,
    anonymous role allowed everything, a universal (WebSocket + RawSocket)
    transport on TCP and another on a unix socket."""
    permissions = [
        {
            "uri": "",
            "match": "prefix",
            "allow": {"call": True, "register": True, "publish": True, "subscribe": True},
        }
    ]

    websocket_service = {"type": "websocket"}
    if kind == "crossbar":
        # Crossbar only negotiates permessage-deflate when told to; the
        # Switchboard contract is to accept it whenever a client offers it.
        websocket_service["options"] = {"compression": {"deflate": {}}}

    def universal(endpoint: dict) -> dict:
        return {
            "type": "universal",
            "endpoint": endpoint,
            "rawsocket": {},
            "websocket": {"ws": dict(websocket_service)},
        }

    return {
        "version": 2,
        "workers": [
            {
                "type": "router",
                "realms": [
                    {
                        "name": REALM,
                        "roles": [{"name": "anonymous", "permissions": permissions}],
                    }
                ],
                "transports": [
                    universal({"type": "tcp", "port": port, "interface": "127.0.0.1"}),
                    universal({"type": "unix", "path": unix_path}),
                ],
            }
        ],
    }


@dataclass
class Router:
    """A running router process and the addresses it listens on."""

    node_dir: Path
    port: int
    unix_path: str | None
    proc: subprocess.Popen
    log_path: Path
    kind: str
    _log_file: object = field(repr=False, default=None)
    #: every TCP port the router listens on (``port`` is the first)
    ports: list = field(default_factory=list)
    #: the directory holding config.json; relative paths in the config
    #: (web directories, TLS files) resolve against it
    config_dir: Path | None = None

    # -- addresses -------------------------------------------------------
    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def rs_url(self) -> str:
        return f"rs://127.0.0.1:{self.port}"

    # -- lifecycle -------------------------------------------------------
    def log_tail(self, n: int = 60) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "<no router log>"
        return "\n".join(lines[-n:])

    def terminate(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait up to ``timeout``; returns the exit code or None if
        it had to be killed."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                # crossbar runs its workers in the same process group
                if self.kind == "crossbar":
                    os.killpg(self.proc.pid, signal.SIGKILL)
                else:
                    self.proc.kill()
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def close(self) -> None:
        """Stop the router (gracefully, then forcefully) and clean up."""
        self.terminate(timeout=15 if self.kind == "crossbar" else 10)
        self.kill()
        if self._log_file is not None:
            self._log_file.close()
        if os.environ.get("INTEROP_KEEP_NODE_DIR"):
            return
        shutil.rmtree(self.node_dir, ignore_errors=True)


def _can_connect_tcp(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _can_connect_unix(path: str) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            s.connect(path)
            return True
    except OSError:
        return False


@dataclass
class NodeDir:
    """A temp node directory prepared for the router under test.

    ``node_dir`` is what ``switchboard start|check`` gets; ``config_dir``
    holds config.json, and relative paths in the config resolve against it.
    For Switchboard both are the same directory; for Crossbar.io config_dir
    is ``node_dir/.crossbar`` (its cbdir, which Crossbar resolves relative
    paths against)."""

    node_dir: Path
    config_dir: Path
    kind: str

    @property
    def config_path(self) -> Path:
        return self.config_dir / "config.json"

    def write_config(self, config: dict) -> Path:
        self.config_path.write_text(json.dumps(config, indent=2))
        return self.config_path

    def remove(self) -> None:
        if not os.environ.get("INTEROP_KEEP_NODE_DIR"):
            shutil.rmtree(self.node_dir, ignore_errors=True)


def make_node_dir(kind: str | None = None) -> NodeDir:
    kind = kind or router_kind()
    node_dir = Path(tempfile.mkdtemp(prefix="sbinterop-"))
    if kind == "crossbar":
        config_dir = node_dir / ".crossbar"
        config_dir.mkdir()
    else:
        config_dir = node_dir
    return NodeDir(node_dir, config_dir, kind)


def router_argv(nd: NodeDir, command: str = "start") -> list[str]:
    """argv to run ``command`` (start/check) for node dir ``nd``."""
    if nd.kind == "switchboard":
        binary = switchboard_bin()
        if not binary.exists():
            raise RuntimeError(
                f"router binary {binary} does not exist: build it (cargo build) or set SWITCHBOARD_BIN"
            )
        return [str(binary), command, str(nd.node_dir)]
    argv = [os.environ.get("CROSSBAR_BIN", "crossbar"), command, "--cbdir", str(nd.config_dir)]
    if command == "start":
        argv += ["--loglevel", "info"]
    return argv


def launch_router(
    nd: NodeDir,
    config: dict,
    tcp_ports: list[int],
    unix_paths: list[str] = (),
    startup_timeout: float | None = None,
    argv: list[str] | None = None,
) -> Router:
    """Write ``config`` into ``nd`` and start the router; returns once it
    accepts TCP connections on every port in ``tcp_ports`` (a TLS port
    accepts plain TCP connections too) and on every unix socket path.
    ``argv`` runs another program than the router under test on the node
    directory (a program that embeds Switchboard).
    Raises RuntimeError (with the log tail) if it exits or times out."""
    kind = nd.kind
    nd.write_config(config)
    log_path = nd.node_dir / "router.log"
    try:
        argv = argv or router_argv(nd, "start")
    except RuntimeError:
        nd.remove()
        raise
    default_timeout = 10.0 if kind == "switchboard" else 60.0
    timeout = startup_timeout or float(os.environ.get("INTEROP_STARTUP_TIMEOUT", default_timeout))
    log_file = open(log_path, "wb")
    proc = subprocess.Popen(
        argv,
        cwd=str(nd.node_dir),
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    router = Router(
        nd.node_dir,
        tcp_ports[0] if tcp_ports else 0,
        unix_paths[0] if unix_paths else None,
        proc,
        log_path,
        kind,
        log_file,
        ports=list(tcp_ports),
        config_dir=nd.config_dir,
    )

    where = ", ".join([f"127.0.0.1:{p}" for p in tcp_ports] + list(unix_paths))
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            tail = router.log_tail()
            router.close()
            raise RuntimeError(f"{kind} exited early with code {proc.returncode}; log:\n{tail}")
        if all(_can_connect_tcp(p) for p in tcp_ports) and all(_can_connect_unix(u) for u in unix_paths):
            return router
        if time.monotonic() > deadline:
            tail = router.log_tail()
            router.close()
            raise RuntimeError(f"{kind} did not accept connections on {where} within {timeout}s; log:\n{tail}")
        time.sleep(0.05)


def start_router() -> Router:
    """The default router of the suite (see node_config)."""
    nd = make_node_dir()
    port = free_tcp_port()
    unix_path = str(nd.node_dir / "router.sock")
    return launch_router(nd, node_config(port, unix_path, nd.kind), [port], [unix_path])


@dataclass
class CliResult:
    argv: list
    returncode: int | None  # None: still running at the timeout (then killed)
    output: str  # stdout and stderr together

    def describe(self) -> str:
        return f"$ {' '.join(self.argv)}\nexit {self.returncode}\n{self.output}"


def run_router_command(nd: NodeDir, command: str, timeout: float = 30.0) -> CliResult:
    """Run ``switchboard check|start NODE_DIR`` (or Crossbar's equivalent),
    bounded by ``timeout`` (a process still running then is killed and
    reported with returncode None)."""
    argv = router_argv(nd, command)
    proc = subprocess.Popen(
        argv,
        cwd=str(nd.node_dir),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        return CliResult(argv, proc.returncode, out.decode(errors="replace"))
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, _ = proc.communicate(timeout=10)
        return CliResult(argv, None, out.decode(errors="replace"))
