#!/usr/bin/env python3
"""Side-by-side benchmark: Switchboard against Crossbar.io, with NATS as the bare-broker reference,
on this machine, one command.

Builds Switchboard and the load tool in release mode, installs Crossbar.io from PyPI into a cached
virtualenv, starts both routers from the same node config (one router worker, realm `realm1`,
anonymous access plus ticket and WAMP-CRA principals; WebSocket and RawSocket on one loopback port,
WebSocket over TLS on a second one, with a certificate made by the `openssl` CLI), starts
`nats-server` (no JetStream), and runs every scenario against all of them in alternation
(A B C A B C ..., reversed every other run), --runs times each. Prints the medians and the ratios,
and writes them with the commit, machine and flags to bench/results/.

A run covers configurations: serializer (json, msgpack, cbor) x transport (websocket, rawsocket,
websocket-tls) x payload (bytes of padding in each call or event: 64, 4096, 65536). By default one
configuration, json over WebSocket at 64 bytes; --matrix runs a preset that fits a 2-core machine in
about 20 minutes (rpc-8x16, rpc-1x1 and pubsub-1x100, 3 runs of 4 s):

    json/websocket at 64, 4096 and 65536 bytes; msgpack/websocket and cbor/websocket at 64;
    json over rawsocket and over websocket-tls at 64

connect and idle scenarios run on the first configuration only.

NATS stands in where the scenario maps onto a bare broker: rpc as request-reply (the load tool's
callers send requests with their inbox as reply subject, one responder connection echoes them),
pubsub as fan-out on one subject (a publisher's own copy coming back is its acknowledgement); see
crates/switchboard-load/src/scenario/nats.rs. Serializer and transport mean nothing to NATS: it runs
once per scenario and payload size, and its figures appear on every row of that payload.

The primary figure is the router's CPU time per operation (read from /proc by the load tool): it
does not depend on who else uses the machine's cores, unlike rates on a shared 2-core box. For NATS
it is the nats-server process's.

    bench/compare.py                      # all scenarios, json over WebSocket, 64 B, 5 runs of 5 s
    bench/compare.py --runs 3 --duration 3 --scenarios rpc-8x16,pubsub-1x100
    bench/compare.py --matrix             # the preset above, written as <date>-<commit>-matrix
    bench/compare.py --serializers json,cbor --transports websocket-tls --payloads 64,4096

With --baseline BIN, a second Switchboard binary (a release build of an earlier commit) runs in the
same alternation, and a second table gives this build's figures against it: the before/after check
of a change. --without-crossbar leaves Crossbar out (for a quick before/after run), --without-nats
leaves NATS out.
"""

import argparse
import datetime
import itertools
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

# name -> load tool arguments, what "ops" are, the transport-limit reference against
# switchboard-echo (or None), whether --payload applies (the scenario runs on every configuration),
# and whether NATS can stand in for the router.
SCENARIOS = {
    "rpc-8x16": {"args": ["rpc", "--callers", "8", "--in-flight", "16", "--payload", "64"], "ops": "calls",
                 "reference": ["echo", "--connections", "8", "--in-flight", "16", "--payload", "64"],
                 "sized": True, "nats": True},
    "rpc-1x1": {"args": ["rpc", "--callers", "1", "--in-flight", "1", "--payload", "64"], "ops": "calls",
                "reference": None, "sized": True, "nats": True},
    "pubsub-1x100": {"args": ["pubsub", "--publishers", "1", "--subscribers", "100", "--in-flight", "16", "--payload", "64"],
                     "ops": "events",
                     "reference": ["fanout", "--publishers", "1", "--subscribers", "100", "--in-flight", "16", "--payload", "64"],
                     "sized": True, "nats": True},
    "connect-50": {"args": ["connect", "--concurrency", "50"], "ops": "sessions", "reference": None, "sized": False, "nats": False},
    # The same with authentication: the challenge round trip and the router's checks.
    "connect-50-ticket": {"args": ["connect", "--concurrency", "50", "--ticket", "joe:bench-ticket"], "ops": "sessions",
                          "reference": None, "sized": False, "nats": False},
    "connect-50-wampcra": {"args": ["connect", "--concurrency", "50", "--wampcra", "peter:bench-secret"], "ops": "sessions",
                           "reference": None, "sized": False, "nats": False},
    "idle-1000": {"args": ["idle", "--sessions", "1000", "--concurrency", "50"], "ops": "sessions", "reference": None,
                  "sized": False, "nats": False},
}

SERIALIZERS = ["json", "msgpack", "cbor"]
TRANSPORTS = ["websocket", "rawsocket", "websocket-tls"]
# (serializer, transport, payload bytes)
DEFAULT_CONFIG = ("json", "websocket", 64)
MATRIX = [
    ("json", "websocket", 64), ("json", "websocket", 4096), ("json", "websocket", 65536),
    ("msgpack", "websocket", 64), ("cbor", "websocket", 64),
    ("json", "rawsocket", 64), ("json", "websocket-tls", 64),
]
MATRIX_SCENARIOS = ["rpc-8x16", "rpc-1x1", "pubsub-1x100"]
MATRIX_RUNS, MATRIX_DURATION = 3, 4.0

# Each router listens on PORT (WebSocket and RawSocket) and PORT + 1 (WebSocket over TLS).
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


def node_config(port, tls=None):
    """The same Crossbar-format node config for both routers; with `tls` (key and certificate
    paths), a second transport on port + 1: WebSocket over TLS."""
    serializers = ["json", "msgpack", "cbor"]
    websocket = {"ws": {"type": "websocket", "serializers": serializers, "auth": AUTH}}
    transports = [{
        "type": "universal",
        "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1", "backlog": 1024},
        "rawsocket": {"serializers": serializers, "auth": AUTH},
        "websocket": websocket,
    }]
    if tls:
        transports.append({
            "type": "universal",
            "endpoint": {"type": "tcp", "port": port + 1, "interface": "127.0.0.1", "backlog": 1024,
                         "tls": {"key": str(tls["key"]), "certificate": str(tls["certificate"])}},
            "websocket": websocket,
        })
    return {
        "version": 2,
        "controller": {},
        "workers": [{
            "type": "router",
            "realms": [{"name": "realm1", "roles": [{"name": "anonymous", "permissions": [{
                "uri": "", "match": "prefix",
                "allow": {"call": True, "register": True, "publish": True, "subscribe": True},
                "disclose": {"caller": False, "publisher": False}, "cache": True}]}]}],
            "transports": transports,
        }],
    }


def make_certificate(workdir):
    """A CA and a server certificate for 127.0.0.1 signed by it, with the `openssl` CLI. The load
    tool trusts the CA (a self-signed server certificate would be a CA certificate under
    OpenSSL's defaults, which rustls refuses as a server's)."""
    openssl = shutil.which("openssl")
    if not openssl:
        sys.exit("websocket-tls needs the openssl command line tool to make a certificate: install it, or leave websocket-tls out")
    tls = workdir / "tls"
    tls.mkdir()
    (tls / "server.ext").write_text(
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature, keyEncipherment\n"
        "extendedKeyUsage = serverAuth\n"
        "subjectAltName = IP:127.0.0.1, DNS:localhost\n")
    steps = [
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=switchboard bench CA",
         "-keyout", "ca.key", "-out", "ca.crt"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr"],
        ["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
         "-extfile", "server.ext", "-out", "server.crt"],
    ]
    for step in steps:
        out = subprocess.run([openssl] + step, cwd=tls, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"openssl {' '.join(step)} failed: {out.stderr.strip()}")
    return {"key": tls / "server.key", "certificate": tls / "server.crt", "ca": tls / "ca.crt"}


def find_nats_server():
    return shutil.which("nats-server") or next(
        (p for p in ("/usr/sbin/nats-server", "/usr/local/bin/nats-server") if os.access(p, os.X_OK)), None)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    """A running router (or echo server, or NATS server) process; `pid` is the process that does the
    routing. `tls_port` is None where there is no TLS transport."""

    def __init__(self, name, proc, pid, port, tls_port=None):
        self.name, self.proc, self.pid, self.port, self.tls_port = name, proc, pid, port, tls_port

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def start_switchboard(workdir, binary, tls, generation=0, name="switchboard", port=SB_PORT):
    node = workdir / f"{name}-{generation}"
    node.mkdir()
    (node / "config.json").write_text(json.dumps(node_config(port, tls), indent=2))
    proc = subprocess.Popen([str(binary), "start", str(node), "--loglevel", "warn"],
                            stdout=subprocess.DEVNULL, stderr=open(workdir / f"{name}.log", "a"),
                            start_new_session=True)
    wait_port(port)
    if tls:
        wait_port(port + 1)
    return Router(name, proc, proc.pid, port, port + 1 if tls else None)


def start_crossbar(workdir, crossbar, tls, generation=0):
    cbdir = workdir / f"crossbar-{generation}" / ".crossbar"
    cbdir.mkdir(parents=True)
    (cbdir / "config.json").write_text(json.dumps(node_config(CB_PORT, tls), indent=2))
    proc = subprocess.Popen([str(crossbar), "start", "--cbdir", str(cbdir), "--loglevel", "warn"],
                            stdout=open(workdir / "crossbar.log", "a"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    wait_port(CB_PORT, timeout=120)
    if tls:
        wait_port(CB_PORT + 1, timeout=60)
    # Crossbar routes in a worker process, a child of its node controller.
    workers = [p for p in children(proc.pid) if "worker" in cmdline(p)]
    if not workers:
        raise RuntimeError("cannot find Crossbar's router worker process")
    return Router("crossbar", proc, workers[0], CB_PORT, CB_PORT + 1 if tls else None)


def start_echo(workdir, binary, fanout):
    args = [str(binary), "--listen", f"127.0.0.1:{ECHO_PORT}"] + (["--fanout"] if fanout else [])
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(workdir / "echo.log", "a"), start_new_session=True)
    wait_port(ECHO_PORT)
    return Router("transport", proc, proc.pid, ECHO_PORT)


def start_nats(workdir, binary):
    """nats-server on a free loopback port, core NATS only (no JetStream: no -js)."""
    port = free_port()
    proc = subprocess.Popen([binary, "-a", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=open(workdir / "nats.log", "a"), start_new_session=True)
    wait_port(port)
    return Router("nats", proc, proc.pid, port)


# Calls in flight, in bytes of padding, beyond which rpc's in-flight count is lowered. Every call
# crosses the one callee connection both ways (INVOCATION in, YIELD out), and neither the load
# tool's callee nor a router session reads while its write is blocked: with more in flight than
# the loopback socket buffers hold (8 x 16 calls of 64 KiB is 8 MiB), both ends end up writing
# and the run stalls (seen with `ss`: full send and receive queues on both sides).
RPC_BYTES_IN_FLIGHT = 1024 * 1024


def with_payload(args, payload):
    """The scenario's load tool arguments with `--payload` set to `payload` (and, for rpc and its
    echo reference, at most RPC_BYTES_IN_FLIGHT in flight)."""
    args = list(args)
    if "--payload" in args:
        args[args.index("--payload") + 1] = str(payload)
    if args[0] in ("rpc", "echo") and "--in-flight" in args:
        width = "--callers" if "--callers" in args else "--connections"
        connections = int(args[args.index(width) + 1])
        i = args.index("--in-flight") + 1
        args[i] = str(max(1, min(int(args[i]), RPC_BYTES_IN_FLIGHT // (connections * max(payload, 1)))))
    return args


def load(load_bin, args, router, config, duration, ca_file):
    serializer, transport, _ = config
    extra = []
    if router.name == "nats":
        url = f"nats://127.0.0.1:{router.port}"
    elif transport == "websocket-tls":
        url = f"wss://127.0.0.1:{router.tls_port}/ws"
        extra = ["--ca-file", str(ca_file)]
    elif transport == "rawsocket":
        url = f"rs://127.0.0.1:{router.port}"
    else:
        url = f"ws://127.0.0.1:{router.port}/ws"
    cmd = [str(load_bin)] + args[:1] + ["--url", url, "--serializer", serializer, "--duration", str(duration),
                                        "--warmup", "1", "--router-pid", str(router.pid), "--quiet"] + extra + args[1:]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration * 4 + 120)
    except subprocess.TimeoutExpired:
        # A stalled run is a failed run, shown as such in the table; the rest of a long matrix
        # goes on.
        log(f"{' '.join(cmd)} did not finish in {duration * 4 + 120:g} s: counted as a failed run")
        return {"exit_code": None, "timed_out": True}
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


def medians(runs, scenario):
    ms = [metric(r, scenario) for r in runs]
    return {k: median([m[k] for m in ms]) for k in (ms[0].keys() if ms else [])}, all(m["correct"] for m in ms)


def fmt(v, digits=1):
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def times(v):
    """A ratio cell: `2.50x`, or `-` when a figure is missing."""
    return "-" if v is None else f"{fmt(v, 2)}x"


def size_name(n):
    return f"{n // 1024} KiB" if n >= 1024 and n % 1024 == 0 else f"{n} B"


def config_name(config):
    serializer, transport, payload = config
    return f"{serializer}, {transport}, {size_name(payload)}"


def config_key(scenario, config):
    return f"{scenario}|{config[0]}|{config[1]}|{config[2]}"


def reference_key(scenario, config):
    """Which transport-limit run a row shows: switchboard-echo has no TLS, and of the serializer
    only the frame type (text for json, binary otherwise) matters to it, over WebSocket."""
    serializer, transport, payload = config
    if not SCENARIOS[scenario]["reference"] or transport == "websocket-tls":
        return None
    frames = ("text" if serializer == "json" else "binary") if transport == "websocket" else "-"
    return f"transport|{scenario}|{transport}|{frames}|{payload}"


def nats_key(scenario, config):
    return f"nats|{scenario}|{config[2]}" if SCENARIOS[scenario]["nats"] else None


def split_list(text, what, allowed=None):
    items = [i.strip() for i in text.split(",") if i.strip()]
    if not items:
        sys.exit(f"--{what}: empty list")
    for i in items:
        if allowed and i not in allowed:
            sys.exit(f"--{what}: unknown {i}; known: {', '.join(allowed)}")
    return items


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, help=f"runs per scenario and configuration (default 5; {MATRIX_RUNS} with --matrix)")
    ap.add_argument("--duration", type=float, help=f"measured seconds per run (default 5; {MATRIX_DURATION:g} with --matrix)")
    ap.add_argument("--serializers", "--serializer", help="comma separated: json, msgpack, cbor (default json)")
    ap.add_argument("--transports", "--transport", help="comma separated: websocket, rawsocket, websocket-tls (default websocket)")
    ap.add_argument("--payloads", help="comma separated bytes of padding per call or event (default 64)")
    ap.add_argument("--matrix", action="store_true",
                    help="the preset configurations and scenarios (see above) instead of --serializers/--transports/--payloads")
    ap.add_argument("--scenarios", help=f"comma separated (default all; with --matrix {','.join(MATRIX_SCENARIOS)})")
    ap.add_argument("--no-build", action="store_true", help="use the existing release binaries")
    ap.add_argument("--out", default=str(REPO / "bench" / "results"), help="the folder the .md and .json go to")
    ap.add_argument("--baseline", help="a switchboard binary built from an earlier commit, run in the same alternation")
    ap.add_argument("--without-crossbar", action="store_true", help="leave Crossbar out (with --baseline: a before/after run)")
    ap.add_argument("--without-nats", action="store_true", help="leave the NATS reference out")
    opts = ap.parse_args()

    if opts.matrix:
        if opts.serializers or opts.transports or opts.payloads:
            sys.exit("--matrix is a preset: not with --serializers, --transports or --payloads")
        configs = list(MATRIX)
        default_scenarios = MATRIX_SCENARIOS
        runs = opts.runs or MATRIX_RUNS
        duration = opts.duration or MATRIX_DURATION
    else:
        serializers = split_list(opts.serializers or DEFAULT_CONFIG[0], "serializers", SERIALIZERS)
        transports = split_list(opts.transports or DEFAULT_CONFIG[1], "transports", TRANSPORTS)
        try:
            payloads = [int(p) for p in split_list(opts.payloads or str(DEFAULT_CONFIG[2]), "payloads")]
        except ValueError:
            sys.exit("--payloads: whole numbers of bytes, comma separated")
        configs = list(itertools.product(serializers, transports, payloads))
        default_scenarios = list(SCENARIOS)
        runs = opts.runs or 5
        duration = opts.duration or 5.0
    scenarios = split_list(opts.scenarios, "scenarios", SCENARIOS) if opts.scenarios else default_scenarios
    # What runs: every sized scenario on every configuration, the others on the first.
    rows = [(s, c) for s in scenarios for c in (configs if SCENARIOS[s]["sized"] else configs[:1])]

    if not opts.no_build:
        log("building release binaries")
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "switchboard", "-p", "switchboard-load"], cwd=REPO, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release"
    sb_bin, load_bin, echo_bin = target / "switchboard", target / "switchboard-load", target / "switchboard-echo"
    crossbar = None if opts.without_crossbar else ensure_crossbar()
    baseline = Path(opts.baseline).resolve() if opts.baseline else None
    if baseline and not baseline.is_file():
        sys.exit(f"--baseline {baseline}: no such file")
    nats_bin = None
    if not opts.without_nats and any(SCENARIOS[s]["nats"] for s, _ in rows):
        nats_bin = find_nats_server()
        if not nats_bin:
            sys.exit("nats-server not found (on PATH or in /usr/sbin): install it, or pass --without-nats")
    nats_version = None
    if nats_bin:
        nats_version = subprocess.run([nats_bin, "--version"], capture_output=True, text=True).stdout.strip().split()[-1]

    workdir = Path(tempfile.mkdtemp(prefix="sb-compare-"))
    tls = make_certificate(workdir) if any(c[1] == "websocket-tls" for _, c in rows) else None

    def start_all(generation):
        started = [start_switchboard(workdir, sb_bin, tls, generation)]
        if crossbar:
            started.append(start_crossbar(workdir, crossbar, tls, generation))
        if baseline:
            started.append(start_switchboard(workdir, baseline, tls, generation, "baseline", BASE_PORT))
        return started

    # Per row, the routers' runs; per shared key (NATS per scenario and payload, the transport
    # limit per scenario, transport, frame type and payload), runs shown on every row they fit.
    results = {config_key(s, c): {"switchboard": [], "crossbar": [], "baseline": []} for s, c in rows}
    shared = {}
    routers, nats = [], None
    started_at = time.time()
    try:
        routers = start_all(0)
        if nats_bin:
            nats = start_nats(workdir, nats_bin)
        log(", ".join(f"{r.name} pid {r.pid}" for r in routers + ([nats] if nats else [])))
        for s, config in rows:
            spec = SCENARIOS[s]
            args = with_payload(spec["args"], config[2])
            # NATS and the transport limit run with the first row they fit, in its alternation.
            nkey = nats_key(s, config) if nats else None
            with_nats = nkey is not None and nkey not in shared
            rkey = reference_key(s, config)
            with_reference = rkey is not None and rkey not in shared
            if with_nats:
                shared[nkey] = []
            if with_reference:
                shared[rkey] = []
            for run in range(runs):
                if s.startswith("idle"):
                    # Memory per session is only meaningful against a fresh process: an allocator
                    # reuses what earlier scenarios freed.
                    for r in routers:
                        r.stop()
                    time.sleep(1)
                    routers = start_all(run + 1)
                order = routers + ([nats] if with_nats else [])
                # Alternate the order so slow drifts of the machine hit all alike.
                for router in (order if run % 2 == 0 else order[::-1]):
                    r = load(load_bin, args, router, config, duration, tls and tls["ca"])
                    if router.name == "nats":
                        shared[nkey].append(r)
                    else:
                        results[config_key(s, config)][router.name].append(r)
                    log(f"{s} [{config_name(config)}] run {run + 1}/{runs} {router.name}: rate {fmt(r.get('rate'))} "
                        f"router cpu {fmt((r.get('router') or {}).get('cpu_us_per_op'), 2)} us/op exit {r['exit_code']}")
                if with_reference:
                    ref_args = with_payload(spec["reference"], config[2])
                    echo = start_echo(workdir, echo_bin, fanout=ref_args[0] == "fanout")
                    try:
                        r = load(load_bin, ref_args, echo, config, duration, None)
                    finally:
                        echo.stop()
                    shared[rkey].append(r)
                    log(f"{s} [{config_name(config)}] run {run + 1}/{runs} transport limit: rate {fmt(r.get('rate'))} "
                        f"server cpu {fmt((r.get('router') or {}).get('cpu_us_per_op'), 2)} us/op exit {r['exit_code']}")
    finally:
        for r in routers + ([nats] if nats else []):
            r.stop()
    elapsed = time.time() - started_at

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    machine = f"{os.cpu_count()} cores, {cpu}, Linux {platform.release()}"
    date = datetime.date.today().isoformat()
    ratio = lambda a, b: (a / b) if a and b else None
    summary = {}
    table_rows = []
    for s, config in rows:
        key = config_key(s, config)
        med, correct = {}, True
        for name, runs_of in results[key].items():
            if runs_of:
                med[name], ok = medians(runs_of, s)
                correct = correct and ok
        for name, shared_key in (("nats", nats_key(s, config)), ("transport", reference_key(s, config))):
            if shared_key in shared:
                med[name], ok = medians(shared[shared_key], s)
                correct = correct and ok
        summary[key] = {"scenario": s, "serializer": config[0], "transport": config[1], "payload": config[2],
                        "medians": med, "all_runs_correct": correct}
        table_rows.append((s, config, med, correct))

    against = []
    if crossbar:
        against.append(f"Crossbar.io {CROSSBAR_VERSION}")
    if nats_version:
        against.append(f"NATS server {nats_version} (bare-broker reference)")
    lines = [
        f"Switchboard {commit} vs {' and '.join(against) or 'nothing (--without-crossbar --without-nats)'}, {date}, {machine}.",
        f"Median of {runs} alternating runs of {duration:g} s per scenario and configuration; release build; "
        f"{len(rows)} rows in {elapsed / 60:.0f} min.",
        "Payload: bytes of padding in each call's or event's arguments (NATS: after a 25-byte request or 41-byte event header). "
        "NATS runs once per scenario and payload size, shown on every row of that size; serializer and transport do not apply to it. "
        f"rpc keeps at most {RPC_BYTES_IN_FLIGHT // 1024} KiB of padding in flight (rpc-8x16 at 64 KiB runs 8 x 2). "
        "Router CPU is per operation (call, delivered event, session); CB÷SB CPU > 1: Crossbar spends more, SB÷NATS CPU > 1: Switchboard spends more than NATS.",
        "",
        "| scenario | serializer, transport, payload | Switchboard rate/s | Crossbar rate/s | SB÷CB rate | Switchboard router CPU µs/op | Crossbar router CPU µs/op | CB÷SB CPU | NATS rate/s | NATS CPU µs/op | SB÷NATS CPU | Switchboard p50/p99 µs | Crossbar p50/p99 µs | NATS p50/p99 µs | transport limit rate/s, CPU µs/op | all runs correct |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s, config, med, ok in table_rows:
        sb, cb, nt, tl = (med.get(n, {}) for n in ("switchboard", "crossbar", "nats", "transport"))
        extra = ""
        if s.startswith("idle"):
            extra = f" (memory: {fmt(sb.get('kb_per_session'))} vs {fmt(cb.get('kb_per_session'))} KB/session; router RSS {fmt(sb.get('router_rss_kb'))} vs {fmt(cb.get('router_rss_kb'))} KB)"
        cpu = lambda m: m.get("router_cpu_us_per_op")
        latency = lambda m: f"{fmt(m.get('p50_us'))}/{fmt(m.get('p99_us'))}" if m else "-"
        lines.append(
            f"| {s}{extra} | {config_name(config)} | {fmt(sb.get('rate'))} | {fmt(cb.get('rate'))} | {times(ratio(sb.get('rate'), cb.get('rate')))} | "
            f"{fmt(cpu(sb), 2)} | {fmt(cpu(cb), 2)} | {times(ratio(cpu(cb), cpu(sb)))} | "
            f"{fmt(nt.get('rate'))} | {fmt(cpu(nt), 2)} | {times(ratio(cpu(sb), cpu(nt)))} | "
            f"{latency(sb)} | {latency(cb)} | {latency(nt)} | "
            f"{fmt(tl.get('rate')) + ', ' + fmt(cpu(tl), 2) if tl else '-'} | {'yes' if ok else 'NO'} |")
    if baseline:
        lines += [
            "",
            f"Against the baseline build ({baseline}), same runs:",
            "",
            "| scenario | serializer, transport, payload | rate/s | baseline rate/s | router CPU µs/op | baseline router CPU µs/op | CPU after/before | p50 µs | baseline p50 µs | KB/session (idle) | baseline KB/session |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for s, config, med, _ in table_rows:
            sb, bl = med.get("switchboard", {}), med.get("baseline", {})
            cpu_ratio = ratio(sb.get("router_cpu_us_per_op"), bl.get("router_cpu_us_per_op"))
            lines.append(f"| {s} | {config_name(config)} | {fmt(sb.get('rate'))} | {fmt(bl.get('rate'))} | {fmt(sb.get('router_cpu_us_per_op'), 2)} | "
                         f"{fmt(bl.get('router_cpu_us_per_op'), 2)} | {fmt(cpu_ratio, 3)} | {fmt(sb.get('p50_us'))} | {fmt(bl.get('p50_us'))} | "
                         f"{fmt(sb.get('kb_per_session'))} | {fmt(bl.get('kb_per_session'))} |")
    table = "\n".join(lines)
    print(table)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    if opts.matrix:
        name = "matrix"
    elif len(configs) == 1:
        serializer, transport, payload = configs[0]
        name = f"{serializer}-{transport}" + ("" if payload == DEFAULT_CONFIG[2] else f"-{payload}")
    else:
        name = "-".join("+".join(dict.fromkeys(str(c[i]) for c in configs)) for i in range(3))
    stem = out / f"{date}-{commit}-{name}"
    stem.with_suffix(".md").write_text(table + "\n")
    stem.with_suffix(".json").write_text(json.dumps({
        "commit": commit, "date": date, "machine": machine, "crossbar": CROSSBAR_VERSION if crossbar else None,
        "nats_server": nats_version, "baseline": str(baseline) if baseline else None,
        "flags": {"runs": runs, "duration_s": duration, "matrix": opts.matrix,
                  "configs": [{"serializer": c[0], "transport": c[1], "payload": c[2]} for c in configs],
                  "scenarios": scenarios, "cargo_profile": "release"},
        "summary": summary, "raw": results, "raw_shared": shared}, indent=1))
    log(f"wrote {stem}.md and {stem}.json")
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    if dirty:
        log("note: the working tree had uncommitted changes; the commit id names only the base")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
