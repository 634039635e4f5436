"""Authentication and authorization with Autobahn|Python: WAMP-Anonymous,
WAMP-Ticket (static, dynamic, JWT), WAMP-CRA (plain and salted), WAMP-SCRAM
(argon2id-13 and pbkdf2), WAMP-Cryptosign (with tls-server-end-point channel
binding), TLS client certificates, cookies (memory and file store, expiry),
dynamic authenticators (also on another realm) and dynamic authorizers
(decision caching, invalidation), the ABORT reasons of failed logins, the
per-address rate limit of failed logins, and secrets staying out of the
router's log.

Every credential is made at test time (auth_material.py). Against
Crossbar.io (INTEROP_ROUTER=crossbar) the Switchboard-only features (JWT,
authorizer cache lifetimes and invalidation, the rate limit, tls-server-end-point,
CN-matched TLS principals, log hygiene) are skipped, and where Crossbar
answers with other ABORT reasons (it denies most failed logins with
wamp.error.not_authorized) its reasons are expected instead."""

from __future__ import annotations

import asyncio
import collections
import json
import ssl
import time
from dataclasses import dataclass, field

import pytest
from autobahn.wamp import auth as ab_auth
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions, RegisterOptions

import auth_material as am
import interop_router
import tls_material as tm
from interop_client import SERIALIZERS, bounded, run, unique_uri
from interop_router import Router, free_tcp_port, launch_router, make_node_dir, router_kind

KIND = router_kind()
CROSSBAR = KIND == "crossbar"
sb_only = pytest.mark.skipif(CROSSBAR, reason="Switchboard-only feature (not in Crossbar.io)")

KINDS = ("ws", "rs")
#: (socket kind, serializer): the full matrix, for the cheap success paths
MATRIX = [(k, s) for k in KINDS for s in SERIALIZERS]
MATRIX_IDS = [f"{k}-{s}" for k, s in MATRIX]

# ABORT reasons: Switchboard's, and Crossbar.io 26.10's where they differ
NO_SUCH_PRINCIPAL = "wamp.error.no_such_principal"
DENIED = "wamp.error.authentication_denied"
FAILED = "wamp.error.authentication_failed"
NO_SUCH_ROLE = "wamp.error.no_such_role"
NO_AUTH_METHOD = "wamp.error.no_auth_method"
NOT_AUTHORIZED = "wamp.error.not_authorized"
AUTHORIZATION_FAILED = "wamp.error.authorization_failed"
ANY = object()  # under Crossbar: any refusal will do
CROSSBAR_REASON = {NO_SUCH_PRINCIPAL: NOT_AUTHORIZED, DENIED: NOT_AUTHORIZED}


def assert_refused(o: am.Outcome, reason: str, crossbar=None, message_has: str | None = None) -> None:
    assert not o.joined, f"expected ABORT {reason}, but {o.describe()}"
    assert o.abort is not None, f"expected ABORT {reason}, got no WAMP answer: {o.describe()}"
    want = reason
    if CROSSBAR:
        want = crossbar if crossbar is not None else CROSSBAR_REASON.get(reason, reason)
    if want is not ANY:
        assert o.reason == want, f"expected ABORT {want}, got {o.describe()}"
    if message_has:
        assert message_has.lower() in o.message.lower(), f"ABORT message lacks {message_has!r}: {o.describe()}"


def assert_welcome(o: am.Outcome, authid, authrole, authmethod, authprovider) -> None:
    assert o.joined, f"expected WELCOME, got {o.describe()}"
    w = o.welcome
    got = (w.authid, w.authrole, w.authmethod, w.authprovider)
    assert got == (authid, authrole, authmethod, authprovider), o.describe()
    d = o.details
    assert (d.authid, d.authrole) == (authid, authrole)


def app_authextra(o: am.Outcome) -> dict:
    """WELCOME's authextra without the x_cb_* keys Crossbar.io adds."""
    return {k: v for k, v in (o.welcome.authextra or {}).items() if not k.startswith("x_cb_")}


async def login(ep: am.Endpoint, auth: am.Auth, serializer: str = "json", realm: str = "realm1", **kw) -> am.Outcome:
    """auth_connect; a joined session is closed again right away unless the
    caller keeps it (``keep=True``)."""
    keep = kw.pop("keep", False)
    o = await am.auth_connect(ep, auth, serializer, realm, **kw)
    if o.joined and not keep:
        await o.close()
    return o


def once(ep, auth, serializer="json", realm="realm1", **kw) -> am.Outcome:
    return run(login(ep, auth, serializer, realm, **kw))


async def close_all(*outcomes) -> None:
    await asyncio.gather(*(o.close() for o in outcomes if o is not None), return_exceptions=True)


# ---------------------------------------------------------------------------
# credentials and the main router
# ---------------------------------------------------------------------------


@dataclass
class Creds:
    t_joe: str = field(default_factory=lambda: am.secret("ticket-joe"))
    t_admin: str = field(default_factory=lambda: am.secret("ticket-admin"))
    t_ghost: str = field(default_factory=lambda: am.secret("ticket-ghost"))
    t_dyno: str = field(default_factory=lambda: am.secret("ticket-dyno"))
    cra_peter: str = field(default_factory=lambda: am.secret("cra-peter"))
    cra_salty: str = field(default_factory=lambda: am.secret("cra-salty"))
    cra_joe: str = field(default_factory=lambda: am.secret("cra-joe"))
    pw_alice: str = field(default_factory=lambda: am.secret("pw-alice"))
    pw_bob: str = field(default_factory=lambda: am.secret("pw-bob"))
    pw_carl: str = field(default_factory=lambda: am.secret("pw-carl"))
    carol: am.Ed25519Key = field(default_factory=am.Ed25519Key.generate)
    dave1: am.Ed25519Key = field(default_factory=am.Ed25519Key.generate)
    dave2: am.Ed25519Key = field(default_factory=am.Ed25519Key.generate)
    stranger: am.Ed25519Key = field(default_factory=am.Ed25519Key.generate)
    # dynamic-authenticator credentials
    t_dyn: str = field(default_factory=lambda: am.secret("ticket-dyn"))
    cra_dyn: str = field(default_factory=lambda: am.secret("cra-dyn"))
    pw_dyn: str = field(default_factory=lambda: am.secret("pw-dyn"))
    dyn_key: am.Ed25519Key = field(default_factory=am.Ed25519Key.generate)
    scram_alice: dict = field(default_factory=dict)
    scram_bob: dict = field(default_factory=dict)
    scram_carl: dict = field(default_factory=dict)
    scram_dyn: dict = field(default_factory=dict)

    def __post_init__(self):
        self.scram_alice = am.scram_argon2_credential(self.pw_alice)
        self.scram_bob = am.scram_pbkdf2_credential(self.pw_bob)
        self.scram_dyn = am.scram_argon2_credential(self.pw_dyn)

    def carl(self) -> dict:
        """made by Autobahn's own derive_scram_credential (time cost 4096: slow, so made once, on demand)"""
        if not self.scram_carl:
            self.scram_carl = ab_auth.derive_scram_credential("carl@example.com", self.pw_carl)
        return self.scram_carl

    def ticket_auth(self) -> dict:
        return {
            "type": "static",
            "principals": {
                "joe": {"ticket": self.t_joe, "role": "frontend"},
                "admin": {"ticket": self.t_admin, "role": "backend"},
                "ghost": {"ticket": self.t_ghost, "role": "ghost"},
                "dyno": {"ticket": self.t_dyno, "role": "dyn"},
            },
        }

    def static_auth(self) -> dict:
        return {
            "anonymous": {"type": "static", "role": "anonymous"},
            "ticket": self.ticket_auth(),
            "wampcra": {
                "type": "static",
                "users": {
                    "peter": {"secret": self.cra_peter, "role": "frontend"},
                    "salty": {"secret": self.cra_salty, "role": "frontend", "salt": "salt123", "iterations": 100, "keylen": 16},
                    "joe": {"secret": self.cra_joe, "role": "backend"},
                },
            },
            "scram": {
                "type": "static",
                "principals": {
                    "alice": am.with_role(self.scram_alice, "frontend"),
                    "bob": am.with_role(self.scram_bob, "frontend"),
                    "carl@example.com": am.with_role(self.carl(), "frontend"),
                },
            },
            "cryptosign": {
                "type": "static",
                "principals": {
                    "carol@example.com": {"authorized_keys": [self.carol.pubkey_hex], "role": "frontend"},
                    "dave": {"authorized_keys": [self.dave1.pubkey_hex, self.dave2.pubkey_hex], "role": "backend"},
                },
            },
        }


@dataclass
class Main:
    router: Router
    creds: Creds
    ports: dict

    def ep(self, name: str, kind: str = "ws") -> am.Endpoint:
        return am.Endpoint(kind, self.ports[f"{name}_{kind}"])


def free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        p = free_tcp_port()
        if p not in ports:
            ports.append(p)
    return ports


def main_transports(c: Creds, ports: dict) -> list:
    static = c.static_auth()
    dyn = {
        "anonymous": {"type": "static", "role": "anonymous"},
        "ticket": am.dynamic(am.AUTHENTICATOR),
        "wampcra": am.dynamic(am.AUTHENTICATOR),
        "scram": am.dynamic(am.AUTHENTICATOR),
        "cryptosign": am.dynamic(am.AUTHENTICATOR),
    }
    cookie_auth = {"ticket": c.ticket_auth(), "cookie": {}}
    return [
        am.ws_transport(ports["static_ws"], static),
        am.rs_transport(ports["static_rs"], static),
        am.ws_transport(ports["dyn_ws"], dyn),
        am.rs_transport(ports["dyn_rs"], dyn),
        am.ws_transport(ports["dynrealm_ws"], {"ticket": am.dynamic(am.AUTHENTICATOR_ELSEWHERE, am.AUTH_REALM)}),
        am.ws_transport(
            ports["cookie_ws"],
            cookie_auth,
            cookie={"name": "cbtid", "length": 24, "max_age": 864000, "store": {"type": "memory"}},
        ),
        am.ws_transport(ports["cookieshort_ws"], cookie_auth, cookie={"name": "sbshort", "max_age": 1, "store": {"type": "memory"}}),
    ]


@pytest.fixture(scope="module")
def creds() -> Creds:
    return Creds()


@pytest.fixture(scope="module")
def main(creds):
    names = ["static_ws", "static_rs", "dyn_ws", "dyn_rs", "dynrealm_ws", "cookie_ws", "cookieshort_ws"]
    ports = dict(zip(names, free_ports(len(names))))
    nd = make_node_dir()
    r = launch_router(nd, am.node(main_transports(creds, ports)), list(ports.values()))
    try:
        yield Main(r, creds, ports)
    finally:
        r.close()


# ---------------------------------------------------------------------------
# WAMP-Anonymous, method choice
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind,serializer", MATRIX, ids=MATRIX_IDS)
def test_hello_without_authmethods_is_anonymous(main, kind, serializer):
    o = once(main.ep("static", kind), am.anonymous(), serializer)
    assert o.joined, o.describe()
    assert (o.welcome.authrole, o.welcome.authmethod, o.welcome.authprovider) == ("anonymous", "anonymous", "static")
    assert o.welcome.authid, o.describe()
    assert not o.challenges


def test_anonymous_not_offered_gives_no_auth_method(main):
    # the cookie transport offers ticket and cookie only
    assert_refused(once(main.ep("cookie"), am.anonymous()), NO_AUTH_METHOD)
    assert_refused(once(main.ep("cookie"), am.anonymous(["anonymous"])), NO_AUTH_METHOD)


def test_method_not_offered_gives_no_auth_method(main):
    c = main.creds
    assert_refused(once(main.ep("cookie"), am.wampcra("peter", c.cra_peter)), NO_AUTH_METHOD)
    assert_refused(once(main.ep("cookie"), am.cryptosign("carol@example.com", c.carol)), NO_AUTH_METHOD)
    # tls is not configured here, nor applicable without a client certificate
    assert_refused(once(main.ep("static"), am.Auth(["tls"])), NO_AUTH_METHOD)


def test_first_applicable_method_in_client_order_is_used(main):
    c = main.creds
    cra = am.wampcra("joe", c.cra_joe)
    tkt = am.ticket("joe", c.t_joe)
    o = once(main.ep("static"), cra.plus(tkt))
    assert_welcome(o, "joe", "backend", "wampcra", "static")
    assert [ch.method for ch in o.challenges] == ["wampcra"]
    o = once(main.ep("static"), tkt.plus(cra))
    assert_welcome(o, "joe", "frontend", "ticket", "static")
    assert [ch.method for ch in o.challenges] == ["ticket"]
    # methods the transport does not configure (tls, cookie) are passed over
    o = once(main.ep("static"), am.Auth(["tls", "cookie"]).plus(tkt))
    assert_welcome(o, "joe", "frontend", "ticket", "static")
    # anonymous after a method that applies: the first one wins
    o = once(main.ep("static"), tkt.plus(am.anonymous(["anonymous"])))
    assert_welcome(o, "joe", "frontend", "ticket", "static")


# ---------------------------------------------------------------------------
# WAMP-Ticket (static)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind,serializer", MATRIX, ids=MATRIX_IDS)
def test_ticket_static(main, kind, serializer):
    o = once(main.ep("static", kind), am.ticket("joe", main.creds.t_joe), serializer)
    assert_welcome(o, "joe", "frontend", "ticket", "static")
    assert [(ch.method, ch.extra) for ch in o.challenges] == [("ticket", {})]
    assert not app_authextra(o)  # absent or empty


@pytest.mark.parametrize("kind,serializer", [("ws", "json"), ("rs", "cbor"), ("ws", "msgpack")])
def test_role_governs_permissions(main, kind, serializer):
    """frontend may call and subscribe under com.example. but not register or
    publish; backend may do everything; the callee sees who called."""
    c = main.creds

    async def scenario():
        admin = joe = None
        try:
            admin = await login(main.ep("static", kind), am.ticket("admin", c.t_admin), serializer, keep=True)
            assert_welcome(admin, "admin", "backend", "ticket", "static")
            joe = await login(main.ep("static", kind), am.ticket("joe", c.t_joe), serializer, keep=True)
            assert_welcome(joe, "joe", "frontend", "ticket", "static")
            proc = unique_uri("com.example.echo")
            seen = []

            def echo(x, details=None):
                seen.append((details.caller_authid, details.caller_authrole))
                return x

            await bounded(admin.session.register(echo, proc, options=RegisterOptions(details_arg="details")), "REGISTERED")
            assert await bounded(joe.session.call(proc, 42), "RESULT") == 42
            assert seen == [("joe", "frontend")]
            with pytest.raises(ApplicationError) as e:
                await bounded(joe.session.register(lambda: None, unique_uri("com.example.mine")), "register ERROR")
            assert e.value.error == NOT_AUTHORIZED
            with pytest.raises(ApplicationError) as e:
                await bounded(publish(joe, unique_uri("com.example.t")), "publish ERROR")
            assert e.value.error == NOT_AUTHORIZED
            with pytest.raises(ApplicationError) as e:  # outside com.example.: nothing allowed
                await bounded(joe.session.call(unique_uri("org.other.proc")), "call ERROR")
            assert e.value.error == NOT_AUTHORIZED
            pub = await publish(admin, unique_uri("com.example.t"))
            assert pub is not None
        finally:
            await close_all(admin, joe)

    run(scenario())


def test_ticket_failures(main):
    c = main.creds
    ep = main.ep("static")
    assert_refused(once(ep, am.ticket("joe", "not-" + c.t_joe)), DENIED)
    assert_refused(once(ep, am.ticket("joe", "")), DENIED)
    assert_refused(once(ep, am.ticket("joe", c.t_admin)), DENIED)  # someone else's ticket
    assert_refused(once(ep, am.ticket("nobody", c.t_joe)), NO_SUCH_PRINCIPAL)
    assert_refused(once(ep, am.ticket(None, c.t_joe)), NO_SUCH_PRINCIPAL)
    assert_refused(once(ep, am.ticket("ghost", c.t_ghost)), NO_SUCH_ROLE)


def test_failed_logins_are_not_limited_without_auth_rate_limit(main):
    c = main.creds

    async def scenario():
        for _ in range(6):
            assert_refused(await login(main.ep("static"), am.ticket("joe", "wrong")), DENIED)
        assert_welcome(await login(main.ep("static"), am.ticket("joe", c.t_joe)), "joe", "frontend", "ticket", "static")

    run(scenario())


# ---------------------------------------------------------------------------
# WAMP-CRA
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind,serializer", MATRIX, ids=MATRIX_IDS)
def test_wampcra_static(main, kind, serializer):
    o = once(main.ep("static", kind), am.wampcra("peter", main.creds.cra_peter), serializer)
    assert_welcome(o, "peter", "frontend", "wampcra", "static")
    (ch,) = o.challenges
    assert ch.method == "wampcra"
    assert isinstance(ch.extra.get("challenge"), str) and ch.extra["challenge"]
    assert "salt" not in ch.extra
    text = json.loads(ch.extra["challenge"])  # Crossbar's challenge: a JSON object
    assert text.get("authid") == "peter" and text.get("authmethod") == "wampcra", text


@pytest.mark.parametrize("kind", KINDS)
def test_wampcra_salted(main, kind):
    o = once(main.ep("static", kind), am.wampcra("salty", main.creds.cra_salty), "cbor")
    assert_welcome(o, "salty", "frontend", "wampcra", "static")
    (ch,) = o.challenges
    assert (ch.extra.get("salt"), ch.extra.get("iterations"), ch.extra.get("keylen")) == ("salt123", 100, 16), ch.extra


def test_wampcra_failures(main):
    c = main.creds
    ep = main.ep("static")
    assert_refused(once(ep, am.wampcra("peter", "not-" + c.cra_peter)), DENIED)
    assert_refused(once(ep, am.wampcra("peter", c.cra_salty)), DENIED)
    assert_refused(once(ep, am.wampcra("nobody", c.cra_peter)), NO_SUCH_PRINCIPAL)
    # the unsalted secret for a salted user
    unsalted = am.Auth(
        ["wampcra"], "salty", responders={"wampcra": lambda s, ch: am.wampcra_sign(c.cra_salty.encode(), ch.extra["challenge"])}
    )
    assert_refused(once(ep, unsalted), DENIED)
    # garbage signature
    assert_refused(once(ep, am.replaying("wampcra", "peter", "not base64 !!")), DENIED)


@pytest.mark.parametrize("kind", KINDS)
def test_wampcra_replayed_signature_fails(main, kind):
    c = main.creds
    first = once(main.ep("static", kind), am.wampcra("peter", c.cra_peter))
    assert_welcome(first, "peter", "frontend", "wampcra", "static")
    (sig,) = first.signatures
    o = once(main.ep("static", kind), am.replaying("wampcra", "peter", sig))
    assert o.challenges and o.challenges[0].extra["challenge"] != first.challenges[0].extra["challenge"], "same challenge twice"
    assert_refused(o, DENIED)


# ---------------------------------------------------------------------------
# WAMP-SCRAM
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind,serializer", MATRIX, ids=MATRIX_IDS)
def test_scram_argon2id(main, kind, serializer):
    """Autobahn's AuthScram, unchanged: its on_welcome checks the
    scram_server_signature (a wrong one would make the client abort)."""
    o = once(main.ep("static", kind), am.scram("alice", main.creds.pw_alice), serializer)
    assert_welcome(o, "alice", "frontend", "scram", "static")
    (ch,) = o.challenges
    cred = main.creds.scram_alice
    assert ch.extra["kdf"] == "argon2id-13"
    assert (ch.extra["iterations"], ch.extra["memory"]) == (cred["iterations"], cred["memory"])
    assert isinstance(ch.extra["nonce"], str) and ch.extra["nonce"]
    assert "scram_server_signature" in (o.welcome.authextra or {}), o.describe()


def test_scram_credential_from_autobahn_derive_scram_credential(main):
    """A principal exactly as autobahn.wamp.auth.derive_scram_credential
    writes it (hex salt, time cost 4096)."""
    o = once(main.ep("static"), am.scram("carl@example.com", main.creds.pw_carl))
    assert_welcome(o, "carl@example.com", "frontend", "scram", "static")


@pytest.mark.parametrize("kind", KINDS)
def test_scram_pbkdf2(main, kind):
    client = am.ScramPbkdf2Client("bob", main.creds.pw_bob)
    o = once(main.ep("static", kind), client.auth(), "msgpack")
    assert_welcome(o, "bob", "frontend", "scram", "static")
    assert client.server_signature_ok, o.describe()
    (ch,) = o.challenges
    assert ch.extra["kdf"] == "pbkdf2" and ch.extra["iterations"] == main.creds.scram_bob["iterations"]


def test_scram_failures(main):
    c = main.creds
    ep = main.ep("static")
    assert_refused(once(ep, am.scram("alice", "not-" + c.pw_alice)), DENIED)
    assert_refused(once(ep, am.ScramPbkdf2Client("bob", c.pw_alice).auth()), DENIED)
    assert_refused(once(ep, am.scram("nobody", c.pw_alice)), NO_SUCH_PRINCIPAL)


# ---------------------------------------------------------------------------
# WAMP-Cryptosign
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind,serializer", MATRIX, ids=MATRIX_IDS)
def test_cryptosign_static(main, kind, serializer):
    o = once(main.ep("static", kind), am.cryptosign("carol@example.com", main.creds.carol), serializer)
    assert_welcome(o, "carol@example.com", "frontend", "cryptosign", "static")
    (ch,) = o.challenges
    chal = ch.extra.get("challenge")
    assert isinstance(chal, str) and len(chal) == 64 and bytes.fromhex(chal), ch.extra


def test_cryptosign_principal_with_several_keys_and_without_authid(main):
    c = main.creds
    assert_welcome(once(main.ep("static"), am.cryptosign("dave", c.dave2)), "dave", "backend", "cryptosign", "static")
    # no authid in HELLO: the principal is found by its public key
    assert_welcome(once(main.ep("static", "rs"), am.cryptosign(None, c.dave1)), "dave", "backend", "cryptosign", "static")


def test_cryptosign_failures(main):
    c = main.creds
    ep = main.ep("static")
    # announcing carol's key, signing with another
    assert_refused(once(ep, am.cryptosign_manual("carol@example.com", c.stranger, announce_pubkey=c.carol.pubkey_hex)), DENIED)
    assert_refused(once(ep, am.cryptosign("nobody@example.com", c.carol)), NO_SUCH_PRINCIPAL)
    # a key nobody has, without authid
    o = once(ep, am.cryptosign(None, c.stranger))
    assert_refused(o, NO_SUCH_PRINCIPAL)
    # carol's name with a key not hers: unknown principal (for that key) or denied
    o = once(ep, am.cryptosign("carol@example.com", c.stranger))
    assert not o.joined and o.reason in (NO_SUCH_PRINCIPAL, DENIED, NOT_AUTHORIZED), o.describe()
    # garbage signature
    assert_refused(once(ep, am.replaying("cryptosign", "carol@example.com", "00" * 96, {"pubkey": c.carol.pubkey_hex})), DENIED)


@pytest.mark.parametrize("kind", KINDS)
def test_cryptosign_replayed_signature_fails(main, kind):
    c = main.creds
    first = once(main.ep("static", kind), am.cryptosign("carol@example.com", c.carol))
    assert_welcome(first, "carol@example.com", "frontend", "cryptosign", "static")
    (sig,) = first.signatures
    o = once(main.ep("static", kind), am.replaying("cryptosign", "carol@example.com", sig, {"pubkey": c.carol.pubkey_hex}))
    assert o.challenges and o.challenges[0].extra["challenge"] != first.challenges[0].extra["challenge"]
    assert_refused(o, DENIED)


def test_cryptosign_tls_unique_is_refused(main):
    c = main.creds
    o = once(main.ep("static"), am.cryptosign_manual("carol@example.com", c.carol, channel_binding="tls-unique"))
    assert_refused(o, FAILED, crossbar=NOT_AUTHORIZED, message_has="tls-unique")


# ---------------------------------------------------------------------------
# dynamic authenticators
# ---------------------------------------------------------------------------


class Authenticator:
    """The dynamic authenticator: an ordinary callee."""

    def __init__(self, c: Creds):
        self.c = c
        self.calls: list = []

    def __call__(self, realm, authid, details):
        self.calls.append((realm, authid, details))
        method = details.get("authmethod")
        c = self.c
        if method == "ticket":
            tkt = details.get("ticket")
            if authid == "dyn-joe" and tkt == c.t_dyn:
                return "frontend"
            if authid == "dyn-dict" and tkt == c.t_dyn:
                return {"role": "backend", "authid": "renamed-by-authenticator", "extra": {"greeting": "hello", "n": 7}}
            if authid == "dyn-ghost":
                return "ghost"
            if authid == "dyn-malformed":
                return 42
            if authid == "dyn-malformed-dict":
                return ["frontend"]
            raise ApplicationError("com.example.invalid_ticket", f"no such ticket for {authid}")
        if method == "wampcra":
            if authid == "dyn-peter":
                return {"secret": c.cra_dyn, "role": "frontend"}
            if authid == "dyn-salty":
                return {"secret": c.cra_dyn, "role": "backend", "salt": "pepper", "iterations": 50, "keylen": 32}
        if method == "scram" and authid == "dyn-alice":
            return am.with_role(c.scram_dyn, "frontend")
        if method == "cryptosign":
            if (details.get("authextra") or {}).get("pubkey") == c.dyn_key.pubkey_hex:
                return {"pubkey": c.dyn_key.pubkey_hex, "role": "backend", "authid": "dyn-carol"}
        raise ApplicationError("com.example.no_such_user", f"{method}: who is {authid}?")


async def start_service(ep: am.Endpoint, procs: dict, realm: str = "realm1") -> am.Outcome:
    o = await login(ep, am.anonymous(), "json", realm, keep=True)
    assert o.joined, f"service session refused: {o.describe()}"
    for uri, fn in procs.items():
        await bounded(o.session.register(fn, uri), f"REGISTER {uri}")
    return o


def with_authenticator(main: Main, scenario, realm: str = "realm1", uri: str = am.AUTHENTICATOR):
    """Run ``scenario(authenticator)`` while an Authenticator is registered."""
    authn = Authenticator(main.creds)

    async def outer():
        svc = await start_service(main.ep("dyn"), {uri: authn}, realm)
        try:
            return await scenario(authn)
        finally:
            await close_all(svc)

    run(outer())
    return authn


@pytest.mark.parametrize("kind,serializer", [("ws", "json"), ("rs", "msgpack"), ("ws", "cbor"), ("rs", "json")])
def test_dynamic_ticket(main, kind, serializer):
    c = main.creds

    async def scenario(authn):
        o = await login(main.ep("dyn", kind), am.ticket("dyn-joe", c.t_dyn, authextra={"app": "x1"}), serializer, keep=True)
        try:
            assert_welcome(o, "dyn-joe", "frontend", "ticket", "dynamic")
            ((realm, authid, details),) = authn.calls
            assert (realm, authid) == ("realm1", "dyn-joe")
            assert details["authmethod"] == "ticket" and details["ticket"] == c.t_dyn, details
            assert (details.get("authextra") or {}).get("app") == "x1", details
            assert isinstance(details.get("session"), int), details
            assert o.session.session_id == details["session"], (o.session.session_id, details)
            assert isinstance(details.get("transport"), dict), details
            # the dynamically assigned role governs permissions too
            with pytest.raises(ApplicationError) as e:
                await bounded(o.session.register(lambda: 1, unique_uri("com.example.dyn")), "register ERROR")
            assert e.value.error == NOT_AUTHORIZED
        finally:
            await o.close()

    with_authenticator(main, scenario)


def test_dynamic_ticket_dict_answer_sets_authid_and_authextra(main):
    async def scenario(authn):
        o = await login(main.ep("dyn"), am.ticket("dyn-dict", main.creds.t_dyn))
        assert_welcome(o, "renamed-by-authenticator", "backend", "ticket", "dynamic")
        assert app_authextra(o) == {"greeting": "hello", "n": 7}, o.describe()

    with_authenticator(main, scenario)


def test_dynamic_authenticator_errors(main):
    c = main.creds

    async def scenario(authn):
        ep = main.ep("dyn")
        # an ApplicationError from the authenticator: its URI is the ABORT reason
        o = await login(ep, am.ticket("dyn-joe", "wrong"))
        assert_refused(o, "com.example.invalid_ticket")
        assert "dyn-joe" in o.message, o.describe()
        assert_refused(await login(ep, am.ticket("dyn-ghost", "x")), NO_SUCH_ROLE)
        assert_refused(await login(ep, am.ticket("dyn-malformed", "x")), FAILED)
        assert_refused(await login(ep, am.ticket("dyn-malformed-dict", "x")), FAILED)

    with_authenticator(main, scenario)


def test_dynamic_authenticator_unavailable(main):
    # nothing registered at com.example.authenticate
    o = once(main.ep("dyn"), am.ticket("dyn-joe", main.creds.t_dyn))
    # Crossbar passes the call's error through (wamp.error.no_such_procedure)
    assert_refused(o, FAILED, crossbar="wamp.error.no_such_procedure")


@pytest.mark.parametrize("kind", KINDS)
def test_dynamic_wampcra(main, kind):
    c = main.creds

    async def scenario(authn):
        o = await login(main.ep("dyn", kind), am.wampcra("dyn-peter", c.cra_dyn), "cbor")
        assert_welcome(o, "dyn-peter", "frontend", "wampcra", "dynamic")
        assert authn.calls[-1][2]["authmethod"] == "wampcra"
        o = await login(main.ep("dyn", kind), am.wampcra("dyn-salty", c.cra_dyn), "json")
        assert_welcome(o, "dyn-salty", "backend", "wampcra", "dynamic")
        (ch,) = o.challenges
        assert (ch.extra.get("salt"), ch.extra.get("iterations"), ch.extra.get("keylen")) == ("pepper", 50, 32)
        assert_refused(await login(main.ep("dyn", kind), am.wampcra("dyn-peter", "wrong")), DENIED)
        assert_refused(await login(main.ep("dyn", kind), am.wampcra("dyn-nobody", c.cra_dyn)), "com.example.no_such_user")

    with_authenticator(main, scenario)


def test_dynamic_scram_and_cryptosign(main):
    c = main.creds

    async def scenario(authn):
        o = await login(main.ep("dyn"), am.scram("dyn-alice", c.pw_dyn), "msgpack")
        assert_welcome(o, "dyn-alice", "frontend", "scram", "dynamic")
        assert_refused(await login(main.ep("dyn"), am.scram("dyn-alice", "wrong")), DENIED)
        o = await login(main.ep("dyn", "rs"), am.cryptosign(None, c.dyn_key), "cbor")
        assert_welcome(o, "dyn-carol", "backend", "cryptosign", "dynamic")
        details = authn.calls[-1][2]
        assert details["authmethod"] == "cryptosign" and details["authextra"]["pubkey"] == c.dyn_key.pubkey_hex
        # the authenticator names dyn_key, the client signs with another key
        o = await login(main.ep("dyn"), am.cryptosign_manual(None, c.stranger, announce_pubkey=c.dyn_key.pubkey_hex))
        assert_refused(o, DENIED)

    with_authenticator(main, scenario)


def test_dynamic_authenticator_on_another_realm(main):
    c = main.creds

    async def scenario(authn):
        o = await login(main.ep("dynrealm"), am.ticket("dyn-joe", c.t_dyn), keep=True)
        try:
            assert_welcome(o, "dyn-joe", "frontend", "ticket", "dynamic")
            assert o.details.realm == "realm1"
            ((realm, authid, details),) = authn.calls
            assert (realm, authid) == ("realm1", "dyn-joe"), authn.calls
        finally:
            await o.close()

    with_authenticator(main, scenario, realm=am.AUTH_REALM, uri=am.AUTHENTICATOR_ELSEWHERE)
    # not registered on realm1: a registration there does not count
    authn = Authenticator(c)

    async def wrong_realm():
        svc = await start_service(main.ep("dyn"), {am.AUTHENTICATOR_ELSEWHERE: authn}, "realm1")
        try:
            o = await login(main.ep("dynrealm"), am.ticket("dyn-joe", c.t_dyn))
            assert not o.joined, o.describe()
            assert authn.calls == []
        finally:
            await close_all(svc)

    run(wrong_realm())


# ---------------------------------------------------------------------------
# dynamic authorizer
# ---------------------------------------------------------------------------


class Authorizer:
    """Decides by the URI: ...deny... False, ...denydict... {"allow": False},
    ...fail... raises, ...cachetrue... cache True, ...cache1s... cache 1,
    ...bool... True, else {"allow": True}. Counts calls per (uri, action)."""

    def __init__(self):
        self.counts = collections.Counter()
        self.calls: list = []

    def __call__(self, session, uri, action, options=None):
        self.counts[(uri, action)] += 1
        self.calls.append((session, uri, action, options))
        if ".denydict." in uri:
            return {"allow": False}
        if ".deny." in uri:
            return False
        if ".fail." in uri:
            raise ApplicationError("com.example.authorizer_broken", "cannot decide")
        if ".cachetrue." in uri:
            return {"allow": True, "cache": True}
        if ".cache1s." in uri:
            return {"allow": True, "cache": 1}
        if ".bool." in uri:
            return True
        return {"allow": True, "disclose": False}


def with_authorizer(main: Main, scenario, register: bool = True):
    authz = Authorizer()
    c = main.creds

    async def outer():
        svc = await start_service(main.ep("static"), {am.AUTHORIZER: authz} if register else {})
        dyn = await login(main.ep("static"), am.ticket("dyno", c.t_dyno), keep=True)
        assert_welcome(dyn, "dyno", "dyn", "ticket", "static")
        try:
            return await scenario(authz, dyn, svc)
        finally:
            await close_all(dyn, svc)

    run(outer())
    return authz


async def publish(o: am.Outcome, topic: str):
    return await bounded(o.session.publish(topic, 1, options=PublishOptions(acknowledge=True)), f"PUBLISHED {topic}")


async def expect_error(coro, uri: str, what: str):
    with pytest.raises(ApplicationError) as e:
        await bounded(coro, what)
    assert e.value.error == uri, f"{what}: {e.value}"


def test_authorizer_decides_every_action(main):
    async def scenario(authz, dyn, svc):
        s = dyn.session
        # allowed
        proc = unique_uri("com.example.authz.ok.proc")
        await bounded(s.register(lambda x: x * 2, proc), "REGISTERED")
        assert await bounded(s.call(proc, 21), "RESULT") == 42
        await bounded(s.subscribe(lambda *a: None, unique_uri("com.example.authz.bool.topic")), "SUBSCRIBED")
        await publish(dyn, unique_uri("com.example.authz.ok.topic"))
        actions = {a for (_, a) in authz.counts}
        assert actions == {"register", "call", "subscribe", "publish"}, authz.counts
        sd = authz.calls[0][0]
        assert sd["session"] == s.session_id, sd
        assert (sd["authid"], sd["authrole"], sd["authmethod"], sd["authprovider"]) == ("dyno", "dyn", "ticket", "static"), sd
        assert authz.calls[0][1] == proc and authz.calls[0][2] == "register"
        # denied: not_authorized, for all four actions, False or {"allow": False}
        for marker in ("deny", "denydict"):
            await expect_error(s.register(lambda: 1, unique_uri(f"com.example.authz.{marker}.p")), NOT_AUTHORIZED, f"register {marker}")
            await expect_error(s.call(unique_uri(f"com.example.authz.{marker}.p")), NOT_AUTHORIZED, f"call {marker}")
            await expect_error(s.subscribe(lambda: 1, unique_uri(f"com.example.authz.{marker}.t")), NOT_AUTHORIZED, f"subscribe {marker}")
            await expect_error(publish(dyn, unique_uri(f"com.example.authz.{marker}.t")), NOT_AUTHORIZED, f"publish {marker}")
        # the authorizer failing: authorization_failed
        await expect_error(s.call(unique_uri("com.example.authz.fail.p")), AUTHORIZATION_FAILED, "call fail")
        await expect_error(publish(dyn, unique_uri("com.example.authz.fail.t")), AUTHORIZATION_FAILED, "publish fail")

    with_authorizer(main, scenario)


def test_authorizer_unavailable(main):
    async def scenario(authz, dyn, svc):
        await expect_error(dyn.session.call(unique_uri("com.example.authz.ok.p")), AUTHORIZATION_FAILED, "call")
        await expect_error(publish(dyn, unique_uri("com.example.authz.ok.t")), AUTHORIZATION_FAILED, "publish")

    with_authorizer(main, scenario, register=False)


N_PUBLISH = 20


def test_authorizer_cache_true_counting(main, request):
    if CROSSBAR:
        reason = "Crossbar.io 26.10.1: publishes decided from its authorizer cache get no PUBLISHED"
        request.applymarker(pytest.mark.xfail(reason=reason, strict=False))
    async def scenario(authz, dyn, svc):
        topic = unique_uri("com.example.authz.cachetrue.t")
        for _ in range(N_PUBLISH):
            await publish(dyn, topic)
        assert authz.counts[(topic, "publish")] == 1, authz.counts
        # another action on the same URI is decided on its own
        await bounded(dyn.session.subscribe(lambda *a: None, topic), "SUBSCRIBED")
        assert authz.counts[(topic, "subscribe")] == 1, authz.counts

    with_authorizer(main, scenario)


def test_authorizer_without_cache_counting(main):
    async def scenario(authz, dyn, svc):
        for topic in (unique_uri("com.example.authz.ok.t"), unique_uri("com.example.authz.bool.t")):
            for _ in range(N_PUBLISH):
                await publish(dyn, topic)
            assert authz.counts[(topic, "publish")] == N_PUBLISH, authz.counts

    with_authorizer(main, scenario)


@sb_only
def test_authorizer_cache_seconds_counting(main):
    async def scenario(authz, dyn, svc):
        topic = unique_uri("com.example.authz.cache1s.t")
        t0 = time.monotonic()
        for _ in range(N_PUBLISH):
            await publish(dyn, topic)
        elapsed = time.monotonic() - t0
        if elapsed < 0.9:
            assert authz.counts[(topic, "publish")] == 1, authz.counts
        else:  # a slow machine: the entry may have expired once
            assert authz.counts[(topic, "publish")] <= 1 + int(elapsed), (authz.counts, elapsed)
        before = authz.counts[(topic, "publish")]
        await asyncio.sleep(1.2)
        await publish(dyn, topic)
        assert authz.counts[(topic, "publish")] == before + 1, authz.counts
        await publish(dyn, topic)
        assert authz.counts[(topic, "publish")] == before + 1, authz.counts

    with_authorizer(main, scenario)


@sb_only
def test_authorizer_cache_invalidation(main):
    c = main.creds

    async def scenario(authz, dyn, svc):
        topic = unique_uri("com.example.authz.cachetrue.t")
        admin = await login(main.ep("static"), am.ticket("admin", c.t_admin), keep=True)
        try:
            for _ in range(N_PUBLISH):
                await publish(dyn, topic)
            assert authz.counts[(topic, "publish")] == 1, authz.counts
            # every session of the realm
            await bounded(admin.session.call(am.INVALIDATE), "invalidate (all)")
            await publish(dyn, topic)
            await publish(dyn, topic)
            assert authz.counts[(topic, "publish")] == 2, authz.counts
            # one session
            await bounded(admin.session.call(am.INVALIDATE, dyn.session.session_id), "invalidate (session)")
            await publish(dyn, topic)
            await publish(dyn, topic)
            assert authz.counts[(topic, "publish")] == 3, authz.counts
            # another session id: this one's cache stays
            await bounded(admin.session.call(am.INVALIDATE, admin.session.session_id), "invalidate (other session)")
            await publish(dyn, topic)
            assert authz.counts[(topic, "publish")] == 3, authz.counts
            # a role without call permission on the procedure may not invalidate
            joe = await login(main.ep("static"), am.ticket("joe", c.t_joe), keep=True)
            try:
                await expect_error(joe.session.call(am.INVALIDATE), NOT_AUTHORIZED, "invalidate as frontend")
            finally:
                await joe.close()
        finally:
            await admin.close()

    with_authorizer(main, scenario)


def test_authorizer_cache_is_per_session(main):
    """Switchboard caches per session: a second session of the same role
    asks the authorizer again. (Crossbar.io caches per realm+role.)"""
    if CROSSBAR:
        pytest.skip("Crossbar.io caches authorizer decisions per (realm, authrole), not per session")
    c = main.creds

    async def scenario(authz, dyn, svc):
        topic = unique_uri("com.example.authz.cachetrue.t")
        await publish(dyn, topic)
        other = await login(main.ep("static", "rs"), am.ticket("dyno", c.t_dyno), "cbor", keep=True)
        try:
            await publish(other, topic)
            await publish(other, topic)
        finally:
            await other.close()
        await publish(dyn, topic)
        assert authz.counts[(topic, "publish")] == 2, authz.counts

    with_authorizer(main, scenario)


# ---------------------------------------------------------------------------
# cookies
# ---------------------------------------------------------------------------


def cookie_header(name: str, value: str) -> dict:
    return {"Cookie": f"{name}={value}"}


def assert_cookie_welcome(o: am.Outcome, authid: str, authrole: str, original_method: str = "ticket") -> None:
    # Crossbar.io reports the method the cookie was authenticated with
    assert_welcome(o, authid, authrole, original_method if CROSSBAR else "cookie", "cookie")
    assert not o.challenges, o.describe()


def test_cookie_memory_store(main):
    c = main.creds
    ep = main.ep("cookie")

    async def scenario():
        first = await login(ep, am.ticket("joe", c.t_joe))
        assert_welcome(first, "joe", "frontend", "ticket", "static")
        cbtid = first.cookie("cbtid")
        assert cbtid, f"no Set-Cookie cbtid in {first.response_headers}"
        # the cookie alone authenticates now, without a challenge
        o = await login(ep, am.failing_challenge(["cookie", "ticket"]), headers=cookie_header("cbtid", cbtid), keep=True)
        try:
            assert_cookie_welcome(o, "joe", "frontend")
            assert o.cookie("cbtid") is None, f"a known cookie was replaced: {o.response_headers}"
            # and the role governs permissions as before
            await expect_error(o.session.register(lambda: 1, unique_uri("com.example.c")), NOT_AUTHORIZED, "register")
        finally:
            await o.close()
        # repeatedly, and over cbor
        o = await login(ep, am.failing_challenge(["cookie"]), "cbor", headers=cookie_header("cbtid", cbtid))
        assert_cookie_welcome(o, "joe", "frontend")
        # an unknown cookie: not applicable, so the next method is used, and a new cookie is set
        o = await login(ep, am.Auth(["cookie", "ticket"], "admin", responders={"ticket": lambda s, ch: c.t_admin}),
                        headers=cookie_header("cbtid", "x" * 24))
        assert_welcome(o, "admin", "backend", "ticket", "static")
        fresh = o.cookie("cbtid")
        assert fresh and fresh != "x" * 24 and fresh != cbtid
        # an unknown cookie with only "cookie" offered
        assert_refused(await login(ep, am.failing_challenge(["cookie"]), headers=cookie_header("cbtid", "y" * 24)), NO_AUTH_METHOD)
        # a new connection without the cookie gets a cookie that is not authenticated
        o = await login(ep, am.failing_challenge(["cookie"]))
        assert_refused(o, NO_AUTH_METHOD)
        assert o.cookie("cbtid") and o.cookie("cbtid") != cbtid
        # the first cookie still works; admin's cookie is admin's
        o = await login(ep, am.failing_challenge(["cookie"]), headers=cookie_header("cbtid", fresh))
        assert_cookie_welcome(o, "admin", "backend")

    run(scenario())


def test_cookie_expires_after_max_age(main):
    if CROSSBAR:
        pytest.skip("Crossbar.io's memory cookie store does not expire cookies (max_age only goes to the browser)")
    c = main.creds
    ep = main.ep("cookieshort")

    async def scenario():
        first = await login(ep, am.ticket("joe", c.t_joe))
        assert_welcome(first, "joe", "frontend", "ticket", "static")
        value = first.cookie("sbshort")
        assert value, f"no Set-Cookie sbshort in {first.response_headers}"
        assert first.cookie("cbtid") is None
        o = await login(ep, am.failing_challenge(["cookie"]), headers=cookie_header("sbshort", value))
        assert_cookie_welcome(o, "joe", "frontend")
        await asyncio.sleep(1.5)
        o = await login(ep, am.failing_challenge(["cookie"]), headers=cookie_header("sbshort", value))
        assert_refused(o, NO_AUTH_METHOD)

    run(scenario())


def cookie_file_config(c: Creds, port: int) -> dict:
    return am.node(
        [
            {
                "type": "universal",
                "endpoint": am.tcp(port),
                "websocket": {
                    "ws": {
                        "type": "websocket",
                        "auth": {"ticket": c.ticket_auth(), "cookie": {}},
                        "cookie": {"store": {"type": "file", "filename": "cookies.dat"}},
                    }
                },
            }
        ]
    )


def test_cookie_file_store_survives_restart(creds):
    port = free_tcp_port()
    nd = make_node_dir()
    cfg = cookie_file_config(creds, port)
    ep = am.Endpoint("ws", port, "/ws")
    r = launch_router(nd, cfg, [port])
    try:
        first = once(ep, am.ticket("admin", creds.t_admin))
        assert_welcome(first, "admin", "backend", "ticket", "static")
        cbtid = first.cookie("cbtid")
        assert cbtid, first.response_headers
        o = once(ep, am.failing_challenge(["cookie"]), headers=cookie_header("cbtid", cbtid))
        assert_cookie_welcome(o, "admin", "backend")
        assert (nd.config_dir / "cookies.dat").exists(), f"no cookies.dat in {nd.config_dir}"
        assert creds.t_admin not in (nd.config_dir / "cookies.dat").read_text(errors="replace")
        # restart on the same node dir
        assert r.terminate() is not None, "router did not stop on SIGTERM"
        r._log_file.close()
        r = launch_router(nd, cfg, [port])
        o = once(ep, am.failing_challenge(["cookie"]), headers=cookie_header("cbtid", cbtid))
        assert_cookie_welcome(o, "admin", "backend")
    finally:
        r.close()


# ---------------------------------------------------------------------------
# TLS: client certificates, tls-server-end-point
# ---------------------------------------------------------------------------


@dataclass
class TlsNode:
    router: Router
    ca: tm.CA
    server: tm.Issued
    ports: dict
    client_files: dict  # name -> (cert path, key path)
    certs: dict  # name -> Issued

    def ctx(self, client: str | None = None) -> ssl.SSLContext:
        ctx = self.ca.client_context()
        if client:
            ctx.load_cert_chain(*self.client_files[client])
        return ctx

    def ep(self, name: str, kind: str = "ws", client: str | None = None) -> am.Endpoint:
        return am.Endpoint(kind, self.ports[f"{name}_{kind}"], "/", self.ctx(client))


@pytest.fixture(scope="module")
def tls_node(creds):
    nd = make_node_dir()
    d = nd.config_dir
    ca = tm.CA()
    client_ca = tm.CA("Switchboard interop auth client CA")
    server = ca.issue_server_cert("ec")
    tm.write(d / "keys" / "server.key", server.key_pem())
    tm.write(d / "keys" / "server.crt", server.cert_pem())
    tm.write(d / "keys" / "client-ca.crt", client_ca.cert_pem())
    certs, files = {}, {}
    for name in ("client_0", "cn-user", "unknown-client"):
        issued = client_ca.issue_client_cert(name)
        certs[name] = issued
        files[name] = (tm.write(d / "client" / f"{name}.crt", issued.cert_pem()), tm.write(d / "client" / f"{name}.key", issued.key_pem()))
    principals = {"client_0": {"certificate-sha1": am.cert_sha1(certs["client_0"].cert), "role": "backend"}}
    if not CROSSBAR:  # Crossbar.io requires certificate-sha1 in every TLS principal
        principals["cn-user"] = {"role": "frontend"}
    tls_auth = {"type": "static", "principals": principals}
    server_tls = {"key": "keys/server.key", "certificate": "keys/server.crt"}
    mtls = dict(server_tls, ca_certificates=["keys/client-ca.crt"])
    names = ["mtls_ws", "mtls_rs", "tls_ws", "tls_rs"]
    ports = dict(zip(names, free_ports(len(names))))
    static = creds.static_auth()
    # Switchboard requires ca_certificates on a transport with tls authentication
    auth_mtls = {"tls": tls_auth, "ticket": static["ticket"], "cryptosign": static["cryptosign"]}
    auth_tls = {"ticket": static["ticket"], "cryptosign": static["cryptosign"]}
    transports = [
        am.ws_transport(ports["mtls_ws"], auth_mtls, mtls),
        am.rs_transport(ports["mtls_rs"], auth_mtls, mtls),
        am.ws_transport(ports["tls_ws"], auth_tls, server_tls),
        am.rs_transport(ports["tls_rs"], auth_tls, server_tls),
    ]
    r = launch_router(nd, am.node(transports), list(ports.values()))
    try:
        yield TlsNode(r, ca, server, ports, files, certs)
    finally:
        r.close()


@pytest.mark.parametrize("kind,serializer", [("ws", "json"), ("rs", "msgpack"), ("ws", "cbor")])
def test_tls_client_certificate_by_sha1(tls_node, kind, serializer):
    o = once(tls_node.ep("mtls", kind, "client_0"), am.failing_challenge(["tls"]), serializer)
    assert_welcome(o, "client_0", "backend", "tls", "static")
    assert not o.challenges


@sb_only
@pytest.mark.parametrize("kind", KINDS)
def test_tls_client_certificate_by_common_name(tls_node, kind):
    o = once(tls_node.ep("mtls", kind, "cn-user"), am.failing_challenge(["tls"]))
    assert_welcome(o, "cn-user", "frontend", "tls", "static")


def test_tls_certificate_decides_over_hello_authid(tls_node):
    """As Crossbar: the certificate says who the client is; an authid in HELLO
    that names another (or no) principal does not change that."""
    for asked in ("joe", "no-such-principal"):
        o = once(tls_node.ep("mtls", "ws", "client_0"), am.failing_challenge(["tls"], authid=asked))
        assert_welcome(o, "client_0", "backend", "tls", "static")


def test_tls_client_certificate_unknown(tls_node):
    o = once(tls_node.ep("mtls", "ws", "unknown-client"), am.failing_challenge(["tls"]))
    assert_refused(o, NO_SUCH_PRINCIPAL)


def test_tls_method_needs_a_client_certificate(tls_node, creds):
    # tls is not configured on this listener (no ca_certificates): passed over
    o = once(tls_node.ep("tls", "ws"), am.Auth(["tls"]).plus(am.ticket("joe", creds.t_joe)))
    assert_welcome(o, "joe", "frontend", "ticket", "static")
    assert_refused(once(tls_node.ep("tls", "rs"), am.failing_challenge(["tls"])), NO_AUTH_METHOD)


@sb_only
@pytest.mark.parametrize("kind", KINDS)
def test_tls_method_does_not_apply_without_a_client_certificate(tls_node, creds, kind):
    """Switchboard verifies client certificates when presented but does not
    require one (Crossbar.io's listener requires one with ca_certificates)."""
    o = once(tls_node.ep("mtls", kind), am.Auth(["tls"]).plus(am.ticket("joe", creds.t_joe)))
    assert_welcome(o, "joe", "frontend", "ticket", "static")
    assert_refused(once(tls_node.ep("mtls", kind), am.failing_challenge(["tls"])), NO_AUTH_METHOD)
    # with a certificate, tls comes first when listed first (no authid in HELLO)
    o = once(tls_node.ep("mtls", kind, "client_0"), am.Auth(["tls"]).plus(am.ticket(None, creds.t_joe)))
    assert_welcome(o, "client_0", "backend", "tls", "static")
    # ... and not when listed after a method that applies
    o = once(tls_node.ep("mtls", kind, "client_0"), am.ticket("joe", creds.t_joe).plus(am.Auth(["tls"])))
    assert_welcome(o, "joe", "frontend", "ticket", "static")


def test_cryptosign_over_tls_without_binding(tls_node, creds):
    o = once(tls_node.ep("tls", "ws"), am.cryptosign("carol@example.com", creds.carol))
    assert_welcome(o, "carol@example.com", "frontend", "cryptosign", "static")


@sb_only
@pytest.mark.parametrize("kind", KINDS)
def test_cryptosign_tls_server_end_point(tls_node, creds, kind):
    binding = am.tls_server_end_point(tls_node.server.cert)
    auth = am.cryptosign_manual("carol@example.com", creds.carol, channel_binding="tls-server-end-point", binding_data=binding)
    o = once(tls_node.ep("tls", kind), auth)
    assert_welcome(o, "carol@example.com", "frontend", "cryptosign", "static")
    # signing the bare challenge (no binding data) fails
    unbound = am.cryptosign_manual("carol@example.com", creds.carol, channel_binding="tls-server-end-point")
    assert_refused(once(tls_node.ep("tls", kind), unbound), DENIED)
    # binding data of another certificate fails
    other = am.tls_server_end_point(tls_node.ca.issue_server_cert("ec").cert)
    wrong = am.cryptosign_manual("carol@example.com", creds.carol, channel_binding="tls-server-end-point", binding_data=other)
    assert_refused(once(tls_node.ep("tls", kind), wrong), DENIED)


@sb_only
def test_cryptosign_tls_unique_over_tls_is_refused(tls_node, creds):
    auth = am.cryptosign_manual("carol@example.com", creds.carol, channel_binding="tls-unique")
    assert_refused(once(tls_node.ep("tls", "ws"), auth), FAILED, message_has="tls-unique")


# ---------------------------------------------------------------------------
# JWT tickets (Switchboard only)
# ---------------------------------------------------------------------------

ISSUER = "https://issuer.example.test"
AUDIENCE = "switchboard-interop"


@dataclass
class JwtNode:
    router: Router
    ports: dict
    keys: dict  # alg -> JwtKey
    outsider: am.JwtKey  # not in the JWKS, same kid as ES256

    def ep(self, name: str = "jwt", kind: str = "ws") -> am.Endpoint:
        return am.Endpoint(kind, self.ports[f"{name}_{kind}"])

    def token(self, sub="jwt-user", role="frontend", alg="ES256", **over) -> str:
        claims = am.jwt_claims(sub, role, ISSUER, AUDIENCE)
        claims.update(over)
        return self.keys[alg].sign({k: v for k, v in claims.items() if v is not None})


@pytest.fixture(scope="module")
def jwt_node():
    if CROSSBAR:
        pytest.skip("JWT tickets are Switchboard-only")
    nd = make_node_dir()
    keys = {alg: am.new_jwt_key(alg) for alg in ("ES256", "RS256", "EdDSA")}
    am.write_jwks(nd.config_dir / "jwks.json", list(keys.values()))
    abs_jwks = am.write_jwks(nd.config_dir / "other" / "jwks-custom.json", [keys["ES256"]])
    outsider = am.new_jwt_key("ES256", kid=keys["ES256"].kid)
    names = ["jwt_ws", "jwt_rs", "custom_ws"]
    ports = dict(zip(names, free_ports(len(names))))
    jwt_auth = {"ticket": {"type": "jwt", "jwks": "jwks.json", "issuer": ISSUER, "audience": AUDIENCE}}
    custom = {
        "ticket": {
            "type": "jwt",
            "jwks": str(abs_jwks.resolve()),
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "authid_claim": "email",
            "role_claim": "wamp_role",
            "leeway": 60,
        }
    }
    transports = [
        am.ws_transport(ports["jwt_ws"], jwt_auth),
        am.rs_transport(ports["jwt_rs"], jwt_auth),
        am.ws_transport(ports["custom_ws"], custom),
    ]
    r = launch_router(nd, am.node(transports), list(ports.values()))
    try:
        yield JwtNode(r, ports, keys, outsider)
    finally:
        r.close()


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
@pytest.mark.parametrize("kind,serializer", [("ws", "json"), ("rs", "cbor")])
def test_jwt_ticket(jwt_node, alg, kind, serializer):
    token = jwt_node.token(sub=f"user-{alg}", role="frontend", alg=alg)
    o = once(jwt_node.ep("jwt", kind), am.ticket(None, token), serializer)
    assert_welcome(o, f"user-{alg}", "frontend", "ticket", "jwt")


def test_jwt_role_claim_governs(jwt_node):
    o = once(jwt_node.ep(), am.ticket(None, jwt_node.token(sub="boss", role="backend")))
    assert_welcome(o, "boss", "backend", "ticket", "jwt")
    assert_refused(once(jwt_node.ep(), am.ticket(None, jwt_node.token(role="ghost"))), NO_SUCH_ROLE)


def _bad_tokens(n: JwtNode) -> dict:
    now = int(time.time())
    good = n.token()
    return {
        "expired": n.token(exp=now - 5, iat=now - 100, nbf=now - 100),
        "not-yet-valid": n.token(nbf=now + 120),
        "wrong-issuer": n.token(iss="https://evil.example.test"),
        "wrong-audience": n.token(aud="someone-else"),
        "unknown-key-same-kid": n.outsider.sign(am.jwt_claims("jwt-user", "frontend", ISSUER, AUDIENCE)),
        "unknown-kid": n.keys["ES256"].sign(am.jwt_claims("jwt-user", "frontend", ISSUER, AUDIENCE), kid="no-such-kid"),
        "alg-none": am.unsigned_jwt(am.jwt_claims("jwt-user", "frontend", ISSUER, AUDIENCE)),
        "tampered-role": am.tamper_jwt(good, role="backend"),
        "tampered-sub": am.tamper_jwt(good, sub="admin"),
        "truncated-signature": good[:-10],
        "garbage": "this is not a jwt",
        "empty": "",
    }


BAD_TOKENS = ["expired", "not-yet-valid", "wrong-issuer", "wrong-audience", "unknown-key-same-kid", "unknown-kid",
              "alg-none", "tampered-role", "tampered-sub", "truncated-signature", "garbage", "empty"]


def test_jwt_bad_tokens_are_denied(jwt_node):
    tokens = _bad_tokens(jwt_node)

    async def scenario():
        problems = []
        for name in BAD_TOKENS:
            o = await login(jwt_node.ep(), am.ticket(None, tokens[name]))
            if o.joined or o.reason != DENIED:
                problems.append(f"{name}: {o.describe()}")
        assert not problems, "\n".join(problems)

    run(scenario())


def test_jwt_custom_claims_leeway_and_absolute_jwks(jwt_node):
    now = int(time.time())
    key = jwt_node.keys["ES256"]
    claims = am.jwt_claims("ignored-sub", None, ISSUER, AUDIENCE, email="eve@example.com", wamp_role="backend")
    o = once(jwt_node.ep("custom"), am.ticket(None, key.sign(claims)))
    assert_welcome(o, "eve@example.com", "backend", "ticket", "jwt")
    # expired 10 s ago: within the custom transport's leeway (60 s), not the default one's (0)
    late = dict(claims, exp=now - 10, nbf=now - 100, iat=now - 100)
    assert_welcome(once(jwt_node.ep("custom"), am.ticket(None, key.sign(late))), "eve@example.com", "backend", "ticket", "jwt")
    late_default = dict(am.jwt_claims("jwt-user", "frontend", ISSUER, AUDIENCE), exp=now - 10, nbf=now - 100, iat=now - 100)
    assert_refused(once(jwt_node.ep(), am.ticket(None, key.sign(late_default))), DENIED)
    # only ES256 is in the custom JWKS
    rs = jwt_node.keys["RS256"].sign(claims)
    assert_refused(once(jwt_node.ep("custom"), am.ticket(None, rs)), DENIED)


# ---------------------------------------------------------------------------
# rate limit of failed logins (Switchboard only)
# ---------------------------------------------------------------------------


@sb_only
def test_auth_rate_limit(creds):
    port = free_tcp_port()
    nd = make_node_dir()
    window = 2
    cfg = am.node([am.ws_transport(port, {"ticket": creds.ticket_auth()}, auth_rate_limit={"failures": 3, "window": window})])
    r = launch_router(nd, cfg, [port])
    ep = am.Endpoint("ws", port)
    try:
        async def scenario():
            # successes do not count
            for _ in range(4):
                assert_welcome(await login(ep, am.ticket("joe", creds.t_joe)), "joe", "frontend", "ticket", "static")
            for _ in range(3):
                assert_refused(await login(ep, am.ticket("joe", "wrong")), DENIED)
            t_locked = time.monotonic()
            o = await login(ep, am.ticket("joe", creds.t_joe))
            assert_refused(o, DENIED, message_has="too many")
            o = await login(ep, am.ticket("admin", creds.t_admin), "cbor")
            assert_refused(o, DENIED, message_has="too many")
            await asyncio.sleep(max(0.0, window + 0.6 - (time.monotonic() - t_locked)))
            assert_welcome(await login(ep, am.ticket("joe", creds.t_joe)), "joe", "frontend", "ticket", "static")

        run(scenario())
    finally:
        r.close()


# ---------------------------------------------------------------------------
# secrets stay out of the log (Switchboard only)
# ---------------------------------------------------------------------------


@sb_only
def test_secrets_not_in_debug_log(creds, monkeypatch):
    """interop_router captures the router's stdout+stderr in router.log;
    --loglevel debug goes in by wrapping router_argv."""
    real_argv = interop_router.router_argv
    monkeypatch.setattr(interop_router, "router_argv", lambda nd, command="start": real_argv(nd, command) + ["--loglevel", "debug"])
    names = ["static_ws", "static_rs", "dyn_ws", "dyn_rs", "dynrealm_ws", "cookie_ws", "cookieshort_ws"]
    ports = dict(zip(names, free_ports(len(names))))
    nd = make_node_dir()
    r = launch_router(nd, am.node(main_transports(creds, ports)), list(ports.values()))
    wrong_ticket = am.secret("wrong-ticket")
    wrong_pw = am.secret("wrong-pw")
    try:
        main = Main(r, creds, ports)
        ep = main.ep("static")

        async def scenario():
            assert (await login(ep, am.ticket("joe", creds.t_joe))).joined
            assert not (await login(ep, am.ticket("joe", wrong_ticket))).joined
            assert not (await login(ep, am.ticket("nobody", wrong_ticket))).joined
            assert (await login(ep, am.wampcra("peter", creds.cra_peter))).joined
            assert (await login(ep, am.wampcra("salty", creds.cra_salty))).joined
            assert not (await login(ep, am.wampcra("peter", wrong_pw))).joined
            await login(ep, am.scram("alice", creds.pw_alice))  # (joined or not: only the log matters here)
            assert (await login(main.ep("cookie"), am.ticket("admin", creds.t_admin))).joined

        run(scenario())

        def dyn_scenario(authn):
            async def s():
                assert (await login(main.ep("dyn"), am.ticket("dyn-joe", creds.t_dyn))).joined
                assert not (await login(main.ep("dyn"), am.ticket("dyn-joe", wrong_ticket))).joined
                assert (await login(main.ep("dyn"), am.wampcra("dyn-peter", creds.cra_dyn))).joined
            return s()

        with_authenticator(main, lambda authn: dyn_scenario(authn))
        r.terminate()
        log = r.log_path.read_text(errors="replace")
        assert "DEBUG" in log or "debug" in log.lower(), f"no debug output in the log?\n{log[-2000:]}"
        secrets = {
            "joe's ticket": creds.t_joe,
            "admin's ticket": creds.t_admin,
            "dyno's ticket": creds.t_dyno,
            "ghost's ticket": creds.t_ghost,
            "a wrong ticket": wrong_ticket,
            "a wrong secret": wrong_pw,
            "peter's WAMP-CRA secret": creds.cra_peter,
            "salty's WAMP-CRA secret": creds.cra_salty,
            "joe's WAMP-CRA secret": creds.cra_joe,
            "the dynamic ticket": creds.t_dyn,
            "the dynamic WAMP-CRA secret": creds.cra_dyn,
            "alice's password": creds.pw_alice,
            "alice's SCRAM stored-key": creds.scram_alice["stored-key"],
            "alice's SCRAM server-key": creds.scram_alice["server-key"],
        }
        leaked = [what for what, s in secrets.items() if s in log]
        assert not leaked, f"secrets in the router's debug log ({r.log_path}): {leaked}"
    finally:
        r.close()
