"""Crossbar's ``reverseproxy`` web path: requests below the path reach another HTTP server (run by
this test), with Crossbar's forwarded headers, bodies streamed both ways, the upstream's answer
passed back; an upstream that is down answers 502.
"""

from __future__ import annotations

import http.client
import json
import os

import pytest

from interop_router import free_tcp_port, launch_router, make_node_dir
from test_http_bridge import Upstream

if os.environ.get("INTEROP_ROUTER", "switchboard") != "switchboard":
    pytest.skip("runs Switchboard's node only", allow_module_level=True)


@pytest.fixture(scope="module")
def setup():
    upstream = Upstream()
    port = free_tcp_port()
    config = {
        "version": 2,
        "workers": [{
            "type": "router",
            "realms": [{"name": "realm1", "roles": [{"name": "anonymous", "allow-by-default": True}]}],
            "transports": [{
                "type": "web",
                "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
                "paths": {
                    "ws": {"type": "websocket"},
                    "proxy": {"type": "reverseproxy", "host": "127.0.0.1", "port": upstream.port, "path": "/base"},
                    "gone": {"type": "reverseproxy", "host": "127.0.0.1", "port": free_tcp_port(),
                             "forwarded_proto": "https", "forwarded_port": 443},
                },
            }],
        }],
    }
    router = launch_router(make_node_dir("switchboard"), config, [port])
    try:
        yield router, upstream
    finally:
        router.close()
        upstream.close()


def request(port, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request(method, path, body, headers or {})
        r = c.getresponse()
        return r.status, r.headers, r.read()
    finally:
        c.close()


def test_requests_below_the_path_reach_the_upstream_with_crossbars_forwarded_headers(setup):
    router, upstream = setup
    status, headers, body = request(router.port, "GET", "/proxy/sub/page?x=1", headers={"X-Custom": "kept"})
    assert status == 200 and headers["X-Upstream"] == "yes", (status, headers)
    seen = json.loads(body)
    assert (seen["method"], seen["path"]) == ("GET", "/base/sub/page?x=1"), seen
    h = seen["headers"]
    assert h["host"] == f"127.0.0.1:{upstream.port}", h
    assert h["x-forwarded-host"] == f"127.0.0.1:{router.port}" and h["x-forwarded-for"] == "127.0.0.1", h
    assert (h["x-real-ip"], h["x-forwarded-port"], h["x-forwarded-proto"]) == ("127.0.0.1", "80", "http"), h
    assert h["x-custom"] == "kept", h


def test_a_large_body_is_streamed_to_the_upstream(setup):
    router, upstream = setup
    big = b"x" * (8 * 1024 * 1024)
    status, _, body = request(router.port, "POST", "/proxy/upload", big, {"Content-Type": "application/octet-stream"})
    assert status == 200, body[:200]
    seen = json.loads(body)
    assert seen["path"] == "/base/upload" and len(seen["body"]) == len(big), (seen["path"], len(seen["body"]))


def test_an_upstream_that_is_down_answers_502(setup):
    router, _ = setup
    status, _, _ = request(router.port, "GET", "/gone/anything")
    assert status == 502


def test_dot_segments_do_not_pass_through_the_proxy(setup):
    router, upstream = setup
    before = len(upstream.requests)
    for path in ("/proxy/../secret", "/proxy/a/%2e%2e/secret"):
        status, _, _ = request(router.port, "GET", path)
        assert status == 400, path
    assert len(upstream.requests) == before
