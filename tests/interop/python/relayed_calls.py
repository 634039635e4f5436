"""What a call relayed to a callee on another router (over a link, or to another node of a
cluster) must keep, checked the same way for both: an ERROR's URI and payload, progressive
results in order, a CANCEL that interrupts the far callee, and a timeout that does too."""

from __future__ import annotations

import asyncio

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallOptions, RegisterOptions

from interop_client import bounded

PROCEDURES = ("com.example.fail", "com.example.count", "com.example.slow")


async def register_callees(callee) -> asyncio.Event:
    """Registers ``com.example.fail`` (an ERROR with payload), ``com.example.count`` (progressive
    results) and ``com.example.slow`` (until interrupted) on ``callee``; returns the event set
    when ``slow`` is interrupted."""
    interrupted = asyncio.Event()

    def fail():
        raise ApplicationError("com.example.error.nope", 1, 2, reason="because")

    async def count(n, details=None):
        for i in range(n):
            details.progress(i)
            await asyncio.sleep(0.01)
        return n

    async def slow():
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            interrupted.set()
            raise

    await callee.session.register(fail, "com.example.fail")
    await callee.session.register(count, "com.example.count", RegisterOptions(details_arg="details"))
    await callee.session.register(slow, "com.example.slow")
    return interrupted


async def check_relayed_calls(caller, interrupted: asyncio.Event) -> None:
    """Calls the procedures of ``register_callees`` from ``caller`` (once they route there)."""
    with pytest.raises(ApplicationError) as e:
        await caller.session.call("com.example.fail")
    assert e.value.error == "com.example.error.nope"
    assert e.value.args == (1, 2) and e.value.kwargs == {"reason": "because"}

    progress = []
    result = await caller.session.call(
        "com.example.count", 5, options=CallOptions(on_progress=lambda i: progress.append(i))
    )
    assert result == 5 and progress == [0, 1, 2, 3, 4]

    call = caller.session.call("com.example.slow")
    await asyncio.sleep(0.3)
    call.cancel()
    with pytest.raises((ApplicationError, asyncio.CancelledError)):
        await call
    await bounded(interrupted.wait(), "the far callee interrupted")

    interrupted.clear()
    with pytest.raises(ApplicationError) as e:
        await caller.session.call("com.example.slow", options=CallOptions(timeout=300))
    assert e.value.error in ("wamp.error.timeout", "wamp.error.canceled")
    await bounded(interrupted.wait(), "the far callee interrupted after the timeout")
