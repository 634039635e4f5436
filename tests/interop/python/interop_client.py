"""Autobahn|Python (asyncio) client helpers for the interop tests.

Every session is driven by ``autobahn.asyncio.component.Component`` with
``max_retries: 0``, so a refused or lost connection is reported instead of
being retried.  Every await here is bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import uuid
from dataclasses import dataclass, field

import txaio

txaio.use_asyncio()

from autobahn.asyncio.component import Component  # noqa: E402
from autobahn.wamp.types import CloseDetails  # noqa: E402

from interop_router import REALM, Router  # noqa: E402

#: default bound on any single await (seconds)
TIMEOUT = float(os.environ.get("INTEROP_TIMEOUT", "10"))

TRANSPORTS = ("websocket_tcp", "rawsocket_tcp", "websocket_unix", "rawsocket_unix")
SERIALIZERS = ("json", "msgpack", "cbor")
#: (transport, serializer) pairs, ids like ``over_rawsocket_tcp_msgpack``
MATRIX = [(t, s) for t in TRANSPORTS for s in SERIALIZERS]
MATRIX_IDS = [f"over_{t}_{s}" for t, s in MATRIX]

if os.environ.get("INTEROP_LOG"):
    txaio.start_logging(level=os.environ["INTEROP_LOG"])


def unique_uri(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:12]}"


def transport_config(router: Router, transport: str, serializer: str, options: dict | None = None) -> dict:
    """Autobahn Component transport configuration for one of TRANSPORTS."""
    if transport == "websocket_tcp":
        cfg = {"type": "websocket", "url": router.ws_url, "serializers": [serializer]}
    elif transport == "websocket_unix":
        # the URL only provides the Host header and the request path
        cfg = {
            "type": "websocket",
            "url": "ws://localhost/ws",
            "endpoint": {"type": "unix", "path": router.unix_path, "timeout": int(TIMEOUT)},
            "serializers": [serializer],
        }
    elif transport == "rawsocket_tcp":
        cfg = {"type": "rawsocket", "url": router.rs_url, "serializer": serializer}
    elif transport == "rawsocket_unix":
        cfg = {
            "type": "rawsocket",
            "url": f"rs://unix:{router.unix_path}",
            "endpoint": {"type": "unix", "path": router.unix_path, "timeout": int(TIMEOUT)},
            "serializer": serializer,
        }
    else:
        raise ValueError(f"unknown transport {transport!r}")
    cfg["max_retries"] = 0
    if options:
        cfg["options"] = options
    return cfg


class SessionRefused(Exception):
    """The router ended the session before it was joined (e.g. ABORT)."""

    def __init__(self, details: CloseDetails | None, message: str):
        super().__init__(message)
        self.details = details
        self.reason = details.reason if details is not None else None


@dataclass
class Client:
    component: Component
    session: object
    join_details: object
    transport: str
    serializer: str
    left: asyncio.Future  # resolves to CloseDetails when the session leaves
    done: asyncio.Future = field(repr=False)

    async def close(self) -> None:
        """Leave the realm (GOODBYE) and wait for the component to finish.
        Never raises and never hangs."""
        try:
            if self.session.is_attached():
                await asyncio.wait_for(asyncio.ensure_future(self.component.stop()), TIMEOUT)
            await asyncio.wait_for(asyncio.shield(self.done), TIMEOUT)
        except BaseException:  # noqa: BLE001 - best-effort cleanup
            pass
        finally:
            try:
                if self.session.is_connected():
                    self.session.disconnect()
            except Exception:  # noqa: BLE001
                pass

    async def wait_left(self, timeout: float = TIMEOUT) -> CloseDetails:
        return await asyncio.wait_for(asyncio.shield(self.left), timeout)


async def connect(
    router: Router,
    transport: str = "websocket_tcp",
    serializer: str = "json",
    realm: str = REALM,
    options: dict | None = None,
    authentication: dict | None = None,
) -> Client:
    """Open a session and join ``realm``; raises SessionRefused if the
    router ends the session before WELCOME. ``authentication`` is Autobahn's
    Component argument (e.g. ``{"ticket": {"authid": ..., "ticket": ...}}``)."""
    return await connect_with(transport_config(router, transport, serializer, options), transport, serializer, realm,
                              authentication=authentication)


async def connect_with(
    transport_cfg: dict,
    transport: str,
    serializer: str,
    realm: str = REALM,
    session_factory=None,
    authentication: dict | None = None,
) -> Client:
    """Like ``connect`` for any Autobahn Component transport configuration
    (e.g. ``wss://`` with an ``ssl.SSLContext`` in ``endpoint.tls``);
    ``transport``/``serializer`` only label the client in messages.
    ``session_factory`` is the Component's (e.g. from ``session_announcing``)."""
    loop = asyncio.get_running_loop()
    txaio.config.loop = loop
    transport_cfg = dict(transport_cfg)
    transport_cfg.setdefault("max_retries", 0)
    comp = Component(transports=[transport_cfg], realm=realm, session_factory=session_factory,
                     authentication=authentication)
    joined: asyncio.Future = loop.create_future()
    left: asyncio.Future = loop.create_future()

    @comp.on_join
    def _on_join(session, details):
        if not joined.done():
            joined.set_result((session, details))

    @comp.on_leave
    def _on_leave(session, details):
        if not left.done():
            left.set_result(details)

    done = asyncio.ensure_future(comp.start(loop))
    # the component's 'done' future may fail (e.g. after ABORT); observe it so
    # asyncio does not log "exception never retrieved"
    done.add_done_callback(lambda f: f.cancelled() or f.exception())

    waiters = {joined, left, done}
    finished, _ = await asyncio.wait(waiters, timeout=TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
    if joined in finished or joined.done():
        session, details = joined.result()
        return Client(comp, session, details, transport, serializer, left, done)

    # not joined: refused, failed, or timed out
    if not finished:
        try:
            comp.stop()
        except Exception:  # noqa: BLE001
            pass
        raise TimeoutError(f"no WELCOME within {TIMEOUT}s ({transport}/{serializer}, realm {realm!r})")
    if not left.done():
        # give the leave event a moment in case 'done' fired first
        await asyncio.wait({left}, timeout=1.0)
    details = left.result() if left.done() else None
    err = None
    if done.done() and not done.cancelled():
        err = done.exception()
    raise SessionRefused(
        details,
        f"session to realm {realm!r} over {transport}/{serializer} ended before join: "
        f"details={details!r} component_error={err!r}",
    )


async def close_all(*clients: Client | None) -> None:
    await asyncio.gather(*(c.close() for c in clients if c is not None), return_exceptions=True)


def run(coro, timeout: float = 60.0):
    """Run a test scenario on a fresh event loop, bounded by ``timeout``."""

    async def bounded():
        # txaio (used by Autobahn for timers and futures) must use this loop
        txaio.config.loop = asyncio.get_running_loop()
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def bounded(awaitable, what: str, timeout: float = TIMEOUT):
    """Await with a timeout and a message saying what timed out."""
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


async def eventually(condition, what: str, timeout: float = TIMEOUT, interval: float = 0.01):
    """Poll ``condition()`` until it is true (returns its value), bounded by
    ``timeout``; fails with a message saying what did not happen. ``condition``
    may be a coroutine function (a call to the router, say): it is awaited."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


class WireLog:
    """The WAMP messages one session received and sent (Autobahn message
    objects, ``autobahn.wamp.message.*``), for checking what went over the
    wire where Autobahn's API does not show it (INTERRUPT, the ERROR for a
    cancelled call, CANCEL's options, ...). Made by ``spy``."""

    def __init__(self):
        self.received: list = []
        self.sent: list = []

    def got(self, cls, where=lambda m: True) -> list:
        """Received messages of class ``cls`` satisfying ``where``."""
        return [m for m in self.received if isinstance(m, cls) and where(m)]

    def put(self, cls, where=lambda m: True) -> list:
        """Sent messages of class ``cls`` satisfying ``where``."""
        return [m for m in self.sent if isinstance(m, cls) and where(m)]


def spy(session) -> WireLog:
    """Record every message ``session`` (a joined Autobahn ApplicationSession)
    receives and sends from now on."""
    log = WireLog()
    on_message = session.onMessage

    def recording_on_message(msg):
        log.received.append(msg)
        return on_message(msg)

    session.onMessage = recording_on_message
    transport = session._transport
    send = transport.send

    def recording_send(msg):
        log.sent.append(msg)
        return send(msg)

    transport.send = recording_send
    return log


@contextlib.contextmanager
def extra_options(session, message_class, **options):
    """While the block runs, every ``message_class`` message (e.g.
    ``autobahn.wamp.message.Call`` or ``.Publish``) that ``session`` sends
    carries ``options`` in its Options dict too.

    For WAMP options Autobahn|Python 26 has no API for: it dropped
    ``disclose_me`` from CallOptions and PublishOptions (identification is
    left to the router's role configuration), but the spec still defines it.
    ``session.call``/``session.publish`` send synchronously, so wrap just that
    call."""

    def marshal_options(self):
        merged = message_class.marshal_options(self)
        merged.update(options)
        return merged

    # same slots as message_class, so an instance may switch to it
    with_options = type(
        f"{message_class.__name__}WithOptions", (message_class,), {"__slots__": (), "marshal_options": marshal_options}
    )
    transport = session._transport
    had_own_send = "send" in vars(transport)
    send = transport.send

    def send_with_options(msg):
        if type(msg) is message_class:
            msg.__class__ = with_options
        return send(msg)

    transport.send = send_with_options
    try:
        yield
    finally:
        if had_own_send:
            transport.send = send
        else:
            del transport.send


def session_announcing(**features):
    """A Component ``session_factory`` whose HELLO announces Autobahn's
    default client roles with ``features`` changed, given as
    ``role__feature=value`` (e.g. ``callee__call_canceling=False``)."""
    from autobahn.asyncio.wamp import Session
    from autobahn.wamp import role as wamp_role

    roles = dict(wamp_role.DEFAULT_CLIENT_ROLES)
    for key, value in features.items():
        role_name, feature = key.split("__", 1)
        current = roles[role_name]
        attrs = {k: v for k, v in vars(current).items() if not k.startswith("_")}
        if feature not in attrs:
            raise ValueError(f"Autobahn's {role_name} role has no feature {feature!r}")
        attrs[feature] = value
        roles[role_name] = type(current)(**attrs)

    class AnnouncingSession(Session):
        def __init__(self, config=None):
            super().__init__(config)
            self._session_roles = roles

    return AnnouncingSession
