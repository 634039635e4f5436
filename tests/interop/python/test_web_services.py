"""Crossbar's web services on a web transport: nested ``path`` services, the
``websocket-reverseproxy`` (Autobahn|Python speaks WAMP through it to a second
node), ``archive`` (files from a ZIP, also one downloaded from an origin and
checked against its fingerprint) and ``upload`` (a file in chunks, with WAMP
progress events to the session that asked for them).
"""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import io
import json
import os
import shutil
import stat
import threading
import uuid
import zipfile

import pytest

from interop_client import bounded, close_all, connect_with, eventually, run
from interop_router import free_tcp_port, launch_router, make_node_dir, run_router_command
from test_reverse_proxy import request

if os.environ.get("INTEROP_ROUTER", "switchboard") != "switchboard":
    pytest.skip("runs Switchboard's node only", allow_module_level=True)

REALM = {"name": "realm1", "roles": [{"name": "anonymous", "allow-by-default": True}]}

APP_FILES = {
    "dist/index.html": b"<!DOCTYPE html><title>app</title>",
    "dist/js/lib.min.js": b"console.log('lib');\n" * 50,
    "dist/css/app.css": b"body { color: red }\n",
    "outside.txt": b"not below the prefix",
}
PLAIN_FILES = {"style.css": b"p { margin: 0 }", "data/big.bin": os.urandom(300_000)}

FORM_FIELDS = {
    "file_name": "resumableFilename",
    "mime_type": "resumableType",
    "total_size": "resumableTotalSize",
    "chunk_number": "resumableChunkNumber",
    "chunk_size": "resumableChunkSize",
    "total_chunks": "resumableTotalChunks",
    "content": "file",
    "on_progress": "on_progress",
    "session": "session",
    "chunk_extra": "chunk_extra",
    "finish_extra": "finish_extra",
}


def zip_bytes(files: dict) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return out.getvalue()


class FileServer:
    """A local HTTP server that serves one file (the archive's origin) and counts requests."""

    def __init__(self, body: bytes):
        self.hits = 0
        server_self = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server_self.hits += 1
                if self.path == "/moved.zip":
                    self.send_response(302)
                    self.send_header("Location", "/app.zip")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture(scope="module")
def nodes():
    app_zip = zip_bytes(APP_FILES)
    origin = FileServer(app_zip)
    backend_port = free_tcp_port()
    backend = launch_router(make_node_dir("switchboard"), {
        "version": 2,
        "workers": [{
            "type": "router",
            "realms": [REALM],
            "transports": [{
                "type": "web",
                "endpoint": {"type": "tcp", "port": backend_port, "interface": "127.0.0.1"},
                "paths": {"ws": {"type": "websocket"}},
            }],
        }],
    }, [backend_port])
    port = free_tcp_port()
    nd = make_node_dir("switchboard")
    (nd.config_dir / "files").mkdir()
    (nd.config_dir / "files" / "a.txt").write_text("nested static file")
    (nd.config_dir / "app.zip").write_bytes(app_zip)
    (nd.config_dir / "plain.zip").write_bytes(zip_bytes(PLAIN_FILES))
    (nd.config_dir / "uploaded").mkdir()
    backend_ws = {
        "type": "websocket",
        "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": backend_port},
        "url": f"ws://127.0.0.1:{backend_port}/ws",
    }
    config = {
        "version": 2,
        "workers": [{
            "type": "router",
            "realms": [REALM],
            "transports": [{
                "type": "web",
                "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
                "paths": {
                    "ws": {"type": "websocket"},
                    "wsproxy": {"type": "websocket-reverseproxy", "backend": backend_ws},
                    "strictproxy": {
                        "type": "websocket-reverseproxy",
                        "options": {"allowed_origins": ["https://good.example"]},
                        "backend": backend_ws,
                    },
                    "deadproxy": {
                        "type": "websocket-reverseproxy",
                        "backend": dict(backend_ws, endpoint={"type": "tcp", "host": "127.0.0.1",
                                                              "port": free_tcp_port()}),
                    },
                    "folder": {
                        "type": "path",
                        "paths": {
                            "/": {"type": "json", "value": {"where": "folder"}},
                            "files": {"type": "static", "directory": "files"},
                            "deeper": {"type": "path", "paths": {
                                "info": {"type": "json", "value": {"where": "deeper"}},
                            }},
                        },
                    },
                    "app": {
                        "type": "archive",
                        "archive": "app.zip",
                        "object_prefix": "dist",
                        "default_object": "index.html",
                        "cache": True,
                        "hashes": [hashlib.sha256(app_zip).hexdigest()],
                        "mime_types": {".min.js": "text/javascript"},
                        "options": {"default_file": "index.html"},
                    },
                    "plain": {"type": "archive", "archive": "plain.zip"},
                    "remote": {
                        "type": "archive",
                        "archive": "downloaded.zip",
                        "origin": f"http://127.0.0.1:{origin.port}/moved.zip",
                        "download": True,
                        "object_prefix": "dist",
                        "hashes": [hashlib.sha256(app_zip).hexdigest()],
                    },
                    "upload": {
                        "type": "upload",
                        "realm": "realm1",
                        "role": "anonymous",
                        "directory": "uploaded",
                        "temp_directory": "partial",
                        "form_fields": FORM_FIELDS,
                        "options": {
                            "max_file_size": 1024 * 1024,
                            "file_permissions": "0640",
                            "file_types": [".txt", ".bin"],
                        },
                    },
                },
            }],
        }],
    }
    router = launch_router(nd, config, [port])
    try:
        yield router, backend, origin
    finally:
        router.close()
        backend.close()
        origin.close()
        nd.remove()


# -- nested paths ------------------------------------------------------------------------------


def test_nested_path_services_serve_their_own_sub_paths(nodes):
    router, _, _ = nodes
    status, _, body = request(router.port, "GET", "/folder")
    assert status == 200 and json.loads(body) == {"where": "folder"}, (status, body)
    status, _, body = request(router.port, "GET", "/folder/files/a.txt")
    assert (status, body) == (200, b"nested static file")
    status, _, body = request(router.port, "GET", "/folder/deeper/info")
    assert status == 200 and json.loads(body) == {"where": "deeper"}, (status, body)
    status, _, _ = request(router.port, "GET", "/folder/deeper/nothing")
    assert status == 404


# -- WebSocket reverse proxy ------------------------------------------------------------------


def ws_transport(port: int, path: str, serializer: str) -> dict:
    return {"type": "websocket", "url": f"ws://127.0.0.1:{port}/{path}", "serializers": [serializer]}


@pytest.mark.parametrize("serializer", ["json", "msgpack", "cbor"])
def test_wamp_sessions_reach_the_backend_through_the_websocket_proxy(nodes, serializer):
    router, backend, _ = nodes

    async def scenario():
        callee = proxied = None
        try:
            callee = await connect_with(ws_transport(backend.port, "ws", serializer), "websocket", serializer)
            proxied = await connect_with(ws_transport(router.port, "wsproxy", serializer), "websocket", serializer)
            procedure = f"com.example.echo.{uuid.uuid4().hex[:8]}"
            await callee.session.register(lambda x: x, procedure)
            big = "x" * (512 * 1024)
            result = await bounded(proxied.session.call(procedure, big), "call through the proxy")
            assert result == big
            # The proxied session is the backend's: it joined there.
            there = await callee.session.call("wamp.session.get", proxied.join_details.session)
            assert there["session"] == proxied.join_details.session, there
            got = asyncio.get_running_loop().create_future()
            topic = f"com.example.news.{uuid.uuid4().hex[:8]}"
            await proxied.session.subscribe(lambda v: got.done() or got.set_result(v), topic)
            callee.session.publish(topic, "hello through the proxy")
            assert await bounded(got, "event through the proxy") == "hello through the proxy"
        finally:
            await close_all(callee, proxied)

    run(scenario())


UPGRADE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Protocol": "wamp.2.json",
}


def test_the_websocket_proxy_refuses_what_it_cannot_pass_on(nodes):
    router, _, _ = nodes
    status, _, _ = request(router.port, "GET", "/wsproxy")
    assert status == 426
    status, _, _ = request(router.port, "GET", "/strictproxy", headers=dict(UPGRADE, Origin="https://evil.example"))
    assert status == 403
    status, headers, _ = request(router.port, "GET", "/strictproxy", headers=dict(UPGRADE, Origin="https://good.example"))
    assert status == 101 and headers["Sec-WebSocket-Accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", (status, headers)
    status, _, _ = request(router.port, "GET", "/deadproxy", headers=UPGRADE)
    assert status == 502
    # A handshake is a GET without a body: anything else is not passed on.
    status, _, _ = request(router.port, "POST", "/wsproxy", b"x" * 10, headers=UPGRADE)
    assert status == 426


# -- archive ----------------------------------------------------------------------------------


def test_files_are_served_from_the_archive(nodes):
    router, _, _ = nodes
    status, headers, body = request(router.port, "GET", "/app")
    assert (status, body) == (200, APP_FILES["dist/index.html"]), (status, body[:100])
    assert headers["Content-Type"].startswith("text/html"), headers
    status, headers, body = request(router.port, "GET", "/app/js/lib.min.js")
    assert (status, body) == (200, APP_FILES["dist/js/lib.min.js"])
    assert headers["Content-Type"] == "text/javascript", headers
    status, headers, body = request(router.port, "GET", "/app/css/app.css")
    assert status == 200 and headers["Content-Type"] == "text/css", headers
    # A path the archive lacks gets the default file (a single-page application's route).
    status, _, body = request(router.port, "GET", "/app/users/42")
    assert (status, body) == (200, APP_FILES["dist/index.html"])
    status, _, body = request(router.port, "GET", "/plain/data/big.bin")
    assert (status, body) == (200, PLAIN_FILES["data/big.bin"])
    status, headers, body = request(router.port, "HEAD", "/plain/style.css")
    assert status == 200 and headers["Content-Length"] == str(len(PLAIN_FILES["style.css"])) and body == b""
    status, _, _ = request(router.port, "GET", "/plain/missing.txt")
    assert status == 404
    status, _, _ = request(router.port, "POST", "/plain/style.css", b"x")
    assert status == 405


def test_an_archive_is_downloaded_from_its_origin_and_checked(nodes):
    router, _, origin = nodes
    status, _, body = request(router.port, "GET", "/remote/index.html")
    assert (status, body) == (200, APP_FILES["dist/index.html"]), (status, body[:200], router.log_tail())
    hits = origin.hits
    status, _, _ = request(router.port, "GET", "/remote/css/app.css")
    assert status == 200 and origin.hits == hits, "downloaded once"
    downloaded = router.config_dir / "downloaded.zip"
    with zipfile.ZipFile(downloaded) as z:
        assert sorted(z.namelist()) == sorted(APP_FILES), z.namelist()


def test_an_archive_that_does_not_match_its_fingerprint_is_refused_by_check():
    nd = make_node_dir("switchboard")
    try:
        (nd.config_dir / "app.zip").write_bytes(zip_bytes(APP_FILES))
        nd.write_config({
            "version": 2,
            "workers": [{
                "type": "router",
                "realms": [REALM],
                "transports": [{
                    "type": "web",
                    "endpoint": {"type": "tcp", "port": free_tcp_port()},
                    "paths": {"app": {"type": "archive", "archive": "app.zip", "hashes": ["0" * 64]}},
                }],
            }],
        })
        result = run_router_command(nd, "check")
        assert result.returncode != 0, result.describe()
        assert "paths.app.archive" in result.output and "none of `hashes`" in result.output, result.describe()
    finally:
        nd.remove()


# -- upload -----------------------------------------------------------------------------------


def multipart(fields: dict, file_field: str, file_name: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n".encode())
    out.write(
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"{file_field}\"; filename=\"{file_name}\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n".encode()
    )
    out.write(content)
    out.write(f"\r\n--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def post_chunk(port, name, data, number, chunk_size, total_size, total_chunks, extra=None):
    fields = {
        "resumableFilename": name,
        "resumableType": "application/octet-stream",
        "resumableTotalSize": str(total_size),
        "resumableChunkNumber": str(number),
        "resumableChunkSize": str(chunk_size),
        "resumableTotalChunks": str(total_chunks),
        **(extra or {}),
    }
    body, content_type = multipart(fields, "file", name, data)
    return request(port, "POST", "/upload", body, {"Content-Type": content_type})


def chunk_here(port, name, number) -> int:
    status, _, _ = request(port, "GET", f"/upload?resumableFilename={name}&resumableChunkNumber={number}")
    return status


def test_a_file_uploaded_in_chunks_arrives_whole_with_progress_events(nodes):
    router, _, _ = nodes
    name = f"data-{uuid.uuid4().hex[:8]}.bin"
    data = os.urandom(250_000)
    chunk = 100_000
    chunks = [data[i:i + chunk] for i in range(0, len(data), chunk)]
    topic = f"com.example.upload.{uuid.uuid4().hex[:8]}"

    async def scenario():
        watcher = bystander = None
        try:
            watcher = await connect_with(ws_transport(router.port, "ws", "json"), "websocket", "json")
            bystander = await connect_with(ws_transport(router.port, "ws", "json"), "websocket", "json")
            events, stray = [], []
            await watcher.session.subscribe(lambda e: events.append(e), topic)
            await bystander.session.subscribe(lambda e: stray.append(e), topic)
            extra = {"on_progress": topic, "session": str(watcher.join_details.session),
                     "chunk_extra": json.dumps({"batch": 7}), "finish_extra": json.dumps({"done": True})}
            loop = asyncio.get_running_loop()
            assert await loop.run_in_executor(None, chunk_here, router.port, name, 1) == 404
            for number, part in enumerate(chunks, start=1):
                status, _, body = await loop.run_in_executor(
                    None, post_chunk, router.port, name, part, number, chunk, len(data), len(chunks), extra)
                assert status == 200, body
                if number == 1:
                    assert await loop.run_in_executor(None, chunk_here, router.port, name, 1) == 200
                    assert not (router.config_dir / "uploaded" / name).exists(), "not before the last chunk"
            await eventually(lambda: any(e["status"] == "finished" for e in events), "the finished event")
            statuses = [e["status"] for e in events]
            assert statuses == ["started", "progress", "progress", "finished"], events
            finished = events[-1]
            assert (finished["name"], finished["total"], finished["remaining"], finished["progress"]) == \
                (name, len(data), 0, 1.0), finished
            assert finished["finish_extra"] == {"done": True} and finished["chunk_extra"] == {"batch": 7}, finished
            assert events[1]["remaining"] == len(data) - chunk, events[1]
            await asyncio.sleep(0.2)
            assert stray == [], "events go to the session the upload names"
        finally:
            await close_all(watcher, bystander)

    run(scenario())
    stored = router.config_dir / "uploaded" / name
    assert stored.read_bytes() == data
    assert stat.S_IMODE(stored.stat().st_mode) == 0o640
    assert not (router.config_dir / "partial" / name).exists(), "the chunks are cleaned up"


def test_uploads_that_break_the_rules_are_refused_and_store_nothing(nodes):
    router, _, _ = nodes
    before = set(os.listdir(router.config_dir / "uploaded"))
    status, _, body = post_chunk(router.port, "huge.bin", b"x", 1, 1, 2 * 1024 * 1024, 2)
    assert status == 413 and b"exceeds maximum" in body, (status, body)
    status, _, _ = post_chunk(router.port, "tool.exe", b"x", 1, 1, 1, 1)
    assert status == 415
    for bad in ("../escape.txt", ".hidden.txt", "sub/dir.txt"):
        status, _, _ = post_chunk(router.port, bad, b"x", 1, 1, 1, 1)
        assert status == 400, bad
    status, _, _ = post_chunk(router.port, "nochunk.txt", b"x", 3, 1, 1, 2)
    assert status == 400
    # Chunks may not add up to more than the file: one name cannot fill the disk.
    status, _, _ = post_chunk(router.port, "sum.txt", b"x" * 10, 1, 10, 15, 3)
    assert status == 200
    status, _, _ = post_chunk(router.port, "sum.txt", b"y" * 10, 2, 10, 15, 3)
    assert status == 413
    status, _, _ = request(router.port, "POST", "/upload", b"{}", {"Content-Type": "application/json"})
    assert status == 400
    assert set(os.listdir(router.config_dir / "uploaded")) == before
    assert not (router.config_dir.parent / "escape.txt").exists()


def test_a_single_chunk_upload_of_the_same_name_replaces_nothing_in_progress(nodes):
    router, _, _ = nodes
    name = f"two-{uuid.uuid4().hex[:8]}.txt"
    status, _, _ = post_chunk(router.port, name, b"a" * 10, 1, 10, 20, 2)
    assert status == 200
    # Another client's upload of the same name with another size must not mix with it.
    status, _, _ = post_chunk(router.port, name, b"b" * 5, 1, 5, 5, 1)
    assert status == 409
    status, _, _ = post_chunk(router.port, name, b"c" * 10, 2, 10, 20, 2)
    assert status == 200
    assert (router.config_dir / "uploaded" / name).read_bytes() == b"a" * 10 + b"c" * 10
