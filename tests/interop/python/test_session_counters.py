"""The traffic of each session in ``switchboard.session.list``, as the console's Sessions page
shows it: messages and bytes in and out, the outbox depth, when the session joined and when it
last sent something, its transport and address; and the list sorted by any of its columns.

Autobahn|Python sessions call and answer on one realm while a read-only session of the
management realm lists them.
"""

from __future__ import annotations

import os
import time

import pytest
from autobahn.wamp.exception import ApplicationError

from interop_client import bounded, close_all, connect, run
from interop_router import free_tcp_port, launch_router, make_node_dir

if os.environ.get("INTEROP_ROUTER", "switchboard") != "switchboard":
    pytest.skip("the management API is Switchboard's", allow_module_level=True)

ALL = {"call": True, "register": True, "publish": True, "subscribe": True}
CALLS = 10


@pytest.fixture(scope="module")
def node():
    nd = make_node_dir("switchboard")
    port = free_tcp_port()
    config = {
        "version": 2,
        "controller": {"management": {"realm": "mgmt"}},
        "workers": [{
            "type": "router",
            "realms": [
                {"name": "realm1", "roles": [{"name": "anonymous", "permissions": [
                    {"uri": "com.example.", "match": "prefix", "allow": ALL}]}]},
                {"name": "mgmt", "roles": [{"name": "mgmt-read", "permissions": [
                    {"uri": "switchboard.session.list", "allow": {"call": True}}]}]},
            ],
            "transports": [{
                "type": "websocket",
                "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
                "auth": {
                    "anonymous": {"type": "static", "role": "anonymous"},
                    "ticket": {"type": "static", "principals": {
                        "viewer": {"ticket": "viewer-secret", "role": "mgmt-read"}}}},
            }],
        }],
    }
    router = launch_router(nd, config, [port])
    try:
        yield router
    finally:
        router.close()


async def sessions(viewer, **kwargs) -> list[dict]:
    page = await bounded(viewer.session.call("switchboard.session.list", realm="realm1", **kwargs), "session.list")
    return page.results[0]


def test_a_session_s_counters_grow_as_it_calls_and_the_list_sorts_by_them(node):
    async def scenario():
        clients = []
        try:
            viewer = await connect(node, "websocket_tcp", "json", realm="mgmt",
                                   authentication={"ticket": {"authid": "viewer", "ticket": "viewer-secret"}})
            clients.append(viewer)
            callee = await connect(node, "websocket_tcp", "json", realm="realm1")
            caller = await connect(node, "websocket_tcp", "msgpack", realm="realm1")
            idle = await connect(node, "websocket_tcp", "cbor", realm="realm1")
            clients += [callee, caller, idle]
            ids = {"callee": callee.session.session_id, "caller": caller.session.session_id,
                   "idle": idle.session.session_id}
            await callee.session.register(lambda a, b: a + b, "com.example.counters.add2")

            before = {s["session"]: s for s in await sessions(viewer)}
            assert set(before) == set(ids.values()), before
            first = before[ids["caller"]]
            assert first["transport"] == "websocket" and first["serializer"] == "msgpack", first
            assert first["peer"].startswith("tcp4:127.0.0.1:"), first
            assert first["messages_in"] == 0 and first["bytes_in"] == 0, first
            assert first["outbox"] >= 0, first
            assert abs(first["joined"] - time.time()) < 60, first
            # Before its first message, its last activity is when it joined.
            assert first["last_activity"] == first["joined"], first
            assert before[ids["callee"]]["messages_in"] == 1, before  # REGISTER
            assert before[ids["callee"]]["messages_out"] == 1, before  # REGISTERED

            for i in range(CALLS):
                assert await bounded(caller.session.call("com.example.counters.add2", i, 1), "add2") == i + 1

            after = {s["session"]: s for s in await sessions(viewer)}
            was, now = before[ids["caller"]], after[ids["caller"]]
            assert now["messages_in"] - was["messages_in"] == CALLS, (was, now)
            assert now["messages_out"] - was["messages_out"] == CALLS, (was, now)
            assert now["bytes_in"] > was["bytes_in"] and now["bytes_out"] > was["bytes_out"], (was, now)
            assert now["last_activity"] > was["last_activity"], (was, now)
            assert now["joined"] == was["joined"], (was, now)
            was, now = before[ids["callee"]], after[ids["callee"]]
            assert now["messages_in"] - was["messages_in"] == CALLS, (was, now)  # YIELDs
            assert now["messages_out"] - was["messages_out"] == CALLS, (was, now)  # INVOCATIONs
            assert after[ids["idle"]]["messages_in"] == 0, after

            def order(rows):
                return [r["session"] for r in rows]

            # The callee sent REGISTER and the YIELDs, the caller the CALLs, the idle one nothing.
            busiest = order(await sessions(viewer, sort="-messages_in"))
            assert busiest == [ids["callee"], ids["caller"], ids["idle"]], (busiest, ids)
            quietest = order(await sessions(viewer, sort="messages_in"))
            assert quietest == busiest[::-1], quietest
            assert order(await sessions(viewer, sort="joined")) == [ids["callee"], ids["caller"], ids["idle"]]
            assert order(await sessions(viewer, sort="session")) == sorted(ids.values())
            assert order(await sessions(viewer, sort="-session")) == sorted(ids.values(), reverse=True)
            by_authid = await sessions(viewer, sort="authid")
            assert [r["authid"] for r in by_authid] == sorted(r["authid"] for r in by_authid), by_authid
            # The callee was sent REGISTERED and the INVOCATIONs, the caller the RESULTs.
            by_out = await sessions(viewer, sort="-messages_out", limit=1)
            assert order(by_out) == [ids["callee"]], by_out

            with pytest.raises(ApplicationError) as bad:
                await bounded(viewer.session.call("switchboard.session.list", sort="bytes"), "bad sort")
            assert bad.value.error == "wamp.error.invalid_argument", bad.value
        finally:
            await close_all(*clients)

    run(scenario())
