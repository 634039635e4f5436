"""WAMP over HTTP long-poll (the spec's Advanced Profile transport, Crossbar's ``longpoll`` path),
spoken by hand with Python's HTTP client: open, send, receive, close, in JSON and in batched
MessagePack; a session over long-poll calls a procedure an Autobahn|Python WebSocket session
registered and gets its events; a receive with nothing to get answers empty after
``request_timeout``; a transport nobody polls is closed after ``session_timeout`` and its session
leaves (a meta event says so). Autobahn|JS's long-poll transport runs in headless Chromium in
``tests/interop/browser/run.js``.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import struct
import time

import msgpack
import pytest

from interop_client import close_all, connect, eventually, run
from interop_router import free_tcp_port, launch_router, make_node_dir

if os.environ.get("INTEROP_ROUTER", "switchboard") != "switchboard":
    pytest.skip("request_timeout and session_timeout here are Switchboard's", allow_module_level=True)

ALL = {"call": True, "register": True, "publish": True, "subscribe": True}
HELLO = [1, "realm1", {"roles": {"caller": {}, "callee": {}, "publisher": {}, "subscriber": {}}}]


@pytest.fixture(scope="module")
def node():
    port = free_tcp_port()
    config = {
        "version": 2,
        "workers": [{
            "type": "router",
            "realms": [{"name": "realm1", "roles": [
                {"name": "anonymous", "permissions": [{"uri": "", "match": "prefix", "allow": ALL}]}]}],
            "transports": [{
                "type": "universal",
                "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
                "rawsocket": {},
                "websocket": {"ws": {"type": "websocket"}},
                "web": {"paths": {"lp": {"type": "longpoll",
                                         "options": {"request_timeout": 1, "session_timeout": 2}}}},
            }],
        }],
    }
    router = launch_router(make_node_dir("switchboard"), config, [port])
    try:
        yield router
    finally:
        router.close()


def post(node, path: str, body: bytes = b"", timeout: float = 10) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=timeout)
    try:
        conn.request("POST", f"/lp{path}", body, {"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def open_transport(node, protocols: list[str]) -> tuple[str, str]:
    status, body = post(node, "/open", json.dumps({"protocols": protocols}).encode())
    assert status == 200, (status, body)
    answer = json.loads(body)
    return answer["transport"], answer["protocol"]


class JsonLongPoll:
    """One transport in wamp.2.json: one message per send and per receive."""

    def __init__(self, node):
        self.node = node
        self.tid, protocol = open_transport(node, ["wamp.2.json"])
        assert protocol == "wamp.2.json"

    def send(self, msg):
        status, body = post(self.node, f"/{self.tid}/send", json.dumps(msg).encode())
        assert status == 204, (status, body)

    def receive(self):
        status, body = post(self.node, f"/{self.tid}/receive")
        assert status == 200, (status, body)
        return json.loads(body) if body else None

    def receive_until(self, kind: int, tries: int = 10):
        seen = []
        for _ in range(tries):
            msg = self.receive()
            if msg and msg[0] == kind:
                return msg
            seen.append(msg)
        raise AssertionError(f"no message of type {kind}; got {seen}")


def test_a_json_session_over_long_poll_calls_and_gets_events_from_websocket_sessions(node):
    # The HTTP requests block: they run in threads, so the WebSocket sessions keep working.
    async def scenario():
        ws = await connect(node, "websocket_tcp", "json")
        try:
            await ws.session.register(lambda a, b: a + b, "com.example.lp.add2")
            lp = await asyncio.to_thread(JsonLongPoll, node)
            await asyncio.to_thread(lp.send, HELLO)
            welcome = await asyncio.to_thread(lp.receive_until, 2)
            assert welcome[2]["authrole"] == "anonymous", welcome

            await asyncio.to_thread(lp.send, [48, 1, {}, "com.example.lp.add2", [2, 3]])
            assert await asyncio.to_thread(lp.receive_until, 50) == [50, 1, {}, [5]]

            await asyncio.to_thread(lp.send, [32, 2, {}, "com.example.lp.topic"])
            subscribed = await asyncio.to_thread(lp.receive_until, 33)
            ws.session.publish("com.example.lp.topic", "from websocket")
            event = await asyncio.to_thread(lp.receive_until, 36)
            assert event[1] == subscribed[2] and event[4] == ["from websocket"], event

            await asyncio.to_thread(lp.send, [6, {}, "wamp.close.close_realm"])
            assert (await asyncio.to_thread(lp.receive_until, 6))[2] == "wamp.close.goodbye_and_out"
            assert (await asyncio.to_thread(post, node, f"/{lp.tid}/close"))[0] == 204
            assert (await asyncio.to_thread(post, node, f"/{lp.tid}/receive"))[0] == 404
        finally:
            await close_all(ws)

    run(scenario())


def test_batched_msgpack_carries_several_messages_per_request(node):
    tid, protocol = open_transport(node, ["wamp.2.nonsense", "wamp.2.msgpack.batched", "wamp.2.json"])
    assert protocol == "wamp.2.msgpack.batched"

    def batch(*msgs):
        return b"".join(struct.pack(">I", len(p)) + p for p in (msgpack.packb(m) for m in msgs))

    def unbatch(body):
        out = []
        while body:
            (n,) = struct.unpack(">I", body[:4])
            out.append(msgpack.unpackb(body[4:4 + n]))
            body = body[4 + n:]
        return out

    def receive_all(count):
        got = []
        deadline = time.time() + 10
        while len(got) < count and time.time() < deadline:
            status, body = post(node, f"/{tid}/receive")
            assert status == 200, (status, body)
            got += unbatch(body)
        return got

    assert post(node, f"/{tid}/send", batch(HELLO))[0] == 204
    assert receive_all(1)[0][0] == 2
    # two calls in one request; their results may come back in one batch
    assert post(node, f"/{tid}/send", batch([48, 1, {}, "wamp.session.count"], [48, 2, {}, "wamp.session.count"]))[0] == 204
    results = receive_all(2)
    assert sorted(r[1] for r in results) == [1, 2] and all(r[0] == 50 for r in results), results
    assert post(node, f"/{tid}/close")[0] == 204


def test_a_receive_with_nothing_to_get_answers_empty_after_the_request_timeout(node):
    lp = JsonLongPoll(node)
    lp.send(HELLO)
    lp.receive_until(2)
    t0 = time.monotonic()
    status, body = post(node, f"/{lp.tid}/receive")
    assert (status, body) == (200, b""), (status, body)
    assert time.monotonic() - t0 >= 0.9
    post(node, f"/{lp.tid}/close")


def test_a_transport_nobody_polls_is_closed_and_its_session_leaves(node):
    async def scenario():
        ws = await connect(node, "websocket_tcp", "json")
        try:
            left = []
            await ws.session.subscribe(lambda session_id, *a: left.append(session_id), "wamp.session.on_leave")
            lp = await asyncio.to_thread(JsonLongPoll, node)
            await asyncio.to_thread(lp.send, HELLO)
            session_id = (await asyncio.to_thread(lp.receive_until, 2))[1]
            # no request for longer than session_timeout (2 s)
            await eventually(lambda: session_id in left, "the long-poll session's on_leave", timeout=10)
            status, _ = await asyncio.to_thread(post, node, f"/{lp.tid}/send", json.dumps([48, 1, {}, "x"]).encode())
            assert status == 404
        finally:
            await close_all(ws)

    run(scenario())


def test_open_refuses_a_request_without_a_protocol_it_serves(node):
    status, body = post(node, "/open", json.dumps({"protocols": ["wamp.2.ubjson"]}).encode())
    assert status == 400 and b"wamp.2.json" in body, (status, body)
    status, _ = post(node, "/open", b"not json")
    assert status == 400
    assert post(node, "/nosuchtransport/receive")[0] == 404
