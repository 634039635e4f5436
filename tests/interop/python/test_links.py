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
from autobahn.wamp.types import PublishOptions, RegisterOptions, SubscribeOptions

from interop_client import bounded, close_all, connect, eventually, run, spy
from interop_router import Router, free_tcp_port, launch_router, make_node_dir, run_router_command
from relayed_calls import PROCEDURES, check_relayed_calls, register_callees

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


def transport(port: int, unix: str | None = None, tls: dict | None = None, node_keys: dict | None = None) -> list:
    auth = {
        "anonymous": {"type": "static", "role": "anonymous"},
        "ticket": {
            "type": "static",
            "principals": {f"router-{n}": {"ticket": TICKET, "role": "peer"} for n in "abc"},
        },
    }
    if node_keys:
        auth["cryptosign"] = {
            "type": "static",
            "principals": {authid: {"authorized_keys": [key], "role": "peer"} for authid, key in node_keys.items()},
        }
    tcp_auth = dict(auth)
    if tls:
        tcp_auth["tls"] = {"type": "static", "principals": {"router-a": {"role": "peer"}}}
    endpoint = {"type": "tcp", "port": port, "interface": "127.0.0.1"}
    if tls:
        endpoint["tls"] = tls
    transports = [
        {
            "type": "universal",
            "endpoint": endpoint,
            "rawsocket": {"serializers": ["cbor", "msgpack", "json"], "auth": tcp_auth},
            "websocket": {"ws": {"type": "websocket", "serializers": ["cbor", "msgpack", "json"], "auth": tcp_auth}},
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
          unix: str | None = None, tls: dict | None = None, files: dict | None = None,
          node_keys: dict | None = None) -> Router:
    port = port or free_tcp_port()
    nd = make_node_dir()
    for name, content in (files or {}).items():
        (nd.config_dir / name).write_bytes(content)
    worker = {"type": "router", "realms": [realm(peer_allow, rlinks)],
              "transports": transport(port, unix, tls, node_keys)}
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


async def client_of(r: Router):
    """A client of ``r``: over its Unix socket where it has one (its TCP port may ask for TLS)."""
    if r.unix_path:
        return await connect(r, transport="rawsocket_unix", serializer="cbor")
    return await connect(r)


async def link_up(r: Router, count: int = 1):
    """Waits until ``count`` links of router ``r`` are up (through ``switchboard.link.list``)."""
    c = await client_of(r)
    try:
        async def up():
            states = await c.session.call("switchboard.link.list")
            return sum(1 for s in states if s["state"] == "up") >= count

        await until(up, f"{count} link(s) of {r.port} up", timeout=20)
    finally:
        await close_all(c)


async def callable_at(r: Router, procedure: str, timeout: float = 10):
    """Waits until ``procedure`` is registered on router ``r`` (a mirror arrived)."""
    c = await client_of(r)
    try:
        async def registered():
            return await c.session.call("wamp.registration.match", procedure) is not None

        await until(registered, f"{procedure} on {r.port}", timeout=timeout)
    finally:
        await close_all(c)


async def subscribed_at(r: Router, topic: str, timeout: float = 10):
    c = await client_of(r)
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
        interrupted = await register_callees(callee)
        for p in PROCEDURES:
            await callable_at(a, p)
        await check_relayed_calls(caller, interrupted)
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


def test_two_hops_in_tree_mode_and_the_link_meta_procedures():
    """a -> b <- c in ``tree`` mode: a publisher on a reaches a subscriber on c, a caller on c
    reaches a callee on a, and the far side sees the real publisher and caller, with one
    ``forward_for`` hop per link."""
    b = start()
    a = start(links=[seed_link("a", b, mode="tree")])
    c = start(links=[seed_link("c", b, mode="tree")])
    try:

        async def scenario():
            await link_up(a)
            await link_up(c)
            pa, sc = await connect(a), await connect(c)
            got = []
            await sc.session.subscribe(
                lambda *args, details=None: got.append((args, details.publisher_authid, details.forward_for)),
                "com.example.far",
                SubscribeOptions(details_arg="details"),
            )
            await subscribed_at(a, "com.example.far")
            await pa.session.publish("com.example.far", "hi", options=PublishOptions(acknowledge=True))
            await eventually(lambda: got, "the event two links away")
            args, authid, hops = got[0]
            assert args == ("hi",) and authid == pa.join_details.authid
            assert hops[0]["session"] == pa.session.session_id
            # each router appends the link session that brought the message in: a's link on b,
            # then c's own end of its link on c
            assert [h["authid"] for h in hops[1:]] == ["router-a", "link:link001"]

            seen = []

            def echo(x, details=None):
                seen.append(details.caller_authid)
                return x

            await pa.session.register(echo, "com.example.echo", RegisterOptions(details_arg="details"))
            await callable_at(c, "com.example.echo")
            assert await sc.session.call("com.example.echo", 42) == 42
            assert seen == [sc.join_details.authid]

            # the link meta procedures, on the realm the link serves
            [state] = await pa.session.call("switchboard.link.list")
            assert state["id"] == "link001" and state["state"] == "up" and state["mode"] == "tree"
            detail = await pa.session.call("switchboard.link.get", "link001")
            assert detail["remote_node"] and detail["mirrored_in"]["subscriptions"] >= 1
            with pytest.raises(ApplicationError) as e:
                await pa.session.call("switchboard.link.get", "nope")
            assert e.value.error == "switchboard.error.no_such_link"
            await close_all(pa, sc)

        run(scenario())
    finally:
        for r in (a, b, c):
            r.close()


def test_a_triangle_of_links_delivers_every_event_once_and_every_call_to_one_callee():
    """a -> b, b -> c, a -> c in the default ``mesh`` mode (Crossbar's rlinks form for one of
    them): each event reaches each subscriber exactly once."""
    pa, pb, pc = free_tcp_port(), free_tcp_port(), free_tcp_port()
    rlink = {
        "id": "to-c",
        "authid": "router-b",
        "transport": {
            "type": "websocket",
            "url": f"ws://127.0.0.1:{pc}/ws",
            "serializers": ["msgpack"],
            "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": pc},
        },
        "auth": {"ticket": TICKET},
        "reconnect": FAST_RECONNECT,
    }
    c = start(pc)
    b = start(pb, rlinks=[rlink])
    a = start(pa, links=[seed_link("a", b), seed_link("a", c, id="to-c")])
    try:

        async def scenario():
            await link_up(a, 2)
            await link_up(b)
            clients = {"a": await connect(a), "b": await connect(b), "c": await connect(c)}
            got = {name: [] for name in clients}
            for name, client in clients.items():
                await client.session.subscribe(
                    lambda n, name=name: got[name].append(n), "com.example.tri"
                )
            for r in (a, b, c):
                for _ in range(3):
                    await subscribed_at(r, "com.example.tri")
            calls = []
            await clients["c"].session.register(lambda: calls.append(1) or "c", "com.example.one")
            await callable_at(a, "com.example.one")
            await callable_at(b, "com.example.one")
            n = 0
            for client in clients.values():
                for _ in range(5):
                    n += 1
                    await client.session.publish("com.example.tri", n, options=PublishOptions(exclude_me=False, acknowledge=True))
            await eventually(lambda: all(len(g) >= n for g in got.values()), "every event everywhere")
            await asyncio.sleep(0.5)  # a duplicate would arrive by now
            for name, g in got.items():
                assert sorted(g) == list(range(1, n + 1)), f"{name}: {g}"
            for client in (clients["a"], clients["b"]):
                assert await client.session.call("com.example.one") == "c"
            assert len(calls) == 2
            await close_all(*clients.values())

        run(scenario())
    finally:
        for r in (a, b, c):
            r.close()


def test_a_killed_router_loses_its_routes_at_once_and_gets_them_back_after_restart():
    pb = free_tcp_port()
    b = start(pb)
    a = start(links=[seed_link("a", b)])
    try:

        async def scenario():
            nonlocal b
            await link_up(a)
            callee = await connect(b)

            async def slow():
                await asyncio.sleep(30)

            await callee.session.register(lambda: "b", "com.example.there")
            await callee.session.register(slow, "com.example.slow")
            await callable_at(a, "com.example.there")
            await callable_at(a, "com.example.slow")
            caller = await connect(a)
            # held on a before b restarts: the new b must get it in the link's resync
            await caller.session.register(lambda: "a", "com.example.here")
            await callable_at(b, "com.example.here")
            assert await caller.session.call("com.example.there") == "b"
            in_flight = asyncio.ensure_future(caller.session.call("com.example.slow"))
            await asyncio.sleep(0.3)
            b.kill()
            with pytest.raises(ApplicationError) as e:
                await bounded(in_flight, "the call in flight failing")
            assert e.value.error == "wamp.error.canceled"

            async def gone():
                try:
                    await caller.session.call("com.example.there")
                except ApplicationError as e:
                    return e.error == "wamp.error.no_such_procedure"
                return False

            await until(gone, "the dead router's procedure gone", timeout=5)
            b = start(pb)
            callee = await connect(b)
            await callee.session.register(lambda: "b again", "com.example.there")

            async def back():
                try:
                    return await caller.session.call("com.example.there") == "b again"
                except ApplicationError:
                    return False

            await until(back, "the route back after the restart", timeout=20)
            assert await callee.session.call("com.example.here") == "a"
            await close_all(callee, caller)

        run(scenario())
    finally:
        a.close()
        b.close()


def test_a_link_whose_role_may_not_register_mirrors_no_registration():
    b = start(peer_allow={"call": True, "publish": True, "subscribe": True})
    a = start(links=[seed_link("a", b)])
    try:

        async def scenario():
            await link_up(a)
            callee = await connect(a)
            await callee.session.register(lambda: "a", "com.example.mine")
            caller = await connect(b)

            async def refused():
                [state] = await callee.session.call("switchboard.link.list")
                return any("not_authorized" in c for c in state["conflicts"])

            await until(refused, "the refused mirror reported")
            with pytest.raises(ApplicationError) as e:
                await caller.session.call("com.example.mine")
            assert e.value.error == "wamp.error.no_such_procedure"
            assert await caller.session.call("wamp.registration.match", "com.example.mine") is None
            await close_all(callee, caller)

        run(scenario())
    finally:
        a.close()
        b.close()


def test_links_over_a_unix_socket_and_over_tls_with_a_client_certificate(tmp_path):
    """Router b listens on a Unix socket and on TLS that asks for client certificates; one
    router links over the socket (ticket), another over TLS, authenticated by its certificate."""
    from tls_material import CA

    ca = CA()
    server = ca.issue_server_cert()
    client = ca.issue_client_cert("router-a")
    files = {
        "server.key": server.key_pem(), "server.crt": server.cert_pem(), "ca.crt": ca.cert_pem(),
        "client.key": client.key_pem(), "client.crt": client.cert_pem(),
    }
    sock = str(tmp_path / "b.sock")
    b = start(unix=sock, files=files,
              tls={"key": "server.key", "certificate": "server.crt", "ca_certificates": ["ca.crt"]})
    unix_link = {
        "type": "rawsocket", "endpoint": f"unix:{sock}", "realms": ["realm1"], "id": "over-unix",
        "authid": "router-a", "auth": {"ticket": TICKET}, "reconnect": FAST_RECONNECT,
    }
    tls_link = {
        "type": "websocket", "endpoint": f"tcp:127.0.0.1:{b.port}", "realms": "any", "id": "over-tls",
        "tls": {"key": "client.key", "cert": "client.crt", "ca": "ca.crt"},
        "reconnect": FAST_RECONNECT,
    }
    a_unix = start(links=[unix_link])
    a_tls = start(links=[tls_link], files=files)
    try:

        async def scenario():
            for a in (a_unix, a_tls):
                await link_up(a)
                c = await connect(a)
                await c.session.register(lambda port=a.port: port, f"com.example.at{a.port}")
                await callable_at(b, f"com.example.at{a.port}")
                probe = await client_of(b)
                assert await probe.session.call(f"com.example.at{a.port}") == a.port
                whose = await probe.session.call("wamp.session.list")
                authids = [(await probe.session.call("wamp.session.get", s))["authid"] for s in whose]
                assert "router-a" in authids
                await close_all(probe, c)

        run(scenario())
    finally:
        for r in (a_unix, a_tls, b):
            r.close()


def test_check_names_the_place_of_a_bad_link(tmp_path):
    import subprocess

    from interop_router import switchboard_bin

    config = {
        "version": 2,
        "workers": [{
            "type": "router",
            "realms": [realm(rlinks=[{"transport": {"type": "websocket", "endpoint": {"type": "tcp", "host": "x"}}}])],
            "links": [{"type": "rawsocket", "endpoint": "tcp:nohost", "realms": ["nope"],
                       "auth": {"ticket": "t", "wampcra": {"secret": "s"}}}],
        }],
    }
    (tmp_path / "config.json").write_text(__import__("json").dumps(config, indent=2))
    out = subprocess.run([str(switchboard_bin()), "check", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 1, out
    err = out.stderr
    for expected in (
        "workers[0].links[0].endpoint",
        "expected tcp:host:port",
        "workers[0].links[0].realms[0]",
        "this router has no realm `nope`",
        "workers[0].links[0].auth",
        "workers[0].realms[0].rlinks[0].transport",
        "a tcp endpoint needs `port`",
        "config.json:",
    ):
        assert expected in err, err


def test_a_single_registration_on_both_routers_is_a_reported_conflict():
    """Both routers hold ``com.example.single`` (invoke single) when the link comes up: the
    mirrors are refused, reported in ``switchboard.link.list``, and each router keeps its own."""
    pb = free_tcp_port()
    # b is not there yet: the first try fails, the next one comes after 3 s
    slow = {"initial_ms": 3000, "max_ms": 3000, "jitter": "none"}
    a = start(links=[seed_link("a", pb, reconnect=slow)])
    b = None
    try:

        async def scenario():
            nonlocal b
            ca = await connect(a)
            await ca.session.register(lambda: "a", "com.example.single")
            b = start(pb)
            cb = await connect(b)
            await cb.session.register(lambda: "b", "com.example.single")
            await link_up(a)

            async def reported():
                [state] = await ca.session.call("switchboard.link.list")
                return sum("procedure_already_exists" in c for c in state["conflicts"]) == 2

            await until(reported, "both refused mirrors in switchboard.link.list")
            assert await ca.session.call("com.example.single") == "a"
            assert await cb.session.call("com.example.single") == "b"
            await close_all(ca, cb)

        run(scenario())
    finally:
        a.close()
        if b is not None:
            b.close()


def test_two_routers_linking_to_each_other_keep_one_link_and_deliver_once():
    pa, pb = free_tcp_port(), free_tcp_port()
    a = start(pa, links=[seed_link("a", pb)])
    b = start(pb, links=[seed_link("b", pa)])
    try:

        async def scenario():
            ca, cb = await connect(a), await connect(b)

            async def one_up():
                states = await ca.session.call("switchboard.link.list") + await cb.session.call("switchboard.link.list")
                return [s["state"] for s in states].count("up") == 1 and all(
                    s["state"] in ("up", "refused", "connecting") for s in states
                )

            await until(one_up, "exactly one of the two links up", timeout=20)
            got = []
            await cb.session.subscribe(lambda n: got.append(n), "com.example.pair")
            await subscribed_at(a, "com.example.pair")
            for n in range(5):
                await ca.session.publish("com.example.pair", n, options=PublishOptions(acknowledge=True))
            await eventually(lambda: len(got) >= 5, "the events")
            await asyncio.sleep(0.5)
            assert got == [0, 1, 2, 3, 4]
            await close_all(ca, cb)

        run(scenario())
    finally:
        a.close()
        b.close()


def test_a_cycle_of_tree_links_and_overlapping_patterns_still_deliver_each_event_once_per_subscription():
    """A triangle of ``tree`` links gives an event two paths to each router, and a subscriber
    holding an exact and a prefix subscription that both match gives the link two copies:
    every subscription still gets each event once."""
    pb, pc = free_tcp_port(), free_tcp_port()
    c = start(pc)
    b = start(pb, links=[seed_link("b", pc, mode="tree")])
    a = start(links=[seed_link("a", pb, mode="tree"), seed_link("a", pc, mode="tree", id="to-c")])
    try:

        async def scenario():
            await link_up(a, 2)
            await link_up(b)
            pub, sb, sc = await connect(a), await connect(b), await connect(c)
            exact, prefix, at_b = [], [], []
            await sc.session.subscribe(lambda n: exact.append(n), "com.example.cyc")
            await sc.session.subscribe(lambda n: prefix.append(n), "com.example.", SubscribeOptions(match="prefix"))
            await sb.session.subscribe(lambda n: at_b.append(n), "com.example.cyc")
            await subscribed_at(a, "com.example.cyc")
            await subscribed_at(a, "com.example.")
            await asyncio.sleep(0.5)  # interest also takes the longer way round
            for n in range(5):
                await pub.session.publish("com.example.cyc", n, options=PublishOptions(acknowledge=True))
            await eventually(lambda: len(exact) >= 5 and len(prefix) >= 5 and len(at_b) >= 5, "the events")
            await asyncio.sleep(0.5)
            assert sorted(exact) == sorted(prefix) == sorted(at_b) == [0, 1, 2, 3, 4]
            await close_all(pub, sb, sc)

        run(scenario())
    finally:
        for r in (a, b, c):
            r.close()


def test_black_and_whitelists_by_authid_and_authrole_apply_on_the_far_router(pair):
    a, b = pair

    async def scenario():
        await link_up(a)
        pub, sub = await connect(a), await connect(b)
        got = []
        await sub.session.subscribe(lambda n: got.append(n), "com.example.lists")
        await subscribed_at(a, "com.example.lists")
        me = sub.join_details.authid
        await pub.session.publish("com.example.lists", 1, options=PublishOptions(acknowledge=True, exclude_authrole=["anonymous"]))
        await pub.session.publish("com.example.lists", 2, options=PublishOptions(acknowledge=True, exclude_authid=[me]))
        await pub.session.publish("com.example.lists", 3, options=PublishOptions(acknowledge=True, eligible_authid=["someone-else"]))
        await pub.session.publish("com.example.lists", 4, options=PublishOptions(acknowledge=True, eligible_authid=[me]))
        await pub.session.publish("com.example.lists", 5, options=PublishOptions(acknowledge=True, eligible_authrole=["anonymous"]))
        await eventually(lambda: len(got) >= 2, "the eligible events")
        await asyncio.sleep(0.3)
        assert got == [4, 5]
        await close_all(pub, sub)

    run(scenario())


def test_by_default_a_link_authenticates_with_the_node_key_by_cryptosign():
    """No ``auth``: the link offers WAMP-Cryptosign with the node's key (``key.priv`` in the node
    directory, Crossbar's format), which the other router lists as an authorized key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    seed = os.urandom(32)
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    key_priv = f"creator: test\npublic-key-ed25519: {public}\nprivate-key-ed25519: {seed.hex()}\n".encode()
    b = start(node_keys={"router-a": public})
    link = {"type": "rawsocket", "endpoint": f"tcp:127.0.0.1:{b.port}", "realms": ["realm1"],
            "authid": "router-a", "reconnect": FAST_RECONNECT}
    a = start(links=[link], files={"key.priv": key_priv})
    try:

        async def scenario():
            await link_up(a)
            ca = await connect(a)
            [state] = await ca.session.call("switchboard.link.list")
            cb = await connect(b)
            sessions = [await cb.session.call("wamp.session.get", s) for s in await cb.session.call("wamp.session.list")]
            [peer] = [s for s in sessions if s["authid"] == "router-a"]
            assert peer["authmethod"] == "cryptosign" and peer["authrole"] == "peer"
            assert state["state"] == "up"
            await close_all(ca, cb)

        run(scenario())
    finally:
        a.close()
        b.close()


def test_a_router_that_stops_answering_is_dropped_by_the_links_ping():
    """The other router is frozen (SIGSTOP): its TCP connection stays open, so only the link's
    ``ping`` can tell. Its routes go; once it answers again (SIGCONT) the link comes back."""
    import signal

    b = start()
    a = start(links=[seed_link("a", b, ping={"interval": 0.3, "timeout": 0.5})])
    try:

        async def scenario():
            await link_up(a)
            callee = await connect(b)
            await callee.session.register(lambda: "b", "com.example.frozen")
            await callable_at(a, "com.example.frozen")
            caller = await connect(a)
            os.kill(b.proc.pid, signal.SIGSTOP)
            try:

                async def gone():
                    [state] = await caller.session.call("switchboard.link.list")
                    return state["state"] != "up" and "ping" in (state["last_error"] or "")

                await until(gone, "the link dropped by its ping", timeout=10)
                with pytest.raises(ApplicationError) as e:
                    await caller.session.call("com.example.frozen")
                assert e.value.error == "wamp.error.no_such_procedure"
            finally:
                os.kill(b.proc.pid, signal.SIGCONT)

            async def back():
                try:
                    return await caller.session.call("com.example.frozen") == "b"
                except ApplicationError:
                    return False

            await until(back, "the route back once b answers", timeout=20)
            await close_all(callee, caller)

        run(scenario())
    finally:
        a.close()
        b.close()


def test_a_reload_adds_changes_and_removes_a_link_while_clients_stay_connected():
    """A link added to the config file connects at the next reload (``switchboard reload``), a
    changed one reconnects with its new settings, a removed one leaves both routers: its mirrored
    routes vanish; the clients of both routers stay connected throughout."""
    b = start()
    port = free_tcp_port()
    nd = make_node_dir()
    worker = {"type": "router", "realms": [realm()], "transports": transport(port)}
    a = launch_router(nd, {"version": 2, "workers": [worker]}, [port])

    def reload_with(links):
        if links:
            worker["links"] = links
        else:
            worker.pop("links", None)
        nd.write_config({"version": 2, "workers": [worker]})
        result = run_router_command(nd, "reload", timeout=60)
        assert result.returncode == 0, result.describe()
        return result.output

    try:

        async def scenario():
            callee = await connect(b)
            caller = await connect(a)
            try:
                await callee.session.register(lambda: "from b", "com.example.there")
                with pytest.raises(ApplicationError) as e:
                    await caller.session.call("com.example.there")
                assert e.value.error == "wamp.error.no_such_procedure"
                assert await caller.session.call("switchboard.link.list") == []

                output = reload_with([seed_link("a", b, id="to-b")])
                assert 'applied: link "to-b" added' in output, output
                await link_up(a)
                await callable_at(a, "com.example.there")
                assert await bounded(caller.session.call("com.example.there"), "across the new link") == "from b"

                # Changed (a ping setting): it reconnects, the routes come back.
                output = reload_with([seed_link("a", b, id="to-b", ping={"interval": 5})])
                assert 'applied: link "to-b" restarted with its new config' in output, output
                await link_up(a)
                await callable_at(a, "com.example.there")
                assert await bounded(caller.session.call("com.example.there"), "after the change") == "from b"

                output = reload_with(None)
                assert 'applied: link "to-b" removed: it leaves both routers' in output, output

                async def gone():
                    return await caller.session.call("wamp.registration.match", "com.example.there") is None

                await until(gone, "the mirrored procedure gone from a")
                assert await caller.session.call("switchboard.link.list") == []
                assert not callee.left.done() and not caller.left.done()
            finally:
                await close_all(callee, caller)

        run(scenario())
    finally:
        a.close()
        b.close()
