"""Crossbar's ``"type": "function"`` authenticators, as Crossbar configures them: ``create`` names
a Python function (``module.function`` on the router worker's ``options.pythonpath``) that gets
the section's ``config`` and returns ``authenticate(realm, authid, details)``; both may be
coroutines. The node runs each in a helper Python process (under ``SWITCHBOARD_PYTHON``) and asks
it about every HELLO of its sections. Autobahn|Python clients log in with WAMP-Ticket and
WAMP-CRA through such functions; an ApplicationError they raise reaches the client as its ABORT
reason; a function that cannot be created or fails refuses the session, with its traceback in the
node's log. Also: dynamic WAMP-Anonymous (an authenticator procedure assigns the role) and a
static anonymous ``authid``.
"""

from __future__ import annotations

import os
import sys
import textwrap

import pytest

import auth_material as am
from interop_client import eventually, run
from interop_router import free_tcp_port, launch_router, make_node_dir
from test_auth import assert_refused, assert_welcome, close_all, login, once, start_service

if os.environ.get("INTEROP_ROUTER", "switchboard") != "switchboard":
    pytest.skip("SWITCHBOARD_PYTHON and the node's log are Switchboard's", allow_module_level=True)

TICKET = am.secret("fn-ticket")
CRA_SECRET = am.secret("fn-cra")
ANON_AUTHENTICATOR = "com.example.authenticate_anonymous"

FUNCTIONS = '''
import asyncio

from autobahn.wamp.exception import ApplicationError


async def create_ticket_authenticator(config, controller):
    await asyncio.sleep(0)
    tickets = config["tickets"]
    print("ticket authenticator created for", sorted(tickets), "controller", controller)

    async def authenticate(realm, authid, details):
        await asyncio.sleep(0)
        if tickets.get(authid) == details["ticket"]:
            return {"role": config["role"], "extra": {"checked_by": "function", "realm": realm}}
        raise ApplicationError("com.example.invalid_ticket", f"wrong ticket for {authid}")

    return authenticate


def create_wampcra_authenticator(config, controller):
    def authenticate(realm, authid, details):
        if authid == "peter":
            return {"secret": config["secret"], "role": "frontend"}
        raise ApplicationError("com.example.no_such_user", f"who is {authid}?")

    return authenticate


def create_broken(config, controller):
    raise RuntimeError("this authenticator cannot be created")


def create_buggy(config, controller):
    def authenticate(realm, authid, details):
        return 1 / 0

    return authenticate
'''


def function(create: str, config=None) -> dict:
    section = {"type": "function", "create": f"authfns.{create}", "expose_controller": False}
    if config is not None:
        section["config"] = config
    return section


@pytest.fixture(scope="module")
def node():
    nd = make_node_dir("switchboard")
    app = nd.config_dir / "app"
    app.mkdir()
    (app / "authfns.py").write_text(textwrap.dedent(FUNCTIONS))
    names = ["good_ws", "good_rs", "bad_ws", "anon_ws", "service_ws", "visitor_ws"]
    ports = {}
    while len(ports) < len(names):
        p = free_tcp_port()
        if p not in ports.values():
            ports[names[len(ports)]] = p
    ticket = function("create_ticket_authenticator", {"tickets": {"joe": TICKET}, "role": "frontend"})
    good = {"ticket": ticket, "wampcra": function("create_wampcra_authenticator", {"secret": CRA_SECRET})}
    config = {
        "version": 2,
        "workers": [{
            "type": "router",
            "options": {"pythonpath": ["app"]},
            "realms": am.realms(),
            "transports": [
                am.ws_transport(ports["good_ws"], good),
                am.rs_transport(ports["good_rs"], {"ticket": ticket}),
                am.ws_transport(ports["bad_ws"], {"ticket": function("create_broken"), "wampcra": function("create_buggy")}),
                am.ws_transport(ports["anon_ws"], {"anonymous": {"type": "dynamic", "authenticator": ANON_AUTHENTICATOR}}),
                am.ws_transport(ports["service_ws"], {"anonymous": {"type": "static", "role": "backend"}}),
                am.ws_transport(ports["visitor_ws"], {"anonymous": {"type": "static", "role": "frontend", "authid": "visitor"}}),
            ],
        }],
    }
    previous = os.environ.get("SWITCHBOARD_PYTHON")
    os.environ["SWITCHBOARD_PYTHON"] = sys.executable
    try:
        router = launch_router(nd, config, list(ports.values()))
    finally:
        if previous is None:
            os.environ.pop("SWITCHBOARD_PYTHON", None)
        else:
            os.environ["SWITCHBOARD_PYTHON"] = previous
    router.eps = {name: am.Endpoint(name.rsplit("_", 1)[1], port) for name, port in ports.items()}
    try:
        yield router
    finally:
        router.close()


@pytest.mark.parametrize("ep,serializer", [("good_ws", "json"), ("good_rs", "msgpack")])
def test_a_ticket_function_admits_its_principal_with_the_role_and_extra_it_returns(node, ep, serializer):
    o = once(node.eps[ep], am.ticket("joe", TICKET), serializer)
    assert_welcome(o, "joe", "frontend", "ticket", "dynamic")
    assert (o.welcome.authextra or {}).get("checked_by") == "function", o.describe()
    assert (o.welcome.authextra or {}).get("realm") == "realm1", o.describe()


def test_an_application_error_of_the_function_is_the_abort_reason(node):
    o = once(node.eps["good_ws"], am.ticket("joe", "not-the-ticket"))
    assert_refused(o, "com.example.invalid_ticket", message_has="wrong ticket for joe")
    o = once(node.eps["good_ws"], am.wampcra("mallory", CRA_SECRET))
    assert_refused(o, "com.example.no_such_user", message_has="who is mallory")


def test_a_wampcra_function_returns_the_secret_the_router_checks_against(node):
    o = once(node.eps["good_ws"], am.wampcra("peter", CRA_SECRET))
    assert_welcome(o, "peter", "frontend", "wampcra", "dynamic")
    o = once(node.eps["good_ws"], am.wampcra("peter", am.secret("other")))
    assert_refused(o, "wamp.error.authentication_denied")


def test_what_the_function_prints_is_in_the_node_log(node):
    # `create` printed once, with the config it got and no controller (Crossbar's worker
    # controller does not exist here).
    run(eventually(lambda: "ticket authenticator created for ['joe'] controller None" in node.log_tail(400),
                   "the function's print in the node log"))


def test_a_function_that_cannot_be_created_refuses_sessions_and_logs_why(node):
    o = once(node.eps["bad_ws"], am.ticket("joe", TICKET))
    assert_refused(o, "wamp.error.authentication_failed")
    run(eventually(lambda: "this authenticator cannot be created" in node.log_tail(400),
                   "the traceback of create in the node log", timeout=10))
    assert "starting the function authenticator again" in node.log_tail(400)


def test_a_function_that_raises_refuses_the_session_and_logs_the_traceback(node):
    o = once(node.eps["bad_ws"], am.wampcra("peter", CRA_SECRET))
    assert_refused(o, "wamp.error.authentication_failed")
    run(eventually(lambda: "ZeroDivisionError" in node.log_tail(400), "the traceback of authenticate in the node log"))
    # The ticket a client sent never reaches the log.
    assert TICKET not in node.log_tail(2000)


def test_dynamic_anonymous_gets_its_role_from_the_authenticator(node):
    calls = []

    def authenticate(realm, authid, details):
        calls.append((realm, authid, details))
        if (details.get("authextra") or {}).get("deny"):
            from autobahn.wamp.exception import ApplicationError

            raise ApplicationError("com.example.go_away", "not today")
        return {"role": "frontend", "extra": {"via": "anonymous authenticator"}}

    async def scenario():
        service = await start_service(node.eps["service_ws"], {ANON_AUTHENTICATOR: authenticate})
        try:
            o = await login(node.eps["anon_ws"], am.anonymous())
            assert o.joined, o.describe()
            w = o.welcome
            assert (w.authrole, w.authmethod, w.authprovider) == ("frontend", "anonymous", "dynamic"), o.describe()
            assert w.authid.startswith("anonymous-"), o.describe()
            assert (w.authextra or {}).get("via") == "anonymous authenticator", o.describe()
            ((realm, authid, details),) = calls
            assert realm == "realm1" and authid == w.authid and details["authmethod"] == "anonymous", details
            denied = await login(node.eps["anon_ws"], am.Auth(None, authextra={"deny": True}))
            assert_refused(denied, "com.example.go_away", message_has="not today")
        finally:
            await close_all(service)

    run(scenario())


def test_static_anonymous_with_an_authid_gives_every_session_that_authid(node):
    o = once(node.eps["visitor_ws"], am.anonymous())
    assert_welcome(o, "visitor", "frontend", "anonymous", "static")


def test_clients_cannot_call_or_take_the_routers_authenticator_procedures(node):
    async def scenario():
        # the service endpoint's role may do everything on realm1, yet not this
        o = await login(node.eps["service_ws"], am.anonymous(), keep=True)
        try:
            assert o.joined, o.describe()
            registrations = await o.session.call("wamp.registration.list")
            uris = [await o.session.call("wamp.registration.get", r) for r in registrations["exact"]]
            reserved = [u["uri"] for u in uris if u["uri"].startswith("switchboard.authenticator.")]
            assert reserved, uris
            from autobahn.wamp.exception import ApplicationError

            for attempt in (o.session.call(reserved[0], "realm1", "joe", {"ticket": TICKET}),
                            o.session.register(lambda *a: "anonymous", "switchboard.authenticator.function.mine")):
                with pytest.raises(ApplicationError) as refused:
                    await attempt
                assert refused.value.error == "wamp.error.not_authorized", refused.value
        finally:
            await close_all(o)

    run(scenario())
