"""The README's audience section stays in step with the code it documents."""

from __future__ import annotations

from mparticle_facts.identities import ALIASES, IDENTITY_TYPES
from tap_mparticle.audience_streams import (
    AUDIENCE_KEY,
    AudienceMembershipsStream,
    AudienceUserAttributesStream,
)
from tests.support.files import REPO_ROOT


def audience_section() -> str:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("<!-- audiences:start -->")
    return text[start : text.index("<!-- audiences:end -->")]


def test_readme_identity_table_lists_every_type_and_spelling():
    rows = {
        line.split("|")[1].strip().strip("`"): line
        for line in audience_section().splitlines()
        if line.startswith("| `")
    }
    for name in IDENTITY_TYPES:
        assert name in rows, name
        for alias in ALIASES.get(name, ()):
            assert f"`{alias}`" in rows[name], (name, alias)


def test_readme_names_every_field_and_the_key():
    section = audience_section()
    for stream in (AudienceMembershipsStream, AudienceUserAttributesStream):
        for field in stream.schema["properties"]:
            assert f"`{field}`" in section, (stream.name, field)
    assert ", ".join(f"`{k}`" for k in AUDIENCE_KEY) in section.replace("\n", " ")
