"""Realms on demand: a realm entry with ``template`` covers realm names (exactly, by prefix, or
all of them); the first client that joins a covered name creates that realm with the template's
roles, it shows in the management API while it lives, and it goes once it has had no session for
the template's ``linger``. Names no template covers still get ``wamp.error.no_such_realm``, and
realms created from different names are separate routing domains.
"""

from __future__ import annotations

import asyncio
import os

import pytest
from autobahn.wamp.exception import ApplicationError

from interop_client import SessionRefused, bounded, close_all, connect, run
from interop_router import free_tcp_port, launch_router, make_node_dir, run_router_command

if os.environ.get("INTEROP_ROUTER", "switchboard") != "switchboard":
    pytest.skip("realm templates are Switchboard's", allow_module_level=True)

ALL = {"call": True, "register": True, "publish": True, "subscribe": True}


@pytest.fixture(scope="module")
def node():
    nd = make_node_dir("switchboard")
    port = free_tcp_port()
    config = {
        "version": 2,
        "controller": {"management": {"realm": "mgmt"}},
        "workers": [{
            "type": "router",
            "realms": [
                {"name": "tenant.", "template": {"match": "prefix", "linger": 1},
                 "roles": [{"name": "anonymous", "permissions": [
                     {"uri": "com.example.", "match": "prefix", "allow": ALL}]}]},
                {"name": "scratch", "template": {"match": "exact"},
                 "roles": [{"name": "anonymous", "permissions": [
                     {"uri": "", "match": "prefix", "allow": {"call": True}}]}]},
                {"name": "mgmt", "roles": [{"name": "anonymous", "permissions": [
                    {"uri": "switchboard.", "match": "prefix", "allow": {"call": True, "subscribe": True}}]}]},
            ],
            "transports": [{
                "type": "websocket",
                "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
            }],
        }],
    }
    router = launch_router(nd, config, [port])
    try:
        yield router
    finally:
        router.close()


def test_a_realm_a_template_covers_is_created_on_first_join_and_removed_when_empty(node):
    async def scenario():
        ops = await connect(node, "websocket_tcp", "json", realm="mgmt")
        clients = [ops]
        try:
            created = []
            await ops.session.subscribe(lambda details: created.append(details),
                                        "switchboard.realm.tenant.acme.meta.session.on_join")

            async def realm_names():
                return [r["name"] for r in await ops.session.call("switchboard.realm.list")]

            assert "tenant.acme" not in await realm_names()
            acme = await connect(node, "websocket_tcp", "json", realm="tenant.acme")
            acme2 = await connect(node, "websocket_tcp", "cbor", realm="tenant.acme")
            other = await connect(node, "websocket_tcp", "json", realm="tenant.other")
            clients += [acme, acme2, other]
            assert acme.join_details.realm == "tenant.acme" and acme.join_details.authrole == "anonymous"
            assert {"tenant.acme", "tenant.other"} <= set(await realm_names())

            # The template's roles apply; each created realm routes on its own.
            await acme.session.register(lambda: "acme", "com.example.who")
            assert await bounded(acme2.session.call("com.example.who"), "same realm") == "acme"
            with pytest.raises(ApplicationError) as missing:
                await bounded(other.session.call("com.example.who"), "other realm")
            assert missing.value.error == "wamp.error.no_such_procedure"
            with pytest.raises(ApplicationError) as denied:
                await bounded(acme.session.call("wamp.session.count"), "not allowed")
            assert denied.value.error == "wamp.error.not_authorized"

            # Its meta events reach the management realm like a configured realm's.
            for _ in range(100):
                if created:
                    break
                late = await connect(node, "websocket_tcp", "json", realm="tenant.acme")
                await close_all(late)
                await asyncio.sleep(0.05)
            assert created and created[-1]["authrole"] == "anonymous", created

            # Empty for its linger (1 s): removed; the other stays while it has a session.
            await close_all(acme, acme2)
            for _ in range(60):
                if "tenant.acme" not in await realm_names():
                    break
                await asyncio.sleep(0.1)
            names = await realm_names()
            assert "tenant.acme" not in names and "tenant.other" in names, names

            # Joining the name again creates it afresh: nothing of the old one is left.
            again = await connect(node, "websocket_tcp", "json", realm="tenant.acme")
            clients.append(again)
            with pytest.raises(ApplicationError) as gone:
                await bounded(again.session.call("com.example.who"), "fresh realm")
            assert gone.value.error == "wamp.error.no_such_procedure"
        finally:
            await close_all(*clients)

    run(scenario())


def test_an_exact_template_and_names_no_template_covers(node):
    async def scenario():
        scratch = await connect(node, "websocket_tcp", "json", realm="scratch")
        try:
            assert scratch.join_details.realm == "scratch"
            for name in ("scratch2", "tenant", "nowhere"):
                with pytest.raises(SessionRefused) as refused:
                    await connect(node, "websocket_tcp", "json", realm=name)
                assert refused.value.details.reason == "wamp.error.no_such_realm", name
        finally:
            await close_all(scratch)

    run(scenario())


def test_a_reload_replaces_the_templates_and_realms_they_made_stay_until_empty():
    """Templates are replaced together by a reload: a name a new template covers is joinable at
    once, a name only the removed template covered is refused from then on, and a realm the old
    template created keeps its sessions until they leave."""
    nd = make_node_dir("switchboard")
    port = free_tcp_port()

    def config(prefix: str) -> dict:
        return {"version": 2, "workers": [{
            "type": "router",
            "realms": [{"name": prefix, "template": {"match": "prefix"},
                        "roles": [{"name": "anonymous", "permissions": [
                            {"uri": "com.example.", "match": "prefix", "allow": ALL}]}]}],
            "transports": [{"type": "websocket", "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"}}],
        }]}

    router = launch_router(nd, config("team."), [port])
    try:
        async def scenario():
            old = await connect(router, "websocket_tcp", "json", realm="team.red")
            clients = [old]
            try:
                with pytest.raises(SessionRefused):
                    await connect(router, "websocket_tcp", "json", realm="org.blue")
                nd.write_config(config("org."))
                result = run_router_command(nd, "reload", timeout=60)
                assert result.returncode == 0, result.describe()
                assert "realm templates replaced" in result.output, result.describe()
                new = await connect(router, "websocket_tcp", "json", realm="org.blue")
                clients.append(new)
                await new.session.register(lambda: "blue", "com.example.where")
                assert await bounded(new.session.call("com.example.where"), "the new template's realm") == "blue"
                with pytest.raises(SessionRefused) as refused:
                    await connect(router, "websocket_tcp", "json", realm="team.green")
                assert refused.value.details.reason == "wamp.error.no_such_realm"
                # The realm the old template made goes on for the session it has.
                await old.session.register(lambda: "red", "com.example.where")
                assert await bounded(old.session.call("com.example.where"), "the old realm") == "red"
                assert not old.left.done()
            finally:
                await close_all(*clients)

        run(scenario())
    finally:
        router.close()
