"""Kept-alive connections: reused while the server keeps them, replaced when it does not.

`transport.Transport` keeps one connection per sender thread. A server may close an
idle connection at any time (mParticle's load balancers do); the next request must
then open a new one instead of failing on the dead socket and costing a retry.
"""

from __future__ import annotations

import threading
import typing as t
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from target_mparticle.transport import Transport, TransportFailure, TransportTimeout

if t.TYPE_CHECKING:
    from collections.abc import Iterator


class Server:
    """Answers every POST 202; counts connections; may hang up after each answer."""

    def __init__(self, *, hang_up: bool, answer: bool = True) -> None:
        self.connections = 0
        self.posts: list[tuple[str, bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                outer.connections += 1

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.posts.append((self.path, body))
                if not answer:
                    self.close_connection = True
                    return  # closes without a status line
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.send_header("X-MP-Rate-Limit-Percentage-Used", "12")
                self.end_headers()
                # Closed with no `Connection: close`: the client only finds out later.
                self.close_connection = hang_up

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002, ARG002
                return

        class Httpd(ThreadingHTTPServer):
            def shutdown_request(self, request: t.Any) -> None:
                super().shutdown_request(request)
                outer.closed.release()  # the server's end of a connection is closed

        self.closed = threading.Semaphore(0)
        self.httpd = Httpd(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v2"


@pytest.fixture
def serve() -> Iterator[t.Callable[..., Server]]:
    started: list[Server] = []

    def start(**kwargs: bool) -> Server:
        server = Server(**kwargs)
        threading.Thread(target=server.httpd.serve_forever, args=(0.01,), daemon=True).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.httpd.shutdown()
        server.httpd.server_close()


def test_one_connection_carries_every_request_while_the_server_keeps_it(serve):
    server = serve(hang_up=False)
    transport = Transport(server.url, connections=1, timeout_s=5)
    replies = [transport.post("/bulkevents", b"[]", {"X": "1"}) for _ in range(5)]
    transport.close()
    assert [r.status for r in replies] == [202] * 5
    assert replies[0].headers["x-mp-rate-limit-percentage-used"] == "12"
    assert server.posts == [("/v2/bulkevents", b"[]")] * 5
    assert server.connections == 1


def test_a_connection_the_server_closed_while_idle_is_replaced_not_failed(serve):
    server = serve(hang_up=True)
    transport = Transport(server.url, connections=1, timeout_s=5)
    replies = []
    for _ in range(3):
        replies.append(transport.post("/bulkevents", b"[1]", {}))
        assert server.closed.acquire(timeout=5)  # the server's end is closed before the next
    transport.close()
    assert [r.status for r in replies] == [202] * 3
    assert server.connections == 3


def test_an_answer_that_never_comes_is_a_failure_not_a_hang(serve):
    server = serve(hang_up=True, answer=False)
    transport = Transport(server.url, connections=1, timeout_s=5)
    with pytest.raises(TransportFailure):
        transport.post("/bulkevents", b"[]", {})
    transport.close()


def test_a_silent_server_is_a_timeout(serve):
    listener = serve(hang_up=False)
    listener.httpd.shutdown()  # still bound and listening, never answering
    transport = Transport(listener.url, connections=1, timeout_s=0.2)
    with pytest.raises(TransportTimeout):
        transport.post("/bulkevents", b"[]", {})
    transport.close()
