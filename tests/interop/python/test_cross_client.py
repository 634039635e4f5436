"""Cross-client interop: Autobahn|JS (Node, scripts under tests/interop/js/scripts)
talking to Autobahn|Python through the router, with different transports and
serializers on each side."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import os
import shutil
import subprocess

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallResult, PublishOptions

from interop_client import bounded, close_all, connect, run, unique_uri
from interop_router import REPO_ROOT

JS_DIR = REPO_ROOT / "tests" / "interop" / "js"
NODE = os.environ.get("NODE", "node")

# (JS side, Python side): every transport/serializer Autobahn|JS supports,
# each paired with a different serializer and transport on the Python side.
PAIRINGS = [
    (("websocket_tcp", "json"), ("rawsocket_unix", "cbor")),
    (("websocket_tcp", "msgpack"), ("rawsocket_tcp", "json")),
    (("websocket_tcp", "cbor"), ("websocket_unix", "msgpack")),
    (("rawsocket_tcp", "json"), ("websocket_tcp", "cbor")),
    (("rawsocket_unix", "json"), ("rawsocket_unix", "msgpack")),
]
PAIRING_IDS = [f"js_{jt}_{js}_python_{pt}_{ps}" for (jt, js), (pt, ps) in PAIRINGS]


def b64(b: bytes) -> dict:
    return {"$bytes": base64.b64encode(b).decode()}


def from_wire(v):
    """JSON from the JS scripts -> Python values ($bytes -> bytes)."""
    if isinstance(v, list):
        return [from_wire(x) for x in v]
    if isinstance(v, dict):
        if set(v) == {"$bytes"}:
            return base64.b64decode(v["$bytes"])
        if set(v) == {"$bigint"}:
            return int(v["$bigint"])
        return {k: from_wire(x) for k, x in v.items()}
    return v


@functools.lru_cache(maxsize=1)
def node_argv() -> list[str]:
    if shutil.which(NODE) is None:
        pytest.skip(f"{NODE} not found")
    if not (JS_DIR / "node_modules" / "autobahn").is_dir():
        pytest.skip(f"npm dependencies missing: run 'npm ci' in {JS_DIR}")
    major = int(subprocess.run([NODE, "-p", "process.versions.node.split('.')[0]"],
                               capture_output=True, text=True, timeout=30).stdout.strip())
    return [NODE, "--experimental-websocket"] if major < 22 else [NODE]


def js_target(router) -> dict:
    return {"wsUrl": router.ws_url, "port": router.port, "unixPath": router.unix_path}


async def run_js_script(script: str, spec: dict, timeout: float = 30.0) -> list[dict]:
    """Run a script to completion; returns its JSON output lines."""
    proc = await asyncio.create_subprocess_exec(
        *node_argv(), str(JS_DIR / "scripts" / script), json.dumps(spec),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=str(JS_DIR),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{script} did not finish within {timeout}s")
    lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    assert proc.returncode == 0, f"{script} exited {proc.returncode}: {lines!r}\nstderr:\n{err.decode()[-3000:]}"
    return lines


JS_ARGS = ["hello", 42, 2**40, 1.5, True, None, b64(b"\x00\x01\x02\xfe\xff"), [1, [2, 3]], {"k": "v"}]
JS_KWARGS = {"n": 2**40, "blob": b64(bytes(range(256))), "text": "héllo ✓", "empty": {}}
EXPECTED_ARGS = from_wire(JS_ARGS)
EXPECTED_KWARGS = from_wire(JS_KWARGS)


@pytest.mark.parametrize("js_side,py_side", PAIRINGS, ids=PAIRING_IDS)
def test_js_caller_reaches_python_callee(router, js_side, py_side):
    (js_transport, js_ser), (py_transport, py_ser) = js_side, py_side
    node_argv()

    async def scenario():
        callee = None
        try:
            callee = await connect(router, py_transport, py_ser)
            proc = unique_uri("com.example.cross.echo")
            seen = []

            def echo(*args, **kwargs):
                seen.append((list(args), kwargs))
                return CallResult("py:" + args[0], args[2] + 1, b"\x00\xffpy", *args, origin="python", **kwargs)

            await bounded(callee.session.register(echo, proc), "REGISTERED")
            lines = await run_js_script(
                "js_caller.js",
                {"target": js_target(router), "transport": js_transport, "serializer": js_ser,
                 "procedure": proc, "args": JS_ARGS, "kwargs": JS_KWARGS},
            )
            assert lines and "result" in lines[-1], f"JS caller got no RESULT: {lines!r}"
            # what the Python callee got in INVOCATION
            assert seen == [(EXPECTED_ARGS, EXPECTED_KWARGS)]
            assert type(seen[0][0][6]) is bytes and type(seen[0][1]["blob"]) is bytes
            # what the JS caller got in RESULT
            result = from_wire(lines[-1]["result"])
            assert result["args"] == ["py:hello", 2**40 + 1, b"\x00\xffpy", *EXPECTED_ARGS]
            assert result["kwargs"] == {"origin": "python", **EXPECTED_KWARGS}
        finally:
            await close_all(callee)

    run(scenario())


@pytest.mark.parametrize("js_side,py_side", PAIRINGS, ids=PAIRING_IDS)
def test_python_callee_error_reaches_js_caller_with_same_uri(router, js_side, py_side):
    (js_transport, js_ser), (py_transport, py_ser) = js_side, py_side
    node_argv()

    async def scenario():
        callee = None
        try:
            callee = await connect(router, py_transport, py_ser)
            proc = unique_uri("com.example.cross.fails")

            def fails(x):
                raise ApplicationError("com.example.error.cross", "no good", x, hint={"retry": False})

            await bounded(callee.session.register(fails, proc), "REGISTERED")
            lines = await run_js_script(
                "js_caller.js",
                {"target": js_target(router), "transport": js_transport, "serializer": js_ser,
                 "procedure": proc, "args": [7], "kwargs": {}},
            )
            assert lines and "error" in lines[-1], f"JS caller got no ERROR: {lines!r}"
            err = from_wire(lines[-1]["error"])
            assert err == {"error": "com.example.error.cross", "args": ["no good", 7], "kwargs": {"hint": {"retry": False}}}
        finally:
            await close_all(callee)

    run(scenario())


@pytest.mark.parametrize("js_side,py_side", PAIRINGS, ids=PAIRING_IDS)
def test_python_publisher_reaches_js_subscriber(router, js_side, py_side):
    (js_transport, js_ser), (py_transport, py_ser) = js_side, py_side
    argv = node_argv()

    async def scenario():
        pub = None
        sub = None
        try:
            topic = unique_uri("com.example.cross.topic")
            spec = {"target": js_target(router), "transport": js_transport, "serializer": js_ser,
                    "topic": topic, "count": 1, "timeout_s": 15}
            sub = await asyncio.create_subprocess_exec(
                *argv, str(JS_DIR / "scripts" / "js_subscriber.js"), json.dumps(spec),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=str(JS_DIR),
            )

            async def next_line():
                raw = await bounded(sub.stdout.readline(), "a line from js_subscriber.js", timeout=20)
                if not raw:
                    err = await bounded(sub.stderr.read(), "js_subscriber.js stderr")
                    raise AssertionError(f"js_subscriber.js ended early: {err.decode()[-3000:]}")
                return json.loads(raw)

            first = await next_line()
            assert first == {"ready": True}, f"js subscriber not ready: {first!r}"

            pub = await connect(router, py_transport, py_ser)
            payload_args = ["from python", 2**40, 1.5, b"\x00\x01\xfe\xff", [1, {"a": None}]]
            payload_kwargs = {"blob": bytes(range(256)), "flag": True, "text": "héllo ✓"}
            publication = await bounded(
                pub.session.publish(topic, *payload_args, options=PublishOptions(acknowledge=True), **payload_kwargs),
                "PUBLISHED",
            )
            assert publication.id

            line = await next_line()
            assert "event" in line, f"js subscriber reported {line!r}"
            event = from_wire(line["event"])
            assert event["args"] == payload_args
            assert event["kwargs"] == payload_kwargs
            code = await bounded(sub.wait(), "js_subscriber.js exit")
            assert code == 0
        finally:
            if sub is not None and sub.returncode is None:
                sub.kill()
                await sub.wait()
            await close_all(pub)

    run(scenario())
