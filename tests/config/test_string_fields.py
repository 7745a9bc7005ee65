"""Every string field of the schema refuses a trailing newline and control characters.

The fields are found by walking the schema itself, so a field added later is covered
without touching this test: it fails until the new field has a valid sample below.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from byokctl.catalog import SECRET_FIELDS
from byokctl.config import patterns, rules, schema
from byokctl.config.diagnostics import Severity
from byokctl.config.loader import validate_paths
from tests.config.test_rules import ENC, SOPS

FieldPath = tuple[str, ...]  # "[]" stands for "every item of this list"


def _resolve(node: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in node:
        ref = str(node["$ref"]).removeprefix("#/")
        target: Any = root
        for part in ref.split("/"):
            target = target[part]
        node = target
    return node


def _is_string(node: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    if node.get("type") == "string" or isinstance(node.get("const"), str):
        return True
    if "enum" in node:
        return all(isinstance(v, str) for v in node["enum"])
    return any(_is_string(_resolve(alt, root), root) for alt in node.get("anyOf", ()))


def string_fields(
    node: Mapping[str, Any], root: Mapping[str, Any], path: FieldPath = ()
) -> Iterator[FieldPath]:
    node = _resolve(node, root)
    if path and path[-1] in SECRET_FIELDS:
        return
    if _is_string(node, root):
        yield path
    for key, child in node.get("properties", {}).items():
        if not (path == () and key == "sops"):
            yield from string_fields(child, root, (*path, key))
    if "items" in node:
        yield from string_fields(node["items"], root, (*path, "[]"))
    if isinstance(node.get("additionalProperties"), Mapping):
        # A free-form mapping (a provider's per-feature models, openai_compatible's
        # headers): one entry stands for all.
        entry = "summarize" if path[-1:] == ("models",) else "X-Title"
        yield from string_fields(node["additionalProperties"], root, (*path, entry))


SCHEMA = schema.load_schema()
FIELDS = sorted(string_fields(SCHEMA, SCHEMA))

#: A valid value for every string field; a new field must get one here.
SAMPLES: dict[FieldPath, str] = {
    ("apiVersion",): "byok/v1",
    ("kind",): "Workspace",
    ("metadata", "name"): "acme",
    ("metadata", "notify", "[]"): "ops@acme.example",
    ("spec", "enabled"): "openai",
    ("spec", "fallback", "per"): "day",
    ("spec", "fallback", "return"): "on_recovery",
}
for _provider in SCHEMA["properties"]["spec"]["properties"]["providers"]["properties"]:
    _base = ("spec", "providers", _provider)
    SAMPLES[(*_base, "model")] = "gpt-4o"
    SAMPLES[(*_base, "models", "summarize")] = "gpt-4o-mini"
SAMPLES.update(
    {
        ("spec", "providers", "openai", "organization"): "org-acme",
        ("spec", "providers", "openai", "project"): "proj_acme",
        ("spec", "providers", "azure_openai", "endpoint"): "https://acme.openai.azure.com",
        ("spec", "providers", "azure_openai", "api_version"): "2024-06-01",
        ("spec", "providers", "azure_openai", "deployment"): "gpt4-prod",
        ("spec", "providers", "deepseek", "low_balance"): "5.00",
        ("spec", "providers", "openai_compatible", "base_url"): "https://llm.acme.example/v1",
        ("spec", "providers", "openai_compatible", "name"): "Acme gateway",
        ("spec", "providers", "openai_compatible", "id"): "acme-gateway",
        ("spec", "providers", "openai_compatible", "headers", "X-Title"): "Acme helpdesk",
    }
)

#: C0 (NUL, BEL, TAB, CR, LF, ESC), DEL, C1 (NEL, CSI), and invisible ones.
BAD_CHARACTERS = [
    "\x00",
    "\x07",
    "\t",
    "\r",
    "\n",
    "\x1b",
    "\x7f",
    "\x85",
    "\x9b",
    "\u200b",
    "\u202e",
]


def _document(path: FieldPath, value: str) -> dict[str, Any]:
    """A valid workspace configuring every provider, with ``value`` at ``path``."""
    document: dict[str, Any] = {}
    for field, sample in SAMPLES.items():
        _put(document, field, sample)
    for provider in document["spec"]["providers"].values():
        provider["api_key"] = ENC
    _put(document, path, value)
    return document


def _put(document: dict[str, Any], path: FieldPath, value: str) -> None:
    node = document
    for part, following in zip(path, (*path[1:], None), strict=True):
        if following is None:
            break
        if following == "[]":
            node[part] = [value]
            return
        node = node.setdefault(part, {})
    node[path[-1]] = value


def _write(tmp_path: Path, document: Mapping[str, Any]) -> Path:
    # JSON is YAML: every character is written as an escape, whatever it is.
    file = tmp_path / "ws.yaml"
    whole = {**document, **yaml.safe_load(SOPS)}
    file.write_text(json.dumps(whole, indent=2) + "\n", encoding="utf-8")
    return file


def _line_of(file: Path, path: FieldPath) -> int:
    """The line of the key that holds ``path``'s value (of the first item, for a list)."""
    lines = file.read_text().splitlines()
    line = 0
    keys = [p for p in path if p != "[]"]
    for depth, key in enumerate(keys, 1):
        needle = " " * (2 * depth) + json.dumps(key) + ":"
        line = next(i for i, text in enumerate(lines, 1) if i > line and text.startswith(needle))
    return line + 1 if path[-1] == "[]" else line


def test_the_walk_finds_every_string_field() -> None:
    shown = {".".join(p) for p in FIELDS}
    assert {
        "metadata.name",
        "metadata.notify.[]",
        "spec.enabled",
        "spec.providers.openai.model",
        "spec.providers.openai.organization",
        "spec.providers.azure_openai.endpoint",
        "spec.providers.azure_openai.api_version",
        "spec.providers.azure_openai.deployment",
    } <= shown
    assert not any(p[-1] in SECRET_FIELDS for p in FIELDS)
    assert set(FIELDS) == set(SAMPLES), "give every string field a valid sample"


def test_the_samples_are_valid(tmp_path: Path) -> None:
    result = validate_paths([str(_write(tmp_path, _document(("kind",), "Workspace")))])
    assert [d for d in result.diagnostics if d.severity is Severity.ERROR] == []


@pytest.mark.parametrize("path", FIELDS, ids=".".join)
@pytest.mark.parametrize("bad", BAD_CHARACTERS, ids=lambda c: f"U+{ord(c):04X}")
def test_control_character_is_refused_with_its_position(
    tmp_path: Path, path: FieldPath, bad: str
) -> None:
    for value in (SAMPLES[path] + bad, bad + SAMPLES[path], SAMPLES[path][:2] + bad):
        file = _write(tmp_path, _document(path, value))
        result = validate_paths([str(file)])
        found = [d for d in result.diagnostics if d.rule == "control-character"]

        assert not result.ok
        assert len(found) == 1, result.diagnostics
        assert found[0].severity is Severity.ERROR
        assert found[0].line == _line_of(file, path)
        assert found[0].column > 1
        assert bad not in found[0].message, "the message escapes what it shows"


def _patterned(path: FieldPath) -> bool:
    node: Any = SCHEMA
    for part in path:
        node = _resolve(node, SCHEMA)
        if part == "[]":
            node = node["items"]
        elif part in node.get("properties", {}):
            node = node["properties"][part]
        else:
            node = node["additionalProperties"]
    return "pattern" in _resolve(node, SCHEMA)


PATTERNED = [p for p in FIELDS if _patterned(p)]


def test_patterned_fields_are_the_ones_the_issue_names() -> None:
    names = {p[-1] if p[-1] != "[]" else p[-2] for p in PATTERNED}
    assert {"name", "notify", "model", "endpoint", "api_version", "deployment"} <= names


@pytest.mark.parametrize("path", PATTERNED, ids=".".join)
def test_schema_pattern_matches_the_whole_value(path: FieldPath) -> None:
    # The schema alone (as an editor would run it) refuses a trailing newline.
    sample = SAMPLES[path]
    assert not list(schema.check(_document(path, sample)))
    findings = list(schema.check(_document(path, sample + "\n")))
    where = tuple(0 if p == "[]" else p for p in path)
    assert [(f.path, f.rule) for f in findings] == [(where, "schema-pattern")]


def test_patterns_are_ecma_262() -> None:
    assert patterns.matches("^[a-z]+$", "acme")
    assert not patterns.matches("^[a-z]+$", "acme\n")
    assert not patterns.matches("^[0-9]+$", "١٢٣")  # ECMA \d and [0-9]: ASCII digits only
    assert patterns.matches("[a-z]", "0a0"), "unanchored patterns search, as JSON Schema says"


def test_validate_and_decryption_share_one_definition_of_encrypted() -> None:
    from byokctl.sopsformat import parse_encrypted_value

    for value in (ENC, ENC + "\n", ENC.replace("type:str", "type:comment"), "ENC[x]", "plain"):
        assert rules.is_encrypted(value) is (parse_encrypted_value(value) is not None)
    assert rules.is_encrypted(ENC)
    assert not rules.is_encrypted("ENC[AES256_GCM,data:Zm9v]")


def test_trailing_newline_name_is_not_a_second_workspace(tmp_path: Path) -> None:
    # The review's case: "acme\n" beside "acme" must not be two workspaces.
    a = _document(("metadata", "name"), "acme")
    b = _document(("metadata", "name"), "acme\n")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _write(tmp_path / "a", a)
    _write(tmp_path / "b", b)
    result = validate_paths([str(tmp_path)])
    assert not result.ok
    errors = [d for d in result.diagnostics if d.severity is Severity.ERROR]
    assert [(Path(d.path).parent.name, d.rule) for d in errors] == [("b", "control-character")]
