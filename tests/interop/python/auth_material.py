"""Helpers for test_auth.py: credentials made at test time (WAMP-CRA
secrets, WAMP-SCRAM credentials, Ed25519 keys for WAMP-Cryptosign, JWTs and
a JWKS, TLS client certificates and their SHA-1 fingerprints) and an
Autobahn|Python (asyncio) client that authenticates with them.

The client (``auth_connect``) drives an ``ApplicationSession`` over a
``WampWebSocketClientFactory`` / ``WampRawSocketClientFactory`` directly
(not ``Component``, whose asyncio flavour drops the ``headers`` option):
it can send a Cookie header, it sees the upgrade response's headers
(Set-Cookie), every CHALLENGE it got and every signature it sent, and an
ABORT ends in an ``Outcome`` instead of an exception.

Conventions of the router side (Crossbar.io's, which Switchboard follows):

* WAMP-SCRAM principals carry ``salt`` as hex (as
  ``autobahn.wamp.auth.derive_scram_credential`` writes it); the CHALLENGE
  carries the salt bytes base64-encoded, which Autobahn's AuthScram decodes
  for argon2id.
* WAMP-CRA salted secrets: PBKDF2-HMAC-SHA256(secret, salt utf8, iterations,
  keylen), base64 (Autobahn's ``derive_key``).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import hmac
import inspect
import json
import os
import ssl
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import txaio

txaio.use_asyncio()

import jwt  # noqa: E402  (PyJWT)
import nacl.signing  # noqa: E402
from argon2.low_level import Type as Argon2Type  # noqa: E402
from argon2.low_level import hash_secret  # noqa: E402
from autobahn.asyncio.rawsocket import WampRawSocketClientFactory  # noqa: E402
from autobahn.asyncio.wamp import ApplicationSession  # noqa: E402
from autobahn.asyncio.websocket import WampWebSocketClientFactory, WampWebSocketClientProtocol  # noqa: E402
from autobahn.wamp import auth as ab_auth  # noqa: E402
from autobahn.wamp.serializer import CBORSerializer, JsonSerializer, MsgPackSerializer  # noqa: E402
from autobahn.wamp.types import ComponentConfig  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa  # noqa: E402
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm  # noqa: E402

from interop_client import TIMEOUT  # noqa: E402

# ---------------------------------------------------------------------------
# credentials
# ---------------------------------------------------------------------------


def secret(prefix: str) -> str:
    """A random secret, unique enough to be searched for in a log."""
    return f"{prefix}-{uuid.uuid4().hex}"


def wampcra_signing_key(secret_: str, salt: str | None = None, iterations: int = 1000, keylen: int = 32) -> bytes:
    """What Autobahn signs WAMP-CRA challenges with."""
    if salt is None:
        return secret_.encode("utf8")
    return ab_auth.derive_key(secret_.encode("utf8"), salt.encode("utf8"), iterations, keylen)


def wampcra_sign(key: bytes, challenge: str) -> str:
    return ab_auth.compute_wcs(key, challenge.encode("utf8")).decode("ascii")


def _scram_keys(salted_password: bytes) -> tuple[bytes, bytes]:
    client_key = hmac.new(salted_password, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted_password, b"Server Key", hashlib.sha256).digest()
    return stored_key, server_key


def scram_argon2_credential(password: str, iterations: int = 8, memory: int = 512, salt: bytes | None = None) -> dict:
    """A WAMP-SCRAM argon2id-13 principal (without role), computed exactly
    as ``autobahn.wamp.auth.derive_scram_credential`` does, but with a
    chosen time cost (Autobahn's fixed 4096 takes over a second per
    derivation, and the client derives again on every login)."""
    salt = salt or os.urandom(16)
    encoded = hash_secret(
        secret=password.encode("utf8"),
        salt=salt,
        time_cost=iterations,
        memory_cost=memory,
        parallelism=1,
        hash_len=32,
        type=Argon2Type.ID,
        version=19,
    )
    salted_password = encoded.decode("ascii").split("$")[-1].encode("ascii")  # base64 text, as Autobahn
    stored_key, server_key = _scram_keys(salted_password)
    return {
        "kdf": "argon2id-13",
        "iterations": iterations,
        "memory": memory,
        "salt": salt.hex(),
        "stored-key": stored_key.hex(),
        "server-key": server_key.hex(),
    }


def scram_pbkdf2_salted_password(password: str, challenge_salt: str, iterations: int) -> bytes:
    """SaltedPassword for kdf pbkdf2: PBKDF2-HMAC-SHA256 over the password
    with the CHALLENGE's salt string (utf8) as salt, 32 bytes."""
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf8"), challenge_salt.encode("utf8"), iterations, 32)


def scram_pbkdf2_credential(password: str, iterations: int = 1000, salt: bytes | None = None) -> dict:
    """A WAMP-SCRAM pbkdf2 principal (without role). The salt is configured
    as hex; the router sends it base64-encoded in the CHALLENGE, and that
    string is the KDF salt (see ``scram_pbkdf2_salted_password``)."""
    salt = salt or os.urandom(16)
    salted_password = scram_pbkdf2_salted_password(password, base64.b64encode(salt).decode("ascii"), iterations)
    stored_key, server_key = _scram_keys(salted_password)
    return {
        "kdf": "pbkdf2",
        "iterations": iterations,
        "memory": 0,
        "salt": salt.hex(),
        "stored-key": stored_key.hex(),
        "server-key": server_key.hex(),
    }


@dataclass
class Ed25519Key:
    """A WAMP-Cryptosign key pair."""

    signing: nacl.signing.SigningKey

    @classmethod
    def generate(cls) -> "Ed25519Key":
        return cls(nacl.signing.SigningKey.generate())

    @property
    def privkey_hex(self) -> str:
        return self.signing.encode().hex()  # the 32-byte seed, as AuthCryptoSign takes it

    @property
    def pubkey_hex(self) -> str:
        return self.signing.verify_key.encode().hex()

    def sign_challenge(self, challenge_hex: str, channel_binding_data: bytes | None = None) -> str:
        """Cryptosign's AUTHENTICATE signature: the 64-byte Ed25519 signature
        of the challenge (XOR the channel binding data), followed by the
        32 bytes signed, hex."""
        data = bytes.fromhex(challenge_hex)
        if channel_binding_data is not None:
            assert len(channel_binding_data) == len(data) == 32
            data = bytes(a ^ b for a, b in zip(data, channel_binding_data))
        signed = self.signing.sign(data)  # signature (64) + message (32)
        return signed.signature.hex() + data.hex()


def cert_sha1(cert: x509.Certificate) -> str:
    """Uppercase colon-separated hex SHA-1 of the DER certificate, as Crossbar
    writes ``certificate-sha1``."""
    digest = cert.fingerprint(hashes.SHA1()).hex().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def tls_server_end_point(cert: x509.Certificate) -> bytes:
    """RFC 5929 tls-server-end-point channel binding data for a certificate
    signed with SHA-256 (or weaker): SHA-256 of its DER encoding."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()


# ---------------------------------------------------------------------------
# JWT
# ---------------------------------------------------------------------------


@dataclass
class JwtKey:
    kid: str
    alg: str
    private: Any

    def public_jwk(self) -> dict:
        pub = self.private.public_key()
        if self.alg == "ES256":
            jwk = ECAlgorithm.to_jwk(pub, as_dict=True)
        elif self.alg == "RS256":
            jwk = RSAAlgorithm.to_jwk(pub, as_dict=True)
        elif self.alg == "EdDSA":
            jwk = OKPAlgorithm.to_jwk(pub, as_dict=True)
        else:
            raise ValueError(self.alg)
        jwk.update({"kid": self.kid, "alg": self.alg, "use": "sig"})
        return jwk

    def sign(self, claims: dict, headers: dict | None = None, kid: str | None = "default") -> str:
        hdr = dict(headers or {})
        if kid is not None:
            hdr["kid"] = self.kid if kid == "default" else kid
        return jwt.encode(claims, self.private, algorithm=self.alg, headers=hdr)


def new_jwt_key(alg: str, kid: str | None = None) -> JwtKey:
    if alg == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif alg == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg == "EdDSA":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(alg)
    return JwtKey(kid or f"{alg.lower()}-{uuid.uuid4().hex[:8]}", alg, key)


def write_jwks(path: Path, keys: list[JwtKey]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"keys": [k.public_jwk() for k in keys]}, indent=2))
    return path


def jwt_claims(sub: str, role: str | None, issuer: str, audience: str, lifetime: int = 300, **extra) -> dict:
    now = int(time.time())
    claims = {"sub": sub, "iss": issuer, "aud": audience, "iat": now, "nbf": now - 5, "exp": now + lifetime}
    if role is not None:
        claims["role"] = role
    claims.update(extra)
    return {k: v for k, v in claims.items() if v is not None}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unsigned_jwt(claims: dict) -> str:
    """An ``alg: none`` token."""
    return f"{b64url(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{b64url(json.dumps(claims).encode())}."


def tamper_jwt(token: str, **claims) -> str:
    """The token with its payload changed (claims updated), signature kept."""
    header, payload, sig = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body.update(claims)
    return f"{header}.{b64url(json.dumps(body).encode())}.{sig}"


# ---------------------------------------------------------------------------
# client side
# ---------------------------------------------------------------------------

SERIALIZER_CLASSES = {"json": JsonSerializer, "msgpack": MsgPackSerializer, "cbor": CBORSerializer}


@dataclass
class Endpoint:
    """Where to connect: WebSocket (``ws``) or RawSocket (``rs``), TCP, with
    an optional client ``ssl.SSLContext``."""

    kind: str  # "ws" or "rs"
    port: int
    path: str = "/"
    ssl: ssl.SSLContext | None = None
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        if self.kind == "ws":
            return f"{'wss' if self.ssl else 'ws'}://{self.host}:{self.port}{self.path}"
        return f"{'rss' if self.ssl else 'rs'}://{self.host}:{self.port}"

    def with_ssl(self, ctx: ssl.SSLContext) -> "Endpoint":
        return Endpoint(self.kind, self.port, self.path, ctx, self.host)


Responder = Callable[[ApplicationSession, Any], Any]  # (session, Challenge) -> signature (str, or awaitable)


@dataclass
class Auth:
    """What a client announces in HELLO and how it answers CHALLENGEs.

    ``methods`` None sends HELLO without authmethods; ``responders`` maps
    an authmethod to a function answering its CHALLENGE; ``welcome_checks``
    maps an authmethod to a function(session, Welcome) that returns None
    when WELCOME is acceptable (else the client aborts)."""

    methods: list[str] | None = None
    authid: str | None = None
    authextra: dict | None = None
    authrole: str | None = None
    responders: dict = field(default_factory=dict)
    welcome_checks: dict = field(default_factory=dict)

    def plus(self, other: "Auth") -> "Auth":
        """Both: methods in order self, other; authids must agree."""
        if self.authid and other.authid and self.authid != other.authid:
            raise ValueError("authids differ")
        extra = dict(self.authextra or {})
        extra.update(other.authextra or {})
        return Auth(
            (self.methods or []) + (other.methods or []),
            self.authid or other.authid,
            extra or None,
            self.authrole or other.authrole,
            {**self.responders, **other.responders},
            {**self.welcome_checks, **other.welcome_checks},
        )


def anonymous(methods: list[str] | None = None) -> Auth:
    return Auth(methods)


def ticket(authid: str | None, ticket_: str, authextra: dict | None = None) -> Auth:
    return Auth(["ticket"], authid, authextra, responders={"ticket": lambda s, c: ticket_})


def wampcra(authid: str, secret_: str) -> Auth:
    """Autobahn's own AuthWampCra answers."""
    authenticator = ab_auth.AuthWampCra(authid=authid, secret=secret_)
    return Auth(["wampcra"], authid, None, responders={"wampcra": authenticator.on_challenge})


def scram(authid: str, password: str) -> Auth:
    """Autobahn's own AuthScram (argon2id-13): its nonce goes in HELLO's
    authextra, its on_welcome checks scram_server_signature."""
    authenticator = ab_auth.AuthScram(authid=authid, password=password)
    return Auth(
        ["scram"],
        authid,
        dict(authenticator.authextra),
        responders={"scram": authenticator.on_challenge},
        welcome_checks={"scram": lambda session, msg: authenticator.on_welcome(session, msg.authextra)},
    )


class ScramPbkdf2Client:
    """WAMP-SCRAM with kdf pbkdf2, written out (Autobahn 26.10.2's pbkdf2
    path passes the challenge's str salt to its bytes-only pbkdf2()).

    AuthMessage = "n={authid},r={client_nonce},r={server_nonce},s={salt},i={iterations},c={cb},r={server_nonce}"
    ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage)."""

    def __init__(self, authid: str, password: str):
        self.authid = authid
        self.password = password
        self.client_nonce = base64.b64encode(os.urandom(16)).decode("ascii")
        self.auth_message: bytes | None = None
        self.salted_password: bytes | None = None
        self.server_signature_ok: bool | None = None

    def on_challenge(self, session, challenge) -> str:
        extra = challenge.extra
        assert extra["kdf"] == "pbkdf2", extra
        server_nonce = extra["nonce"]
        salt = extra["salt"]
        iterations = int(extra["iterations"])
        cb = extra.get("channel_binding") or ""
        self.auth_message = (
            f"n={self.authid},r={self.client_nonce},r={server_nonce},s={salt},i={iterations},c={cb},r={server_nonce}"
        ).encode("ascii")
        self.salted_password = scram_pbkdf2_salted_password(self.password, salt, iterations)
        client_key = hmac.new(self.salted_password, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        client_signature = hmac.new(stored_key, self.auth_message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, client_signature))
        return base64.b64encode(proof).decode("ascii")

    def expected_server_signature(self) -> str:
        server_key = hmac.new(self.salted_password, b"Server Key", hashlib.sha256).digest()
        return base64.b64encode(hmac.new(server_key, self.auth_message, hashlib.sha256).digest()).decode("ascii")

    def on_welcome(self, session, msg):
        got = (msg.authextra or {}).get("scram_server_signature")
        self.server_signature_ok = got == self.expected_server_signature()
        return None if self.server_signature_ok else f"bad scram_server_signature {got!r}"

    def auth(self) -> Auth:
        return Auth(
            ["scram"],
            self.authid,
            {"nonce": self.client_nonce},
            responders={"scram": self.on_challenge},
            welcome_checks={"scram": self.on_welcome},
        )


def cryptosign(authid: str | None, key: Ed25519Key, authextra: dict | None = None) -> Auth:
    """Autobahn's own AuthCryptoSign (HELLO authextra pubkey)."""
    kw = {"privkey": key.privkey_hex}
    if authid is not None:
        kw["authid"] = authid
    extra = {"pubkey": key.pubkey_hex}
    extra.update(authextra or {})
    kw["authextra"] = dict(extra)
    authenticator = ab_auth.AuthCryptoSign(**kw)
    return Auth(["cryptosign"], authid, dict(authenticator.authextra), responders={"cryptosign": authenticator.on_challenge})


def cryptosign_manual(
    authid: str | None,
    key: Ed25519Key,
    announce_pubkey: str | None = None,
    channel_binding: str | None = None,
    binding_data: bytes | None = None,
) -> Auth:
    """Cryptosign answered by hand (PyNaCl): optionally a channel binding
    type in HELLO and binding data XORed into the signed challenge."""
    extra = {"pubkey": announce_pubkey or key.pubkey_hex}
    if channel_binding:
        extra["channel_binding"] = channel_binding
    return Auth(
        ["cryptosign"],
        authid,
        extra,
        responders={"cryptosign": lambda s, c: key.sign_challenge(c.extra["challenge"], binding_data)},
    )


def replaying(method: str, authid: str | None, signature: str, authextra: dict | None = None) -> Auth:
    """Answers any CHALLENGE of ``method`` with a signature captured before."""
    return Auth([method], authid, authextra, responders={method: lambda s, c: signature})


def failing_challenge(methods: list[str], authid: str | None = None, authextra: dict | None = None) -> Auth:
    """A client that does not expect any CHALLENGE (the test checks
    ``Outcome.challenges``; a CHALLENGE makes the client abort)."""
    return Auth(methods, authid, authextra)


@dataclass
class Outcome:
    """How one connection's opening handshake ended."""

    session: ApplicationSession | None = None
    details: Any = None  # SessionDetails once joined
    welcome: Any = None  # the WELCOME message
    abort: Any = None  # CloseDetails when the session ended before (or after) join
    challenges: list = field(default_factory=list)
    signatures: list = field(default_factory=list)
    response_headers: dict = field(default_factory=dict)
    error: BaseException | None = None  # connection-level failure (no WAMP session)
    _left: asyncio.Future | None = field(default=None, repr=False)
    _lost: asyncio.Future | None = field(default=None, repr=False)
    _transport: Any = field(default=None, repr=False)

    @property
    def joined(self) -> bool:
        return self.details is not None

    @property
    def reason(self) -> str | None:
        return self.abort.reason if self.abort is not None else None

    @property
    def message(self) -> str:
        return (self.abort.message or "") if self.abort is not None else ""

    def describe(self) -> str:
        if self.joined:
            w = self.welcome
            return (
                f"joined: authid={w.authid!r} authrole={w.authrole!r} authmethod={w.authmethod!r} "
                f"authprovider={w.authprovider!r} authextra={w.authextra!r}; challenges={self._chl()}"
            )
        if self.abort is not None:
            return f"ABORT {self.abort.reason!r} {self.abort.message!r}; challenges={self._chl()}"
        return f"no session: {self.error!r}; challenges={self._chl()}"

    def _chl(self) -> list:
        return [(c.method, c.extra) for c in self.challenges]

    def cookie(self, name: str = "cbtid") -> str | None:
        """The value of a ``Set-Cookie: name=...`` in the upgrade response."""
        raw = self.response_headers.get("set-cookie")
        values = raw if isinstance(raw, (list, tuple)) else [raw] if raw else []
        for v in values:
            first = v.split(";", 1)[0].strip()
            if "=" in first:
                k, val = first.split("=", 1)
                if k.strip() == name:
                    return val.strip()
        return None

    async def close(self) -> None:
        """Leave (GOODBYE) and drop the connection; never raises."""
        try:
            s = self.session
            if s is not None and s.is_attached():
                s.leave()
                await asyncio.wait({self._lost}, timeout=TIMEOUT)
        except Exception:  # noqa: BLE001
            pass
        finally:
            try:
                if self._transport is not None:
                    self._transport.close()
            except Exception:  # noqa: BLE001
                pass


class _CapturingWsProtocol(WampWebSocketClientProtocol):
    def onConnect(self, response):
        self.factory._outcome.response_headers.update(response.headers)
        return super().onConnect(response)


class AuthSession(ApplicationSession):
    def __init__(self, config, auth: Auth, outcome: Outcome, joined: asyncio.Future):
        super().__init__(config)
        self._auth = auth
        self._outcome = outcome
        self._joined = joined

    def onConnect(self):
        a = self._auth
        self.join(self.config.realm, authmethods=a.methods, authid=a.authid, authrole=a.authrole, authextra=a.authextra)

    async def onChallenge(self, challenge):
        self._outcome.challenges.append(challenge)
        responder = self._auth.responders.get(challenge.method)
        if responder is None:
            raise RuntimeError(f"unexpected CHALLENGE for {challenge.method!r}")
        sig = responder(self, challenge)
        if inspect.isawaitable(sig) or asyncio.isfuture(sig):
            sig = await sig
        if isinstance(sig, bytes):
            sig = sig.decode("ascii")
        self._outcome.signatures.append(sig)
        return sig

    def onWelcome(self, msg):
        self._outcome.welcome = msg
        check = self._auth.welcome_checks.get(msg.authmethod)
        return check(self, msg) if check else None

    def onJoin(self, details):
        self._outcome.details = details
        if not self._joined.done():
            self._joined.set_result(True)

    def onLeave(self, details):
        if self._outcome.abort is None:
            self._outcome.abort = details
        if not self._outcome._left.done():
            self._outcome._left.set_result(details)
        return super().onLeave(details)

    def onDisconnect(self):
        if not self._outcome._lost.done():
            self._outcome._lost.set_result(True)


async def auth_connect(
    ep: Endpoint,
    auth: Auth,
    serializer: str = "json",
    realm: str = "realm1",
    headers: dict | None = None,
    timeout: float = TIMEOUT,
) -> Outcome:
    """Connect, send HELLO as ``auth`` says, answer CHALLENGEs; returns once
    the session is joined, refused (ABORT) or the connection is lost."""
    loop = asyncio.get_running_loop()
    txaio.config.loop = loop
    outcome = Outcome()
    outcome._left = loop.create_future()
    outcome._lost = loop.create_future()
    joined = loop.create_future()

    def make_session():
        s = AuthSession(ComponentConfig(realm), auth, outcome, joined)
        outcome.session = s
        return s

    ser = SERIALIZER_CLASSES[serializer]()
    if ep.kind == "ws":
        factory = WampWebSocketClientFactory(make_session, url=ep.url, serializers=[ser], headers=headers or {}, loop=loop)
        factory.protocol = _CapturingWsProtocol
        factory._outcome = outcome
    elif ep.kind == "rs":
        factory = WampRawSocketClientFactory(make_session, serializer=ser)
    else:
        raise ValueError(ep.kind)
    try:
        transport, _ = await asyncio.wait_for(
            loop.create_connection(factory, ep.host, ep.port, ssl=ep.ssl, server_hostname=ep.host if ep.ssl else None),
            timeout,
        )
    except (OSError, ssl.SSLError, asyncio.TimeoutError) as e:
        outcome.error = e
        return outcome
    outcome._transport = transport
    done, _ = await asyncio.wait({joined, outcome._left, outcome._lost}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    if not done:
        transport.close()
        raise AssertionError(f"no WELCOME/ABORT within {timeout}s from {ep.url}; {outcome.describe()}")
    if outcome._lost in done and not joined.done() and not outcome._left.done():
        # give a racing leave/join a moment
        await asyncio.wait({joined, outcome._left}, timeout=0.2, return_when=asyncio.FIRST_COMPLETED)
    if not joined.done() and outcome.abort is None and outcome.error is None:
        outcome.error = ConnectionError("connection closed without WELCOME or ABORT")
    return outcome


# ---------------------------------------------------------------------------
# misc
# ---------------------------------------------------------------------------


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


# ---------------------------------------------------------------------------
# node configurations
# ---------------------------------------------------------------------------

ALL = {"call": True, "register": True, "publish": True, "subscribe": True}


def permissions_all() -> list:
    return [{"uri": "", "match": "prefix", "allow": dict(ALL)}]


#: the "frontend" role: may call and subscribe under com.example., nothing
#: else (no register, no publish); callees see who called
FRONTEND_PERMISSIONS = [
    {
        "uri": "com.example.",
        "match": "prefix",
        "allow": {"call": True, "register": False, "publish": False, "subscribe": True},
        "disclose": {"caller": True, "publisher": True},
    }
]

AUTHENTICATOR = "com.example.authenticate"
AUTHENTICATOR_ELSEWHERE = "com.example.authenticate.elsewhere"
AUTHORIZER = "com.example.authorize"
AUTH_REALM = "authrealm"
INVALIDATE = "switchboard.authorization.invalidate"


def realms(realm: str = "realm1") -> list:
    return [
        {
            "name": realm,
            "roles": [
                {"name": "anonymous", "permissions": permissions_all()},
                {"name": "backend", "permissions": permissions_all()},
                {"name": "frontend", "permissions": FRONTEND_PERMISSIONS},
                {"name": "dyn", "authorizer": AUTHORIZER},
            ],
        },
        # "ghost" exists on authrealm only: a principal with it may not join realm1
        {
            "name": AUTH_REALM,
            "roles": [{"name": "anonymous", "permissions": permissions_all()}, {"name": "ghost", "permissions": permissions_all()}],
        },
    ]


def tcp(port: int, tls: dict | None = None) -> dict:
    ep = {"type": "tcp", "port": port, "interface": "127.0.0.1"}
    if tls:
        ep["tls"] = tls
    return ep


def ws_transport(port: int, auth: dict, tls: dict | None = None, **extra) -> dict:
    t = {"type": "websocket", "endpoint": tcp(port, tls), "auth": auth}
    t.update(extra)
    return t


def rs_transport(port: int, auth: dict, tls: dict | None = None, **extra) -> dict:
    t = {"type": "rawsocket", "endpoint": tcp(port, tls), "auth": auth}
    t.update(extra)
    return t


def node(transports: list, realm: str = "realm1") -> dict:
    return {"version": 2, "workers": [{"type": "router", "realms": realms(realm), "transports": transports}]}


def dynamic(procedure: str, realm: str | None = None) -> dict:
    d = {"type": "dynamic", "authenticator": procedure}
    if realm:
        d["authenticator-realm"] = realm
    return d


def with_role(principal: dict, role: str) -> dict:
    return dict(principal, role=role)
