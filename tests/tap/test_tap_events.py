import pytest

from tap_mparticle.events import NotABatchError, explode_batch, format_unix_ms, to_int

OUTBOUND = {
    "events": [
        {
            "data": {
                "event_name": "MyTestEvent",
                "timestamp_unixtime_ms": "1595542763908",
                "event_id": "1234",
                "source_message_id": "m-1",
                "session_uuid": "s-1",
                "custom_attributes": {"k": "v"},
            },
            "event_type": "custom_event",
        },
        {
            "data": {"screen_name": "Home", "timestamp_unixtime_ms": 1595542763999},
            "event_type": "screen_view",
        },
        {"data": {"event_name": "eCommerce - Purchase"}, "event_type": "commerce_event"},
        {"data": {"session_duration_ms": 10}, "event_type": "session_end"},
    ],
    "user_identities": [
        {
            "identity_type": "customer_id",
            "identity": "TestCustomerId1",
            "timestamp_unixtime_ms": "1",
        },
        {"identity_type": "email", "identity": "a@b.com"},
    ],
    "user_attributes": {"tier": "gold"},
    "environment": "production",
    "mpid": "-4523523",
    "batch_id": "88",
}


def test_one_record_per_event_with_the_batch_context():
    records = list(explode_batch(OUTBOUND))
    assert [r["event_type"] for r in records] == [
        "custom_event",
        "screen_view",
        "commerce_event",
        "session_end",
    ]
    first = records[0]
    assert first["mpid"] == -4523523
    assert first["batch_id"] == 88
    assert first["timestamp_unixtime_ms"] == 1595542763908
    assert first["timestamp"] == "2020-07-23T22:19:23.908+00:00"
    assert first["user_identities"] == {"customer_id": "TestCustomerId1", "email": "a@b.com"}
    assert first["user_attributes"] == {"tier": "gold"}
    assert first["device_info"] == {}
    assert first["application_info"] == {}
    assert first["custom_attributes"] == {"k": "v"}
    assert first["source_message_id"] == "m-1"
    assert first["session_uuid"] == "s-1"
    assert first["environment"] == "production"
    # data stays exactly as written, strings included
    assert first["data"] is OUTBOUND["events"][0]["data"]
    assert [r["_sdc_event_index"] for r in records] == [0, 1, 2, 3]


def test_event_name_by_type():
    names = [r["event_name"] for r in explode_batch(OUTBOUND)]
    assert names == ["MyTestEvent", "Home", "eCommerce - Purchase", None]


def test_batches_without_events_yield_nothing():
    assert list(explode_batch({"events": [], "mpid": 1})) == []
    assert list(explode_batch({"mpid": 1})) == []


def test_inbound_identity_object_is_kept():
    batch = {"events": [{"event_type": "uninstall"}], "user_identities": {"email": "x@y.z"}}
    (record,) = explode_batch(batch)
    assert record["user_identities"] == {"email": "x@y.z"}
    assert record["data"] == {}
    assert record["timestamp"] is None


@pytest.mark.parametrize("document", [[1, 2], "text", 42, {"events": "nope"}])
def test_documents_that_are_not_batches_are_rejected(document):
    with pytest.raises(NotABatchError, match="not an mParticle batch"):
        list(explode_batch(document))


def test_a_broken_event_does_not_hide_its_siblings():
    batch = {"events": [{"event_type": "uninstall"}, {"data": {}}, {"event_type": "x", "data": 3}]}
    out = list(explode_batch(batch))
    assert isinstance(out[0], dict)
    assert isinstance(out[1], NotABatchError)
    assert "event 1" in str(out[1])
    assert isinstance(out[2], NotABatchError)
    assert "event 2" in str(out[2])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12", 12),
        (" -7 ", -7),
        (3, 3),
        (4.0, 4),
        ("5.0", 5),
        ("1e3", 1000),
        (None, None),
        ("", None),
        ("abc", None),
        (1.5, None),
        (True, None),
    ],
)
def test_to_int(raw, expected):
    assert to_int(raw) == expected


def test_format_unix_ms_is_exact_at_millisecond_precision():
    assert format_unix_ms(0) == "1970-01-01T00:00:00.000+00:00"
    assert format_unix_ms(1714521600001) == "2024-05-01T00:00:00.001+00:00"
    assert format_unix_ms(-1) == "1969-12-31T23:59:59.999+00:00"
