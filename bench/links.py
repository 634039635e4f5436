#!/usr/bin/env python3
"""The cost of a router-to-router link: the same load through one router, and across a link
between two, in one run.

Router A runs the callee (rpc) and the publishers (pubsub); router B, linked to A with the seed's
`links` form, has the callers and the subscribers. The same load against A alone is the
baseline. Both routers' CPU is sampled over the measured window (`--router-pid` for B,
`--origin-pid` for A), so a linked operation's total router CPU (A + B) compares with a local
operation's. Runs alternate (local, linked, local, ...) and the medians are reported, because this
machine is shared and noisy.

    bench/links.py [--runs 3] [--duration 5] [--no-build] [--out bench/results/links.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ALL = {"call": True, "register": True, "publish": True, "subscribe": True}
TICKET = "bench-link-ticket"


def log(msg):
    print(f"[links] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(port, link_to=None):
    auth = {
        "anonymous": {"type": "static", "role": "anonymous"},
        "ticket": {"type": "static", "principals": {"router-b": {"ticket": TICKET, "role": "peer"}}},
    }
    worker = {
        "type": "router",
        "realms": [{"name": "realm1", "roles": [
            {"name": "anonymous", "permissions": [{"uri": "", "match": "prefix", "allow": ALL}]},
            {"name": "peer", "link": True, "permissions": [{"uri": "", "match": "prefix", "allow": ALL}]},
        ]}],
        "transports": [{
            "type": "universal",
            "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1", "backlog": 1024},
            "rawsocket": {"serializers": ["json", "msgpack", "cbor"], "auth": auth},
            "websocket": {"ws": {"type": "websocket", "serializers": ["json", "msgpack", "cbor"], "auth": auth}},
        }],
    }
    if link_to:
        worker["links"] = [{"type": "rawsocket", "endpoint": f"tcp:127.0.0.1:{link_to}", "realms": ["realm1"],
                            "serializer": "msgpack", "authid": "router-b", "auth": {"ticket": TICKET}}]
    return {"version": 2, "workers": [worker]}


def wait_port(port, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def start(binary, workdir, name, port, link_to=None):
    node = workdir / name
    node.mkdir()
    (node / "config.json").write_text(json.dumps(config(port, link_to)))
    proc = subprocess.Popen([str(binary), "start", str(node), "--loglevel", "warn"],
                            stdout=subprocess.DEVNULL, stderr=open(workdir / f"{name}.log", "w"),
                            start_new_session=True)
    wait_port(port)
    return proc


def stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


def load(load_bin, scenario_args, url, pid, duration, origin=None):
    cmd = [str(load_bin)] + scenario_args[:1] + [
        "--url", url, "--serializer", "msgpack", "--duration", str(duration), "--warmup", "1",
        "--router-pid", str(pid), "--quiet"] + scenario_args[1:]
    if origin:
        cmd += ["--origin-url", origin[0], "--origin-pid", str(origin[1])]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration * 4 + 120)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"{' '.join(cmd)}: no result (exit {out.returncode}): {out.stderr[-2000:]}")
    result = json.loads(lines[-1])
    result["exit_code"] = out.returncode
    return result


def cpu_per_op(process):
    return (process or {}).get("cpu_us_per_op")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--out", type=Path)
    opts = ap.parse_args()
    if not opts.no_build:
        log("building release binaries")
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "switchboard", "-p", "switchboard-load"],
                       cwd=REPO, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release"
    binary, load_bin = target / "switchboard", target / "switchboard-load"
    # pubsub with 1 publish in flight is a rate the link carries; with 16 in flight the publisher
    # outruns it on a 2-core machine, and the link drops the oldest events (at most once, counted):
    # that run shows the overload behaviour, its `lost` is expected.
    scenarios = {
        "rpc 8x16": ["rpc", "--callers", "8", "--in-flight", "16"],
        "pubsub 1->10, 1 in flight": ["pubsub", "--publishers", "1", "--subscribers", "10", "--in-flight", "1"],
        "pubsub 1->10, 16 in flight (overload)": ["pubsub", "--publishers", "1", "--subscribers", "10",
                                                  "--in-flight", "16"],
    }
    rows = {name: {"local": [], "linked": []} for name in scenarios}
    with tempfile.TemporaryDirectory(prefix="sblinks-") as tmp:
        workdir = Path(tmp)
        pa, pb = free_port(), free_port()
        a = start(binary, workdir, "a", pa)
        b = start(binary, workdir, "b", pb, link_to=pa)
        url_a, url_b = f"rs://127.0.0.1:{pa}", f"rs://127.0.0.1:{pb}"
        try:
            time.sleep(1.0)  # the link connects
            for run in range(opts.runs):
                for name, args in scenarios.items():
                    local = load(load_bin, args, url_a, a.pid, opts.duration)
                    linked = load(load_bin, args, url_b, b.pid, opts.duration, origin=(url_a, a.pid))
                    for kind, r in (("local", local), ("linked", linked)):
                        row = {
                            "rate": r.get("rate"),
                            "p50_us": (r.get("latency_us") or {}).get("p50"),
                            "router_cpu_us_per_op": cpu_per_op(r.get("router")),
                            "origin_cpu_us_per_op": cpu_per_op(r.get("origin_router")),
                            "correct": r["exit_code"] == 0,
                            "lost": r.get("lost"),
                        }
                        row["total_router_cpu_us_per_op"] = (row["router_cpu_us_per_op"] or 0) + (
                            row["origin_cpu_us_per_op"] or 0)
                        rows[name][kind].append(row)
                        log(f"run {run + 1} {name} {kind}: {row}")
        finally:
            stop(b)
            stop(a)

    def med(name, kind, key):
        values = [r[key] for r in rows[name][kind] if isinstance(r.get(key), (int, float))]
        return statistics.median(values) if values else None

    summary = {}
    for name in scenarios:
        local = med(name, "local", "total_router_cpu_us_per_op")
        linked = med(name, "linked", "total_router_cpu_us_per_op")
        summary[name] = {
            "local_rate": med(name, "local", "rate"),
            "linked_rate": med(name, "linked", "rate"),
            "local_router_cpu_us_per_op": local,
            "linked_router_b_cpu_us_per_op": med(name, "linked", "router_cpu_us_per_op"),
            "linked_router_a_cpu_us_per_op": med(name, "linked", "origin_cpu_us_per_op"),
            "linked_total_cpu_us_per_op": linked,
            "cpu_ratio_linked_to_local": round(linked / local, 2) if local and linked else None,
            "all_correct": all(r["correct"] for k in ("local", "linked") for r in rows[name][k]),
            "linked_lost": med(name, "linked", "lost"),
        }
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "commit": commit,
        "machine": f"{os.cpu_count()} cores, Linux {platform.release()}",
        "setup": f"msgpack over RawSocket, 64-byte payloads, median of {opts.runs} alternating runs of "
                 f"{opts.duration:g} s; release build; the link is RawSocket/msgpack on loopback",
        "summary": summary,
        "runs": rows,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if opts.out:
        opts.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
