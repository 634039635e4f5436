"""The HTTP bridge with Crossbar's config and wire format: ``publisher``, ``caller`` and
``webhook`` web paths, and the outbound half, Crossbar's built-in ``RESTCallee`` and
``MessageForwarder`` components against an HTTP server this test runs. curl (Crossbar's documented command, unchanged) and Python's HTTP client
publish and call; Autobahn|Python sessions subscribe and register on the other side. Signed
requests follow Crossbar's documentation (base64url HMAC-SHA256 over key, timestamp, seq, nonce
and body); a wrong signature, an old timestamp, a replayed request, a too-large body or a
disallowed address each get Crossbar's status and error body, and nothing is published. The
path's session acts with the path's role, authorized like any other.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import http.server
import threading
import hashlib
import hmac
import json
import os
import random
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions, RegisterOptions

from interop_client import bounded, close_all, connect, eventually, run
from interop_router import free_tcp_port, launch_router, make_node_dir, run_router_command

if os.environ.get("INTEROP_ROUTER", "switchboard") != "switchboard":
    pytest.skip("runs the same config against Switchboard only (Crossbar needs its own node)", allow_module_level=True)

KEY, SECRET = "foobar", "secret-" + os.urandom(8).hex()
GITHUB_SECRET = "gh-" + os.urandom(8).hex()

ALL = {"call": True, "register": True, "publish": True, "subscribe": True}


def bridge(kind: str, role: str = "anonymous", **options) -> dict:
    return {"type": kind, "realm": "realm1", "role": role, "options": options}


class Upstream:
    """A local HTTP server that records each request and answers it with a JSON echo of it."""

    def __init__(self):
        self.requests = []
        upstream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                seen = {"method": self.command, "path": self.path, "body": body,
                        "headers": {k.lower(): v for k, v in self.headers.items()}}
                upstream.requests.append(seen)
                out = json.dumps(seen).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Upstream", "yes")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = answer

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture(scope="module")
def upstream():
    u = Upstream()
    try:
        yield u
    finally:
        u.close()


@pytest.fixture(scope="module")
def node(upstream):
    port = free_tcp_port()
    signed = {"key": KEY, "secret": SECRET, "post_body_limit": 1024, "timestamp_delta_limit": 10,
              "require_ip": ["192.168.1.1/255.255.255.0", "127.0.0.1"], "require_tls": False}
    config = {
        "version": 2,
        "workers": [{
            "type": "router",
            "realms": [{"name": "realm1", "roles": [
                {"name": "anonymous", "permissions": [{"uri": "", "match": "prefix", "allow": ALL}]},
                {"name": "narrow", "permissions": [
                    {"uri": "com.allowed.", "match": "prefix", "allow": {"publish": True, "call": True}}]},
            ]}],
            "transports": [{
                "type": "universal",
                "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
                "rawsocket": {},
                "websocket": {"ws": {"type": "websocket"}},
                "web": {"paths": {
                    "publish": bridge("publisher", debug=True),
                    "publish-signed": bridge("publisher", **signed),
                    "publish-elsewhere": bridge("publisher", require_ip=["10.0.0.0/8"]),
                    "publish-tls": bridge("publisher", require_tls=True),
                    "publish-narrow": bridge("publisher", role="narrow"),
                    "call": bridge("caller"),
                    "call-signed": bridge("caller", **signed),
                    "webhook": bridge("webhook", topic="com.example.webhook"),
                    "webhook-github": bridge("webhook", topic="com.example.github", github_secret=GITHUB_SECRET,
                                             success_response="thanks", error_response="sorry"),
                }},
            }],
            # Crossbar's built-in REST components, configured as its rest/callee and
            # rest/subscriber examples configure them
            "components": [
                {"type": "class", "classname": "crossbar.bridge.rest.RESTCallee", "realm": "realm1",
                 "extra": {"procedure": "com.myapp.rest", "baseurl": f"http://127.0.0.1:{upstream.port}/base/"}},
                {"type": "class", "classname": "crossbar.bridge.rest.MessageForwarder", "realm": "realm1",
                 "extra": {"subscriptions": [{"url": f"http://127.0.0.1:{upstream.port}/events", "topic": "com.myapp.topic1"}],
                           "method": "POST", "expectedcode": 200, "debug": True}},
            ],
        }],
    }
    nd = make_node_dir("switchboard")
    router = launch_router(nd, config, [port])
    try:
        yield router
    finally:
        router.close()


def post(node, path: str, body, query: dict | None = None, headers: dict | None = None, method: str = "POST"):
    """(status, headers (case-insensitive), body text) of one request."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    url = f"http://127.0.0.1:{node.port}/{path}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    req = urllib.request.Request(url, data=data if method in ("POST", "PUT") else None, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def signed_query(body: bytes, key: str = KEY, secret: str = SECRET, age: float = 0.0) -> dict:
    """Crossbar's signed-request parameters, computed as its documentation says."""
    ts = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=age)
    timestamp = ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    seq, nonce = "1", str(random.randint(0, 2**53))
    mac = hmac.new(secret.encode(), None, hashlib.sha256)
    for part in (key, timestamp, seq, nonce):
        mac.update(part.encode())
    mac.update(body)
    return {"key": key, "timestamp": timestamp, "seq": seq, "nonce": nonce,
            "signature": base64.urlsafe_b64encode(mac.digest()).decode()}


async def subscriber(node, topic: str):
    client = await connect(node, "websocket_tcp", "json")
    events = []
    await client.session.subscribe(lambda *a, **kw: events.append((list(a), kw)), topic)
    return client, events


def test_crossbars_documented_curl_command_publishes_to_a_wamp_subscriber(node):
    curl = shutil.which("curl")
    assert curl, "curl is needed for this test: apt-get install curl"

    async def scenario():
        client, events = await subscriber(node, "com.myapp.topic1")
        try:
            # docs/HTTP-Bridge-Publisher.rst, with the port of this test's node
            out = await asyncio.to_thread(subprocess.run, [
                curl, "-s", "-H", "Content-Type: application/json",
                "-d", '{"topic": "com.myapp.topic1", "args": ["Hello, world"]}',
                f"http://127.0.0.1:{node.port}/publish",
            ], capture_output=True, text=True, timeout=10)
            answer = json.loads(out.stdout)
            assert isinstance(answer.get("id"), int), out.stdout
            await eventually(lambda: events, "the event")
            assert events == [(["Hello, world"], {})], events
        finally:
            await close_all(client)

    run(scenario())


def test_a_publication_carries_args_kwargs_and_options(node):
    async def scenario():
        client, events = await subscriber(node, "com.example.rich")
        try:
            me = client.session.session_id
            status, headers, body = await asyncio.to_thread(post, node, "publish", {
                "topic": "com.example.rich", "args": [1, {"two": 2}], "kwargs": {"three": [3]},
                "options": {"eligible": [me]}})
            assert status == 200 and isinstance(json.loads(body)["id"], int), body
            assert headers["Access-Control-Allow-Origin"] == "*", headers
            await eventually(lambda: events, "the event")
            assert events == [([1, {"two": 2}], {"three": [3]})], events
            # `exclude` of the only subscriber: published, delivered to nobody
            status, _, body = await asyncio.to_thread(post, node, "publish", {
                "topic": "com.example.rich", "args": ["not for me"], "options": {"exclude": [me]}})
            assert status == 200, body
            await asyncio.sleep(0.3)
            assert len(events) == 1, events
        finally:
            await close_all(client)

    run(scenario())


def test_malformed_requests_get_crossbars_status_and_error(node):
    cases = [
        ({"args": []}, {}, 400, "missing key 'topic'"),
        (b"not json", {}, 400, "invalid JSON"),
        ([1, 2], {}, 400, "must be a dict"),
        ({"topic": "x"}, {"Content-Type": "text/plain"}, 400, "Non-accepted content type"),
        ({"topic": "x"}, {"Content-Type": "application/json; charset=latin-1"}, 400, "must be UTF-8"),
        (b'{"topic": "\xff"}', {}, 400, "not UTF-8"),
    ]
    for body, headers, status, text in cases:
        got, _, answer = post(node, "publish", body, headers=headers)
        assert got == status, (body, got, answer)
        answer = json.loads(answer)
        assert text in answer["error"] and answer["args"] == [] and answer["kwargs"] == {}, answer
    got, _, answer = post(node, "publish", b"", method="GET")
    assert got == 405 and "GET not allowed" in json.loads(answer)["error"], answer
    got, headers, _ = post(node, "publish", b"", method="OPTIONS")
    assert got == 200 and headers["Allow"] == "POST,PUT,OPTIONS", headers


def test_signed_requests_are_checked_and_a_refused_one_publishes_nothing(node):
    async def scenario():
        client, events = await subscriber(node, "com.example.signed")
        try:
            body = json.dumps({"topic": "com.example.signed", "args": ["signed"]}).encode()
            good = signed_query(body)
            status, _, answer = await asyncio.to_thread(post, node, "publish-signed", body, good)
            assert status == 200 and isinstance(json.loads(answer)["id"], int), answer

            refused = [
                ("the same request again (a replay)", body, good, 401, "replay"),
                ("no signature at all", body, None, 400, "'key' field missing"),
                ("a wrong secret", body, signed_query(body, secret="guess"), 401, "secret not valid"),
                ("an unknown key", body, signed_query(body, key="other"), 401, "key not valid"),
                ("an old timestamp", body, signed_query(body, age=60), 400, "too old timestamp"),
                ("a tampered body", body.replace(b"signed", b"forged"), signed_query(body), 401, "secret not valid"),
                ("a body over post_body_limit", big := json.dumps({"topic": "com.example.signed", "args": ["x" * 2000]}).encode(),
                 signed_query(big), 413, "Request too long"),
            ]
            for what, data, query, want, text in refused:
                status, _, answer = await asyncio.to_thread(post, node, "publish-signed", data, query)
                assert status == want and text in json.loads(answer)["error"], (what, status, answer)
            # a missing field of a signed request
            partial = {k: v for k, v in signed_query(body).items() if k != "nonce"}
            status, _, answer = await asyncio.to_thread(post, node, "publish-signed", body, partial)
            assert status == 400 and "'nonce' field missing" in json.loads(answer)["error"], answer

            await asyncio.sleep(0.3)
            assert events == [(["signed"], {})], f"only the one good request publishes: {events}"
        finally:
            await close_all(client)

    run(scenario())


def test_require_ip_and_require_tls_refuse_and_publish_nothing(node):
    async def scenario():
        client, events = await subscriber(node, "com.example.guarded")
        try:
            event = {"topic": "com.example.guarded", "args": [1]}
            status, _, answer = await asyncio.to_thread(post, node, "publish-elsewhere", event)
            assert status == 400 and json.loads(answer)["error"] == "Request denied based on IP address.", answer
            status, _, answer = await asyncio.to_thread(post, node, "publish-tls", event)
            assert status == 400 and "not using TLS" in json.loads(answer)["error"], answer
            await asyncio.sleep(0.3)
            assert events == [], events
        finally:
            await close_all(client)

    run(scenario())


def test_the_paths_role_bounds_what_requests_may_publish(node):
    status, _, answer = post(node, "publish-narrow", {"topic": "com.forbidden.topic", "args": [1]})
    answer = json.loads(answer)
    assert status == 200 and answer["error"] == "wamp.error.not_authorized", answer
    status, _, answer = post(node, "publish-narrow", {"topic": "com.allowed.topic", "args": [1]})
    assert status == 200 and isinstance(json.loads(answer)["id"], int), answer


def test_the_bridge_session_is_an_ordinary_session_in_the_meta_api(node):
    async def scenario():
        post(node, "publish", {"topic": "com.example.any"})
        client = await connect(node, "websocket_tcp", "json")
        try:
            ids = await client.session.call("wamp.session.list")
            details = [await client.session.call("wamp.session.get", i) for i in ids]
            mine = [d for d in details if d["authid"] == "http-publisher:publish"]
            assert mine and mine[0]["authrole"] == "anonymous", details
        finally:
            await close_all(client)

    run(scenario())


def test_the_caller_returns_results_and_wamp_errors_as_crossbar_does(node):
    async def scenario():
        callee = await connect(node, "rawsocket_tcp", "msgpack")
        try:
            s = callee.session

            def kw_result():
                from autobahn.wamp.types import CallResult

                return CallResult(1, 2, total=3)

            def oops():
                raise ApplicationError("com.example.oops", "it went wrong", detail=42)

            async def slow():
                await asyncio.sleep(5)

            await s.register(lambda a, b: a + b, "com.example.add2")
            await s.register(kw_result, "com.example.kw")
            await s.register(lambda: None, "com.example.nothing")
            await s.register(oops, "com.example.oops")
            await s.register(slow, "com.example.slow")

            async def call(body, path="call", query=None):
                status, _, answer = await asyncio.to_thread(post, node, path, body, query)
                return status, json.loads(answer)

            assert await call({"procedure": "com.example.add2", "args": [2, 3]}) == (200, {"args": [5]})
            assert await call({"procedure": "com.example.kw"}) == (200, {"args": [1, 2], "kwargs": {"total": 3}})
            assert await call({"procedure": "com.example.nothing"}) == (200, {"args": [None]})
            status, answer = await call({"procedure": "com.example.oops"})
            assert status == 200 and answer == {"error": "com.example.oops", "args": ["it went wrong"],
                                                "kwargs": {"detail": 42}}, answer
            status, answer = await call({"procedure": "com.example.nobody"})
            assert status == 200 and answer["error"] == "wamp.error.no_such_procedure", answer
            status, answer = await call({"procedure": "com.example.slow", "options": {"timeout": 200}})
            assert status == 200 and answer["error"] in ("wamp.error.timeout", "wamp.error.canceled"), answer
            status, answer = await call({"args": [1]})
            assert status == 400 and "missing key 'procedure'" in answer["error"], answer

            body = json.dumps({"procedure": "com.example.add2", "args": [40, 2]}).encode()
            assert await call(body, "call-signed", signed_query(body)) == (200, {"args": [42]})
            status, answer = await call(body, "call-signed", signed_query(body, secret="guess"))
            assert status == 401, answer
        finally:
            await close_all(callee)

    run(scenario())


def test_a_webhook_publishes_the_request_headers_and_body(node):
    async def scenario():
        client, events = await subscriber(node, "com.example.webhook")
        try:
            raw = b"payload=anything at all"
            status, _, answer = await asyncio.to_thread(
                post, node, "webhook", raw, None, {"Content-Type": "application/x-www-form-urlencoded", "X-Custom": "yes"})
            assert (status, answer) == (202, "OK"), (status, answer)
            await eventually(lambda: events, "the webhook event")
            ((args, kwargs),) = events
            message = args[0]
            assert message["body"] == raw.decode(), message
            assert message["headers"]["Content-Type"] == ["application/x-www-form-urlencoded"], message
            assert message["headers"]["X-Custom"] == ["yes"], message
        finally:
            await close_all(client)

    run(scenario())


def test_a_github_webhook_needs_githubs_signature(node):
    async def scenario():
        client, events = await subscriber(node, "com.example.github")
        try:
            raw = json.dumps({"action": "opened"}).encode()
            good = "sha1=" + hmac.new(GITHUB_SECRET.encode(), raw, hashlib.sha1).hexdigest()
            status, _, answer = await asyncio.to_thread(post, node, "webhook-github", raw, None, {"X-Hub-Signature": good})
            assert (status, answer) == (202, "thanks"), (status, answer)
            for signature in ({}, {"X-Hub-Signature": "sha1=" + "0" * 40}):
                status, _, answer = await asyncio.to_thread(post, node, "webhook-github", raw, None, signature)
                assert status == 400 and json.loads(answer)["error"] == "GitHub signature missing or invalid.", answer
            await eventually(lambda: events, "the webhook event")
            await asyncio.sleep(0.3)
            assert len(events) == 1 and json.loads(events[0][0][0]["body"]) == {"action": "opened"}, events
        finally:
            await close_all(client)

    run(scenario())


def test_the_rest_callee_turns_calls_into_http_requests(node, upstream):
    async def scenario():
        client = await connect(node, "websocket_tcp", "json")
        try:
            answer = await bounded(client.session.call(
                "com.myapp.rest", method="POST", url="echo?x=1", body="hello upstream",
                headers={"X-Test": ["yes"]}, params={"y": "2"}), "the REST callee")
            assert answer["code"] == 200 and answer["headers"]["x-upstream"] == ["yes"], answer
            seen = json.loads(answer["content"])
            assert (seen["method"], seen["path"], seen["body"]) == ("POST", "/base/echo?x=1&y=2", "hello upstream"), seen
            assert seen["headers"]["x-test"] == "yes", seen
            # a GET with the defaults: the base URL itself
            answer = await bounded(client.session.call("com.myapp.rest", method="GET"), "GET")
            assert json.loads(answer["content"])["path"] == "/base/", answer
            # the callee stays below its base URL
            for outside in ("http://169.254.169.254/latest/", "//elsewhere/x", "../up"):
                with pytest.raises(ApplicationError) as refused:
                    await client.session.call("com.myapp.rest", method="GET", url=outside)
                assert refused.value.error == "wamp.error.invalid_argument", (outside, refused.value)
        finally:
            await close_all(client)

    run(scenario())


def test_the_message_forwarder_posts_events_to_their_url(node, upstream):
    async def scenario():
        client = await connect(node, "websocket_tcp", "json")
        try:
            await client.session.publish("com.myapp.topic1", 1, "two", three=3,
                                         options=PublishOptions(acknowledge=True))
            want = {"args": [1, "two"], "kwargs": {"three": 3}}

            def forwarded():
                # (the curl test's event on the same topic is forwarded too)
                return [r for r in upstream.requests if r["path"] == "/events" and json.loads(r["body"]) == want]

            (request,) = await eventually(forwarded, "the forwarded event")
            assert request["method"] == "POST" and request["headers"]["content-type"] == "application/json", request
        finally:
            await close_all(client)

    run(scenario())


def test_a_reload_starts_changes_and_stops_a_rest_callee_by_its_id(upstream):
    """Crossbar's built-in REST callee runs in the node's process: one added to the config starts
    at the next reload, one whose ``extra`` changed is restarted with it, one removed leaves (its
    procedure goes); clients stay connected throughout."""
    port = free_tcp_port()

    def config(*components):
        return {"version": 2, "workers": [{
            "type": "router",
            "realms": [{"name": "realm1", "roles": [
                {"name": "anonymous", "permissions": [{"uri": "", "match": "prefix", "allow": ALL}]}]}],
            "transports": [{"type": "websocket", "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"}}],
            "components": list(components),
        }]}

    def callee(procedure: str, base: str) -> dict:
        return {"type": "class", "id": "rest", "classname": "crossbar.bridge.rest.RESTCallee", "realm": "realm1",
                "extra": {"procedure": procedure, "baseurl": f"http://127.0.0.1:{upstream.port}/{base}/"}}

    nd = make_node_dir("switchboard")
    router = launch_router(nd, config(), [port])

    def reload_with(*components) -> str:
        nd.write_config(config(*components))
        result = run_router_command(nd, "reload", timeout=60)
        assert result.returncode == 0, result.describe()
        return result.output

    try:
        async def scenario():
            client = await connect(router)
            try:
                output = reload_with(callee("com.myapp.rest", "one"))
                assert 'applied: built-in component "rest" added: started' in output, output
                answer = await bounded(client.session.call("com.myapp.rest", method="GET"), "the new callee")
                assert json.loads(answer["content"])["path"] == "/one/", answer

                output = reload_with(callee("com.myapp.rest", "two"))
                assert 'applied: built-in component "rest" restarted with its new config' in output, output
                answer = await bounded(client.session.call("com.myapp.rest", method="GET"), "the changed callee")
                assert json.loads(answer["content"])["path"] == "/two/", answer

                output = reload_with()
                assert 'applied: built-in component "rest" removed: stopped' in output, output
                with pytest.raises(ApplicationError) as gone:
                    await bounded(client.session.call("com.myapp.rest", method="GET"), "the removed callee")
                assert gone.value.error == "wamp.error.no_such_procedure"
                assert not client.left.done()
            finally:
                await close_all(client)

        run(scenario())
    finally:
        router.close()
