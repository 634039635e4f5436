"""A Rust program that embeds Switchboard (examples/embed): the node and an
application component hosted in its process, reached by Autobahn|Python over
WebSocket and RawSocket.

The component registers ``com.example.add2``, ``com.example.countdown`` (with
progressive results, cancellable) and ``com.example.last_message``, and
subscribes to ``com.example.chat``, through an in-process session with the
role ``backend``; socket clients get the role ``anonymous``, which may call,
publish and subscribe under ``com.example.`` but not register. The program is
``target/debug/switchboard-embed-example`` (``EMBED_EXAMPLE_BIN`` overrides).
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from autobahn.wamp import message
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallOptions, PublishOptions

from interop_client import bounded, close_all, connect, eventually, run, spy
from interop_router import REPO_ROOT, free_tcp_port, launch_router, make_node_dir

if os.environ.get("INTEROP_ROUTER", "switchboard") != "switchboard":
    pytest.skip("the embedding example is a Switchboard program", allow_module_level=True)

ROLES = [
    {
        "name": "anonymous",
        "permissions": [
            {"uri": "com.example.", "match": "prefix",
             "allow": {"call": True, "register": False, "publish": True, "subscribe": True}},
            {"uri": "wamp.", "match": "prefix",
             "allow": {"call": True, "register": False, "publish": False, "subscribe": True}},
        ],
    },
    {
        "name": "backend",
        "permissions": [
            {"uri": "com.example.", "match": "prefix",
             "allow": {"call": True, "register": True, "publish": True, "subscribe": True}},
        ],
    },
]


def example_bin() -> Path:
    return Path(os.environ.get("EMBED_EXAMPLE_BIN", str(REPO_ROOT / "target" / "debug" / "switchboard-embed-example")))


@pytest.fixture()
def embedded():
    binary = example_bin()
    if not binary.exists():
        raise RuntimeError(f"{binary} does not exist: build it (cargo build --workspace --bins)")
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
    router = launch_router(nd, config, [port], argv=[str(binary), str(nd.node_dir), "--role", "backend"])
    try:
        yield router
    finally:
        router.close()


async def call_when_registered(session, procedure, *args, **kwargs):
    """The component registers on its own task after the node starts: retry
    while the procedure is not there yet."""

    async def attempt():
        try:
            return await session.call(procedure, *args, **kwargs)
        except ApplicationError as e:
            if e.error == "wamp.error.no_such_procedure":
                return None
            raise

    for _ in range(500):
        result = await attempt()
        if result is not None:
            return result
        await asyncio.sleep(0.01)
    raise AssertionError(f"{procedure} was never registered")


@pytest.mark.parametrize("transport,serializer", [("websocket_tcp", "json"), ("rawsocket_tcp", "msgpack")])
def test_autobahn_calls_the_hosted_component_with_progress_and_cancel_and_publishes_to_it(
    embedded, transport, serializer
):
    async def scenario():
        client = None
        try:
            client = await connect(embedded, transport, serializer)
            session = client.session
            assert await bounded(call_when_registered(session, "com.example.add2", 2, 3), "add2") == 5

            # progressive results from the component, then its final result
            progress = []
            result = await bounded(
                session.call("com.example.countdown", 3, 10, options=CallOptions(on_progress=progress.append)),
                "countdown",
            )
            assert progress == [3, 2, 1], progress
            assert result == "liftoff"

            # cancel half-way: the component's handler is interrupted and answers
            # wamp.error.canceled (mode kill makes the router wait for that answer)
            wire = spy(session)
            seen = []
            call = session.call("com.example.countdown", 1000, 20, options=CallOptions(on_progress=seen.append))
            await eventually(lambda: len(seen) >= 1, "a first progressive result")
            [sent] = wire.put(message.Call)
            session._transport.send(message.Cancel(sent.request, mode="kill"))
            with pytest.raises(ApplicationError) as cancelled:
                await bounded(call, "the cancelled call's error")
            assert cancelled.value.error == "wamp.error.canceled", cancelled.value
            assert len(seen) < 1000

            # an event published by the client reaches the component's subscription
            await bounded(
                session.publish("com.example.chat", "hello, component",
                                options=PublishOptions(acknowledge=True)),
                "PUBLISHED",
            )

            async def last():
                return await session.call("com.example.last_message")

            for _ in range(500):
                if await bounded(last(), "last_message") == "hello, component":
                    break
                await asyncio.sleep(0.01)
            assert await last() == "hello, component"

            # the component's session is listed and owns its registrations
            sessions = await bounded(session.call("wamp.session.list"), "session.list")
            authids = []
            for sid in sessions:
                details = await session.call("wamp.session.get", sid)
                authids.append((details["authid"], details["authrole"], details["authmethod"]))
            assert ("example-backend", "backend", "trusted") in authids, authids
            add2 = await session.call("wamp.registration.lookup", "com.example.add2")
            callees = await session.call("wamp.registration.list_callees", add2)
            backend = [sid for sid in sessions if (await session.call("wamp.session.get", sid))["authid"] == "example-backend"]
            assert callees == backend, (callees, backend)

            # a socket client's role may not register here: the component's role may
            with pytest.raises(ApplicationError) as denied:
                await session.register(lambda: None, "com.example.add2.mine")
            assert denied.value.error == "wamp.error.not_authorized"
        finally:
            await close_all(client)

    run(scenario())


def test_the_embedding_program_says_goodbye_and_exits_zero_on_sigterm(embedded):
    async def scenario():
        client = await connect(embedded, "websocket_tcp", "cbor")
        try:
            assert await bounded(call_when_registered(client.session, "com.example.add2", 1, 1), "add2") == 2
            embedded.proc.send_signal(signal.SIGTERM)
            details = await client.wait_left(timeout=10)
            assert details.reason == "wamp.close.system_shutdown", details
        finally:
            await close_all(client)

    run(scenario())
    assert embedded.proc.wait(timeout=10) == 0
    log = embedded.log_tail(80)
    # the component's in-process session was told GOODBYE too, like every session
    assert "component session ended: router said GOODBYE wamp.close.system_shutdown" in log, log
