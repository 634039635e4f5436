"""Plain HTTP(S) helpers for the web-transport tests.

``request`` uses ``http.client``, which puts the request target on the wire
exactly as given (no normalization of ``..`` or percent-escapes), and
``raw_request`` writes bytes straight to a socket. Both are bounded by
INTEROP_TIMEOUT and never follow redirects."""

from __future__ import annotations

import http.client
import socket
import ssl
from dataclasses import dataclass

from interop_client import TIMEOUT

HOST = "127.0.0.1"


@dataclass
class Response:
    status: int
    reason: str
    headers: dict  # lower-case name -> value (repeated headers joined by ", ")
    body: bytes
    raw_head: str = ""

    def header(self, name: str, default=None):
        return self.headers.get(name.lower(), default)

    @property
    def content_type(self) -> str:
        """The media type, lower-case, without parameters."""
        return (self.header("content-type") or "").split(";")[0].strip().lower()

    def describe(self, limit: int = 300) -> str:
        hdrs = "; ".join(f"{k}: {v}" for k, v in self.headers.items())
        body = self.body[:limit]
        more = f" ... ({len(self.body)} bytes)" if len(self.body) > limit else ""
        return f"{self.status} {self.reason} [{hdrs}] body={body!r}{more}"


def _headers_of(msg) -> dict:
    out: dict = {}
    for k, v in msg.items():
        k = k.lower()
        out[k] = f"{out[k]}, {v}" if k in out else v
    return out


def connection(port: int, tls: ssl.SSLContext | None = None, host: str = HOST):
    if tls is not None:
        return http.client.HTTPSConnection(host, port, timeout=TIMEOUT, context=tls)
    return http.client.HTTPConnection(host, port, timeout=TIMEOUT)


def request_on(conn, method: str, path: str, headers: dict | None = None) -> Response:
    """One request on an open (keep-alive) ``http.client`` connection."""
    hdrs = {"User-Agent": "switchboard-interop"}
    hdrs.update(headers or {})
    conn.putrequest(method, path, skip_host=False, skip_accept_encoding=True)
    for k, v in hdrs.items():
        conn.putheader(k, v)
    conn.endheaders()
    resp = conn.getresponse()
    body = resp.read()
    return Response(resp.status, resp.reason, _headers_of(resp.headers), body)


def request(
    port: int,
    method: str,
    path: str,
    headers: dict | None = None,
    tls: ssl.SSLContext | None = None,
) -> Response:
    """One request on a fresh connection; ``path`` goes on the wire as-is."""
    conn = connection(port, tls)
    try:
        return request_on(conn, method, path, headers)
    finally:
        conn.close()


def get(port: int, path: str, headers: dict | None = None, tls: ssl.SSLContext | None = None) -> Response:
    return request(port, "GET", path, headers, tls)


def raw_request(port: int, data: bytes, tls: ssl.SSLContext | None = None, host: str = HOST) -> Response:
    """Send ``data`` as-is and read until the server closes the connection
    (send ``Connection: close`` or HTTP/1.0) or TIMEOUT passes; parses the
    status line and headers, returns everything after the blank line as the
    body (without de-chunking)."""
    sock = socket.create_connection((host, port), timeout=TIMEOUT)
    try:
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname=host)
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        sock.close()
    raw = b"".join(chunks)
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return Response(0, "no complete HTTP response", {}, raw, raw.decode("latin-1"))
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    try:
        status = int(parts[1])
    except (IndexError, ValueError):
        status = 0
    reason = parts[2] if len(parts) > 2 else ""
    headers: dict = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        k = k.strip().lower()
        v = v.strip()
        headers[k] = f"{headers[k]}, {v}" if k in headers else v
    return Response(status, reason, headers, body, head.decode("latin-1"))
