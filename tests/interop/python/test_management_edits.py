"""The management API's edits of a running node, as an operator scripts them with Autobahn|Python:
``switchboard.realm.add/remove``, ``switchboard.role.list/add/remove`` and
``switchboard.transport.start/stop``.

Each edit is applied as a reload applies a changed file (checked first, all or nothing, published
as ``switchboard.config.on_reload``) under live clients: a realm added is joinable at once and a
removed one says GOODBYE to its sessions; a role added is usable from the next HELLO and a removed
one closes its sessions; a stopped transport accepts no new connection while those it has go on,
and starts again. The config file is not written: a reload from the file makes the node run what
the file says again. A read-only role is denied every edit, and an edit that fails its checks
changes nothing and says why.
"""

from __future__ import annotations

import os

import pytest
from autobahn.wamp.exception import ApplicationError

from interop_client import SessionRefused, bounded, close_all, connect, connect_with, run
from interop_router import free_tcp_port, launch_router, make_node_dir, run_router_command
from test_reload import ALL, base_config, ticket

if os.environ.get("INTEROP_ROUTER", "switchboard") != "switchboard":
    pytest.skip("the management API is Switchboard's", allow_module_level=True)


@pytest.fixture
def node():
    nd = make_node_dir("switchboard")
    port = free_tcp_port()
    config = base_config(port)
    router = launch_router(nd, config, [port])
    router.nd = nd
    router.config = config
    try:
        yield router
    finally:
        router.close()


async def operator(node):
    return await connect(node, "websocket_tcp", "json", realm="mgmt", authentication=ticket("operator"))


def test_realms_and_roles_are_added_and_removed_under_live_clients(node):
    async def scenario():
        clients = []
        try:
            admin = await operator(node)
            clients.append(admin)
            reports = []
            await admin.session.subscribe(lambda **report: reports.append(report), "switchboard.config.on_reload")
            with pytest.raises(SessionRefused):
                await connect(node, "websocket_tcp", "json", realm="shop")

            # A realm added: joinable at once, and routing.
            added = await bounded(admin.session.call("switchboard.realm.add", {
                "name": "shop",
                "roles": [{"name": "backend", "permissions": [{"uri": "", "match": "prefix", "allow": ALL}]}],
            }), "realm.add")
            assert added.kwresults["applied"] == ['realm "shop" added'], added.kwresults
            shop = await connect(node, "websocket_tcp", "cbor", realm="shop")
            clients.append(shop)
            await shop.session.register(lambda: "open", "com.shop.status")
            assert await bounded(shop.session.call("com.shop.status"), "shop routes") == "open"
            with pytest.raises(ApplicationError) as exists:
                await bounded(admin.session.call("switchboard.realm.add", {"name": "shop"}), "twice")
            assert exists.value.error == "wamp.error.invalid_argument"
            assert 'realm "shop" exists' in exists.value.args[0]

            # Roles: listed as configured, one added.
            anonymous = await connect(node, "websocket_tcp", "json", realm="realm1")
            gus = await connect(node, "websocket_tcp", "json", realm="realm1", authentication=ticket("gus"))
            clients += [anonymous, gus]
            roles = (await bounded(admin.session.call("switchboard.role.list", "realm1"), "role.list"))
            assert [r["name"] for r in roles] == ["backend", "user", "guest"]
            with pytest.raises(ApplicationError) as unknown:
                await bounded(admin.session.call("switchboard.role.list", "nowhere"), "role.list unknown")
            assert unknown.value.error == "wamp.error.no_such_realm"
            result = await bounded(admin.session.call("switchboard.role.add", "realm1", {
                "name": "auditor",
                "permissions": [{"uri": "com.example.", "match": "prefix", "allow": {"subscribe": True}}],
            }), "role.add")
            assert result.kwresults["applied"] == ['realm "realm1": roles replaced'], result.kwresults
            roles = (await bounded(admin.session.call("switchboard.role.list", "realm1"), "role.list"))
            assert [r["name"] for r in roles] == ["backend", "user", "guest", "auditor"]

            # An edit that fails the checks changes nothing and says why: gus's ticket principal
            # names the role.
            with pytest.raises(ApplicationError) as refused:
                await bounded(admin.session.call("switchboard.role.remove", "realm1", "guest"), "role.remove refused")
            assert refused.value.error == "wamp.error.invalid_argument"
            assert any("principals.gus.role: role `guest` is not defined in any realm" in line
                       for line in refused.value.args), refused.value.args
            assert refused.value.kwargs["applied"] == [], refused.value.kwargs
            roles = (await bounded(admin.session.call("switchboard.role.list", "realm1"), "role.list"))
            assert "guest" in [r["name"] for r in roles]
            assert not gus.left.done()

            # A removed role closes its sessions (the anonymous role is still defined on realm
            # "old"), the others go on.
            result = await bounded(admin.session.call("switchboard.role.remove", "realm1", "backend"), "role.remove")
            assert result.kwresults["applied"] == [
                'realm "realm1": roles replaced (1 session(s) of removed roles closed)'], result.kwresults
            assert (await anonymous.wait_left()).reason == "wamp.close.killed"
            assert not gus.left.done()

            # A removed realm says GOODBYE to its sessions and takes no more.
            result = await bounded(admin.session.call("switchboard.realm.remove", "shop"), "realm.remove")
            assert result.kwresults["applied"] == ['realm "shop" removed (1 session(s) closed)'], result.kwresults
            assert (await shop.wait_left()).reason == "wamp.close.system_shutdown"
            with pytest.raises(SessionRefused):
                await connect(node, "websocket_tcp", "json", realm="shop")
            with pytest.raises(ApplicationError) as gone:
                await bounded(admin.session.call("switchboard.realm.remove", "shop"), "realm.remove twice")
            assert gone.value.error == "wamp.error.invalid_argument"

            # Every edit published its report, the refused ones too.
            assert [bool(r["errors"]) for r in reports] == [False, True, False, True, False, False, True], reports

            # The file was not written: a reload from it brings back what it says.
            result = run_router_command(node.nd, "reload", timeout=60)
            assert result.returncode == 0, result.describe()
            assert 'applied: realm "realm1": roles replaced' in result.output, result.describe()
            again = await connect(node, "websocket_tcp", "json", realm="realm1")
            clients.append(again)
            assert again.join_details.authrole == "backend"
        finally:
            await close_all(*clients)

    run(scenario())


def test_transports_are_started_and_stopped_and_a_read_only_role_may_not(node):
    second = free_tcp_port()
    listen = f"tcp:127.0.0.1:{second}"
    on_second = {"type": "websocket", "url": f"ws://127.0.0.1:{second}", "serializers": ["json"]}

    async def scenario():
        clients = []
        try:
            admin = await operator(node)
            viewer = await connect(node, "websocket_tcp", "json", realm="mgmt", authentication=ticket("viewer"))
            clients += [admin, viewer]
            listed = (await bounded(admin.session.call("switchboard.transport.list"), "list"))
            assert [(t["listen"], t["state"]) for t in listed] == [(f"tcp:127.0.0.1:{node.port}", "listening")]

            # A new transport.
            result = await bounded(admin.session.call("switchboard.transport.start", {
                "type": "websocket",
                "endpoint": {"type": "tcp", "port": second, "interface": "127.0.0.1"},
                "auth": {"anonymous": {"type": "static", "role": "backend"}},
            }), "transport.start new")
            assert result.kwresults["applied"] == [f"transport {listen} added: listening"], result.kwresults
            first = await connect_with(on_second, "websocket_tcp", "json", realm="realm1")
            clients.append(first)
            await first.session.register(lambda: "second", "com.example.where")

            # Stopped: no new connection, the open one goes on.
            result = await bounded(admin.session.call("switchboard.transport.stop", listen), "transport.stop")
            assert result.kwresults["applied"] == [
                f"transport {listen} removed: it accepts no more connections"], result.kwresults
            with pytest.raises((SessionRefused, TimeoutError, OSError)):
                await connect_with(on_second, "websocket_tcp", "json", realm="realm1")
            assert await bounded(first.session.call("com.example.where"), "open connection") == "second"
            listed = (await bounded(admin.session.call("switchboard.transport.list"), "list"))
            assert (listen, "stopped") in [(t["listen"], t["state"]) for t in listed]

            # A read-only role may list but not act.
            for procedure, args in [("switchboard.transport.start", [listen]),
                                    ("switchboard.transport.stop", [f"tcp:127.0.0.1:{node.port}"]),
                                    ("switchboard.realm.add", [{"name": "x"}]),
                                    ("switchboard.role.remove", ["realm1", "user"])]:
                with pytest.raises(ApplicationError) as denied:
                    await bounded(viewer.session.call(procedure, *args), procedure)
                assert denied.value.error == "wamp.error.not_authorized", procedure
            may = (await bounded(admin.session.call("switchboard.access.get"), "access")).kwresults["may"]
            assert may["switchboard.transport.stop"] is True and may["switchboard.realm.add"] is True

            # Started again, where it listened.
            result = await bounded(admin.session.call("switchboard.transport.start", listen), "transport.start again")
            assert result.kwresults["applied"] == [f"transport {listen} added: listening"], result.kwresults
            back = await connect_with(on_second, "websocket_tcp", "json", realm="realm1")
            clients.append(back)
            assert await bounded(back.session.call("com.example.where"), "started again") == "second"

            # Nothing to start, and a port that is taken: errors, nothing changed.
            with pytest.raises(ApplicationError) as nothing:
                await bounded(admin.session.call("switchboard.transport.start", listen), "not stopped")
            assert "no transport was stopped" in nothing.value.args[0]
            with pytest.raises(ApplicationError) as taken:
                await bounded(admin.session.call("switchboard.transport.start", {
                    "type": "websocket",
                    "endpoint": {"type": "tcp", "port": second, "interface": "0.0.0.0"},
                    "auth": {"anonymous": {"type": "static", "role": "backend"}},
                }), "taken")
            assert "cannot listen on" in taken.value.args[0], taken.value.args
            listed = (await bounded(admin.session.call("switchboard.transport.list"), "list"))
            assert sorted(t["listen"] for t in listed) == sorted([f"tcp:127.0.0.1:{node.port}", listen])
        finally:
            await close_all(*clients)

    run(scenario())


def test_a_transport_the_file_brings_back_is_stopped_no_more(node):
    """``transport.stop`` changes the running config, not the file: the next reload from the file
    makes the transport listen again, and it is then listed once, listening, and no longer
    startable as a stopped one."""
    listen = f"tcp:127.0.0.1:{node.port}"

    async def scenario():
        admin = await operator(node)
        try:
            await bounded(admin.session.call("switchboard.transport.stop", listen), "stop")
            listed = await bounded(admin.session.call("switchboard.transport.list"), "list")
            assert [(t["listen"], t["state"]) for t in listed] == [(listen, "stopped")], listed
            with pytest.raises((SessionRefused, TimeoutError, OSError)):
                await connect(node, "websocket_tcp", "json", realm="realm1")

            result = run_router_command(node.nd, "reload", timeout=60)
            assert result.returncode == 0, result.describe()
            assert f"applied: transport {listen} added: listening" in result.output, result.describe()
            listed = await bounded(admin.session.call("switchboard.transport.list"), "list")
            assert [(t["listen"], t["state"]) for t in listed] == [(listen, "listening")], listed
            with pytest.raises(ApplicationError) as nothing:
                await bounded(admin.session.call("switchboard.transport.start", listen), "start")
            assert "no transport was stopped" in nothing.value.args[0]
            again = await connect(node, "websocket_tcp", "json", realm="realm1")
            await close_all(again)
        finally:
            await close_all(admin)

    run(scenario())
