"""GitHub-native output under ``GITHUB_ACTIONS=true``: annotations, outputs, step summary.

The oracle is :mod:`tests.github.runner`, which reads a log and ``$GITHUB_OUTPUT`` the
way the runner does. Hostile file paths, names and messages must produce exactly the
annotations byokctl means, and never a command of their own.
"""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byokctl.cli import main
from byokctl.cli.boundary import failure_reason
from byokctl.config.diagnostics import error, warning
from byokctl.errors import (
    ByokError,
    ConfigError,
    LockHeldError,
    StalePlanError,
    VerificationError,
)
from byokctl.github import (
    DEFUSED_PREFIX,
    Actions,
    CommandGuard,
    annotation_commands,
    escape_data,
    escape_property,
    format_outputs,
    workflow_command,
)
from tests.conftest import Repo, workspace_yaml
from tests.github import runner

HOSTILE = [
    "plain",
    "a:b,c=d",
    "100%0A::error::forged",
    "line\n::error file=x::forged",
    "cr\r::warning::forged",
    "crlf\r\n  ::add-mask::forged",
    "%25%0D%3A%2C",
    "sep\u2028::error::forged\x85::x",
    "::stop-commands::token",
]


def test_escaping_matches_githubs_toolkit() -> None:
    assert escape_data("50% done\r\nnext") == "50%25 done%0D%0Anext"
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"


@pytest.mark.parametrize("value", HOSTILE)
def test_a_command_carries_any_value_exactly(value: str) -> None:
    line = workflow_command("error", value, {"file": value, "line": 3, "col": 4, "title": value})
    [cmd] = runner.commands(line)
    assert cmd.name == "error"
    # Line separators the runner does not split on become spaces; everything else survives.
    expected = value.replace("\u2028", " ").replace("\x85", " ")
    assert cmd.message == expected
    assert cmd.properties == {"file": expected, "line": "3", "col": "4", "title": expected}


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.text(
            alphabet=st.sampled_from([":", " ", "\n", "\r", "a", "%", "\t", "\u2028"]), max_size=12
        ),
        max_size=8,
    )
)
def test_the_guard_never_lets_text_start_a_command(chunks: list[str]) -> None:
    sink = io.StringIO()
    guard = CommandGuard(sink)
    for chunk in chunks:
        guard.write(chunk)
    guard.command("::notice::ours")
    guard.write("".join(chunks))
    guard.close()
    text = sink.getvalue()
    assert [c.message for c in runner.commands(text)] == ["ours"]
    # Only the defusing prefix (and a line end before our command) is added.
    joined = "".join(chunks)
    plain = text.replace(DEFUSED_PREFIX, "")
    assert plain in (f"{joined}::notice::ours\n{joined}", f"{joined}\n::notice::ours\n{joined}")


def test_the_guard_releases_ordinary_text_at_once() -> None:
    sink = io.StringIO()
    guard = CommandGuard(sink)
    guard.write("Plan: 1 to add")  # no newline yet: still visible immediately
    assert sink.getvalue() == "Plan: 1 to add"
    guard.write(" :")
    guard.write(":x\n  :")
    assert sink.getvalue() == "Plan: 1 to add ::x\n"  # mid-line "::" is harmless
    guard.write(":error::y\n")
    assert sink.getvalue().endswith(f"{DEFUSED_PREFIX}  ::error::y\n")


def test_annotations_name_file_line_column_and_rule() -> None:
    diagnostics = [
        error("workspaces/a.yaml", 7, 3, "enabled-not-configured", "enabled names 'x'", "add it"),
        warning("workspaces/b.yaml", 2, 1, "unknown-model", "unknown model"),
    ]
    cmds = runner.commands("\n".join(annotation_commands(diagnostics)))
    assert [(c.name, c.properties, c.message) for c in cmds] == [
        (
            "error",
            {
                "file": "workspaces/a.yaml",
                "line": "7",
                "col": "3",
                "title": "enabled-not-configured",
            },
            "enabled names 'x'\nadd it",
        ),
        (
            "warning",
            {"file": "workspaces/b.yaml", "line": "2", "col": "1", "title": "unknown-model"},
            "unknown model",
        ),
    ]


@pytest.mark.parametrize("value", HOSTILE)
def test_outputs_round_trip(value: str) -> None:
    assert runner.outputs(format_outputs({"x": value, "changes": "true"})) == {
        "x": value,
        "changes": "true",
    }


def test_paths_relative_to_the_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cfg" / "workspaces").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "cfg")
    actions = Actions(workspace=tmp_path, output_file=None, summary_file=None)
    assert actions.relative("workspaces/a.yaml") == "cfg/workspaces/a.yaml"
    assert actions.relative("/elsewhere/a.yaml") == "/elsewhere/a.yaml"


def _actions_env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "out").write_text("")
    (tmp_path / "summary.md").write_text("")
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(tmp_path / "repo"),
        "GITHUB_OUTPUT": str(tmp_path / "out"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }


def test_hostile_file_names_and_values_cannot_forge_commands(tmp_path: Path) -> None:
    """The real console script, its output read through pipes as the runner reads it."""
    repo = tmp_path / "repo"
    ws = repo / "workspaces"
    ws.mkdir(parents=True)
    evil_dir = ws / "x\n::error file=README.md::forged dir%0A"
    evil_dir.mkdir()
    names = [
        "a\n::error::forged-1.yaml",
        "b\r::warning::forged-2.yaml",
        "c%0A::error::3.yaml",
        "d,e:f.yaml",
    ]
    for name in names:
        (evil_dir / name).write_text(
            workspace_yaml(
                "n" + str(names.index(name)), enabled="openai", keys={"openai": "sk-plain"}
            )
        )
    (ws / "name.yaml").write_text(
        workspace_yaml("bad\n::error::forged-name").replace(
            "name: bad\n::error::forged-name", 'name: "bad\\n::error::forged-name %0A"'
        )
    )
    env = {**os.environ, **_actions_env(tmp_path)}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("byokctl")), "validate"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    cmds = runner.commands(result.stdout) + runner.commands(result.stderr)
    assert {c.name for c in cmds} == {"error"}
    files = sorted({c.properties["file"] for c in cmds})
    expected = sorted({f"workspaces/{evil_dir.name}/{n}" for n in names} | {"workspaces/name.yaml"})
    assert files == expected
    assert all(c.properties["title"] for c in cmds)
    assert "forged" not in "".join(c.name + c.properties.get("title", "") for c in cmds)
    # The summary has the same findings, one table row each, no raw HTML from a name.
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("### byokctl validate")
    rows = [line for line in summary.splitlines() if line.startswith("| workspaces/")]
    assert len(rows) == len(cmds)


def test_sarif_and_json_stdout_stay_exact_under_actions(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "workspaces").mkdir(parents=True)
    (repo / "workspaces" / "a.yaml").write_text(workspace_yaml("a"))
    env = {**os.environ, **_actions_env(tmp_path)}
    for fmt in ("json", "sarif"):
        target = tmp_path / f"report.{fmt}"
        with target.open("w") as f:  # a redirect into a file: the runner does not read it
            subprocess.run(
                [str(Path(sys.executable).with_name("byokctl")), "validate", "--format", fmt],
                cwd=repo,
                env=env,
                stdout=f,
                check=True,
            )
        assert target.read_text().startswith("{")


@pytest.fixture
def actions_repo(
    make_repo: Callable[[], Repo], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Repo:
    repo = make_repo()
    repo.write(
        "alpha", workspace_yaml("alpha", enabled="openai", keys={"openai": "sk-gh-canary-alpha-1"})
    )
    repo.write("beta", workspace_yaml("beta"))
    monkeypatch.chdir(repo.root)
    monkeypatch.setenv("BYOK_STORE", f"sqlite:///{tmp_path}/state.db")
    monkeypatch.setenv("BYOK_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())
    for k, v in _actions_env(tmp_path).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("GITHUB_WORKSPACE", str(repo.root))
    return repo


def test_plan_and_apply_write_outputs_and_summary(
    actions_repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file, summary = tmp_path / "out", tmp_path / "summary.md"
    assert main(["plan", "--no-verify", "--out", str(tmp_path / "p.plan")]) == 0
    assert runner.outputs(out_file.read_text()) == {
        "changes": "true",
        "to_add": "2",
        "to_change": "0",
        "to_destroy": "0",
    }
    text = summary.read_text()
    assert text.startswith("### byokctl plan") and "2 to add" in text
    out_file.write_text("")
    assert main(["apply", "--no-verify", "--auto-approve", str(tmp_path / "p.plan")]) == 0
    text = summary.read_text()
    assert "### byokctl apply" in text and "Apply complete!" in text
    assert main(["plan", "--no-verify"]) == 0
    assert runner.outputs(out_file.read_text())["changes"] == "false"
    summary.write_text("")
    assert main(["apply", "--no-verify", "--auto-approve"]) == 0
    assert "### byokctl apply" in summary.read_text() and "No changes." in summary.read_text()
    out, err = capsys.readouterr()
    for blob in (out, err, summary.read_text(), out_file.read_text()):
        assert "sk-gh-canary-alpha-1" not in blob


def test_plan_annotates_broken_files_and_names_the_failure(
    actions_repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    actions_repo.write("gamma", workspace_yaml("gamma", enabled="gemini"), encrypt=False)
    assert main(["plan", "--no-verify"]) == 1
    _, err = capsys.readouterr()
    [cmd] = [c for c in runner.commands(err) if c.name == "error"]
    assert cmd.properties["file"] == "workspaces/gamma.yaml"
    assert cmd.properties["title"] == "enabled-not-configured"
    assert runner.outputs((tmp_path / "out").read_text()) == {"failure_reason": "invalid-config"}


def test_a_stale_plan_is_named(actions_repo: Repo, tmp_path: Path) -> None:
    plan = tmp_path / "p.plan"
    assert main(["plan", "--no-verify", "--out", str(plan)]) == 0
    actions_repo.write("beta", workspace_yaml("beta", notify="[other@example.com]"))
    assert main(["apply", "--no-verify", "--auto-approve", str(plan)]) == 1
    assert runner.outputs((tmp_path / "out").read_text())["failure_reason"] == "plan-stale"


def test_failure_reasons() -> None:
    assert failure_reason(StalePlanError("x")) == "plan-stale"
    assert failure_reason(LockHeldError("x")) == "state-locked"
    assert failure_reason(ConfigError("x")) == "invalid-config"
    assert (
        failure_reason(VerificationError("refusing to enable providers whose verification failed"))
        == "verify-failed"
    )
    assert failure_reason(ByokError("something else")) is None


def test_nothing_github_outside_actions(
    make_repo: Callable[[], Repo],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo = make_repo()
    repo.write("gamma", workspace_yaml("gamma", enabled="gemini"), encrypt=False)
    monkeypatch.chdir(repo.root)
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "out"))  # set, but not in Actions
    assert main(["validate"]) == 1
    out, err = capsys.readouterr()
    assert runner.commands(out + err) == []
    assert not (tmp_path / "out").exists()


def test_the_public_surface() -> None:
    import byokctl.github

    assert sorted(byokctl.github.__all__) == sorted(
        [
            "DEFUSED_PREFIX",
            "RULE_HELP",
            "Actions",
            "CommandGuard",
            "annotation_commands",
            "apply_markdown",
            "escape_data",
            "escape_property",
            "format_outputs",
            "guard_streams",
            "plan_outputs",
            "render_sarif",
            "runner_reads",
            "send_command",
            "validate_markdown",
            "workflow_command",
        ]
    )
    # The resolver's process never needs this package; the CLI imports it lazily.
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", "import sys, byokctl.cli; print('byokctl.github' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "False"
    import byokctl.github.comment

    assert sorted(byokctl.github.comment.__all__) == sorted(
        [
            "DEFAULT_API_URL",
            "DRIFT_TITLE",
            "GitHubClient",
            "GitHubError",
            "Mode",
            "Outcome",
            "Repository",
            "comment_body",
            "destroy_warning",
            "failure_body",
            "marker",
            "sync_comment",
            "sync_drift_issue",
            "utf16_length",
        ]
    )
