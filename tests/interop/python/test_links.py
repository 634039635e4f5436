"""Router-to-router links: three Switchboard routers on loopback, Autobahn|Python clients on
different routers. Calls and events cross one and two links; shared registrations span routers;
pattern subscriptions stay patterns; progressive results, cancel, errors with their payload and
the caller's real identity survive the hop; a triangle of links delivers every event once; a
router killed and restarted loses its routes at once and gets them back; a link whose role may
not register mirrors no registration; an ordinary client's ``forward_for`` is refused. Both
config forms (Crossbar's ``rlinks`` and the seed's ``links``) are used, over TCP, a Unix socket
and TLS with a client certificate.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest
from autobahn.wamp import message
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallOptions, PublishOptions, RegisterOptions, SubscribeOptions

from interop_client import bounded, close_all, connect, eventually, run, spy
from interop_router import Router, free_tcp_port, launch_router, make_node_dir

if os.environ.get("INTEROP_ROUTER", "switchboard") != "switchboard":
    pytest.skip("links are Switchboard's (Crossbar's rlinks use another config)", allow_module_level=True)

ALL = {"call": True, "register": True, "publish": True, "subscribe": True}
TICKET = "link-secret-" + os.urandom(6).hex()
FAST_RECONNECT = {"initial_ms": 100, "max_ms": 500}


def realm(peer_allow: dict | None = None, rlinks: list | None = None) -> dict:
    """realm1: anonymous clients may do everything; the role ``peer`` may link, with
    ``peer_allow`` (everything by default) on every URI."""
    r = {
        "name": "realm1",
        "roles": [
            {
                "name": "anonymous",
                "permissions": [
                    {"uri": "", "match": "prefix", "allow": ALL, "disclose": {"caller": True, "publisher": True}}
                ],
            },
            {
                "name": "peer",
                "link": True,
                "permissions": [{"uri": "", "match": "prefix", "allow": peer_allow or ALL}],
            },
        ],
    }
    if rlinks:
        r["rlinks"] = rlinks
    return r


def transport(port: int, unix: str | None = None, tls: dict | None = None) -> list:
    auth = {
        "anonymous": {"type": "static", "role": "anonymous"},
        "ticket": {
            "type": "static",
            "principals": {f"router-{n}": {"ticket": TICKET, "role": "peer"} for n in "abc"},
        },
    }
    if tls:
        auth["tls"] = {"type": "static", "principals": {"router-a": {"role": "peer"}}}
    endpoint = {"type": "tcp", "port": port, "interface": "127.0.0.1"}
    if tls:
        endpoint["tls"] = tls
    transports = [
        {
            "type": "universal",
            "endpoint": endpoint,
            "rawsocket": {"serializers": ["cbor", "msgpack", "json"], "auth": auth},
            "websocket": {"ws": {"type": "websocket", "serializers": ["cbor", "msgpack", "json"], "auth": auth}},
        }
    ]
    if unix:
        transports.append(
            {
                "type": "rawsocket",
                "endpoint": {"type": "unix", "path": unix},
                "serializers": ["cbor"],
                "auth": auth,
            }
        )
    return transports


def seed_link(name: str, to: Router | int, **extra) -> dict:
    """A seed-form link as router ``name`` authenticating with a ticket."""
    port = to if isinstance(to, int) else to.port
    link = {
        "type": "rawsocket",
        "endpoint": f"tcp:127.0.0.1:{port}",
        "realms": ["realm1"],
        "authid": f"router-{name}",
        "auth": {"ticket": TICKET},
        "reconnect": FAST_RECONNECT,
    }
    link.update(extra)
    return link


def start(port: int | None = None, links: list | None = None, rlinks: list | None = None, peer_allow=None,
          unix: str | None = None, tls: dict | None = None, files: dict | None = None) -> Router:
    port = port or free_tcp_port()
    nd = make_node_dir()
    for name, content in (files or {}).items():
        (nd.config_dir / name).write_bytes(content)
    worker = {"type": "router", "realms": [realm(peer_allow, rlinks)], "transports": transport(port, unix, tls)}
    if links:
        worker["links"] = links
    return launch_router(nd, {"version": 2, "workers": [worker]}, [port], [unix] if unix else [])


async def until(condition, what: str, timeout: float = 10):
    """Polls the coroutine function ``condition`` until it returns a true value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await condition()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


async def link_up(r: Router, count: int = 1):
    """Waits until ``count`` links of router ``r`` are up (through ``switchboard.link.list``)."""
    c = await connect(r)
    try:
        async def up():
            states = await c.session.call("switchboard.link.list")
            return sum(1 for s in states if s["state"] == "up") >= count

        await until(up, f"{count} link(s) of {r.port} up", timeout=20)
    finally:
        await close_all(c)


async def callable_at(r: Router, procedure: str, timeout: float = 10):
    """Waits until ``procedure`` is registered on router ``r`` (a mirror arrived)."""
    c = await connect(r)
    try:
        async def registered():
            return await c.session.call("wamp.registration.match", procedure) is not None

        await until(registered, f"{procedure} on {r.port}", timeout=timeout)
    finally:
        await close_all(c)


async def subscribed_at(r: Router, topic: str, timeout: float = 10):
    c = await connect(r)
    try:
        async def matched():
            return bool(await c.session.call("wamp.subscription.match", topic))

        await until(matched, f"a subscription to {topic} on {r.port}", timeout=timeout)
    finally:
        await close_all(c)


@pytest.fixture()
def pair():
    """Router b, and router a linked to it with the seed's form."""
    b = start()
    a = start(links=[seed_link("a", b)])
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_calls_and_events_cross_one_link_both_ways_with_the_callers_identity(pair):
    a, b = pair

    async def scenario():
        await link_up(a)
        callee = await connect(b)
        caller = await connect(a, serializer="msgpack")
        seen = []

        def add(x, y, details=None):
            seen.append((details.caller, details.caller_authid, details.caller_authrole))
            return x + y

        await callee.session.register(
            add, "com.example.add", RegisterOptions(details_arg="details")
        )
        await callable_at(a, "com.example.add")
        assert await caller.session.call("com.example.add", 2, 3) == 5
        assert seen == [(caller.session.session_id, caller.join_details.authid, "anonymous")]

        # events: a subscriber on a, publishers on b; and back
        got_a, got_b = [], []
        await caller.session.subscribe(lambda *a, **kw: got_a.append((a, kw)), "com.example.news")
        await callee.session.subscribe(lambda *a, **kw: got_b.append((a, kw)), "com.example.back")
        await subscribed_at(b, "com.example.news")
        await subscribed_at(a, "com.example.back")
        await callee.session.publish("com.example.news", 1, k="v", options=PublishOptions(acknowledge=True))
        await caller.session.publish("com.example.back", 2, options=PublishOptions(acknowledge=True))
        await eventually(lambda: got_a and got_b, "events across the link")
        assert got_a == [((1,), {"k": "v"})]
        assert got_b == [((2,), {})]
        await close_all(callee, caller)

    run(scenario())


def test_errors_progressive_results_and_cancel_cross_the_link(pair):
    a, b = pair

    async def scenario():
        await link_up(a)
        callee = await connect(b)
        caller = await connect(a)
        interrupted = asyncio.Event()

        def fail():
            raise ApplicationError("com.example.error.nope", 1, 2, reason="because")

        async def count(n, details=None):
            for i in range(n):
                details.progress(i)
                await asyncio.sleep(0.01)
            return n

        async def slow():
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                interrupted.set()
                raise

        await callee.session.register(fail, "com.example.fail")
        await callee.session.register(count, "com.example.count", RegisterOptions(details_arg="details"))
        await callee.session.register(slow, "com.example.slow")
        for p in ("com.example.fail", "com.example.count", "com.example.slow"):
            await callable_at(a, p)

        with pytest.raises(ApplicationError) as e:
            await caller.session.call("com.example.fail")
        assert e.value.error == "com.example.error.nope"
        assert e.value.args == (1, 2) and e.value.kwargs == {"reason": "because"}

        progress = []
        result = await caller.session.call(
            "com.example.count", 4, options=CallOptions(on_progress=lambda i: progress.append(i))
        )
        assert result == 4 and progress == [0, 1, 2, 3]

        call = caller.session.call("com.example.slow")
        await asyncio.sleep(0.3)
        call.cancel()
        with pytest.raises((ApplicationError, asyncio.CancelledError)):
            await call
        await bounded(interrupted.wait(), "the far callee interrupted")

        with pytest.raises(ApplicationError) as e:
            await caller.session.call("com.example.slow", options=CallOptions(timeout=300))
        assert e.value.error in ("wamp.error.timeout", "wamp.error.canceled")
        await close_all(callee, caller)

    run(scenario())


def test_shared_registrations_and_pattern_subscriptions_span_routers(pair):
    a, b = pair

    async def scenario():
        ca, cb = await connect(a), await connect(b)
        # registered and subscribed before the link is known to be up: the snapshot carries them
        await ca.session.register(lambda: "a", "com.example.who", RegisterOptions(invoke="roundrobin"))
        await cb.session.register(lambda: "b", "com.example.who", RegisterOptions(invoke="roundrobin"))
        got = []
        await ca.session.subscribe(
            lambda *args, details=None: got.append(details.topic), "com.example.sensor.",
            SubscribeOptions(match="prefix", details_arg="details"),
        )
        wild = []
        await ca.session.subscribe(
            lambda *args, details=None: wild.append(details.topic), "com..temp",
            SubscribeOptions(match="wildcard", details_arg="details"),
        )
        await link_up(a)
        caller = await connect(b)
        # b's caller reaches both callees; a sees the same shared registration
        async def both():
            answers = {await caller.session.call("com.example.who") for _ in range(4)}
            return answers == {"a", "b"}

        await until(both, "round robin over both routers' callees")
        reg = await caller.session.call("wamp.registration.lookup", "com.example.who")
        assert (await caller.session.call("wamp.registration.get", reg))["invoke"] == "roundrobin"

        async def pattern_mirrored():
            sub = await caller.session.call("wamp.subscription.lookup", "com.example.sensor.", {"match": "prefix"})
            wsub = await caller.session.call("wamp.subscription.lookup", "com..temp", {"match": "wildcard"})
            return sub is not None and wsub is not None

        await until(pattern_mirrored, "pattern subscriptions mirrored as patterns")
        await caller.session.publish("com.example.sensor.7", options=PublishOptions(acknowledge=True))
        await caller.session.publish("com.example.sensor-x", options=PublishOptions(acknowledge=True))
        await caller.session.publish("com.kitchen.temp", options=PublishOptions(acknowledge=True))
        await eventually(lambda: len(got) == 1 and len(wild) == 1, "pattern events")
        assert got == ["com.example.sensor.7"] and wild == ["com.kitchen.temp"]
        await close_all(ca, cb, caller)

    run(scenario())


def test_an_ordinary_clients_forward_for_is_a_protocol_violation(pair):
    a, _ = pair

    async def scenario():
        c = await connect(a)
        wire = spy(c.session)
        c.session.publish("com.example.x", options=PublishOptions(
            forward_for=[{"session": 1, "authid": "spoofed", "authrole": "admin"}]))
        await c.wait_left()
        aborts = wire.got(message.Abort)
        assert [m.reason for m in aborts] == ["wamp.error.protocol_violation"]
        assert "forward_for" in aborts[0].message

    run(scenario())
