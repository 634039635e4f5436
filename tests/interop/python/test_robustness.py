"""Beyond single request/response: many calls in flight at once, event
ordering, a callee that goes away mid-call, and larger messages."""

from __future__ import annotations

import asyncio

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions

from interop_client import SERIALIZERS, TRANSPORTS, bounded, close_all, connect, run, unique_uri


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_two_hundred_concurrent_calls_each_get_their_own_result(router, transport):
    async def scenario():
        callee = caller = None
        try:
            callee = await connect(router, transport, "cbor")
            caller = await connect(router, transport, "msgpack")
            proc = unique_uri("com.example.concurrent")

            async def slow_square(n):
                # finish out of order
                await asyncio.sleep((n % 7) * 0.01)
                return n * n

            await bounded(callee.session.register(slow_square, proc), "REGISTERED")
            results = await bounded(
                asyncio.gather(*(caller.session.call(proc, n) for n in range(200))), "200 RESULTs", timeout=30
            )
            assert results == [n * n for n in range(200)]
        finally:
            await close_all(caller, callee)

    run(scenario())


@pytest.mark.parametrize("serializer", SERIALIZERS)
def test_events_from_one_publisher_arrive_in_publication_order(router, serializer):
    async def scenario():
        sub = pub = None
        try:
            sub = await connect(router, "rawsocket_unix", serializer)
            pub = await connect(router, "websocket_tcp", serializer)
            topic = unique_uri("com.example.order")
            got = []
            all_in = asyncio.get_running_loop().create_future()

            def on_event(n):
                got.append(n)
                if len(got) == 300 and not all_in.done():
                    all_in.set_result(None)

            await bounded(sub.session.subscribe(on_event, topic), "SUBSCRIBED")
            # 299 fire-and-forget publishes, then an acknowledged one
            for n in range(299):
                pub.session.publish(topic, n)
            await bounded(pub.session.publish(topic, 299, options=PublishOptions(acknowledge=True)), "PUBLISHED")
            await bounded(all_in, "300 EVENTs", timeout=20)
            assert got == list(range(300))
        finally:
            await close_all(pub, sub)

    run(scenario())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_caller_gets_an_error_when_the_callee_leaves_during_the_call(router, transport):
    async def scenario():
        callee = caller = None
        try:
            callee = await connect(router, transport, "json")
            caller = await connect(router, "websocket_tcp", "cbor")
            proc = unique_uri("com.example.abandoned")
            invoked = asyncio.get_running_loop().create_future()

            async def never_answers():
                invoked.set_result(None)
                await asyncio.sleep(3600)

            await bounded(callee.session.register(never_answers, proc), "REGISTERED")
            call = asyncio.ensure_future(caller.session.call(proc))
            await bounded(invoked, "INVOCATION")
            callee.session.disconnect()  # drop the transport without GOODBYE
            with pytest.raises(ApplicationError) as excinfo:
                await bounded(call, "ERROR after the callee vanished")
            assert excinfo.value.error.startswith("wamp.error."), excinfo.value.error
        finally:
            await close_all(caller, callee)

    run(scenario())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_nine_hundred_kilobyte_binary_argument_round_trips(router, transport):
    """Just under 1 MiB per WAMP message (the smallest limit a router is
    likely to have; Switchboard announces 2**20 in the RawSocket handshake)."""
    if router.kind == "crossbar" and transport.startswith("rawsocket"):
        pytest.skip("Crossbar.io's default RawSocket max message size is 128 KiB")

    async def scenario():
        callee = caller = None
        try:
            callee = await connect(router, transport, "cbor")
            caller = await connect(router, transport, "msgpack")
            proc = unique_uri("com.example.huge")
            await bounded(callee.session.register(lambda b: b[::-1], proc), "REGISTERED")
            blob = bytes((i * 31 + 7) % 256 for i in range(900 * 1024))
            res = await bounded(caller.session.call(proc, blob), "RESULT", timeout=30)
            assert type(res) is bytes and res == blob[::-1]
        finally:
            await close_all(caller, callee)

    run(scenario())


@pytest.mark.parametrize("transport", ["websocket_tcp", "websocket_unix"])
def test_websocket_message_over_the_size_limit_is_answered_or_closed_with_1009(router, transport):
    """A 17 MB WAMP message: the router either handles it (here: replies
    ERROR no_such_procedure) or, if it is over its limit, fails the
    WebSocket connection with close code 1009 (RFC 6455 7.4.1, "message too
    big") -- not a plain 1000 normal closure, which tells the client
    nothing (Autobahn|Python then leaves the call pending forever)."""
    from autobahn.asyncio.websocket import WebSocketClientFactory, WebSocketClientProtocol

    async def scenario():
        loop = asyncio.get_running_loop()
        opened, welcomed, closed, reply = (loop.create_future() for _ in range(4))

        class Probe(WebSocketClientProtocol):
            def onOpen(self):
                opened.set_result(self)

            def onMessage(self, payload, isBinary):
                msg = payload.decode()
                if not welcomed.done():
                    welcomed.set_result(msg)
                elif not reply.done():
                    reply.set_result(msg)

            def onClose(self, wasClean, code, reason):
                if not closed.done():
                    closed.set_result((code, reason))

        url = router.ws_url if transport == "websocket_tcp" else "ws://localhost/ws"
        factory = WebSocketClientFactory(url, protocols=["wamp.2.json"])
        factory.protocol = Probe
        factory.setProtocolOptions(maxMessagePayloadSize=0, maxFramePayloadSize=0)
        if transport == "websocket_tcp":
            conn = loop.create_connection(factory, "127.0.0.1", router.port)
        else:
            conn = loop.create_unix_connection(factory, router.unix_path)
        await bounded(conn, "TCP connect")
        proto = await bounded(opened, "WebSocket open")
        try:
            proto.sendMessage(b'[1,"realm1",{"roles":{"caller":{}}}]')
            welcome = await bounded(welcomed, "WELCOME")
            assert welcome.startswith("[2,"), welcome
            big = '[48,1,{},"com.example.no_such.procedure",["' + "x" * (17 * 1024 * 1024) + '"]]'
            proto.sendMessage(big.encode())
            done, _ = await asyncio.wait({reply, closed}, timeout=20, return_when=asyncio.FIRST_COMPLETED)
            assert done, "router neither answered nor closed within 20s"
            if reply in done:
                assert reply.result().startswith("[8,48,1,"), reply.result()[:200]
            else:
                code, reason = closed.result()
                assert code == 1009, f"router closed the WebSocket with code {code} ({reason!r}), expected 1009"
        finally:
            proto.transport.abort() if proto.transport else None

    run(scenario())
