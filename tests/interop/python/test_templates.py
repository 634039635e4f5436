"""``switchboard init --template hello:python``, as its README says to run it: the app directory it
writes starts with ``switchboard start`` run inside it, the node hosts the Python backend
(``myapp/myapp.py``) as a component under ``SWITCHBOARD_PYTHON``, and an Autobahn|Python client
calls ``com.example.add2``, gets the counter and says hello to the backend. The page of every
hello template is checked in headless Chromium by ``tests/interop/browser/templates.js``.

``--template rest``: the curl lines of its README work as written (on this test's port), and an
Autobahn|Python subscriber gets the events they publish.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from autobahn.wamp.exception import ApplicationError

from interop_client import bounded, close_all, connect, eventually, run
from interop_router import NodeDir, free_tcp_port, launch_router, switchboard_bin
from test_components import call_when_registered

if os.environ.get("INTEROP_ROUTER", "switchboard") != "switchboard":
    pytest.skip("switchboard init is Switchboard's", allow_module_level=True)


@pytest.fixture(scope="module")
def app():
    parent = Path(tempfile.mkdtemp(prefix="sbinterop-template-"))
    init = subprocess.run(
        [str(switchboard_bin()), "init", "--template", "hello:python", "--appname", "myapp", "myapp"],
        cwd=parent, capture_output=True, text=True, timeout=30,
    )
    assert init.returncode == 0, init.stderr
    app_dir = parent / "myapp"
    assert (app_dir / "myapp" / "myapp.py").is_file(), init.stdout
    assert (app_dir / "myapp" / "web" / "index.html").is_file(), init.stdout

    # The template listens on 127.0.0.1:8080 like the default node; tests take a free port.
    nd = NodeDir(app_dir, app_dir / ".crossbar", "switchboard")
    config = json.loads(nd.config_path.read_text())
    assert config["workers"][0]["transports"][0]["endpoint"]["port"] == 8080
    port = free_tcp_port()
    config["workers"][0]["transports"][0]["endpoint"]["port"] = port

    previous = os.environ.get("SWITCHBOARD_PYTHON")
    os.environ["SWITCHBOARD_PYTHON"] = sys.executable
    try:
        router = launch_router(nd, config, [port], argv=[str(switchboard_bin()), "start", "."])
    finally:
        if previous is None:
            os.environ.pop("SWITCHBOARD_PYTHON", None)
        else:
            os.environ["SWITCHBOARD_PYTHON"] = previous
    try:
        yield router
    finally:
        router.close()
        if not os.environ.get("INTEROP_KEEP_NODE_DIR"):
            shutil.rmtree(parent, ignore_errors=True)


@pytest.mark.parametrize("transport,serializer", [("websocket_tcp", "json"), ("rawsocket_tcp", "cbor")])
def test_hello_python_backend_answers_add2_and_publishes_the_counter(app, transport, serializer):
    async def scenario():
        client = None
        try:
            client = await connect(app, transport, serializer)
            session = client.session
            assert await bounded(call_when_registered(session, "com.example.add2", 2, 3), "add2") == 5
            assert await session.call("com.example.add2", 40, 2) == 42

            counters = []
            await session.subscribe(counters.append, "com.example.oncounter")
            await eventually(lambda: len(counters) >= 2, "two counter events", timeout=10)
            assert counters[1] == counters[0] + 1, counters

            # Browsers and other clients join as anonymous: they may not register in the app's URIs.
            with pytest.raises(ApplicationError) as refused:
                await session.register(lambda: None, "com.example.add3")
            assert refused.value.error == "wamp.error.not_authorized"

            # The backend hears the hello, and says so in the node's log.
            greeting = f"hello from a {transport}/{serializer} test client"
            session.publish("com.example.onhello", greeting)
            await eventually(lambda: f"event for com.example.onhello: {greeting}" in app.log_tail(400),
                             "the backend's log line for onhello", timeout=10)
        finally:
            await close_all(client)

    run(scenario())


def test_hello_python_page_and_autobahn_js_are_served_from_the_node(app):
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{app.port}/", timeout=10) as r:
        page = r.read().decode()
    assert '<script src="autobahn.min.js"></script>' in page and "<title>myapp</title>" in page
    with urllib.request.urlopen(f"http://127.0.0.1:{app.port}/autobahn.min.js", timeout=10) as r:
        assert r.status == 200 and len(r.read()) > 100_000


def init_app(template: str) -> tuple[Path, Path]:
    """(parent, app dir) of ``switchboard init --template TEMPLATE --appname myapp myapp``."""
    parent = Path(tempfile.mkdtemp(prefix="sbinterop-template-"))
    init = subprocess.run(
        [str(switchboard_bin()), "init", "--template", template, "--appname", "myapp", "myapp"],
        cwd=parent, capture_output=True, text=True, timeout=30,
    )
    assert init.returncode == 0, init.stderr
    return parent, parent / "myapp"


def test_the_rest_templates_readme_curl_lines_work_as_written():
    curl = shutil.which("curl")
    assert curl, "curl is needed for this test: apt-get install curl"
    parent, app_dir = init_app("rest")
    port = free_tcp_port()
    readme = (app_dir / "README.md").read_text()
    lines = [line.strip() for line in readme.splitlines() if line.strip().startswith("curl ")]
    assert len(lines) == 3, readme
    nd = NodeDir(app_dir, app_dir / ".crossbar", "switchboard")
    config = json.loads(nd.config_path.read_text().replace("8080", str(port)))
    router = launch_router(nd, config, [port], argv=[str(switchboard_bin()), "start", "."])

    async def scenario():
        client = await connect(router, "websocket_tcp", "json")
        try:
            events = []
            for topic in ("com.example.onhttp", "com.example.webhook"):
                await client.session.subscribe(lambda *a, t=topic, **kw: events.append((t, a, kw)), topic)
            answers = []
            for line in lines:
                argv = shlex.split(line.replace("8080", str(port)))
                out = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=30)
                assert out.returncode == 0, (line, out.stderr)
                answers.append(out.stdout)
            published, counted, hooked = answers
            assert isinstance(json.loads(published)["id"], int), published
            (count,) = json.loads(counted)["args"]
            assert isinstance(count, int) and count >= 2, counted
            assert hooked == "OK", hooked
            await eventually(lambda: len(events) == 2, "the two events", timeout=10)
            by_topic = {t: (a, kw) for t, a, kw in events}
            assert by_topic["com.example.onhttp"] == (("Hello from curl",), {"n": 1}), events
            message = by_topic["com.example.webhook"][0][0]
            assert message["body"] == "anything at all, as a webhook would send it", message
        finally:
            await close_all(client)

    try:
        run(scenario())
    finally:
        router.close()
        shutil.rmtree(parent, ignore_errors=True)
