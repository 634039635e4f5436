"""The management API's procedures on sessions, subscriptions, registrations, workers,
transports and links, called by Autobahn|Python sessions of a read-only and an admin role on
the management realm: each read answers what the node holds, each action works for the admin
and is refused to the read-only role (``wamp.error.not_authorized``), and
``switchboard.access.get`` tells each which actions it may take.
"""

from __future__ import annotations

import os

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import SubscribeOptions

import tls_material
from interop_client import bounded, close_all, connect, eventually, run
from interop_router import free_tcp_port, launch_router, make_node_dir

if os.environ.get("INTEROP_ROUTER", "switchboard") != "switchboard":
    pytest.skip("the management API is Switchboard's", allow_module_level=True)

ALL = {"call": True, "register": True, "publish": True, "subscribe": True}
READS = ["switchboard.access.get", "switchboard.session.list", "switchboard.subscription.list",
         "switchboard.registration.list", "switchboard.worker.list", "switchboard.worker.log",
         "switchboard.transport.list", "switchboard.tls.get_certificates", "switchboard.link.list",
         "switchboard.log.level.get"]
ACTIONS = ["switchboard.session.kill", "switchboard.realm.add", "switchboard.realm.remove",
           "switchboard.role.add", "switchboard.role.remove", "switchboard.transport.start",
           "switchboard.transport.stop", "switchboard.worker.restart", "switchboard.worker.stop",
           "switchboard.worker.start", "switchboard.config.reload", "switchboard.log.level.set",
           "switchboard.node.shutdown"]


@pytest.fixture(scope="module")
def node():
    nd = make_node_dir("switchboard")
    port, tls_port = free_tcp_port(), free_tcp_port()
    ca = tls_material.CA()
    issued = ca.issue_server_cert()
    tls_material.write(nd.node_dir / "server.key", issued.key_pem())
    tls_material.write(nd.node_dir / "server.crt", issued.cert_pem())
    config = {
        "version": 2,
        "controller": {"management": {"realm": "mgmt"}},
        "workers": [{
            "type": "router",
            "id": "router1",
            "realms": [
                {"name": "realm1", "roles": [{"name": "anonymous", "permissions": [
                    {"uri": "com.example.", "match": "prefix", "allow": ALL}]}]},
                {"name": "mgmt", "roles": [
                    {"name": "mgmt-read", "permissions": [{"uri": p, "allow": {"call": True}} for p in READS]},
                    {"name": "mgmt-admin", "permissions": [
                        {"uri": "switchboard.", "match": "prefix", "allow": {"call": True, "subscribe": True}}]},
                ]},
            ],
            "transports": [{
                "type": "universal",
                "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
                "rawsocket": {},
                "websocket": {"ws": {"type": "websocket", "auth": {
                    "anonymous": {"type": "static", "role": "anonymous"},
                    "ticket": {"type": "static", "principals": {
                        "viewer": {"ticket": "viewer-secret", "role": "mgmt-read"},
                        "operator": {"ticket": "operator-secret", "role": "mgmt-admin"}}}}}},
            }, {
                "type": "websocket",
                "endpoint": {"type": "tcp", "port": tls_port, "interface": "127.0.0.1",
                             "tls": {"key": "server.key", "certificate": "server.crt"}},
            }],
        }, {
            "type": "guest",
            "id": "ticker",
            "executable": "/bin/sh",
            "arguments": ["-c", "echo ticker started; exec sleep 600"],
        }],
    }
    router = launch_router(nd, config, [port, tls_port])
    router.tls_port = tls_port
    router.issued = issued
    try:
        yield router
    finally:
        router.close()


async def login(node, who: str):
    return await connect(node, "websocket_tcp", "json", realm="mgmt",
                         authentication={"ticket": {"authid": who, "ticket": f"{who}-secret"}})


def test_access_get_tells_each_role_which_actions_it_may_take(node):
    async def scenario():
        viewer = await login(node, "viewer")
        operator = await login(node, "operator")
        try:
            seen = (await bounded(viewer.session.call("switchboard.access.get"), "access")).kwresults
            assert seen["authid"] == "viewer" and seen["authrole"] == "mgmt-read", seen
            assert seen["may"] == {a: False for a in ACTIONS}, seen
            seen = (await bounded(operator.session.call("switchboard.access.get"), "access")).kwresults
            assert seen["may"] == {a: True for a in ACTIONS}, seen
            for action in ACTIONS:
                with pytest.raises(ApplicationError) as denied:
                    await bounded(viewer.session.call(action, "realm1", 1), action)
                assert denied.value.error == "wamp.error.not_authorized", action
        finally:
            await close_all(viewer, operator)

    run(scenario())


def test_sessions_subscriptions_and_registrations_of_a_realm_and_a_session_killed(node):
    async def scenario():
        app = await connect(node, "websocket_tcp", "json", realm="realm1")
        other = await connect(node, "rawsocket_tcp", "msgpack", realm="realm1")
        viewer = await login(node, "viewer")
        operator = await login(node, "operator")
        try:
            await app.session.register(lambda: None, "com.example.mgmt.proc")
            await app.session.subscribe(lambda: None, "com.example.mgmt.", options=SubscribeOptions(match="prefix"))
            await other.session.subscribe(lambda: None, "com.example.mgmt.topic")
            await app.session.subscribe(lambda: None, "com.example.mgmt.topic")

            regs = (await bounded(viewer.session.call("switchboard.registration.list", "realm1"), "regs"))
            assert [(r["uri"], r["match"], r["invoke"], r["callees"]) for r in regs] == \
                [("com.example.mgmt.proc", "exact", "single", 1)], regs
            subs = await bounded(viewer.session.call("switchboard.subscription.list", "realm1"), "subs")
            topic = next(s for s in subs if s["uri"] == "com.example.mgmt.topic")
            assert topic["subscribers"] == 2 and topic["match"] == "exact", subs
            with pytest.raises(ApplicationError) as missing:
                await bounded(viewer.session.call("switchboard.subscription.list", "nope"), "no realm")
            assert missing.value.error == "wamp.error.no_such_realm"

            other_id = other.session.session_id
            killed = await bounded(operator.session.call("switchboard.session.kill", "realm1",
                                                         other_id, message="bye"), "kill")
            assert killed == 1
            details = await other.wait_left()
            assert details.reason == "wamp.close.killed" and details.message == "bye", details
            with pytest.raises(ApplicationError) as gone:
                await bounded(operator.session.call("switchboard.session.kill", "realm1", other_id), "kill again")
            assert gone.value.error == "wamp.error.no_such_session"

            async def one_subscriber():
                subs = await viewer.session.call("switchboard.subscription.list", "realm1")
                return next(s for s in subs if s["uri"] == "com.example.mgmt.topic")["subscribers"] == 1

            for _ in range(100):
                if await one_subscriber():
                    break
            assert await one_subscriber()
        finally:
            await close_all(app, other, viewer, operator)

    run(scenario())


def test_workers_are_listed_with_their_log_and_a_guest_is_stopped_started_and_restarted(node):
    async def scenario():
        viewer = await login(node, "viewer")
        operator = await login(node, "operator")
        try:
            async def ticker():
                workers = await viewer.session.call("switchboard.worker.list")
                return {w["id"]: w for w in workers}

            async def in_state(state):
                for _ in range(200):
                    workers = await ticker()
                    if workers["ticker"]["state"] == state:
                        return workers
                    await __import__("asyncio").sleep(0.05)
                raise AssertionError(f"ticker not {state}: {await ticker()}")

            workers = await in_state("running")
            assert workers["router1"]["type"] == "router" and workers["router1"]["pid"] == node.proc.pid, workers
            first = workers["ticker"]
            assert first["type"] == "guest" and first["pid"] and first["restarts"] == 0, first
            await eventually(lambda: "ticker started" in node.log_tail(), "the guest's line")
            log = await bounded(viewer.session.call("switchboard.worker.log", "ticker"), "log")
            assert log == ["[stdout] ticker started"], log

            await bounded(operator.session.call("switchboard.worker.stop", "ticker"), "stop")
            stopped = (await in_state("stopped"))["ticker"]
            assert stopped["pid"] is None, stopped
            await bounded(operator.session.call("switchboard.worker.start", "ticker"), "start")
            started = (await in_state("running"))["ticker"]
            assert started["pid"] and started["pid"] != first["pid"] and started["restarts"] == 1, started
            await bounded(operator.session.call("switchboard.worker.restart", "ticker"), "restart")
            for _ in range(200):
                restarted = (await ticker())["ticker"]
                if restarted["state"] == "running" and restarted["pid"] != started["pid"]:
                    break
                await __import__("asyncio").sleep(0.05)
            assert restarted["restarts"] == 2 and restarted["pid"] != started["pid"], restarted
            log = await bounded(viewer.session.call("switchboard.worker.log", "ticker", 2), "log tail")
            assert log == ["[stdout] ticker started"] * 2, log
            with pytest.raises(ApplicationError) as unknown:
                await bounded(operator.session.call("switchboard.worker.restart", "router1"), "router")
            assert unknown.value.error == "switchboard.error.no_such_worker"
        finally:
            await close_all(viewer, operator)

    run(scenario())


def test_transports_show_where_they_listen_and_their_certificate_expiry(node):
    async def scenario():
        viewer = await login(node, "viewer")
        try:
            transports = await bounded(viewer.session.call("switchboard.transport.list"), "transports")
            assert [t["listen"] for t in transports] == [f"tcp:127.0.0.1:{node.port}",
                                                         f"tcp:127.0.0.1:{node.tls_port}"], transports
            assert transports[0]["type"] == "universal" and transports[0]["tls"] is None, transports
            tls = transports[1]["tls"]
            expected = node.issued.cert.not_valid_after_utc.timestamp()
            assert tls["not_after"] == int(expected) and 9 < tls["days_left"] <= 10, tls
            assert "localhost" in " ".join(tls["names"]) and "CN=localhost" in tls["subject"], tls
            certificates = await bounded(viewer.session.call("switchboard.tls.get_certificates"), "certs")
            assert [c["listen"] for c in certificates] == [f"tcp:127.0.0.1:{node.tls_port}"], certificates
            assert await bounded(viewer.session.call("switchboard.link.list"), "links") == []
        finally:
            await close_all(viewer)

    run(scenario())


def test_the_log_level_is_read_and_changed_while_the_node_runs(node):
    async def scenario():
        viewer = await login(node, "viewer")
        operator = await login(node, "operator")
        try:
            assert await bounded(viewer.session.call("switchboard.log.level.get"), "get") == "info"
            with pytest.raises(ApplicationError) as bad:
                await bounded(operator.session.call("switchboard.log.level.set", "loud=="), "bad filter")
            assert bad.value.error == "wamp.error.invalid_argument"
            assert await bounded(operator.session.call("switchboard.log.level.set", "debug"), "set") == "debug"
            assert await bounded(viewer.session.call("switchboard.log.level.get"), "get") == "debug"
            # A session's join is logged at debug level only.
            client = await connect(node, "websocket_tcp", "json", realm="realm1")
            await close_all(client)
            await eventually(lambda: " DEBUG " in node.log_tail() and "joined" in node.log_tail(),
                             "a debug line in the log")
            await bounded(operator.session.call("switchboard.log.level.set", level="info"), "set back")
        finally:
            await close_all(viewer, operator)

    run(scenario())


def test_refused_credentials_are_counted_per_realm(node):
    async def scenario():
        from interop_client import SessionRefused
        for _ in range(2):
            with pytest.raises(SessionRefused):
                await connect(node, "websocket_tcp", "json", realm="mgmt",
                              authentication={"ticket": {"authid": "viewer", "ticket": "wrong"}})
        operator = await login(node, "operator")
        try:
            page = await bounded(operator.session.call("switchboard.metrics.get"), "metrics")
            assert 'switchboard_auth_failures_total{realm="mgmt"} 2' in page, page
            assert 'switchboard_auth_failures_total{realm="realm1"} 0' in page, page
        finally:
            await close_all(operator)

    run(scenario())
