#!/usr/bin/env python3
"""The PostgreSQL bridge benchmark: WAMP calls of a trivial SQL function through Switchboard's
bridge, against pgbench calling the same function directly, in one run.

- bridge: the load tool (`switchboard-load rpc --procedure`, Rust, no Autobahn) with --callers
  sessions and --in-flight calls each over WebSocket to `com.example.api.add2` (args [1, 2]),
  which the bridge runs as `SELECT api.add2(...)` in one transaction per call on a pool of
  --connections connections.
- pgbench: `SELECT api.add2(1, 2)` with --connections clients (prepared statements, 2 threads),
  as the same database role, straight to PostgreSQL.

Both connect with the same --sslmode (default disable: on loopback TLS only costs; libpq's own
default, prefer, would encrypt pgbench's connections where the server has TLS on).

And NOTIFY -> EVENT: pgbench runs `SELECT wamp.publish('com.example.bench.tick', '[1]')` with
--publishers clients while --subscribers WAMP sessions (the load tool's `subscribers` scenario)
receive the events the bridge publishes; the figures are events published and delivered per
second and the router's CPU time per delivered event.

They run one after the other (pgbench, bridge, notify, pgbench, ...), --runs times each, against
the PostgreSQL server of $DATABASE_URL (else 127.0.0.1:5432 as postgres), in a database this
script creates and drops. Per run: calls per second; for the bridge also p50/p99 latency and the
router's CPU time per call (from /proc). Medians and the bridge/pgbench ratio are printed and
written to bench/results/.

    bench/postgres_bridge.py                      # 3 runs of 10 s each
    bench/postgres_bridge.py --runs 5 --duration 5 --connections 16
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402  (the shared helpers: ports, process lookups)

REPO = compare.REPO
PORT = 18280


def log(msg):
    print(f"[postgres-bridge] {msg}", file=sys.stderr, flush=True)


def server():
    url = urllib.parse.urlparse(os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    return url.hostname or "127.0.0.1", url.port or 5432, url.username or "postgres"


def psql(sql, database="postgres"):
    host, port, user = server()
    subprocess.run(["psql", "-h", host, "-p", str(port), "-U", user, "-d", database, "-v", "ON_ERROR_STOP=1", "-q"],
                   input=sql, text=True, check=True, capture_output=True)


def node_config(database, login, connections, sslmode):
    host, port, _ = server()
    return {
        "version": 2,
        "workers": [{
            "type": "router",
            "realms": [{"name": "realm1", "roles": [
                {"name": "anonymous", "permissions": [
                    {"uri": "com.example.", "match": "prefix", "allow": {"call": True, "subscribe": True}}]},
                {"name": "db_bridge", "permissions": [
                    {"uri": "com.example.", "match": "prefix", "allow": {"register": True, "publish": True}}]},
            ]}],
            "transports": [{"type": "websocket", "endpoint": {"type": "tcp", "port": PORT, "interface": "127.0.0.1"}}],
            "connections": [{"id": "db", "type": "postgres", "host": host, "port": port, "database": database,
                             "user": login, "options": {"max_connections": connections, "sslmode": sslmode}}],
            "components": [{"type": "postgresql", "realm": "realm1", "role": "db_bridge", "connection": "db",
                            "callee": {"schemas": [{"schema": "api", "prefix": "com.example.api."}]},
                            "publisher": {"mode": "notify"}}],
        }],
    }


def pgbench(database, login, args, workdir):
    host, port, _ = server()
    script = workdir / "add2.sql"
    script.write_text("SELECT api.add2(1, 2);\n")
    out = subprocess.run(["pgbench", "-n", "-M", "prepared", "-c", str(args.connections), "-j", "2",
                          "-T", str(args.duration), "-f", str(script), "-h", host, "-p", str(port), "-U", login,
                          database], capture_output=True, text=True, check=True,
                         env={**os.environ, "PGSSLMODE": args.sslmode}).stdout
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
    latency = re.search(r"latency average = ([\d.]+) ms", out)
    return {"rate": tps, "latency_avg_ms": float(latency.group(1)) if latency else None}


def start_node(database, login, args, workdir, binary, generation):
    node = workdir / f"node-{generation}"
    node.mkdir()
    (node / "config.json").write_text(json.dumps(node_config(database, login, args.connections, args.sslmode), indent=2))
    log_path = workdir / "switchboard.log"
    proc = subprocess.Popen([str(binary), "start", str(node)], stdout=subprocess.DEVNULL,
                            stderr=open(log_path, "a"), start_new_session=True)
    router = compare.Router("switchboard", proc, proc.pid, PORT)
    compare.wait_port(PORT)
    # The bridge registers once it has read the functions, and publishes once it holds the lock.
    for _ in range(200):
        text = log_path.read_text(errors="replace")
        if "registered com.example.api.add2" in text and "publishing events" in text:
            break
        time.sleep(0.05)
    return router


def bridge(database, login, args, workdir, binary, load_bin, generation):
    router = start_node(database, login, args, workdir, binary, generation)
    proc = router.proc
    try:
        out = subprocess.run([str(load_bin), "rpc", "--url", f"ws://127.0.0.1:{PORT}/ws", "-q",
                              "--callers", str(args.callers), "--in-flight", str(args.in_flight),
                              "--procedure", "com.example.api.add2", "--args", "[1, 2]",
                              "--duration", str(args.duration), "--router-pid", str(proc.pid)],
                             capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        if r.get("errors"):
            raise RuntimeError(f"{r['errors']} calls failed: {r}")
        return {"rate": r["rate"], "p50_us": r["latency_us"]["p50"], "p99_us": r["latency_us"]["p99"],
                "router_cpu_us_per_call": r["router"]["cpu_us_per_op"]}
    finally:
        router.stop()


def notify(database, login, args, workdir, binary, load_bin, generation):
    host, port, _ = server()
    router = start_node(database, login, args, workdir, binary, f"n{generation}")
    script = workdir / "publish.sql"
    script.write_text("SELECT wamp.publish('com.example.bench.tick', '[1]');\n")
    try:
        # The publishers run a little longer than the subscribers' warmup and window.
        publishers = subprocess.Popen(
            ["pgbench", "-n", "-M", "prepared", "-c", str(args.publishers), "-j", "2",
             "-T", str(args.duration + 3), "-f", str(script), "-h", host, "-p", str(port), "-U", login, database],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PGSSLMODE": args.sslmode})
        out = subprocess.run([str(load_bin), "subscribers", "--url", f"ws://127.0.0.1:{PORT}/ws", "-q",
                              "--topic", "com.example.bench.tick", "--subscribers", str(args.subscribers),
                              "--duration", str(args.duration), "--router-pid", str(router.proc.pid)],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"the load tool failed ({out.returncode}): {out.stderr[-2000:]}")
        out = out.stdout
        published, _ = publishers.communicate(timeout=args.duration + 60)
        r = json.loads(out.strip().splitlines()[-1])
        if r.get("errors"):
            raise RuntimeError(f"subscribers failed: {r}")
        return {"delivered_per_s": r["rate"], "published_per_s": r["rate"] / args.subscribers,
                "pgbench_tps": float(re.search(r"tps = ([\d.]+)", published).group(1)),
                "router_cpu_us_per_event": r["router"]["cpu_us_per_op"]}
    finally:
        router.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=8, help="the bridge's pool and pgbench's clients")
    ap.add_argument("--callers", type=int, default=8)
    ap.add_argument("--in-flight", type=int, default=16)
    ap.add_argument("--subscribers", type=int, default=100)
    ap.add_argument("--publishers", type=int, default=4, help="pgbench clients calling wamp.publish")
    ap.add_argument("--sslmode", default="disable",
                    help="TLS to PostgreSQL, the same for the bridge and pgbench (default disable: loopback)")
    ap.add_argument("--no-build", action="store_true", help="use target/release as it is")
    ap.add_argument("--out", type=Path, default=None,
                    help="result JSON (default: bench/results/<date>-postgres-bridge.json)")
    args = ap.parse_args()
    for tool in ("psql", "pgbench"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed: apt-get install postgresql-client postgresql-contrib")
    if not args.no_build:
        log("building switchboard and switchboard-load (release)")
        subprocess.run(["cargo", "build", "--release", "-p", "switchboard", "-p", "switchboard-load"], cwd=REPO, check=True)
    binary, load_bin = REPO / "target/release/switchboard", REPO / "target/release/switchboard-load"
    tag = uuid.uuid4().hex[:8]
    database, login = f"sbbench_{tag}", f"sbbench_{tag}"
    psql(f"CREATE DATABASE {database}; CREATE ROLE {login} LOGIN;")
    workdir = Path(tempfile.mkdtemp(prefix="sb-pg-bench-"))
    raw = {"pgbench": [], "bridge": [], "notify": []}
    try:
        helper = subprocess.run([str(binary), "postgres", "sql"], capture_output=True, text=True, check=True).stdout
        psql(helper, database)
        psql(f"""GRANT SELECT, DELETE ON wamp.event_buffer TO {login};
                 CREATE SCHEMA api; GRANT USAGE ON SCHEMA api TO {login};
                 CREATE FUNCTION api.add2(a int, b int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT a + b $$;
                 GRANT EXECUTE ON FUNCTION api.add2(int, int) TO {login};""", database)
        for run in range(args.runs):
            r = pgbench(database, login, args, workdir)
            raw["pgbench"].append(r)
            log(f"run {run + 1}/{args.runs} pgbench: {r['rate']:.0f} calls/s")
            r = bridge(database, login, args, workdir, binary, load_bin, run)
            raw["bridge"].append(r)
            log(f"run {run + 1}/{args.runs} bridge: {r['rate']:.0f} calls/s, p50 {r['p50_us']:.0f} µs, "
                f"p99 {r['p99_us']:.0f} µs, {r['router_cpu_us_per_call']:.1f} µs router CPU per call")
            r = notify(database, login, args, workdir, binary, load_bin, run)
            raw["notify"].append(r)
            log(f"run {run + 1}/{args.runs} notify: {r['published_per_s']:.0f} events/s to {args.subscribers} "
                f"subscribers ({r['delivered_per_s']:.0f} deliveries/s), {r['router_cpu_us_per_event']:.2f} µs "
                f"router CPU per delivery")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE); DROP ROLE IF EXISTS {login};")

    def med(who, key):
        return statistics.median(r[key] for r in raw[who])

    summary = {
        "pgbench": {"rate": med("pgbench", "rate")},
        "bridge": {key: med("bridge", key) for key in ("rate", "p50_us", "p99_us", "router_cpu_us_per_call")},
        "notify": {key: med("notify", key) for key in
                   ("published_per_s", "delivered_per_s", "pgbench_tps", "router_cpu_us_per_event")},
    }
    summary["ratio"] = summary["bridge"]["rate"] / summary["pgbench"]["rate"]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "commit": commit,
              "machine": f"{platform.node()} {os.cpu_count()} cores", "args": vars(args) | {"out": str(args.out)},
              "summary": summary, "raw": raw}
    out = args.out or REPO / "bench" / "results" / f"{datetime.date.today()}-postgres-bridge.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    b = summary["bridge"]
    print(f"pgbench: {summary['pgbench']['rate']:.0f} calls/s")
    print(f"bridge:  {b['rate']:.0f} calls/s ({summary['ratio']:.0%} of pgbench), p50 {b['p50_us']:.0f} µs, "
          f"p99 {b['p99_us']:.0f} µs, {b['router_cpu_us_per_call']:.1f} µs router CPU per call")
    n = summary["notify"]
    print(f"notify:  {n['published_per_s']:.0f} events/s from SQL to {args.subscribers} subscribers "
          f"({n['delivered_per_s']:.0f} deliveries/s; pgbench {n['pgbench_tps']:.0f} wamp.publish/s), "
          f"{n['router_cpu_us_per_event']:.2f} µs router CPU per delivery")
    log(f"written to {out}")


if __name__ == "__main__":
    main()
