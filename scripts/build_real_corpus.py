"""Lay the real, public mParticle examples out as a small drop the tap can read.

Why: the examples in tests/fixtures/real are kept exactly as their authors published
them (pretty-printed, one per file, some wrapped in an envelope).  mParticle's outputs
deliver the same JSON differently: the Amazon S3 event output writes one batch per
line, Kinesis Firehose lands records back to back (``}{``) under ``YYYY/MM/DD/HH/``
prefixes, the Google Cloud Storage audience output writes one record per line into a
file whose name carries the audience.  This script writes the examples in those
layouts, so the tap reads real data in real framing.

Nothing is invented or changed except the framing.  A document put on one line only
loses the whitespace between tokens (numbers and strings keep their exact text), and a
document taken out of an envelope (Firehose ``Record.Data``, a bulk upload's array) is
cut out of the published text.  One wrapper is ours, and says so in its file name: the
JSON reference shows each event type as a lone event, so those events are put, as
published, into the ``events`` array of an otherwise empty batch.

The output is the same bytes on every run; ``tests/test_real_corpus.py`` checks that
the committed drop is what this script writes, and ``drop-manifest.json`` beside it
counts what each file holds.

Usage: ``python scripts/build_real_corpus.py [OUT_DIR]`` (default tests/fixtures/real).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

REAL = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "real"
# A JSON string (with escapes) or a run of whitespace: what minify() must tell apart.
TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\s+', re.DOTALL)
DECODER = json.JSONDecoder()
JSON_REFERENCE_EVENTS = [
    "04-custom_event.json",
    "05-commerce_event.json",
    "12-session_start.json",
    "13-session_end.json",
    "14-screen_view.json",
    "15-uninstall.json",
    "16-crash_report.json",
    "17-opt_out.json",
    "18-push_registration.json",
    "19-application_state_transition.json",
    "20-push_message.json",
    "21-network_performance.json",
    "22-breadcrumb.json",
]


def minify(text: str) -> str:
    """``text`` (one JSON document) without whitespace between tokens; nothing else changes."""
    return TOKEN.sub(lambda m: m.group(0) if m.group(0).startswith('"') else "", text.strip())


def member_text(text: str, *path: str) -> str:
    """The published text of the object at ``path`` (keys) inside the document ``text``."""
    start = 0
    for key in path:
        found = re.compile(rf'"{re.escape(key)}"\s*:\s*').search(text, start)
        if found is None:
            msg = f"no {key!r} in the document"
            raise ValueError(msg)
        start = found.end()
    _value, end = DECODER.raw_decode(text, start)
    return text[start:end]


def array_items(text: str) -> list[str]:
    """The published text of each item of the JSON array ``text``."""
    items = []
    position = text.index("[") + 1
    while True:
        while text[position] in " \t\r\n,":
            position += 1
        if text[position] == "]":
            return items
        _value, end = DECODER.raw_decode(text, position)
        items.append(text[position:end])
        position = end


def read(relative: str) -> str:
    """A corpus file's text."""
    return (REAL / relative).read_text(encoding="utf-8")


def event_batches() -> dict[str, list[tuple[str, str]]]:
    """Each S3-style event file's batches: (source, one-line batch text), in order."""
    s3_example = "docs/amazons3-event-file.ndjson"
    reference_events = [
        minify(read(f"docs/json-reference/{name}")) for name in JSON_REFERENCE_EVENTS
    ]
    wrapped = '{"events":[' + ",".join(reference_events) + "]}"
    docs = [
        (
            "docs/json-reference/01-overall-structure.json",
            minify(read("docs/json-reference/01-overall-structure.json")),
        ),
        (
            "docs/json-reference/35-master-sample.json",
            minify(read("docs/json-reference/35-master-sample.json")),
        ),
        (
            "docs/mparticle.inbound.eventsapi.sample.json",
            minify(read("docs/mparticle.inbound.eventsapi.sample.json")),
        ),
        (
            "docs/kinesis-firehose-event.json#Record.Data",
            minify(member_text(read("docs/kinesis-firehose-event.json"), "Record", "Data")),
        ),
    ]
    sdk = "python-sdk/"
    bulk = array_items(read(sdk + "bulkevents_with_user_update.json"))
    python_sdk = [
        (sdk + "events_readme_usage.json", minify(read(sdk + "events_readme_usage.json"))),
        (sdk + "events_example_usage.json", minify(read(sdk + "events_example_usage.json"))),
        (sdk + "events_lifecycle.json", minify(read(sdk + "events_lifecycle.json"))),
        *(
            (f"{sdk}bulkevents_with_user_update.json#{i}", minify(item))
            for i, item in enumerate(bulk)
        ),
    ]
    return {
        # <App Name>_<UTC timestamp, 20 digits>_<5 digits>.txt under a date folder, as the
        # S3 output names them; the dates are the sources' own.
        "events/2020-07-23/S3-Docs-Example_20200723222337730000_00001.txt": [
            (f"{s3_example}#{i}", line) for i, line in enumerate(read(s3_example).splitlines())
        ],
        "events/2021-02-24/mParticle-Docs_20210224232554000000_00002.txt": docs,
        "events/2022-11-23/JSON-Reference-Events-Wrapped_20221123163640000000_00003.txt": [
            ("docs/json-reference/{04..22 event examples}", wrapped)
        ],
        "events/2023-06-20/Python-SDK_20230620152555000000_00004.txt": python_sdk,
    }


def audience_documents() -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """Each audience file: (framing, [(source, one-line document text)])."""
    kinesis = [
        (f"docs/{name}#Record.Data", minify(member_text(read(f"docs/{name}"), "Record", "Data")))
        for name in (
            "kinesis-firehose-audience-member-added.json",
            "kinesis-firehose-audience-member-removed.json",
        )
    ]
    as_published = [
        (f"docs/{name}", minify(read(f"docs/{name}")))
        for name in (
            "kinesis-firehose-audience-member-added.json",
            "kinesis-firehose-audience-member-removed.json",
        )
    ]
    gcs = "docs/google-cloud-storage-audience-record.ndjson"
    partner = "audiences/partner/"
    sdk = "firehose-java-sdk/"

    def one(source: str) -> list[tuple[str, str]]:
        return [(source, minify(read(source)))]

    return {
        # Firehose's S3 object name: <stream>-<version>-<YYYY-MM-DD-HH-MM-SS>-<uuid>.
        "audiences/kinesis/2022/08/24/12/mPTravelAudiences-1-2022-08-24-12-00-00-"
        "5a1f0c2e-8d36-4c47-9b0e-2f0f3c1d7a61": (
            "concatenated",
            kinesis,
        ),
        "audiences/kinesis/records-as-published.ndjson": ("ndjson", as_published),
        # The GCS documentation's own example file name.
        "audiences/gcs/Test-Audience_1234_2020-01-01_00-00-00_"
        "721e1d63-a396-4676-bac2-3f6f31e88cc2.txt": (
            "ndjson",
            [(gcs, line) for line in read(gcs).splitlines()],
        ),
        partner + "audience-membership-change-3.2.0.json": (
            "ndjson",
            one(sdk + "AudienceMembershipChangeRequest.json"),
        ),
        partner + "audience-membership-change-2.0.0.json": (
            "ndjson",
            one(sdk + "AudienceMembershipChangeRequest.2.0.0.json"),
        ),
        partner + "audience-membership-change-pre-2.0.json": (
            "ndjson",
            one(sdk + "AudienceMembershipChangeRequest.pre-2.0.json"),
        ),
        partner + "verification-request-2.1.1.json": (
            "ndjson",
            one("docs/partners-firehose-verification-request.json"),
        ),
    }


def describe(framing: str, documents: list[tuple[str, str]]) -> dict[str, Any]:
    """What a drop file holds, for tests that compare the tap's output with the source."""
    parsed = [json.loads(text) for _source, text in documents]
    summary: dict[str, Any] = {"framing": framing, "documents": len(parsed)}
    if framing.startswith("events"):
        events = [e for d in parsed for e in d.get("events") or []]
        summary["batches_without_events"] = sum(1 for d in parsed if not d.get("events"))
        summary["events"] = len(events)
        summary["event_types"] = sorted({e["event_type"] for e in events})
    summary["sources"] = [source for source, _text in documents]
    return summary


def build(out: Path) -> list[Path]:
    """Write the drop under ``out/drop`` and its manifest as ``out/drop-manifest.json``."""
    files: dict[str, bytes] = {}
    manifest: dict[str, Any] = {}
    batches = event_batches()
    for name, documents in batches.items():
        files[name] = "".join(text + "\n" for _source, text in documents).encode()
        manifest[name] = describe("events ndjson", documents)
    everything = [document for documents in batches.values() for document in documents]
    # Kinesis Firehose writes records back to back; mParticle's records end without a newline.
    firehose = (
        "firehose-events/2024/05/01/13/"
        "mparticle-events-1-2024-05-01-13-00-00-0b7f6a8e-3c1d-4f2a-9e55-6d2c8b4a1f30"
    )
    files[firehose] = "".join(text for _source, text in everything).encode()
    manifest[firehose] = describe("events concatenated", everything)
    for name, (framing, documents) in audience_documents().items():
        joiner = "" if framing == "concatenated" else "\n"
        files[name] = (joiner.join(text for _source, text in documents) + joiner).encode()
        manifest[name] = describe(f"audience {framing}", documents)
    written = []
    for name, data in sorted(files.items()):
        path = out / "drop" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
    manifest_path = out / "drop-manifest.json"
    manifest_path.write_text(json.dumps(dict(sorted(manifest.items())), indent=2) + "\n")
    return [*written, manifest_path]


if __name__ == "__main__":
    for path in build(Path(sys.argv[1]) if len(sys.argv) > 1 else REAL):
        print(path)
