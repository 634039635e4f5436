#!/usr/bin/env python3
"""The HTTP bridge benchmark: Switchboard against Crossbar.io, one command, with `wrk` (Debian
package wrk) as the HTTP client.

Both routers run the same Crossbar-format config (realm `realm1`, anonymous allowed everything,
one web transport on loopback with a WebSocket path `ws`, a `publisher` path `publish` and a
`caller` path `call`), one after the other (A B A B ...), --runs times each:

- http-publish: wrk POSTs {"topic": ..., "args": ["<64 bytes>"]} over keep-alive connections;
  nobody subscribes (the figure is the bridge and the broker, not fan-out).
- http-call: wrk POSTs {"procedure": ..., "args": ["<64 bytes>"]}; the callee is the load tool's
  `callee` scenario over WebSocket (Rust, the same for both routers), so the figure is the
  bridge, the dealer and one WAMP round trip.
- longpoll-call: one WAMP session over HTTP long-poll (as a browser without WebSocket has),
  calling the same callee one call after the other (CALL by `send`, RESULT by `receive`, on two
  keep-alive connections); a Python client. Switchboard only: Crossbar.io 26.10.1's long-poll
  does not open sessions (its router asserts "unexpected router transport type
  WampLongPollResourceSession" and answers the HELLO with 400 "could not unserialize WAMP
  message").

Per run: requests per second (wrk), non-2xx answers (must be 0), and the router's CPU time per
request (from /proc, the routing process only: for Crossbar its router worker). Medians and the
Switchboard/Crossbar ratios are printed and written to bench/results/.

    bench/http_bridge.py                         # 3 runs of 10 s per scenario and router
    bench/http_bridge.py --runs 5 --duration 5 --connections 64
    bench/http_bridge.py --without-crossbar      # Switchboard only
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402  (the shared helpers: Crossbar's install, process lookups, ports)

REPO = compare.REPO
SB_PORT, CB_PORT = 18180, 18190
PROCEDURE = "com.example.bench.echo"
PAD = "x" * 64
# Scenarios the peer cannot run (see the docstring).
SWITCHBOARD_ONLY = {"longpoll-call"}


def log(msg):
    print(f"[http-bridge] {msg}", file=sys.stderr, flush=True)


def node_config(port):
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
                "type": "web",
                "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1", "backlog": 1024},
                "paths": {
                    "ws": {"type": "websocket", "serializers": ["json", "msgpack", "cbor"]},
                    "publish": {"type": "publisher", "realm": "realm1", "role": "anonymous"},
                    "call": {"type": "caller", "realm": "realm1", "role": "anonymous"},
                    "lp": {"type": "longpoll"},
                },
            }],
        }],
    }


def cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(who, workdir, binary, crossbar, generation):
    if who == "switchboard":
        node = workdir / f"switchboard-{generation}"
        node.mkdir()
        (node / "config.json").write_text(json.dumps(node_config(SB_PORT), indent=2))
        proc = subprocess.Popen([str(binary), "start", str(node), "--loglevel", "warn"],
                                stdout=subprocess.DEVNULL, stderr=open(workdir / "switchboard.log", "a"),
                                start_new_session=True)
        compare.wait_port(SB_PORT)
        return compare.Router("switchboard", proc, proc.pid, SB_PORT)
    cbdir = workdir / f"crossbar-{generation}" / ".crossbar"
    cbdir.mkdir(parents=True)
    (cbdir / "config.json").write_text(json.dumps(node_config(CB_PORT), indent=2))
    proc = subprocess.Popen([str(crossbar), "start", "--cbdir", str(cbdir), "--loglevel", "warn"],
                            stdout=open(workdir / "crossbar.log", "a"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    compare.wait_port(CB_PORT, timeout=120)
    workers = [p for p in compare.children(proc.pid) if "worker" in compare.cmdline(p)]
    if not workers:
        raise RuntimeError("cannot find Crossbar's router worker process")
    return compare.Router("crossbar", proc, workers[0], CB_PORT)


def wrk_script(workdir, scenario):
    body = ({"topic": "com.example.bench.topic", "args": [PAD]} if scenario == "http-publish"
            else {"procedure": PROCEDURE, "args": [PAD]})
    path = workdir / f"{scenario}.lua"
    path.write_text('wrk.method = "POST"\n'
                    f"wrk.body = {json.dumps(json.dumps(body))}\n"
                    'wrk.headers["Content-Type"] = "application/json"\n')
    return path, body


def check_once(router, scenario, body):
    """One request with curl first: the path answers 200 with what Crossbar's bridge answers."""
    path = "publish" if scenario == "http-publish" else "call"
    out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "-H", "Content-Type: application/json",
                          "-d", json.dumps(body), f"http://127.0.0.1:{router.port}/{path}"],
                         capture_output=True, text=True, timeout=30)
    text, _, code = out.stdout.rpartition("\n")
    answer = json.loads(text or "null")
    ok = code == "200" and isinstance(answer, dict) and ("id" in answer or answer.get("args") == [PAD])
    if not ok:
        raise RuntimeError(f"{router.name} {path}: HTTP {code} {text!r}")


def parse_wrk(text):
    requests = non_2xx = 0
    rate = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("Requests/sec:"):
            rate = float(line.split()[1])
        elif "requests in" in line:
            requests = int(line.split()[0])
        elif line.startswith("Non-2xx or 3xx responses:"):
            non_2xx = int(line.split()[-1])
    if rate is None:
        raise RuntimeError(f"wrk printed no rate:\n{text}")
    return rate, requests, non_2xx


def longpoll_calls(router, duration):
    """Sequential calls over one long-poll session for `duration` seconds: (calls, seconds)."""
    import http.client

    def conn():
        return http.client.HTTPConnection("127.0.0.1", router.port, timeout=30)

    sender, receiver = conn(), conn()

    def post(c, path, body=b""):
        c.request("POST", f"/lp{path}", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, r.read()

    _, answer = post(sender, "/open", json.dumps({"protocols": ["wamp.2.json"]}).encode())
    tid = json.loads(answer)["transport"]

    def receive(kind):
        while True:
            status, body = post(receiver, f"/{tid}/receive")
            if status != 200:
                raise RuntimeError(f"long-poll receive answered {status}: {body!r}")
            if body:
                msg = json.loads(body)
                if msg[0] == kind:
                    return msg
                if msg[0] in (3, 8):
                    raise RuntimeError(f"long-poll session got {msg}")

    post(sender, f"/{tid}/send", json.dumps([1, "realm1", {"roles": {"caller": {}}}]).encode())
    receive(2)
    calls, request = 0, 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < duration:
        request += 1
        post(sender, f"/{tid}/send", json.dumps([48, request, {}, PROCEDURE, [PAD]]).encode())
        result = receive(50)
        if result[1] != request or result[3] != [PAD]:
            raise RuntimeError(f"unexpected result {result}")
        calls += 1
    seconds = time.monotonic() - t0
    post(sender, f"/{tid}/send", json.dumps([6, {}, "wamp.close.close_realm"]).encode())
    post(sender, f"/{tid}/close")
    return calls, seconds


def run_one(router, scenario, args, workdir, load_bin):
    if scenario == "longpoll-call":
        return run_longpoll(router, args, workdir, load_bin)
    script, body = wrk_script(workdir, scenario)
    callee = None
    if scenario == "http-call":
        callee = start_callee(router, args, workdir, load_bin)
        deadline = time.time() + 30
        while True:
            try:
                check_once(router, scenario, body)
                break
            except RuntimeError:
                if time.time() > deadline or callee.poll() is not None:
                    raise
                time.sleep(0.2)
    else:
        check_once(router, scenario, body)
    path = "publish" if scenario == "http-publish" else "call"
    try:
        before = cpu_seconds(router.pid)
        out = subprocess.run(["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{args.duration}s",
                              "-s", str(script), f"http://127.0.0.1:{router.port}/{path}"],
                             capture_output=True, text=True, timeout=args.duration + 60)
        after = cpu_seconds(router.pid)
    finally:
        if callee is not None:
            callee.terminate()
            callee.wait(timeout=30)
    rate, requests, non_2xx = parse_wrk(out.stdout)
    return {"rate": rate, "requests": requests, "non_2xx": non_2xx,
            "router_cpu_us_per_request": (after - before) * 1e6 / max(requests, 1)}


def start_callee(router, args, workdir, load_bin):
    return subprocess.Popen([str(load_bin), "callee", "--url", f"ws://127.0.0.1:{router.port}/ws",
                             "--procedure", PROCEDURE, "--duration", str(args.duration + 30),
                             "--warmup", "0", "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=open(workdir / "callee.log", "a"))


def run_longpoll(router, args, workdir, load_bin):
    callee = start_callee(router, args, workdir, load_bin)
    try:
        deadline = time.time() + 30
        while True:
            try:
                check_once(router, "http-call", {"procedure": PROCEDURE, "args": [PAD]})
                break
            except RuntimeError:
                if time.time() > deadline or callee.poll() is not None:
                    raise
                time.sleep(0.2)
        before = cpu_seconds(router.pid)
        calls, seconds = longpoll_calls(router, args.duration)
        after = cpu_seconds(router.pid)
    finally:
        callee.terminate()
        callee.wait(timeout=30)
    return {"rate": calls / seconds, "requests": calls, "non_2xx": 0,
            "router_cpu_us_per_request": (after - before) * 1e6 / max(calls, 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--without-crossbar", action="store_true")
    ap.add_argument("--no-build", action="store_true", help="use target/release as it is")
    ap.add_argument("--out", type=Path, default=None, help="result JSON (default: bench/results/<date>-http-bridge.json)")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    if not args.no_build:
        log("building switchboard and switchboard-load (release)")
        subprocess.run(["cargo", "build", "--release", "-p", "switchboard", "-p", "switchboard-load"], cwd=REPO, check=True)
    binary, load_bin = REPO / "target/release/switchboard", REPO / "target/release/switchboard-load"
    crossbar = None if args.without_crossbar else compare.ensure_crossbar()
    routers = ["switchboard"] + ([] if args.without_crossbar else ["crossbar"])
    scenarios = ["http-publish", "http-call", "longpoll-call"]
    raw = {s: {r: [] for r in routers} for s in scenarios}
    workdir = Path(tempfile.mkdtemp(prefix="sb-http-bench-"))
    generation = 0
    try:
        for run in range(args.runs):
            for who in routers:
                generation += 1
                router = start(who, workdir, binary, crossbar, generation)
                try:
                    for scenario in scenarios:
                        if scenario in SWITCHBOARD_ONLY and who != "switchboard":
                            continue
                        r = run_one(router, scenario, args, workdir, load_bin)
                        raw[scenario][who].append(r)
                        log(f"run {run + 1}/{args.runs} {scenario} {who}: {r['rate']:.0f}/s, "
                            f"{r['router_cpu_us_per_request']:.1f} µs router CPU per request, {r['non_2xx']} non-2xx")
                finally:
                    router.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    def median(scenario, who, key):
        return statistics.median(r[key] for r in raw[scenario][who])

    summary = {}
    for scenario in scenarios:
        row = {who: {"rate": median(scenario, who, "rate"),
                     "router_cpu_us_per_request": median(scenario, who, "router_cpu_us_per_request"),
                     "non_2xx": sum(r["non_2xx"] for r in raw[scenario][who])}
               for who in routers if raw[scenario][who]}
        if "crossbar" in row:
            row["rate_ratio"] = row["switchboard"]["rate"] / row["crossbar"]["rate"]
            row["cpu_ratio"] = row["crossbar"]["router_cpu_us_per_request"] / row["switchboard"]["router_cpu_us_per_request"]
        summary[scenario] = row
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "commit": commit,
              "machine": f"{platform.node()} {os.cpu_count()} cores", "args": vars(args) | {"out": str(args.out)},
              "summary": summary, "raw": raw}
    out = args.out or REPO / "bench" / "results" / f"{datetime.date.today()}-http-bridge.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'scenario':<14} {'router':<12} {'req/s':>10} {'µs CPU/req':>11} {'non-2xx':>8}")
    for scenario, row in summary.items():
        for who in (w for w in routers if w in row):
            r = row[who]
            print(f"{scenario:<14} {who:<12} {r['rate']:>10.0f} {r['router_cpu_us_per_request']:>11.1f} {r['non_2xx']:>8}")
        if "rate_ratio" in row:
            print(f"{scenario:<14} {'ratio':<12} {row['rate_ratio']:>9.1f}x {row['cpu_ratio']:>10.1f}x")
    log(f"written to {out}")


if __name__ == "__main__":
    main()
