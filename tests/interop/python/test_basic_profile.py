"""WAMP Basic Profile through the router, Autobahn|Python on both ends, for
every serializer (json, msgpack, cbor) over every transport (WebSocket and
RawSocket, each over TCP and over a unix socket)."""

from __future__ import annotations

import asyncio

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallResult, PublishOptions, SubscribeOptions

from interop_client import (
    MATRIX,
    MATRIX_IDS,
    SERIALIZERS,
    TRANSPORTS,
    SessionRefused,
    bounded,
    close_all,
    connect,
    run,
    unique_uri,
)

# A payload that exercises every WAMP value type a serializer must carry
# through the router: integers beyond 2**53 (not representable as double),
# negative, float, unicode, bool, null, binary, nested containers.
PAYLOAD_ARGS = [
    1,
    2**53,
    2**53 + 1,
    -(2**53),
    1.5,
    "héllo wörld ✓ 🚀",
    True,
    False,
    None,
    b"\x00\x01\x02\xfe\xffbinary",
    [1, [2, 3], {"a": "b"}],
    {"nested": {"k": [1, 2, 3]}},
    "",
    [],
]
PAYLOAD_KWARGS = {
    "blob": bytes(range(256)),
    "big": 2**53,
    "text": "x" * 100,
    "list": ["a", 1, None],
    "empty": {},
    "flag": True,
    "neg": -42,
}


def assert_same_values(actual, expected, where="value"):
    """Deep equality that also insists on identical types (bytes stay bytes,
    ints stay ints, bool stays bool)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected dict, got {type(actual).__name__} {actual!r}"
        assert set(actual) == set(expected), f"{where}: keys {sorted(actual)} != {sorted(expected)}"
        for k in expected:
            assert_same_values(actual[k], expected[k], f"{where}[{k!r}]")
    elif isinstance(expected, (list, tuple)):
        assert isinstance(actual, (list, tuple)), f"{where}: expected list, got {type(actual).__name__} {actual!r}"
        assert len(actual) == len(expected), f"{where}: length {len(actual)} != {len(expected)}: {actual!r}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same_values(a, e, f"{where}[{i}]")
    else:
        assert type(actual) is type(expected), (
            f"{where}: expected {type(expected).__name__} {expected!r}, got {type(actual).__name__} {actual!r}"
        )
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


# ---------------------------------------------------------------------------
# RPC
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("transport,serializer", MATRIX, ids=MATRIX_IDS)
def test_python_caller_reaches_python_callee_with_args_kwargs_and_binary(router, transport, serializer):
    async def scenario():
        callee = caller = None
        try:
            callee = await connect(router, transport, serializer)
            caller = await connect(router, transport, serializer)
            proc = unique_uri("com.example.echo")
            seen = []

            def echo(*args, **kwargs):
                seen.append((args, kwargs))
                return CallResult(*args, **kwargs)

            reg = await bounded(callee.session.register(echo, proc), "REGISTERED")
            assert reg.id

            res = await bounded(caller.session.call(proc, *PAYLOAD_ARGS, **PAYLOAD_KWARGS), "RESULT")
            assert isinstance(res, CallResult), f"expected CallResult, got {res!r}"
            # what the callee saw in INVOCATION
            assert len(seen) == 1
            assert_same_values(list(seen[0][0]), PAYLOAD_ARGS, "INVOCATION.args")
            assert_same_values(seen[0][1], PAYLOAD_KWARGS, "INVOCATION.kwargs")
            # what the caller got back in RESULT
            assert_same_values(list(res.results), PAYLOAD_ARGS, "RESULT.args")
            assert_same_values(res.kwresults, PAYLOAD_KWARGS, "RESULT.kwargs")

            # a plain single return value arrives as-is
            reg2 = await bounded(callee.session.register(lambda a, b: a + b, proc + ".add"), "REGISTERED")
            assert reg2.id
            assert await bounded(caller.session.call(proc + ".add", 2**53, 1), "RESULT") == 2**53 + 1
        finally:
            await close_all(caller, callee)

    run(scenario())


@pytest.mark.parametrize("transport,serializer", MATRIX, ids=MATRIX_IDS)
def test_callee_application_error_reaches_python_caller_with_same_uri(router, transport, serializer):
    async def scenario():
        callee = caller = None
        try:
            callee = await connect(router, transport, serializer)
            caller = await connect(router, transport, serializer)
            proc = unique_uri("com.example.fails")
            error_uri = "com.example.error.invalid_input"

            def fails(x):
                raise ApplicationError(error_uri, "bad input", x, b"\x01\x02", detail={"x": x, "big": 2**53})

            await bounded(callee.session.register(fails, proc), "REGISTERED")
            with pytest.raises(ApplicationError) as excinfo:
                await bounded(caller.session.call(proc, 23), "ERROR")
            err = excinfo.value
            assert err.error == error_uri
            assert_same_values(list(err.args), ["bad input", 23, b"\x01\x02"], "ERROR.args")
            assert_same_values(err.kwargs, {"detail": {"x": 23, "big": 2**53}}, "ERROR.kwargs")
        finally:
            await close_all(caller, callee)

    run(scenario())


@pytest.mark.parametrize("transport,serializer", MATRIX, ids=MATRIX_IDS)
def test_calling_unregistered_procedure_fails_with_no_such_procedure(router, transport, serializer):
    async def scenario():
        caller = None
        try:
            caller = await connect(router, transport, serializer)
            with pytest.raises(ApplicationError) as excinfo:
                await bounded(caller.session.call(unique_uri("com.example.nobody_home"), 1), "ERROR")
            assert excinfo.value.error == "wamp.error.no_such_procedure"
            # the session is still usable afterwards
            assert caller.session.is_attached()
        finally:
            await close_all(caller)

    run(scenario())


# ---------------------------------------------------------------------------
# PubSub
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("transport,serializer", MATRIX, ids=MATRIX_IDS)
def test_acknowledged_publish_delivers_event_to_python_subscriber_with_args_kwargs(router, transport, serializer):
    async def scenario():
        sub = pub = None
        try:
            sub = await connect(router, transport, serializer)
            pub = await connect(router, transport, serializer)
            topic = unique_uri("com.example.topic")
            loop = asyncio.get_running_loop()
            received = loop.create_future()

            def on_event(*args, **kwargs):
                if not received.done():
                    received.set_result((args, kwargs))

            subscription = await bounded(sub.session.subscribe(on_event, topic), "SUBSCRIBED")
            assert subscription.id

            publication = await bounded(
                pub.session.publish(
                    topic, *PAYLOAD_ARGS, options=PublishOptions(acknowledge=True), **PAYLOAD_KWARGS
                ),
                "PUBLISHED",
            )
            assert publication is not None and publication.id, f"no PUBLISHED id: {publication!r}"

            args, kwargs = await bounded(received, "EVENT")
            assert_same_values(list(args), PAYLOAD_ARGS, "EVENT.args")
            assert_same_values(kwargs, PAYLOAD_KWARGS, "EVENT.kwargs")
        finally:
            await close_all(pub, sub)

    run(scenario())


@pytest.mark.parametrize("serializer", SERIALIZERS)
def test_publisher_is_excluded_from_its_own_event_by_default(router, serializer):
    async def scenario():
        a = b = None
        try:
            a = await connect(router, "websocket_tcp", serializer)
            b = await connect(router, "rawsocket_tcp", serializer)
            topic = unique_uri("com.example.exclusion")
            got_a, got_b = [], []
            b_event = asyncio.get_running_loop().create_future()

            def on_b(*args, **kwargs):
                got_b.append(args)
                if not b_event.done():
                    b_event.set_result(args)

            await bounded(a.session.subscribe(lambda *args, **kw: got_a.append(args), topic), "SUBSCRIBED a")
            await bounded(b.session.subscribe(on_b, topic), "SUBSCRIBED b")
            await bounded(a.session.publish(topic, "hello", options=PublishOptions(acknowledge=True)), "PUBLISHED")
            assert await bounded(b_event, "EVENT at other subscriber") == ("hello",)
            # give a wrongly delivered self-event time to arrive; a round trip to
            # the router after the publish flushes it
            await bounded(a.session.publish(topic + ".flush", options=PublishOptions(acknowledge=True)), "PUBLISHED")
            await asyncio.sleep(0.2)
            assert got_a == [], f"publisher received its own event: {got_a!r}"
            assert got_b == [("hello",)]
        finally:
            await close_all(a, b)

    run(scenario())


@pytest.mark.parametrize("serializer", SERIALIZERS)
def test_publisher_receives_its_own_event_when_exclude_me_is_false(router, serializer):
    async def scenario():
        a = None
        try:
            a = await connect(router, "websocket_unix", serializer)
            topic = unique_uri("com.example.self")
            got = asyncio.get_running_loop().create_future()
            await bounded(
                a.session.subscribe(lambda *args, **kw: got.done() or got.set_result((args, kw)), topic),
                "SUBSCRIBED",
            )
            await bounded(
                a.session.publish(
                    topic, 1, b"\xff", options=PublishOptions(acknowledge=True, exclude_me=False), k="v"
                ),
                "PUBLISHED",
            )
            args, kwargs = await bounded(got, "own EVENT")
            assert_same_values(list(args), [1, b"\xff"], "EVENT.args")
            assert_same_values(kwargs, {"k": "v"}, "EVENT.kwargs")
        finally:
            await close_all(a)

    run(scenario())


# ---------------------------------------------------------------------------
# Session establishment
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("transport,serializer", MATRIX, ids=MATRIX_IDS)
def test_joining_unknown_realm_is_refused_with_no_such_realm(router, transport, serializer):
    async def scenario():
        with pytest.raises(SessionRefused) as excinfo:
            c = await connect(router, transport, serializer, realm="com.example.no_such_realm")
            await c.close()
        assert excinfo.value.reason == "wamp.error.no_such_realm", str(excinfo.value)

    run(scenario())


@pytest.mark.parametrize("transport,serializer", MATRIX, ids=MATRIX_IDS)
def test_welcome_announces_broker_and_dealer_roles_and_a_session_id(router, transport, serializer):
    async def scenario():
        c = None
        try:
            c = await connect(router, transport, serializer)
            details = c.join_details
            assert isinstance(details.session, int) and 1 <= details.session <= 2**53
            assert details.realm == "realm1"
            assert details.serializer == serializer, f"negotiated {details.serializer!r}"
            roles = c.session._router_roles or {}
            assert "broker" in roles and "dealer" in roles, f"WELCOME.Details.roles: {roles!r}"
        finally:
            await close_all(c)

    run(scenario())


# ---------------------------------------------------------------------------
# Mixed serializers and transports in one realm
# ---------------------------------------------------------------------------

PAIRS = [(a, b) for a in SERIALIZERS for b in SERIALIZERS if a != b]


@pytest.mark.parametrize("caller_ser,callee_ser", PAIRS, ids=[f"{a}_caller_{b}_callee" for a, b in PAIRS])
def test_caller_and_callee_with_different_serializers_exchange_binary_and_big_integers(
    router, caller_ser, callee_ser
):
    async def scenario():
        callee = caller = None
        try:
            callee = await connect(router, "rawsocket_unix", callee_ser)
            caller = await connect(router, "websocket_tcp", caller_ser)
            proc = unique_uri("com.example.mixed")
            await bounded(
                callee.session.register(lambda *a, **kw: CallResult(*a, **kw), proc), "REGISTERED"
            )
            res = await bounded(caller.session.call(proc, *PAYLOAD_ARGS, **PAYLOAD_KWARGS), "RESULT")
            assert_same_values(list(res.results), PAYLOAD_ARGS, "RESULT.args")
            assert_same_values(res.kwresults, PAYLOAD_KWARGS, "RESULT.kwargs")

            def fails():
                raise ApplicationError("com.example.error.mixed", b"\x00bin", 2**53 + 1)

            await bounded(callee.session.register(fails, proc + ".fails"), "REGISTERED")
            with pytest.raises(ApplicationError) as excinfo:
                await bounded(caller.session.call(proc + ".fails"), "ERROR")
            assert excinfo.value.error == "com.example.error.mixed"
            assert_same_values(list(excinfo.value.args), [b"\x00bin", 2**53 + 1], "ERROR.args")
        finally:
            await close_all(caller, callee)

    run(scenario())


BINARY_PAIRS = [("msgpack", "cbor"), ("cbor", "msgpack")]


@pytest.mark.parametrize("caller_ser,callee_ser", BINARY_PAIRS, ids=[f"{a}_caller_{b}_callee" for a, b in BINARY_PAIRS])
def test_text_starting_with_nul_stays_text_between_msgpack_and_cbor_sessions(router, caller_ser, callee_ser):
    """The "\\0" + base64 binary convention belongs to JSON only: a msgpack or
    cbor *text* string that happens to start with NUL must reach a msgpack or
    cbor peer as that same text, not as bytes (and not be refused)."""

    async def scenario():
        callee = caller = None
        try:
            callee = await connect(router, "websocket_tcp", callee_ser)
            caller = await connect(router, "rawsocket_tcp", caller_ser)
            proc = unique_uri("com.example.nul_text")
            seen = []
            await bounded(
                callee.session.register(lambda *a, **kw: (seen.append((a, kw)), CallResult(*a, **kw))[1], proc),
                "REGISTERED",
            )
            args = ["\x00AAEC", "\x00not base64?", b"\x00AAEC"]
            kwargs = {"s": "\x00AAEC"}
            res = await bounded(caller.session.call(proc, *args, **kwargs), "RESULT")
            assert_same_values(list(seen[0][0]), args, "INVOCATION.args")
            assert_same_values(seen[0][1], kwargs, "INVOCATION.kwargs")
            assert_same_values(list(res.results), args, "RESULT.args")
            assert_same_values(res.kwresults, kwargs, "RESULT.kwargs")
        finally:
            await close_all(caller, callee)

    run(scenario())


@pytest.mark.parametrize("pub_ser,sub_ser", PAIRS, ids=[f"{a}_publisher_{b}_subscriber" for a, b in PAIRS])
def test_event_reaches_subscriber_using_a_different_serializer_than_the_publisher(router, pub_ser, sub_ser):
    async def scenario():
        sub = pub = None
        try:
            sub = await connect(router, "websocket_unix", sub_ser)
            pub = await connect(router, "rawsocket_tcp", pub_ser)
            topic = unique_uri("com.example.mixed_topic")
            got = asyncio.get_running_loop().create_future()
            await bounded(
                sub.session.subscribe(lambda *a, **kw: got.done() or got.set_result((a, kw)), topic), "SUBSCRIBED"
            )
            await bounded(
                pub.session.publish(topic, *PAYLOAD_ARGS, options=PublishOptions(acknowledge=True), **PAYLOAD_KWARGS),
                "PUBLISHED",
            )
            args, kwargs = await bounded(got, "EVENT")
            assert_same_values(list(args), PAYLOAD_ARGS, "EVENT.args")
            assert_same_values(kwargs, PAYLOAD_KWARGS, "EVENT.kwargs")
        finally:
            await close_all(pub, sub)

    run(scenario())


# ---------------------------------------------------------------------------
# Registration / subscription lifecycle
# ---------------------------------------------------------------------------


def test_second_registration_of_same_procedure_fails_with_procedure_already_exists(router):
    async def scenario():
        a = b = None
        try:
            a = await connect(router, "websocket_tcp", "json")
            b = await connect(router, "rawsocket_tcp", "cbor")
            proc = unique_uri("com.example.once")
            await bounded(a.session.register(lambda: "a", proc), "REGISTERED")
            with pytest.raises(ApplicationError) as excinfo:
                await bounded(b.session.register(lambda: "b", proc), "ERROR")
            assert excinfo.value.error == "wamp.error.procedure_already_exists"
        finally:
            await close_all(a, b)

    run(scenario())


def test_procedure_disappears_when_its_callee_unregisters_or_leaves(router):
    async def scenario():
        callee = callee2 = caller = None
        try:
            callee = await connect(router, "rawsocket_unix", "msgpack")
            caller = await connect(router, "websocket_tcp", "json")
            proc = unique_uri("com.example.transient")
            reg = await bounded(callee.session.register(lambda: "here", proc), "REGISTERED")
            assert await bounded(caller.session.call(proc), "RESULT") == "here"
            await bounded(reg.unregister(), "UNREGISTERED")
            with pytest.raises(ApplicationError) as excinfo:
                await bounded(caller.session.call(proc), "ERROR")
            assert excinfo.value.error == "wamp.error.no_such_procedure"

            # registration goes away with the session that made it
            callee2 = await connect(router, "websocket_unix", "cbor")
            await bounded(callee2.session.register(lambda: "here too", proc), "REGISTERED")
            assert await bounded(caller.session.call(proc), "RESULT") == "here too"
            await callee2.close()
            with pytest.raises(ApplicationError) as excinfo:
                await bounded(caller.session.call(proc), "ERROR")
            assert excinfo.value.error == "wamp.error.no_such_procedure"
        finally:
            await close_all(caller, callee, callee2)

    run(scenario())


def test_unsubscribed_session_no_longer_receives_events(router):
    async def scenario():
        sub = pub = None
        try:
            sub = await connect(router, "websocket_tcp", "msgpack")
            pub = await connect(router, "websocket_tcp", "cbor")
            topic = unique_uri("com.example.unsub")
            got = []
            first = asyncio.get_running_loop().create_future()

            def on_event(n):
                got.append(n)
                if not first.done():
                    first.set_result(n)

            subscription = await bounded(sub.session.subscribe(on_event, topic), "SUBSCRIBED")
            await bounded(pub.session.publish(topic, 1, options=PublishOptions(acknowledge=True)), "PUBLISHED")
            assert await bounded(first, "EVENT") == 1
            await bounded(subscription.unsubscribe(), "UNSUBSCRIBED")
            await bounded(pub.session.publish(topic, 2, options=PublishOptions(acknowledge=True)), "PUBLISHED")
            await asyncio.sleep(0.3)
            assert got == [1]
        finally:
            await close_all(pub, sub)

    run(scenario())


def test_prefix_subscription_receives_events_for_topics_under_the_prefix(router):
    """Not part of the Basic Profile: skipped if the router rejects the
    'prefix' match policy with an error."""

    async def scenario():
        sub = pub = None
        try:
            sub = await connect(router, "websocket_tcp", "json")
            pub = await connect(router, "websocket_tcp", "json")
            prefix = unique_uri("com.example.prefix")
            got = asyncio.get_running_loop().create_future()
            try:
                await bounded(
                    sub.session.subscribe(
                        lambda *a, **kw: got.done() or got.set_result((a, kw)),
                        prefix,
                        options=SubscribeOptions(match="prefix", details_arg="details"),
                    ),
                    "SUBSCRIBED",
                )
            except ApplicationError as e:
                return f"router rejected prefix subscription: {e.error}"
            await bounded(pub.session.publish(prefix + ".a.b", 7, options=PublishOptions(acknowledge=True)), "PUBLISHED")
            args, kw = await bounded(got, "EVENT")
            assert args == (7,)
            assert kw["details"].topic == prefix + ".a.b"
        finally:
            await close_all(pub, sub)
        return None

    skipped = run(scenario())
    if skipped:
        pytest.skip(skipped)


# ---------------------------------------------------------------------------
# Larger messages and WebSocket compression
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sixty_kilobyte_binary_argument_round_trips(router, transport):
    async def scenario():
        callee = caller = None
        try:
            callee = await connect(router, transport, "msgpack")
            caller = await connect(router, transport, "json")
            proc = unique_uri("com.example.big")
            await bounded(callee.session.register(lambda b: b[::-1], proc), "REGISTERED")
            blob = bytes((i * 7 + 3) % 256 for i in range(60 * 1024))
            res = await bounded(caller.session.call(proc, blob), "RESULT")
            assert type(res) is bytes and res == blob[::-1]
        finally:
            await close_all(caller, callee)

    run(scenario())


@pytest.mark.parametrize("serializer", SERIALIZERS)
def test_websocket_session_with_permessage_deflate_calls_and_publishes(router, serializer):
    from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateResponse, PerMessageDeflateResponseAccept

    def accept(response):
        if isinstance(response, PerMessageDeflateResponse):
            return PerMessageDeflateResponseAccept(response)
        return None

    options = {"perMessageCompressionOffers": [PerMessageDeflateOffer()], "perMessageCompressionAccept": accept}

    async def scenario():
        a = b = None
        try:
            a = await connect(router, "websocket_tcp", serializer, options=options)
            b = await connect(router, "websocket_unix", serializer, options=options)
            for c in (a, b):
                proto = c.session._transport
                ext = getattr(proto, "websocket_extensions_in_use", None)
                assert ext and ext[0].EXTENSION_NAME == "permessage-deflate", (
                    f"permessage-deflate not negotiated over {c.transport}: {ext!r}"
                )
            proc = unique_uri("com.example.deflate")
            text = "compressible " * 5000
            await bounded(a.session.register(lambda s: s.upper(), proc), "REGISTERED")
            assert await bounded(b.session.call(proc, text), "RESULT") == text.upper()
            topic = unique_uri("com.example.deflate_topic")
            got = asyncio.get_running_loop().create_future()
            await bounded(b.session.subscribe(lambda s: got.done() or got.set_result(s), topic), "SUBSCRIBED")
            await bounded(a.session.publish(topic, text, options=PublishOptions(acknowledge=True)), "PUBLISHED")
            assert await bounded(got, "EVENT") == text
        finally:
            await close_all(a, b)

    run(scenario())
