"""Graceful shutdown: SIGTERM makes the router say GOODBYE to every session
and exit with status 0."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time

import pytest
from autobahn.wamp.types import CloseDetails

from interop_client import SERIALIZERS, TRANSPORTS, close_all, connect, run
from interop_router import _can_connect_tcp, _can_connect_unix, switchboard_bin


def test_sigterm_makes_router_say_goodbye_to_sessions_on_every_transport_and_exit_zero(fresh_router):
    router = fresh_router
    outcome = {}

    async def scenario():
        clients = []
        try:
            # one session per transport, serializers rotating
            for i, transport in enumerate(TRANSPORTS):
                clients.append(await connect(router, transport, SERIALIZERS[i % len(SERIALIZERS)]))
            for c in clients:
                assert c.session.is_attached()

            router.proc.send_signal(signal.SIGTERM)

            for c in clients:
                try:
                    details = await c.wait_left(timeout=10)
                except asyncio.TimeoutError:
                    details = None
                outcome[f"{c.transport}/{c.serializer}"] = details
        finally:
            await close_all(*clients)

    run(scenario())

    try:
        code = router.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        code = "still running 10s after SIGTERM"

    problems = []
    for name, details in outcome.items():
        if details is None:
            problems.append(f"{name}: no leave within 10s of SIGTERM")
        elif details.reason == CloseDetails.REASON_TRANSPORT_LOST and router.kind == "switchboard":
            # (Crossbar.io itself just drops connections on SIGTERM, so this is
            # only enforced for the router under test)
            problems.append(f"{name}: transport dropped without GOODBYE ({details.message!r})")
        elif not details.reason.startswith("wamp."):
            problems.append(f"{name}: unexpected GOODBYE reason {details.reason!r}")
    if router.kind == "switchboard" and code != 0:
        problems.append(f"router exit status {code!r}, expected 0")
    seen = {k: (d.reason, d.message) if d is not None else None for k, d in outcome.items()}
    assert not problems, "; ".join(problems) + f"\nleave (reason, message) per session: {seen!r}"


def test_router_restarts_cleanly_on_the_same_unix_socket_path_after_sigterm(fresh_router):
    """A stale socket file from a previous (gracefully stopped) run must not
    stop the router from listening again."""
    router = fresh_router
    if router.kind != "switchboard":
        pytest.skip("only meaningful for switchboard (crossbar is started differently)")
    assert router.terminate(timeout=10) == 0
    log = open(router.node_dir / "router2.log", "wb")
    proc = subprocess.Popen(
        [str(switchboard_bin()), "start", str(router.node_dir)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    router.proc = proc  # the fixture cleans this one up
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None:
        if _can_connect_tcp(router.port) and _can_connect_unix(router.unix_path):
            break
        time.sleep(0.05)
    log.close()
    assert proc.poll() is None, (router.node_dir / "router2.log").read_text(errors="replace")[-3000:]

    async def scenario():
        c = await connect(router, "rawsocket_unix", "cbor")
        await close_all(c)

    run(scenario())
