"""``validate --format sarif``: diagnostics as SARIF 2.1.0, for GitHub code scanning.

One ``reportingDescriptor`` per rule id that occurs (with its help text), one result per
diagnostic with the file as a URI reference relative to the repository root
(``%SRCROOT%``) and the line and column as its region. Paths are percent-encoded, so a
file name with spaces, ``%`` or newlines is still one valid URI.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Final
from urllib.parse import quote

from byokctl.config.diagnostics import Diagnostic, Severity

SARIF_SCHEMA: Final = "https://json.schemastore.org/sarif-2.1.0.json"

#: What each rule means, as ``docs/validate-json.md`` lists them (a test keeps both equal).
RULE_HELP: Final[dict[str, str]] = {
    "path-not-found": "A PATH argument does not exist.",
    "no-workspace-files": "The PATHs hold no workspace file, so an empty checkout never "
    "plans deletions.",
    "symlink-outside-tree": "A symlink in a searched directory leads out of it.",
    "file-too-large": "The file is over 1 MiB.",
    "file-unreadable": "The file or a directory cannot be read (permissions, I/O error).",
    "symlink-loop": "A symlink whose links lead back to itself.",
    "not-a-regular-file": "A FIFO, a device or a socket where a workspace file was expected.",
    "control-character": (
        "A non-secret string holds a control character (a trailing newline, ESC, BEL...) or an "
        "invisible one (zero-width, bidirectional override): two values that print alike must "
        "never be two values."
    ),
    "master-key-in-git": (
        "git tracks a master key: whoever can read the repository can decrypt the store."
    ),
    "store-in-git": "git tracks a store file: live state does not belong in git.",
    "not-utf8": "The bytes are not UTF-8 (position of the first bad byte).",
    "empty-file": "The file holds nothing but whitespace or comments.",
    "yaml-syntax": "The YAML does not parse.",
    "multiple-documents": "The file holds more than one `---` document.",
    "not-a-mapping": "The top level is a list or a scalar.",
    "duplicate-key": "The same key appears twice in one mapping.",
    "yaml-too-complex": "Anchors and aliases expand past 20,000 values, or nest past 64 levels.",
    "yaml-tag": "An explicit tag such as `!!python/object`.",
    "yaml-complex-key": "A mapping key that is not a plain string.",
    "schema-unknown-field": "A field the workspace schema does not allow.",
    "schema-required": "A required field is missing.",
    "schema-type": "A value of the wrong type.",
    "schema-pattern": "A value that does not match the pattern the schema requires.",
    "schema-const": "A value other than the one the schema requires.",
    "schema-enum": "A value that is not one of those the schema allows.",
    "enabled-not-configured": "`spec.enabled` names a provider not under `spec.providers`.",
    "duplicate-name": "Two files declare the same `metadata.name`.",
    "file-not-encrypted": "The file holds API keys and is not a SOPS file.",
    "secret-not-encrypted": "A SOPS file whose `api_key` stayed plaintext.",
    "secret-not-a-string": "An `api_key` that is a mapping or a list.",
    "unknown-model": "A model byokctl's catalog does not know (plan asks the provider).",
    "notify-empty": "A provider is enabled but nobody is notified when it fails.",
    "non-secret-encrypted": "Values other than keys are encrypted, so they cannot be "
    "checked without a key.",
    "no-api-key": "An `openai_compatible` provider without `api_key`: requests go unauthenticated.",
    "credential-header": "A plaintext header that carries credentials or belongs to the client.",
    "duplicate-header": "The same header name twice, in different letter case.",
}


_MORE: Final = (
    "Each finding's message says what to change; byokctl's docs/validate-json.md lists every rule."
)


def _help(rule: str) -> str:
    if rule in RULE_HELP:
        return RULE_HELP[rule]
    if rule.startswith("schema-"):
        return f"A value the workspace schema rejects (JSON Schema keyword `{rule[7:]}`)."
    return f"byokctl rule `{rule}`."


def _uri(path: str) -> str:
    # A relative URI reference: percent-encode everything but the path separators.
    return quote(path, safe="/")


def render_sarif(
    diagnostics: Sequence[Diagnostic],
    *,
    version: str,
    relative: Callable[[str], str] | None = None,
) -> str:
    """The diagnostics as a SARIF 2.1.0 log (JSON text); ``relative`` maps display paths."""
    rules = sorted({d.rule for d in diagnostics})
    index = {rule: i for i, rule in enumerate(rules)}
    descriptors = [
        {
            "id": rule,
            "name": "".join(part.capitalize() for part in rule.split("-")),
            "shortDescription": {"text": _help(rule)},
            "fullDescription": {"text": _help(rule)},
            "help": {
                "text": f"{_help(rule)} {_MORE}",
                "markdown": f"{_help(rule)} {_MORE}",
            },
            "defaultConfiguration": {"level": _level(_default_severity(rule, diagnostics))},
        }
        for rule in rules
    ]
    results = []
    for d in diagnostics:
        path = relative(d.path) if relative else d.path
        text = f"{d.message}. Fix: {d.hint}" if d.hint else d.message
        results.append(
            {
                "ruleId": d.rule,
                "ruleIndex": index[d.rule],
                "level": _level(d.severity),
                "message": {"text": text},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": _uri(path), "uriBaseId": "%SRCROOT%"},
                            "region": {"startLine": d.line, "startColumn": d.column},
                        }
                    }
                ],
            }
        )
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "byokctl",
                        "version": version,
                        "semanticVersion": version,
                        "rules": descriptors,
                    }
                },
                "results": results,
                "columnKind": "unicodeCodePoints",
            }
        ],
    }
    return json.dumps(log, indent=2, ensure_ascii=False)


def _default_severity(rule: str, diagnostics: Sequence[Diagnostic]) -> Severity:
    severities = {d.severity for d in diagnostics if d.rule == rule}
    return Severity.ERROR if Severity.ERROR in severities else Severity.WARNING


def _level(severity: Severity) -> str:
    return "error" if severity is Severity.ERROR else "warning"
