"""The target says what it ignored, refuses what means nothing, and counts honestly."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys

import pytest
from singer_sdk.exceptions import ConfigValidationError

from target_mparticle.pacing import JITTER_S, Pacer
from target_mparticle.report import counted
from target_mparticle.target import TargetMParticle
from tests.support.files import REPO_ROOT
from tests.support.target import FIXTURES, run_target, run_target_cli, singer_lines

ORDERS = [
    {"order_id": f"O-{n}", "customer_id": f"C{n}", "total": n, **({"channel": "app"} if n else {})}
    for n in range(3)
]


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_mapping_for_a_stream_that_never_arrived_is_reported_at_the_end(config, caplog):
    config["mappings"] = {"order": {"identities": {"customer_id": "customer_id"}}}
    with caplog.at_level(logging.WARNING):
        run = run_target(config, singer_lines("orders", ORDERS, key=["order_id"]))
    assert run.error is None
    said = [m for m in warnings(caplog) if "mappings['order']" in m]
    on_arrival = (
        "Stream 'orders' has no mapping of its own; mappings['order'] names no stream so far "
        "and may be meant for it (streams are keyed by their exact name)"
    )
    at_the_end = (
        "mappings['order'] was not used: no stream named 'order' arrived (streams seen: 'orders')"
    )
    assert said == [on_arrival, at_the_end]


def test_a_stream_map_for_a_stream_that_never_arrived_is_reported_at_the_end(config, caplog):
    """The SDK applies stream_maps by exact stream name and ignores a typo in silence.
    An alias (`__alias__`) renames the stream, and is not reported for it; a new
    stream (`__source__`) and `__else__` name no input stream."""
    config["mappings"] = {"sales": {"identities": {"customer_id": "customer_id"}}}
    config["stream_maps"] = {
        "ordrs": {"total": "total * 2"},
        "ord*s": {"channel": "channel"},  # a pattern the SDK matches: used
        "orders": {"__alias__": "sales"},
        "copy": {"__source__": "orders"},
        "__else__": None,
    }
    with caplog.at_level(logging.WARNING):
        run = run_target(config, singer_lines("orders", ORDERS, key=["order_id"]))
    assert run.error is None
    said = [m for m in warnings(caplog) if "stream_maps[" in m]
    assert said == [
        (
            "stream_maps['ordrs'] was not used: no stream named 'ordrs' arrived "
            "(streams seen: 'orders')"
        )
    ]
    assert not [m for m in warnings(caplog) if "mappings['sales']" in m]


def test_a_mapping_meant_for_a_stream_the_tap_names_otherwise_is_warned_about_on_arrival(
    config, caplog
):
    """tap-postgres calls a table `public-users`: a mapping keyed `users` is said at once."""
    config["mappings"] = {
        "users": {"kind": "user", "identities": {"email": "email"}},
        "orders": {"identities": {"customer_id": "customer_id"}},
    }
    lines = [
        *singer_lines("public-users", [{"id": 1, "email": "a@b.c"}], key=["id"]),
        *singer_lines("orderz", ORDERS, key=["order_id"]),
        *singer_lines("orders", ORDERS, key=["order_id"]),
        *singer_lines("public-sessions", [{"id": 2, "email": "a@b.c"}], key=["id"]),
    ]
    with caplog.at_level(logging.WARNING):
        run = run_target(config, lines)
    assert run.error is None
    said = [m for m in warnings(caplog) if "has no mapping of its own" in m]
    rest = "names no stream so far and may be meant for it (streams are keyed by their exact name)"
    assert said == [
        f"Stream 'public-users' has no mapping of its own; mappings['users'] {rest}",
        f"Stream 'orderz' has no mapping of its own; mappings['orders'] {rest}",
    ]


def test_a_json_column_under_delete_is_said_to_leave_its_flattened_keys(config, caplog):
    """tap-postgres types jsonb as an object: `prefs` goes out as `prefs.<key>`, and a
    null `prefs` can only delete `prefs` itself."""
    schema = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "email": {"type": ["string", "null"]},
            "prefs": {"type": ["object", "null"]},
            "tags": {"anyOf": [{"type": "array"}, {"type": "object"}, {"type": "null"}]},
            "plan": {"type": ["string", "null"]},
        },
    }
    lines = [
        json.dumps(
            {"type": "SCHEMA", "stream": "users", "schema": schema, "key_properties": ["id"]}
        ),
        json.dumps({"type": "RECORD", "stream": "users", "record": {"id": 1, "email": "a@b.c"}}),
    ]
    users = {"kind": "user", "identities": {"email": "email"}, "null_user_attributes": "delete"}
    for mapping, said in (
        (users, "'prefs', 'tags' may hold objects"),
        ({**users, "user_attributes": ["plan"]}, None),
        ({**users, "null_user_attributes": "drop"}, None),
    ):
        config["mappings"] = {"users": mapping}
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert run_target(config, lines).error is None
        flattened = [m for m in warnings(caplog) if "flattened attributes" in m]
        assert flattened == ([] if said is None else [flattened[0]])
        if said is not None:
            assert said in flattened[0]
            assert "(prefs.<key>)" in flattened[0]


def test_rows_that_share_a_source_request_id_are_counted(config, caplog):
    """Order items by order_id: mParticle keeps the first batch of an id, so the rest
    were lost while the summary said delivered."""
    config["mappings"] = {
        "order_items": {
            "kind": "custom_event",
            "identities": {"customer_id": "customer_id"},
            "source_message_id_field": "order_id",
        }
    }
    items = [
        {"item_id": 1, "order_id": "O-1", "customer_id": "C1", "sku": "mug"},
        {"item_id": 2, "order_id": "O-1", "customer_id": "C1", "sku": "cup"},
        {"item_id": 3, "order_id": "O-2", "customer_id": "C2", "sku": "mug"},
    ]
    with caplog.at_level(logging.WARNING):
        run = run_target(config, singer_lines("order_items", items, key=["item_id"]))
    assert run.error is None
    said = [m for m in warnings(caplog) if "source_request_id of another" in m]
    assert len(said) == 1
    assert said[0].startswith("Changed or left out to fit mParticle: 1 batches sent with")


def test_mapped_fields_missing_from_schema_and_from_records_are_reported(config, caplog):
    config["mappings"] = {
        "orders": {
            "identities": {"customer_id": "customer_id"},
            "event_attributes": ["total", "channel", "coupon"],
        }
    }
    lines = list(singer_lines("orders", ORDERS, key=["order_id"]))
    with caplog.at_level(logging.WARNING):
        run = run_target(config, lines)
    assert run.error is None
    said = warnings(caplog)
    # singer_lines declares every field some record has: "coupon" is in none.
    assert (
        "Stream 'orders': mapped field 'coupon' is not in the stream's schema; "
        "records are unlikely to carry it"
    ) in said
    assert "Stream 'orders': mapped field 'channel' was absent from 1 of 3 records" in said
    assert "Stream 'orders': mapped field 'coupon' was absent from 3 of 3 records" in said
    assert not any("'total'" in m for m in said)


def test_ip_device_and_consent_fields_are_watched_like_every_mapped_field(config, caplog):
    config["mappings"] = {
        "orders": {
            "identities": {"customer_id": "customer_id"},
            "ip_field": "ip_adress",
            "device_id_field": "device",
            "consent": {"gdpr": {"marketing": "opted_in"}},
        }
    }
    with caplog.at_level(logging.WARNING):
        run = run_target(config, list(singer_lines("orders", ORDERS, key=["order_id"])))
    assert run.error is None
    said = warnings(caplog)
    assert (
        "Stream 'orders': mapped fields 'ip_adress', 'device', 'opted_in' are not in the "
        "stream's schema; records are unlikely to carry them"
    ) in said
    assert "Stream 'orders': mapped field 'ip_adress' was absent from 3 of 3 records" in said


def test_the_star_mapping_is_not_looked_for_in_tap_mparticles_own_streams(config, caplog):
    """Its events are replayed whatever "*" says: no warning about the mapping's fields
    there, while another stream it maps is still watched."""
    config["mappings"] = {"*": {"identities": {"customer_id": "id"}, "event_attributes": ["x"]}}
    with caplog.at_level(logging.WARNING):
        run = run_target(
            config,
            [
                *(FIXTURES / "tap_events.singer").read_text().splitlines(),
                *singer_lines("orders", [{"id": 1}], key=["id"]),
            ],
        )
    assert run.error is None
    said = [m for m in warnings(caplog) if "mapped field" in m]
    not_declared = (
        "Stream 'orders': mapped field 'x' is not in the stream's schema; "
        "records are unlikely to carry it"
    )
    assert said == [not_declared, "Stream 'orders': mapped field 'x' was absent from 1 of 1 record"]


def test_names_from_the_input_cannot_start_a_log_line_of_their_own(config, caplog):
    stream, field = "orders\nERROR | forged stream", "f\nERROR | forged field"
    orders = {"identities": {"customer_id": "customer_id"}, "event_attributes": ["coupon"]}
    config["mappings"] = {stream: orders, "gone\nERROR | forged mapping": orders}
    lines = [
        *singer_lines(stream, ORDERS[:1], key=["order_id"]),
        json.dumps({"type": "RECORD", "stream": stream, "record": {**ORDERS[1], field: 1}}),
    ]
    with caplog.at_level(logging.INFO):
        run = run_target(config, lines)
    assert run.error is None
    logged = [(r.name, r.getMessage()) for r in caplog.records]
    # Said (the unused mapping, the undeclared field, the mapped field never seen, the
    # drain), but escaped: the log format prints the logger's name and the message.
    for forged in ("forged stream", "forged field", "forged mapping"):
        assert any(forged in name + message for name, message in logged), forged
    assert [x for x in logged if "\n" in x[0] + x[1]] == []


def test_the_sdks_own_log_lines_cannot_be_split_or_colour_the_terminal(config, tmp_path):
    """Its sink loggers and its schema-change line print the stream name as it is."""
    stream = "orders\nERROR | forged\x1b[31m"
    orders = {"identities": {"customer_id": "customer_id"}}
    config["mappings"] = {stream: orders}
    lines = [
        *singer_lines(stream, ORDERS[:1], key=["order_id"]),
        # A second, different SCHEMA: the SDK says the schema changed.
        *singer_lines(stream, ORDERS[1:], key=["order_id", "customer_id"]),
    ]
    run = run_target_cli(tmp_path, config, "\n".join(lines) + "\n", loglevel="DEBUG")
    assert run.returncode == 0, run.stderr
    # Said at DEBUG and INFO by the SDK, escaped.
    assert "Schema has changed for stream 'orders\\nERROR | forged\\x1b[31m'" in run.stderr
    assert "target-mparticle.orders\\nERROR | forged\\x1b[31m" in run.stderr
    assert "\x1b" not in run.stderr
    starts = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \| ")
    assert [line for line in run.stderr.splitlines() if not starts.match(line)] == []


@pytest.mark.parametrize(
    ("setting", "value"), [("load_method", "overwrite"), ("add_record_metadata", True)]
)
def test_sdk_settings_that_mean_nothing_here_are_refused(config, setting, value, caplog):
    config[setting] = value
    with pytest.raises(ConfigValidationError) as caught:
        TargetMParticle(config=config)
    assert any(e.startswith(f"{setting} means nothing") for e in caught.value.errors)
    # Refused, and not also called unknown (the two lines said opposite things).
    assert "unknown setting" not in caplog.text


def test_sdk_settings_set_to_what_the_target_does_anyway_pass_without_a_word(config, caplog):
    config.update(load_method="append-only", add_record_metadata=False)
    with caplog.at_level(logging.WARNING):
        TargetMParticle(config=config)
    assert caplog.text == ""


def test_about_offers_no_meaningless_setting_and_knows_version_and_pythons():
    about = subprocess.run(
        [sys.executable, "-m", "target_mparticle", "--about", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(about.stdout)
    assert "load_method" not in info["settings"]["properties"]
    assert "add_record_metadata" not in info["settings"]["properties"]
    assert "batch_size_rows" in info["settings"]["properties"]  # this one means something
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    version = pyproject.split('version = "', 1)[1].split('"', 1)[0]
    assert info["version"] == version
    assert "3.10" in info["supported_python_versions"]
    for script in ("target_mparticle", "tap_mparticle"):
        shown = subprocess.run(
            [sys.executable, "-m", script, "--version"], capture_output=True, text=True, check=True
        )
        assert f"v{version}," in shown.stdout + shown.stderr, script


def test_plurals_in_progress_and_summary_lines(config, caplog):
    config["mappings"] = {"orders": {"identities": {"customer_id": "customer_id"}}}
    with caplog.at_level(logging.INFO):
        run = run_target(config, singer_lines("orders", ORDERS[:1], key=["order_id"]))
    assert run.error is None
    said = "\n".join(r.getMessage() for r in caplog.records)
    assert "Stream 'orders': 1 record sent as 1 batch in 1 request" in said
    assert "Summary: 1 record delivered" in said
    assert "0 retries" in said
    assert "1 requests" not in said
    assert [counted(n, "file") for n in (0, 1, 2)] == ["0 files", "1 file", "2 files"]


def test_time_held_back_is_wall_time_not_the_sum_of_every_thread_wait():
    clock = [0.0]
    pacer = Pacer(10, clock=lambda: clock[0], sleep=lambda _s: None)
    # Four senders book one-second slots at t=0: they wait 0, 1, 2 and 3 s (6 s in
    # all), but the run was held back 3 s of wall time.
    # (Each gap is one second plus the pacer's allowance for arrival jitter.)
    gap = 1.0 + JITTER_S
    waits = [pacer.acquire(10)[1] for _ in range(4)]
    assert waits == pytest.approx([0, gap, 2 * gap, 3 * gap])
    assert pacer.held_back_s == pytest.approx(3 * gap)
    clock[0] = 10.0  # later, no contention: nothing more held back
    assert pacer.acquire(1)[1] == 0
    assert pacer.held_back_s == pytest.approx(3 * gap)


def test_dry_run_says_it_passes_no_state(tmp_path, caplog):
    config = {"dry_run": True, "dry_run_path": str(tmp_path / "dry.jsonl")}
    with caplog.at_level(logging.INFO):
        run = run_target(config, "tap_events.singer")
    assert run.error is None
    assert run.states == []
    said = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("Dry run: STATE is not passed on") for m in said)
    assert "Dry run: 3 STATE messages held back (none passed on)" in said


def test_an_error_that_ends_in_a_full_stop_gets_no_second_one(tmp_path):
    """The SDK ends its date-time refusal with a full stop; the run's last line adds one."""
    schema = {"properties": {"id": {"type": "string", "format": "date-time"}}}
    lines = [
        json.dumps({"type": "SCHEMA", "stream": "users", "schema": schema, "key_properties": []}),
        json.dumps({"type": "RECORD", "stream": "users", "record": {"id": "not-a-date"}}),
    ]
    config = {
        "dry_run": True,
        "dry_run_path": str(tmp_path / "dry.jsonl"),
        "mappings": {"users": {"kind": "user"}},
    }
    done = run_target_cli(tmp_path, config, "\n".join(lines) + "\n")
    assert done.returncode == 1
    (line,) = [x for x in done.stderr.splitlines() if "| ERROR" in x]
    assert "Could not parse value 'not-a-date' for field 'id'. The last STATE written" in line
    assert ".." not in line


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        (  # simpleeval's own error, which the SDK wraps: an ERROR line and two tracebacks
            "totl * 2",
            (
                "Failed to evaluate simpleeval expressions totl * 2: 'totl' is not defined for "
                "expression 'totl * 2'"
            ),
        ),
        (
            "total / 0",
            "an expression for stream 'orders' raised ZeroDivisionError: division by zero",
        ),
        ("record['nope']", "an expression for stream 'orders' raised KeyError: 'nope'"),
        (
            "int(order_id)",
            (
                "an expression for stream 'orders' raised ValueError: invalid literal for int() "
                "with base 10: 'O-0'"
            ),
        ),
    ],
)
def test_any_error_of_a_stream_map_expression_is_one_line(tmp_path, expression, reason):
    """The SDK wraps only unknown names and bad syntax (then logs two tracebacks); the
    rest went out as tracebacks alone."""
    config = {
        "dry_run": True,
        "dry_run_path": str(tmp_path / "dry.jsonl"),
        "stream_maps": {"orders": {"x": expression}},
    }
    lines = "\n".join(singer_lines("orders", ORDERS, key=["order_id"])) + "\n"
    done = run_target_cli(tmp_path, config, lines)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (error,) = [line for line in done.stderr.splitlines() if "| ERROR" in line]
    assert error.endswith(f"stream_maps could not be applied at input line 2: {reason}")
