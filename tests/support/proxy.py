"""A proxy on 127.0.0.1 that forwards every request to one upstream and logs it.

Counting S3 requests on the server side (not by hooking the client under test)
shows what the tap really sends: the proxy sees the same bytes moto does. Used as
`HTTP_PROXY` (requests name an absolute URL), it shows a client honours the variable;
as `HTTPS_PROXY` it opens the CONNECT tunnels TLS goes through (to 127.0.0.1 only).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from collections.abc import Iterator

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "host"}


class RequestLog:
    """(method, path, query) of every request the proxy forwarded, in order."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []
        self._lock = threading.Lock()

    def add(self, method: str, target: str) -> None:
        if method == "CONNECT":
            # host:port as it came: urlsplit on Python 3.10 reads `127.0.0.1` as a scheme.
            with self._lock:
                self.requests.append((method, target, {}))
            return
        parts = urlsplit(target)
        with self._lock:
            self.requests.append((method, parts.path, parse_qs(parts.query)))

    def list_prefixes(self, bucket: str) -> list[str]:
        """The Prefix of every ListObjectsV2 request on `bucket`, in order."""
        with self._lock:
            return [
                query.get("prefix", [""])[0]
                for method, path, query in self.requests
                if method == "GET" and path.strip("/") == bucket and "list-type" in query
            ]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()


def _tunnel(client: socket.socket, upstream: socket.socket) -> None:
    """Copy bytes both ways until each side has closed its end."""

    def copy(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    back = threading.Thread(target=copy, args=(upstream, client), daemon=True)
    back.start()
    copy(client, upstream)
    back.join()
    upstream.close()


def _refuse_login(handler: BaseHTTPRequestHandler, login: str | None, log: RequestLog) -> bool:
    """Answer 407 (quoting the Proxy-Authorization got) unless it carries `login`."""
    got = handler.headers.get("Proxy-Authorization")
    if login is None or got == "Basic " + base64.b64encode(login.encode()).decode():
        return False
    log.add(handler.command, "407")
    page = f"proxy login required; got {got!r}".encode()
    if handler.command != "CONNECT":
        handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
    handler.send_response(407)
    handler.send_header("Proxy-Authenticate", 'Basic realm="test"')
    handler.send_header("Content-Length", str(len(page)))
    handler.end_headers()
    handler.wfile.write(page)
    return True


@contextlib.contextmanager
def counting_proxy(upstream: str, login: str | None = None) -> Iterator[tuple[str, RequestLog]]:
    """Serve a proxy to `upstream` (http://host:port); yields its URL and its log.

    With `login` ("user:password") it asks for it: a request or tunnel without that
    Proxy-Authorization gets a 407 whose page quotes what it got (as some proxies do).
    """
    target = urlsplit(upstream)
    log = RequestLog()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes; with Nagle's algorithm each
        # would wait for a delayed ACK (tens of milliseconds per request).
        disable_nagle_algorithm = True

        def parse_request(self) -> bool:
            return super().parse_request() and not _refuse_login(self, login, log)

        def _forward(self) -> None:
            if self.path.startswith("http"):  # forward-proxy form: an absolute URL
                parts = urlsplit(self.path)
                self.path = parts.path + (f"?{parts.query}" if parts.query else "")
            log.add(self.command, self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            headers["Host"] = self.headers.get("Host", "")
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            try:
                conn.connect()
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.request(self.command, self.path, body=body, headers=headers)
                reply = conn.getresponse()
                data = reply.read()
            finally:
                conn.close()
            self.send_response(reply.status)
            for key, value in reply.getheaders():
                if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward  # noqa: N815

        def do_CONNECT(self) -> None:
            log.add(self.command, self.path)  # the path is host:port
            host, _, port = self.path.rpartition(":")
            if host != "127.0.0.1" or not port.isdigit():
                self.send_error(403, "tunnels only to 127.0.0.1")
                return
            upstream_socket = socket.create_connection((host, int(port)), timeout=60)
            self.send_response(200, "Connection established")
            self.end_headers()
            self.close_connection = True
            _tunnel(self.connection, upstream_socket)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002, ARG002
            return  # the RequestLog is the record; stderr stays quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", log
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
