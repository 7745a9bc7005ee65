"""Every validation rule has a failing example, located by file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from byokctl.config.diagnostics import Severity
from byokctl.config.loader import validate_paths

ENC = "ENC[AES256_GCM,data:Zm9v,iv:aXZpdml2aXZpdml2aXZpdml2aXZpdml2aXZpdml2aXY=,tag:dGFn,type:str]"
SOPS = """sops:
  age:
    - recipient: age1qqqq
      enc: |
        -----BEGIN AGE ENCRYPTED FILE-----
        -----END AGE ENCRYPTED FILE-----
  lastmodified: "2026-11-27T10:00:00Z"
  mac: ENC[AES256_GCM,data:bWFj,iv:aXZpdml2aXZpdml2aXZpdml2aXZpdml2aXZpdml2aXY=,tag:dGFn,type:str]
  encrypted_regex: ^api_key$
  version: 3.11.0
"""


def workspace(
    *,
    name: str = "acme",
    enabled: str | None = "openai",
    providers: str | None = None,
    notify: str = "[ops@acme.example]",
    sops: bool = True,
) -> str:
    if providers is None:
        providers = f"    openai:\n      model: gpt-4o\n      api_key: {ENC}\n"
    enabled_line = f"  enabled: {enabled}\n" if enabled else ""
    text = (
        "apiVersion: byok/v1\nkind: Workspace\nmetadata:\n"
        f"  name: {name}\n  notify: {notify}\nspec:\n{enabled_line}  providers:\n{providers}"
    )
    return text + (SOPS if sops else "")


def run(tmp_path: Path, **files: str) -> list[tuple[str, int, int, str, Severity]]:
    for filename, text in files.items():
        (tmp_path / f"{filename}.yaml").write_text(text)
    result = validate_paths([str(tmp_path)])
    return [(Path(d.path).name, d.line, d.column, d.rule, d.severity) for d in result.diagnostics]


def test_valid_file_has_no_findings(tmp_path: Path) -> None:
    assert run(tmp_path, a=workspace()) == []


def test_neo_workspace_without_providers_needs_no_encryption(tmp_path: Path) -> None:
    text = (
        "apiVersion: byok/v1\nkind: Workspace\nmetadata: {name: neo-only}\nspec:\n  providers: {}\n"
    )
    assert run(tmp_path, a=text) == []


def test_enabled_must_be_configured(tmp_path: Path) -> None:
    found = run(tmp_path, a=workspace(enabled="anthropic"))
    assert found == [("a.yaml", 7, 3, "enabled-not-configured", Severity.ERROR)]


def test_duplicate_names_across_files(tmp_path: Path) -> None:
    found = run(tmp_path, a=workspace(), b=workspace())
    assert found == [("b.yaml", 4, 3, "duplicate-name", Severity.ERROR)]


def test_plaintext_key_in_a_plain_file(tmp_path: Path) -> None:
    providers = "    openai:\n      model: gpt-4o\n      api_key: sk-plain-canary-0001\n"
    found = run(tmp_path, a=workspace(providers=providers, sops=False))
    assert found == [("a.yaml", 11, 7, "file-not-encrypted", Severity.ERROR)]


def test_plaintext_key_in_a_sops_file(tmp_path: Path) -> None:
    providers = "    openai:\n      model: gpt-4o\n      api_key: sk-plain-canary-0002\n"
    found = run(tmp_path, a=workspace(providers=providers))
    assert found == [("a.yaml", 11, 7, "secret-not-encrypted", Severity.ERROR)]


def test_plaintext_key_is_never_echoed(tmp_path: Path) -> None:
    providers = "    openai:\n      model: gpt-4o\n      api_key: sk-plain-canary-0003\n"
    (tmp_path / "a.yaml").write_text(workspace(providers=providers))
    (tmp_path / "b.yaml").write_text(workspace(name="b", providers=providers, sops=False))
    result = validate_paths([str(tmp_path)])
    assert result.diagnostics
    for d in result.diagnostics:
        assert "canary" not in d.format()


def test_non_string_key_is_an_unencrypted_secret(tmp_path: Path) -> None:
    providers = "    openai:\n      model: gpt-4o\n      api_key: 12345678\n"
    found = run(tmp_path, a=workspace(providers=providers))
    assert [f[3] for f in found] == ["secret-not-encrypted"]


def test_unknown_model_is_a_warning_with_suggestions(tmp_path: Path) -> None:
    providers = f"    openai:\n      model: gpt-4o-mni\n      api_key: {ENC}\n"
    (tmp_path / "a.yaml").write_text(workspace(providers=providers))
    result = validate_paths([str(tmp_path)])
    assert result.ok
    [d] = result.diagnostics
    assert (d.rule, d.severity, d.line, d.column) == ("unknown-model", Severity.WARNING, 10, 7)
    assert d.hint is not None and "gpt-4o-mini" in d.hint


def test_enabled_without_notify_is_a_warning(tmp_path: Path) -> None:
    found = run(tmp_path, a=workspace(notify="[]"))
    assert found == [("a.yaml", 3, 1, "notify-empty", Severity.WARNING)]


def test_encrypted_non_secret_is_a_warning_and_not_checked(tmp_path: Path) -> None:
    providers = f"    openai:\n      model: {ENC}\n      api_key: {ENC}\n"
    found = run(tmp_path, a=workspace(providers=providers))
    assert found == [("a.yaml", 10, 7, "non-secret-encrypted", Severity.WARNING)]


@pytest.mark.parametrize(
    ("providers", "rule", "line", "column"),
    [
        (
            f"    openai:\n      model: gpt-4o\n      api_key: {ENC}\n      org: x\n",
            "schema-unknown-field",
            11,
            7,
        ),
        ("    openai:\n      model: gpt-4o\n", "schema-required", 8, 5),
        (f"    mistral:\n      model: m\n      api_key: {ENC}\n", "schema-unknown-field", 8, 5),
        (
            "    azure_openai:\n      model: gpt-4\n      endpoint: http://acme.openai.azure.com\n"
            f"      api_version: '2024-06-01'\n      deployment: prod\n      api_key: {ENC}\n",
            "schema-pattern",
            10,
            7,
        ),
        (
            "    azure_openai:\n      model: gpt-4\n      endpoint: https://acme.openai.azure.com\n"
            f"      api_version: '2024-06-01'\n      api_key: {ENC}\n",
            "schema-required",
            8,
            5,
        ),
        (f"    openai:\n      model: [gpt-4o]\n      api_key: {ENC}\n", "schema-type", 9, 7),
    ],
)
def test_schema_rules(tmp_path: Path, providers: str, rule: str, line: int, column: int) -> None:
    found = run(tmp_path, a=workspace(enabled=None, providers=providers))
    assert ("a.yaml", line, column, rule, Severity.ERROR) in found


@pytest.mark.parametrize(
    ("text", "rule", "line", "column"),
    [
        (workspace(name="Acme_Support"), "schema-pattern", 4, 3),
        (workspace(notify="[not-an-address]"), "schema-pattern", 5, 12),
        (workspace().replace("byok/v1", "byok/v2"), "schema-const", 1, 1),
        (workspace().replace("kind: Workspace", "kind: Tenant"), "schema-const", 2, 1),
        (workspace(enabled="mistral"), "schema-enum", 7, 3),
        (workspace() + "extra: 1\n", "schema-unknown-field", 22, 1),
        (workspace().replace("metadata:\n  name: acme\n", "metadata:\n"), "schema-required", 3, 1),
    ],
)
def test_document_rules(tmp_path: Path, text: str, rule: str, line: int, column: int) -> None:
    found = run(tmp_path, a=text)
    assert ("a.yaml", line, column, rule, Severity.ERROR) in found


def test_file_too_large(tmp_path: Path) -> None:
    (tmp_path / "big.yaml").write_bytes(b"a: " + b"x" * (1024 * 1024 + 10) + b"\n")
    assert run(tmp_path) == [("big.yaml", 1, 1, "file-too-large", Severity.ERROR)]


def test_missing_path(tmp_path: Path) -> None:
    result = validate_paths([str(tmp_path / "nope")])
    assert [d.rule for d in result.diagnostics] == ["path-not-found"]


def test_discovery_skips_hidden_and_other_files(tmp_path: Path) -> None:
    (tmp_path / ".sops.yaml").write_text("creation_rules: []\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.yaml").write_text("- broken\n")
    (tmp_path / "notes.txt").write_text("- broken\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.yml").write_text(workspace())
    result = validate_paths([str(tmp_path)])
    assert result.ok
    assert [Path(f.candidate.display).name for f in result.files] == ["a.yml"]


def test_symlink_out_of_the_tree_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text(workspace())
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "link.yaml").symlink_to(outside)
    (tree / "dirlink").symlink_to(tmp_path, target_is_directory=True)
    result = validate_paths([str(tree)])
    assert sorted(d.rule for d in result.diagnostics) == ["symlink-outside-tree"] * 2
    assert result.files == []


def test_symlink_inside_the_tree_is_read_once(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(workspace())
    (tmp_path / "alias.yaml").symlink_to(tmp_path / "a.yaml")
    result = validate_paths([str(tmp_path)])
    assert result.ok and len(result.files) == 1


def test_unknown_enabled_provider_is_reported_once(tmp_path: Path) -> None:
    found = run(tmp_path, a=workspace(enabled="openia"))
    assert [f[3] for f in found] == ["schema-enum"]


def test_empty_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    result = validate_paths([str(tmp_path / "ws")])
    assert [d.rule for d in result.diagnostics] == ["no-workspace-files"]
    assert not result.ok


def test_secret_that_is_not_a_string(tmp_path: Path) -> None:
    providers = f"    openai:\n      model: gpt-4o\n      api_key:\n        - {ENC}\n"
    found = run(tmp_path, a=workspace(providers=providers))
    assert [f[3] for f in found] == ["secret-not-a-string"]


def test_a_model_per_feature_warns_on_unknown_features_and_models(tmp_path: Path) -> None:
    providers = (
        "    openai:\n      model: gpt-4o\n      models:\n"
        "        summarise: gpt-4o-mini\n"  # line 12: a misspelt feature
        "        auto_reply: gpt-4o-mni\n"  # line 13: a misspelt model
        "        assist: gpt-4.1\n"
        f"      api_key: {ENC}\n"
    )
    (tmp_path / "a.yaml").write_text(workspace(providers=providers))
    result = validate_paths([str(tmp_path)])
    assert result.ok  # warnings: the provider's own list decides at plan time
    found = {(d.rule, d.severity, d.line, d.column): d.hint for d in result.diagnostics}
    assert set(found) == {
        ("unknown-feature", Severity.WARNING, 12, 9),
        ("unknown-model", Severity.WARNING, 13, 9),
    }
    assert found["unknown-feature", Severity.WARNING, 12, 9] == "did you mean summarize?"
    assert "gpt-4o-mini" in str(found["unknown-model", Severity.WARNING, 13, 9])


def test_fallback_is_checked_by_the_schema_and_a_cap_without_neo_warns(tmp_path: Path) -> None:
    def with_fallback(block: str) -> str:
        return workspace().replace("  providers:\n", f"  fallback:\n{block}  providers:\n")

    assert run(tmp_path, a=with_fallback("    neo: false\n    return: on_recovery\n")) == []
    found = run(tmp_path, a=with_fallback("    neo: false\n    max_neo_credits: 10\n"))
    assert found == [("a.yaml", 10, 5, "fallback-unused", Severity.WARNING)]
    for bad in ("    neo: nope\n", "    per: week\n", "    max_neo_credits: -1\n", "    when: x\n"):
        found = run(tmp_path, a=with_fallback(bad))
        assert [f[4] for f in found] == [Severity.ERROR], (bad, found)


def test_an_invalid_header_name_points_at_the_name(tmp_path: Path) -> None:
    providers = (
        "    openai_compatible:\n      model: llama\n      base_url: https://llm.example.com/v1\n"
        f"      api_key: {ENC}\n      headers:\n        X-Title: ok\n        Bad Name: x\n"
    )
    found = run(tmp_path, a=workspace(enabled=None, providers=providers))
    assert ("a.yaml", 14, 9, "schema-pattern", Severity.ERROR) in found
