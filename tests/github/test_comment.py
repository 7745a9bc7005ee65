"""``byokctl comment`` against a loopback fake of the GitHub REST API (real HTTP, no mock)."""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from byokctl.cli import main
from byokctl.commands.comment import comment
from byokctl.errors import ByokError
from byokctl.github.comment import DRIFT_TITLE, comment_body, marker, utf16_length
from byokctl.model import DesiredState, LiveState, ProviderConfig, Secret, SourceFile, Workspace
from byokctl.plan import Action, diff, planfile
from tests.github.fake_api import LOGIN, TOKEN, FakeGitHub, serve
from tests.render.render_sample import CANARIES, CREATED_AT, full_plan

REPO = "acme/byok-config"


@pytest.fixture
def api() -> Iterator[FakeGitHub]:
    with serve(FakeGitHub(REPO)) as fake:
        yield fake


@pytest.fixture
def plan_file(tmp_path: Path) -> Path:
    path = tmp_path / "byok.plan"
    planfile.write_plan(path, full_plan())
    return path


def env_for(api: FakeGitHub, tmp_path: Path, pr: int = 7) -> dict[str, str]:
    event = tmp_path / "event.json"
    event.write_text(
        json.dumps({"action": "synchronize", "number": pr, "pull_request": {"number": pr}})
    )
    return {
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_API_URL": api.url,
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_RUN_ID": "4242",
    }


def run(plan: Path, env: dict[str, str], **kw: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    options: dict[str, object] = {
        "pr": None,
        "mode": "update",
        "marker_id": None,
        "allow_readonly": False,
        "drift_issue": None,
        "author": None,
        "max_wait": 5.0,
    }
    options.update(kw)
    code = comment(plan, out=out, err=err, env=env, **options)  # type: ignore[arg-type]
    return code, out.getvalue(), err.getvalue()


def ours(api: FakeGitHub, pr: int = 7) -> list[dict[str, object]]:
    return [c for c in api.comments.get(pr, []) if str(c["body"]).startswith("<!-- byokctl:plan")]


def test_one_comment_updated_in_place_not_duplicated(
    api: FakeGitHub, plan_file: Path, tmp_path: Path
) -> None:
    env = env_for(api, tmp_path)
    api.add_comment(7, "LGTM", login="reviewer")
    code, out, err = run(plan_file, env)
    assert code == 0, err
    assert "created" in err
    [first] = ours(api)
    assert out.strip() == first["html_url"]
    # The next push: a different plan, the same comment edited.
    other = tmp_path / "other.plan"
    planfile.write_plan(other, replace(full_plan(), serial=99))
    code, _, err = run(other, env)
    assert code == 0, err
    assert "updated" in err
    [second] = ours(api)
    assert second["id"] == first["id"]
    assert "live serial 99" in str(second["body"])
    assert [r.method for r in api.requests if r.method != "GET"] == ["POST", "PATCH"]
    # The same plan again: nothing to edit.
    code, _, err = run(other, env)
    assert "unchanged" in err
    assert [r.method for r in api.requests if r.method != "GET"] == ["POST", "PATCH"]
    assert len(api.comments[7]) == 2  # the reviewer's comment is untouched


def test_marker_per_config_directory(api: FakeGitHub, plan_file: Path, tmp_path: Path) -> None:
    env = env_for(api, tmp_path)
    assert run(plan_file, env, marker_id="teams/a")[0] == 0
    assert run(plan_file, env, marker_id="teams/b")[0] == 0
    assert run(plan_file, env, marker_id="teams/a")[0] == 0
    bodies = [str(c["body"]) for c in ours(api)]
    assert len(bodies) == 2
    assert bodies[0].startswith("<!-- byokctl:plan id=teams/a -->\n")
    assert bodies[1].startswith("<!-- byokctl:plan id=teams/b -->\n")


def test_default_marker_is_the_directory_relative_to_the_workspace(
    api: FakeGitHub, plan_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "repo" / "configs" / "prod"
    config.mkdir(parents=True)
    monkeypatch.chdir(config)
    env = {**env_for(api, tmp_path), "GITHUB_WORKSPACE": str(tmp_path / "repo")}
    assert run(plan_file, env)[0] == 0
    [c] = ours(api)
    assert str(c["body"]).startswith("<!-- byokctl:plan id=configs/prod -->\n")


def test_marker_cannot_end_the_html_comment() -> None:
    line = marker("evil --> <img src=x onerror=alert(1)>\n# heading")
    assert line.count("-->") == 1 and line.endswith(" -->")
    assert "\n" not in line and "<img" not in line


def test_recreate_and_delete(api: FakeGitHub, plan_file: Path, tmp_path: Path) -> None:
    env = env_for(api, tmp_path)
    run(plan_file, env)
    [first] = ours(api)
    code, _, err = run(plan_file, env, mode="recreate")
    assert code == 0 and "recreated" in err
    [second] = ours(api)
    assert second["id"] != first["id"]
    code, _, err = run(plan_file, env, mode="delete")
    assert code == 0 and "deleted" in err
    assert ours(api) == []
    code, _, err = run(plan_file, env, mode="delete")
    assert code == 0 and "none" in err


def test_duplicates_from_a_race_are_healed(
    api: FakeGitHub, plan_file: Path, tmp_path: Path
) -> None:
    env = env_for(api, tmp_path)
    line = marker(".")
    api.add_comment(7, f"{line}\nold one", login=LOGIN)
    api.add_comment(7, f"{line}\nold two", login=LOGIN)
    assert run(plan_file, env)[0] == 0
    assert len(ours(api)) == 1


def test_author_filter_ignores_a_copied_marker(
    api: FakeGitHub, plan_file: Path, tmp_path: Path
) -> None:
    env = env_for(api, tmp_path)
    api.add_comment(7, f"{marker('.')}\nI copied the marker", login="mallory")
    assert run(plan_file, env, author=LOGIN)[0] == 0
    assert [c["user"]["login"] for c in ours(api)] == ["mallory", LOGIN]  # type: ignore[index]
    assert "copied" in str(ours(api)[0]["body"])


def test_paginates_the_comment_list(api: FakeGitHub, plan_file: Path, tmp_path: Path) -> None:
    env = env_for(api, tmp_path)
    for i in range(230):
        api.add_comment(7, f"chatter {i}")
    api.add_comment(7, f"{marker('.')}\nfrom an earlier run", login=LOGIN)
    assert run(plan_file, env)[0] == 0
    assert len(ours(api)) == 1
    pages = [r.query.get("page", ["1"])[0] for r in api.requests if r.method == "GET"]
    assert pages == ["1", "2", "3"]
    assert [r.method for r in api.requests if r.method != "GET"] == ["PATCH"]


def test_pr_number_from_flag_or_event(api: FakeGitHub, plan_file: Path, tmp_path: Path) -> None:
    env = env_for(api, tmp_path, pr=12)
    assert run(plan_file, env)[0] == 0
    assert run(plan_file, env, pr=13)[0] == 0
    assert sorted(api.comments) == [12, 13]
    del env["GITHUB_EVENT_PATH"]
    with pytest.raises(ByokError, match="no pull request"):
        run(plan_file, env)
    push = tmp_path / "push.json"
    push.write_text(json.dumps({"ref": "refs/heads/main"}))
    with pytest.raises(ByokError, match="not about a pull request"):
        run(plan_file, {**env, "GITHUB_EVENT_PATH": str(push)})


def test_summary_and_destroy_warning_come_first(plan_file: Path) -> None:
    plan = full_plan()
    deleted = [c.name for c in plan.changes if c.action is Action.DELETE]
    assert deleted
    body = comment_body(plan, marker_line=marker("."), run_url="https://github.example/r/1")
    lines = body.splitlines()
    assert lines[0] == marker(".")
    assert lines[1] == "> [!CAUTION]"
    assert all(name in lines[2] for name in deleted)
    assert body.index("[!CAUTION]") < body.index("### byokctl plan") < body.index("<details>")


def test_never_over_the_limit_even_with_astral_characters() -> None:
    many = {
        f"ws-{i:05d}": Workspace(
            f"ws-{i:05d}",
            ("ops@example.com",),
            "openai",
            {
                "openai": ProviderConfig(
                    "openai", "gpt-4o-" + "😀" * 40, secrets={"api_key": Secret("k")}
                )
            },
        )
        for i in range(3000)
    }
    desired = DesiredState(many, {n: SourceFile(f"workspaces/{n}.yaml", "a" * 64) for n in many})
    plan = diff(desired, LiveState(serial=0, workspaces={}), created_at=CREATED_AT)
    body = comment_body(plan, marker_line=marker("."), run_url=None)
    assert utf16_length(body) <= 65536
    assert len(body) > 30000
    assert "cut" in body


def test_errors_are_clear(api: FakeGitHub, plan_file: Path, tmp_path: Path) -> None:
    env = env_for(api, tmp_path)
    with pytest.raises(ByokError, match=r"rejected the token \(401") as bad:
        run(plan_file, {**env, "GITHUB_TOKEN": "wrong"})
    assert "wrong" not in str(bad.value) and TOKEN not in str(bad.value)
    api.fail("GET", r".*/comments", 404, body={"message": "Not Found"})
    with pytest.raises(ByokError, match=r"not found.*404") as missing:
        run(plan_file, env)
    assert "GITHUB_REPOSITORY" in (missing.value.hint or "")
    api.fail(
        "POST",
        r".*/comments",
        422,
        body={"message": "Validation Failed", "errors": [{"message": "body is too long"}]},
    )
    with pytest.raises(ByokError, match=r"422: Validation Failed; body is too long"):
        run(plan_file, env)
    with pytest.raises(ByokError, match="GITHUB_TOKEN is not set"):
        run(plan_file, {k: v for k, v in env.items() if k != "GITHUB_TOKEN"})


def test_fork_read_only_token(api: FakeGitHub, plan_file: Path, tmp_path: Path) -> None:
    env = env_for(api, tmp_path)
    forbidden = {"message": "Resource not accessible by integration"}
    api.fail("POST", r".*/comments", 403, body=forbidden)
    with pytest.raises(ByokError, match="fork") as exc:
        run(plan_file, env)
    assert "--allow-readonly" in (exc.value.hint or "")
    api.fail("POST", r".*/comments", 403, body=forbidden)
    code, _, err = run(plan_file, env, allow_readonly=True)
    assert code == 0
    assert "warning" in err and "--allow-readonly" in err


def test_rate_limit_retry_after_is_honoured(
    api: FakeGitHub, plan_file: Path, tmp_path: Path
) -> None:
    env = env_for(api, tmp_path)
    api.fail("GET", r".*/comments", 429, headers={"Retry-After": "0"})
    api.fail(
        "GET",
        r".*/comments",
        403,
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()) - 5)},
    )
    code, _, err = run(plan_file, env)
    assert code == 0, err
    assert [r.method for r in api.requests] == ["GET", "GET", "GET", "POST"]


def test_rate_limit_wait_is_bounded(api: FakeGitHub, plan_file: Path, tmp_path: Path) -> None:
    env = env_for(api, tmp_path)
    api.fail("GET", r".*/comments", 429, headers={"Retry-After": "3600"})
    with pytest.raises(ByokError, match=r"rate limit.*3600 s") as exc:
        run(plan_file, env, max_wait=5.0)
    assert "later" in (exc.value.hint or "")
    reset = str(int(time.time()) + 7200)
    api.fail(
        "GET",
        r".*/comments",
        403,
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset},
    )
    with pytest.raises(ByokError, match="rate limit"):
        run(plan_file, env, max_wait=5.0, allow_readonly=True)  # a rate limit is no fork
    assert len(api.requests) == 2  # no retry when the wait would exceed the bound


def test_drift_issue_opened_updated_and_closed(
    api: FakeGitHub, plan_file: Path, tmp_path: Path
) -> None:
    env = env_for(api, tmp_path)
    code, out, err = run(plan_file, env, drift_issue="byok-drift")
    assert code == 0, err
    [issue] = api.issues
    assert issue["title"] == DRIFT_TITLE and issue["labels"] == ["byok-drift"]
    assert out.strip() == issue["html_url"]
    other = tmp_path / "other.plan"
    planfile.write_plan(other, replace(full_plan(), serial=5))
    run(other, env, drift_issue="byok-drift")
    assert len(api.issues) == 1 and "live serial 5" in issue["body"]
    clean = tmp_path / "clean.plan"
    planfile.write_plan(clean, replace(full_plan(), changes=()))
    code, _, err = run(clean, env, drift_issue="byok-drift")
    assert code == 0 and "closed" in err
    assert issue["state"] == "closed"
    code, _, err = run(clean, env, drift_issue="byok-drift")
    assert "none" in err and len(api.issues) == 1


def test_no_secret_reaches_github(api: FakeGitHub, tmp_path: Path) -> None:
    from tests.render.render_sample import sample_plan

    plan_path = tmp_path / "p.plan"
    planfile.write_plan(plan_path, sample_plan())
    env = env_for(api, tmp_path)
    run(plan_path, env)
    run(plan_path, env, drift_issue="byok-drift")
    run(plan_path, env, mode="recreate")
    assert api.requests
    for r in api.requests:
        for canary in CANARIES:
            assert canary not in r.body and canary not in r.path
        assert TOKEN not in r.body
    for canary in CANARIES:
        assert canary not in plan_path.read_text()


def test_through_the_cli(
    api: FakeGitHub,
    plan_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for k, v in env_for(api, tmp_path).items():
        monkeypatch.setenv(k, v)
    assert main(["comment", str(plan_file), "--pr", "3"]) == 0
    assert main(["comment", str(plan_file), "--pr", "3"]) == 0
    assert len(ours(api, 3)) == 1
    assert main(["comment", str(plan_file), "--mode", "sideways"]) == 1
    monkeypatch.setenv("GITHUB_TOKEN", "nope")
    assert main(["comment", str(plan_file), "--pr", "3"]) == 1
    _, err = capsys.readouterr()
    assert "401" in err and "Traceback" not in err and "nope" not in err


def test_a_failed_plan_replaces_the_comment(
    api: FakeGitHub, plan_file: Path, tmp_path: Path
) -> None:
    env = {**env_for(api, tmp_path), "GITHUB_SHA": "0123456789abcdef0123"}
    run(plan_file, env)
    [before] = ours(api)
    code, _, err = run(None, env, failed=True)  # type: ignore[arg-type]
    assert code == 0, err
    [after] = ours(api)
    assert after["id"] == before["id"]
    body = str(after["body"])
    assert "The plan failed for 0123456789ab" in body
    assert "https://github.example/acme/byok-config/actions/runs/4242" in body
    assert "### byokctl plan" in body and "<details>" not in body
    with pytest.raises(ByokError, match="either PLANFILE or --failed"):
        run(plan_file, env, failed=True)
    with pytest.raises(ByokError, match="either PLANFILE or --failed"):
        run(None, env)  # type: ignore[arg-type]


def test_a_hostile_name_cannot_break_out_of_the_comment() -> None:
    from byokctl.plan import Change, Plan

    evil = "evil\n# injected <img src=x onerror=alert(1)>\n::error::x %0A"
    plan = Plan(
        changes=(
            Change(
                name=evil, action=Action.DELETE, reasons=("gone\n## also injected",), drift=True
            ),
        ),
        unmanaged=(evil,),
        serial=1,
        sources={},
        created_at=CREATED_AT,
    )
    body = comment_body(plan, marker_line=marker("."), run_url=None)
    lines = body.splitlines()
    # Every text from the plan stays on its own line of HTML or an alert: no blank line, no
    # line of its own that Markdown could read as a heading.
    assert not any(line.startswith(("# injected", "## also injected", "::")) for line in lines)
    # Raw HTML only inside code spans (where Markdown shows it as text), never outside.
    assert "<img" not in re.sub(r"`[^`\n]*`", "", body)
    assert lines[1] == "> [!CAUTION]" and lines[2].startswith(
        "> **This plan destroys 1 workspace:**"
    )
