"""Cluster mode: three Switchboard nodes on one NATS cluster of three servers (started here, on
free loopback ports, with their own JetStream directories) serve one realm to Autobahn|Python
clients connected to different nodes as if one router. Events cross nodes once each and in order
(exact, prefix and wildcard subscriptions; exclude and eligible by session and authid); calls
cross nodes with every invocation policy, progressive results, errors, cancel and the caller's
identity; a ``single`` procedure is refused on a second node; a node killed with SIGKILL fails
its callers' calls and its registrations go within the TTL while the rest keeps routing; a NATS
server killed leaves the cluster working on the other two; ``switchboard cluster status`` lists
the nodes and says where a node's config differs.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions, RegisterOptions, SubscribeOptions

from autobahn.wamp import message

from interop_client import bounded, close_all, connect, eventually, run, spy
from interop_router import NodeDir, Router, free_tcp_port, launch_router, make_node_dir, switchboard_bin
from nats_cluster import NatsCluster, start_nats_cluster
from relayed_calls import PROCEDURES, check_relayed_calls, register_callees

if os.environ.get("INTEROP_ROUTER", "switchboard") != "switchboard":
    pytest.skip("cluster mode is Switchboard's", allow_module_level=True)

ALL = {"call": True, "register": True, "publish": True, "subscribe": True}
ANONYMOUS = {"anonymous": {"type": "static", "role": "anonymous"}}
HEARTBEAT_MS = 250
NODE_TTL_MS = 1500


@pytest.fixture(scope="module")
def nats():
    cluster = start_nats_cluster()
    try:
        yield cluster
    finally:
        cluster.close()


def node_config(port: int, cluster: dict, extra_role: bool = False) -> dict:
    roles = [
        {
            "name": "anonymous",
            "permissions": [{"uri": "", "match": "prefix", "allow": ALL, "disclose": {"caller": True, "publisher": True}}],
        }
    ]
    if extra_role:
        roles.append({"name": "other", "permissions": []})
    return {
        "version": 2,
        "workers": [
            {
                "type": "router",
                "realms": [{"name": "realm1", "roles": roles}],
                "transports": [
                    {
                        "type": "universal",
                        "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
                        "rawsocket": {"serializers": ["cbor", "msgpack", "json"], "auth": ANONYMOUS},
                        "websocket": {"ws": {"type": "websocket", "serializers": ["cbor", "msgpack", "json"],
                                             "auth": ANONYMOUS}},
                        "web": {"paths": {"health": {"type": "health"}, "metrics": {"type": "metrics"}}},
                    }
                ],
                "cluster": cluster,
            }
        ],
    }


class Nodes:
    """Three Switchboard nodes of one cluster, each pointed at a different NATS server first."""

    def __init__(self, nats: NatsCluster, count: int = 3, extra_role_on: int | None = None):
        self.count = count
        self.name = "t" + os.urandom(4).hex()
        self.nats = nats
        self.routers: list[Router] = []
        try:
            for i in range(count):
                servers = nats.urls[i:] + nats.urls[:i]
                cluster = {
                    "name": self.name,
                    "nats": {"servers": servers},
                    "heartbeat_ms": HEARTBEAT_MS,
                    "node_ttl_ms": NODE_TTL_MS,
                }
                port = free_tcp_port()
                nd = make_node_dir()
                self.routers.append(launch_router(nd, node_config(port, cluster, extra_role_on == i), [port]))
            if count > 1:
                self.wait_members(count)
        except Exception:
            self.close()
            raise

    def __getitem__(self, i: int) -> Router:
        return self.routers[i]

    def status(self, i: int) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(switchboard_bin()), "cluster", "status", str(self.routers[i].node_dir)],
            capture_output=True, text=True, timeout=30,
        )

    def wait_members(self, count: int, on: list[int] | None = None, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        for i in on if on is not None else range(len(self.routers)):
            while True:
                out = self.status(i)
                if f"{count} node(s):" in out.stdout:
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"node {i} did not see {count} nodes:\n{out.stdout}{out.stderr}\n{self.routers[i].log_tail()}"
                    )
                time.sleep(0.1)

    def close(self) -> None:
        for r in self.routers:
            r.close()


@pytest.fixture()
def nodes(nats):
    n = Nodes(nats)
    try:
        yield n
    finally:
        n.close()


async def until(condition, what: str, timeout: float = 15):
    """Until the coroutine function ``condition`` returns a true value (its value)."""
    return await eventually(condition, what, timeout=timeout, interval=0.02)


async def subscribed_at(r: Router, topic: str, count: int = 1):
    """Until ``count`` subscriptions matching ``topic`` are held on ``r`` (other nodes' interest
    arrived there)."""
    c = await connect(r)
    try:
        async def matched():
            return len(await c.session.call("wamp.subscription.match", topic) or []) >= count

        await until(matched, f"{count} subscription(s) matching {topic} on {r.port}")
    finally:
        await close_all(c)


async def callable_at(r: Router, procedure: str):
    c = await connect(r)
    try:
        async def registered():
            return await c.session.call("wamp.registration.match", procedure) is not None

        await until(registered, f"{procedure} callable on {r.port}")
    finally:
        await close_all(c)


def test_events_cross_nodes_once_each_and_in_order(nodes):
    async def scenario():
        publisher = await connect(nodes[0], serializer="msgpack")
        on_b = await connect(nodes[1])
        on_c = await connect(nodes[2], serializer="cbor")
        got = {"b_exact": [], "b_prefix": [], "c_wild": [], "c_exact": [], "a_exact": []}

        def keep(key):
            def handler(seq, details=None):
                got[key].append((seq, details.topic, details.publisher))
            return handler

        await on_b.session.subscribe(keep("b_exact"), "com.example.news", SubscribeOptions(details_arg="details"))
        await on_b.session.subscribe(keep("b_prefix"), "com.example.", SubscribeOptions(match="prefix", details_arg="details"))
        await on_c.session.subscribe(keep("c_wild"), "com..news", SubscribeOptions(match="wildcard", details_arg="details"))
        await on_c.session.subscribe(keep("c_exact"), "com.example.news", SubscribeOptions(details_arg="details"))
        # a subscriber beside the publisher gets each event once too
        beside = await connect(nodes[0])
        await beside.session.subscribe(keep("a_exact"), "com.example.news", SubscribeOptions(details_arg="details"))
        # node A holds the other nodes' patterns: one per distinct pattern, however many nodes
        await subscribed_at(nodes[0], "com.example.news", count=3)

        n = 200
        for i in range(n):
            await publisher.session.publish("com.example.news", i, options=PublishOptions(acknowledge=True))
        await publisher.session.publish("com.example.other", -1, options=PublishOptions(acknowledge=True))
        await publisher.session.publish("com.kitchen.news", -2, options=PublishOptions(acknowledge=True))

        await eventually(
            lambda: len(got["b_exact"]) == n and len(got["b_prefix"]) == n + 1
            and len(got["c_wild"]) == n + 1 and len(got["c_exact"]) == n and len(got["a_exact"]) == n,
            "every event on both nodes", timeout=20,
        )
        await asyncio.sleep(0.3)  # nothing more comes: no duplicates
        pid = publisher.session.session_id
        assert [s for s, _, _ in got["b_exact"]] == list(range(n))
        assert [s for s, _, _ in got["c_exact"]] == list(range(n))
        assert [s for s, _, _ in got["a_exact"]] == list(range(n))
        assert [s for s, _, _ in got["b_prefix"]] == list(range(n)) + [-1]
        assert [s for s, _, _ in got["c_wild"]] == list(range(n)) + [-2]
        assert {t for _, t, _ in got["b_prefix"]} == {"com.example.news", "com.example.other"}
        # the publisher, disclosed as its role says, is the session on node A
        assert {p for _, _, p in got["b_exact"] + got["c_exact"]} == {pid}

        # one NATS message per publication left node A; node B received each
        def counted():
            a = metric(http_get(nodes[0], "metrics")[1], "switchboard_cluster_events_total", realm="realm1", direction="out")
            b = metric(http_get(nodes[1], "metrics")[1], "switchboard_cluster_events_total", realm="realm1", direction="in")
            return a == n + 2 and b == n + 1

        await eventually(counted, "the cluster's event counters", timeout=10, interval=0.2)
        await close_all(publisher, on_b, on_c, beside)

    run(scenario(), timeout=90)


def test_exclude_and_eligible_work_across_nodes(nodes):
    async def scenario():
        publisher = await connect(nodes[0])
        b1, b2, c1 = await connect(nodes[1]), await connect(nodes[1]), await connect(nodes[2])
        got = {"b1": [], "b2": [], "c1": []}
        for key, c in (("b1", b1), ("b2", b2), ("c1", c1)):
            await c.session.subscribe(lambda x, key=key: got[key].append(x), "com.example.filtered")
        await subscribed_at(nodes[0], "com.example.filtered")
        ack = PublishOptions(acknowledge=True, exclude=[b1.session.session_id])
        await publisher.session.publish("com.example.filtered", "not-b1", options=ack)
        await publisher.session.publish(
            "com.example.filtered", "only-c1",
            options=PublishOptions(acknowledge=True, eligible=[c1.session.session_id]),
        )
        await eventually(lambda: got["b2"] == ["not-b1"] and got["c1"] == ["not-b1", "only-c1"], "filtered events")
        # by authid and authrole, decided on the receivers' nodes
        await publisher.session.publish(
            "com.example.filtered", "only-b2-by-authid",
            options=PublishOptions(acknowledge=True, eligible_authid=[b2.join_details.authid]),
        )
        await publisher.session.publish(
            "com.example.filtered", "nobody",
            options=PublishOptions(acknowledge=True, exclude_authrole=["anonymous"]),
        )
        await publisher.session.publish(
            "com.example.filtered", "not-c1-by-authid",
            options=PublishOptions(acknowledge=True, exclude_authid=[c1.join_details.authid]),
        )
        await eventually(lambda: got["b2"] == ["not-b1", "only-b2-by-authid", "not-c1-by-authid"],
                         "events filtered by authid")
        await asyncio.sleep(0.3)
        assert got["b1"] == ["not-c1-by-authid"]
        assert got["b2"] == ["not-b1", "only-b2-by-authid", "not-c1-by-authid"]
        assert got["c1"] == ["not-b1", "only-c1"]
        await close_all(publisher, b1, b2, c1)

    run(scenario())


def test_calls_cross_nodes_with_each_invocation_policy(nodes):
    async def scenario():
        caller = await connect(nodes[0])
        b, c = await connect(nodes[1]), await connect(nodes[2], serializer="msgpack")
        seen = []

        def who(name):
            def handler(details=None):
                seen.append((details.caller, details.caller_authrole))
                return name
            return handler

        opts = lambda invoke: RegisterOptions(invoke=invoke, details_arg="details")  # noqa: E731
        for policy in ("roundrobin", "random", "first", "last"):
            await b.session.register(who("b"), f"com.example.{policy}", opts(policy))
            await callable_at(nodes[2], f"com.example.{policy}")
            await c.session.register(who("c"), f"com.example.{policy}", opts(policy))
            await callable_at(nodes[0], f"com.example.{policy}")

        async def answers(policy, n):
            return [await caller.session.call(f"com.example.{policy}") for _ in range(n)]

        async def both_nodes_answer():
            return set(await answers("roundrobin", 4)) == {"b", "c"}

        await until(both_nodes_answer, "both nodes' callees of the roundrobin procedure known on node A")
        rr = await answers("roundrobin", 6)
        assert rr[0::2] == [rr[0]] * 3 and rr[1::2] == [rr[1]] * 3 and rr[0] != rr[1], rr
        assert await answers("first", 3) == ["b"] * 3
        assert await answers("last", 3) == ["c"] * 3
        assert set(await answers("random", 30)) == {"b", "c"}
        # every callee saw the real caller on node A
        assert set(seen) == {(caller.session.session_id, "anonymous")}

        # `single` held on node B is refused on node C
        await b.session.register(lambda: "b", "com.example.single")
        await callable_at(nodes[2], "com.example.single")
        with pytest.raises(ApplicationError) as e:
            await c.session.register(lambda: "c", "com.example.single")
        assert e.value.error == "wamp.error.procedure_already_exists"
        await close_all(caller, b, c)

    run(scenario(), timeout=90)


def test_two_nodes_racing_for_a_single_procedure_end_with_one_holder(nodes):
    async def scenario():
        b, c = await connect(nodes[1]), await connect(nodes[2])
        wire = {"b": spy(b.session), "c": spy(c.session)}
        callers = [await connect(nodes[i]) for i in range(3)]
        for round_ in range(3):
            procedure = f"com.example.race{round_}"
            regs = await asyncio.gather(
                b.session.register(lambda: "b", procedure),
                c.session.register(lambda: "c", procedure),
                return_exceptions=True,
            )
            registered = {name: r for name, r in zip("bc", regs) if not isinstance(r, Exception)}
            assert registered, regs
            refused = [r for r in regs if isinstance(r, ApplicationError)]
            assert all(e.error == "wamp.error.procedure_already_exists" for e in refused), regs

            def revoked(name):
                ids = {registered[name].id} if name in registered else set()
                return wire[name].got(
                    message.Unregistered, lambda m: m.request == 0 and m.registration in ids
                )

            if len(registered) == 2:
                # both got REGISTERED at first: the node that lost the claim revokes its own
                await eventually(lambda: revoked("b") or revoked("c"), f"a revocation of {procedure}")
                await asyncio.sleep(0.3)
                assert len(revoked("b")) + len(revoked("c")) == 1
                loser = "b" if revoked("b") else "c"
                assert revoked(loser)[0].reason == "wamp.error.procedure_already_exists"
                winner = "c" if loser == "b" else "b"
            else:
                (winner,) = registered

            async def the_holder_everywhere():
                try:
                    answers = {await k.session.call(procedure) for k in callers for _ in range(2)}
                except ApplicationError:
                    return False
                return answers == {winner}

            await until(the_holder_everywhere, f"every node calling the one holder of {procedure}")
        await close_all(b, c, *callers)

    run(scenario(), timeout=90)


def test_errors_progressive_results_and_cancel_cross_nodes(nodes):
    async def scenario():
        callee = await connect(nodes[2])
        caller = await connect(nodes[0], serializer="cbor")
        interrupted = await register_callees(callee)
        for p in PROCEDURES:
            await callable_at(nodes[0], p)
        await check_relayed_calls(caller, interrupted)
        await close_all(callee, caller)

    run(scenario())


def test_the_session_meta_api_answers_for_the_whole_cluster(nodes):
    async def scenario():
        asker = await connect(nodes[0])
        b1, b2 = await connect(nodes[1]), await connect(nodes[1], serializer="cbor")
        c1 = await connect(nodes[2])
        everyone = {asker.session.session_id, b1.session.session_id, b2.session.session_id, c1.session.session_id}

        async def all_counted():
            return await asker.session.call("wamp.session.count") == 4

        await until(all_counted, "wamp.session.count counting every node's sessions")
        assert set(await asker.session.call("wamp.session.list")) == everyone
        assert await asker.session.call("wamp.session.count", ["anonymous"]) == 4
        assert await asker.session.call("wamp.session.count", ["nobody"]) == 0
        details = await asker.session.call("wamp.session.get", b2.session.session_id)
        assert details["session"] == b2.session.session_id and details["authrole"] == "anonymous"
        with pytest.raises(ApplicationError) as e:
            await asker.session.call("wamp.session.get", 1)
        assert e.value.error == "wamp.error.no_such_session"

        # subscriptions and registrations of other nodes are known here as well
        await c1.session.subscribe(lambda: None, "com.example.only_on_c")
        await b1.session.register(lambda: None, "com.example.only_on_b")
        await subscribed_at(nodes[0], "com.example.only_on_c")
        await callable_at(nodes[0], "com.example.only_on_b")

        # a session on node C killed from node A
        c1_id = c1.session.session_id
        assert await asker.session.call("wamp.session.kill", c1_id, reason="com.example.bye") == 1
        left = await c1.wait_left()
        assert left.reason == "com.example.bye"
        with pytest.raises(ApplicationError) as e:
            await asker.session.call("wamp.session.kill", c1_id)
        assert e.value.error == "wamp.error.no_such_session", e.value
        # every other session but the caller's, on every node
        assert await asker.session.call("wamp.session.kill_all") == 2
        await b1.wait_left()
        await b2.wait_left()
        assert await asker.session.call("wamp.session.list") == [asker.session.session_id]
        await close_all(asker)

    run(scenario())


def test_a_killed_node_fails_its_calls_and_its_routes_go_while_the_rest_keeps_routing(nodes):
    async def scenario():
        caller = await connect(nodes[0])
        on_b = await connect(nodes[1])
        doomed = await connect(nodes[2])

        async def hang():
            await asyncio.sleep(60)

        await doomed.session.register(hang, "com.example.hang")
        await doomed.session.register(lambda: "c", "com.example.who", RegisterOptions(invoke="roundrobin"))
        await on_b.session.register(lambda: "b", "com.example.who", RegisterOptions(invoke="roundrobin"))
        got = []
        await on_b.session.subscribe(lambda x: got.append(x), "com.example.after")
        await callable_at(nodes[0], "com.example.hang")
        await subscribed_at(nodes[0], "com.example.after")

        async def both():
            return {await caller.session.call("com.example.who") for _ in range(4)} == {"b", "c"}

        await until(both, "node A reaching callees on B and C")
        in_flight = asyncio.ensure_future(caller.session.call("com.example.hang"))
        await asyncio.sleep(0.3)
        killed_at = time.monotonic()
        nodes[2].kill()

        with pytest.raises(ApplicationError) as e:
            await bounded(in_flight, "the call in flight to the killed node failing", timeout=NODE_TTL_MS / 1000 + 5)
        assert e.value.error == "wamp.error.canceled", e.value
        failed_after = time.monotonic() - killed_at

        async def gone():
            return await caller.session.call("wamp.registration.match", "com.example.hang") is None

        await until(gone, "the killed node's registration removed", timeout=NODE_TTL_MS / 1000 + 5)
        # the rest keeps routing: B's callee answers every call, events still reach B
        assert [await caller.session.call("com.example.who") for _ in range(4)] == ["b"] * 4
        await caller.session.publish("com.example.after", 1, options=PublishOptions(acknowledge=True))
        await eventually(lambda: got == [1], "an event from A to B after C died")
        assert failed_after < NODE_TTL_MS / 1000 + 3, failed_after
        await close_all(caller, on_b)
        doomed.session = None

    run(scenario(), timeout=90)
    nodes.wait_members(2, on=[0, 1])

    # the node restarts from its node directory (the same node id): it rejoins and resyncs
    old = nodes.routers[2]
    nd = NodeDir(old.node_dir, old.config_dir, old.kind)
    config = json.loads(nd.config_path.read_text())
    old._log_file.close()
    nodes.routers[2] = launch_router(nd, config, [old.port])
    nodes.wait_members(3)

    async def after_restart():
        caller = await connect(nodes[0])
        back = await connect(nodes[2])
        on_b = await connect(nodes[1])
        await back.session.register(lambda: "c again", "com.example.again")
        await callable_at(nodes[0], "com.example.again")
        assert await caller.session.call("com.example.again") == "c again"
        # what the killed process held stays gone, B's callee still answers
        assert await caller.session.call("wamp.registration.match", "com.example.hang") is None
        got = []
        await back.session.subscribe(lambda x: got.append(x), "com.example.back")
        await subscribed_at(nodes[1], "com.example.back")
        await on_b.session.publish("com.example.back", 7, options=PublishOptions(acknowledge=True))
        await eventually(lambda: got == [7], "an event from B to the restarted node")
        await close_all(caller, back, on_b)

    run(after_restart())


def test_the_cluster_keeps_working_when_a_nats_server_is_killed(nats):
    nodes = Nodes(nats)
    try:
        async def scenario():
            caller = await connect(nodes[1])
            callee = await connect(nodes[2])
            sub = await connect(nodes[0])
            got = []
            await callee.session.register(lambda x: x * 2, "com.example.double")
            await sub.session.subscribe(lambda x: got.append(x), "com.example.tick")
            await callable_at(nodes[1], "com.example.double")
            await subscribed_at(nodes[1], "com.example.tick")
            assert await caller.session.call("com.example.double", 2) == 4

            # node 0 prefers server 0: kill it; node 0 reconnects to another server and its
            # interest comes back there
            nats.servers[0].kill()

            async def works():
                try:
                    await caller.session.publish("com.example.tick", len(got), options=PublishOptions(acknowledge=True))
                    return bool(got) and await caller.session.call("com.example.double", 21) == 42
                except ApplicationError:
                    return False

            await until(works, "calls and events after a NATS server died", timeout=30)
            await close_all(caller, callee, sub)

        run(scenario(), timeout=90)
    finally:
        nodes.close()
        nats.start(nats.servers[0])
        nats.wait_ready()


def http_get(r: Router, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{r.port}/{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(text: str, name: str, **labels) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_a_node_cut_off_from_nats_fences_and_comes_back():
    nats = start_nats_cluster(size=1)
    nodes = None
    try:
        nodes = Nodes(nats, count=1)
        node = nodes[0]

        def wait_for(condition, what, timeout=20):
            deadline = time.monotonic() + timeout
            while not condition():
                assert time.monotonic() < deadline, f"{what}; status:\n{nodes.status(0).stdout}\n{node.log_tail(30)}"
                time.sleep(0.1)

        wait_for(lambda: nodes.status(0).returncode == 0, "the node up in its cluster")
        assert http_get(node, "health/ready")[0] == 200
        nats.servers[0].kill()
        wait_for(lambda: http_get(node, "health/ready")[0] == 503, "health 503 once cut off")
        status = nodes.status(0)
        assert status.returncode == 1 and " is fenced " in status.stdout, status.stdout
        assert "cut off from the NATS majority" in node.log_tail(100)
        _, text = http_get(node, "metrics")
        assert metric(text, "switchboard_cluster_fenced", cluster=nodes.name) == 1
        # NATS back on the same port: the node resumes and says so
        nats.start(nats.servers[0])
        nats.wait_ready()
        wait_for(lambda: http_get(node, "health/ready")[0] == 200, "health 200 once NATS is back", timeout=30)
        assert nodes.status(0).returncode == 0
        assert "routing across nodes resumes" in node.log_tail(100)
    finally:
        if nodes:
            nodes.close()
        nats.close()


def test_cluster_status_lists_the_nodes_and_says_where_a_config_differs(nats):
    nodes = Nodes(nats, extra_role_on=2)
    try:
        out = nodes.status(0)
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"cluster {nodes.name}: this node" in out.stdout and " is up" in out.stdout
        assert out.stdout.count("realm1: ") >= 3, out.stdout
        assert "(this node)" in out.stdout
        _, text = http_get(nodes[0], "metrics")
        assert metric(text, "switchboard_cluster_nodes", cluster=nodes.name) == 3, text
        assert metric(text, "switchboard_cluster_fenced", cluster=nodes.name) == 0

        def differs():
            text = nodes.status(0).stdout
            return "config differs from this node's in: realm realm1" in text and text

        deadline = time.monotonic() + 10
        while not differs():
            assert time.monotonic() < deadline, nodes.status(0).stdout
            time.sleep(0.1)
        assert "the config of node" in nodes[0].log_tail(200)

        # node C reloads the config the others run: the difference is gone
        nd2 = nodes[2].config_dir / "config.json"
        config = json.loads(nd2.read_text())
        config["workers"][0]["realms"][0]["roles"] = [r for r in config["workers"][0]["realms"][0]["roles"]
                                                      if r["name"] != "other"]
        nd2.write_text(json.dumps(config))
        reload = subprocess.run([str(switchboard_bin()), "reload", str(nodes[2].node_dir)],
                                capture_output=True, text=True, timeout=30)
        assert reload.returncode == 0, reload.stdout + reload.stderr
        deadline = time.monotonic() + 10
        while differs():
            assert time.monotonic() < deadline, nodes.status(0).stdout
            time.sleep(0.1)
    finally:
        nodes.close()
    # a node outside any cluster says so, with exit status 1
    port = free_tcp_port()
    nd = make_node_dir()
    plain = launch_router(nd, {"version": 2, "workers": [{"type": "router", "realms": [{"name": "realm1", "roles": []}],
                                "transports": [{"type": "websocket", "endpoint": {"type": "tcp", "port": port}}]}]}, [port])
    try:
        out = subprocess.run([str(switchboard_bin()), "cluster", "status", str(plain.node_dir)],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 1 and "in no cluster" in out.stdout, out.stdout + out.stderr
    finally:
        plain.close()
