"""Operations over HTTP: the ``health`` and ``metrics`` web path types, as a load balancer, an
orchestrator and Prometheus use them.

``<path>/live`` answers 200 while the node serves; ``<path>/ready`` answers 503 with a JSON list
of what is not ready while a guest worker with a readiness rule is not ready, and 200 once it is.
The metrics page parses with the Prometheus project's own parser (``prometheus_client``), has
every configured realm's series from start-up at 0, moves as Autobahn|Python clients call and
publish, and never carries a URI as a label.
"""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions
from prometheus_client.parser import text_string_to_metric_families

from interop_client import bounded, close_all, connect, eventually, run
from interop_http import get
from interop_router import free_tcp_port, launch_router, make_node_dir, run_router_command, switchboard_bin

if os.environ.get("INTEROP_ROUTER", "switchboard") != "switchboard":
    pytest.skip("health and metrics paths are Switchboard's", allow_module_level=True)

ROLES = [
    {"name": "anonymous", "permissions": [
        {"uri": "com.example.", "match": "prefix",
         "allow": {"call": True, "register": True, "publish": True, "subscribe": True}}]},
]


@pytest.fixture(scope="module")
def node():
    nd = make_node_dir("switchboard")
    go = nd.node_dir / "go"
    port = free_tcp_port()
    config = {
        "version": 2,
        "workers": [{
            "type": "router",
            "realms": [{"name": "realm1", "roles": ROLES}, {"name": "quiet", "roles": ROLES}],
            "transports": [{
                "type": "universal",
                "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
                "rawsocket": {},
                "websocket": {"ws": {"type": "websocket"}},
                "web": {"paths": {
                    "health": {"type": "health"},
                    "metrics": {"type": "metrics"},
                }},
            }],
        }, {
            # Ready once it printed its line, which it does when the test creates `go`.
            "type": "guest",
            "id": "backend",
            "executable": "/bin/sh",
            "arguments": ["-c", f"while [ ! -f '{go}' ]; do sleep 0.05; done; echo backend ready; exec sleep 600"],
            "options": {"ready": {"log": "backend ready", "timeout": 120}},
        }],
    }
    router = launch_router(nd, config, [port])
    router.go = go
    try:
        yield router
    finally:
        router.close()


def scrape(node) -> dict:
    """The metrics page, parsed by Prometheus's parser: {(name, sorted labels): value}."""
    r = get(node.port, "/metrics")
    assert r.status == 200, r.describe()
    assert r.header("content-type").startswith("text/plain; version=0.0.4"), r.describe()
    samples = {}
    for family in text_string_to_metric_families(r.body.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, f"{name}{labels} missing; have {sorted(k for k in samples if k[0] == name)}"
    return samples[key]


def test_live_at_once_ready_only_when_the_guest_worker_is(node):
    live = get(node.port, "/health/live")
    assert live.status == 200, live.describe()
    assert json.loads(live.body) == {"status": "live"}

    # The guest waits for `go`: the node is not ready, and says why.
    ready = get(node.port, "/health/ready")
    assert ready.status == 503, ready.describe()
    body = json.loads(ready.body)
    assert body["status"] == "not ready", body
    assert any(item.startswith("worker backend:") and "backend ready" in item for item in body["not_ready"]), body
    assert value(scrape(node), "switchboard_ready") == 0

    node.go.write_text("")

    async def until_ready():
        await eventually(lambda: get(node.port, "/health/ready").status == 200, "ready", timeout=60)

    run(until_ready())
    ready = get(node.port, "/health/ready")
    assert json.loads(ready.body) == {"status": "ready"}, ready.describe()
    assert value(scrape(node), "switchboard_ready") == 1
    assert get(node.port, "/health/other").status == 404


def test_every_realm_has_its_series_at_zero_from_the_start(node):
    samples = scrape(node)
    assert value(samples, "switchboard_sessions", realm="quiet") == 0
    assert value(samples, "switchboard_subscriptions", realm="quiet") == 0
    assert value(samples, "switchboard_registrations", realm="quiet") == 0
    for outcome in ("ok", "error", "refused", "canceled", "timeout"):
        assert value(samples, "switchboard_calls_total", realm="quiet", outcome=outcome) == 0
    for kind in ("publish", "subscribe", "call", "register", "yield", "error", "goodbye"):
        assert value(samples, "switchboard_messages_total", realm="quiet", direction="in", type=kind) == 0
    assert value(samples, "switchboard_events_published_total", realm="quiet") == 0
    assert value(samples, "switchboard_events_delivered_total", realm="quiet") == 0
    for action in ("call", "register", "publish", "subscribe"):
        assert value(samples, "switchboard_authz_denied_total", realm="quiet", action=action) == 0
    [build] = [dict(labels) for name, labels in samples if name == "switchboard_build_info"]
    assert build["version"] and value(samples, "switchboard_build_info", **build) == 1
    assert value(samples, "process_resident_memory_bytes") > 0
    assert value(samples, "process_open_fds") > 0


def test_counters_move_with_calls_and_events_and_no_uri_is_a_label(node):
    before = scrape(node)

    async def scenario():
        clients = []
        try:
            callee = await connect(node, "websocket_tcp", "json", realm="realm1")
            caller = await connect(node, "rawsocket_tcp", "msgpack", realm="realm1")
            subscribers = [await connect(node, "websocket_tcp", "cbor", realm="realm1") for _ in range(2)]
            clients = [callee, caller, *subscribers]

            def fail():
                raise ApplicationError("com.example.oops", "on purpose")

            await callee.session.register(lambda a, b: a + b, "com.example.ops.add2")
            await callee.session.register(fail, "com.example.ops.fail")
            received = []
            for s in subscribers:
                await s.session.subscribe(received.append, "com.example.ops.tick")
            for i in range(3):
                assert await bounded(caller.session.call("com.example.ops.add2", i, 1), "add2") == i + 1
            with pytest.raises(ApplicationError) as missing:
                await bounded(caller.session.call("com.example.ops.missing"), "missing")
            assert missing.value.error == "wamp.error.no_such_procedure"
            with pytest.raises(ApplicationError) as failed:
                await bounded(caller.session.call("com.example.ops.fail"), "fail")
            assert failed.value.error == "com.example.oops"
            with pytest.raises(ApplicationError) as denied:
                await bounded(caller.session.call("wamp.nope.not.allowed"), "denied")
            assert denied.value.error == "wamp.error.not_authorized"
            for i in range(2):
                await bounded(caller.session.publish("com.example.ops.tick", i,
                                                     options=PublishOptions(acknowledge=True)), "publish")
            await eventually(lambda: len(received) == 4, "4 events delivered")

            during = scrape(node)
            assert value(during, "switchboard_sessions", realm="realm1") == 4
            assert value(during, "switchboard_registrations", realm="realm1") == 2
            assert value(during, "switchboard_subscriptions", realm="realm1") == 1
            return during
        finally:
            await close_all(*clients)

    during = run(scenario())

    def moved(name, **labels):
        return value(during, name, **labels) - before.get((name, tuple(sorted(labels.items()))), 0)

    assert moved("switchboard_calls_total", realm="realm1", outcome="ok") == 3
    assert moved("switchboard_calls_total", realm="realm1", outcome="error") == 1
    assert moved("switchboard_calls_total", realm="realm1", outcome="refused") == 2  # missing, denied
    assert moved("switchboard_messages_total", realm="realm1", direction="in", type="call") == 6
    assert moved("switchboard_messages_total", realm="realm1", direction="in", type="yield") == 3
    assert moved("switchboard_messages_total", realm="realm1", direction="in", type="error") == 1
    assert moved("switchboard_messages_total", realm="realm1", direction="in", type="publish") == 2
    assert moved("switchboard_messages_total", realm="realm1", direction="in", type="register") == 2
    assert moved("switchboard_messages_total", realm="realm1", direction="in", type="subscribe") == 2
    assert moved("switchboard_events_published_total", realm="realm1") == 2
    assert moved("switchboard_events_delivered_total", realm="realm1") == 4
    assert moved("switchboard_authz_denied_total", realm="realm1", action="call") == 1
    assert moved("switchboard_sessions_opened_total", realm="realm1", authmethod="anonymous", serializer="json") == 1
    assert moved("switchboard_sessions_opened_total", realm="realm1", authmethod="anonymous", serializer="msgpack") == 1
    assert moved("switchboard_sessions_opened_total", realm="realm1", authmethod="anonymous", serializer="cbor") == 2

    # No URI ever becomes a label: the series stay bounded whatever clients call.
    page = get(node.port, "/metrics").body.decode()
    assert "com.example" not in page and "wamp.nope" not in page, page


def test_status_and_stop_reach_the_node_through_its_control_socket():
    """``switchboard status DIR`` and ``switchboard stop DIR`` as an operator uses them, through
    the socket the node opens in its directory (mode 0600, beside Crossbar's ``node.pid``)."""
    nd = make_node_dir("switchboard")
    port = free_tcp_port()
    config = {
        "version": 2,
        "workers": [{
            "type": "router",
            "realms": [{"name": "realm1", "roles": ROLES}],
            "transports": [{
                "type": "universal",
                "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
                "rawsocket": {},
                "websocket": {"ws": {"type": "websocket"}},
            }],
        }],
    }
    router = launch_router(nd, config, [port])
    try:
        socket_file = nd.node_dir / "switchboard.sock"
        # The node opens its control socket once its transports listen: not at once.
        run(eventually(lambda: (nd.node_dir / "node.pid").exists(), "the pid file", timeout=10))
        assert socket_file.is_socket() and (socket_file.stat().st_mode & 0o777) == 0o600
        pid = json.loads((nd.node_dir / "node.pid").read_text())["pid"]
        assert pid == router.proc.pid

        status = run_router_command(nd, "status")
        assert status.returncode == 0, status.describe()
        assert f"pid {pid}" in status.output and "0 session(s) (realm1: 0)" in status.output, status.describe()

        async def with_a_client():
            client = await connect(router, "websocket_tcp", "json", realm="realm1")
            try:
                return run_router_command(nd, "status")
            finally:
                await close_all(client)

        status = run(with_a_client())
        assert "1 session(s) (realm1: 1)" in status.output, status.describe()

        # A second node in the same directory is refused, naming the first.
        second = run_router_command(nd, "start", timeout=30)
        assert second.returncode == 1, second.describe()
        assert f"a node is already running in {nd.node_dir} (pid {pid})" in second.output, second.describe()

        stop = run_router_command(nd, "stop", timeout=60)
        assert stop.returncode == 0, stop.describe()
        assert router.proc.wait(timeout=30) == 0, router.log_tail()
        assert "shutdown asked for through the management API" in router.log_tail()
        assert not socket_file.exists() and not (nd.node_dir / "node.pid").exists()

        status = run_router_command(nd, "status")
        assert status.returncode == 1 and "no node is running" in status.output, status.describe()
        stop = run_router_command(nd, "stop")
        assert stop.returncode == 1, stop.describe()
    finally:
        router.close()


MANAGEMENT_ROLES = [
    # Reads only: the read procedures and the stats events.
    {"name": "mgmt-read", "permissions": [
        {"uri": "switchboard.node.get_status", "allow": {"call": True}},
        {"uri": "switchboard.realm.list", "allow": {"call": True}},
        {"uri": "switchboard.session.list", "allow": {"call": True}},
        {"uri": "switchboard.metrics.get", "allow": {"call": True}},
        {"uri": "switchboard.stats.", "match": "prefix", "allow": {"subscribe": True}},
        {"uri": "switchboard.realm.", "match": "prefix", "allow": {"subscribe": True}}]},
    {"name": "mgmt-admin", "permissions": [
        {"uri": "switchboard.", "match": "prefix",
         "allow": {"call": True, "register": False, "publish": False, "subscribe": True}}]},
]


def test_the_management_api_on_its_realm_is_guarded_by_its_roles():
    """``controller.management`` serves ``switchboard.*`` on a configured realm: a read-only
    role reads the node, its realms and sessions (paged), gets the 1-second stats and every
    realm's meta events, and is refused the shutdown that the admin role may call."""
    nd = make_node_dir("switchboard")
    port = free_tcp_port()
    config = {
        "version": 2,
        "controller": {"management": {"realm": "mgmt"}},
        "workers": [{
            "type": "router",
            "realms": [{"name": "realm1", "roles": ROLES}, {"name": "mgmt", "roles": MANAGEMENT_ROLES}],
            "transports": [{
                "type": "universal",
                "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
                "rawsocket": {},
                "websocket": {"ws": {"type": "websocket", "auth": {
                    "anonymous": {"type": "static", "role": "anonymous"},
                    "ticket": {"type": "static", "principals": {
                        "viewer": {"ticket": "viewer-secret", "role": "mgmt-read"},
                        "operator": {"ticket": "operator-secret", "role": "mgmt-admin"}}}}}},
            }],
        }],
    }
    router = launch_router(nd, config, [port])

    async def scenario():
        clients = []
        try:
            app = [await connect(router, "websocket_tcp", "json", realm="realm1") for _ in range(3)]
            viewer = await connect(router, "websocket_tcp", "json", realm="mgmt",
                                   authentication={"ticket": {"authid": "viewer", "ticket": "viewer-secret"}})
            clients = [*app, viewer]
            # Anonymous sessions have no role on the management realm.
            with pytest.raises(Exception):
                await connect(router, "websocket_tcp", "json", realm="mgmt")

            s = viewer.session
            status = (await bounded(s.call("switchboard.node.get_status"), "get_status")).kwresults
            assert status["pid"] == router.proc.pid and status["realms"] == {"realm1": 3, "mgmt": 1}, status
            assert status["ready"] is True and status["not_ready"] == [], status
            realms = await bounded(s.call("switchboard.realm.list"), "realm.list")
            assert [r["name"] for r in realms] == ["mgmt", "realm1"], realms
            assert next(r for r in realms if r["name"] == "realm1")["sessions"] == 3, realms

            first = await bounded(s.call("switchboard.session.list", "realm1", 2, 0), "session.list")
            rest = await bounded(s.call("switchboard.session.list", realm="realm1", limit=2, offset=2), "session.list")
            ids = [x["session"] for x in first.results[0] + rest.results[0]]
            assert first.kwresults["total"] == 3 and len(first.results[0]) == 2, first
            assert sorted(ids) == sorted(c.session.session_id for c in app), (ids, first, rest)
            assert {x["authrole"] for x in first.results[0]} == {"anonymous"}

            page = await bounded(s.call("switchboard.metrics.get"), "metrics.get")
            assert 'switchboard_sessions{realm="realm1"} 3' in page, page

            updates = []
            await s.subscribe(lambda **kw: updates.append(kw), "switchboard.stats.on_update")
            app[0].session.publish("com.example.tick", 1)
            await eventually(lambda: len(updates) >= 2, "two stats updates", timeout=10)
            assert updates[-1]["realms"]["realm1"]["sessions"] == 3, updates[-1]

            # The realms' meta events, republished on the management realm.
            joined, created = [], []
            await s.subscribe(lambda details: joined.append(details), "switchboard.realm.realm1.meta.session.on_join")
            await s.subscribe(lambda *args: created.append(args), "switchboard.realm.realm1.meta.registration.on_create")
            late = await connect(router, "rawsocket_tcp", "msgpack", realm="realm1")
            clients.append(late)
            await late.session.register(lambda: None, "com.example.late")
            await eventually(lambda: joined and created, "on_join and on_create of realm1 on the management realm")
            assert joined[-1]["session"] == late.session.session_id and joined[-1]["authrole"] == "anonymous", joined
            assert created[-1][0] == late.session.session_id and created[-1][1]["uri"] == "com.example.late", created

            with pytest.raises(ApplicationError) as denied:
                await bounded(s.call("switchboard.node.shutdown"), "shutdown as viewer")
            assert denied.value.error == "wamp.error.not_authorized"
            assert router.proc.poll() is None

            operator = await connect(router, "websocket_tcp", "json", realm="mgmt",
                                     authentication={"ticket": {"authid": "operator", "ticket": "operator-secret"}})
            clients.append(operator)
            await bounded(operator.session.call("switchboard.node.shutdown"), "shutdown as operator")
        finally:
            await close_all(*clients)

    try:
        run(scenario())
        assert router.proc.wait(timeout=30) == 0, router.log_tail()
        assert "shutdown asked for through the management API" in router.log_tail()
    finally:
        router.close()


def test_logformat_json_writes_one_json_object_per_log_line():
    """``switchboard start --logformat json``: every log line is a JSON object a log collector
    parses, with the level, the message and its fields, and the guest worker a line came from."""
    nd = make_node_dir("switchboard")
    port = free_tcp_port()
    config = {
        "version": 2,
        "workers": [{
            "type": "router",
            "realms": [{"name": "realm1", "roles": ROLES}],
            "transports": [{"type": "websocket", "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"}}],
        }, {
            "type": "guest", "id": "greeter", "executable": "/bin/sh",
            "arguments": ["-c", "echo hello from the guest; exec sleep 600"],
        }],
    }
    argv = [str(switchboard_bin()), "start", str(nd.node_dir), "--logformat", "json"]
    router = launch_router(nd, config, [port], argv=argv)
    try:
        def records():
            lines = router.log_path.read_text().splitlines()
            return [json.loads(line) for line in lines if line.startswith("{")]

        async def guest_logged():
            await eventually(lambda: any("hello from the guest" in r["fields"].get("message", "") for r in records()),
                             "the guest's line in the log", timeout=20)

        run(guest_logged())
        lines = [line for line in router.log_path.read_text().splitlines() if line.strip()]
        # Everything but the one line `start` prints on stdout is a JSON log record.
        assert [line for line in lines if not line.startswith("{")] == [f"switchboard listening on tcp:127.0.0.1:{port}"], lines
        listening = next(r for r in records() if r["fields"].get("message") == "listening")
        assert listening["level"] == "INFO" and listening["fields"]["transport"] == f"tcp:127.0.0.1:{port}", listening
        guest = next(r for r in records() if "hello from the guest" in r["fields"].get("message", ""))
        assert guest["span"]["worker"] == "greeter" and guest["fields"]["stream"] == "stdout", guest
    finally:
        router.close()


def test_workers_connections_and_reloads_have_their_series(node):
    async def scenario():
        client = await connect(node, "websocket_tcp", "json", realm="realm1")
        try:
            return scrape(node)
        finally:
            await close_all(client)

    samples = run(scenario())
    assert value(samples, "switchboard_worker_up", worker="backend", type="guest") == 1
    assert value(samples, "switchboard_worker_restarts_total", worker="backend") == 0
    # The client, and the scrape's own HTTP connection.
    assert value(samples, "switchboard_connections", transport=f"tcp:127.0.0.1:{node.port}") >= 2
    assert value(samples, "switchboard_config_reloads_total", result="ok") == 0
    assert value(samples, "switchboard_config_reloads_total", result="error") == 0
    assert value(samples, "switchboard_config_last_reload_timestamp_seconds") == 0


def test_call_durations_and_authentications_have_their_series():
    """``switchboard_call_duration_seconds`` is a histogram per realm (CALL in to the caller's
    first answer) that counts every answered call, with cumulative buckets; and
    ``switchboard_auth_total`` counts each HELLO's authentication by method and result."""
    nd = make_node_dir("switchboard")
    port = free_tcp_port()
    config = {
        "version": 2,
        "workers": [{
            "type": "router",
            "realms": [{"name": "realm1", "roles": ROLES}, {"name": "quiet", "roles": ROLES}],
            "transports": [{
                "type": "universal",
                "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
                "websocket": {"ws": {"type": "websocket", "auth": {
                    "anonymous": {"type": "static", "role": "anonymous"},
                    "ticket": {"type": "static", "principals": {
                        "alice": {"ticket": "alice-secret", "role": "anonymous"}}}}}},
                "web": {"paths": {"metrics": {"type": "metrics"}}},
            }],
        }],
    }
    router = launch_router(nd, config, [port])
    calls = 7

    def buckets(samples, realm):
        found = sorted((float(dict(labels)["le"]), v) for (name, labels), v in samples.items()
                       if name == "switchboard_call_duration_seconds_bucket" and dict(labels)["realm"] == realm)
        assert len(found) == 17 and found[-1][0] == float("inf"), found
        return found

    try:
        # Every configured realm has the histogram from start-up, at 0.
        start = scrape(router)
        assert value(start, "switchboard_call_duration_seconds_count", realm="quiet") == 0
        assert value(start, "switchboard_call_duration_seconds_sum", realm="quiet") == 0
        assert all(v == 0 for _, v in buckets(start, "quiet"))
        for method in ("anonymous", "ticket", "wampcra", "cryptosign", "other"):
            for result in ("success", "failure"):
                assert value(start, "switchboard_auth_total", realm="quiet", method=method, result=result) == 0

        async def scenario():
            from interop_client import SessionRefused
            with pytest.raises(SessionRefused):
                await connect(router, "websocket_tcp", "json", realm="realm1",
                              authentication={"ticket": {"authid": "alice", "ticket": "wrong"}})
            after_failure = scrape(router)
            callee = await connect(router, "websocket_tcp", "json", realm="realm1")
            caller = await connect(router, "websocket_tcp", "msgpack", realm="realm1",
                                   authentication={"ticket": {"authid": "alice", "ticket": "alice-secret"}})
            try:
                await callee.session.register(lambda a, b: a + b, "com.example.ops.add2")
                for i in range(calls):
                    assert await bounded(caller.session.call("com.example.ops.add2", i, 1), "add2") == i + 1
                # A refused call is answered too (ERROR no_such_procedure).
                with pytest.raises(ApplicationError):
                    await bounded(caller.session.call("com.example.ops.missing"), "missing")
                return after_failure, scrape(router)
            finally:
                await close_all(callee, caller)

        after_failure, after = run(scenario())
    finally:
        router.close()

    def moved(samples, earlier, name, **labels):
        return value(samples, name, **labels) - value(earlier, name, **labels)

    count = value(after, "switchboard_call_duration_seconds_count", realm="realm1")
    assert count >= calls + 1, count
    assert value(after, "switchboard_call_duration_seconds_sum", realm="realm1") > 0
    counts = [v for _, v in buckets(after, "realm1")]
    assert counts == sorted(counts), counts  # cumulative: never smaller than the bucket below
    assert counts[-1] == count, (counts, count)
    assert value(after, "switchboard_call_duration_seconds_count", realm="quiet") == 0

    ticket = {"realm": "realm1", "method": "ticket"}
    assert moved(after_failure, start, "switchboard_auth_total", result="failure", **ticket) == 1
    assert moved(after_failure, start, "switchboard_auth_total", result="success", **ticket) == 0
    assert moved(after_failure, start, "switchboard_auth_failures_total", realm="realm1") == 1
    assert moved(after, after_failure, "switchboard_auth_total", result="success", **ticket) == 1
    assert moved(after, after_failure, "switchboard_auth_total", result="failure", **ticket) == 0
    assert moved(after, after_failure, "switchboard_auth_total", realm="realm1", method="anonymous",
                 result="success") == 1


def test_listed_uris_sessions_bytes_the_http_bridge_and_tls_certificates_have_their_series(tmp_path):
    """A URI listed in ``controller.options.metrics.uris`` gets series of its own (calls and
    publications) and no other URI does; a session that leaves is counted in
    ``switchboard_session_duration_seconds``; ``switchboard_message_bytes_total`` counts both
    directions; each HTTP bridge path counts its requests by status code and their durations; and
    each TLS transport shows when its certificate expires."""
    import urllib.request

    import tls_material as tm

    ca = tm.CA()
    server = ca.issue_server_cert()
    cert = tm.write(tmp_path / "server.crt", server.cert_pem())
    key = tm.write(tmp_path / "server.key", server.key_pem())
    nd = make_node_dir("switchboard")
    port, tls_port = free_tcp_port(), free_tcp_port()
    listed = "com.example.ops.listed"
    config = {
        "version": 2,
        "controller": {"options": {"metrics": {"uris": [listed]}}},
        "workers": [{
            "type": "router",
            "realms": [{"name": "realm1", "roles": ROLES}],
            "transports": [{
                "type": "universal",
                "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
                "websocket": {"ws": {"type": "websocket"}},
                "web": {"paths": {
                    "metrics": {"type": "metrics"},
                    "publish": {"type": "publisher", "realm": "realm1", "role": "anonymous"},
                }},
            }, {
                "type": "rawsocket",
                "endpoint": {"type": "tcp", "port": tls_port, "interface": "127.0.0.1",
                             "tls": {"certificate": str(cert), "key": str(key)}},
            }],
        }],
    }
    router = launch_router(nd, config, [port, tls_port])

    def publish_over_http(body: dict) -> int:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/publish", data=json.dumps(body).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status

    try:
        async def scenario():
            callee = await connect(router, "websocket_tcp", "json", realm="realm1")
            caller = await connect(router, "websocket_tcp", "json", realm="realm1")
            try:
                await callee.session.register(lambda: "listed", listed)
                await callee.session.register(lambda: "other", "com.example.ops.other")
                for _ in range(3):
                    assert await bounded(caller.session.call(listed), "listed") == "listed"
                for _ in range(2):
                    assert await bounded(caller.session.call("com.example.ops.other"), "other") == "other"
                caller.session.publish(listed, 1, options=PublishOptions(acknowledge=True))
                await bounded(caller.session.publish(listed, 2, options=PublishOptions(acknowledge=True)), "publish")
                return scrape(router)
            finally:
                await close_all(callee, caller)

        during = run(scenario())
        assert publish_over_http({"topic": listed, "args": [3]}) == 200

        def left():
            return value(scrape(router), "switchboard_session_duration_seconds_count", realm="realm1") >= 2

        run(eventually(left, "both sessions counted when they left"))
        after = scrape(router)
    finally:
        router.close()

    uri = {"realm": "realm1", "uri": listed}
    assert value(during, "switchboard_uri_messages_total", type="call", **uri) == 3
    assert value(during, "switchboard_uri_messages_total", type="publish", **uri) == 2
    assert not [k for k in after if dict(k[1]).get("uri") not in (None, listed)], "only the listed URI is a label"
    assert value(during, "switchboard_message_bytes_total", realm="realm1", direction="in") > 0
    assert value(during, "switchboard_message_bytes_total", realm="realm1", direction="out") > 0
    # The bytes of sessions that left are kept.
    assert value(after, "switchboard_message_bytes_total", realm="realm1", direction="in") >= \
        value(during, "switchboard_message_bytes_total", realm="realm1", direction="in")
    assert value(after, "switchboard_session_duration_seconds_bucket", realm="realm1", le="+Inf") >= 2
    assert value(after, "switchboard_session_duration_seconds_bucket", realm="realm1", le="60") >= 2

    rest = {"path": "publish", "type": "publisher"}
    assert value(after, "switchboard_rest_requests_total", code="200", **rest) == 1
    assert value(after, "switchboard_rest_request_duration_seconds_count", **rest) == 1

    not_after = server.cert.not_valid_after_utc.timestamp()
    assert value(after, "switchboard_tls_cert_not_after_seconds", transport=f"tcp:127.0.0.1:{tls_port}") == not_after


def test_start_raises_the_open_files_limit_to_the_hard_limit_and_says_so():
    """Every connection is a file: a node started from a shell whose soft limit is 1,024 raises
    it to the hard limit before it listens, and logs both."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(1024, hard)
    nd = make_node_dir("switchboard")
    port = free_tcp_port()
    config = {"version": 2, "workers": [{
        "type": "router",
        "realms": [{"name": "realm1", "roles": ROLES}],
        "transports": [{"type": "websocket", "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"}}],
    }]}
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        router = launch_router(nd, config, [port])
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        limits = open(f"/proc/{router.proc.pid}/limits").read()
        line = next(l for l in limits.splitlines() if l.startswith("Max open files"))
        fields = line.split()
        assert fields[3] == fields[4] == str(hard), line
        if low < hard:
            assert f"open files limit raised from {low} to {hard} (the hard limit)" in router.log_tail(), router.log_tail()
    finally:
        router.close()
