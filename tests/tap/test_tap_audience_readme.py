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


def test_readme_says_null_exactly_where_the_schema_allows_it():
    section = audience_section()
    for stream in (AudienceMembershipsStream, AudienceUserAttributesStream):
        start = section.index(f"##### `{stream.name}`")
        end = section.find("\n#####", start + 1)
        table = section[start : end if end != -1 else None]
        documented = {
            cells[1].strip().strip("`"): cells[2].strip()
            for cells in (line.split("|") for line in table.splitlines())
            if len(cells) > 3 and cells[1].strip().startswith("`")
        }
        fields = stream.schema["properties"]
        # The second table leaves the provenance columns to the first.
        assert {f for f in fields if not f.startswith("_sdc_")} <= documented.keys(), stream.name
        for field, spec in fields.items():
            if field in documented:
                types = spec.get("type", [])
                nullable = "null" in (types if isinstance(types, list) else [types])
                assert documented[field].endswith(", null") == nullable, (stream.name, field)
