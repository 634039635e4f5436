"""A NATS cluster of our own for the cluster tests: three nats-server processes with JetStream on
free loopback ports, routed to each other, each with its own JetStream directory; started and
waited for until every server has its routes and JetStream has a meta leader."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from interop_router import free_tcp_port


def nats_server_bin() -> str:
    """The nats-server binary: on PATH, or where Debian's package puts it. Missing is a failure
    that says what to install (tests/interop/run.sh installs it)."""
    found = shutil.which("nats-server") or ("/usr/sbin/nats-server" if os.path.exists("/usr/sbin/nats-server") else None)
    if not found:
        raise RuntimeError("nats-server not found: apt-get install nats-server (the cluster tests need it)")
    return found


@dataclass
class NatsServer:
    name: str
    port: int
    cluster_port: int
    monitor_port: int
    store: Path
    log: Path
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def monitor(self, path: str) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_port}/{path}", timeout=2) as r:
            return json.loads(r.read())

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)


@dataclass
class NatsCluster:
    servers: list[NatsServer]
    root: Path
    name: str
    _argv: dict = field(default_factory=dict)

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    def start(self, server: NatsServer) -> None:
        routes = ",".join(f"nats://127.0.0.1:{s.cluster_port}" for s in self.servers if s is not server)
        argv = [
            nats_server_bin(),
            "-a", "127.0.0.1", "-p", str(server.port),
            "-js", "-sd", str(server.store),
            "--server_name", server.name,
            "-m", str(server.monitor_port),
            "-l", str(server.log),
        ]
        if len(self.servers) > 1:
            argv += [
                "--cluster_name", self.name,
                "--cluster", f"nats://127.0.0.1:{server.cluster_port}",
                "--routes", routes,
            ]
        server.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until every running server has a route to every other running one and JetStream has
        a meta leader."""
        running = [s for s in self.servers if s.proc and s.proc.poll() is None]
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                routes_ok = all(s.monitor("routez")["num_routes"] >= len(running) - 1 for s in running)
                jsz = running[0].monitor("jsz")
                # a single server has no meta cluster: JetStream answering is enough
                leader = jsz.get("meta_cluster", {}).get("leader") if len(self.servers) > 1 else "single"
                if routes_ok and leader:
                    return
                last = f"routes ok: {routes_ok}, meta leader: {leader!r}"
            except OSError as e:
                last = str(e)
            time.sleep(0.1)
        logs = "\n".join(f"--- {s.name}\n{s.log.read_text(errors='replace')[-2000:]}" for s in running if s.log.exists())
        raise RuntimeError(f"the NATS cluster was not ready within {timeout}s ({last}); logs:\n{logs}")

    def close(self) -> None:
        for s in self.servers:
            s.kill()
        if not os.environ.get("INTEROP_KEEP_NODE_DIR"):
            shutil.rmtree(self.root, ignore_errors=True)


def start_nats_cluster(size: int = 3) -> NatsCluster:
    root = Path(tempfile.mkdtemp(prefix="sbnats-"))
    servers = []
    for i in range(size):
        store = root / f"js{i}"
        store.mkdir()
        servers.append(NatsServer(f"n{i}", free_tcp_port(), free_tcp_port(), free_tcp_port(), store, root / f"n{i}.log"))
    cluster = NatsCluster(servers, root, "swtest-" + os.urandom(3).hex())
    for s in servers:
        cluster.start(s)
    try:
        cluster.wait_ready()
    except Exception:
        cluster.close()
        raise
    return cluster
