#!/usr/bin/env python3
"""Side-by-side benchmark: Switchboard against Crossbar.io on this machine, one command.

Builds Switchboard and the load tool in release mode, installs Crossbar.io from PyPI into a cached
virtualenv, starts both routers from the same node config (one router worker, realm `realm1`,
anonymous access plus ticket and WAMP-CRA principals, WebSocket and RawSocket on loopback), and
runs every scenario against both in alternation (A B A B ...), --runs times each. Prints the
medians and the Switchboard/Crossbar ratios, and writes them with the commit, machine and flags to
bench/results/.

The primary figure is the router's CPU time per operation (read from /proc by the load tool): it
does not depend on who else uses the machine's cores, unlike rates on a shared 2-core box.

    bench/compare.py                      # all scenarios, 5 runs of 5 s each
    bench/compare.py --runs 3 --duration 3 --scenarios rpc-8x16,pubsub-1x100

With --baseline BIN, a second Switchboard binary (a release build of an earlier commit) runs in the
same alternation, and a second table gives this build's figures against it: the before/after check
of a change. --without-crossbar leaves Crossbar out (for a quick before/after run).
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CROSSBAR_VERSION = "26.10.1"
CROSSBAR_VENV = Path(os.environ.get("CROSSBAR_VENV", Path.home() / ".cache" / "switchboard-bench" / f"crossbar-{CROSSBAR_VERSION}"))

# name -> (load tool arguments, what "ops" are, whether there is a transport-limit reference)
SCENARIOS = {
    "rpc-8x16": (["rpc", "--callers", "8", "--in-flight", "16", "--payload", "64"], "calls",
                 ["echo", "--connections", "8", "--in-flight", "16", "--payload", "64"]),
    "rpc-1x1": (["rpc", "--callers", "1", "--in-flight", "1", "--payload", "64"], "calls", None),
    "pubsub-1x100": (["pubsub", "--publishers", "1", "--subscribers", "100", "--in-flight", "16", "--payload", "64"], "events",
                     ["fanout", "--publishers", "1", "--subscribers", "100", "--in-flight", "16", "--payload", "64"]),
    "connect-50": (["connect", "--concurrency", "50"], "sessions", None),
    # The same with authentication: the challenge round trip and the router's checks.
    "connect-50-ticket": (["connect", "--concurrency", "50", "--ticket", "joe:bench-ticket"], "sessions", None),
    "connect-50-wampcra": (["connect", "--concurrency", "50", "--wampcra", "peter:bench-secret"], "sessions", None),
    "idle-1000": (["idle", "--sessions", "1000", "--concurrency", "50"], "sessions", None),
}

SB_PORT, CB_PORT, ECHO_PORT, BASE_PORT = 18080, 18090, 18100, 18110


def log(msg):
    print(f"[compare] {msg}", file=sys.stderr, flush=True)


# Anonymous for the routing scenarios, ticket and WAMP-CRA principals for the authenticated
# connect scenarios; every role may do everything.
AUTH = {
    "anonymous": {"type": "static", "role": "anonymous"},
    "ticket": {"type": "static", "principals": {"joe": {"ticket": "bench-ticket", "role": "anonymous"}}},
    "wampcra": {"type": "static", "users": {"peter": {"secret": "bench-secret", "role": "anonymous"}}},
}


def node_config(port):
    """The same Crossbar-format node config for both routers."""
    return {
        "version": 2,
        "controller": {},
        "workers": [{
            "type": "router",
            "realms": [{"name": "realm1", "roles": [{"name": "anonymous", "permissions": [{
                "uri": "", "match": "prefix",
                "allow": {"call": True, "register": True, "publish": True, "subscribe": True},
                "disclose": {"caller": False, "publisher": False}, "cache": True}]}]}],
            "transports": [{
                "type": "universal",
                "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1", "backlog": 1024},
                "rawsocket": {"serializers": ["json", "msgpack", "cbor"], "auth": AUTH},
                "websocket": {"ws": {"type": "websocket", "serializers": ["json", "msgpack", "cbor"], "auth": AUTH}},
            }],
        }],
    }


def wait_port(port, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def children(pid):
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            pass
    return out


def cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def ensure_crossbar():
    crossbar = CROSSBAR_VENV / "bin" / "crossbar"
    if crossbar.exists():
        return crossbar
    log(f"installing crossbar=={CROSSBAR_VERSION} into {CROSSBAR_VENV} (once)")
    CROSSBAR_VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(CROSSBAR_VENV)], check=True)
    subprocess.run([str(CROSSBAR_VENV / "bin" / "pip"), "install", "--quiet", f"crossbar=={CROSSBAR_VERSION}"], check=True)
    return crossbar


class Router:
    """A running router process; `pid` is the process that does the routing."""

    def __init__(self, name, proc, pid, port):
        self.name, self.proc, self.pid, self.port = name, proc, pid, port

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def start_switchboard(workdir, binary, generation=0, name="switchboard", port=SB_PORT):
    node = workdir / f"{name}-{generation}"
    node.mkdir()
    (node / "config.json").write_text(json.dumps(node_config(port), indent=2))
    proc = subprocess.Popen([str(binary), "start", str(node), "--loglevel", "warn"],
                            stdout=subprocess.DEVNULL, stderr=open(workdir / f"{name}.log", "w"),
                            start_new_session=True)
    wait_port(port)
    return Router(name, proc, proc.pid, port)


def start_crossbar(workdir, crossbar, generation=0):
    cbdir = workdir / f"crossbar-{generation}" / ".crossbar"
    cbdir.mkdir(parents=True)
    (cbdir / "config.json").write_text(json.dumps(node_config(CB_PORT), indent=2))
    proc = subprocess.Popen([str(crossbar), "start", "--cbdir", str(cbdir), "--loglevel", "warn"],
                            stdout=open(workdir / "crossbar.log", "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    wait_port(CB_PORT, timeout=120)
    # Crossbar routes in a worker process, a child of its node controller.
    workers = [p for p in children(proc.pid) if "worker" in cmdline(p)]
    if not workers:
        raise RuntimeError("cannot find Crossbar's router worker process")
    return Router("crossbar", proc, workers[0], CB_PORT)


def start_echo(workdir, binary, fanout):
    args = [str(binary), "--listen", f"127.0.0.1:{ECHO_PORT}"] + (["--fanout"] if fanout else [])
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(workdir / "echo.log", "a"), start_new_session=True)
    wait_port(ECHO_PORT)
    return Router("transport", proc, proc.pid, ECHO_PORT)


def load(load_bin, args, router, serializer, duration, transport):
    url = f"ws://127.0.0.1:{router.port}/ws" if transport == "websocket" else f"rs://127.0.0.1:{router.port}"
    cmd = [str(load_bin)] + args[:1] + ["--url", url, "--serializer", serializer, "--duration", str(duration),
                                        "--warmup", "1", "--router-pid", str(router.pid), "--quiet"] + args[1:]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration * 4 + 120)
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if not lines:
        raise RuntimeError(f"{' '.join(cmd)} printed no result (exit {out.returncode}): {out.stderr[-2000:]}")
    result = json.loads(lines[-1])
    result["exit_code"] = out.returncode
    return result


def metric(result, scenario):
    """The figures compared for one run."""
    router = result.get("router") or {}
    m = {
        "rate": result.get("rate"),
        "p50_us": (result.get("latency_us") or {}).get("p50"),
        "p99_us": (result.get("latency_us") or {}).get("p99"),
        "router_cpu_us_per_op": router.get("cpu_us_per_op"),
        "loadgen_cpu_us_per_op": (result.get("loadgen") or {}).get("cpu_us_per_op"),
        "correct": result.get("exit_code") == 0,
    }
    if scenario.startswith("idle"):
        m["router_rss_kb"] = router.get("rss_kb_after")
        m["kb_per_session"] = router.get("rss_kb_per_session")
    return m


def median(values):
    values = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(values) if values else None


def fmt(v, digits=1):
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--serializer", default="json")
    ap.add_argument("--transport", default="websocket", choices=["websocket", "rawsocket"])
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--no-build", action="store_true", help="use the existing release binaries")
    ap.add_argument("--out", default=str(REPO / "bench" / "results"))
    ap.add_argument("--baseline", help="a switchboard binary built from an earlier commit, run in the same alternation")
    ap.add_argument("--without-crossbar", action="store_true", help="leave Crossbar out (with --baseline: a before/after run)")
    opts = ap.parse_args()
    scenarios = [s for s in opts.scenarios.split(",") if s]
    for s in scenarios:
        if s not in SCENARIOS:
            sys.exit(f"unknown scenario {s}; known: {', '.join(SCENARIOS)}")

    if not opts.no_build:
        log("building release binaries")
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "switchboard", "-p", "switchboard-load"], cwd=REPO, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release"
    sb_bin, load_bin, echo_bin = target / "switchboard", target / "switchboard-load", target / "switchboard-echo"
    crossbar = None if opts.without_crossbar else ensure_crossbar()
    baseline = Path(opts.baseline).resolve() if opts.baseline else None
    if baseline and not baseline.is_file():
        sys.exit(f"--baseline {baseline}: no such file")

    def start_all(generation):
        started = [start_switchboard(workdir, sb_bin, generation)]
        if crossbar:
            started.append(start_crossbar(workdir, crossbar, generation))
        if baseline:
            started.append(start_switchboard(workdir, baseline, generation, "baseline", BASE_PORT))
        return started

    workdir = Path(tempfile.mkdtemp(prefix="sb-compare-"))
    results = {s: {"switchboard": [], "crossbar": [], "baseline": [], "transport": []} for s in scenarios}
    routers = []
    try:
        routers = start_all(0)
        log(", ".join(f"{r.name} pid {r.pid}" for r in routers))
        for s in scenarios:
            args, _, echo_args = SCENARIOS[s]
            for run in range(opts.runs):
                if s.startswith("idle"):
                    # Memory per session is only meaningful against a fresh process: an allocator
                    # reuses what earlier scenarios freed.
                    for r in routers:
                        r.stop()
                    time.sleep(1)
                    routers = start_all(run + 1)
                # Alternate the order so slow drifts of the machine hit both alike.
                for router in (routers if run % 2 == 0 else routers[::-1]):
                    r = load(load_bin, args, router, opts.serializer, opts.duration, opts.transport)
                    results[s][router.name].append(r)
                    log(f"{s} run {run + 1}/{opts.runs} {router.name}: rate {fmt(r.get('rate'))} "
                        f"router cpu {fmt((r.get('router') or {}).get('cpu_us_per_op'), 2)} us/op exit {r['exit_code']}")
                if echo_args and opts.transport == "websocket":
                    echo = start_echo(workdir, echo_bin, fanout=echo_args[0] == "fanout")
                    try:
                        results[s]["transport"].append(load(load_bin, echo_args, echo, opts.serializer, opts.duration, "websocket"))
                    finally:
                        echo.stop()
    finally:
        for r in routers:
            r.stop()

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    machine = f"{os.cpu_count()} cores, {cpu}, Linux {platform.release()}"
    date = datetime.date.today().isoformat()
    rows = []
    summary = {}
    for s in scenarios:
        per = {name: [metric(r, s) for r in runs] for name, runs in results[s].items()}
        med = {name: {k: median([m[k] for m in ms]) for k in (ms[0].keys() if ms else [])} for name, ms in per.items()}
        correct = all(m["correct"] for ms in per.values() for m in ms)
        summary[s] = {"medians": med, "all_runs_correct": correct}
        sb, cb, tl = med.get("switchboard", {}), med.get("crossbar", {}), med.get("transport", {})
        ratio = lambda a, b: (a / b) if a and b else None
        rows.append((s, sb, cb, tl, ratio(sb.get("rate"), cb.get("rate")),
                     ratio(cb.get("router_cpu_us_per_op"), sb.get("router_cpu_us_per_op")), correct))

    lines = [
        f"Switchboard {commit} vs {'Crossbar.io ' + CROSSBAR_VERSION if crossbar else 'no Crossbar (--without-crossbar)'}, {date}, {machine}.",
        f"{opts.serializer} over {opts.transport}, 64-byte payloads, median of {opts.runs} alternating runs of {opts.duration:g} s; release build.",
        "",
        "| scenario | Switchboard rate/s | Crossbar rate/s | rate ratio | Switchboard router CPU µs/op | Crossbar router CPU µs/op | CPU ratio | Switchboard p50/p99 µs | Crossbar p50/p99 µs | transport limit rate/s, CPU µs/op | all runs correct |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s, sb, cb, tl, rr, cr, ok in rows:
        extra = ""
        if s.startswith("idle"):
            extra = f" (memory: {fmt(sb.get('kb_per_session'))} vs {fmt(cb.get('kb_per_session'))} KB/session; router RSS {fmt(sb.get('router_rss_kb'))} vs {fmt(cb.get('router_rss_kb'))} KB)"
        lines.append(
            f"| {s}{extra} | {fmt(sb.get('rate'))} | {fmt(cb.get('rate'))} | {fmt(rr)}x | {fmt(sb.get('router_cpu_us_per_op'), 2)} | "
            f"{fmt(cb.get('router_cpu_us_per_op'), 2)} | {fmt(cr)}x | {fmt(sb.get('p50_us'))}/{fmt(sb.get('p99_us'))} | "
            f"{fmt(cb.get('p50_us'))}/{fmt(cb.get('p99_us'))} | "
            f"{fmt(tl.get('rate')) + ', ' + fmt(tl.get('router_cpu_us_per_op'), 2) if tl else '-'} | {'yes' if ok else 'NO'} |")
    if baseline:
        lines += [
            "",
            f"Against the baseline build ({baseline}), same runs:",
            "",
            "| scenario | rate/s | baseline rate/s | router CPU µs/op | baseline router CPU µs/op | CPU after/before | p50 µs | baseline p50 µs | KB/session (idle) | baseline KB/session |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for s in scenarios:
            sb, bl = summary[s]["medians"].get("switchboard", {}), summary[s]["medians"].get("baseline", {})
            cpu_ratio = (sb.get("router_cpu_us_per_op") / bl.get("router_cpu_us_per_op")
                         if sb.get("router_cpu_us_per_op") and bl.get("router_cpu_us_per_op") else None)
            lines.append(f"| {s} | {fmt(sb.get('rate'))} | {fmt(bl.get('rate'))} | {fmt(sb.get('router_cpu_us_per_op'), 2)} | "
                         f"{fmt(bl.get('router_cpu_us_per_op'), 2)} | {fmt(cpu_ratio, 3)} | {fmt(sb.get('p50_us'))} | {fmt(bl.get('p50_us'))} | "
                         f"{fmt(sb.get('kb_per_session'))} | {fmt(bl.get('kb_per_session'))} |")
    table = "\n".join(lines)
    print(table)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{date}-{commit}-{opts.serializer}-{opts.transport}"
    stem.with_suffix(".md").write_text(table + "\n")
    stem.with_suffix(".json").write_text(json.dumps({
        "commit": commit, "date": date, "machine": machine, "crossbar": CROSSBAR_VERSION if crossbar else None,
        "baseline": str(baseline) if baseline else None,
        "flags": {"runs": opts.runs, "duration_s": opts.duration, "serializer": opts.serializer,
                  "transport": opts.transport, "cargo_profile": "release"},
        "summary": summary, "raw": results}, indent=1))
    log(f"wrote {stem}.md and {stem}.json")
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    if dirty:
        log("note: the working tree had uncommitted changes; the commit id names only the base")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
