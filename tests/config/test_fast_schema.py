"""The compiled validator is a shortcut, never a second opinion.

``schema.check`` trusts ``jsonschema-rs`` only when it proves a document valid and every
string is printable ASCII; otherwise ``jsonschema`` with ECMA-262 patterns decides. These
tests hold the shortcut to the authority's verdict: on every case of
``test_string_fields`` (control characters, trailing newlines, every string field) and
on generated values for every patterned field.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byokctl.catalog import SECRET_FIELDS
from byokctl.config import schema
from tests.config.test_string_fields import (
    BAD_CHARACTERS,
    FIELDS,
    PATTERNED,
    SAMPLES,
    FieldPath,
    _document,
)


def _cases() -> Iterator[tuple[str, dict[str, Any]]]:
    yield "samples", _document(("kind",), "Workspace")
    for path in FIELDS:
        sample = SAMPLES[path]
        for bad in BAD_CHARACTERS:
            for value in (sample + bad, bad + sample, sample[:2] + bad):
                yield f"{'.'.join(path)}={value!r}", _document(path, value)
    for path in PATTERNED:
        for value in (SAMPLES[path] + "\n", SAMPLES[path] + "\r\n", " " + SAMPLES[path]):
            yield f"{'.'.join(path)}={value!r}", _document(path, value)


CASES = list(_cases())


@pytest.mark.parametrize(("label", "document"), CASES, ids=[c[0] for c in CASES])
def test_the_fast_path_gives_the_authoritys_verdict(label: str, document: dict[str, Any]) -> None:
    full = list(schema.check(document, fast=False))
    assert list(schema.check(document)) == full
    if schema.fast_valid(document):
        assert full == [], f"{label}: the shortcut passed what jsonschema refuses"


def test_the_fast_path_serves_valid_files() -> None:
    # Otherwise the shortcut would be dead code and every file would pay for jsonschema.
    assert schema.fast_valid(_document(("kind",), "Workspace"))


def test_values_json_has_no_type_for_go_to_jsonschema() -> None:
    document = _document(("kind",), "Workspace")
    document["metadata"]["name"] = date(2026, 1, 1)  # YAML reads 2026-01-01 as a date
    assert not schema.fast_valid(document)
    assert [f.rule for f in schema.check(document)] == ["schema-type"]
    huge = _document(("kind",), "Workspace")
    huge["spec"]["providers"]["openai"]["organization"] = 10**400
    assert not schema.fast_valid(huge)
    assert [f.rule for f in schema.check(huge)] == ["schema-type"]


def test_the_ascii_guard_may_skip_sops_metadata_because_the_schema_checks_only_its_type() -> None:
    # fast_valid does not look inside `sops` (its armored keys hold newlines); that is
    # sound only while the schema constrains nothing there but the type.
    sops = schema.load_schema()["properties"]["sops"]
    assert set(sops) <= {"type", "description", "$comment"}
    assert sops["type"] == "object"


def _with(path: FieldPath, value: str) -> dict[str, Any]:
    return _document(path, value)


PRINTABLE_ASCII = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)
ANY_TEXT = st.text(max_size=40)


@pytest.mark.parametrize("path", PATTERNED, ids=".".join)
@settings(max_examples=150, deadline=None)
@given(value=PRINTABLE_ASCII)
def test_on_printable_ascii_the_two_validators_agree(path: FieldPath, value: str) -> None:
    document = _with(path, value)
    full_valid = not list(schema.check(document, fast=False))
    assert schema.fast_valid(document) == full_valid, value


@pytest.mark.parametrize("path", PATTERNED, ids=".".join)
@settings(max_examples=150, deadline=None)
@given(value=ANY_TEXT)
def test_on_any_text_the_fast_path_never_passes_what_jsonschema_refuses(
    path: FieldPath, value: str
) -> None:
    document = _with(path, value)
    if schema.fast_valid(document):
        assert not list(schema.check(document, fast=False)), value


@settings(max_examples=100, deadline=None)
@given(
    extra=st.dictionaries(
        st.text(
            st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=8
        ).filter(
            lambda key: key not in SECRET_FIELDS  # their errors are the rules module's to report
        ),
        st.none() | st.booleans() | st.integers() | PRINTABLE_ASCII,
        max_size=3,
    ),
    where=st.sampled_from(["top", "metadata", "spec", "providers", "openai"]),
)
def test_unknown_fields_and_types_get_the_same_verdict(extra: dict[str, Any], where: str) -> None:
    document = copy.deepcopy(_document(("kind",), "Workspace"))
    target = {
        "top": document,
        "metadata": document["metadata"],
        "spec": document["spec"],
        "providers": document["spec"]["providers"],
        "openai": document["spec"]["providers"]["openai"],
    }[where]
    target.update(extra)
    full = list(schema.check(document, fast=False))
    assert schema.fast_valid(document) == (not full)
    assert list(schema.check(document)) == full
