"""A proxy that asks for a login gets the `user:password@` its URL holds, and never shows it.

urllib3 (which carries the target's requests through a proxy) ignores a proxy URL's
credentials; requests, curl and botocore send them, so `HTTPS_PROXY` with a login is
what a data engineer already has. The stand-in proxy answers 407 unless it gets its
login, with a page quoting the Proxy-Authorization it got.
"""

from __future__ import annotations

import base64
import json
import typing as t

import pytest

from tests.support.eventsapi import EventsApiServer
from tests.support.proxy import counting_proxy
from tests.support.target import SECRET, local_config, run_target, run_target_cli, singer_lines
from tests.support.tls import local_tls

if t.TYPE_CHECKING:
    import pathlib

LOGIN = "etl-user:p@ss-word-4f1e"  # the @ travels percent-encoded in the URL
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
PROXY_VARIABLES += ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
USERS = [{"id": i, "email": f"u{i}@example.com"} for i in range(1, 6)]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def with_login(proxy_url: str, login: str) -> str:
    user, password = login.split(":")
    return proxy_url.replace("http://", f"http://{user}:{password.replace('@', '%40')}@")


def users(server: EventsApiServer, tmp_path: pathlib.Path) -> tuple[dict[str, t.Any], list[str]]:
    config = {**local_config(server.url, tmp_path), "mappings": {"users": {"kind": "user"}}}
    lines = [*singer_lines("users", USERS, ["id"]), json.dumps({"type": "STATE", "value": {}})]
    return config, lines


def test_a_plain_http_proxy_gets_its_login(clean_env, tmp_path):
    with (
        EventsApiServer(api_key="test-key", api_secret=SECRET) as server,
        counting_proxy(server.url.removesuffix("/v2"), LOGIN) as (proxy_url, log),
    ):
        clean_env.setenv("HTTP_PROXY", with_login(proxy_url, LOGIN))
        config, lines = users(server, tmp_path)
        run = run_target(config, lines)
    assert run.error is None
    assert len(server.batches()) == len(USERS)
    assert [m for m, path, _ in log.requests if path == "407"] == []
    assert [m for m, _, _ in log.requests] == ["POST"] * len(server.requests)


def test_a_tunnel_gets_its_login(clean_env, tmp_path):
    tls = local_tls(tmp_path)
    clean_env.setenv("REQUESTS_CA_BUNDLE", str(tls.ca_bundle))
    with (
        EventsApiServer(api_key="test-key", api_secret=SECRET, tls=tls.server_context) as server,
        counting_proxy("http://127.0.0.1:1", LOGIN) as (proxy_url, log),
    ):
        clean_env.setenv("HTTPS_PROXY", with_login(proxy_url, LOGIN))
        config, lines = users(server, tmp_path)
        run = run_target(config, lines)
    assert run.error is None
    assert len(server.batches()) == len(USERS)
    assert {m for m, _, _ in log.requests} == {"CONNECT"}


def test_a_refused_proxy_login_is_one_line_that_never_shows_it(clean_env, tmp_path):
    """The proxy's page quotes the Proxy-Authorization it got: password and token masked."""
    wrong = "etl-user:wrong-pa55-8c0b"
    token = base64.b64encode(wrong.encode()).decode()
    with (
        EventsApiServer(api_key="test-key", api_secret=SECRET) as server,
        counting_proxy(server.url.removesuffix("/v2"), LOGIN) as (proxy_url, _),
    ):
        clean_env.setenv("HTTP_PROXY", with_login(proxy_url, wrong))
        config, lines = users(server, tmp_path)
        done = run_target_cli(tmp_path, config, "\n".join(lines) + "\n", loglevel="DEBUG")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if "| ERROR" in line]
    assert len(errors) == 1, done.stderr
    assert "the proxy asked for a login (HTTP 407)" in errors[0]
    assert "proxy login required; got 'Basic ***'" in errors[0]
    assert "Retrying" not in done.stderr
    shown = done.stdout + done.stderr
    assert [s for s in (token, "wrong-pa55-8c0b", LOGIN.split(":")[1]) if s in shown] == []
    assert server.requests == []


def test_a_refused_tunnel_login_is_one_line_not_retried(clean_env, tmp_path):
    """A 407 to CONNECT (https://, the usual case) was a ProxyError retried to the end."""
    tls = local_tls(tmp_path)
    clean_env.setenv("REQUESTS_CA_BUNDLE", str(tls.ca_bundle))
    with (
        EventsApiServer(api_key="test-key", api_secret=SECRET, tls=tls.server_context) as server,
        counting_proxy("http://127.0.0.1:1", LOGIN) as (proxy_url, _),
    ):
        clean_env.setenv("HTTPS_PROXY", with_login(proxy_url, "etl-user:wrong-pa55-8c0b"))
        config, lines = users(server, tmp_path)
        done = run_target_cli(tmp_path, config, "\n".join(lines) + "\n")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if "| ERROR" in line]
    assert len(errors) == 1, done.stderr
    assert "the proxy asked for a login (HTTP 407)" in errors[0]
    assert "407 Proxy Authentication Required" in errors[0]
    assert "Retrying" not in done.stderr
    assert "wrong-pa55-8c0b" not in done.stdout + done.stderr
