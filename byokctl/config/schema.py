"""The workspace JSON Schema: where it is, and its errors as diagnostics.

The schema file is ``schemas/workspace.schema.json`` at the repository's top level; the
wheel ships the same file as ``byokctl/schemas/workspace.schema.json``.

Two validators read the same schema. A compiled one (``jsonschema-rs``) only answers
"valid or not", in microseconds; ``jsonschema`` with ECMA-262 patterns (``regress``) is
the authority and writes the detailed report. The compiled answer is trusted only when
it says *valid* and every string it checked is printable ASCII, where its regex dialect
and ECMA-262 read every pattern alike; anything else (an invalid file, a control or
non-ASCII character, a value JSON has no type for) goes to ``jsonschema``, whose verdict
stands. Valid files, nearly all of them, never import ``jsonschema``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Any

from byokctl.catalog import SECRET_FIELDS
from byokctl.config import patterns
from byokctl.config.yamlsource import Path

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

SCHEMA_NAME = "workspace.schema.json"


def schema_path() -> FsPath:
    """Where the schema file is: inside the installed wheel, or in the source tree."""
    packaged = resources.files("byokctl").joinpath("schemas", SCHEMA_NAME)
    if packaged.is_file():
        return FsPath(str(packaged))
    return FsPath(__file__).resolve().parents[2] / "schemas" / SCHEMA_NAME


@cache
def load_schema() -> Mapping[str, Any]:
    with schema_path().open(encoding="utf-8") as f:
        schema: dict[str, Any] = json.load(f)
    return schema


def _runtime_schema() -> dict[str, Any]:
    # The schema states "enabled names a configured provider" as six if/then blocks for
    # editors; the rules module reports it with a better message and position, so the
    # validators skip them (a third of their time). Everything else is the file as written.
    runtime = copy.deepcopy(dict(load_schema()))
    runtime["properties"]["spec"].pop("allOf", None)
    return runtime


@cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator, validators  # noqa: PLC0415 - invalid files only
    from jsonschema.exceptions import ValidationError  # noqa: PLC0415

    def ecma_pattern(
        validator: Any, pattern: str, instance: Any, schema: Mapping[str, Any]
    ) -> Iterator[ValidationError]:
        # jsonschema's own keyword uses Python's re, where "$" also matches before a
        # trailing newline; JSON Schema means ECMA-262, where "$" is the end of the value.
        if validator.is_type(instance, "string") and not patterns.matches(pattern, instance):
            yield ValidationError(f"{instance!r} does not match {pattern!r}")

    # Draft 2020-12 with patterns read as JSON Schema defines them (ECMA-262).
    workspace_validator: Any = validators.extend(  # type: ignore[no-untyped-call]
        Draft202012Validator, {"pattern": ecma_pattern}
    )
    Draft202012Validator.check_schema(load_schema())
    return workspace_validator(_runtime_schema())


@cache
def _fast_validator() -> Any:
    import jsonschema_rs  # noqa: PLC0415 - only when checking

    # Formats are annotations in 2020-12, as for jsonschema without a format checker.
    return jsonschema_rs.validator_for(_runtime_schema(), validate_formats=False)


def _printable_ascii(value: Any, top: bool = True) -> bool:
    """Whether every string in ``value`` (keys too, ``sops`` metadata aside) is printable ASCII."""
    if isinstance(value, str):
        return value.isascii() and value.isprintable()
    if isinstance(value, Mapping):
        return all(
            _printable_ascii(k, False) and ((top and k == "sops") or _printable_ascii(v, False))
            for k, v in value.items()
        )
    if isinstance(value, list):
        return all(_printable_ascii(v, False) for v in value)
    return True


def fast_valid(document: Mapping[str, Any]) -> bool:
    """Whether the compiled validator proves ``document`` valid, with no report needed.

    ``False`` means "ask ``jsonschema``", not "invalid". The ``sops`` metadata is left out
    of the ASCII test because the schema checks nothing inside it but its type (a test
    keeps that true); its armored keys hold newlines.
    """
    if not _printable_ascii(document):
        return False
    try:
        return bool(_fast_validator().is_valid(document))
    except (ValueError, TypeError, OverflowError):
        # A value JSON has no type for (a YAML date, a huge integer): jsonschema decides.
        return False


@dataclass(frozen=True)
class SchemaFinding:
    """One schema violation, located by the path of the key it is about."""

    path: Path
    rule: str
    message: str
    hint: str | None = None


def check(document: Mapping[str, Any], *, fast: bool = True) -> Iterator[SchemaFinding]:
    """Every schema violation of ``document``, most specific first.

    With ``fast`` (the default) a document the compiled validator proves valid is not
    walked again (:func:`fast_valid`); ``fast=False`` always asks ``jsonschema``.
    """
    if fast and fast_valid(document):
        return
    for err in _validator().iter_errors(document):
        yield from _translate(err)


def _leaves(err: ValidationError) -> Iterator[ValidationError]:
    # anyOf/oneOf errors carry their alternatives' errors; the deepest ones say the most.
    if err.context:
        for sub in err.context:
            yield from _leaves(sub)
    else:
        yield err


def _where(path: Path) -> str:
    return ".".join(str(p) for p in path) or "the document"


def _translate(err: ValidationError) -> Iterator[SchemaFinding]:
    path: Path = tuple(err.absolute_path)
    schema_path = tuple(err.absolute_schema_path)
    keyword = str(err.validator)
    # jsonschema types these as unions with an "unset" sentinel; on a raised error they are set.
    rule_value: Any = err.validator_value
    rule_schema: Any = err.schema
    instance: Any = err.instance
    if path and path[-1] in SECRET_FIELDS:
        # Never echo a secret's value; the rules module reports unencrypted secrets.
        return
    if "enabledIsConfigured" in err.schema_path or "then" in schema_path:
        # The rule "enabled names a configured provider" is reported by the rules module
        # with the position of `enabled` and a better message.
        return
    if keyword == "additionalProperties":
        allowed = sorted(rule_schema.get("properties", {}))
        extras = sorted(set(instance) - set(allowed)) if isinstance(instance, dict) else []
        for extra in extras:
            yield SchemaFinding(
                (*path, extra),
                "schema-unknown-field",
                f"unknown field {extra!r} in {_where(path)}",
                f"allowed here: {', '.join(allowed)}" if allowed else None,
            )
        return
    if keyword == "required":
        missing = [r for r in rule_value if r not in instance]
        for name in missing:
            yield SchemaFinding(
                path,
                "schema-required",
                f"{_where(path)} is missing the required field {name!r}",
            )
        return
    if keyword == "anyOf":
        leaves = list(_leaves(err))
        enums = [leaf for leaf in leaves if leaf.validator == "enum"]
        if enums:
            choices: Any = enums[0].validator_value
            options = ", ".join(map(str, choices))
            yield SchemaFinding(
                path,
                "schema-enum",
                f"{_where(path)} is {instance!r}, which is not one of: {options} (or null)",
            )
            return
    description = rule_schema.get("description") if isinstance(rule_schema, dict) else None
    if keyword == "pattern" and "propertyNames" in schema_path:
        # The instance is a key of the mapping at `path`: point at that key, call it a name.
        yield SchemaFinding(
            (*path, instance),
            "schema-pattern",
            f"{instance!r} is not a valid name in {_where(path)}",
            f"a name here must match {rule_value}",
        )
        return
    if keyword == "pattern":
        yield SchemaFinding(
            path,
            "schema-pattern",
            f"{_where(path)} has the invalid value {instance!r}",
            description or f"it must match {rule_value}",
        )
        return
    if keyword in ("const", "enum"):
        options = repr(rule_value) if keyword == "const" else ", ".join(map(str, rule_value))
        yield SchemaFinding(
            path,
            f"schema-{keyword}",
            f"{_where(path)} is {instance!r}; expected {options}",
        )
        return
    if keyword == "type":
        yield SchemaFinding(
            path,
            "schema-type",
            f"{_where(path)} must be of type {rule_value}, "
            f"not {type(instance).__name__} ({instance!r})",
        )
        return
    yield SchemaFinding(path, f"schema-{keyword}", f"{_where(path)}: {err.message}", description)
