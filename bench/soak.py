#!/usr/bin/env python3
"""Soak run: a release router under mixed load for a long time, with correctness checks, and its
memory and CPU over time. Not part of CI (it runs for SOAK_MINUTES, 30 by default).

    bench/soak.py                       # 30 minutes
    bench/soak.py --minutes 5           # a short one
    bench/soak.py --python .venv/bin/python

What runs against one router, side by side:
- rpc: the load tool, 2 callers x 8 calls in flight, in one-minute runs (callers and callee join
  and leave every minute); every call must be answered exactly once, in order;
- pubsub: the load tool, 1 publisher x 8 acknowledged publications in flight to 10 subscribers, in
  one-minute runs; every subscriber must get every acknowledged event once, in order;
- connect: the load tool, sessions joining and leaving, 4 at a time, in one-minute runs;
- a pattern subscriber (Autobahn|Python, prefix match on `soak.pattern.`) fed by a publisher of
  about 500 acknowledged events a second on three topics: the sequence numbers must arrive
  without gaps, duplicates or reordering;
- a slow consumer: a raw WebSocket client that subscribes to the same prefix and to the load
  tool's pubsub topics and never reads; the router must close it (it is replaced every minute and
  each one must have been closed);
- a victim callee (Autobahn|Python) killed with `wamp.session.kill` every minute and coming back,
  while a caller keeps 4 calls in flight to it: every call must get an answer (its result, or an
  ERROR when its callee was killed), none may go unanswered.
Every 5 s it records the router's RSS and CPU. The result (a Markdown summary) goes to
bench/results/<date>-soak.md: pass when no check failed and the RSS after warm-up stays flat.

Needs the release binaries (cargo build --release -p switchboard -p switchboard-load) and a
Python with Autobahn (the interop suite's .venv, which tests/interop/run.sh creates).
"""

import argparse
import asyncio
import base64
import datetime
import json
import os
import platform
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PORT = 18777

CONFIG = {
    "version": 2,
    "workers": [{
        "type": "router",
        "realms": [{"name": "realm1", "roles": [{"name": "anonymous", "permissions": [{
            "uri": "", "match": "prefix",
            "allow": {"call": True, "register": True, "publish": True, "subscribe": True}}]}]}],
        "transports": [{
            "type": "universal",
            "endpoint": {"type": "tcp", "port": PORT, "interface": "127.0.0.1", "backlog": 1024},
            "rawsocket": {}, "websocket": {"ws": {"type": "websocket"}}}],
    }],
}

# The clients run in a Python with Autobahn (a separate process: this script needs only the
# standard library). They print one JSON line of counts when told to stop (SIGTERM).
CLIENTS = r'''
import asyncio, json, signal, socket, struct, base64, os, sys, time
from autobahn.asyncio.component import Component
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions, SubscribeOptions

URL = sys.argv[1]
counts = {"pattern_published": 0, "pattern_events": 0, "pattern_gaps": 0,
          "pattern_duplicates_or_reorders": 0, "pattern_resubscribed": 0,
          "victim_calls_answered": 0, "victim_results": 0, "victim_errors": 0,
          "victim_unanswered": 0, "victim_kills": 0,
          "slow_consumers": 0, "slow_consumers_closed": 0}
stop = asyncio.Event()

def component(retries=-1):
    return Component(transports=[{"type": "websocket", "url": URL, "max_retries": retries,
                                  "initial_retry_delay": 0.2, "max_retry_delay": 1}], realm="realm1")

async def pattern_subscriber():
    """A prefix subscription on `soak.pattern.`, fed by `pattern_publisher`: one publisher's events
    reach one subscription in order, so the sequence numbers must run without a gap."""
    last = {"seq": None}
    joined = asyncio.Event()
    c = component()
    @c.on_join
    async def _(session, details):
        if joined.is_set():
            counts["pattern_resubscribed"] += 1
        def on_event(seq, details=None):
            counts["pattern_events"] += 1
            prev = last["seq"]
            if prev is not None:
                if seq > prev + 1:
                    counts["pattern_gaps"] += seq - prev - 1
                elif seq <= prev:
                    counts["pattern_duplicates_or_reorders"] += 1
            last["seq"] = seq
        await session.subscribe(on_event, "soak.pattern.",
                                 options=SubscribeOptions(match="prefix", details_arg="details"))
        joined.set()
    asyncio.ensure_future(c.start())
    await joined.wait()

async def pattern_publisher():
    """About 500 acknowledged events a second on three topics under `soak.pattern.`."""
    ready = asyncio.Event()
    holder = {}
    c = component()
    @c.on_join
    async def _(session, details):
        holder["s"] = session
        ready.set()
    asyncio.ensure_future(c.start())
    await ready.wait()
    seq = 0
    while not stop.is_set():
        seq += 1
        await holder["s"].publish(f"soak.pattern.t{seq % 3}", seq,
                                  options=PublishOptions(acknowledge=True))
        counts["pattern_published"] += 1
        await asyncio.sleep(0.002)

async def victim_and_caller():
    victim_ids = []
    class Victim:
        def __init__(self):
            # No reconnection: a killed victim is replaced by a new one (see killer).
            self.c = component(retries=0)
            @self.c.on_join
            async def _(session, details):
                async def work(n):
                    await asyncio.sleep(0.05)
                    return n
                await session.register(work, "soak.victim")
                victim_ids.append(session.session_id)
            asyncio.ensure_future(self.c.start())
    Victim()
    admin = {}
    ready = asyncio.Event()
    c = component()
    @c.on_join
    async def _(session, details):
        admin["s"] = session
        ready.set()
    asyncio.ensure_future(c.start())
    await ready.wait()
    session = admin["s"]

    async def one_caller():
        n = 0
        while not stop.is_set():
            n += 1
            try:
                await asyncio.wait_for(session.call("soak.victim", n), 10)
                counts["victim_results"] += 1
                counts["victim_calls_answered"] += 1
            except asyncio.TimeoutError:
                counts["victim_unanswered"] += 1
            except ApplicationError as e:
                counts["victim_errors"] += 1
                counts["victim_calls_answered"] += 1
                if e.error == "wamp.error.no_such_procedure":
                    await asyncio.sleep(0.05)

    async def killer():
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 60)
            except asyncio.TimeoutError:
                pass
            if stop.is_set() or not victim_ids:
                break
            try:
                await session.call("wamp.session.kill", victim_ids[-1])
                counts["victim_kills"] += 1
            except ApplicationError:
                pass
            Victim()   # the killed callee comes back as a new session

    await asyncio.gather(*(one_caller() for _ in range(4)), killer())

def ws_frame(op, payload):
    mask = os.urandom(4)
    head = bytes([0x80 | op])
    head += bytes([0x80 | len(payload)]) if len(payload) < 126 else bytes([0x80 | 126]) + struct.pack(">H", len(payload))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

def slow_consumer():
    host, port = URL.split("//")[1].split("/")[0].split(":")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A small receive buffer, set before connecting so that the window stays small: the router's
    # side fills up within seconds; then nothing is ever read.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Protocol: wamp.2.json\r\n\r\n").encode())
    s.sendall(ws_frame(1, b'[1,"realm1",{"roles":{"subscriber":{}}}]'))
    s.sendall(ws_frame(1, b'[32,1,{"match":"prefix"},"soak.pattern."]'))
    s.sendall(ws_frame(1, b'[32,2,{"match":"prefix"},"switchboard.load.topic."]'))
    s.setblocking(False)
    counts["slow_consumers"] += 1
    return s

async def closed_by_router(s):
    """Reads what the router sent until the end of the stream (the close is queued behind what the
    socket buffers still hold), without blocking the other clients; false if the stream is still
    open after 30 s of reading."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    try:
        while loop.time() < deadline:
            chunk = await asyncio.wait_for(loop.sock_recv(s, 1 << 20), deadline - loop.time())
            if not chunk:
                return True
        return False
    except asyncio.TimeoutError:
        return False
    except OSError:
        return True
    finally:
        s.close()

async def slow_consumers():
    s = slow_consumer()
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 60)
        except asyncio.TimeoutError:
            pass
        if await closed_by_router(s):
            counts["slow_consumers_closed"] += 1
        if not stop.is_set():
            s = slow_consumer()

async def main():
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await pattern_subscriber()
    await asyncio.gather(pattern_publisher(), victim_and_caller(), slow_consumers())
    print(json.dumps(counts), flush=True)

asyncio.run(main())
'''


def rss_and_cpu(pid):
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu_s = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    rss_kb = next(int(l.split()[1]) for l in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if l.startswith("VmRSS"))
    return rss_kb, cpu_s


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {port}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", 30)))
    ap.add_argument("--python", default=str(REPO / ".venv" / "bin" / "python"))
    ap.add_argument("--out", default=str(REPO / "bench" / "results"))
    opts = ap.parse_args()
    target = REPO / "target" / "release"
    router_bin, load_bin = target / "switchboard", target / "switchboard-load"
    for b in (router_bin, load_bin):
        if not b.exists():
            sys.exit(f"{b} is missing: cargo build --release -p switchboard -p switchboard-load")
    workdir = Path(tempfile.mkdtemp(prefix="sb-soak-"))
    (workdir / "config.json").write_text(json.dumps(CONFIG))
    router = subprocess.Popen([str(router_bin), "start", str(workdir), "--loglevel", "warn"],
                              stdout=subprocess.DEVNULL, stderr=open(workdir / "router.log", "w"))
    wait_port(PORT)
    url = f"ws://127.0.0.1:{PORT}/ws"
    clients = subprocess.Popen([opts.python, "-c", CLIENTS, url], stdout=subprocess.PIPE,
                               stderr=open(workdir / "clients.log", "w"), text=True)
    end = time.time() + opts.minutes * 60
    loads = {
        "rpc": ["rpc", "--callers", "2", "--in-flight", "8"],
        "pubsub": ["pubsub", "--publishers", "1", "--subscribers", "10", "--in-flight", "8"],
        "connect": ["connect", "--concurrency", "4"],
    }
    running = {}
    results = {name: [] for name in loads}
    samples = []
    started = time.time()
    try:
        while time.time() < end:
            for name, args in loads.items():
                proc = running.get(name)
                if proc is not None and proc.poll() is not None:
                    line = next((l for l in proc.stdout.read().splitlines() if l.startswith("{")), None)
                    report = json.loads(line) if line else {}
                    report["exit_code"] = proc.returncode
                    results[name].append(report)
                    running.pop(name)
                if name not in running and time.time() + 70 < end:
                    running[name] = subprocess.Popen(
                        [str(load_bin)] + args[:1] + ["--url", url, "--duration", "60", "--warmup", "1",
                                                      "--router-pid", str(router.pid), "--quiet", "--threads", "1"]
                        + args[1:], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            rss, cpu = rss_and_cpu(router.pid)
            samples.append((time.time() - started, rss, cpu))
            time.sleep(5)
        for proc in running.values():
            proc.wait(timeout=120)
    finally:
        clients.terminate()
        try:
            client_counts = json.loads(clients.communicate(timeout=60)[0].strip().splitlines()[-1])
        except Exception as e:  # noqa: BLE001 - reported below
            client_counts = {"error": repr(e)}
        router.terminate()
        router.wait(timeout=30)

    def bad(r):
        return r.get("exit_code") != 0 or any(r.get(k, 0) for k in ("errors", "lost", "duplicated", "reordered"))

    failures = []
    for name, runs in results.items():
        if not runs:
            failures.append(f"{name}: no run finished")
        failures += [f"{name} run {i + 1}: {json.dumps({k: r.get(k) for k in ('exit_code', 'errors', 'lost', 'duplicated', 'reordered')})}"
                     for i, r in enumerate(runs) if bad(r)]
    for key in ("pattern_gaps", "pattern_duplicates_or_reorders", "pattern_resubscribed", "victim_unanswered"):
        if client_counts.get(key, 1) != 0:
            failures.append(f"{key}: {client_counts.get(key)}")
    if client_counts.get("slow_consumers_closed", 0) < client_counts.get("slow_consumers", 1) - 1:
        failures.append("a slow consumer was not closed by the router")
    warm = [s for s in samples if s[0] >= 300] or samples[len(samples) // 2:]
    rss_warm, rss_end = warm[0][1], samples[-1][1]
    rss_max = max(s[1] for s in warm)
    flat = rss_end <= rss_warm * 1.25 + 4096
    if not flat:
        failures.append(f"RSS grew after warm-up: {rss_warm} -> {rss_end} KiB")
    cpu_share = (samples[-1][2] - samples[0][2]) / max(samples[-1][0] - samples[0][0], 1)

    date = datetime.date.today().isoformat()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    machine = f"{os.cpu_count()} cores, Linux {platform.release()}"
    ops = {name: sum((r.get("ops") or 0) for r in runs) for name, runs in results.items()}
    lines = [
        f"# Soak run, {date}, commit {commit}, {machine}",
        "",
        f"{opts.minutes:g} minutes of mixed load against one release router (`bench/soak.py`).",
        "",
        f"Result: **{'pass' if not failures else 'FAIL'}**",
        "",
        "| what | figure |",
        "|---|---|",
        f"| rpc runs (one minute each) | {len(results['rpc'])}, {ops['rpc']:,} calls measured |",
        f"| pubsub runs | {len(results['pubsub'])}, {ops['pubsub']:,} events delivered |",
        f"| connect runs | {len(results['connect'])}, {ops['connect']:,} session cycles |",
        f"| load tool errors / lost / duplicated / reordered | {sum(sum((r.get(k) or 0) for r in runs) for runs in results.values() for k in ('errors', 'lost', 'duplicated', 'reordered'))} |",
        f"| pattern subscription: published, received, gaps, duplicates or reorders, resubscribed | {client_counts.get('pattern_published')}, {client_counts.get('pattern_events')}, {client_counts.get('pattern_gaps')}, {client_counts.get('pattern_duplicates_or_reorders')}, {client_counts.get('pattern_resubscribed')} |",
        f"| killed callee: kills, calls answered (results / errors), unanswered | {client_counts.get('victim_kills')}, {client_counts.get('victim_calls_answered')} ({client_counts.get('victim_results')} / {client_counts.get('victim_errors')}), {client_counts.get('victim_unanswered')} |",
        f"| slow consumers started / closed by the router | {client_counts.get('slow_consumers')} / {client_counts.get('slow_consumers_closed')} |",
        f"| router RSS at 5 min / max after / at the end | {rss_warm:,} / {rss_max:,} / {rss_end:,} KiB |",
        f"| router CPU | {cpu_share:.2f} cores on average |",
    ]
    if failures:
        lines += ["", "Failures:", ""] + [f"- {f}" for f in failures]
    lines += ["", "RSS (KiB) over time, one sample a minute:", "",
              " ".join(f"{int(t // 60)}m:{rss}" for t, rss, _ in samples[::12])]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{date}-soak.md").write_text(text)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
