"""TLS listeners (``endpoint.tls``): WAMP over wss:// and RawSocket over TLS
with Autobahn|Python, HTTPS static files, certificate chains, client
certificates (``ca_certificates``), ``ciphers``, key file formats, what a
client that does not trust the CA or does not speak TLS gets, and bad TLS
material failing ``check`` and ``start``.

Every certificate is made at test time by tls_material (a root CA, an
intermediate CA, server certificates for 127.0.0.1 and localhost); clients
trust the test CA through an ``ssl.SSLContext``."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from autobahn.wamp.types import CallResult, PublishOptions

import interop_http as h
import tls_material as tm
from interop_client import SERIALIZERS, TIMEOUT, SessionRefused, bounded, close_all, connect_with, run, unique_uri
from interop_router import (
    REALM,
    CliResult,
    NodeDir,
    Router,
    _can_connect_tcp,
    free_tcp_port,
    launch_router,
    make_node_dir,
    router_argv,
    router_kind,
    run_router_command,
)

PERMISSIONS = [
    {"uri": "", "match": "prefix", "allow": {"call": True, "register": True, "publish": True, "subscribe": True}}
]
CIPHERS = "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256"
INDEX_HTML = b"<!doctype html><html><body><h1>served over TLS</h1></body></html>\n"
DATA_JSON = b'{"tls": true}\n'
BIG = bytes(range(256)) * 4000 + b"end"  # ~1 MB

#: extra key file formats, each on a listener of its own: (key kind, PEM format)
KEY_FORMATS = [("rsa", "traditional"), ("ec", "traditional"), ("ec", "pkcs8")]
KEY_FORMAT_IDS = {("rsa", "traditional"): "rsa-pkcs1", ("ec", "traditional"): "ec-sec1", ("ec", "pkcs8"): "ec-pkcs8"}


def router_config(transports: list[dict]) -> dict:
    return {
        "version": 2,
        "workers": [
            {
                "type": "router",
                "realms": [{"name": REALM, "roles": [{"name": "anonymous", "permissions": PERMISSIONS}]}],
                "transports": transports,
            }
        ],
    }


def endpoint(port: int, tls: dict) -> dict:
    return {"type": "tcp", "port": port, "interface": "127.0.0.1", "tls": tls}


def free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        p = free_tcp_port()
        if p not in ports:
            ports.append(p)
    return ports


@dataclass
class TlsNode:
    router: Router
    ca: tm.CA
    client_ca: tm.CA  # issues client certificates for the mutual-TLS listener
    ports: dict  # name -> port
    config_dir: Path
    client_cert_files: tuple = ()  # (cert path, key path) of a client certificate

    def trusting(self) -> ssl.SSLContext:
        return self.ca.client_context()


@pytest.fixture(scope="module")
def node():
    """One router with several TLS listeners:

    * universal: RawSocket + WebSocket /ws + static web /, key+certificate
      (RSA, PKCS#8) signed by the root CA;
    * web: a web transport (static / and WebSocket /ws) whose certificate
      comes from an intermediate CA, sent via chain_certificates;
    * ciphers: universal with an OpenSSL cipher list;
    * websocket / rawsocket: plain websocket and rawsocket transports over TLS;
    * mtls: universal with ca_certificates (client certificates required);
    * chain_multi: a chain_certificates file with two certificates;
    * combined: key and certificate both from one PEM file;
    * key_<format>: websocket transports whose keys are PKCS#1 RSA, SEC1 EC
      and PKCS#8 EC."""
    nd = make_node_dir()
    cfg_dir = nd.config_dir
    ca = tm.CA()
    inter = ca.child_ca()
    client_ca = tm.CA("Switchboard interop client CA")

    server = ca.issue_server_cert("rsa")
    tm.write(cfg_dir / "keys" / "server.key", server.key_pem("pkcs8"))
    tm.write(cfg_dir / "keys" / "server.crt", server.cert_pem())
    chained = inter.issue_server_cert("rsa")
    tm.write(cfg_dir / "keys" / "chained.key", chained.key_pem())
    tm.write(cfg_dir / "keys" / "chained.crt", chained.cert_pem())
    tm.write(cfg_dir / "keys" / "intermediate.crt", inter.cert_pem())
    tm.write(cfg_dir / "keys" / "client-ca.crt", client_ca.cert_pem())
    client = client_ca.issue_client_cert()
    client_cert = tm.write(cfg_dir / "client" / "client.crt", client.cert_pem())
    client_key = tm.write(cfg_dir / "client" / "client.key", client.key_pem())

    web_dir = cfg_dir / "web"
    tm.write(web_dir / "index.html", INDEX_HTML)
    tm.write(web_dir / "data.json", DATA_JSON)

    # a chain file holding the intermediate and then the root (as some CAs ship it)
    tm.write(cfg_dir / "keys" / "chain-multi.crt", inter.cert_pem() + ca.cert_pem())
    # one PEM file with the certificate and the key, used as both
    combined = ca.issue_server_cert("rsa")
    tm.write(cfg_dir / "keys" / "combined.pem", combined.cert_pem() + combined.key_pem())
    tm.write(web_dir / "big.bin", BIG)

    names = ["universal", "web", "ciphers", "websocket", "rawsocket", "mtls", "chain_multi", "combined"]
    key_names = [f"key_{KEY_FORMAT_IDS[f]}" for f in KEY_FORMATS]
    ports = dict(zip(names + key_names, free_ports(len(names) + len(key_names))))

    basic_tls = {"key": "keys/server.key", "certificate": "keys/server.crt"}
    static_web = {"paths": {"/": {"type": "static", "directory": "web"}}}
    transports = [
        {
            "type": "universal",
            "endpoint": endpoint(ports["universal"], basic_tls),
            "rawsocket": {},
            "websocket": {"ws": {"type": "websocket"}},
            "web": static_web,
        },
        {
            "type": "web",
            "endpoint": endpoint(
                ports["web"],
                {
                    "key": "keys/chained.key",
                    "certificate": "keys/chained.crt",
                    "chain_certificates": ["keys/intermediate.crt"],
                },
            ),
            "paths": {"/": {"type": "static", "directory": "web"}, "ws": {"type": "websocket"}},
        },
        {
            "type": "universal",
            "endpoint": endpoint(ports["ciphers"], dict(basic_tls, ciphers=CIPHERS)),
            "websocket": {"ws": {"type": "websocket"}},
            "web": static_web,
        },
        {"type": "websocket", "endpoint": endpoint(ports["websocket"], basic_tls)},
        {"type": "rawsocket", "endpoint": endpoint(ports["rawsocket"], basic_tls)},
        {
            "type": "universal",
            "endpoint": endpoint(ports["mtls"], dict(basic_tls, ca_certificates=["keys/client-ca.crt"])),
            "websocket": {"ws": {"type": "websocket"}},
            "web": static_web,
        },
    ]
    transports += [
        {
            "type": "websocket",
            "endpoint": endpoint(
                ports["chain_multi"],
                {
                    "key": "keys/chained.key",
                    "certificate": "keys/chained.crt",
                    "chain_certificates": ["keys/chain-multi.crt"],
                },
            ),
        },
        {
            "type": "universal",
            "endpoint": endpoint(ports["combined"], {"key": "keys/combined.pem", "certificate": "keys/combined.pem"}),
            "websocket": {"ws": {"type": "websocket"}},
            "web": static_web,
        },
    ]
    for (kind, fmt), name in zip(KEY_FORMATS, key_names):
        issued = ca.issue_server_cert(kind)
        tm.write(cfg_dir / "keys" / f"{name}.key", issued.key_pem(fmt))
        tm.write(cfg_dir / "keys" / f"{name}.crt", issued.cert_pem())
        transports.append(
            {
                "type": "websocket",
                "endpoint": endpoint(ports[name], {"key": f"keys/{name}.key", "certificate": f"keys/{name}.crt"}),
            }
        )

    router = launch_router(nd, router_config(transports), list(ports.values()))
    try:
        yield TlsNode(router, ca, client_ca, ports, cfg_dir, (client_cert, client_key))
    finally:
        router.close()


# ---------------------------------------------------------------------------
# client helpers
# ---------------------------------------------------------------------------


def wss(port: int, ctx: ssl.SSLContext, serializer: str, path: str = "/ws", host: str = "127.0.0.1") -> dict:
    return {
        "type": "websocket",
        "url": f"wss://{host}:{port}{path}",
        "endpoint": {"type": "tcp", "host": host, "port": port, "tls": ctx, "timeout": int(TIMEOUT)},
        "serializers": [serializer],
    }


def rss(port: int, ctx: ssl.SSLContext, serializer: str, host: str = "127.0.0.1") -> dict:
    return {
        "type": "rawsocket",
        "url": f"rss://{host}:{port}",
        "endpoint": {"type": "tcp", "host": host, "port": port, "tls": ctx, "timeout": int(TIMEOUT)},
        "serializer": serializer,
    }


async def rpc_and_pubsub(callee_cfg: dict, caller_cfg: dict, label: str, serializer: str) -> None:
    """register+call and subscribe+publish between two sessions."""
    a = b = None
    try:
        a = await connect_with(callee_cfg, label, serializer)
        b = await connect_with(caller_cfg, label, serializer)
        proc = unique_uri("com.example.tls.echo")
        topic = unique_uri("com.example.tls.topic")
        await bounded(a.session.register(lambda *args, **kw: CallResult(*args, **kw), proc), "REGISTERED")
        res = await bounded(b.session.call(proc, 1, "zwei", b"\x00\xff", big=2**53), "RESULT")
        assert list(res.results) == [1, "zwei", b"\x00\xff"]
        assert res.kwresults == {"big": 2**53}

        got = asyncio.get_running_loop().create_future()

        def on_event(*args, **kwargs):
            if not got.done():
                got.set_result((args, kwargs))

        await bounded(a.session.subscribe(on_event, topic), "SUBSCRIBED")
        pub = await bounded(
            b.session.publish(topic, "hello", b"\x01", options=PublishOptions(acknowledge=True), n=3), "PUBLISHED"
        )
        assert pub is not None and pub.id
        args, kwargs = await bounded(got, "EVENT")
        assert list(args) == ["hello", b"\x01"] and kwargs == {"n": 3}
    finally:
        await close_all(a, b)


def tls_connect(port: int, ctx: ssl.SSLContext, server_hostname: str = "127.0.0.1") -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    try:
        return ctx.wrap_socket(sock, server_hostname=server_hostname)
    except BaseException:
        sock.close()
        raise


def recv_exactly(sock, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


def rawsocket_json_hello(sock) -> list:
    """RawSocket handshake (0x7F 0xF1 0 0: max length 2**24, JSON), then
    HELLO; returns the decoded reply (WELCOME expected)."""
    sock.sendall(bytes([0x7F, 0xF1, 0, 0]))
    reply = recv_exactly(sock, 4)
    assert len(reply) == 4 and reply[0] == 0x7F, f"RawSocket handshake reply {reply!r}"
    assert reply[1] & 0x0F == 1, f"serializer not JSON in handshake reply {reply!r}"
    assert reply[2:] == b"\x00\x00", f"reserved octets not zero in handshake reply {reply!r}"
    hello = json.dumps([1, REALM, {"roles": {"caller": {}, "callee": {}, "publisher": {}, "subscriber": {}}}]).encode()
    sock.sendall(struct.pack(">I", len(hello)) + hello)  # first octet 0: a regular WAMP message
    header = recv_exactly(sock, 4)
    assert len(header) == 4, f"no frame header after HELLO: {header!r}"
    kind, length = header[0], int.from_bytes(header[1:], "big")
    assert kind == 0, f"frame type {kind} instead of a WAMP message"
    return json.loads(recv_exactly(sock, length))


# ---------------------------------------------------------------------------
# WAMP over TLS
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("serializer", SERIALIZERS)
@pytest.mark.parametrize("listener", ["universal", "web", "websocket", "ciphers"])
def test_wss_register_call_subscribe_publish(node, listener, serializer):
    path = "/" if listener == "websocket" else "/ws"
    cfg = wss(node.ports[listener], node.trusting(), serializer, path)
    run(rpc_and_pubsub(cfg, cfg, f"wss/{listener}", serializer))


@pytest.mark.parametrize("serializer", SERIALIZERS)
@pytest.mark.parametrize("listener", ["universal", "rawsocket"])
def test_rawsocket_over_tls_register_call_subscribe_publish(node, listener, serializer):
    cfg = rss(node.ports[listener], node.trusting(), serializer)
    run(rpc_and_pubsub(cfg, cfg, f"rss/{listener}", serializer))


@pytest.mark.parametrize("serializer", SERIALIZERS)
def test_wss_and_rawsocket_tls_sessions_meet_in_one_realm(node, serializer):
    callee = rss(node.ports["rawsocket"], node.trusting(), serializer)
    caller = wss(node.ports["web"], node.trusting(), serializer)
    run(rpc_and_pubsub(callee, caller, "rss+wss", serializer))


@pytest.mark.parametrize("listener", ["universal", "rawsocket"])
def test_raw_tls_socket_rawsocket_handshake_and_hello_welcome(node, listener):
    with tls_connect(node.ports[listener], node.trusting()) as sock:
        msg = rawsocket_json_hello(sock)
        assert msg[0] == 2, f"expected WELCOME, got {msg!r}"
        assert isinstance(msg[1], int) and 1 <= msg[1] <= 2**53
        assert "broker" in msg[2].get("roles", {}) and "dealer" in msg[2].get("roles", {}), msg


def test_certificate_is_valid_for_localhost_too(node):
    with tls_connect(node.ports["universal"], node.trusting(), server_hostname="localhost") as sock:
        assert sock.version() in ("TLSv1.2", "TLSv1.3")
        assert rawsocket_json_hello(sock)[0] == 2


@pytest.mark.parametrize("key_format", [KEY_FORMAT_IDS[f] for f in KEY_FORMATS])
def test_key_file_formats(node, key_format):
    port = node.ports[f"key_{key_format}"]
    cfg = wss(port, node.trusting(), "cbor", path="/")
    run(rpc_and_pubsub(cfg, cfg, f"wss/key {key_format}", "cbor"))


def test_chain_file_with_several_certificates(node):
    cfg = wss(node.ports["chain_multi"], node.trusting(), "json", path="/")
    run(rpc_and_pubsub(cfg, cfg, "wss/chain-multi", "json"))


def test_key_and_certificate_from_one_pem_file(node):
    cfg = wss(node.ports["combined"], node.trusting(), "msgpack")
    run(rpc_and_pubsub(cfg, cfg, "wss/combined-pem", "msgpack"))
    r = h.get(node.ports["combined"], "/data.json", tls=node.trusting())
    assert r.status == 200 and r.body == DATA_JSON, r.describe()


@pytest.mark.parametrize(
    "transport,serializer", [("wss", "json"), ("wss", "msgpack"), ("rss", "cbor"), ("rss", "json")]
)
def test_large_messages_over_tls(node, transport, serializer):
    """~100 KB messages (below Crossbar's 128 KiB RawSocket limit) span
    several 16 KB TLS records."""
    make = wss if transport == "wss" else rss
    cfg = make(node.ports["universal"], node.trusting(), serializer)
    blob = bytes(range(256)) * 200
    text = "x" * 50_000

    async def scenario():
        a = b = None
        try:
            a = await connect_with(cfg, transport, serializer)
            b = await connect_with(cfg, transport, serializer)
            proc = unique_uri("com.example.tls.big")
            await bounded(a.session.register(lambda x, y: [len(x), len(y), x[-3:], y], proc), "REGISTERED")
            res = await bounded(b.session.call(proc, blob, text), "RESULT")
            assert res[0] == len(blob) and res[1] == len(text) and res[2] == blob[-3:]
            assert res[3] == text
        finally:
            await close_all(a, b)

    run(scenario())


def test_silent_tcp_clients_do_not_block_the_tls_listener(node):
    """Connections that never send a ClientHello (or only part of one) must
    not keep the listener from serving others."""
    port = node.ports["universal"]
    silent = [socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) for _ in range(5)]
    partial = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    try:
        partial.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello record
        with tls_connect(port, node.trusting()) as sock:
            assert rawsocket_json_hello(sock)[0] == 2
        r = h.get(port, "/data.json", tls=node.trusting())
        assert r.status == 200, r.describe()
    finally:
        for s in silent + [partial]:
            s.close()


# ---------------------------------------------------------------------------
# HTTPS
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("listener", ["universal", "web", "ciphers"])
def test_https_get_of_static_files(node, listener):
    port = node.ports[listener]
    r = h.get(port, "/", tls=node.trusting())
    assert r.status == 200, r.describe()
    assert r.body == INDEX_HTML
    assert r.content_type == "text/html"
    r = h.get(port, "/data.json", tls=node.trusting())
    assert r.status == 200 and r.body == DATA_JSON, r.describe()
    assert r.content_type == "application/json"
    r = h.get(port, "/missing.txt", tls=node.trusting())
    assert r.status == 404, r.describe()


@pytest.mark.parametrize("listener", ["universal", "web"])
def test_https_large_file(node, listener):
    r = h.get(node.ports[listener], "/big.bin", tls=node.trusting())
    assert r.status == 200, r.describe()
    assert r.body == BIG


def test_https_keep_alive_and_range(node):
    conn = h.connection(node.ports["web"], node.trusting())
    try:
        for _ in range(3):
            r = h.request_on(conn, "GET", "/data.json")
            assert r.status == 200 and r.body == DATA_JSON, r.describe()
        r = h.request_on(conn, "GET", "/data.json", {"Range": "bytes=1-4"})
        assert r.status == 206 and r.body == DATA_JSON[1:5], r.describe()
    finally:
        conn.close()


def test_chain_certificates_are_sent(node):
    """The web listener's certificate comes from the intermediate CA; a
    client trusting only the root verifies it, so the server must send the
    intermediate (chain_certificates)."""
    with tls_connect(node.ports["web"], node.trusting()) as sock:
        assert sock.getpeercert()
    # the intermediate alone is not a trust anchor for the root-signed listener
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.load_verify_locations(cadata=(node.config_dir / "keys" / "intermediate.crt").read_text())
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_connect(node.ports["universal"], ctx).close()


# ---------------------------------------------------------------------------
# ciphers and protocol versions
# ---------------------------------------------------------------------------


def tls12_context(node: TlsNode, ciphers: str | None = None) -> ssl.SSLContext:
    ctx = node.trusting()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


def speaks_tls12(node: TlsNode, port: int) -> bool:
    try:
        tls_connect(port, tls12_context(node)).close()
        return True
    except (ssl.SSLError, ConnectionError):
        return False


def test_default_client_negotiates_tls_1_2_or_newer(node):
    for name in ("universal", "ciphers"):
        with tls_connect(node.ports[name], node.trusting()) as sock:
            assert sock.version() in ("TLSv1.2", "TLSv1.3"), f"{name}: {sock.version()}"


def test_old_protocol_versions_are_refused(node):
    ctx = node.trusting()
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_connect(node.ports["universal"], ctx).close()


def test_configured_ciphers_restrict_tls_1_2(node):
    """With ``ciphers``, a TLS 1.2 client gets one of the listed suites, and
    one offering only other suites is refused. (TLS 1.3 suites are not
    affected by an OpenSSL cipher list.) Skipped for a router that speaks
    TLS 1.3 only, as Crossbar.io 26 does."""
    port = node.ports["ciphers"]
    if not speaks_tls12(node, node.ports["universal"]):
        pytest.skip("the router does not speak TLS 1.2 at all (TLS 1.3 only)")
    with tls_connect(port, tls12_context(node)) as sock:
        name, version, _ = sock.cipher()
        assert version == "TLSv1.2"
        assert name in CIPHERS.split(":"), f"negotiated {name}, configured {CIPHERS}"
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_connect(port, tls12_context(node, "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305")).close()


# ---------------------------------------------------------------------------
# clients that do not trust the server, or do not speak TLS
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("listener", ["universal", "web", "rawsocket"])
def test_client_not_trusting_the_ca_fails_the_handshake(node, listener):
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_connect(node.ports[listener], tm.untrusting_context()).close()
    # nor does the default trust store know the test CA
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_connect(node.ports[listener], ssl.create_default_context()).close()


def test_wrong_server_name_fails_the_handshake(node):
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_connect(node.ports["universal"], node.trusting(), server_hostname="not-the-server.example").close()


def test_autobahn_not_trusting_the_ca_gets_no_session(node):
    async def scenario():
        for cfg in (
            wss(node.ports["universal"], tm.untrusting_context(), "json"),
            rss(node.ports["rawsocket"], tm.untrusting_context(), "json"),
        ):
            try:
                c = await connect_with(cfg, cfg["type"], "json")
            except (SessionRefused, TimeoutError, ssl.SSLError, OSError):
                continue
            await close_all(c)
            raise AssertionError(f"joined a session over {cfg['url']} without trusting the server's CA")

    run(scenario())


def test_https_not_trusting_the_ca_fails(node):
    with pytest.raises(ssl.SSLCertVerificationError):
        h.get(node.ports["web"], "/", tls=tm.untrusting_context())


@pytest.mark.parametrize("listener", ["universal", "rawsocket"])
def test_plain_rawsocket_to_tls_port_gets_no_session(node, listener):
    port = node.ports[listener]
    # a TLS server may just wait for the rest of a TLS record: 3 s of silence is "no session" too
    with socket.create_connection(("127.0.0.1", port), timeout=min(TIMEOUT, 3.0)) as sock:
        sock.sendall(bytes([0x7F, 0xF1, 0, 0]))
        try:
            reply = recv_exactly(sock, 4)
        except (socket.timeout, ConnectionError):
            reply = b""
    assert not (len(reply) == 4 and reply[0] == 0x7F and reply[2:] == b"\0\0"), (
        f"plain RawSocket handshake accepted on a TLS port: {reply!r}"
    )


@pytest.mark.parametrize("listener", ["universal", "web", "websocket"])
def test_plain_websocket_to_tls_port_gets_no_session(node, listener):
    path = "/" if listener == "websocket" else "/ws"
    cfg = {
        "type": "websocket",
        "url": f"ws://127.0.0.1:{node.ports[listener]}{path}",
        "serializers": ["json"],
        "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": node.ports[listener], "timeout": int(TIMEOUT)},
    }

    async def scenario():
        try:
            c = await connect_with(cfg, "ws (no TLS)", "json")
        except (SessionRefused, TimeoutError, OSError):
            return
        await close_all(c)
        raise AssertionError(f"joined a session with plain ws:// on TLS port {node.ports[listener]}")

    run(scenario())


def test_plain_http_to_tls_port_gets_no_file(node):
    port = node.ports["web"]
    r = h.raw_request(port, b"GET /data.json HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert DATA_JSON not in r.body and not (r.status == 200), f"plain HTTP on a TLS port: {r.describe()}"


def test_listeners_still_work_after_bad_clients(node):
    with tls_connect(node.ports["universal"], node.trusting()) as sock:
        assert rawsocket_json_hello(sock)[0] == 2
    assert h.get(node.ports["web"], "/data.json", tls=node.trusting()).status == 200


# ---------------------------------------------------------------------------
# client certificates (ca_certificates)
# ---------------------------------------------------------------------------


def test_ca_certificates_require_a_client_certificate(node):
    port = node.ports["mtls"]
    # without a client certificate: refused (during the handshake, or at the first read for TLS 1.3)
    with pytest.raises((ssl.SSLError, ConnectionError, AssertionError, socket.timeout)):
        r = h.get(port, "/", tls=node.trusting())
        assert r.status != 200, r.describe()
    # with a client certificate from an unrelated CA: refused
    other = tm.CA("Unrelated client CA").issue_client_cert("intruder")
    ctx = node.trusting()
    p_cert = tm.write(node.config_dir / "client" / "other.crt", other.cert_pem())
    p_key = tm.write(node.config_dir / "client" / "other.key", other.key_pem())
    ctx.load_cert_chain(p_cert, p_key)
    with pytest.raises((ssl.SSLError, ConnectionError, AssertionError, socket.timeout)):
        r = h.get(port, "/", tls=ctx)
        assert r.status != 200, r.describe()
    # with a certificate from the configured CA: served
    ctx = node.trusting()
    ctx.load_cert_chain(*node.client_cert_files)
    r = h.get(port, "/", tls=ctx)
    assert r.status == 200 and r.body == INDEX_HTML, r.describe()


def test_ca_certificates_wamp_session_with_client_certificate(node):
    ctx = node.trusting()
    ctx.load_cert_chain(*node.client_cert_files)
    cfg = wss(node.ports["mtls"], ctx, "msgpack")
    run(rpc_and_pubsub(cfg, cfg, "wss/mtls", "msgpack"))


# ---------------------------------------------------------------------------
# bad TLS material: check and start fail, naming the file
# ---------------------------------------------------------------------------


@dataclass
class BadCase:
    tls: dict
    problem_path: str  # the config path the error names (or a prefix of it)
    contains: tuple  # substrings of the message


def bad_material(nd: NodeDir) -> dict:
    """Writes good and broken TLS files into nd; returns the cases."""
    keys = nd.config_dir / "keys"
    ca = tm.CA()
    good = ca.issue_server_cert("rsa")
    other = ca.issue_server_cert("rsa")
    nb, na = tm.expired_times()
    expired = ca.issue_server_cert("rsa", not_before=nb, not_after=na)
    tm.write(keys / "server.key", good.key_pem())
    tm.write(keys / "server.crt", good.cert_pem())
    tm.write(keys / "other.key", other.key_pem())
    tm.write(keys / "expired.key", expired.key_pem())
    tm.write(keys / "expired.crt", expired.cert_pem())
    tm.write(keys / "ca.crt", ca.cert_pem())
    base = "workers[0].transports[0].endpoint.tls"
    return {
        "key-missing": BadCase(
            {"key": "keys/missing.key", "certificate": "keys/server.crt"}, f"{base}.key", ("cannot read", "keys/missing.key")
        ),
        "certificate-missing": BadCase(
            {"key": "keys/server.key", "certificate": "keys/missing.crt"},
            f"{base}.certificate",
            ("cannot read", "keys/missing.crt"),
        ),
        "chain-certificate-missing": BadCase(
            {"key": "keys/server.key", "certificate": "keys/server.crt", "chain_certificates": ["keys/missing-chain.crt"]},
            f"{base}.chain_certificates",
            ("cannot read", "keys/missing-chain.crt"),
        ),
        "ca-certificate-missing": BadCase(
            {"key": "keys/server.key", "certificate": "keys/server.crt", "ca_certificates": ["keys/missing-ca.crt"]},
            f"{base}.ca_certificates",
            ("cannot read", "keys/missing-ca.crt"),
        ),
        "key-mismatch": BadCase({"key": "keys/other.key", "certificate": "keys/server.crt"}, base, ("does not match",)),
        "certificate-expired": BadCase(
            {"key": "keys/expired.key", "certificate": "keys/expired.crt"}, f"{base}.certificate", ("expired",)
        ),
    }


BAD_CASES = [
    "key-missing",
    "certificate-missing",
    "chain-certificate-missing",
    "ca-certificate-missing",
    "key-mismatch",
    "certificate-expired",
]


def bad_config(tls: dict, port: int) -> dict:
    return router_config(
        [
            {
                "type": "universal",
                "endpoint": endpoint(port, tls),
                "rawsocket": {},
                "websocket": {"ws": {"type": "websocket"}},
            }
        ]
    )


def assert_names_problem(result, case: BadCase) -> None:
    out = result.output
    assert result.returncode == 1, f"expected exit status 1:\n{result.describe()}"
    assert "error: invalid configuration" in out, result.describe()
    pattern = re.compile(r"^(?P<file>\S*config\.json):(\d+):(\d+): (?P<path>[^ ]+): (?P<msg>.*)$", re.M)
    # the path may go deeper than case.problem_path (e.g. chain_certificates[0], tls.key)
    problems = [m for m in pattern.finditer(out) if m.group("path").startswith(case.problem_path)]
    assert problems, f"no line '<file>:<line>:<col>: {case.problem_path}...: ...' in:\n{result.describe()}"
    msgs = [m.group("msg") for m in problems]
    assert any(all(s in msg for s in case.contains) for msg in msgs), (
        f"no message for {case.problem_path} containing {case.contains}:\n{result.describe()}"
    )


@pytest.fixture()
def bad_node():
    nd = make_node_dir()
    try:
        yield nd
    finally:
        nd.remove()


@pytest.mark.parametrize("case_name", BAD_CASES)
def test_check_rejects_bad_tls_material(bad_node, case_name):
    if router_kind() == "crossbar":
        pytest.skip("`crossbar check` validates the config's shape only, not the TLS files")
    case = bad_material(bad_node)[case_name]
    bad_node.write_config(bad_config(case.tls, free_tcp_port()))
    result = run_router_command(bad_node, "check", timeout=30)
    assert_names_problem(result, case)


@pytest.mark.parametrize("case_name", BAD_CASES)
def test_start_refuses_bad_tls_material(bad_node, case_name, request):
    case = bad_material(bad_node)[case_name]
    port = free_tcp_port()
    bad_node.write_config(bad_config(case.tls, port))
    kind = router_kind()
    if kind == "crossbar" and case_name in ("certificate-expired", "key-mismatch"):
        request.applymarker(
            pytest.mark.xfail(reason="Crossbar 26.10.1 starts and listens with this material", strict=False)
        )
    result = start_and_watch(bad_node, port, timeout=20 if kind == "switchboard" else 60)
    if result.returncode is None:
        pytest.fail(f"started with bad TLS material ({result.output.splitlines()[0]}):\n{result.describe()}")
    if kind == "crossbar":
        # Crossbar logs a traceback naming the file and exits non-zero
        assert result.returncode != 0, result.describe()
        return
    assert_names_problem(result, case)


def start_and_watch(nd: NodeDir, port: int, timeout: float) -> CliResult:
    """``start`` the node; returns once it exits (returncode set) or once it
    accepts connections on ``port`` or ``timeout`` passes (then it is killed
    and returncode is None)."""
    argv = router_argv(nd, "start")
    log_path = nd.node_dir / "start.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv, cwd=str(nd.node_dir), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        what = None
        deadline = time.monotonic() + timeout
        try:
            while proc.poll() is None:
                if _can_connect_tcp(port):
                    what = f"it accepts connections on 127.0.0.1:{port}"
                    break
                if time.monotonic() > deadline:
                    what = f"still running after {timeout}s"
                    break
                time.sleep(0.1)
        finally:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
                code = None
            else:
                code = proc.returncode
    output = log_path.read_text(errors="replace")
    if code is None:
        output = f"{what}\n{output}"
    return CliResult(argv, code, output)


def test_check_accepts_good_tls_material(bad_node):
    if router_kind() == "crossbar":
        pytest.skip("switchboard check only")
    bad_material(bad_node)
    tls = {
        "key": "keys/server.key",
        "certificate": "keys/server.crt",
        "ca_certificates": ["keys/ca.crt"],
        "ciphers": CIPHERS,
    }
    bad_node.write_config(bad_config(tls, free_tcp_port()))
    result = run_router_command(bad_node, "check", timeout=30)
    assert result.returncode == 0, result.describe()
