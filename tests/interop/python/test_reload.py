"""Hot config reload, as an operator uses it: edit the node's config.json, then SIGHUP the node,
run ``switchboard reload DIR``, or call ``switchboard.config.reload`` on the management realm.

Each test changes the config under live Autobahn|Python clients and checks one row of the
hot/restart table: a permission granted mid-session applies to the next call of the same
session (no reconnect) and a revoked one to the next call too; a removed role closes its
sessions (``wamp.close.killed``); a removed realm says GOODBYE (``wamp.close.system_shutdown``)
and an added one is joinable; a new transport accepts connections and a removed one stops
accepting; a changed transport's auth applies to new HELLOs; a config that fails its checks
changes nothing and says where and why; keys that need a restart are reported, not applied.
"""

from __future__ import annotations

import asyncio
import copy
import os
import signal

import pytest
from autobahn.wamp.exception import ApplicationError

from interop_client import SessionRefused, bounded, close_all, connect, connect_with, eventually, run, transport_config
from interop_router import free_tcp_port, launch_router, make_node_dir, run_router_command

if os.environ.get("INTEROP_ROUTER", "switchboard") != "switchboard":
    pytest.skip("hot reload is Switchboard's (Crossbar.io has none)", allow_module_level=True)

ALL = {"call": True, "register": True, "publish": True, "subscribe": True}


def base_config(port: int) -> dict:
    return {
        "version": 2,
        "controller": {"management": {"realm": "mgmt"}},
        "workers": [{
            "type": "router",
            "realms": [
                {"name": "realm1", "roles": [
                    {"name": "backend", "permissions": [{"uri": "com.example.", "match": "prefix", "allow": ALL}]},
                    {"name": "user", "permissions": [
                        {"uri": "com.example.public.", "match": "prefix", "allow": {"call": True}}]},
                    {"name": "guest", "permissions": [
                        {"uri": "com.example.public.", "match": "prefix", "allow": {"call": True}}]},
                ]},
                {"name": "old", "roles": [{"name": "backend", "permissions": [
                    {"uri": "", "match": "prefix", "allow": ALL}]}]},
                {"name": "mgmt", "roles": [
                    {"name": "mgmt-read", "permissions": [
                        {"uri": "switchboard.config.get", "allow": {"call": True}},
                        {"uri": "switchboard.config.check", "allow": {"call": True}},
                        {"uri": "switchboard.config.on_reload", "allow": {"subscribe": True}}]},
                    {"name": "mgmt-admin", "permissions": [
                        {"uri": "switchboard.", "match": "prefix", "allow": {"call": True, "subscribe": True}}]},
                ]},
            ],
            "transports": [{
                "type": "universal",
                "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
                "rawsocket": {},
                "websocket": {"ws": {"type": "websocket", "auth": {
                    "anonymous": {"type": "static", "role": "backend"},
                    "ticket": {"type": "static", "principals": {
                        "joe": {"ticket": "joe-secret", "role": "user"},
                        "gus": {"ticket": "gus-secret", "role": "guest"},
                        "viewer": {"ticket": "viewer-secret", "role": "mgmt-read"},
                        "operator": {"ticket": "operator-secret", "role": "mgmt-admin"}}}}}},
            }],
        }],
    }


def realm(config: dict, name: str) -> dict:
    return next(r for r in config["workers"][0]["realms"] if r["name"] == name)


def role(config: dict, realm_name: str, role_name: str) -> dict:
    return next(r for r in realm(config, realm_name)["roles"] if r["name"] == role_name)


def ticket(authid: str) -> dict:
    return {"ticket": {"authid": authid, "ticket": f"{authid}-secret"}}


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


def rewrite(node, config: dict) -> None:
    node.config = config
    node.nd.write_config(config)


def reload_cli(node):
    return run_router_command(node.nd, "reload", timeout=60)


async def backend(node):
    """A callee of com.example.public.echo and com.example.secret.echo on realm1."""
    callee = await connect(node, "websocket_tcp", "json", realm="realm1")
    await callee.session.register(lambda x: x, "com.example.public.echo")
    await callee.session.register(lambda x: f"secret {x}", "com.example.secret.echo")
    return callee


def test_a_permission_granted_mid_session_applies_to_the_next_call_without_a_reconnect(node):
    """SIGHUP after adding a permission to a role: the same session's next call is allowed; after
    taking it away again, the next call is refused (no decision survives from the cache)."""

    async def scenario():
        clients = []
        try:
            callee = await backend(node)
            joe = await connect(node, "websocket_tcp", "json", realm="realm1", authentication=ticket("joe"))
            clients = [callee, joe]
            session_id = joe.session.session_id
            assert await bounded(joe.session.call("com.example.public.echo", 1), "public") == 1
            with pytest.raises(ApplicationError) as denied:
                await bounded(joe.session.call("com.example.secret.echo", 1), "secret before")
            assert denied.value.error == "wamp.error.not_authorized"

            config = copy.deepcopy(node.config)
            role(config, "realm1", "user")["permissions"].append(
                {"uri": "com.example.secret.", "match": "prefix", "allow": {"call": True}})
            rewrite(node, config)
            os.kill(node.proc.pid, signal.SIGHUP)
            await eventually(lambda: "realm \"realm1\": roles replaced" in node.log_tail(), "the reload in the log",
                             timeout=20)
            assert await bounded(joe.session.call("com.example.secret.echo", 2), "secret after") == "secret 2"
            assert joe.session.session_id == session_id and not joe.left.done()

            config = copy.deepcopy(node.config)
            role(config, "realm1", "user")["permissions"].pop()
            rewrite(node, config)
            result = reload_cli(node)
            assert result.returncode == 0, result.describe()
            assert 'applied: realm "realm1": roles replaced' in result.output, result.describe()
            with pytest.raises(ApplicationError) as denied:
                await bounded(joe.session.call("com.example.secret.echo", 3), "secret revoked")
            assert denied.value.error == "wamp.error.not_authorized"
            assert await bounded(joe.session.call("com.example.public.echo", 4), "public still") == 4
            assert joe.session.session_id == session_id and not joe.left.done()
        finally:
            await close_all(*clients)

    run(scenario())


def test_a_removed_role_and_a_removed_realm_close_their_sessions_and_an_added_realm_is_joinable(node):
    async def scenario():
        clients = []
        try:
            gus = await connect(node, "websocket_tcp", "json", realm="realm1", authentication=ticket("gus"))
            joe = await connect(node, "websocket_tcp", "json", realm="realm1", authentication=ticket("joe"))
            old = await connect(node, "websocket_tcp", "msgpack", realm="old")
            clients = [gus, joe, old]
            with pytest.raises(SessionRefused):
                await connect(node, "websocket_tcp", "json", realm="new")

            config = copy.deepcopy(node.config)
            realm(config, "realm1")["roles"] = [r for r in realm(config, "realm1")["roles"] if r["name"] != "guest"]
            # The ticket principal of the removed role goes too: a principal's role must exist.
            del config["workers"][0]["transports"][0]["websocket"]["ws"]["auth"]["ticket"]["principals"]["gus"]
            config["workers"][0]["realms"] = [r for r in config["workers"][0]["realms"] if r["name"] != "old"]
            config["workers"][0]["realms"].append({"name": "new", "roles": [
                {"name": "backend", "permissions": [{"uri": "", "match": "prefix", "allow": ALL}]}]})
            rewrite(node, config)
            result = reload_cli(node)
            assert result.returncode == 0, result.describe()
            assert 'applied: realm "realm1": roles replaced (1 session(s) of removed roles closed)' in result.output, \
                result.describe()
            assert 'applied: realm "new" added' in result.output, result.describe()
            assert 'applied: realm "old" removed (1 session(s) closed)' in result.output, result.describe()

            assert (await gus.wait_left()).reason == "wamp.close.killed"
            assert (await old.wait_left()).reason == "wamp.close.system_shutdown"
            assert not joe.left.done()
            with pytest.raises(ApplicationError) as missing:
                await bounded(joe.session.call("com.example.public.nothing"), "joe still routed")
            assert missing.value.error == "wamp.error.no_such_procedure"

            new = await connect(node, "websocket_tcp", "cbor", realm="new")
            clients.append(new)
            await new.session.register(lambda: "hi", "com.example.hi")
            assert await bounded(new.session.call("com.example.hi"), "new realm routes") == "hi"
            with pytest.raises(SessionRefused):
                await connect(node, "websocket_tcp", "json", realm="old")
        finally:
            await close_all(*clients)

    run(scenario())


def test_transports_start_stop_and_change_auth_while_clients_stay_connected(node):
    second = free_tcp_port()

    async def scenario():
        clients = []
        try:
            first = await connect(node, "websocket_tcp", "json", realm="realm1")
            clients = [first]
            with pytest.raises(SessionRefused):
                await connect(node, "websocket_tcp", "json", realm="realm1", authentication=ticket("ann"))

            # A new transport, and a new ticket principal on the existing one.
            config = copy.deepcopy(node.config)
            config["workers"][0]["transports"].append({
                "type": "websocket",
                "endpoint": {"type": "tcp", "port": second, "interface": "127.0.0.1"},
                "auth": {"anonymous": {"type": "static", "role": "backend"}},
            })
            principals = config["workers"][0]["transports"][0]["websocket"]["ws"]["auth"]["ticket"]["principals"]
            principals["ann"] = {"ticket": "ann-secret", "role": "user"}
            rewrite(node, config)
            result = reload_cli(node)
            assert result.returncode == 0, result.describe()
            assert f"applied: transport tcp:127.0.0.1:{second} added: listening" in result.output, result.describe()
            assert f"applied: transport tcp:127.0.0.1:{node.port}: new connections get its new settings" \
                in result.output, result.describe()

            ann = await connect(node, "websocket_tcp", "json", realm="realm1", authentication=ticket("ann"))
            clients.append(ann)
            assert ann.join_details.authrole == "user"
            cfg = {"type": "websocket", "url": f"ws://127.0.0.1:{second}", "serializers": ["json"]}
            on_second = await connect_with(cfg, "websocket_tcp", "json", realm="realm1")
            clients.append(on_second)
            await on_second.session.register(lambda: "second", "com.example.public.where")
            assert await bounded(ann.session.call("com.example.public.where"), "across transports") == "second"

            # Remove it again: it accepts no new connection, the one it has goes on.
            config = copy.deepcopy(node.config)
            config["workers"][0]["transports"].pop()
            rewrite(node, config)
            result = reload_cli(node)
            assert result.returncode == 0, result.describe()
            assert f"applied: transport tcp:127.0.0.1:{second} removed" in result.output, result.describe()
            with pytest.raises((SessionRefused, TimeoutError, OSError)):
                await connect_with(cfg, "websocket_tcp", "json", realm="realm1")
            assert await bounded(first.session.call("com.example.public.where"), "old connection") == "second"
            assert not first.left.done() and not on_second.left.done()
        finally:
            await close_all(*clients)

    run(scenario())


def test_a_config_that_fails_its_checks_changes_nothing_and_says_where_and_why(node):
    async def scenario():
        clients = []
        try:
            callee = await backend(node)
            joe = await connect(node, "websocket_tcp", "json", realm="realm1", authentication=ticket("joe"))
            clients = [callee, joe]
            running = copy.deepcopy(node.config)

            # A permission that would allow the call, and a principal whose role does not exist.
            config = copy.deepcopy(running)
            role(config, "realm1", "user")["permissions"].append(
                {"uri": "com.example.secret.", "match": "prefix", "allow": {"call": True}})
            principals = config["workers"][0]["transports"][0]["websocket"]["ws"]["auth"]["ticket"]["principals"]
            principals["eve"] = {"ticket": "eve-secret", "role": "nobody"}
            rewrite(node, config)
            result = reload_cli(node)
            assert result.returncode == 1, result.describe()
            assert "the config was not applied, nothing changed" in result.output, result.describe()
            assert f"{node.nd.config_path}:" in result.output and "nobody" in result.output, result.describe()
            with pytest.raises(ApplicationError) as denied:
                await bounded(joe.session.call("com.example.secret.echo", 1), "still denied")
            assert denied.value.error == "wamp.error.not_authorized"

            # Not JSON at all.
            node.nd.config_path.write_text('{"version": 2, "workers": [')
            result = reload_cli(node)
            assert result.returncode == 1 and f"{node.nd.config_path}:1:" in result.output, result.describe()

            # A new transport on a port that is taken: nothing else of the config is applied.
            config = copy.deepcopy(running)
            role(config, "realm1", "user")["permissions"].append(
                {"uri": "com.example.secret.", "match": "prefix", "allow": {"call": True}})
            taken = copy.deepcopy(config["workers"][0]["transports"][0])
            taken["endpoint"]["interface"] = "0.0.0.0"
            config["workers"][0]["transports"].append(taken)
            rewrite(node, config)
            result = reload_cli(node)
            assert result.returncode == 1 and "cannot listen on" in result.output, result.describe()
            with pytest.raises(ApplicationError):
                await bounded(joe.session.call("com.example.secret.echo", 1), "still denied")
            assert not joe.left.done()
            assert node.proc.poll() is None
        finally:
            await close_all(*clients)

    run(scenario())


def test_restart_only_keys_are_reported_and_not_applied(node):
    config = copy.deepcopy(node.config)
    config["controller"]["id"] = "renamed"
    realm(config, "realm1")["store"] = {"type": "memory"}
    # The management API moves to another realm: the one it is on stays until the restart.
    config["controller"]["management"]["realm"] = "ops"
    realm(config, "mgmt")["name"] = "ops"
    rewrite(node, config)
    result = reload_cli(node)
    assert result.returncode == 0, result.describe()
    assert "needs a restart: controller: changed" in result.output, result.describe()
    assert 'needs a restart: workers[0].realms[0].store: realm "realm1" changed' in result.output, result.describe()
    assert 'realm "mgmt" serves the management API: it goes at a restart' in result.output, result.describe()
    assert 'applied: realm "ops" added' in result.output, result.describe()

    async def still_served():
        operator = await connect(node, "websocket_tcp", "json", realm="mgmt", authentication=ticket("operator"))
        try:
            status = (await bounded(operator.session.call("switchboard.node.get_status"), "status")).kwresults
            assert status["pid"] == node.proc.pid
        finally:
            await close_all(operator)

    run(still_served())


def test_the_management_api_reloads_checks_and_shows_the_config_with_secrets_masked(node):
    async def scenario():
        clients = []
        try:
            viewer = await connect(node, "websocket_tcp", "json", realm="mgmt", authentication=ticket("viewer"))
            operator = await connect(node, "websocket_tcp", "json", realm="mgmt", authentication=ticket("operator"))
            clients = [viewer, operator]
            reports = []
            await viewer.session.subscribe(lambda **kw: reports.append(kw), "switchboard.config.on_reload")

            shown = (await bounded(viewer.session.call("switchboard.config.get"), "config.get")).kwresults
            principals = shown["config"]["workers"][0]["transports"][0]["websocket"]["ws"]["auth"]["ticket"][
                "principals"]
            assert principals["joe"] == {"ticket": "***", "role": "user"}, principals
            assert "joe-secret" not in repr(shown)
            assert shown["file"] == str(node.nd.config_path)

            # Checking a text tells what a reload would do, and does nothing.
            import json
            config = copy.deepcopy(node.config)
            config["workers"][0]["realms"].append({"name": "checked", "roles": [{"name": "backend", "permissions": []}]})
            checked = (await bounded(viewer.session.call("switchboard.config.check", json.dumps(config)),
                                     "config.check")).kwresults
            assert checked["errors"] == [] and checked["applied"] == ['would be applied: realm "checked" added'], checked
            bad = (await bounded(viewer.session.call("switchboard.config.check", "{"), "check bad")).kwresults
            assert bad["errors"], bad
            # A checked text never reads the node's environment back.
            leaky = copy.deepcopy(config)
            leaky["workers"][0]["realms"][-1]["name"] = "${HOME}"
            leak = (await bounded(viewer.session.call("switchboard.config.check", json.dumps(leaky)),
                                  "check env")).kwresults
            assert leak["errors"] and os.environ["HOME"] not in repr(leak), leak
            assert any("HOME" in e and "not set" in e for e in leak["errors"]), leak
            with pytest.raises(SessionRefused):
                await connect(node, "websocket_tcp", "json", realm="checked")

            with pytest.raises(ApplicationError) as denied:
                await bounded(viewer.session.call("switchboard.config.reload"), "reload as viewer")
            assert denied.value.error == "wamp.error.not_authorized"

            rewrite(node, config)
            report = (await bounded(operator.session.call("switchboard.config.reload"), "reload")).kwresults
            assert report["applied"] == ['realm "checked" added'] and report["errors"] == [], report
            await eventually(lambda: reports, "switchboard.config.on_reload")
            assert reports[-1]["applied"] == ['realm "checked" added'], reports
            joined = await connect(node, "websocket_tcp", "json", realm="checked")
            clients.append(joined)
            last = (await bounded(viewer.session.call("switchboard.config.get"), "config.get")).kwresults["last_reload"]
            assert last["applied"] == ['realm "checked" added'], last
        finally:
            await close_all(*clients)

    run(scenario())


def test_a_renewed_certificate_is_served_to_new_handshakes_after_a_reload():
    """The certificate files are replaced in place (as certbot renews them) and the config is
    unchanged: a reload makes new TLS handshakes get the new certificate, while a session that
    connected before keeps going."""
    import socket
    import ssl

    from cryptography import x509

    import tls_material

    nd = make_node_dir("switchboard")
    port = free_tcp_port()
    ca = tls_material.CA()
    first = ca.issue_server_cert()
    key = tls_material.write(nd.node_dir / "server.key", first.key_pem())
    cert = tls_material.write(nd.node_dir / "server.crt", first.cert_pem())
    config = {
        "version": 2,
        "workers": [{
            "type": "router",
            "realms": [{"name": "realm1", "roles": [{"name": "anonymous", "permissions": [
                {"uri": "com.example.", "match": "prefix", "allow": ALL}]}]}],
            "transports": [{
                "type": "websocket",
                "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1",
                             "tls": {"key": key.name, "certificate": cert.name}},
            }],
        }],
    }
    router = launch_router(nd, config, [port])
    router.nd = nd

    def served_serial() -> int:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ca.client_context().wrap_socket(raw, server_hostname="localhost") as tls:
                return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number

    async def scenario():
        tls_cfg = {"type": "websocket", "url": f"wss://localhost:{port}", "serializers": ["json"],
                   "endpoint": {"type": "tcp", "host": "localhost", "port": port, "tls": ca.client_context()}}
        before = await connect_with(tls_cfg, "websocket_tls", "json", realm="realm1")
        try:
            assert served_serial() == first.cert.serial_number
            renewed = ca.issue_server_cert()
            tls_material.write(key, renewed.key_pem())
            tls_material.write(cert, renewed.cert_pem())
            assert served_serial() == first.cert.serial_number  # not before the reload
            result = reload_cli(router)
            assert result.returncode == 0, result.describe()
            assert f"applied: transport tcp:127.0.0.1:{port}: new connections get its new settings" in result.output, \
                result.describe()
            assert served_serial() == renewed.cert.serial_number
            await before.session.register(lambda: "still here", "com.example.still")
            assert await bounded(before.session.call("com.example.still"), "old session") == "still here"
        finally:
            await close_all(before)

    try:
        run(scenario())
    finally:
        router.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def test_guest_workers_are_started_stopped_and_restarted_by_a_reload(node):
    """A guest added to the config starts, a changed one is restarted with its new config, a
    removed one is stopped; the management API and the log show it, and nothing else restarts."""
    marker = node.nd.node_dir / "guest-runs"

    def guest(word: str) -> dict:
        return {"type": "guest", "id": "echoer", "executable": "/bin/sh",
                "arguments": ["-c", f"echo {word} >> '{marker}'; echo started {word}; exec sleep 600"]}

    async def scenario():
        operator = await connect(node, "websocket_tcp", "json", realm="mgmt", authentication=ticket("operator"))
        client = await connect(node, "websocket_tcp", "json", realm="realm1")
        try:
            async def echoer():
                workers = await operator.session.call("switchboard.worker.list")
                return next((w for w in workers if w["id"] == "echoer"), None)

            config = copy.deepcopy(node.config)
            config["workers"].append(guest("one"))
            rewrite(node, config)
            report = (await bounded(operator.session.call("switchboard.config.reload"), "add")).kwresults
            assert report["applied"] == ['guest worker "echoer" added: started'], report
            await eventually(lambda: marker.exists() and marker.read_text() == "one\n", "the guest ran")
            first = await echoer()
            for _ in range(100):
                if first and first["state"] == "running":
                    break
                await asyncio.sleep(0.05)
                first = await echoer()
            assert first["state"] == "running" and first["pid"], first

            config = copy.deepcopy(node.config)
            config["workers"][-1] = guest("two")
            rewrite(node, config)
            report = (await bounded(operator.session.call("switchboard.config.reload"), "change")).kwresults
            assert report["applied"] == ['guest worker "echoer" restarted with its new config'], report
            # The old process had exited before the reload answered: the two never ran together.
            assert not alive(first["pid"]), first
            await eventually(lambda: marker.read_text() == "one\ntwo\n", "the guest ran with its new config")
            second = await echoer()
            assert second["pid"] != first["pid"], (first, second)

            config = copy.deepcopy(node.config)
            config["workers"].pop()
            rewrite(node, config)
            report = (await bounded(operator.session.call("switchboard.config.reload"), "remove")).kwresults
            assert report["applied"] == ['guest worker "echoer" removed: stopped'], report
            assert await echoer() is None
            assert not alive(second["pid"]), second
            assert not client.left.done() and not operator.left.done()
        finally:
            await close_all(operator, client)

    run(scenario())


def test_a_role_given_a_dynamic_authorizer_by_a_reload_asks_it_from_the_next_action(node):
    async def scenario():
        callee = await backend(node)
        asked = []

        def authorize(session, uri, action, options=None):
            asked.append((uri, action))
            return uri.startswith("com.example.secret.")

        await callee.session.register(authorize, "com.example.authorize")
        joe = await connect(node, "websocket_tcp", "json", realm="realm1", authentication=ticket("joe"))
        try:
            with pytest.raises(ApplicationError):
                await bounded(joe.session.call("com.example.secret.echo", 1), "static: denied")
            config = copy.deepcopy(node.config)
            role(config, "realm1", "user").pop("permissions")
            role(config, "realm1", "user")["authorizer"] = "com.example.authorize"
            rewrite(node, config)
            result = reload_cli(node)
            assert result.returncode == 0, result.describe()
            assert await bounded(joe.session.call("com.example.secret.echo", 2), "dynamic: allowed") == "secret 2"
            with pytest.raises(ApplicationError) as denied:
                await bounded(joe.session.call("com.example.public.echo", 3), "dynamic: denied")
            assert denied.value.error == "wamp.error.not_authorized"
            assert ("com.example.secret.echo", "call") in asked and not joe.left.done()
        finally:
            await close_all(callee, joe)

    run(scenario())
