"""TLS to the Events API, for real: the stand-in speaks HTTPS with a certificate from a
throwaway CA, and the target must trust exactly what `REQUESTS_CA_BUNDLE` (or
`CURL_CA_BUNDLE`) names, directly and through an `HTTPS_PROXY` tunnel.

A certificate that does not verify is a setting to fix, not a blip: the run stops at
the first attempt with one line that says so, and writes no STATE.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import threading
import typing as t

import pytest

from target_mparticle.assemble import PreparedBatch
from target_mparticle.client import (
    ClientSettings,
    DeliveryError,
    EventsApiClient,
    Request,
    TLSRefusedError,
    UntrustedServerError,
)
from target_mparticle.transport import Transport, TransportFailure, TransportTLSRefused
from tests.support.eventsapi import EventsApiServer
from tests.support.proxy import counting_proxy
from tests.support.target import (
    SECRET,
    local_config,
    run_target,
    run_target_cli,
    singer_lines,
)
from tests.support.tls import LocalTLS, local_tls

if t.TYPE_CHECKING:
    import pathlib
    from collections.abc import Iterator

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
PROXY_VARIABLES += ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
USERS = [{"id": i, "email": f"u{i}@example.com", "plan": "pro"} for i in range(1, 151)]


@pytest.fixture
def tls(tmp_path: pathlib.Path) -> LocalTLS:
    return local_tls(tmp_path)


@pytest.fixture
def https_server(tls: LocalTLS) -> Iterator[EventsApiServer]:
    with EventsApiServer(api_key="test-key", api_secret=SECRET, tls=tls.server_context) as running:
        yield running


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy and no CA bundle from the machine: each test names its own."""
    for name in (*PROXY_VARIABLES, *CA_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def users_config(server: EventsApiServer, tmp_path: pathlib.Path) -> dict[str, t.Any]:
    return {**local_config(server.url, tmp_path), "mappings": {"users": {"kind": "user"}}}


def users_input() -> list[str]:
    lines = list(singer_lines("users", USERS, ["id"]))
    return [*lines, json.dumps({"type": "STATE", "value": {"done": True}})]


@pytest.mark.parametrize("variable", CA_VARIABLES)
def test_the_ca_bundle_the_environment_names_is_trusted(
    https_server, tls, clean_env, tmp_path, variable
):
    assert https_server.url.startswith("https://127.0.0.1:")
    clean_env.setenv(variable, str(tls.ca_bundle))
    run = run_target(users_config(https_server, tmp_path), users_input())
    assert run.error is None
    ids = sorted(int(b["user_attributes"]["id"]) for b in https_server.batches())
    assert ids == [u["id"] for u in USERS]
    assert len(https_server.requests) == 2  # 150 users: 100 + 50 batches
    assert run.states == [{"done": True}]


def test_tls_through_an_https_proxy_tunnel_trusts_the_same_bundle(
    https_server, tls, clean_env, tmp_path
):
    clean_env.setenv("REQUESTS_CA_BUNDLE", str(tls.ca_bundle))
    with counting_proxy("http://127.0.0.1:1") as (proxy_url, log):
        clean_env.setenv("HTTPS_PROXY", proxy_url)
        run = run_target(users_config(https_server, tmp_path), users_input())
    assert run.error is None
    assert len(https_server.batches()) == len(USERS)
    port = https_server.url.split(":")[2].split("/")[0]
    connects = [path for method, path, _ in log.requests if method == "CONNECT"]
    assert connects  # the requests went through the tunnel, not around it
    assert set(connects) == {f"127.0.0.1:{port}"}


@pytest.mark.parametrize("proxied", [False, True], ids=["direct", "through_proxy"])
def test_a_certificate_that_does_not_verify_stops_at_once_with_one_line(
    https_server, clean_env, tmp_path, proxied
):
    # No bundle named: certifi's public CAs, which never signed the local CA.
    config = users_config(https_server, tmp_path)
    config["max_retries"] = 5
    with counting_proxy("http://127.0.0.1:1") as (proxy_url, log):
        if proxied:
            clean_env.setenv("HTTPS_PROXY", proxy_url)
        done = run_target_cli(tmp_path, config, "\n".join(users_input()) + "\n")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, done.stderr
    assert "TLS certificate of https://127.0.0.1:" in errors[0]
    assert "did not verify" in errors[0]
    assert "REQUESTS_CA_BUNDLE" in errors[0]
    assert "Traceback" not in done.stderr
    assert "Retrying" not in done.stderr  # a retry cannot fix a certificate
    assert done.stdout == ""  # no STATE
    assert https_server.batches() == []
    assert bool(log.requests) is proxied


@pytest.mark.usefixtures("clean_env")
def test_an_untrusted_certificate_is_its_own_error_in_process(https_server, tmp_path):
    run = run_target(users_config(https_server, tmp_path), users_input())
    assert isinstance(run.error, UntrustedServerError)
    assert "certificate" in str(run.error)
    assert run.states == []


@pytest.mark.usefixtures("clean_env")
def test_https_to_a_plain_http_port_stops_at_once_with_openssls_reason(server, tmp_path):
    """A port that answers in plain HTTP answers so every time: no retry, one line, a hint."""
    config = users_config(server, tmp_path)
    config["api_url"] = server.url.replace("http://", "https://")
    config["max_retries"] = 5
    done = run_target_cli(tmp_path, config, "\n".join(users_input()) + "\n")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, done.stderr
    assert f"TLS handshake with {config['api_url']}/bulkevents failed" in errors[0]
    assert "(wrong version number)" in errors[0]  # OpenSSL's reason, in its words
    assert "is this an http:// endpoint?" in errors[0]
    assert "Retrying" not in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""  # no STATE
    assert SECRET not in done.stderr


@pytest.fixture
def no_shared_cipher_server(tls: LocalTLS) -> Iterator[EventsApiServer]:
    """TLS 1.2 with only a cipher the client's default context never offers."""
    tls.server_context.maximum_version = ssl.TLSVersion.TLSv1_2
    tls.server_context.set_ciphers("AES128-SHA")
    with EventsApiServer(api_key="test-key", api_secret=SECRET, tls=tls.server_context) as running:
        yield running


@pytest.mark.parametrize("proxied", [False, True], ids=["direct", "through_proxy"])
def test_a_refused_handshake_is_not_retried(  # noqa: PLR0913, PLR0917 - fixtures
    no_shared_cipher_server, tls, clean_env, tmp_path, proxied, caplog
):
    clean_env.setenv("REQUESTS_CA_BUNDLE", str(tls.ca_bundle))
    config = users_config(no_shared_cipher_server, tmp_path)
    config["max_retries"] = 5
    with counting_proxy("http://127.0.0.1:1") as (proxy_url, log):
        if proxied:
            clean_env.setenv("HTTPS_PROXY", proxy_url)
        run = run_target(config, users_input())
    assert isinstance(run.error, TLSRefusedError)
    assert "(sslv3 alert handshake failure)" in str(run.error)
    assert "share no TLS version, cipher or certificate" in str(run.error)
    assert run.states == []
    assert no_shared_cipher_server.requests == []
    assert "Retrying" not in caplog.text
    # One tunnel per request (100 + 50 batches), none for a retry.
    assert len([m for m, _, _ in log.requests if m == "CONNECT"]) == (2 if proxied else 0)


@pytest.fixture
def hangs_up_mid_handshake() -> Iterator[tuple[str, list[int]]]:
    """A port that reads each ClientHello and closes: `(base URL, hellos read)`."""
    listener = socket.create_server(("127.0.0.1", 0))
    hellos: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed by the test
            with conn:
                hellos.append(len(conn.recv(65536)))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{listener.getsockname()[1]}/v2", hellos
    listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() waiting in `serve`
    listener.close()
    thread.join(timeout=5)


@pytest.mark.usefixtures("clean_env")
def test_a_handshake_cut_short_is_retried_and_named(hangs_up_mid_handshake):
    """A connection dropped mid-handshake may go through next time: retried, then named."""
    url, hellos = hangs_up_mid_handshake
    waits: list[float] = []
    settings = ClientSettings(
        base_url=url, api_key="k", api_secret=SECRET, max_retries=2, max_batches_per_second=0
    )
    client = EventsApiClient(settings, sleep=waits.append)
    body = b'{"environment":"development","mpid":1,"source_request_id":"r-1"}'
    request = Request(
        "/bulkevents", [PreparedBatch("r-1", body, historical=False, items=[], n_events=0)]
    )
    with pytest.raises(DeliveryError) as raised:
        client.deliver([request], isolate_bad=False)
    client.close()
    assert not isinstance(raised.value, TLSRefusedError)
    assert len(waits) == 2
    assert len(hellos) == 3
    assert all(size > 0 for size in hellos)
    assert "after 3 attempts; last problem: connection failed (SSLEOFError: " in str(raised.value)


@pytest.fixture
def garbles_its_second_answer(tls: LocalTLS) -> Iterator[str]:
    """HTTPS that answers a connection's first POST 202, its second in plain bytes."""
    listener = socket.create_server(("127.0.0.1", 0))

    def read_request(conn: ssl.SSLSocket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(
            next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(
                b":"
            )[1]
        )
        while len(body) < length:
            body += conn.recv(65536)

    def serve() -> None:
        while True:
            try:
                raw, _ = listener.accept()
            except OSError:
                return  # closed by the test
            with tls.server_context.wrap_socket(raw, server_side=True) as conn:
                read_request(conn)
                conn.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
                read_request(conn)
                # Written past TLS, on the bare socket: a record the client cannot read.
                with socket.socket(fileno=os.dup(conn.fileno())) as bare:
                    bare.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{listener.getsockname()[1]}/v2"
    listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() waiting in `serve`
    listener.close()
    thread.join(timeout=5)


def test_a_tls_reason_on_a_kept_alive_connection_is_retried_not_refused(
    garbles_its_second_answer, tls, clean_env
):
    """Plain bytes after a handshake that went through are a fault in transit, not a setting."""
    clean_env.setenv("REQUESTS_CA_BUNDLE", str(tls.ca_bundle))
    transport = Transport(garbles_its_second_answer, connections=1, timeout_s=5)
    assert transport.post("/bulkevents", b"[]", {}).status == 202
    with pytest.raises(TransportFailure) as raised:
        transport.post("/bulkevents", b"[]", {})
    transport.close()
    assert not isinstance(raised.value, TransportTLSRefused)
    assert str(raised.value) == "SSLError: wrong version number"
