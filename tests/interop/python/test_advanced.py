"""WAMP Advanced Profile features through the router, Autobahn|Python on
every end, over WebSocket and RawSocket with json, msgpack and cbor:

* pattern-based subscriptions (prefix, wildcard; EVENT.Details.topic) and
  registrations (exact, else longest prefix, else wildcard;
  INVOCATION.Details.procedure);
* shared registrations (single, roundrobin, random, first, last);
* progressive call results, call timeouts, call canceling (skip, kill,
  killnowait);
* caller and publisher identification (the role's ``disclose`` and the
  ``disclose_me`` option);
* publisher exclusion and subscriber black- and whitelisting.

This module runs its own router: realm1 with three roles, ``anonymous``,
``frontend`` and ``disclosed`` (whose calls and publications are disclosed to
callees and subscribers), each the anonymous role of its own TCP port
(WebSocket ``/ws`` and RawSocket on the same port).

Where Autobahn's API hides what went over the wire (INTERRUPT, the ERROR
answering a cancelled call, CANCEL's mode) the tests read it from
``interop_client.spy``.  Autobahn|Python 26 cannot send ``disclose_me`` (it was
dropped from CallOptions/PublishOptions) nor choose a CANCEL mode (cancelling
the call's future sends CANCEL without a mode, so the router's default,
killnowait, applies): ``interop_client.extra_options`` and a CANCEL message
sent on the session's transport do that.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from autobahn.wamp import message
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallOptions, CallResult, PublishOptions, RegisterOptions, SubscribeOptions

from interop_client import (
    SERIALIZERS,
    TIMEOUT,
    bounded,
    close_all,
    connect_with,
    eventually,
    extra_options,
    run,
    session_announcing,
    spy,
    unique_uri,
)
from interop_router import REALM, free_tcp_port, launch_router, make_node_dir

#: roles of this module's router, each the anonymous role of its own port
ROLES = ("anonymous", "frontend", "disclosed")

BOTH = ("websocket", "rawsocket")
#: every (transport, serializer)
MATRIX = [(t, s) for t in BOTH for s in SERIALIZERS]
MATRIX_IDS = [f"over_{t}_{s}" for t, s in MATRIX]
#: each serializer once, over both transports (for the slower scenarios)
EACH = [("websocket", "json"), ("rawsocket", "msgpack"), ("websocket", "cbor")]
EACH_IDS = [f"over_{t}_{s}" for t, s in EACH]


def other_serializer(serializer: str) -> str:
    """The next serializer, so that two peers of a scenario differ."""
    return SERIALIZERS[(SERIALIZERS.index(serializer) + 1) % len(SERIALIZERS)]


def other_transport(transport: str) -> str:
    return "rawsocket" if transport == "websocket" else "websocket"


# ---------------------------------------------------------------------------
# the router of this module
# ---------------------------------------------------------------------------


def advanced_config(ports: list[int]) -> dict:
    everything = {"call": True, "register": True, "publish": True, "subscribe": True}

    def role(name: str, disclose: bool) -> dict:
        permission = {"uri": "", "match": "prefix", "allow": dict(everything)}
        if disclose:
            permission["disclose"] = {"caller": True, "publisher": True}
        return {"name": name, "permissions": [permission]}

    def universal(port: int, role_name: str) -> dict:
        auth = {"anonymous": {"type": "static", "role": role_name}}
        return {
            "type": "universal",
            "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
            "rawsocket": {"auth": auth},
            "websocket": {"ws": {"type": "websocket", "auth": auth}},
        }

    return {
        "version": 2,
        "workers": [
            {
                "type": "router",
                "realms": [
                    {
                        "name": REALM,
                        "roles": [role(name, name == "disclosed") for name in ROLES],
                    }
                ],
                "transports": [universal(port, name) for port, name in zip(ports, ROLES)],
            }
        ],
    }


@pytest.fixture(scope="module")
def router():
    """This module's router (see the module docstring)."""
    nd = make_node_dir()
    ports = []
    while len(ports) < len(ROLES):
        p = free_tcp_port()
        if p not in ports:
            ports.append(p)
    r = launch_router(nd, advanced_config(ports), ports)
    try:
        yield r
    finally:
        r.close()


async def join(
    router, transport: str = "websocket", serializer: str = "json", role: str = "anonymous", session_factory=None
):
    """A session joined to realm1 under ``role`` (through that role's port)."""
    port = router.ports[ROLES.index(role)]
    if transport == "websocket":
        cfg = {"type": "websocket", "url": f"ws://127.0.0.1:{port}/ws", "serializers": [serializer]}
    else:
        cfg = {"type": "rawsocket", "url": f"rs://127.0.0.1:{port}", "serializer": serializer}
    client = await connect_with(cfg, transport, serializer, session_factory=session_factory)
    assert client.join_details.authrole == role, f"joined as {client.join_details.authrole!r}, not {role!r}"
    return client


def on_crossbar(router) -> bool:
    return router.kind == "crossbar"


class Inbox:
    """Collects the events of one subscription handler (with details_arg)."""

    def __init__(self, name: str = "subscriber"):
        self.name = name
        self.events: list[tuple[tuple, dict, object]] = []

    def __call__(self, *args, details=None, **kwargs):
        self.events.append((args, kwargs, details))

    def first_args(self) -> list:
        return [args[0] if args else None for args, _, _ in self.events]

    def topics(self) -> list:
        return [details.topic for _, _, details in self.events]

    async def wait_for(self, value, what: str | None = None):
        """Until an event whose first argument is ``value`` arrived."""
        await eventually(lambda: value in self.first_args(), what or f"{self.name} to get event {value!r}")


async def publish_acked(client, topic: str, *args, options: PublishOptions | None = None, **kwargs):
    """PUBLISH with acknowledge=True (and ``options``), awaiting PUBLISHED."""
    opts = options or PublishOptions()
    opts.acknowledge = True
    return await bounded(client.session.publish(topic, *args, options=opts, **kwargs), f"PUBLISHED for {topic}")


# ---------------------------------------------------------------------------
# WELCOME
# ---------------------------------------------------------------------------

BROKER_FEATURES = (
    "pattern_based_subscription",
    "publisher_identification",
    "publisher_exclusion",
    "subscriber_blackwhite_listing",
)
DEALER_FEATURES = (
    "pattern_based_registration",
    "shared_registration",
    "progressive_call_results",
    "call_timeout",
    "call_canceling",
    "caller_identification",
)


@pytest.mark.parametrize("transport,serializer", MATRIX, ids=MATRIX_IDS)
def test_welcome_announces_the_advanced_profile_features_of_broker_and_dealer(router, transport, serializer):
    async def scenario():
        c = None
        try:
            c = await join(router, transport, serializer)
            roles = c.session._router_roles or {}
            broker = roles["broker"].__dict__ if "broker" in roles else {}
            dealer = roles["dealer"].__dict__ if "dealer" in roles else {}
            dealer_features = DEALER_FEATURES
            if on_crossbar(router):
                # Crossbar 26.10 implements call timeouts (in seconds) without announcing them
                dealer_features = tuple(f for f in DEALER_FEATURES if f != "call_timeout")
            missing = [f"broker.{f}" for f in BROKER_FEATURES if broker.get(f) is not True]
            missing += [f"dealer.{f}" for f in dealer_features if dealer.get(f) is not True]
            assert not missing, f"WELCOME.Details.roles lacks {missing}: broker={broker!r} dealer={dealer!r}"
        finally:
            await close_all(c)

    run(scenario())


# ---------------------------------------------------------------------------
# Pattern-based subscriptions
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("transport,serializer", MATRIX, ids=MATRIX_IDS)
def test_prefix_subscription_gets_events_for_every_topic_starting_with_the_prefix_with_the_concrete_topic(
    router, transport, serializer
):
    async def scenario():
        sub = pub = None
        try:
            sub = await join(router, transport, serializer)
            pub = await join(router, other_transport(transport), other_serializer(serializer))
            base = unique_uri("com.example.prefix")
            prefix = f"{base}.emergency"
            inbox = Inbox()
            subscription = await bounded(
                sub.session.subscribe(inbox, prefix, options=SubscribeOptions(match="prefix", details_arg="details")),
                "SUBSCRIBED",
            )
            assert subscription.id
            # not matching: another branch, a shorter URI
            await publish_acked(pub, f"{base}.routine", "routine")
            await publish_acked(pub, f"{base}.emergenc", "shorter")
            # matching (the spec's own examples: a plain string prefix)
            matching = [f"{prefix}.11", f"{prefix}-low", f"{prefix}.category.severe"]
            for n, topic in enumerate(matching):
                await publish_acked(pub, topic, n, b"\x00\xff", flag=True)
            await inbox.wait_for(len(matching) - 1)
            assert inbox.first_args() == list(range(len(matching))), f"events: {inbox.events!r}"
            assert inbox.topics() == matching, "EVENT.Details.topic must name the topic published to"
            for args, kwargs, _ in inbox.events:
                assert args[1] == b"\x00\xff" and kwargs == {"flag": True}
        finally:
            await close_all(sub, pub)

    run(scenario())


@pytest.mark.parametrize("transport,serializer", MATRIX, ids=MATRIX_IDS)
def test_wildcard_subscription_matches_any_component_in_the_empty_slot_and_only_uris_of_the_same_length(
    router, transport, serializer
):
    async def scenario():
        sub = pub = None
        try:
            sub = await join(router, transport, serializer)
            pub = await join(router, other_transport(transport), other_serializer(serializer))
            base = unique_uri("com.example.wildcard")
            inbox = Inbox()
            await bounded(
                sub.session.subscribe(
                    inbox, f"{base}..update", options=SubscribeOptions(match="wildcard", details_arg="details")
                ),
                "SUBSCRIBED",
            )
            # not matching: one component too many / too few, another last component
            for topic in (f"{base}.a.b.update", f"{base}.update", f"{base}.a.delete", f"{base}.a.updated"):
                await publish_acked(pub, topic, topic)
            matching = [f"{base}.a.update", f"{base}.device_42.update"]
            for topic in matching:
                await publish_acked(pub, topic, topic)
            await inbox.wait_for(matching[-1])
            assert inbox.first_args() == matching, f"events: {inbox.events!r}"
            assert inbox.topics() == matching
        finally:
            await close_all(sub, pub)

    run(scenario())


@pytest.mark.parametrize("transport,serializer", EACH, ids=EACH_IDS)
def test_event_matching_exact_prefix_and_wildcard_subscriptions_arrives_once_per_subscription(
    router, transport, serializer
):
    async def scenario():
        sub = pub = None
        try:
            sub = await join(router, transport, serializer)
            pub = await join(router, other_transport(transport), serializer)
            base = unique_uri("com.example.overlap")
            topic = f"{base}.room.7"
            inboxes = {name: Inbox(name) for name in ("exact", "prefix", "wildcard")}
            subs = {
                "exact": await bounded(
                    sub.session.subscribe(inboxes["exact"], topic, options=SubscribeOptions(details_arg="details")),
                    "SUBSCRIBED exact",
                ),
                "prefix": await bounded(
                    sub.session.subscribe(
                        inboxes["prefix"],
                        f"{base}.room",
                        options=SubscribeOptions(match="prefix", details_arg="details"),
                    ),
                    "SUBSCRIBED prefix",
                ),
                "wildcard": await bounded(
                    sub.session.subscribe(
                        inboxes["wildcard"],
                        f"{base}..7",
                        options=SubscribeOptions(match="wildcard", details_arg="details"),
                    ),
                    "SUBSCRIBED wildcard",
                ),
            }
            assert len({s.id for s in subs.values()}) == 3, "three patterns, three subscriptions"
            publication = await publish_acked(pub, topic, "hello")
            for name, inbox in inboxes.items():
                await inbox.wait_for("hello", f"the {name} subscription's event")
            # a marker only the prefix subscription matches: once it is in, no duplicate is on its way
            await publish_acked(pub, f"{base}.room.8", "marker")
            await inboxes["prefix"].wait_for("marker")
            for name, inbox in inboxes.items():
                hello = [d for a, _, d in inbox.events if a and a[0] == "hello"]
                assert len(hello) == 1, f"{name}: {len(hello)} events for one publication"
                assert (
                    hello[0].publication == publication.id
                ), f"{name}: publication id {hello[0].publication} != {publication.id}"
                assert hello[0].topic == topic
            assert inboxes["wildcard"].first_args() == ["hello"], "room.8 does not match ..7"
        finally:
            await close_all(sub, pub)

    run(scenario())


def test_sessions_subscribing_the_same_pattern_and_policy_share_one_subscription_distinct_per_policy(router):
    async def scenario():
        a = b = pub = None
        try:
            a = await join(router, "websocket", "json")
            b = await join(router, "rawsocket", "cbor")
            pub = await join(router, "websocket", "msgpack")
            base = unique_uri("com.example.shared_sub")
            ia, ib, ic = Inbox("a"), Inbox("b"), Inbox("a exact")
            opts = SubscribeOptions(match="prefix", details_arg="details")
            sa = await bounded(a.session.subscribe(ia, base, options=opts), "SUBSCRIBED a")
            sb = await bounded(b.session.subscribe(ib, base, options=opts), "SUBSCRIBED b")
            sc = await bounded(
                a.session.subscribe(ic, base, options=SubscribeOptions(details_arg="details")), "SUBSCRIBED exact"
            )
            assert sa.id == sb.id, "one subscription per (topic pattern, match policy)"
            assert sc.id != sa.id, "the exact and the prefix subscription of one URI are different subscriptions"
            await publish_acked(pub, f"{base}.x", "x")
            await publish_acked(pub, base, "base")
            for inbox in (ia, ib):
                await inbox.wait_for("base")
                assert inbox.first_args() == ["x", "base"]
            await ic.wait_for("base")
            assert ic.first_args() == ["base"]
        finally:
            await close_all(a, b, pub)

    run(scenario())


# ---------------------------------------------------------------------------
# Pattern-based registrations
# ---------------------------------------------------------------------------


def labelled(label: str):
    """A procedure answering (label, INVOCATION.Details.procedure, args)."""

    def endpoint(*args, details=None, **kwargs):
        return [label, details.procedure, list(args)]

    return endpoint


@pytest.mark.parametrize("transport,serializer", MATRIX, ids=MATRIX_IDS)
def test_call_goes_to_the_exact_registration_else_the_longest_prefix_else_a_wildcard_naming_the_concrete_procedure(
    router, transport, serializer
):
    async def scenario():
        c1 = c2 = caller = None
        try:
            c1 = await join(router, transport, serializer)
            c2 = await join(router, other_transport(transport), other_serializer(serializer))
            caller = await join(router, transport, other_serializer(serializer))
            p = unique_uri("com.example.dispatch")
            regs = [
                (c1, "exact", f"{p}.a.x", "exact"),
                (c2, "short prefix", f"{p}.a", "prefix"),
                (c1, "long prefix", f"{p}.a.b", "prefix"),
                (c2, "wildcard", f"{p}..z", "wildcard"),
            ]
            for callee, label, uri, match in regs:
                await bounded(
                    callee.session.register(
                        labelled(label), uri, options=RegisterOptions(match=match, details_arg="details")
                    ),
                    f"REGISTERED {label}",
                )
            expectations = [
                (f"{p}.a.x", "exact"),  # also matches the prefix p.a: exact wins
                (f"{p}.a.b.c", "long prefix"),  # matches both prefixes: the longer wins
                (f"{p}.a.bz", "long prefix"),  # a plain string prefix
                (f"{p}.a.c", "short prefix"),
                (f"{p}.a.z", "short prefix"),  # prefix beats wildcard
                (f"{p}.q.z", "wildcard"),
            ]
            for uri, label in expectations:
                res = await bounded(caller.session.call(uri, 1, "two"), f"RESULT of {uri}")
                assert res == [
                    label,
                    uri,
                    [1, "two"],
                ], f"call {uri}: expected {label!r} with procedure {uri!r}, got {res!r}"
            for uri in (f"{p}.q.y", f"{p}.b", f"{p}.q.z.z"):
                with pytest.raises(ApplicationError) as excinfo:
                    await bounded(caller.session.call(uri), f"ERROR for {uri}")
                assert excinfo.value.error == "wamp.error.no_such_procedure", f"{uri}: {excinfo.value}"
        finally:
            await close_all(caller, c1, c2)

    run(scenario())


@pytest.mark.parametrize("transport,serializer", EACH, ids=EACH_IDS)
def test_calls_fall_back_to_the_prefix_registration_once_the_exact_one_of_the_same_uri_is_gone(
    router, transport, serializer
):
    async def scenario():
        callee = caller = None
        try:
            callee = await join(router, transport, serializer)
            caller = await join(router, other_transport(transport), serializer)
            p = unique_uri("com.example.fallback")
            exact = await bounded(
                callee.session.register(labelled("exact"), p, options=RegisterOptions(details_arg="details")),
                "REGISTERED exact",
            )
            prefix = await bounded(
                callee.session.register(
                    labelled("prefix"), p, options=RegisterOptions(match="prefix", details_arg="details")
                ),
                "REGISTERED prefix of the same URI",
            )
            assert exact.id != prefix.id
            assert (await bounded(caller.session.call(p), "RESULT"))[:2] == ["exact", p]
            assert (await bounded(caller.session.call(f"{p}.sub"), "RESULT"))[:2] == ["prefix", f"{p}.sub"]
            await bounded(exact.unregister(), "UNREGISTERED")
            assert (await bounded(caller.session.call(p), "RESULT"))[:2] == ["prefix", p]
            await bounded(prefix.unregister(), "UNREGISTERED")
            with pytest.raises(ApplicationError) as excinfo:
                await bounded(caller.session.call(p), "ERROR")
            assert excinfo.value.error == "wamp.error.no_such_procedure"
        finally:
            await close_all(caller, callee)

    run(scenario())


# ---------------------------------------------------------------------------
# Shared registrations
# ---------------------------------------------------------------------------


async def join_callees(router, n: int, transport: str, serializer: str) -> list:
    """``n`` sessions, alternating transports and serializers from the given ones."""
    out = []
    t, s = transport, serializer
    for _ in range(n):
        out.append(await join(router, t, s))
        t, s = other_transport(t), other_serializer(s)
    return out


async def register_shared(callees: list, proc: str, invoke: str, names: list[str]) -> list:
    regs = []
    for callee, name in zip(callees, names):
        regs.append(
            await bounded(
                callee.session.register(lambda *a, _name=name: _name, proc, options=RegisterOptions(invoke=invoke)),
                f"REGISTERED {name} ({invoke})",
            )
        )
    return regs


async def who_answers(caller, proc: str, n: int) -> list:
    return [await bounded(caller.session.call(proc), f"RESULT of call {i}") for i in range(n)]


@pytest.mark.parametrize("transport,serializer", MATRIX, ids=MATRIX_IDS)
def test_roundrobin_registration_takes_turns_over_three_callees(router, transport, serializer):
    async def scenario():
        callees, caller = [], None
        try:
            callees = await join_callees(router, 3, transport, serializer)
            caller = await join(router, transport, serializer)
            proc = unique_uri("com.example.roundrobin")
            regs = await register_shared(callees, proc, "roundrobin", ["a", "b", "c"])
            assert (
                len({r.id for r in regs}) == 1
            ), f"callees of one shared registration get its id: {[r.id for r in regs]}"
            seq = await who_answers(caller, proc, 9)
            assert sorted(seq[:3]) == ["a", "b", "c"], f"three calls, three different callees: {seq}"
            assert seq == seq[:3] * 3, f"round robin repeats the same turn order: {seq}"
        finally:
            await close_all(caller, *callees)

    run(scenario())


@pytest.mark.parametrize("transport,serializer", EACH, ids=EACH_IDS)
def test_shared_wildcard_registration_takes_turns_and_names_the_concrete_procedure(router, transport, serializer):
    async def scenario():
        callees, caller = [], None
        try:
            callees = await join_callees(router, 2, transport, serializer)
            caller = await join(router, transport, serializer)
            base = unique_uri("com.example.shared_pattern")
            regs = []
            for name, callee in zip("ab", callees):
                regs.append(
                    await bounded(
                        callee.session.register(
                            labelled(name),
                            f"{base}..get",
                            options=RegisterOptions(match="wildcard", invoke="roundrobin", details_arg="details"),
                        ),
                        f"REGISTERED {name}",
                    )
                )
            assert regs[0].id == regs[1].id
            got = [await bounded(caller.session.call(f"{base}.item{i}.get", i), "RESULT") for i in range(4)]
            assert [g[1:] for g in got] == [[f"{base}.item{i}.get", [i]] for i in range(4)], got
            names = [g[0] for g in got]
            assert sorted(names[:2]) == ["a", "b"] and names == names[:2] * 2, names
        finally:
            await close_all(caller, *callees)

    run(scenario())


@pytest.mark.parametrize("transport,serializer", EACH, ids=EACH_IDS)
def test_roundrobin_registration_goes_on_with_the_remaining_callees_when_one_leaves(router, transport, serializer):
    async def scenario():
        callees, caller = [], None
        try:
            callees = await join_callees(router, 3, transport, serializer)
            caller = await join(router, transport, serializer)
            proc = unique_uri("com.example.roundrobin_leave")
            await register_shared(callees, proc, "roundrobin", ["a", "b", "c"])
            await who_answers(caller, proc, 2)
            await callees[1].close()
            seq = await who_answers(caller, proc, 6)
            assert "b" not in seq, seq
            assert sorted(seq[:2]) == ["a", "c"] and seq == seq[:2] * 3, f"a and c take turns: {seq}"
        finally:
            await close_all(caller, *callees)

    run(scenario())


STOPS = ["leaves", "unregisters", "drops_its_connection"]


async def stop_callee(client, reg, how: str):
    if how == "leaves":
        await client.close()
    elif how == "unregisters":
        await bounded(reg.unregister(), "UNREGISTERED")
    else:
        client.session.disconnect()
        await client.wait_left()


async def answers_after_stop(caller, proc: str, n: int, how: str) -> list:
    """Like ``who_answers``; after a dropped connection the first call is
    retried while it fails with wamp.error.canceled: the router learns of
    the drop when the TCP connection's end reaches it, and a call racing
    that goes to the vanished callee."""
    deadline = time.monotonic() + TIMEOUT
    while how == "drops_its_connection":
        try:
            first = await bounded(caller.session.call(proc), "RESULT")
            return [first] + await who_answers(caller, proc, n - 1)
        except ApplicationError as e:
            if e.error != "wamp.error.canceled" or time.monotonic() > deadline:
                raise
    return await who_answers(caller, proc, n)


@pytest.mark.parametrize(
    "how,transport,serializer",
    [(h, *ts) for h, ts in zip(STOPS, EACH)],
    ids=[f"{h}_{t}_{s}" for h, (t, s) in zip(STOPS, EACH)],
)
def test_first_registration_calls_the_earliest_callee_and_the_next_one_when_it_stops(
    router, how, transport, serializer
):
    async def scenario():
        callees, caller = [], None
        try:
            callees = await join_callees(router, 3, transport, serializer)
            caller = await join(router, transport, serializer)
            proc = unique_uri("com.example.first")
            regs = await register_shared(callees, proc, "first", ["a", "b", "c"])
            assert await who_answers(caller, proc, 4) == ["a"] * 4
            await stop_callee(callees[0], regs[0], how)
            seq = await answers_after_stop(caller, proc, 3, how)
            assert seq == ["b"] * 3, f"after a {how}, the next registered callee takes the calls: {seq}"
            await stop_callee(callees[1], regs[1], how)
            assert await answers_after_stop(caller, proc, 2, how) == ["c"] * 2
        finally:
            await close_all(caller, *callees)

    run(scenario())


@pytest.mark.parametrize(
    "how,transport,serializer",
    [(h, *ts) for h, ts in zip(STOPS, EACH)],
    ids=[f"{h}_{t}_{s}" for h, (t, s) in zip(STOPS, EACH)],
)
def test_last_registration_calls_the_latest_callee_and_the_previous_one_when_it_stops(
    router, how, transport, serializer
):
    async def scenario():
        callees, caller = [], None
        try:
            callees = await join_callees(router, 3, transport, serializer)
            caller = await join(router, transport, serializer)
            proc = unique_uri("com.example.last")
            regs = await register_shared(callees, proc, "last", ["a", "b", "c"])
            assert await who_answers(caller, proc, 4) == ["c"] * 4
            await stop_callee(callees[2], regs[2], how)
            seq = await answers_after_stop(caller, proc, 3, how)
            assert seq == ["b"] * 3, f"after a {how}, the previously registered callee takes the calls: {seq}"
            await stop_callee(callees[1], regs[1], how)
            assert await answers_after_stop(caller, proc, 2, how) == ["a"] * 2
        finally:
            await close_all(caller, *callees)

    run(scenario())


@pytest.mark.parametrize("transport,serializer", EACH, ids=EACH_IDS)
def test_random_registration_reaches_every_callee_over_many_calls(router, transport, serializer):
    async def scenario():
        callees, caller = [], None
        try:
            callees = await join_callees(router, 3, transport, serializer)
            caller = await join(router, transport, serializer)
            proc = unique_uri("com.example.random")
            await register_shared(callees, proc, "random", ["a", "b", "c"])
            # 60 calls: the chance that a fair pick misses a callee is 3 * (2/3)**60, about 1e-10
            seq = await bounded(asyncio.gather(*(caller.session.call(proc) for _ in range(60))), "60 RESULTs")
            assert set(seq) == {"a", "b", "c"}, f"counts: {({n: seq.count(n) for n in 'abc'})}"
        finally:
            await close_all(caller, *callees)

    run(scenario())


@pytest.mark.parametrize("transport,serializer", EACH, ids=EACH_IDS)
def test_single_registration_refuses_a_second_callee_with_procedure_already_exists(router, transport, serializer):
    async def scenario():
        a = b = None
        try:
            a = await join(router, transport, serializer)
            b = await join(router, other_transport(transport), serializer)
            proc = unique_uri("com.example.single")
            await bounded(a.session.register(lambda: "a", proc, options=RegisterOptions(invoke="single")), "REGISTERED")
            for invoke in ("single", None):
                with pytest.raises(ApplicationError) as excinfo:
                    await bounded(
                        b.session.register(lambda: "b", proc, options=RegisterOptions(invoke=invoke)), "ERROR"
                    )
                assert excinfo.value.error == "wamp.error.procedure_already_exists", str(excinfo.value)
        finally:
            await close_all(a, b)

    run(scenario())


POLICY_CLASHES = [("roundrobin", "first"), ("first", "last"), ("random", "roundrobin"), ("last", "random")]


@pytest.mark.parametrize("existing,joining", POLICY_CLASHES, ids=[f"{a}_then_{b}" for a, b in POLICY_CLASHES])
def test_joining_a_shared_registration_with_another_policy_is_refused_with_procedure_exists_with_different_invocation_policy(
    router, existing, joining
):
    async def scenario():
        a = b = caller = None
        try:
            a = await join(router, "websocket", "json")
            b = await join(router, "rawsocket", "cbor")
            caller = await join(router, "websocket", "msgpack")
            proc = unique_uri("com.example.clash")
            await bounded(a.session.register(lambda: "a", proc, options=RegisterOptions(invoke=existing)), "REGISTERED")
            with pytest.raises(ApplicationError) as excinfo:
                await bounded(b.session.register(lambda: "b", proc, options=RegisterOptions(invoke=joining)), "ERROR")
            assert excinfo.value.error == "wamp.error.procedure_exists_with_different_invocation_policy", str(
                excinfo.value
            )
            # the existing registration is untouched
            assert await bounded(caller.session.call(proc), "RESULT") == "a"
        finally:
            await close_all(a, b, caller)

    run(scenario())


def test_shared_registration_is_gone_when_its_last_callee_leaves_and_can_then_be_made_with_another_policy(router):
    async def scenario():
        callees, caller, newcomer = [], None, None
        try:
            callees = await join_callees(router, 2, "websocket", "json")
            caller = await join(router, "rawsocket", "msgpack")
            proc = unique_uri("com.example.shared_gone")
            await register_shared(callees, proc, "roundrobin", ["a", "b"])
            for c in callees:
                await c.close()
            with pytest.raises(ApplicationError) as excinfo:
                await bounded(caller.session.call(proc), "ERROR")
            assert excinfo.value.error == "wamp.error.no_such_procedure"
            newcomer = await join(router, "rawsocket", "cbor")
            await bounded(
                newcomer.session.register(lambda: "new", proc, options=RegisterOptions(invoke="last")), "REGISTERED"
            )
            assert await bounded(caller.session.call(proc), "RESULT") == "new"
        finally:
            await close_all(caller, newcomer, *callees)

    run(scenario())


# ---------------------------------------------------------------------------
# Progressive call results
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("transport,serializer", MATRIX, ids=MATRIX_IDS)
def test_caller_gets_every_progressive_result_in_order_then_the_final_result(router, transport, serializer):
    async def scenario():
        callee = caller = None
        try:
            callee = await join(router, other_transport(transport), other_serializer(serializer))
            caller = await join(router, transport, serializer)
            proc = unique_uri("com.example.progressive")

            async def countdown(n, details=None):
                assert details.progress is not None, "the caller asked for progress"
                for i in range(n):
                    details.progress(i, b"\x01" * i, step=i)
                    await asyncio.sleep(0.005)
                return CallResult("done", n, total=n)

            await bounded(
                callee.session.register(countdown, proc, options=RegisterOptions(details_arg="details")), "REGISTERED"
            )
            progress = []
            res = await bounded(
                caller.session.call(
                    proc, 5, options=CallOptions(on_progress=lambda *a, **kw: progress.append((a, kw)))
                ),
                "final RESULT",
            )
            assert progress == [((i, b"\x01" * i), {"step": i}) for i in range(5)], f"progress: {progress!r}"
            assert isinstance(res, CallResult), repr(res)
            assert list(res.results) == ["done", 5] and res.kwresults == {"total": 5}
        finally:
            await close_all(caller, callee)

    run(scenario())


@pytest.mark.parametrize("transport,serializer", EACH, ids=EACH_IDS)
def test_caller_not_asking_for_progress_gets_only_the_final_result_and_the_callee_is_offered_no_progress(
    router, transport, serializer
):
    async def scenario():
        callee = caller = None
        try:
            callee = await join(router, transport, serializer)
            caller = await join(router, other_transport(transport), serializer)
            callee_wire = spy(callee.session)
            caller_wire = spy(caller.session)
            proc = unique_uri("com.example.no_progress")

            def maybe_progressive(details=None):
                if details.progress is not None:
                    details.progress("should not be offered")
                    return "progress was offered"
                return "final only"

            await bounded(
                callee.session.register(maybe_progressive, proc, options=RegisterOptions(details_arg="details")),
                "REGISTERED",
            )
            assert await bounded(caller.session.call(proc), "RESULT") == "final only"
            [inv] = callee_wire.got(message.Invocation)
            assert not inv.receive_progress, "INVOCATION.Details.receive_progress without the caller asking"
            results = caller_wire.got(message.Result)
            assert len(results) == 1 and not results[0].progress, results
        finally:
            await close_all(caller, callee)

    run(scenario())


@pytest.mark.parametrize("transport,serializer", EACH, ids=EACH_IDS)
def test_callee_not_announcing_progressive_call_results_is_not_asked_for_progress_and_the_caller_gets_the_final_result(
    router, transport, serializer
):
    if on_crossbar(router):
        pytest.xfail("Crossbar 26.10 passes receive_progress on whatever the callee announced")

    async def scenario():
        callee = caller = None
        try:
            callee = await join(
                router,
                transport,
                serializer,
                session_factory=session_announcing(callee__progressive_call_results=False),
            )
            caller = await join(router, other_transport(transport), other_serializer(serializer))
            callee_wire = spy(callee.session)
            proc = unique_uri("com.example.no_progressive_callee")

            def plain(x, details=None):
                return ["offered" if details.progress is not None else "not offered", x]

            await bounded(callee.session.register(plain, proc, options=RegisterOptions(details_arg="details")), "REG")
            progress = []
            res = await bounded(
                caller.session.call(proc, 7, options=CallOptions(on_progress=progress.append)), "RESULT"
            )
            assert res == ["not offered", 7] and progress == []
            [inv] = callee_wire.got(message.Invocation)
            assert (
                not inv.receive_progress
            ), "receive_progress sent to a callee that did not announce progressive_call_results"
        finally:
            await close_all(caller, callee)

    run(scenario())


@pytest.mark.parametrize("transport", BOTH)
def test_caller_gets_an_error_not_a_hang_when_the_callee_dies_during_a_progressive_call(router, transport):
    async def scenario():
        callee = caller = None
        try:
            callee = await join(router, transport, "msgpack")
            caller = await join(router, other_transport(transport), "json")
            proc = unique_uri("com.example.progressive_dies")

            async def streams_then_hangs(details=None):
                details.progress(1)
                details.progress(2)
                await asyncio.sleep(TIMEOUT * 3)
                return "never"

            await bounded(
                callee.session.register(streams_then_hangs, proc, options=RegisterOptions(details_arg="details")),
                "REGISTERED",
            )
            progress = []
            call = caller.session.call(proc, options=CallOptions(on_progress=progress.append))
            await eventually(lambda: progress == [1, 2], "two progressive results")
            callee.session.disconnect()  # the callee vanishes without GOODBYE
            with pytest.raises(ApplicationError) as excinfo:
                await bounded(call, "ERROR after the callee died mid-call")
            assert excinfo.value.error.startswith("wamp.error."), str(excinfo.value)
            assert progress == [1, 2]
            assert caller.session.is_attached()
        finally:
            await close_all(caller, callee)

    run(scenario())


# ---------------------------------------------------------------------------
# Call timeouts
# ---------------------------------------------------------------------------

CROSSBAR_TIMEOUT = (
    "Crossbar 26.10 reads CALL.Options.timeout as seconds, not milliseconds, and answers "
    "wamp.error.canceled instead of wamp.error.timeout"
)


def xfail_timeouts_on_crossbar(router):
    if on_crossbar(router):
        pytest.xfail(CROSSBAR_TIMEOUT)


class SlowCallee:
    """A procedure that waits until interrupted (or ``release`` is set),
    recording the invocation and the interrupt."""

    def __init__(self, answer_when_interrupted=None):
        self.invoked = asyncio.get_running_loop().create_future()
        self.interrupted = asyncio.get_running_loop().create_future()
        self.release = asyncio.Event()
        self.answer_when_interrupted = answer_when_interrupted

    async def __call__(self, *args, details=None, **kwargs):
        if not self.invoked.done():
            self.invoked.set_result(details)
        try:
            await asyncio.wait_for(self.release.wait(), TIMEOUT * 3)
            return "released"
        except asyncio.CancelledError:
            if not self.interrupted.done():
                self.interrupted.set_result(True)
            if self.answer_when_interrupted is None:
                raise
            await asyncio.sleep(0.05)
            return self.answer_when_interrupted


@pytest.mark.parametrize("transport,serializer", EACH, ids=EACH_IDS)
def test_call_outliving_its_timeout_fails_with_wamp_error_timeout_and_the_callee_is_interrupted(
    router, transport, serializer
):
    xfail_timeouts_on_crossbar(router)

    async def scenario():
        callee = caller = None
        try:
            callee = await join(router, transport, serializer)
            caller = await join(router, other_transport(transport), other_serializer(serializer))
            callee_wire = spy(callee.session)
            proc = unique_uri("com.example.timeout")
            slow = SlowCallee()
            await bounded(
                callee.session.register(slow, proc, options=RegisterOptions(details_arg="details")), "REGISTERED"
            )
            started = time.monotonic()
            # CallOptions.timeout goes into CALL.Options.timeout as given: the spec's unit is ms
            with pytest.raises(ApplicationError) as excinfo:
                await bounded(
                    caller.session.call(proc, options=CallOptions(timeout=300)), "ERROR for the timed-out call"
                )
            elapsed = time.monotonic() - started
            assert excinfo.value.error == "wamp.error.timeout", str(excinfo.value)
            assert 0.25 <= elapsed < 5, f"a 300 ms timeout fired after {elapsed:.3f}s"
            await bounded(slow.interrupted, "the callee's handler being cancelled by INTERRUPT")
            [inv] = callee_wire.got(message.Invocation)
            [interrupt] = callee_wire.got(message.Interrupt)
            assert interrupt.request == inv.request
            assert interrupt.mode == "killnowait", f"INTERRUPT.Options.mode {interrupt.mode!r}"
            # both sessions carry on
            slow2 = SlowCallee()
            await bounded(callee.session.register(slow2, proc + ".2"), "REGISTERED")
            slow2.release.set()
            assert (
                await bounded(caller.session.call(proc + ".2", options=CallOptions(timeout=2000)), "RESULT")
                == "released"
            )
        finally:
            await close_all(caller, callee)

    run(scenario())


@pytest.mark.parametrize("transport,serializer", EACH, ids=EACH_IDS)
def test_call_answered_within_its_timeout_returns_its_result_and_the_callee_is_never_interrupted(
    router, transport, serializer
):
    xfail_timeouts_on_crossbar(router)

    async def scenario():
        callee = caller = None
        try:
            callee = await join(router, transport, serializer)
            caller = await join(router, other_transport(transport), serializer)
            callee_wire = spy(callee.session)
            caller_wire = spy(caller.session)
            proc = unique_uri("com.example.in_time")

            async def quick(x):
                await asyncio.sleep(0.02)
                return x * 2

            await bounded(callee.session.register(quick, proc), "REGISTERED")
            assert await bounded(caller.session.call(proc, 21, options=CallOptions(timeout=300)), "RESULT") == 42
            await asyncio.sleep(0.6)  # past the timeout
            assert await bounded(caller.session.call(proc, 1), "RESULT") == 2
            assert callee_wire.got(message.Interrupt) == [], "INTERRUPT for a call that was answered in time"
            assert caller_wire.got(message.Error) == [], "ERROR for a call that was answered in time"
        finally:
            await close_all(caller, callee)

    run(scenario())


@pytest.mark.parametrize("transport,serializer", EACH, ids=EACH_IDS)
def test_callee_answer_arriving_after_the_timeout_is_dropped_and_both_sessions_carry_on(router, transport, serializer):
    xfail_timeouts_on_crossbar(router)

    async def scenario():
        callee = caller = None
        try:
            callee = await join(router, transport, serializer)
            caller = await join(router, other_transport(transport), serializer)
            caller_wire = spy(caller.session)
            callee_wire = spy(callee.session)
            proc = unique_uri("com.example.late")
            # ignores the INTERRUPT and answers anyway, 50 ms later
            slow = SlowCallee(answer_when_interrupted="late")
            await bounded(callee.session.register(slow, proc), "REGISTERED")
            with pytest.raises(ApplicationError) as excinfo:
                await bounded(caller.session.call(proc, options=CallOptions(timeout=200)), "ERROR")
            assert excinfo.value.error == "wamp.error.timeout"
            await eventually(lambda: callee_wire.put(message.Yield), "the callee's late YIELD")
            # a RESULT for the timed-out call would make Autobahn fail the session with a protocol error
            await bounded(callee.session.register(lambda: "fresh", proc + ".next"), "REGISTERED")
            assert await bounded(caller.session.call(proc + ".next"), "RESULT") == "fresh"
            assert caller.session.is_attached() and callee.session.is_attached()
            assert caller_wire.got(message.Result) and all(r.args == ["fresh"] for r in caller_wire.got(message.Result))
        finally:
            await close_all(caller, callee)

    run(scenario())


@pytest.mark.parametrize("transport", BOTH)
def test_progressive_call_outliving_its_timeout_gets_its_progress_then_wamp_error_timeout(router, transport):
    xfail_timeouts_on_crossbar(router)

    async def scenario():
        callee = caller = None
        try:
            callee = await join(router, transport, "cbor")
            caller = await join(router, other_transport(transport), "json")
            proc = unique_uri("com.example.progress_timeout")
            interrupted = asyncio.get_running_loop().create_future()

            async def ticks(details=None):
                try:
                    for i in range(1000):
                        details.progress(i)
                        await asyncio.sleep(0.05)
                except asyncio.CancelledError:
                    interrupted.set_result(True)
                    raise

            await bounded(
                callee.session.register(ticks, proc, options=RegisterOptions(details_arg="details")), "REGISTERED"
            )
            progress = []
            with pytest.raises(ApplicationError) as excinfo:
                await bounded(
                    caller.session.call(proc, options=CallOptions(on_progress=progress.append, timeout=400)), "ERROR"
                )
            assert excinfo.value.error == "wamp.error.timeout"
            assert len(progress) >= 2 and progress == list(range(len(progress))), progress
            await bounded(interrupted, "INTERRUPT cancelling the callee's handler")
        finally:
            await close_all(caller, callee)

    run(scenario())


# ---------------------------------------------------------------------------
# Call canceling
# ---------------------------------------------------------------------------


def call_request_id(wire, proc: str) -> int:
    [call] = wire.put(message.Call, lambda m: m.procedure == proc)
    return call.request


def send_cancel(session, request: int, mode: str | None):
    """CANCEL with an explicit mode (Autobahn's future.cancel() sends none)."""
    session._transport.send(message.Cancel(request, mode=mode))


@pytest.mark.parametrize("transport,serializer", MATRIX, ids=MATRIX_IDS)
def test_cancelling_the_call_future_cancels_the_call_and_interrupts_the_callee_with_killnowait(
    router, transport, serializer
):
    async def scenario():
        callee = caller = None
        try:
            callee = await join(router, transport, serializer)
            caller = await join(router, other_transport(transport), other_serializer(serializer))
            caller_wire, callee_wire = spy(caller.session), spy(callee.session)
            proc = unique_uri("com.example.cancel")
            slow = SlowCallee()
            await bounded(callee.session.register(slow, proc), "REGISTERED")
            call = caller.session.call(proc)
            await bounded(slow.invoked, "INVOCATION")
            assert call.cancel()
            request = call_request_id(caller_wire, proc)
            [cancel] = await eventually(lambda: caller_wire.put(message.Cancel), "Autobahn to send CANCEL")
            assert cancel.request == request and cancel.mode is None, "Autobahn sends CANCEL without a mode"
            # default mode killnowait: ERROR canceled to the caller at once, INTERRUPT to the callee
            [err] = await eventually(
                lambda: caller_wire.got(message.Error, lambda m: m.request == request), "ERROR for the cancelled CALL"
            )
            assert err.request_type == message.Call.MESSAGE_TYPE and err.error == "wamp.error.canceled", err
            await bounded(slow.interrupted, "the callee's handler being cancelled by INTERRUPT")
            [inv] = callee_wire.got(message.Invocation)
            [interrupt] = callee_wire.got(message.Interrupt)
            # Crossbar 26.10 copies CANCEL's (absent) mode into INTERRUPT
            expected_mode = None if on_crossbar(router) else "killnowait"
            assert interrupt.request == inv.request, (interrupt.request, inv.request)
            assert interrupt.mode == expected_mode, f"INTERRUPT.Options.mode {interrupt.mode!r}"
            assert call.cancelled()
            # the callee's ERROR for the interrupted invocation is dropped; both go on
            await bounded(callee.session.register(lambda: "next", proc + ".next"), "REGISTERED")
            assert await bounded(caller.session.call(proc + ".next"), "RESULT") == "next"
            assert len(caller_wire.got(message.Error)) == 1
        finally:
            await close_all(caller, callee)

    run(scenario())


@pytest.mark.parametrize("transport,serializer", EACH, ids=EACH_IDS)
def test_cancel_mode_kill_interrupts_the_callee_and_its_answer_reaches_the_caller(router, transport, serializer):
    """Spec, Call Canceling: with kill, "ERROR is not returned to the Caller
    until after the Callee has responded to the canceled call. In this case
    the Caller may receive RESULT or ERROR depending whether the Callee
    finishes processing the invocation or the interrupt first." This callee
    answers the interrupt with a result."""
    if on_crossbar(router):
        pytest.xfail("Crossbar 26.10 answers a kill-cancelled call with ERROR canceled whatever the callee sent")

    async def scenario():
        callee = caller = None
        try:
            callee = await join(router, transport, serializer)
            caller = await join(router, other_transport(transport), serializer)
            caller_wire, callee_wire = spy(caller.session), spy(callee.session)
            proc = unique_uri("com.example.cancel_kill")
            slow = SlowCallee(answer_when_interrupted="stopped early")
            await bounded(callee.session.register(slow, proc), "REGISTERED")
            call = caller.session.call(proc)
            await bounded(slow.invoked, "INVOCATION")
            send_cancel(caller.session, call_request_id(caller_wire, proc), "kill")
            # kill: the router waits for the callee, whose answer ends the call
            assert await bounded(call, "the callee's answer after INTERRUPT") == "stopped early"
            [interrupt] = callee_wire.got(message.Interrupt)
            assert interrupt.mode == "kill", interrupt
        finally:
            await close_all(caller, callee)

    run(scenario())


@pytest.mark.parametrize("transport,serializer", EACH, ids=EACH_IDS)
def test_cancel_mode_skip_fails_the_call_at_once_without_interrupting_the_callee_and_drops_its_answer(
    router, transport, serializer
):
    """Spec, Call Canceling: with skip, "the pending call is canceled and
    ERROR is sent immediately back to the caller. No INTERRUPT is sent to
    the callee and the result is discarded when received."""
    if on_crossbar(router):
        pytest.xfail("Crossbar 26.10 sends no ERROR to the caller for CANCEL mode skip")

    async def scenario():
        callee = caller = None
        try:
            callee = await join(router, transport, serializer)
            caller = await join(router, other_transport(transport), serializer)
            caller_wire, callee_wire = spy(caller.session), spy(callee.session)
            proc = unique_uri("com.example.cancel_skip")
            slow = SlowCallee()
            await bounded(callee.session.register(slow, proc), "REGISTERED")
            await bounded(callee.session.register(lambda: "marker", proc + ".marker"), "REGISTERED")
            call = caller.session.call(proc)
            await bounded(slow.invoked, "INVOCATION")
            send_cancel(caller.session, call_request_id(caller_wire, proc), "skip")
            with pytest.raises(ApplicationError) as excinfo:
                await bounded(call, "ERROR for the skipped call")
            assert excinfo.value.error == "wamp.error.canceled"
            # a later INVOCATION on the same callee: an INTERRUPT would have come before it
            assert await bounded(caller.session.call(proc + ".marker"), "RESULT") == "marker"
            assert callee_wire.got(message.Interrupt) == [], "skip must not interrupt the callee"
            # the callee finishes; its YIELD is dropped and the caller is not disturbed
            slow.release.set()
            await eventually(lambda: callee_wire.put(message.Yield, lambda m: m.args == ["released"]), "the late YIELD")
            assert await bounded(caller.session.call(proc + ".marker"), "RESULT") == "marker"
            assert caller.session.is_attached()
        finally:
            await close_all(caller, callee)

    run(scenario())


@pytest.mark.parametrize("transport,serializer", EACH, ids=EACH_IDS)
def test_cancel_fails_the_call_at_once_without_interrupting_a_callee_that_did_not_announce_call_canceling(
    router, transport, serializer
):
    """Spec, Call Canceling: a Callee that does not support call canceling
    gets no INTERRUPT (the Dealer treats the cancel as skip): the Caller gets
    ERROR canceled at once."""
    if on_crossbar(router):
        pytest.xfail("Crossbar 26.10 treats this as mode skip, for which it sends the caller no ERROR")

    async def scenario():
        callee = caller = None
        try:
            callee = await join(
                router, transport, serializer, session_factory=session_announcing(callee__call_canceling=False)
            )
            caller = await join(router, other_transport(transport), serializer)
            callee_wire = spy(callee.session)
            proc = unique_uri("com.example.cancel_unaware")
            slow = SlowCallee()
            await bounded(callee.session.register(slow, proc), "REGISTERED")
            await bounded(callee.session.register(lambda: "marker", proc + ".marker"), "REGISTERED")
            call = caller.session.call(proc)
            await bounded(slow.invoked, "INVOCATION")
            caller_wire = spy(caller.session)
            call.cancel()
            [err] = await eventually(lambda: caller_wire.got(message.Error), "ERROR for the cancelled CALL")
            assert err.error == "wamp.error.canceled", err
            assert await bounded(caller.session.call(proc + ".marker"), "RESULT") == "marker"
            assert callee_wire.got(message.Interrupt) == [], "INTERRUPT to a callee without call_canceling"
            slow.release.set()
            await eventually(lambda: callee_wire.put(message.Yield, lambda m: m.args == ["released"]), "the late YIELD")
            assert await bounded(caller.session.call(proc + ".marker"), "RESULT") == "marker"
            assert caller.session.is_attached() and callee.session.is_attached()
        finally:
            await close_all(caller, callee)

    run(scenario())


@pytest.mark.parametrize("transport", BOTH)
def test_timeout_fails_the_call_without_interrupting_a_callee_that_did_not_announce_call_canceling(router, transport):
    xfail_timeouts_on_crossbar(router)

    async def scenario():
        callee = caller = None
        try:
            callee = await join(
                router, transport, "cbor", session_factory=session_announcing(callee__call_canceling=False)
            )
            caller = await join(router, other_transport(transport), "json")
            callee_wire = spy(callee.session)
            proc = unique_uri("com.example.timeout_unaware")
            slow = SlowCallee()
            await bounded(callee.session.register(slow, proc), "REGISTERED")
            await bounded(callee.session.register(lambda: "marker", proc + ".marker"), "REGISTERED")
            with pytest.raises(ApplicationError) as excinfo:
                await bounded(caller.session.call(proc, options=CallOptions(timeout=200)), "ERROR")
            assert excinfo.value.error == "wamp.error.timeout"
            assert await bounded(caller.session.call(proc + ".marker"), "RESULT") == "marker"
            assert callee_wire.got(message.Interrupt) == [], "INTERRUPT to a callee without call_canceling"
            slow.release.set()
            await eventually(lambda: callee_wire.put(message.Yield, lambda m: m.args == ["released"]), "the late YIELD")
            assert await bounded(caller.session.call(proc + ".marker"), "RESULT") == "marker"
        finally:
            await close_all(caller, callee)

    run(scenario())


@pytest.mark.parametrize("transport", BOTH)
def test_progressive_results_a_callee_sends_after_the_call_was_cancelled_are_dropped(router, transport):
    """The callee does not announce call_canceling, so it is not
    interrupted and keeps streaming; none of that may reach the caller
    (Autobahn fails the session on a RESULT for a request it no longer
    has)."""
    if on_crossbar(router):
        pytest.xfail("Crossbar 26.10 treats this as mode skip, for which it sends the caller no ERROR")

    async def scenario():
        callee = caller = None
        try:
            callee = await join(
                router, transport, "msgpack", session_factory=session_announcing(callee__call_canceling=False)
            )
            caller = await join(router, other_transport(transport), "cbor")
            callee_wire = spy(callee.session)
            proc = unique_uri("com.example.stream_after_cancel")
            stop = asyncio.Event()

            async def stream(details=None):
                i = 0
                while not stop.is_set() and i < 2000:
                    details.progress(i)
                    i += 1
                    await asyncio.sleep(0.01)
                return "end"

            await bounded(callee.session.register(stream, proc, options=RegisterOptions(details_arg="details")), "REG")
            progress = []
            call = caller.session.call(proc, options=CallOptions(on_progress=progress.append))
            await eventually(lambda: len(progress) >= 3, "three progressive results")
            caller_wire = spy(caller.session)
            call.cancel()
            await eventually(lambda: caller_wire.got(message.Error), "ERROR for the cancelled CALL")
            seen = len(progress)
            sent = len(callee_wire.put(message.Yield))
            await eventually(lambda: len(callee_wire.put(message.Yield)) >= sent + 10, "ten more progressive YIELDs")
            stop.set()
            await eventually(lambda: callee_wire.put(message.Yield, lambda m: m.args == ["end"]), "the final YIELD")
            await bounded(callee.session.register(lambda: "marker", proc + ".marker"), "REGISTERED")
            assert await bounded(caller.session.call(proc + ".marker"), "RESULT") == "marker"
            assert len(progress) == seen, f"{len(progress) - seen} progressive results after the cancel"
            # progress the callee sent before the router had the CANCEL may precede the ERROR; none may follow it
            [err_at] = [i for i, m in enumerate(caller_wire.received) if isinstance(m, message.Error)]
            after = [m.args for m in caller_wire.received[err_at:] if isinstance(m, message.Result)]
            assert after == [["marker"]], f"RESULTs after the ERROR: {after}"
            assert caller.session.is_attached()
        finally:
            await close_all(caller, callee)

    run(scenario())


@pytest.mark.parametrize("mode", [None, "skip", "kill", "killnowait"])
def test_cancel_for_a_call_that_already_ended_is_ignored(router, mode):
    async def scenario():
        callee = caller = None
        try:
            callee = await join(router, "rawsocket", "json")
            caller = await join(router, "websocket", "cbor")
            caller_wire, callee_wire = spy(caller.session), spy(callee.session)
            proc = unique_uri("com.example.cancel_late")
            await bounded(callee.session.register(lambda x: x, proc), "REGISTERED")
            assert await bounded(caller.session.call(proc, 1), "RESULT") == 1
            send_cancel(caller.session, call_request_id(caller_wire, proc), mode)
            # an ERROR for the finished call would make Autobahn fail the session with a protocol error
            assert await bounded(caller.session.call(proc, 2), "RESULT") == 2
            assert caller_wire.got(message.Error) == [] and callee_wire.got(message.Interrupt) == []
            assert caller.session.is_attached()
        finally:
            await close_all(caller, callee)

    run(scenario())


@pytest.mark.parametrize("transport", BOTH)
def test_callee_is_interrupted_when_the_caller_leaves_during_the_call(router, transport):
    async def scenario():
        callee = caller = None
        try:
            callee = await join(router, transport, "cbor")
            caller = await join(router, other_transport(transport), "msgpack")
            callee_wire = spy(callee.session)
            proc = unique_uri("com.example.caller_left")
            slow = SlowCallee()
            await bounded(callee.session.register(slow, proc), "REGISTERED")
            call = caller.session.call(proc)
            call.add_done_callback(lambda f: f.cancelled() or f.exception())
            await bounded(slow.invoked, "INVOCATION")
            caller.session.disconnect()
            await bounded(slow.interrupted, "INTERRUPT after the caller left")
            [interrupt] = callee_wire.got(message.Interrupt)
            assert interrupt.mode == "killnowait", interrupt
        finally:
            await close_all(caller, callee)

    run(scenario())


# ---------------------------------------------------------------------------
# Caller and publisher identification
# ---------------------------------------------------------------------------


CROSSBAR_DISCLOSE_ME = (
    "Crossbar 26.10 parses messages with Autobahn 26, which dropped disclose_me: only the role's disclose counts"
)


def identity_of(client) -> tuple:
    d = client.join_details
    return (d.session, d.authid, d.authrole)


@pytest.mark.parametrize("transport,serializer", EACH, ids=EACH_IDS)
def test_role_disclosing_callers_tells_the_callee_the_caller_session_authid_and_authrole(router, transport, serializer):
    async def scenario():
        callee = disclosed = plain = None
        try:
            callee = await join(router, transport, serializer)
            disclosed = await join(router, other_transport(transport), other_serializer(serializer), role="disclosed")
            plain = await join(router, transport, other_serializer(serializer), role="frontend")
            proc = unique_uri("com.example.whoami")
            base = proc.rsplit(".", 1)[0]

            def whoami(details=None):
                return [details.caller, details.caller_authid, details.caller_authrole]

            # an exact and a pattern registration: identification is the same for both
            await bounded(callee.session.register(whoami, proc, options=RegisterOptions(details_arg="details")), "REG")
            await bounded(
                callee.session.register(whoami, base, options=RegisterOptions(match="prefix", details_arg="details")),
                "REG prefix",
            )
            for uri in (proc, proc + ".deeper"):
                got = await bounded(disclosed.session.call(uri), "RESULT")
                assert tuple(got) == identity_of(disclosed), f"{uri}: disclosed caller seen as {got!r}"
                got = await bounded(plain.session.call(uri), "RESULT")
                assert got == [None, None, None], f"{uri}: a caller of a role without disclose was disclosed: {got!r}"
        finally:
            await close_all(callee, disclosed, plain)

    run(scenario())


@pytest.mark.parametrize("transport,serializer", EACH, ids=EACH_IDS)
def test_call_with_disclose_me_tells_the_callee_who_called(router, transport, serializer):
    if on_crossbar(router):
        pytest.xfail(CROSSBAR_DISCLOSE_ME)

    async def scenario():
        callee = caller = None
        try:
            callee = await join(router, transport, serializer)
            caller = await join(router, other_transport(transport), other_serializer(serializer))
            proc = unique_uri("com.example.disclose_me")

            def whoami(details=None):
                return [details.caller, details.caller_authid, details.caller_authrole]

            await bounded(callee.session.register(whoami, proc, options=RegisterOptions(details_arg="details")), "REG")
            assert await bounded(caller.session.call(proc), "RESULT") == [None, None, None], "not disclosed by default"
            with extra_options(caller.session, message.Call, disclose_me=True):
                call = caller.session.call(proc)
            got = await bounded(call, "RESULT")
            assert tuple(got) == identity_of(caller), f"CALL disclose_me=true: caller seen as {got!r}"
        finally:
            await close_all(callee, caller)

    run(scenario())


@pytest.mark.parametrize("transport,serializer", EACH, ids=EACH_IDS)
def test_role_disclosing_publishers_tells_subscribers_the_publisher_session_authid_and_authrole(
    router, transport, serializer
):
    async def scenario():
        sub = disclosed = plain = None
        try:
            sub = await join(router, transport, serializer)
            disclosed = await join(router, other_transport(transport), other_serializer(serializer), role="disclosed")
            plain = await join(router, transport, serializer, role="frontend")
            topic = unique_uri("com.example.who_published")
            exact, pattern = Inbox("exact"), Inbox("prefix")
            await bounded(sub.session.subscribe(exact, topic, options=SubscribeOptions(details_arg="details")), "SUB")
            await bounded(
                sub.session.subscribe(
                    pattern, topic.rsplit(".", 1)[0], options=SubscribeOptions(match="prefix", details_arg="details")
                ),
                "SUB prefix",
            )
            await publish_acked(disclosed, topic, "disclosed")
            await publish_acked(plain, topic, "plain")
            for inbox in (exact, pattern):
                await inbox.wait_for("plain")
                (_, _, d1), (_, _, d2) = inbox.events
                assert (d1.publisher, d1.publisher_authid, d1.publisher_authrole) == identity_of(
                    disclosed
                ), f"{inbox.name}: {d1!r}"
                assert (d2.publisher, d2.publisher_authid, d2.publisher_authrole) == (
                    None,
                    None,
                    None,
                ), f"{inbox.name}: a publisher of a role without disclose was disclosed: {d2!r}"
        finally:
            await close_all(sub, disclosed, plain)

    run(scenario())


@pytest.mark.parametrize("transport,serializer", EACH, ids=EACH_IDS)
def test_publish_with_disclose_me_tells_subscribers_who_published(router, transport, serializer):
    if on_crossbar(router):
        pytest.xfail(CROSSBAR_DISCLOSE_ME)

    async def scenario():
        sub = pub = None
        try:
            sub = await join(router, transport, serializer)
            pub = await join(router, other_transport(transport), other_serializer(serializer))
            topic = unique_uri("com.example.disclose_me_pub")
            inbox = Inbox()
            await bounded(sub.session.subscribe(inbox, topic, options=SubscribeOptions(details_arg="details")), "SUB")
            await publish_acked(pub, topic, "anonymous")
            with extra_options(pub.session, message.Publish, disclose_me=True):
                published = pub.session.publish(topic, "disclosed", options=PublishOptions(acknowledge=True))
            await bounded(published, "PUBLISHED")
            await inbox.wait_for("disclosed")
            (_, _, d1), (_, _, d2) = inbox.events
            assert (d1.publisher, d1.publisher_authid, d1.publisher_authrole) == (None, None, None), d1
            assert (d2.publisher, d2.publisher_authid, d2.publisher_authrole) == identity_of(
                pub
            ), f"PUBLISH disclose_me=true: {d2!r}"
        finally:
            await close_all(sub, pub)

    run(scenario())


# ---------------------------------------------------------------------------
# Publisher exclusion, subscriber black- and whitelisting
# ---------------------------------------------------------------------------


class Audience:
    """Subscribers of one topic: name -> (client, inbox). ``deliveries``
    publishes with ``options``, then an unfiltered marker, and returns who
    got the filtered event (events from one publisher arrive in order, so
    once every subscriber has the marker the filtered event is either
    there or never coming)."""

    def __init__(self, topic: str):
        self.topic = topic
        self.members: dict[str, tuple] = {}

    async def add(self, name: str, client):
        inbox = Inbox(name)
        await bounded(
            client.session.subscribe(inbox, self.topic, options=SubscribeOptions(details_arg="details")), "SUB"
        )
        self.members[name] = (client, inbox)

    def id(self, name: str) -> int:
        return self.members[name][0].join_details.session

    def authid(self, name: str) -> str:
        return self.members[name][0].join_details.authid

    async def deliveries(self, publisher, options: PublishOptions) -> set:
        tag = unique_uri("event")
        await publish_acked(publisher, self.topic, tag, options=options)
        marker = unique_uri("marker")
        await publish_acked(publisher, self.topic, marker)
        for _, inbox in self.members.values():
            await inbox.wait_for(marker)
        return {name for name, (_, inbox) in self.members.items() if tag in inbox.first_args()}


async def audience_of_three(router, transport, serializer, topic, roles=("anonymous", "anonymous", "anonymous")):
    """Subscribers a, b, c (of ``roles``) over alternating transports/serializers."""
    audience = Audience(topic)
    clients = []
    t, s = transport, serializer
    for name, role in zip("abc", roles):
        c = await join(router, t, s, role=role)
        clients.append(c)
        await audience.add(name, c)
        t, s = other_transport(t), other_serializer(s)
    return audience, clients


@pytest.mark.parametrize("transport,serializer", EACH, ids=EACH_IDS)
def test_publisher_gets_its_own_event_only_with_exclude_me_false_also_through_a_pattern_subscription(
    router, transport, serializer
):
    async def scenario():
        pub = other = None
        try:
            pub = await join(router, transport, serializer)
            other = await join(router, other_transport(transport), other_serializer(serializer))
            base = unique_uri("com.example.exclude_me")
            theirs, mine = Inbox("other"), Inbox("publisher")
            await bounded(
                other.session.subscribe(theirs, f"{base}.t", options=SubscribeOptions(details_arg="details")), "SUB"
            )
            await bounded(
                pub.session.subscribe(mine, base, options=SubscribeOptions(match="prefix", details_arg="details")),
                "SUB prefix",
            )
            await publish_acked(pub, f"{base}.t", "default")
            await publish_acked(pub, f"{base}.t", "included", options=PublishOptions(exclude_me=False))
            await theirs.wait_for("included")
            await mine.wait_for("included")
            assert mine.first_args() == ["included"], "the publisher is excluded unless exclude_me is false"
            assert theirs.first_args() == ["default", "included"]
        finally:
            await close_all(pub, other)

    run(scenario())


@pytest.mark.parametrize("transport,serializer", MATRIX, ids=MATRIX_IDS)
def test_exclude_and_eligible_session_lists_pick_the_receivers(router, transport, serializer):
    async def scenario():
        clients, pub = [], None
        try:
            audience, clients = await audience_of_three(router, transport, serializer, unique_uri("com.example.lists"))
            pub = await join(router, other_transport(transport), serializer)
            a, b, c = (audience.id(n) for n in "abc")
            cases = [
                (PublishOptions(), {"a", "b", "c"}),
                (PublishOptions(exclude=[b]), {"a", "c"}),
                (PublishOptions(exclude=[a, c]), {"b"}),
                (PublishOptions(eligible=[a, c]), {"a", "c"}),
                (PublishOptions(eligible=[b, pub.join_details.session]), {"b"}),
                # an empty whitelist admits nobody (Crossbar 26.10 ignores an empty list: not checked there)
                *([] if on_crossbar(router) else [(PublishOptions(eligible=[]), set())]),
                # excluded wins over eligible
                (PublishOptions(eligible=[a, b], exclude=[b]), {"a"}),
                # ids of no subscriber change nothing
                (PublishOptions(exclude=[2**53 - 1]), {"a", "b", "c"}),
            ]
            for options, expected in cases:
                got = await audience.deliveries(pub, options)
                assert (
                    got == expected
                ), f"PUBLISH {options.message_attr()}: delivered to {sorted(got)}, not {sorted(expected)}"
        finally:
            await close_all(pub, *clients)

    run(scenario())


@pytest.mark.parametrize("transport,serializer", EACH, ids=EACH_IDS)
def test_exclude_authid_and_eligible_authid_pick_the_receivers_by_authid(router, transport, serializer):
    async def scenario():
        clients, pub = [], None
        try:
            audience, clients = await audience_of_three(
                router, transport, serializer, unique_uri("com.example.authids")
            )
            pub = await join(router, other_transport(transport), serializer)
            a, b, c = (audience.authid(n) for n in "abc")
            assert len({a, b, c}) == 3, f"anonymous sessions got distinct authids: {a, b, c}"
            cases = [
                (PublishOptions(exclude_authid=[a]), {"b", "c"}),
                (PublishOptions(eligible_authid=[b, c]), {"b", "c"}),
                (PublishOptions(eligible_authid=[a, b], exclude_authid=[a]), {"b"}),
                (PublishOptions(eligible_authid=["nobody"]), set()),
            ]
            for options, expected in cases:
                got = await audience.deliveries(pub, options)
                assert (
                    got == expected
                ), f"PUBLISH {options.message_attr()}: delivered to {sorted(got)}, not {sorted(expected)}"
        finally:
            await close_all(pub, *clients)

    run(scenario())


@pytest.mark.parametrize("transport,serializer", EACH, ids=EACH_IDS)
def test_exclude_authrole_and_eligible_authrole_pick_the_receivers_by_authrole(router, transport, serializer):
    async def scenario():
        clients, pub = [], None
        try:
            audience, clients = await audience_of_three(
                router, transport, serializer, unique_uri("com.example.authroles"), roles=ROLES
            )
            pub = await join(router, other_transport(transport), serializer, role="frontend")
            cases = [
                (PublishOptions(eligible_authrole=["frontend"]), {"b"}),
                (PublishOptions(eligible_authrole=["anonymous", "disclosed"]), {"a", "c"}),
                (PublishOptions(exclude_authrole=["frontend"]), {"a", "c"}),
                (PublishOptions(exclude_authrole=["disclosed"], exclude=[audience.id("a")]), {"b"}),
                (PublishOptions(eligible_authrole=["anonymous", "frontend"], exclude_authrole=["frontend"]), {"a"}),
            ]
            for options, expected in cases:
                got = await audience.deliveries(pub, options)
                assert (
                    got == expected
                ), f"PUBLISH {options.message_attr()}: delivered to {sorted(got)}, not {sorted(expected)}"
        finally:
            await close_all(pub, *clients)

    run(scenario())


@pytest.mark.parametrize(
    "transport,serializer",
    [("websocket", "json"), ("rawsocket", "cbor")],
    ids=["over_websocket_json", "over_rawsocket_cbor"],
)
def test_subscriber_receives_only_when_on_every_eligible_list_given(router, transport, serializer):
    """Spec, Subscriber Black- and Whitelisting: a subscriber receives the
    event "if and only if all of the following statements are true: if
    there is an eligible attribute present, the Subscriber's sessionid is in
    this list; if there is an eligible_authid attribute present, [its]
    authid is in this list; if there is an eligible_authrole attribute
    present, [its] authrole is in this list; ..." (Crossbar applies each list
    as a further filter in the same way)."""

    async def scenario():
        clients, pub = [], None
        try:
            audience, clients = await audience_of_three(
                router,
                transport,
                serializer,
                unique_uri("com.example.all_lists"),
                roles=("anonymous", "frontend", "frontend"),
            )
            pub = await join(router, other_transport(transport), serializer)
            a, b, c = (audience.id(n) for n in "abc")
            cases = [
                # a is not frontend, c is not on the id list: only b is on both
                (PublishOptions(eligible=[a, b], eligible_authrole=["frontend"]), {"b"}),
                (PublishOptions(eligible_authid=[audience.authid("a"), audience.authid("c")], eligible=[c, b]), {"c"}),
                (PublishOptions(eligible_authrole=["anonymous"], eligible_authid=[audience.authid("b")]), set()),
            ]
            for options, expected in cases:
                got = await audience.deliveries(pub, options)
                assert (
                    got == expected
                ), f"PUBLISH {options.message_attr()}: delivered to {sorted(got)}, not {sorted(expected)}"
        finally:
            await close_all(pub, *clients)

    run(scenario())
