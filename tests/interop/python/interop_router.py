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
    unix_path: str
    proc: subprocess.Popen
    log_path: Path
    kind: str
    _log_file: object = field(repr=False, default=None)

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


def start_router() -> Router:
    kind = router_kind()
    node_dir = Path(tempfile.mkdtemp(prefix="sbinterop-"))
    port = free_tcp_port()
    unix_path = str(node_dir / "router.sock")
    config = node_config(port, unix_path, kind)
    log_path = node_dir / "router.log"

    if kind == "switchboard":
        binary = switchboard_bin()
        if not binary.exists():
            shutil.rmtree(node_dir, ignore_errors=True)
            raise RuntimeError(
                f"router binary {binary} does not exist: build it (cargo build) or set SWITCHBOARD_BIN"
            )
        (node_dir / "config.json").write_text(json.dumps(config, indent=2))
        argv = [str(binary), "start", str(node_dir)]
        default_timeout = 10.0
    else:
        cbdir = node_dir / ".crossbar"
        cbdir.mkdir()
        (cbdir / "config.json").write_text(json.dumps(config, indent=2))
        argv = [os.environ.get("CROSSBAR_BIN", "crossbar"), "start", "--cbdir", str(cbdir), "--loglevel", "info"]
        default_timeout = 60.0

    timeout = float(os.environ.get("INTEROP_STARTUP_TIMEOUT", default_timeout))
    log_file = open(log_path, "wb")
    proc = subprocess.Popen(
        argv,
        cwd=str(node_dir),
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    router = Router(node_dir, port, unix_path, proc, log_path, kind, log_file)

    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            tail = router.log_tail()
            router.close()
            raise RuntimeError(f"{kind} exited early with code {proc.returncode}; log:\n{tail}")
        if _can_connect_tcp(port) and _can_connect_unix(unix_path):
            return router
        if time.monotonic() > deadline:
            tail = router.log_tail()
            router.close()
            raise RuntimeError(
                f"{kind} did not accept connections on 127.0.0.1:{port} and {unix_path} within {timeout}s; log:\n{tail}"
            )
        time.sleep(0.05)
