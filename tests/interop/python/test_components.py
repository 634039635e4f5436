"""Python application components hosted by the node, configured as Crossbar configures them: a
router worker's ``components`` of ``"type": "class"`` with ``options.pythonpath``, and a
``container`` worker's components with their own ``transport``. The node runs each class
(asyncio or Twisted) in a supervised Python process; a router worker's component joins with the
configured realm and role, a container's through its transport. Autobahn|Python clients call what
they register and get what they publish; a component whose ``onJoin`` raises is restarted and its
traceback is in the node's log.

The components run under ``SWITCHBOARD_PYTHON``, set to this suite's Python (which has Autobahn
and Twisted).
"""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap

import pytest
from autobahn.wamp.exception import ApplicationError

from interop_client import bounded, close_all, connect, eventually, run
from interop_router import free_tcp_port, launch_router, make_node_dir, run_router_command

if os.environ.get("INTEROP_ROUTER", "switchboard") != "switchboard":
    pytest.skip("the node's log and SWITCHBOARD_PYTHON are Switchboard's", allow_module_level=True)

ASYNCIO_BACKEND = '''
import asyncio
from autobahn.asyncio.wamp import ApplicationSession


class Backend(ApplicationSession):
    async def onJoin(self, details):
        await self.register(lambda a, b: a + b, "com.example.add2")
        await self.register(lambda: [details.authid, details.authrole], "com.example.whoami")
        counter = 0
        while True:
            self.publish("com.example.oncounter", counter)
            counter += 1
            await asyncio.sleep(0.1)
'''

TWISTED_BACKEND = '''
from twisted.internet.defer import inlineCallbacks
from autobahn.twisted.wamp import ApplicationSession


class Backend(ApplicationSession):
    @inlineCallbacks
    def onJoin(self, details):
        yield self.register(lambda a, b: a * b, "com.example.mul2")
        yield self.register(lambda: self.config.extra, "com.example.twisted_extra")
        print("twisted backend ready", flush=True)
'''

CONTAINER_BACKEND = '''
from twisted.internet.defer import inlineCallbacks
from autobahn.twisted.wamp import ApplicationSession


class Echo(ApplicationSession):
    @inlineCallbacks
    def onJoin(self, details):
        yield self.register(lambda *args: [details.authrole, list(args)], "com.example.container.echo")
'''

ASYNCIO_CONTAINER_BACKEND = '''
from autobahn.asyncio.wamp import ApplicationSession


class Upper(ApplicationSession):
    async def onJoin(self, details):
        await self.register(lambda text: [details.authrole, text.upper()], "com.example.container.upper")
'''

FAILING = '''
import os
from autobahn.asyncio.wamp import ApplicationSession


class Failing(ApplicationSession):
    async def onJoin(self, details):
        with open(os.path.join(os.path.dirname(__file__), "attempts"), "a") as f:
            f.write("attempt\\n")
        raise RuntimeError("the failing component fails on purpose")
'''

ROLES = [
    {"name": "anonymous", "permissions": [
        {"uri": "com.example.", "match": "prefix",
         "allow": {"call": True, "register": False, "publish": False, "subscribe": True}},
        {"uri": "com.example.container.", "match": "prefix",
         "allow": {"call": True, "register": True, "publish": True, "subscribe": True}},
        {"uri": "wamp.", "match": "prefix",
         "allow": {"call": True, "register": False, "publish": False, "subscribe": True}}]},
    {"name": "backend", "permissions": [
        {"uri": "com.example.", "match": "prefix",
         "allow": {"call": True, "register": True, "publish": True, "subscribe": True}}]},
]


@pytest.fixture(scope="module")
def node():
    nd = make_node_dir("switchboard")
    app = nd.config_dir / "app"
    app.mkdir()
    (app / "asyncio_backend.py").write_text(textwrap.dedent(ASYNCIO_BACKEND))
    (app / "twisted_backend.py").write_text(textwrap.dedent(TWISTED_BACKEND))
    (app / "failing.py").write_text(textwrap.dedent(FAILING))
    (app / "container_backend.py").write_text(textwrap.dedent(CONTAINER_BACKEND))
    (app / "container_asyncio.py").write_text(textwrap.dedent(ASYNCIO_CONTAINER_BACKEND))
    port = free_tcp_port()
    config = {
        "version": 2,
        "workers": [{
            "type": "router",
            "options": {"pythonpath": ["app"]},
            "realms": [{"name": "realm1", "roles": ROLES}],
            "transports": [{
                "type": "universal",
                "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
                "rawsocket": {},
                "websocket": {"ws": {"type": "websocket"}},
            }],
            "components": [
                {"type": "class", "id": "aio", "classname": "asyncio_backend.Backend",
                 "realm": "realm1", "role": "backend"},
                {"type": "class", "id": "tx", "classname": "twisted_backend.Backend",
                 "realm": "realm1", "role": "backend", "extra": {"greeting": "hello", "n": [1, 2]}},
                {"type": "class", "id": "failing", "classname": "failing.Failing",
                 "realm": "realm1", "role": "backend"},
            ],
        }, {
            "type": "container",
            "options": {"pythonpath": ["app"]},
            "components": [
                {"type": "class", "id": "echo", "classname": "container_backend.Echo", "realm": "realm1",
                 "transport": {"type": "rawsocket", "serializer": "msgpack",
                               "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": port}}},
                {"type": "class", "id": "upper", "classname": "container_asyncio.Upper", "realm": "realm1",
                 "transport": {"type": "websocket", "url": f"ws://127.0.0.1:{port}/ws", "serializers": ["cbor"],
                               "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": port}}},
            ],
        }],
    }
    previous = os.environ.get("SWITCHBOARD_PYTHON")
    os.environ["SWITCHBOARD_PYTHON"] = sys.executable
    try:
        router = launch_router(nd, config, [port])
    finally:
        if previous is None:
            os.environ.pop("SWITCHBOARD_PYTHON", None)
        else:
            os.environ["SWITCHBOARD_PYTHON"] = previous
    router.app_dir = app
    try:
        yield router
    finally:
        router.close()


async def call_when_registered(session, procedure, *args):
    """Components join after the node listens: retry while the procedure is not there yet."""
    for _ in range(1500):
        try:
            return await session.call(procedure, *args)
        except ApplicationError as e:
            if e.error != "wamp.error.no_such_procedure":
                raise
        await asyncio.sleep(0.01)
    raise AssertionError(f"{procedure} was never registered")


@pytest.mark.parametrize("transport,serializer", [("websocket_tcp", "json"), ("rawsocket_tcp", "msgpack")])
def test_clients_call_and_subscribe_to_asyncio_and_twisted_components(node, transport, serializer):
    async def scenario():
        client = None
        try:
            client = await connect(node, transport, serializer)
            session = client.session
            assert await bounded(call_when_registered(session, "com.example.add2", 2, 3), "add2") == 5
            assert await bounded(call_when_registered(session, "com.example.mul2", 3, 4), "mul2") == 12
            extra = await bounded(call_when_registered(session, "com.example.twisted_extra"), "extra")
            assert extra == {"greeting": "hello", "n": [1, 2]}, extra

            counters = []
            await session.subscribe(counters.append, "com.example.oncounter")
            await eventually(lambda: len(counters) >= 2, "two counter events")
            assert counters[1] == counters[0] + 1, counters

            # The component joined with its configured role, as an ordinary session.
            authid, authrole = await bounded(call_when_registered(session, "com.example.whoami"), "whoami")
            assert (authid, authrole) == ("component:aio", "backend")
            add2 = await session.call("wamp.registration.lookup", "com.example.add2")
            [callee] = await session.call("wamp.registration.list_callees", add2)
            details = await session.call("wamp.session.get", callee)
            assert (details["authid"], details["authrole"]) == ("component:aio", "backend"), details

            # The container's component joined through its own transport, as an anonymous client.
            echo = await bounded(call_when_registered(session, "com.example.container.echo", 1, "x"), "echo")
            assert echo == ["anonymous", [1, "x"]], echo
            # An asyncio class in a container, over WebSocket with CBOR.
            upper = await bounded(call_when_registered(session, "com.example.container.upper", "hi"), "upper")
            assert upper == ["anonymous", "HI"], upper
        finally:
            await close_all(client)

    run(scenario())


def test_a_component_whose_on_join_raises_is_restarted_and_its_traceback_logged(node):
    attempts = node.app_dir / "attempts"

    async def restarted():
        await eventually(
            lambda: attempts.exists() and len(attempts.read_text().splitlines()) >= 2,
            "a second attempt of the failing component",
            timeout=30,
        )

    run(restarted())
    log = node.log_tail(400)
    assert "failing.Failing.onJoin raised" in log, log
    assert "RuntimeError: the failing component fails on purpose" in log, log
    assert "worker=failing" in log and "restarting guest worker" in log, log
    # The others are not affected.
    assert "twisted backend ready" in log, log


def test_a_reload_starts_and_stops_container_components_one_by_one():
    """Components of a container worker added to the config start at the next reload, removed ones
    stop (their registrations go with their sessions), and the others run on untouched."""
    nd = make_node_dir("switchboard")
    app = nd.config_dir / "app"
    app.mkdir()
    (app / "container_backend.py").write_text(textwrap.dedent(CONTAINER_BACKEND))
    (app / "container_asyncio.py").write_text(textwrap.dedent(ASYNCIO_CONTAINER_BACKEND))
    port = free_tcp_port()
    echo = {"type": "class", "id": "echo", "classname": "container_backend.Echo", "realm": "realm1",
            "transport": {"type": "rawsocket", "serializer": "msgpack",
                          "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": port}}}
    upper = {"type": "class", "id": "upper", "classname": "container_asyncio.Upper", "realm": "realm1",
             "transport": {"type": "websocket", "url": f"ws://127.0.0.1:{port}/ws", "serializers": ["cbor"],
                           "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": port}}}
    router_worker = {
        "type": "router",
        "realms": [{"name": "realm1", "roles": ROLES}],
        "transports": [{
            "type": "universal",
            "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
            "rawsocket": {},
            "websocket": {"ws": {"type": "websocket"}},
        }],
    }

    def config(*components):
        workers = [router_worker]
        if components:
            workers.append({"type": "container", "id": "apps", "options": {"pythonpath": ["app"]},
                            "components": list(components)})
        return {"version": 2, "workers": workers}

    previous = os.environ.get("SWITCHBOARD_PYTHON")
    os.environ["SWITCHBOARD_PYTHON"] = sys.executable
    try:
        router = launch_router(nd, config(echo), [port])
    finally:
        if previous is None:
            os.environ.pop("SWITCHBOARD_PYTHON", None)
        else:
            os.environ["SWITCHBOARD_PYTHON"] = previous

    def reload_with(*components):
        nd.write_config(config(*components))
        result = run_router_command(nd, "reload", timeout=60)
        assert result.returncode == 0, result.describe()
        return result.output

    async def gone(session, procedure):
        async def unregistered():
            return await session.call("wamp.registration.lookup", procedure) is None

        await eventually(unregistered, f"{procedure} unregistered", timeout=20)

    async def scenario():
        client = await connect(router, "websocket_tcp", "json")
        try:
            session = client.session
            assert await bounded(call_when_registered(session, "com.example.container.echo", 1), "echo") == \
                ["anonymous", [1]]
            echo_callee = await session.call("wamp.registration.lookup", "com.example.container.echo")

            output = reload_with(echo, upper)
            assert 'applied: component "upper" added: started' in output, output
            assert "echo" not in output, output
            assert await bounded(call_when_registered(session, "com.example.container.upper", "hi"), "upper") == \
                ["anonymous", "HI"]
            # The unchanged one ran on: the same registration.
            assert await session.call("wamp.registration.lookup", "com.example.container.echo") == echo_callee

            output = reload_with(upper)
            assert 'applied: component "echo" removed: stopped' in output, output
            await gone(session, "com.example.container.echo")
            assert await session.call("com.example.container.upper", "x") == ["anonymous", "X"]

            output = reload_with()
            assert 'applied: component "upper" removed: stopped' in output, output
            await gone(session, "com.example.container.upper")
            assert not client.left.done()
        finally:
            await close_all(client)

    try:
        run(scenario())
    except BaseException:
        print(router.log_tail())
        raise
    finally:
        router.close()


def test_a_reload_starts_and_stops_a_router_workers_components_one_by_one():
    """A node started without components gets a router worker's component from a reload (its
    private socket is opened then), a second one joins beside it while the first runs on with
    the ticket it has, a changed one restarts with its new config, and removed ones leave."""
    nd = make_node_dir("switchboard")
    app = nd.config_dir / "app"
    app.mkdir()
    (app / "asyncio_backend.py").write_text(textwrap.dedent(ASYNCIO_BACKEND))
    (app / "twisted_backend.py").write_text(textwrap.dedent(TWISTED_BACKEND))
    port = free_tcp_port()
    aio = {"type": "class", "id": "aio", "classname": "asyncio_backend.Backend", "realm": "realm1",
           "role": "backend"}
    tx = {"type": "class", "id": "tx", "classname": "twisted_backend.Backend", "realm": "realm1",
          "role": "backend", "extra": {"greeting": "hello"}}

    def config(*components):
        worker = {
            "type": "router",
            "options": {"pythonpath": ["app"]},
            "realms": [{"name": "realm1", "roles": ROLES}, {"name": "mgmt", "roles": [
                {"name": "anonymous", "permissions": [
                    {"uri": "switchboard.worker.", "match": "prefix", "allow": {"call": True}}]}]}],
            "transports": [{
                "type": "universal",
                "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
                "rawsocket": {},
                "websocket": {"ws": {"type": "websocket"}},
            }],
        }
        if components:
            worker["components"] = list(components)
        return {"version": 2, "controller": {"management": {"realm": "mgmt"}}, "workers": [worker]}

    previous = os.environ.get("SWITCHBOARD_PYTHON")
    os.environ["SWITCHBOARD_PYTHON"] = sys.executable
    try:
        router = launch_router(nd, config(), [port])
    finally:
        if previous is None:
            os.environ.pop("SWITCHBOARD_PYTHON", None)
        else:
            os.environ["SWITCHBOARD_PYTHON"] = previous

    def reload_with(*components):
        nd.write_config(config(*components))
        result = run_router_command(nd, "reload", timeout=60)
        assert result.returncode == 0, result.describe()
        return result.output

    async def gone(session, procedure):
        async def unregistered():
            return await session.call("wamp.registration.lookup", procedure) is None

        await eventually(unregistered, f"{procedure} unregistered", timeout=20)

    async def scenario():
        client = await connect(router, "websocket_tcp", "json")
        try:
            session = client.session
            output = reload_with(aio)
            assert 'applied: component "aio" added: started' in output, output
            assert await bounded(call_when_registered(session, "com.example.add2", 2, 3), "add2") == 5
            assert await session.call("com.example.whoami") == ["component:aio", "backend"]
            aio_registration = await session.call("wamp.registration.lookup", "com.example.add2")

            output = reload_with(aio, tx)
            assert 'applied: component "tx" added: started' in output and '"aio"' not in output, output
            assert await bounded(call_when_registered(session, "com.example.twisted_extra"), "tx") == \
                {"greeting": "hello"}
            # The first ran on, and can still join again with its ticket after a restart.
            assert await session.call("wamp.registration.lookup", "com.example.add2") == aio_registration
            operator = await connect(router, "websocket_tcp", "json", realm="mgmt")
            try:
                await bounded(operator.session.call("switchboard.worker.restart", "aio"), "restart aio")
            finally:
                await close_all(operator)

            async def rejoined():
                found = await session.call("wamp.registration.lookup", "com.example.add2")
                return found not in (None, aio_registration)

            await eventually(rejoined, "aio joined again after its restart", timeout=20)
            assert await session.call("com.example.add2", 1, 1) == 2

            output = reload_with(aio, dict(tx, extra={"greeting": "changed"}))
            assert 'applied: component "tx" restarted with its new config' in output, output

            async def changed():
                try:
                    return await session.call("com.example.twisted_extra") == {"greeting": "changed"}
                except ApplicationError:
                    return False

            await eventually(changed, "tx with its new extra", timeout=20)

            output = reload_with(dict(tx, extra={"greeting": "changed"}))
            assert 'applied: component "aio" removed: stopped' in output, output
            await gone(session, "com.example.add2")
            output = reload_with()
            assert 'applied: component "tx" removed: stopped' in output, output
            await gone(session, "com.example.twisted_extra")
            assert not client.left.done()
        finally:
            await close_all(client)

    try:
        run(scenario())
    except BaseException:
        print(router.log_tail())
        raise
    finally:
        router.close()

