"""Retries: one wait per failed attempt, Retry-After in seconds or as an HTTP date.

The client runs against the real stand-in over HTTP; only the waiting is recorded
instead of slept (the client's and the pacer's sleep are injected), so the tests
assert every wait exactly and take no time.
"""

from __future__ import annotations

import email.utils
import time

import pytest

from target_mparticle.assemble import PreparedBatch
from target_mparticle.client import ClientSettings, DeliveryError, EventsApiClient, Request

BODY = b'{"environment":"development","mpid":1,"source_request_id":"r-1"}'


def client_for(server, waits: list[float], **settings) -> EventsApiClient:
    options = {
        "base_url": server.url,
        "api_key": "test-key",
        "api_secret": "s3cr3t-never-logged",
        "max_batches_per_second": 0,
        "parallel_requests": 1,
        "backoff_base_s": 4.0,
        "backoff_max_s": 10.0,
        **settings,
    }
    return EventsApiClient(ClientSettings(**options), sleep=waits.append)


def one_request() -> Request:
    return Request(
        "/bulkevents", [PreparedBatch("r-1", BODY, historical=False, items=[], n_events=0)]
    )


def test_a_429_with_an_http_date_retry_after_is_honoured_once(server):
    waits: list[float] = []
    client = client_for(server, waits)
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    server.fail_with(429, times=1, Retry_After=when, X_mp_rate_limit_exceeded="account")
    client.deliver([one_request()], isolate_bad=False)
    client.close()
    assert len(server.batches()) == 1
    (wait,) = waits  # exactly one wait, held in the pacer for every sender
    assert 27 <= wait <= 31


def test_a_429_with_retry_after_in_seconds_waits_that_long_once(server):
    waits: list[float] = []
    client = client_for(server, waits)
    server.fail_with(429, times=2, Retry_After="7")
    client.deliver([one_request()], isolate_bad=False)
    client.close()
    assert len(waits) == 2
    assert all(6.5 <= w <= 7.0 for w in waits)


def test_a_429_without_retry_after_waits_one_jittered_backoff(server):
    waits: list[float] = []
    client = client_for(server, waits)
    server.fail_with(429, times=3)
    client.deliver([one_request()], isolate_bad=False)
    client.close()
    # One wait per retry (not a pause and a sleep), each full jitter within the
    # exponential ceiling: 4 s, 8 s, then the 10 s cap.
    assert len(waits) == 3
    for wait, ceiling in zip(waits, (4.0, 8.0, 10.0), strict=True):
        assert 0.0 <= wait <= ceiling


def test_5xx_and_dropped_connections_back_off_in_the_sender_only(server):
    waits: list[float] = []
    client = client_for(server, waits)
    server.fail_with(503, times=2)
    client.deliver([one_request()], isolate_bad=False)
    client.close()
    assert len(waits) == 2
    assert client.stats.retries == 2
    assert client.stats.throttled == 0


@pytest.mark.parametrize("status", [500, 503])
def test_a_server_error_with_retry_after_waits_that_long_in_the_sender_only(server, status):
    waits: list[float] = []
    client = client_for(server, waits)
    server.fail_with(status, times=2, Retry_After="7")
    client.deliver([one_request()], isolate_bad=False)
    client.close()
    assert len(server.batches()) == 1
    # The backoff here would be at most 4 s then 8 s: 7 s twice is the header's.
    assert waits == [7.0, 7.0]
    assert client.stats.throttled == 0


@pytest.mark.parametrize("value", ["soon", "-5", ""])
def test_an_unreadable_retry_after_falls_back_to_backoff(server, value):
    waits: list[float] = []
    client = client_for(server, waits)
    server.fail_with(429, times=1, Retry_After=value)
    client.deliver([one_request()], isolate_bad=False)
    client.close()
    (wait,) = waits
    assert 0.0 <= wait <= 4.0


@pytest.mark.parametrize("when", ["0", "past date"])
def test_a_retry_after_that_asks_for_no_wait_is_a_backoff_wait(server, when):
    """Honoured, a burst of `Retry-After: 0` answers spent every retry within a second."""
    waits: list[float] = []
    client = client_for(server, waits)
    value = email.utils.formatdate(time.time() - 60, usegmt=True) if when == "past date" else "0"
    server.fail_with(429, times=3, Retry_After=value)
    client.deliver([one_request()], isolate_bad=False)
    client.close()
    assert len(waits) == 3
    assert all(0.0 < wait <= ceiling for wait, ceiling in zip(waits, (4.0, 8.0, 10.0), strict=True))


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_server_error_that_may_pass_is_retried(server, status):
    waits: list[float] = []
    client = client_for(server, waits)
    server.fail_with(status, times=1)
    client.deliver([one_request()], isolate_bad=False)
    client.close()
    assert len(waits) == 1
    assert len(server.batches()) == 1


@pytest.mark.parametrize(
    ("status", "what"),
    [
        (501, "not implemented"),
        (505, "HTTP version not supported"),
        (511, "network authentication required"),
    ],
)
def test_a_settled_server_error_is_not_retried_and_says_why(server, caplog, status, what):
    """Not Implemented, HTTP Version Not Supported and Network Authentication Required
    are settled answers, not passing states: the run fails at the first one."""
    waits: list[float] = []
    client = client_for(server, waits, max_retries=5)
    server.fail_with(status, times=6)
    with pytest.raises(DeliveryError) as raised:
        client.deliver([one_request()], isolate_bad=False)
    client.close()
    assert waits == []
    assert client.stats.retries == 0
    assert [r.status for r in server.requests] == [status]
    assert server.batches() == []
    message = str(raised.value)
    assert message.startswith(f"HTTP {status} ({what}) from {server.url}/bulkevents")
    assert "scripted" in message  # the server's own words
    assert "s3cr3t-never-logged" not in message
    assert "Retrying" not in caplog.text
