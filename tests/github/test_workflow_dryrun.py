"""The reference workflows and action.yml, run step by step on a git repo built from
``examples/gitops`` (see :mod:`tests.github.dryrun`): real byokctl, real sops files, a
real SQLite store, the provider sandbox, and the loopback fake of the GitHub API.

The story: apply on merge to main; a pull request is planned and commented, then pushed
again (the comment is edited, not duplicated); a change outside git is found by the
drift job, which opens one issue and closes it once main is applied again.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from byokctl.sandbox import Sandbox
from tests.github import runner
from tests.github.dryrun import Runner, StepResult
from tests.github.fake_api import TOKEN, FakeGitHub, serve
from tests.pg import postgres_database, postgres_schema_url  # noqa: F401 - a fixture

ROOT = Path(__file__).resolve().parents[2]
GITOPS = ROOT / "examples" / "gitops"
REPO = "acme/byok-config"
BIN = str(Path(sys.executable).parent)
#: Every decrypted example key starts with this; none may leave byokctl.
SECRET_PREFIX = "sk-demo-valid-"

pytestmark = pytest.mark.slow


def git(repo: Path, *args: str) -> str:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ["HOME"],
        "GIT_AUTHOR_NAME": "dev",
        "GIT_AUTHOR_EMAIL": "dev@example.com",
        "GIT_COMMITTER_NAME": "dev",
        "GIT_COMMITTER_EMAIL": "dev@example.com",
    }
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(port=0, latency=0.0) as sb:
        yield sb


@pytest.fixture
def api() -> Iterator[FakeGitHub]:
    with serve(FakeGitHub(REPO)) as fake:
        yield fake


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(GITOPS, root, ignore=shutil.ignore_patterns("age"))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "the example config repository")
    return root


class Job:
    """Runs jobs of the repo's workflows against one store, sandbox and fake API."""

    def __init__(self, repo: Path, tmp: Path, api: FakeGitHub, sandbox: Sandbox) -> None:
        self.repo, self.tmp, self.api = repo, tmp, api
        self.secrets = {
            "SOPS_AGE_KEY": (GITOPS / "age" / "demo-key.txt").read_text(),
            "BYOK_STORE": f"sqlite:///{tmp / 'state.db'}",
            "BYOK_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
            "GITHUB_TOKEN": TOKEN,
        }
        self.variables = {"BYOK_ALLOW_SQLITE": "true"}
        self.base_env = {
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "HOME": os.environ["HOME"],
            "XDG_CACHE_HOME": os.environ["XDG_CACHE_HOME"],
            "XDG_CONFIG_HOME": os.environ["XDG_CONFIG_HOME"],
            "SOPS_DISABLE_VERSION_CHECK": "1",
            "NO_COLOR": "1",
            # The runner's operator setting: the providers are played by the sandbox.
            "BYOK_SANDBOX_URL": sandbox.url,
        }
        self.runs: list[list[StepResult]] = []
        self._n = 0

    def run(
        self, workflow: str, job: str, event_name: str, event: dict[str, Any]
    ) -> list[StepResult]:
        self._n += 1
        r = Runner(
            workspace=self.repo,
            temp=self.tmp / f"runner{self._n}",
            event_name=event_name,
            event=event,
            secrets=self.secrets,
            variables=self.variables,
            base_env=self.base_env,
            github={
                "repository": REPO,
                "api_url": self.api.url,
                "server_url": "https://github.example",
                "run_id": str(1000 + self._n),
                "sha": git(self.repo, "rev-parse", "HEAD"),
                "ref": "refs/heads/" + git(self.repo, "branch", "--show-current"),
            },
        )
        self.last_runner = r
        results = r.workflow(self.repo / ".github" / "workflows" / workflow, job)
        self.runs.append(results)
        return results

    def byokctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**self.base_env, "SOPS_AGE_KEY": self.secrets["SOPS_AGE_KEY"]}
        env.update(
            BYOK_STORE=self.secrets["BYOK_STORE"], BYOK_MASTER_KEY=self.secrets["BYOK_MASTER_KEY"]
        )
        return subprocess.run(
            [f"{BIN}/byokctl", *args],
            cwd=self.repo,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )


@pytest.fixture
def job(repo: Path, tmp_path: Path, api: FakeGitHub, sandbox: Sandbox) -> Job:
    return Job(repo, tmp_path, api, sandbox)


#: Steps that run only when an earlier one failed (``if: failure()``).
ON_FAILURE = {"Say on the pull request that the plan failed"}


def ok(results: list[StepResult]) -> dict[str, StepResult]:
    for r in results:
        assert r.code == 0, f"{r.name} failed ({r.code}):\n{r.log}"
        assert (r.kind == "skipped") == (r.name in ON_FAILURE), r.name
    return {r.name: r for r in results}


def pr_event(number: int, action: str, sha: str) -> dict[str, Any]:
    return {
        "action": action,
        "number": number,
        "pull_request": {
            "number": number,
            "title": "Move hooli to Neo; add newco",
            "head": {"ref": "change", "sha": sha},
            "base": {"ref": "main"},
            "user": {"login": "dev"},
        },
        "repository": {"full_name": REPO},
    }


NEWCO = "apiVersion: byok/v1\nkind: Workspace\nmetadata:\n  name: {name}\n  notify: [ops@newco.example]\nspec:\n  providers: {{}}\n"


def test_the_workflows_declare_least_privilege_and_concurrency() -> None:
    docs = {
        p.name: yaml.safe_load(p.read_text())
        for p in (GITOPS / ".github" / "workflows").glob("*.yml")
    }
    assert sorted(docs) == ["byok-apply.yml", "byok-drift.yml", "byok-plan.yml"]
    plan, apply, drift = docs["byok-plan.yml"], docs["byok-apply.yml"], docs["byok-drift.yml"]
    for doc in docs.values():
        assert doc["permissions"] == {}
    assert plan["jobs"]["plan"]["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert apply["jobs"]["apply"]["permissions"] == {"contents": "read"}
    assert drift["jobs"]["drift"]["permissions"] == {"contents": "read", "issues": "write"}
    assert plan["concurrency"]["cancel-in-progress"] is True
    assert apply["concurrency"] == {"group": "byok-apply", "cancel-in-progress": False}
    assert apply["jobs"]["apply"]["environment"] == "production"
    # PyYAML reads the key `on` as True.
    assert set(plan[True]) == {"pull_request"}
    assert apply[True]["push"]["branches"] == ["main"]
    assert set(drift[True]) == {"schedule", "workflow_dispatch"}
    for doc in docs.values():
        for j in doc["jobs"].values():
            for step in j["steps"]:
                assert "${{" not in step.get("run", ""), "inputs reach scripts through env: only"


def test_apply_plan_comment_push_again_and_drift(job: Job, repo: Path, api: FakeGitHub) -> None:
    # 1. main is applied on push.
    steps = ok(job.run("byok-apply.yml", "apply", "push", {"ref": "refs/heads/main", "after": "x"}))
    apply_step = steps["Plan the merged files, then apply exactly that plan"]
    assert "7 added" in apply_step.stdout
    assert "### byokctl apply" in apply_step.summary and "Apply complete!" in apply_step.summary
    assert (
        f"https://github.example/{REPO}/commit/{git(repo, 'rev-parse', 'HEAD')}"
        in apply_step.summary
    )
    assert "is already installed" in steps["Install byokctl"].stdout

    # 2. A pull request: one workspace deleted, one added.
    git(repo, "checkout", "-q", "-b", "change")
    (repo / "workspaces" / "hooli-cx.yaml").unlink()
    (repo / "workspaces" / "newco.yaml").write_text(NEWCO.format(name="newco"))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "change")
    steps = ok(
        job.run(
            "byok-plan.yml",
            "plan",
            "pull_request",
            pr_event(5, "opened", git(repo, "rev-parse", "HEAD")),
        )
    )
    plan_step = steps["Plan"]
    assert plan_step.outputs == {
        "changes": "true",
        "to_add": "1",
        "to_change": "0",
        "to_destroy": "1",
    }
    assert plan_step.summary.startswith("### byokctl plan")
    assert "Plan: 1 to add, 0 to change, 1 to destroy." in plan_step.summary
    artifact = job.last_runner.artifacts / "byok-plan"
    assert sorted(p.name for p in artifact.iterdir()) == ["byok-plan.json", "byok.plan"]
    assert json.loads((artifact / "byok-plan.json").read_text())["summary"]["destroy"] == 1
    [comment] = api.comments[5]
    body = str(comment["body"])
    assert body.startswith("<!-- byokctl:plan id=. -->\n> [!CAUTION]\n")
    assert "hooli-cx" in body.split("\n")[2]
    assert f"https://github.example/{REPO}/actions/runs/" in body
    assert "wrote" not in body

    # 3. Pushed again: the same comment is edited.
    (repo / "workspaces" / "newco2.yaml").write_text(NEWCO.format(name="newco2"))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "more")
    steps = ok(
        job.run(
            "byok-plan.yml",
            "plan",
            "pull_request",
            pr_event(5, "synchronize", git(repo, "rev-parse", "HEAD")),
        )
    )
    assert steps["Plan"].outputs["to_add"] == "2"
    [edited] = api.comments[5]
    assert edited["id"] == comment["id"] and "newco2" in str(edited["body"])
    assert [r.method for r in api.requests if r.method != "GET"] == ["POST", "PATCH"]

    # 4. Drift: clean on main; then someone applies the branch by hand; then main again.
    git(repo, "checkout", "-q", "main")
    ok(job.run("byok-drift.yml", "drift", "schedule", {"schedule": "17 6 * * *"}))
    assert api.issues == []
    git(repo, "checkout", "-q", "change")
    job.byokctl("apply", "--auto-approve")
    git(repo, "checkout", "-q", "main")
    steps = ok(job.run("byok-drift.yml", "drift", "schedule", {"schedule": "17 6 * * *"}))
    [issue] = api.issues
    assert issue["labels"] == ["byok-drift"] and issue["state"] == "open"
    assert "hooli-cx" in issue["body"]
    ok(job.run("byok-drift.yml", "drift", "workflow_dispatch", {"inputs": {}}))
    assert len(api.issues) == 1  # updated or unchanged, never a second one
    ok(job.run("byok-apply.yml", "apply", "push", {"ref": "refs/heads/main"}))
    ok(job.run("byok-drift.yml", "drift", "schedule", {"schedule": "17 6 * * *"}))
    assert issue["state"] == "closed"

    # No decrypted key anywhere: logs, summaries, outputs, artifacts, requests to GitHub.
    everything = [r.log + r.summary + json.dumps(r.outputs) for run in job.runs for r in run]
    everything += [p.read_text() for p in job.tmp.rglob("artifacts/**/*") if p.is_file()]
    everything += api.bodies()
    assert everything and not any(SECRET_PREFIX in text for text in everything)
    assert not any(job.secrets["BYOK_MASTER_KEY"] in text for text in everything)


def test_a_runner_local_sqlite_store_is_refused(job: Job, repo: Path, api: FakeGitHub) -> None:
    job.variables = {}
    results = job.run("byok-plan.yml", "plan", "pull_request", pr_event(9, "opened", "abc"))
    by_name = {r.name: r for r in results}
    assert by_name["Plan"].code == 1
    [cmd] = runner.commands(by_name["Plan"].stdout)
    assert cmd.name == "error" and "PostgreSQL" in cmd.message
    assert by_name["Comment the plan on the pull request"].kind == "skipped"
    # The failure step replaces the sticky comment: no stale plan stays up for review.
    assert by_name["Say on the pull request that the plan failed"].code == 0
    [comment] = api.comments[9]
    assert str(comment["body"]).startswith("<!-- byokctl:plan id=. -->\n")
    assert "The plan failed" in str(comment["body"])


ACTION_WORKFLOW = """
name: uses-the-action
on: pull_request
permissions: {}
env:
  BYOK_ALLOW_SQLITE: ${{ vars.BYOK_ALLOW_SQLITE }}
jobs:
  byok:
    runs-on: ubuntu-latest
    steps:
      - uses: ./.byokctl-action
        id: byok
        with:
          command: COMMAND
          store: ${{ secrets.BYOK_STORE }}
      - name: report
        env:
          EXITCODE: ${{ steps.byok.outputs.exitcode }}
        run: echo "exitcode=$EXITCODE"
"""


def test_the_composite_action(job: Job, repo: Path, api: FakeGitHub) -> None:
    action = repo / ".byokctl-action"
    action.mkdir()
    shutil.copy(ROOT / "action.yml", action / "action.yml")
    shutil.copy(ROOT / "pyproject.toml", action / "pyproject.toml")
    job.base_env.update(
        SOPS_AGE_KEY=job.secrets["SOPS_AGE_KEY"], BYOK_MASTER_KEY=job.secrets["BYOK_MASTER_KEY"]
    )
    workflows = repo / ".github" / "workflows"
    for command in ("validate", "plan", "apply"):
        (workflows / f"{command}.yml").write_text(ACTION_WORKFLOW.replace("COMMAND", command))

    [validate, _] = results = job.run(
        "validate.yml", "byok", "pull_request", pr_event(3, "opened", "a")
    )
    ok(results)
    assert validate.outputs["exitcode"] == "0"
    [plan, report] = results = job.run(
        "plan.yml", "byok", "pull_request", pr_event(3, "opened", "a")
    )
    ok(results)
    assert {
        k: plan.outputs[k]
        for k in (
            "exitcode",
            "changes",
            "to-add",
            "to-change",
            "to-destroy",
            "plan-path",
            "json-plan-path",
            "failure-reason",
        )
    } == {
        "exitcode": "2",
        "changes": "true",
        "to-add": "7",
        "to-change": "0",
        "to-destroy": "0",
        "plan-path": "byok.plan",
        "json-plan-path": "byok.json",
        "failure-reason": "",
    }
    assert report.stdout.strip() == "exitcode=2"
    assert json.loads((repo / "byok.json").read_text())["summary"]["add"] == 7
    assert len(api.comments[3]) == 1  # comment: auto, on a pull request
    # The store moves before the reviewed plan is applied: apply refuses it as stale.
    job.byokctl("apply", "--auto-approve", "workspaces/acme-support.yaml")
    [apply] = job.run("apply.yml", "byok", "pull_request", pr_event(3, "closed", "a"))[:1]
    assert apply.code == 1
    assert apply.outputs["exitcode"] == "1" and apply.outputs["failure-reason"] == "plan-stale"
    assert "stale plan" in apply.log


def test_on_the_shared_postgresql_store(
    job: Job, repo: Path, api: FakeGitHub, request: pytest.FixtureRequest
) -> None:
    """The setup docs/github.md asks for: no SQLite override, one store for every runner."""
    database: str = request.getfixturevalue("postgres_database")
    job.variables = {}
    job.secrets["BYOK_STORE"] = postgres_schema_url(database)
    event = pr_event(21, "opened", git(repo, "rev-parse", "HEAD"))
    steps = ok(job.run("byok-plan.yml", "plan", "pull_request", event))
    assert steps["Plan"].outputs["to_add"] == "7"
    ok(job.run("byok-apply.yml", "apply", "push", {"ref": "refs/heads/main"}))
    # A later job on a fresh runner sees what the apply wrote: nothing left to do.
    steps = ok(job.run("byok-plan.yml", "plan", "pull_request", {**event, "action": "synchronize"}))
    assert steps["Plan"].outputs == {
        "changes": "false",
        "to_add": "0",
        "to_change": "0",
        "to_destroy": "0",
    }
    [comment] = api.comments[21]
    assert "No changes. The live state matches the files." in str(comment["body"])
