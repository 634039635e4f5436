#!/usr/bin/env python3
"""The cost of cluster mode: the same load through one router alone, and across three Switchboard
nodes of one cluster on a three-server NATS cluster (JetStream), in one run.

Starts a NATS cluster of three `nats-server` processes (free loopback ports, JetStream stores in a
temporary directory), three Switchboard nodes A, B and C of one cluster (each listing the NATS
servers starting with a different one), and one more node X with no cluster section: the
baseline. Then, alternating (one node, cluster, one node, ...), `--runs` times:

- pubsub: publishers on A (`--origin-url A`), subscribers spread over B and C
  (`--url B --spread-url C`); baseline: the same load on X alone.
- rpc: callers on A (`--url A`), `roundrobin` callees on B (`--origin-url B`) and C
  (`--spread-url C`); baseline: the same load on X alone.

The load tool samples, over the measured window, the CPU of every process of the setup: each
router node and each nats-server (`--router-pid`, `--origin-pid`, `--sample-pid`), so the report
has the CPU per operation of every process, and their total. Every run must come back with
errors = lost = duplicated = reordered = 0: a run that does not is reported loudly with its
details and the nodes' warnings, and the script exits 1 at the end (at once with --fail-fast).

Writes bench/results/<date>-cluster.json (every run, raw) and bench/results/<date>-cluster.md (the
table of medians, also printed).

    bench/cluster.py [--runs 3] [--duration 5] [--no-build] [--bin-dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TARGET_DIR = Path("/work/target-bench")
ALL = {"call": True, "register": True, "publish": True, "subscribe": True}
ANONYMOUS = {"anonymous": {"type": "static", "role": "anonymous"}}
HEARTBEAT_MS = 500
NODE_TTL_MS = 2000
NODES = ("A", "B", "C")
NATS_NAMES = ("n0", "n1", "n2")
URI_PREFIX = "bench.load"

SCENARIOS = {
    "pubsub": {
        "args": ["pubsub", "--publishers", "1", "--subscribers", "100", "--in-flight", "16", "--payload", "64"],
        "ops": "events delivered",
        "describe": "1 publisher (16 acknowledged publishes in flight) -> 100 subscribers, 64-byte payloads; "
                    "cluster: publisher on A, subscribers 50 on B and 50 on C",
    },
    "rpc": {
        "args": ["rpc", "--callers", "8", "--in-flight", "16", "--payload", "64"],
        "ops": "calls",
        "describe": "8 callers x 16 calls in flight, 64-byte payloads; cluster: callers on A, "
                    "one roundrobin callee on B and one on C",
    },
}


def log(msg: str) -> None:
    print(f"[cluster] {msg}", file=sys.stderr, flush=True)


def loud(msg: str) -> None:
    bar = "!" * 78
    print(f"\n{bar}\n{msg}\n{bar}\n", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what}: nothing listens on 127.0.0.1:{port} after {timeout:g} s")


class Processes:
    """Every process this script starts (each in a session of its own), stopped on exit."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], log_path: Path) -> subprocess.Popen:
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.procs.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 20.0) -> None:
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=timeout)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)

    def stop_all(self, first: tuple[str, ...] = ()) -> None:
        """Stops the processes whose names start with one of `first`, then the rest, latest first."""
        ordered = [p for p in reversed(self.procs) if p[0].startswith(first)] + \
                  [p for p in reversed(self.procs) if not p[0].startswith(first)]
        for name, proc in ordered:
            try:
                self.stop(proc)
            except Exception as e:  # keep stopping the others
                log(f"stopping {name} (pid {proc.pid}): {e}")
        self.procs.clear()


# --- NATS --------------------------------------------------------------------------------------

def nats_server_bin() -> str:
    found = shutil.which("nats-server") or ("/usr/sbin/nats-server" if os.path.exists("/usr/sbin/nats-server") else None)
    if not found:
        raise RuntimeError("nats-server not found: apt-get install nats-server")
    return found


class Nats:
    def __init__(self, root: Path, procs: Processes) -> None:
        self.root = root
        self.procs = procs
        self.cluster_name = "sbbench-" + os.urandom(3).hex()
        self.servers = []
        for name in NATS_NAMES:
            store = root / f"js-{name}"
            store.mkdir()
            self.servers.append({"name": name, "port": free_port(), "cluster_port": free_port(),
                                 "monitor_port": free_port(), "store": store, "log": root / f"nats-{name}.log",
                                 "proc": None})

    @property
    def urls(self) -> list[str]:
        return [f"nats://127.0.0.1:{s['port']}" for s in self.servers]

    def pids(self) -> dict[str, int]:
        return {s["name"]: s["proc"].pid for s in self.servers}

    def start(self) -> None:
        binary = nats_server_bin()
        for s in self.servers:
            routes = ",".join(f"nats://127.0.0.1:{o['cluster_port']}" for o in self.servers if o is not s)
            argv = [binary, "-a", "127.0.0.1", "-p", str(s["port"]), "-js", "-sd", str(s["store"]),
                    "--server_name", s["name"], "--cluster_name", self.cluster_name,
                    "--cluster", f"nats://127.0.0.1:{s['cluster_port']}", "--routes", routes,
                    "-m", str(s["monitor_port"]), "-l", str(s["log"])]
            s["proc"] = self.procs.start(f"nats-{s['name']}", argv, self.root / f"nats-{s['name']}.out")

    def monitor(self, server: dict, path: str) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{server['monitor_port']}/{path}", timeout=2) as r:
            return json.loads(r.read())

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until every server has a route to the two others and JetStream has a meta leader."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for s in self.servers:
                if s["proc"].poll() is not None:
                    raise RuntimeError(f"nats-server {s['name']} exited with {s['proc'].returncode}:\n"
                                       f"{tail(s['log'])}")
            try:
                routes_ok = all(self.monitor(s, "routez")["num_routes"] >= len(self.servers) - 1
                                for s in self.servers)
                leader = self.monitor(self.servers[0], "jsz").get("meta_cluster", {}).get("leader")
                if routes_ok and leader:
                    log(f"NATS cluster ready (meta leader {leader})")
                    return
                last = f"routes ok: {routes_ok}, meta leader: {leader!r}"
            except OSError as e:
                last = str(e)
            time.sleep(0.1)
        logs = "\n".join(f"--- {s['name']}\n{tail(s['log'])}" for s in self.servers)
        raise RuntimeError(f"the NATS cluster was not ready within {timeout:g} s ({last}); logs:\n{logs}")


# --- Switchboard nodes -------------------------------------------------------------------------

def node_config(port: int, cluster: dict | None) -> dict:
    worker = {
        "type": "router",
        "realms": [{"name": "realm1", "roles": [
            {"name": "anonymous", "permissions": [{"uri": "", "match": "prefix", "allow": ALL}]},
        ]}],
        "transports": [{
            "type": "universal",
            "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1", "backlog": 1024},
            "rawsocket": {"serializers": ["msgpack", "cbor", "json"], "auth": ANONYMOUS},
            "websocket": {"ws": {"type": "websocket", "serializers": ["msgpack", "cbor", "json"],
                                 "auth": ANONYMOUS}},
        }],
    }
    if cluster is not None:
        worker["cluster"] = cluster
    return {"version": 2, "workers": [worker]}


class Node:
    def __init__(self, name: str, root: Path, procs: Processes, binary: Path, cluster: dict | None) -> None:
        self.name = name
        self.dir = root / f"node-{name}"
        self.dir.mkdir()
        self.log = root / f"node-{name}.log"
        self.port = free_port()
        (self.dir / "config.json").write_text(json.dumps(node_config(self.port, cluster), indent=2))
        self.proc = procs.start(f"node-{name}", [str(binary), "start", str(self.dir), "--loglevel", "warn"],
                                self.log)

    @property
    def url(self) -> str:
        return f"rs://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid


def cluster_status(binary: Path, node: Node) -> str:
    out = subprocess.run([str(binary), "cluster", "status", str(node.dir)], capture_output=True, text=True,
                         timeout=30)
    return out.stdout + out.stderr


def wait_members(binary: Path, nodes: list[Node], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    for node in nodes:
        while True:
            if node.proc.poll() is not None:
                raise RuntimeError(f"node {node.name} exited with {node.proc.returncode}:\n{tail(node.log)}")
            out = cluster_status(binary, node)
            if f"{len(nodes)} node(s):" in out:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"node {node.name} did not see {len(nodes)} nodes within {timeout:g} s:\n"
                                   f"{out}\n{tail(node.log)}")
            time.sleep(0.2)
    log(f"cluster ready: {', '.join(n.name for n in nodes)} see {len(nodes)} nodes")


# --- logs ----------------------------------------------------------------------------------------

WARNING = re.compile(r"\bWARN\b|\bERROR\b|\[WRN\]|\[ERR\]|\[FTL\]|panicked")


def tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError as e:
        return f"({path}: {e})"


def warnings_in(logs: dict[str, Path], offsets: dict[str, int] | None = None, keep: int = 30) -> dict:
    """WARN/ERROR lines of each log (from `offsets`, where given): count and the first `keep`."""
    found = {}
    for name, path in logs.items():
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        if offsets:
            text = text[offsets.get(name, 0):]
        lines = [line for line in text.splitlines() if WARNING.search(line)]
        if lines:
            found[name] = {"count": len(lines), "lines": lines[:keep]}
    return found


def log_sizes(logs: dict[str, Path]) -> dict[str, int]:
    sizes = {}
    for name, path in logs.items():
        try:
            sizes[name] = len(path.read_text(errors="replace"))
        except OSError:
            sizes[name] = 0
    return sizes


# --- load ----------------------------------------------------------------------------------------

def load(load_bin: Path, args: list[str], duration: float, url: str, pids: dict[str, int],
         origin: str | None = None, spread: list[str] = (), roles: dict[str, str] | None = None) -> dict:
    """One run of the load tool. `pids` maps a process's label to its pid; `roles` says which label
    is --router-pid and which --origin-pid (the rest are --sample-pid, in order)."""
    roles = roles or {}
    # The same URIs in both setups.
    cmd = [str(load_bin), args[0], "--url", url, "--serializer", "msgpack", "--duration", f"{duration:g}",
           "--warmup", "1", "--quiet", "--uri-prefix", URI_PREFIX] + args[1:]
    if origin:
        cmd += ["--origin-url", origin]
    for s in spread:
        cmd += ["--spread-url", s]
    labels = {}
    cmd += ["--router-pid", str(pids[roles["router"]])]
    labels["router"] = roles["router"]
    if "origin" in roles:
        cmd += ["--origin-pid", str(pids[roles["origin"]])]
        labels["origin_router"] = roles["origin"]
    others = [label for label in pids if label not in (roles.get("router"), roles.get("origin"))]
    for label in others:
        cmd += ["--sample-pid", str(pids[label])]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration * 4 + 120)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else None
    cpu = {}
    if result:
        for key, label in labels.items():
            cpu[label] = (result.get(key) or {}).get("cpu_us_per_op")
        for label, process in zip(others, result.get("others") or []):
            if process.get("pid") != pids[label]:
                raise RuntimeError(f"the load tool reported pid {process.get('pid')} for {label} ({pids[label]})")
            cpu[label] = process.get("cpu_us_per_op")
    return {"command": " ".join(cmd), "exit_code": out.returncode, "stderr": out.stderr[-4000:],
            "result": result, "cpu_us_per_op": cpu,
            "loadgen_cpu_us_per_op": ((result or {}).get("loadgen") or {}).get("cpu_us_per_op")}


def problems(run: dict) -> list[str]:
    r = run["result"]
    if r is None:
        return [f"no result (exit {run['exit_code']})"]
    found = [f"{k} = {r.get(k)}" for k in ("errors", "lost", "duplicated", "reordered") if r.get(k) != 0]
    if run["exit_code"] != 0:
        found.append(f"exit code {run['exit_code']}")
    if not r.get("ops"):
        found.append("no operations")
    return found


# --- report --------------------------------------------------------------------------------------

def median(values):
    values = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(values) if values else None


def fmt(x, digits=2):
    return "—" if x is None else f"{x:,.{digits}f}"


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores (nproc {nproc()}), {model}, Linux {platform.release()}"


def nproc() -> str:
    try:
        return subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def summarize(runs: dict) -> dict:
    summary = {}
    for scenario, setups in runs.items():
        summary[scenario] = {}
        for setup, items in setups.items():
            labels = sorted({label for run in items for label in run["cpu_us_per_op"]})
            per_process = {label: median([run["cpu_us_per_op"].get(label) for run in items]) for label in labels}
            nats = [label for label in labels if label in NATS_NAMES]
            summary[scenario][setup] = {
                "runs": len(items),
                "runs_ok": sum(1 for run in items if not run["problems"]),
                "rate": median([(run["result"] or {}).get("rate") for run in items]),
                "cpu_us_per_op": per_process,
                "nats_cpu_us_per_op": median([sum(run["cpu_us_per_op"].get(n) or 0 for n in nats)
                                              for run in items]) if nats else None,
                "total_cpu_us_per_op": median([run["total_cpu_us_per_op"] for run in items]),
                "loadgen_cpu_us_per_op": median([run["loadgen_cpu_us_per_op"] for run in items]),
                "p50_us": median([((run["result"] or {}).get("latency_us") or {}).get("p50") for run in items]),
            }
        one, cluster = summary[scenario].get("one node"), summary[scenario].get("cluster")
        if one and cluster:
            cluster["rate_ratio"] = round(cluster["rate"] / one["rate"], 3) if one["rate"] and cluster["rate"] else None
            cluster["cpu_ratio"] = (round(cluster["total_cpu_us_per_op"] / one["total_cpu_us_per_op"], 3)
                                    if one["total_cpu_us_per_op"] and cluster["total_cpu_us_per_op"] else None)
    return summary


def table(summary: dict) -> str:
    head = ("| scenario | setup | runs ok | rate (ops/s) | p50 latency (µs) | router A µs/op | router B µs/op | router C µs/op "
            "| nats-server µs/op: sum (n0 / n1 / n2) | total µs/op | load tool µs/op | rate cluster/one node "
            "| total CPU cluster/one node |")
    columns = head.count("|") - 1
    lines = [head, "|" + "---|" * columns]
    for scenario, setups in summary.items():
        for setup, s in setups.items():
            cpu = s["cpu_us_per_op"]
            if setup == "one node":
                routers = [fmt(cpu.get("X")), "—", "—"]
                nats = "—"
                ratios = ["—", "—"]
                label = "one node (no cluster)"
            else:
                routers = [fmt(cpu.get(n)) for n in NODES]
                nats = f"{fmt(s['nats_cpu_us_per_op'])} ({' / '.join(fmt(cpu.get(n)) for n in NATS_NAMES)})"
                ratios = [fmt(s.get("rate_ratio")), fmt(s.get("cpu_ratio"))]
                label = "3-node cluster"
            lines.append(f"| {scenario} | {label} | {s['runs_ok']}/{s['runs']} | {fmt(s['rate'], 0)} | "
                         f"{fmt(s['p50_us'], 0)} | "
                         f"{' | '.join(routers)} | {nats} | {fmt(s['total_cpu_us_per_op'])} | "
                         f"{fmt(s['loadgen_cpu_us_per_op'])} | {' | '.join(ratios)} |")
    return "\n".join(lines)


# --- main ----------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--no-build", action="store_true", help="use the binaries as they are")
    ap.add_argument("--target-dir", type=Path, default=DEFAULT_TARGET_DIR,
                    help=f"CARGO_TARGET_DIR of the build (default {DEFAULT_TARGET_DIR})")
    ap.add_argument("--bin-dir", type=Path,
                    help="where switchboard and switchboard-load are (default: TARGET_DIR/release); "
                         "given, nothing is built")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma separated: " + ", ".join(SCENARIOS))
    ap.add_argument("--out-dir", type=Path, default=REPO / "bench" / "results")
    ap.add_argument("--fail-fast", action="store_true", help="stop at the first run that is not clean")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, node dirs)")
    opts = ap.parse_args()
    scenarios = [s.strip() for s in opts.scenarios.split(",") if s.strip()]
    for s in scenarios:
        if s not in SCENARIOS:
            ap.error(f"unknown scenario {s!r}")

    # SIGTERM and SIGHUP end the run like Ctrl-C: through the finally blocks below.
    def terminate(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)

    if opts.bin_dir is None and not opts.no_build:
        log(f"building release binaries (CARGO_TARGET_DIR={opts.target_dir})")
        subprocess.run(["cargo", "build", "--release", "--bins"], cwd=REPO, check=True,
                       env={**os.environ, "CARGO_TARGET_DIR": str(opts.target_dir)})
    bin_dir = opts.bin_dir or opts.target_dir / "release"
    binary, load_bin = bin_dir / "switchboard", bin_dir / "switchboard-load"
    for b in (binary, load_bin):
        if not b.exists():
            raise SystemExit(f"{b} does not exist (build first, or point --bin-dir at a release build)")

    procs = Processes()
    root = Path(tempfile.mkdtemp(prefix="sbcluster-"))
    runs = {s: {"one node": [], "cluster": []} for s in scenarios}
    failures: list[str] = []
    extra: dict = {}
    try:
        nats = Nats(root, procs)
        log(f"starting NATS cluster {nats.cluster_name} ({', '.join(nats.urls)}); work dir {root}")
        nats.start()
        nats.wait_ready()
        cluster_name = "bench" + os.urandom(3).hex()
        nodes = {}
        for i, name in enumerate(NODES):
            servers = nats.urls[i:] + nats.urls[:i]
            nodes[name] = Node(name, root, procs, binary, {
                "name": cluster_name, "nats": {"servers": servers},
                "heartbeat_ms": HEARTBEAT_MS, "node_ttl_ms": NODE_TTL_MS,
            })
        alone = Node("X", root, procs, binary, None)
        for node in [*nodes.values(), alone]:
            wait_port(node.port, node.proc, f"node {node.name}")
        wait_members(binary, list(nodes.values()))
        a, b, c = nodes["A"], nodes["B"], nodes["C"]
        logs = {f"node-{n.name}": n.log for n in [a, b, c, alone]}
        logs.update({f"nats-{s['name']}": s["log"] for s in nats.servers})
        ready = offsets = log_sizes(logs)
        extra["warnings_at_start"] = warnings_in(logs)

        nats_pids = nats.pids()
        setups = {
            # publishers on A; subscribers round robin over B and C
            "pubsub": dict(url=b.url, origin=a.url, spread=[c.url], roles={"router": "B", "origin": "A"}),
            # callers on A; callees on B and C
            "rpc": dict(url=a.url, origin=b.url, spread=[c.url], roles={"router": "A", "origin": "B"}),
        }
        cluster_pids = {"A": a.pid, "B": b.pid, "C": c.pid, **nats_pids}
        for run in range(opts.runs):
            for scenario in scenarios:
                args = SCENARIOS[scenario]["args"]
                for setup in ("one node", "cluster"):
                    if setup == "one node":
                        r = load(load_bin, args, opts.duration, alone.url, {"X": alone.pid}, roles={"router": "X"})
                    else:
                        r = load(load_bin, args, opts.duration, pids=cluster_pids, **setups[scenario])
                    r["total_cpu_us_per_op"] = (round(sum(v for v in r["cpu_us_per_op"].values() if v), 2)
                                                if r["cpu_us_per_op"] else None)
                    r["problems"] = problems(r)
                    r["run"] = run + 1
                    runs[scenario][setup].append(r)
                    res = r["result"] or {}
                    log(f"run {run + 1} {scenario} {setup}: rate {res.get('rate')} ops/s, "
                        f"CPU µs/op {r['cpu_us_per_op']} (total {r['total_cpu_us_per_op']}), "
                        f"errors/lost/dup/reordered {res.get('errors')}/{res.get('lost')}/"
                        f"{res.get('duplicated')}/{res.get('reordered')}")
                    if r["problems"]:
                        warn = warnings_in(logs, offsets)
                        failures.append(f"run {run + 1} {scenario} {setup}: {', '.join(r['problems'])}")
                        r["log_warnings"] = warn
                        loud(f"RUN NOT CLEAN: run {run + 1} {scenario} {setup}: {', '.join(r['problems'])}\n"
                             f"command: {r['command']}\nresult: {json.dumps(res)}\nload tool stderr:\n"
                             f"{r['stderr']}\nnew WARN/ERROR lines in the logs:\n{json.dumps(warn, indent=2)}")
                        if opts.fail_fast:
                            raise RuntimeError(failures[-1])
                    offsets = log_sizes(logs)
        extra["cluster_status_after"] = {n.name: cluster_status(binary, n) for n in (a, b, c)}
        extra["warnings_during_runs"] = warnings_in(logs, ready)
        done = log_sizes(logs)
    except KeyboardInterrupt:
        loud("interrupted: stopping every process")
        raise
    except BaseException as e:
        if not isinstance(e, SystemExit):
            loud(f"FAILED: {e!r}: stopping every process")
        raise
    finally:
        procs.stop_all(first=("node-",))
        if "done" in locals():
            extra["warnings_at_shutdown"] = warnings_in(logs, done)
        if opts.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    summary = summarize(runs)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                                capture_output=True, text=True).stdout.strip())
    date = time.strftime("%Y-%m-%d")
    nats_version = subprocess.run([nats_server_bin(), "--version"], capture_output=True, text=True).stdout.strip()
    report = {
        "date": date,
        "commit": commit,
        "working_tree_dirty": dirty,
        "machine": machine(),
        "nats_server": nats_version,
        "setup": {
            "runs": opts.runs, "duration_s": opts.duration, "warmup_s": 1,
            "transport": "RawSocket, msgpack, loopback", "release_build": str(bin_dir),
            "cluster": {"nodes": 3, "heartbeat_ms": HEARTBEAT_MS, "node_ttl_ms": NODE_TTL_MS,
                        "nats": "3 nats-server processes, JetStream, routed to each other"},
            "scenarios": {s: SCENARIOS[s] for s in scenarios},
            "cpu": "utime + stime from /proc over the measured window, per operation of the run "
                   "(rpc: calls; pubsub: events delivered); total = every router node and nats-server "
                   "of the setup (not the load tool)",
        },
        "summary": summary,
        "failures": failures,
        "logs": extra,
        "runs": runs,
    }
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    json_path = opts.out_dir / f"{date}-cluster.json"
    md_path = opts.out_dir / f"{date}-cluster.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    text = table(summary)
    header = (f"Date {date} · commit {commit}{' (working tree with uncommitted changes)' if dirty else ''} · "
              f"machine: {machine()} · {nats_version}")
    notes = [
        f"`bench/cluster.py --runs {opts.runs} --duration {opts.duration:g}`: medians of {opts.runs} "
        f"alternating runs (one node, cluster, ...) of {opts.duration:g} s after 1 s of warm-up; "
        "RawSocket/msgpack on loopback; release build. Raw runs in the JSON beside this file.",
        "",
    ]
    for s in scenarios:
        notes.append(f"- {s}: {SCENARIOS[s]['describe']}; one node: the same load on one node without a "
                     f"cluster section. Operations: {SCENARIOS[s]['ops']}.")
    notes += [
        "- CPU: utime + stime of each process over the measured window, per operation. One node: its "
        "router is under A. Total: every router node and nats-server of the setup (not the load tool, "
        "which is its own column).",
        "- p50 latency: rpc CALL to RESULT; pubsub PUBLISH to EVENT (every clock is the load tool's).",
        "- The machine is shared and noisy; the load tool, the routers and NATS share its cores.",
    ]
    if failures:
        notes += ["", "**FAILED runs (not clean):**", *[f"- {f}" for f in failures]]
    md = "\n".join([f"# Cluster mode against one node ({date})", "", header, "", *notes, "", text, ""])
    md_path.write_text(md)
    print(header)
    print()
    print(text)
    log(f"wrote {json_path.relative_to(REPO) if json_path.is_relative_to(REPO) else json_path} and "
        f"{md_path.relative_to(REPO) if md_path.is_relative_to(REPO) else md_path}")
    for when in ("warnings_at_start", "warnings_during_runs", "warnings_at_shutdown"):
        found = extra.get(when) or {}
        log(f"{when.replace('_', ' ')}: " + ("none" if not found else ""))
        for name, w in found.items():
            log(f"  {name}: {w['count']} WARN/ERROR line(s), first: {w['lines'][0]}")
    if failures:
        loud("FAILED: runs that were not clean (errors, lost, duplicated or reordered):\n" + "\n".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted; every process stopped, the temporary directory removed")
        sys.exit(130)
