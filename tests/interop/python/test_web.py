"""The web transport: static files (content types, HEAD, ranges, conditional
requests, directory listings, redirects), directory-traversal safety, and
WAMP (WebSocket and RawSocket) on the same ports.

One router for the module, with two listeners sharing one ``web/``
directory (relative to the config file's directory):

* UNIVERSAL: a ``universal`` transport: RawSocket, WebSocket at ``/ws`` and a
  ``web`` part with ``/`` static (directory listing enabled), ``/old``
  redirecting to ``/index.html``, and ``/linked`` static (listing enabled)
  from a directory that is a symlink to one outside the node directory;
* WEB: a ``web`` transport: ``/`` static (no listing), ``/ws`` WebSocket and
  ``/linked`` static (no listing).

Requests go out with ``http.client`` or a raw socket, so the request target
is exactly what the test wrote (no client-side path normalization)."""

from __future__ import annotations

import asyncio
import os
import random
import struct
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from autobahn.wamp.types import CallResult, PublishOptions

import interop_http as h
from interop_client import SERIALIZERS, bounded, close_all, connect_with, run, unique_uri
from interop_router import REALM, NodeDir, Router, free_tcp_port, launch_router, make_node_dir, router_kind

# ---------------------------------------------------------------------------
# the node: files and config
# ---------------------------------------------------------------------------

INDEX_HTML = b"<!doctype html>\n<html><head><title>Switchboard interop</title></head>" b"<body><h1>index of web/</h1></body></html>\n"
SUBINDEX_HTML = b"<!doctype html>\n<html><body><h1>withindex/index.html</h1></body></html>\n"


def tiny_png() -> bytes:
    """A valid 1x1 RGBA PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    idat = zlib.compress(b"\x00\xff\x00\x00\xff")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


BIG_SIZE = 1_000_000 + 123

#: file name with HTML metacharacters (the listing must escape it)
NASTY_NAME = "<img src=x onerror=alert(1)>&.txt"


def web_files() -> dict[str, bytes]:
    """URL path -> content of every regular file written under web/."""
    return {
        "/index.html": INDEX_HTML,
        "/style.css": b"body { color: #123456; }\n",
        "/app.js": b"console.log('switchboard interop');\n",
        "/data.json": b'{"switchboard": "interop", "n": 1}\n',
        "/image.png": tiny_png(),
        "/icon.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"><rect width="1" height="1"/></svg>\n',
        "/notes.txt": b"plain text\n",
        "/big.bin": random.Random(20240601).randbytes(BIG_SIZE),
        "/subdir/a.txt": b"file a in subdir\n",
        "/subdir/b.json": b'{"b": true}\n',
        "/subdir/nested/c.txt": b"file c, nested\n",
        "/withindex/index.html": SUBINDEX_HTML,
        "/withindex/other.txt": b"other file next to an index.html\n",
    }


CONTENT_TYPES = {
    "/index.html": ("text/html",),
    "/style.css": ("text/css",),
    # RFC 9239 made text/javascript the one; application/javascript is the older name
    "/app.js": ("text/javascript", "application/javascript"),
    "/data.json": ("application/json",),
    "/image.png": ("image/png",),
    "/icon.svg": ("image/svg+xml",),
    "/notes.txt": ("text/plain",),
}


@dataclass
class WebNode:
    router: Router
    universal_port: int  # universal transport: rawsocket + websocket /ws + web
    web_port: int  # web transport: static / (no listing) + websocket /ws
    files: dict
    secret: bytes
    config_dir: Path

    @property
    def ports(self) -> list[tuple[str, int]]:
        return [("universal", self.universal_port), ("web", self.web_port)]


def web_config(kind: str, universal_port: int, web_port: int) -> dict:
    permissions = [
        {"uri": "", "match": "prefix", "allow": {"call": True, "register": True, "publish": True, "subscribe": True}}
    ]
    return {
        "version": 2,
        "workers": [
            {
                "type": "router",
                "realms": [{"name": REALM, "roles": [{"name": "anonymous", "permissions": permissions}]}],
                "transports": [
                    {
                        "type": "universal",
                        "endpoint": {"type": "tcp", "port": universal_port, "interface": "127.0.0.1"},
                        "rawsocket": {},
                        "websocket": {"ws": {"type": "websocket"}},
                        "web": {
                            "paths": {
                                "/": {
                                    "type": "static",
                                    "directory": "web",
                                    "options": {"enable_directory_listing": True},
                                },
                                "old": {"type": "redirect", "url": "/index.html"},
                                "linked": {
                                    "type": "static",
                                    "directory": "linked_web",
                                    "options": {"enable_directory_listing": True},
                                },
                            }
                        },
                    },
                    {
                        "type": "web",
                        "endpoint": {"type": "tcp", "port": web_port, "interface": "127.0.0.1"},
                        "paths": {
                            "/": {"type": "static", "directory": "web"},
                            "ws": {"type": "websocket"},
                            "linked": {"type": "static", "directory": "linked_web"},
                        },
                    },
                ],
            }
        ],
    }


SECRET_NAME = "secret.txt"


def populate(nd: NodeDir) -> tuple[dict, bytes]:
    files = web_files()
    web = nd.config_dir / "web"
    for url_path, content in files.items():
        p = web / url_path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
    (web / "subdir" / NASTY_NAME).write_bytes(b"nasty name\n")
    # a secret next to config.json, outside web/
    secret = f"TOP-SECRET-{uuid.uuid4().hex}".encode()
    (nd.config_dir / SECRET_NAME).write_bytes(secret + b"\n")
    # symlinks inside web/ that point outside it
    os.symlink(os.path.join("..", SECRET_NAME), web / "escape.txt")
    os.symlink("..", web / "escape_dir")
    os.symlink("/etc/passwd", web / "passwd_link")
    os.symlink("/etc", web / "etc_link")
    # symlinks that stay inside web/ (followed, like any web server does)
    os.symlink("index.html", web / "alias.html")
    os.symlink("subdir", web / "subdir_alias")
    # odd but legal file names
    for name, content in ODD_NAMES.items():
        (web / name).write_bytes(content)
    # a served directory that is itself a symlink to a directory elsewhere
    elsewhere = nd.node_dir / "elsewhere" / "assets"
    for rel, content in LINKED_FILES.items():
        p = elsewhere / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
    os.symlink(elsewhere, nd.config_dir / "linked_web")
    return files, secret


#: name on disk -> content; requested percent-encoded
ODD_NAMES = {"hello world.txt": b"spaces in the name\n", "\u00fcber.txt": b"u with umlaut\n", "a+b=c.txt": b"plus and equals\n"}
ODD_URLS = {"/hello%20world.txt": "hello world.txt", "/%C3%BCber.txt": "\u00fcber.txt", "/a+b=c.txt": "a+b=c.txt", "/a%2Bb%3Dc.txt": "a+b=c.txt"}

#: files below the symlinked directory served at /linked
LINKED_FILES = {
    "f.txt": b"a file in a directory reached through a symlink\n",
    "withindex/index.html": b"<!doctype html><p>linked index</p>\n",
    "sub/g.txt": b"g in linked sub\n",
}


@pytest.fixture(scope="module")
def web():
    nd = make_node_dir()
    files, secret = populate(nd)
    p1, p2 = free_tcp_port(), free_tcp_port()
    while p2 == p1:
        p2 = free_tcp_port()
    router = launch_router(nd, web_config(nd.kind, p1, p2), [p1, p2])
    try:
        yield WebNode(router, p1, p2, files, secret, nd.config_dir)
    finally:
        router.close()


BOTH = pytest.mark.parametrize("which", ["universal", "web"])


def port_of(web: WebNode, which: str) -> int:
    return web.universal_port if which == "universal" else web.web_port


# ---------------------------------------------------------------------------
# plain GET / HEAD / 404
# ---------------------------------------------------------------------------


@BOTH
def test_get_root_serves_index_html(web, which):
    r = h.get(port_of(web, which), "/")
    assert r.status == 200, r.describe()
    assert r.body == INDEX_HTML, r.describe()
    assert r.content_type == "text/html", r.describe()


@BOTH
@pytest.mark.parametrize("path", sorted(CONTENT_TYPES))
def test_static_file_has_content_and_content_type(web, which, path):
    r = h.get(port_of(web, which), path)
    assert r.status == 200, f"GET {path}: {r.describe()}"
    assert r.body == web.files[path], f"GET {path}: body differs: {r.describe()}"
    assert r.content_type in CONTENT_TYPES[path], f"GET {path}: Content-Type {r.header('content-type')!r}"
    if r.header("content-length") is not None:
        assert int(r.header("content-length")) == len(web.files[path])


@BOTH
def test_large_binary_file_arrives_byte_for_byte(web, which):
    r = h.get(port_of(web, which), "/big.bin")
    assert r.status == 200, r.describe()
    assert len(r.body) == BIG_SIZE
    assert r.body == web.files["/big.bin"], "1 MB file differs"


@BOTH
def test_files_in_subdirectories_are_served(web, which):
    port = port_of(web, which)
    for path in ("/subdir/a.txt", "/subdir/nested/c.txt", "/withindex/other.txt"):
        r = h.get(port, path)
        assert r.status == 200, f"GET {path}: {r.describe()}"
        assert r.body == web.files[path]


@BOTH
def test_head_sends_headers_and_no_body(web, which):
    port = port_of(web, which)
    get = h.get(port, "/data.json")
    # raw socket so that a body sent after the headers would be seen
    r = h.raw_request(
        port, b"HEAD /data.json HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    assert r.status == 200, r.describe()
    assert r.body == b"", f"HEAD answered with a body: {r.describe()}"
    assert r.content_type == get.content_type == "application/json", r.describe()
    if r.header("content-length") is not None:
        assert int(r.header("content-length")) == len(web.files["/data.json"]), r.describe()


@BOTH
@pytest.mark.parametrize("path", ["/missing.html", "/subdir/missing.txt", "/no/such/dir/file.txt", "/index.html/extra"])
def test_missing_file_is_404(web, which, path):
    r = h.get(port_of(web, which), path)
    assert r.status == 404, f"GET {path}: {r.describe()}"


@BOTH
def test_head_of_missing_file_is_404(web, which):
    r = h.request(port_of(web, which), "HEAD", "/missing.html")
    assert r.status == 404, r.describe()


@BOTH
def test_several_requests_on_one_keep_alive_connection(web, which):
    conn = h.connection(port_of(web, which))
    try:
        for path in ("/index.html", "/style.css", "/missing.html", "/big.bin", "/data.json"):
            r = h.request_on(conn, "GET", path)
            if path == "/missing.html":
                assert r.status == 404, r.describe()
            else:
                assert r.status == 200, f"GET {path}: {r.describe()}"
                assert r.body == web.files[path]
    finally:
        conn.close()


# ---------------------------------------------------------------------------
# ranges
# ---------------------------------------------------------------------------


@BOTH
@pytest.mark.parametrize(
    "spec,first,last",
    [
        ("bytes=100-199", 100, 199),
        ("bytes=0-0", 0, 0),
        (f"bytes={BIG_SIZE - 10}-", BIG_SIZE - 10, BIG_SIZE - 1),
        ("bytes=-100", BIG_SIZE - 100, BIG_SIZE - 1),
        (f"bytes=500000-{BIG_SIZE + 1000}", 500000, BIG_SIZE - 1),  # last byte past the end: clamped
    ],
    ids=["100-199", "0-0", "open-ended", "suffix", "clamped"],
)
def test_range_request_returns_206_with_exactly_those_bytes(web, which, spec, first, last):
    r = h.get(port_of(web, which), "/big.bin", {"Range": spec})
    assert r.status == 206, f"Range: {spec}: {r.describe()}"
    assert r.header("content-range") == f"bytes {first}-{last}/{BIG_SIZE}", f"Range: {spec}: {r.describe()}"
    assert r.body == web.files["/big.bin"][first : last + 1], f"Range: {spec}: wrong bytes ({len(r.body)} bytes)"
    if r.header("content-length") is not None:
        assert int(r.header("content-length")) == last - first + 1


@BOTH
def test_range_request_on_small_text_file(web, which):
    r = h.get(port_of(web, which), "/notes.txt", {"Range": "bytes=0-4"})
    assert r.status == 206, r.describe()
    assert r.body == b"plain"
    assert r.header("content-range") == f"bytes 0-4/{len(web.files['/notes.txt'])}"


@BOTH
@pytest.mark.parametrize("spec", [f"bytes={BIG_SIZE + 10}-{BIG_SIZE + 20}", f"bytes={BIG_SIZE}-"])
def test_unsatisfiable_range_is_416(web, which, spec):
    r = h.get(port_of(web, which), "/big.bin", {"Range": spec})
    assert r.status == 416, f"Range: {spec}: {r.describe()}"
    assert r.header("content-range") == f"bytes */{BIG_SIZE}", f"Range: {spec}: {r.describe()}"
    assert web.files["/big.bin"][:1000] not in r.body


# ---------------------------------------------------------------------------
# conditional requests
# ---------------------------------------------------------------------------


@BOTH
@pytest.mark.parametrize("path", ["/index.html", "/big.bin"])
def test_conditional_get_with_validators_of_first_response_is_304_without_body(web, which, path):
    port = port_of(web, which)
    first = h.get(port, path)
    assert first.status == 200, first.describe()
    etag, last_modified = first.header("etag"), first.header("last-modified")
    assert etag or last_modified, f"neither ETag nor Last-Modified in {first.describe()}"
    checked = []
    if etag:
        r = h.get(port, path, {"If-None-Match": etag})
        assert r.status == 304, f"If-None-Match: {etag}: {r.describe()}"
        assert r.body == b"", f"304 with a body: {r.describe()}"
        checked.append("If-None-Match")
        # a different tag is not a match
        r = h.get(port, path, {"If-None-Match": '"switchboard-interop-no-such-etag"'})
        assert r.status == 200, r.describe()
    if last_modified:
        r = h.get(port, path, {"If-Modified-Since": last_modified})
        assert r.status == 304, f"If-Modified-Since: {last_modified}: {r.describe()}"
        assert r.body == b"", f"304 with a body: {r.describe()}"
        # a date long before the file's mtime: the full file
        r = h.get(port, path, {"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"})
        assert r.status == 200, r.describe()
        assert r.body == web.files[path]
        checked.append("If-Modified-Since")
    assert checked


# ---------------------------------------------------------------------------
# directory listings and index.html
# ---------------------------------------------------------------------------


def test_directory_listing_when_enabled_lists_file_names(web):
    r = h.get(web.universal_port, "/subdir/")
    assert r.status == 200, r.describe()
    assert r.content_type == "text/html", r.describe()
    text = r.body.decode("utf-8", errors="replace")
    for name in ("a.txt", "b.json", "nested"):
        assert name in text, f"{name!r} not in listing:\n{text[:2000]}"


def test_directory_listing_escapes_html_in_file_names(web):
    r = h.get(web.universal_port, "/subdir/")
    assert r.status == 200, r.describe()
    text = r.body.decode("utf-8", errors="replace")
    assert "<img src=x" not in text, f"unescaped file name in listing:\n{text[:2000]}"
    assert "&lt;img src=x onerror=alert(1)&gt;" in text, f"escaped file name missing from listing:\n{text[:2000]}"


def test_directory_listing_of_nested_directory(web):
    r = h.get(web.universal_port, "/subdir/nested/")
    assert r.status == 200, r.describe()
    assert b"c.txt" in r.body


def test_directory_without_slash_is_redirected_or_listed(web):
    r = h.get(web.universal_port, "/subdir")
    if r.status in (301, 302, 307, 308):
        loc = urlsplit(r.header("location") or "")
        assert loc.path == "/subdir/", r.describe()
    else:
        assert r.status == 200 and b"a.txt" in r.body, r.describe()


@pytest.mark.parametrize("path", ["/subdir/", "/subdir/nested/", "/subdir"])
def test_no_directory_listing_when_not_enabled(web, path):
    r = h.get(web.web_port, path)
    if path == "/subdir" and r.status in (301, 302, 307, 308):
        # a slash-adding redirect is fine, as long as what it points at is not a listing
        loc = urlsplit(r.header("location") or "")
        assert loc.path == "/subdir/", r.describe()
        r = h.get(web.web_port, loc.path)
    assert r.status in (403, 404), f"GET {path} without enable_directory_listing: {r.describe()}"
    assert b"a.txt" not in r.body, r.describe()


@BOTH
def test_directory_with_index_html_serves_it(web, which):
    r = h.get(port_of(web, which), "/withindex/")
    assert r.status == 200, r.describe()
    assert r.body == SUBINDEX_HTML, r.describe()
    assert r.content_type == "text/html"


# ---------------------------------------------------------------------------
# redirect
# ---------------------------------------------------------------------------


def test_redirect_path_redirects_to_configured_url(web):
    r = h.get(web.universal_port, "/old")
    assert r.status in (301, 302, 303, 307, 308), r.describe()
    location = r.header("location")
    assert location, r.describe()
    loc = urlsplit(location)
    assert loc.path == "/index.html", r.describe()
    assert loc.netloc in ("", f"127.0.0.1:{web.universal_port}"), r.describe()
    # and the target is there
    assert h.get(web.universal_port, loc.path).body == INDEX_HTML


def test_redirect_path_also_answers_head(web):
    r = h.request(web.universal_port, "HEAD", "/old")
    assert r.status in (301, 302, 303, 307, 308), r.describe()
    assert urlsplit(r.header("location") or "").path == "/index.html", r.describe()


# ---------------------------------------------------------------------------
# directory traversal
# ---------------------------------------------------------------------------

PASSWD_MARKERS = (b"root:x:0:0", b"root:*:0:0", b"/bin/sh", b"/usr/sbin/nologin")


def assert_no_leak(web: WebNode, r: h.Response, what: str) -> None:
    body = r.body
    assert web.secret not in body, f"{what}: leaked the secret file next to config.json: {r.describe()}"
    assert b'"workers"' not in body, f"{what}: leaked config.json: {r.describe()}"
    for m in PASSWD_MARKERS:
        assert m not in body, f"{what}: leaked /etc/passwd: {r.describe()}"
    assert r.status in (400, 403, 404), f"{what}: expected 400, 403 or 404, got {r.describe()}"


TRAVERSAL_PATHS = [
    "/../config.json",
    f"/../{SECRET_NAME}",
    "/%2e%2e/config.json",
    f"/%2e%2e/{SECRET_NAME}",
    f"/%2E%2E/{SECRET_NAME}",
    "/..%2fconfig.json",
    f"/..%2f{SECRET_NAME}",
    f"/..%2F{SECRET_NAME}",
    "/subdir/../../config.json",
    f"/subdir/../../{SECRET_NAME}",
    f"/subdir/%2e%2e/%2e%2e/{SECRET_NAME}",
    f"/subdir/..%2f..%2f{SECRET_NAME}",
    f"/./../{SECRET_NAME}",
    f"/.%2e/{SECRET_NAME}",
    f"/%2e./{SECRET_NAME}",
    f"/..%5c{SECRET_NAME}",
    f"/..\\{SECRET_NAME}",
    f"/subdir\\..\\..\\{SECRET_NAME}",
    f"/%252e%252e/{SECRET_NAME}",
    f"/..;/{SECRET_NAME}",
    f"/%c0%ae%c0%ae/{SECRET_NAME}",
    f"/..%00/{SECRET_NAME}",
    f"/{SECRET_NAME}%00.html",
    "//etc/passwd",
    "///etc/passwd",
    "/%2fetc/passwd",
    "/%2Fetc%2Fpasswd",
    "/%2e%2e%2f%2e%2e%2fetc/passwd",
    "/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc/passwd",
    "/../../../../../../../../etc/passwd",
    "/subdir/../../../../../../../../../etc/passwd",
    "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    # through the /linked mount (its root is node_dir/elsewhere/assets: two levels up is the node dir)
    f"/linked/../{SECRET_NAME}",
    f"/linked/../../{SECRET_NAME}",
    f"/linked/%2e%2e/%2e%2e/{SECRET_NAME}",
    f"/linked/..%2f..%2f{SECRET_NAME}",
    f"/linked/..%2f..%2f.crossbar%2f{SECRET_NAME}",
    f"/linked%2f..%2f..%2f{SECRET_NAME}",
    "/linked/%2e%2e/%2e%2e/config.json",
]

#: through the other services' paths: any answer (a redirect, the WebSocket
#: endpoint's page) as long as it is not the file
SERVICE_PATH_TRAVERSALS = [
    f"/ws/../{SECRET_NAME}",
    f"/ws/%2e%2e/{SECRET_NAME}",
    f"/ws/..%2f{SECRET_NAME}",
    f"/old/../{SECRET_NAME}",
    f"/old/%2e%2e/{SECRET_NAME}",
    "/old/../../../../etc/passwd",
]


@BOTH
@pytest.mark.parametrize("path", TRAVERSAL_PATHS)
def test_directory_traversal_is_impossible(web, which, path):
    port = port_of(web, which)
    r = h.get(port, path)
    if router_kind() == "crossbar" and "%00" in path and r.status == 500:
        assert web.secret not in r.body
        pytest.xfail("Crossbar answers a %00 in the path with 500 Processing Failed (no leak)")
    assert_no_leak(web, r, f"GET {path} on {which}")


@BOTH
@pytest.mark.parametrize("path", SERVICE_PATH_TRAVERSALS)
def test_directory_traversal_through_other_services_paths(web, which, path):
    r = h.get(port_of(web, which), path)
    assert web.secret not in r.body, f"GET {path} on {which}: leaked the secret: {r.describe()}"
    assert b'"workers"' not in r.body, f"GET {path} on {which}: leaked config.json: {r.describe()}"
    for m in PASSWD_MARKERS:
        assert m not in r.body, f"GET {path} on {which}: leaked /etc/passwd: {r.describe()}"
    assert r.status < 500, f"GET {path} on {which}: {r.describe()}"


SYMLINK_PATHS = ["/escape.txt", f"/escape_dir/{SECRET_NAME}", "/escape_dir/config.json", "/passwd_link", "/etc_link/passwd"]


@BOTH
@pytest.mark.parametrize("path", SYMLINK_PATHS)
def test_symlink_inside_web_pointing_outside_is_not_followed(web, which, path, request):
    if router_kind() == "crossbar":
        request.applymarker(
            pytest.mark.xfail(reason="Crossbar (twisted.web.static.File) follows symlinks out of the web directory", strict=False)
        )
    r = h.get(port_of(web, which), path)
    assert_no_leak(web, r, f"GET {path} (symlink out of web/) on {which}")


def test_listing_does_not_offer_a_way_out(web):
    r = h.get(web.universal_port, "/escape_dir/")
    if router_kind() == "crossbar" and r.status == 200:
        pytest.xfail("Crossbar follows the directory symlink out of web/ and lists it")
    assert_no_leak(web, r, "GET /escape_dir/ (a symlink to ..)")
    assert SECRET_NAME.encode() not in r.body, r.describe()


RAW_TRAVERSALS = [
    f"GET /../{SECRET_NAME} HTTP/1.0\r\n\r\n",
    f"GET /../{SECRET_NAME} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    f"GET /subdir/../../{SECRET_NAME} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    f"GET /./.././{SECRET_NAME} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    f"GET ../{SECRET_NAME} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    f"GET ..\\{SECRET_NAME} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    f"GET http://127.0.0.1/../{SECRET_NAME} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    f"GET http://127.0.0.1/%2e%2e/{SECRET_NAME} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    "GET /../../../../../../etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    "GET //etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    "GET /%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    f"HEAD /../{SECRET_NAME} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    # the second request on a keep-alive connection is checked too (body of both in one read)
    f"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /../{SECRET_NAME} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
]
RAW_IDS = [
    "http10",
    "http11",
    "subdir-dotdot",
    "dot-segments",
    "relative-target",
    "relative-backslash",
    "absolute-form",
    "absolute-form-encoded",
    "passwd-dotdot",
    "passwd-double-slash",
    "passwd-encoded",
    "head",
    "pipelined",
]


@BOTH
@pytest.mark.parametrize("raw", RAW_TRAVERSALS, ids=RAW_IDS)
def test_raw_request_with_non_normalized_path_does_not_escape(web, which, raw):
    port = port_of(web, which)
    r = h.raw_request(port, raw.encode("latin-1"))
    what = f"raw {raw!r} on {which}"
    assert web.secret not in r.body, f"{what}: leaked the secret: {r.describe()}"
    assert b'"workers"' not in r.body, f"{what}: leaked config.json: {r.describe()}"
    for m in PASSWD_MARKERS:
        assert m not in r.body, f"{what}: leaked /etc/passwd: {r.describe()}"
    if raw.startswith("GET /index.html"):
        # pipelined: the first answer is the index; the rest must not be a 200
        assert r.status == 200, f"{what}: {r.describe()}"
        tail = r.raw_head + "\r\n\r\n" + r.body.decode("latin-1")
        statuses = [line.split(" ")[1] for line in tail.split("\r\n") if line.startswith("HTTP/1.")]
        assert len(statuses) < 2 or statuses[1] in ("400", "403", "404"), f"{what}: statuses {statuses}"
    else:
        # 0: the server closed the connection without an answer, which is fine too
        assert r.status in (0, 400, 403, 404), f"{what}: {r.describe()}"


@BOTH
def test_router_still_serves_after_traversal_attempts(web, which):
    r = h.get(port_of(web, which), "/index.html")
    assert r.status == 200 and r.body == INDEX_HTML, r.describe()


# ---------------------------------------------------------------------------
# more of what Crossbar users rely on: query strings, encoded names, symlinks
# inside the root, static on a sub-path, CORS, methods, Range edge cases
# ---------------------------------------------------------------------------


@BOTH
@pytest.mark.parametrize("path", ["/index.html?v=123", "/?cachebust=1", "/data.json?a=1&b=%2F..%2F"])
def test_query_string_is_ignored_for_static_files(web, which, path):
    r = h.get(port_of(web, which), path)
    assert r.status == 200, f"GET {path}: {r.describe()}"
    file = path.split("?")[0]
    assert r.body == web.files["/index.html" if file == "/" else file]


@BOTH
@pytest.mark.parametrize("url", sorted(ODD_URLS))
def test_percent_encoded_file_names(web, which, url):
    r = h.get(port_of(web, which), url)
    assert r.status == 200, f"GET {url}: {r.describe()}"
    assert r.body == ODD_NAMES[ODD_URLS[url]]


@BOTH
def test_symlinks_that_stay_inside_the_web_directory_are_followed(web, which):
    port = port_of(web, which)
    r = h.get(port, "/alias.html")
    assert r.status == 200 and r.body == INDEX_HTML, r.describe()
    r = h.get(port, "/subdir_alias/a.txt")
    assert r.status == 200 and r.body == web.files["/subdir/a.txt"], r.describe()


@BOTH
def test_static_on_a_sub_path_from_a_symlinked_directory(web, which):
    port = port_of(web, which)
    r = h.get(port, "/linked/f.txt")
    assert r.status == 200 and r.body == LINKED_FILES["f.txt"], r.describe()
    r = h.get(port, "/linked/sub/g.txt")
    assert r.status == 200 and r.body == LINKED_FILES["sub/g.txt"], r.describe()
    r = h.get(port, "/linked/withindex/")
    assert r.status == 200 and r.body == LINKED_FILES["withindex/index.html"], r.describe()
    r = h.get(port, "/linked/missing.txt")
    assert r.status == 404, r.describe()
    # what's under / is not under /linked
    assert h.get(port, "/linked/index.html").status == 404


@BOTH
def test_slash_redirect_on_a_sub_path_keeps_the_mount_point(web, which):
    """GET /linked/withindex (a directory with index.html, no trailing
    slash) either serves the index or redirects to /linked/withindex/ -- not
    to /withindex/, which is another directory of the / mount."""
    r = h.get(port_of(web, which), "/linked/withindex")
    if r.status in (301, 302, 303, 307, 308):
        assert urlsplit(r.header("location") or "").path == "/linked/withindex/", f"GET /linked/withindex: {r.describe()}"
    else:
        assert r.status == 200 and r.body == LINKED_FILES["withindex/index.html"], r.describe()


@BOTH
def test_slash_redirect_on_the_root_mount(web, which):
    r = h.get(port_of(web, which), "/withindex")
    if r.status in (301, 302, 303, 307, 308):
        assert urlsplit(r.header("location") or "").path == "/withindex/", r.describe()
    else:
        assert r.status == 200 and r.body == SUBINDEX_HTML, r.describe()


def test_directory_listing_on_a_sub_path(web):
    r = h.get(web.universal_port, "/linked/")
    assert r.status == 200, r.describe()
    for name in (b"f.txt", b"withindex", b"sub"):
        assert name in r.body, r.describe(2000)
    r = h.get(web.universal_port, "/linked/sub")
    if r.status in (301, 302, 303, 307, 308):
        assert urlsplit(r.header("location") or "").path == "/linked/sub/", r.describe()
    else:
        assert r.status == 200 and b"g.txt" in r.body, r.describe()
    r = h.get(web.universal_port, "/linked/sub/")
    assert r.status == 200 and b"g.txt" in r.body, r.describe()
    # not enabled on the web transport's /linked
    assert h.get(web.web_port, "/linked/sub/").status in (403, 404)


@BOTH
def test_static_files_carry_cross_origin_headers(web, which):
    """Crossbar's static service always answers with
    Access-Control-Allow-Origin (the request's Origin, or *) and
    Access-Control-Allow-Credentials: true, so pages on other origins can
    fetch the files."""
    port = port_of(web, which)
    r = h.get(port, "/data.json", {"Origin": "http://app.example.com"})
    assert r.status == 200, r.describe()
    assert r.header("access-control-allow-origin") in ("http://app.example.com", "*"), r.describe()


@BOTH
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_other_methods_on_static_files_are_refused(web, which, method):
    port = port_of(web, which)
    r = h.request(port, method, "/data.json", {"Content-Length": "0"})
    assert r.status in (405, 501), f"{method} /data.json: {r.describe()}"
    assert h.get(port, "/data.json").body == web.files["/data.json"], "file changed"


@BOTH
def test_range_with_an_unknown_unit_is_ignored(web, which):
    """RFC 9110 14.2: a Range with a range unit the server does not
    understand MUST be ignored (200 with the whole file)."""
    r = h.get(port_of(web, which), "/big.bin", {"Range": "items=0-5"})
    assert r.status == 200, f"Range: items=0-5: {r.describe()}"
    assert r.body == web.files["/big.bin"]


@BOTH
def test_multiple_ranges_get_the_bytes_or_the_whole_file(web, which):
    """bytes=0-1,5-6: a 206 multipart/byteranges with both parts, a 206
    covering both, or the whole file (a server may ignore Range); not 416,
    which says the ranges are not satisfiable."""
    data = web.files["/big.bin"]
    r = h.get(port_of(web, which), "/big.bin", {"Range": "bytes=0-1,5-6"})
    if r.status == 200:
        assert r.body == data
    else:
        assert r.status == 206, f"Range: bytes=0-1,5-6: {r.describe()}"
        if r.content_type == "multipart/byteranges":
            assert b"Content-Range: bytes 0-1/" in r.body.replace(b"Content-range", b"Content-Range"), r.describe()
            assert data[0:2] in r.body and data[5:7] in r.body
        else:
            first, last = map(int, r.header("content-range").split(" ")[1].split("/")[0].split("-"))
            assert first <= 0 and last >= 6 and r.body == data[first : last + 1], r.describe()


@BOTH
def test_slow_clients_do_not_block_others(web, which):
    """Connections that send nothing, or half a request line, or headers
    without the final blank line, must not keep others from being served."""
    import socket

    port = port_of(web, which)
    idle = []
    try:
        for data in (b"", b"GE", b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"\x7f"):
            s_ = socket.create_connection(("127.0.0.1", port), timeout=h.TIMEOUT)
            if data:
                s_.sendall(data)
            idle.append(s_)
        r = h.get(port, "/data.json")
        assert r.status == 200 and r.body == web.files["/data.json"], r.describe()
    finally:
        for s_ in idle:
            s_.close()


@BOTH
def test_concurrent_downloads(web, which):
    from concurrent.futures import ThreadPoolExecutor

    port = port_of(web, which)
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda _: h.get(port, "/big.bin"), range(16)))
    for r in results:
        assert r.status == 200 and r.body == web.files["/big.bin"], r.describe()


# ---------------------------------------------------------------------------
# WAMP on the same ports
# ---------------------------------------------------------------------------


def wamp_endpoints(web: WebNode, serializer: str) -> dict:
    return {
        "universal_websocket": {
            "type": "websocket",
            "url": f"ws://127.0.0.1:{web.universal_port}/ws",
            "serializers": [serializer],
        },
        "universal_rawsocket": {
            "type": "rawsocket",
            "url": f"rs://127.0.0.1:{web.universal_port}",
            "serializer": serializer,
        },
        "web_websocket": {"type": "websocket", "url": f"ws://127.0.0.1:{web.web_port}/ws", "serializers": [serializer]},
    }


ENDPOINTS = ["universal_websocket", "universal_rawsocket", "web_websocket"]


@pytest.mark.parametrize("serializer", SERIALIZERS)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_wamp_register_and_call_on_web_ports(web, endpoint, serializer):
    cfg = wamp_endpoints(web, serializer)[endpoint]

    async def scenario():
        callee = caller = None
        try:
            callee = await connect_with(cfg, endpoint, serializer)
            caller = await connect_with(cfg, endpoint, serializer)
            proc = unique_uri("com.example.web.echo")
            await bounded(callee.session.register(lambda *a, **kw: CallResult(*a, **kw), proc), "REGISTERED")
            res = await bounded(caller.session.call(proc, 1, "two", b"\x00\x03", big=2**53), "RESULT")
            assert list(res.results) == [1, "two", b"\x00\x03"]
            assert res.kwresults == {"big": 2**53}
        finally:
            await close_all(caller, callee)

    run(scenario())


@pytest.mark.parametrize("serializer", SERIALIZERS)
def test_wamp_across_the_two_listeners(web, serializer):
    """A callee and subscriber on the web transport, a caller and publisher on
    the universal transport (and vice versa): one realm."""
    eps = wamp_endpoints(web, serializer)

    async def scenario():
        a = b = c = None
        try:
            a = await connect_with(eps["web_websocket"], "web_websocket", serializer)
            b = await connect_with(eps["universal_rawsocket"], "universal_rawsocket", serializer)
            c = await connect_with(eps["universal_websocket"], "universal_websocket", serializer)
            proc = unique_uri("com.example.web.add")
            topic = unique_uri("com.example.web.topic")
            await bounded(a.session.register(lambda x, y: x + y, proc), "REGISTERED")
            assert await bounded(b.session.call(proc, 2, 3), "RESULT") == 5
            assert await bounded(c.session.call(proc, 20, 3), "RESULT") == 23

            got = asyncio.get_running_loop().create_future()
            await bounded(a.session.subscribe(lambda v: got.done() or got.set_result(v), topic), "SUBSCRIBED")
            await bounded(b.session.publish(topic, "hello", options=PublishOptions(acknowledge=True)), "PUBLISHED")
            assert await bounded(got, "EVENT") == "hello"
        finally:
            await close_all(a, b, c)

    run(scenario())


def test_http_get_of_websocket_path_does_not_break_the_listener(web):
    """A plain GET (no Upgrade) of the WebSocket path gets some HTTP answer
    (not a hang, not a crash), and the listener keeps working."""
    r = h.get(web.universal_port, "/ws")
    assert 200 <= r.status < 500, r.describe()
    r = h.get(web.web_port, "/ws")
    assert 200 <= r.status < 500, r.describe()
    assert h.get(web.universal_port, "/").status == 200


# ---------------------------------------------------------------------------
# static options (each on a router of its own)
# ---------------------------------------------------------------------------

OPTION_CASES = {
    # documented: "a dictionary of (additional) MIME types to set"
    "mime_types": {"mime_types": {".custom": "application/x-switchboard-test", ".jgz": "text/javascript"}},
    "cache_timeout": {"cache_timeout": 3600},
    # (Crossbar's code knows allow_cross_origin, but its config checker
    # rejects the key, so CORS headers cannot be turned off there)
}


def start_static_router(options: dict) -> Router:
    nd = make_node_dir()
    web_dir = nd.config_dir / "web"
    web_dir.mkdir()
    (web_dir / "index.html").write_bytes(INDEX_HTML)
    (web_dir / "thing.custom").write_bytes(b"custom type\n")
    (web_dir / "bundle.jgz").write_bytes(b"console.log(1);\n")
    port = free_tcp_port()
    config = web_config(nd.kind, port, free_tcp_port())
    worker = config["workers"][0]
    worker["transports"] = [
        {
            "type": "web",
            "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
            "paths": {"/": {"type": "static", "directory": "web", "options": options}, "ws": {"type": "websocket"}},
        }
    ]
    return launch_router(nd, config, [port])


@pytest.mark.parametrize("case", sorted(OPTION_CASES))
def test_static_options(case):
    router = start_static_router(OPTION_CASES[case])
    try:
        port = router.port
        if case == "mime_types":
            r = h.get(port, "/thing.custom")
            assert r.status == 200 and r.content_type == "application/x-switchboard-test", r.describe()
            r = h.get(port, "/bundle.jgz")
            assert r.status == 200 and r.content_type == "text/javascript", r.describe()
            # the built-in types are still there
            assert h.get(port, "/index.html").content_type == "text/html"
        elif case == "cache_timeout":
            r = h.get(port, "/index.html")
            assert r.status == 200, r.describe()
            cc = [d.strip() for d in (r.header("cache-control") or "").split(",")]
            assert "max-age=3600" in cc, r.describe()
    finally:
        router.close()
