"""Run a workflow's steps in order, in a shell, the way the GitHub runner would.

This is a small, strict stand-in for the runner, used to test the workflows we ship:

- ``run:`` steps run in ``bash`` exactly as GitHub invokes it (``bash -e {0}`` by
  default, ``bash --noprofile --norc -eo pipefail {0}`` for ``shell: bash``), with a
  GitHub-like environment: ``GITHUB_ACTIONS``, ``GITHUB_WORKSPACE``,
  ``GITHUB_EVENT_PATH`` (a real-shaped event), a fresh ``GITHUB_OUTPUT``,
  ``GITHUB_STEP_SUMMARY`` and ``GITHUB_PATH`` per step, ``RUNNER_TEMP`` …, plus the
  workflow's, job's and step's ``env:``;
- ``${{ }}`` expressions are evaluated for the contexts the workflows use (``github``,
  ``secrets``, ``vars``, ``inputs``, ``steps.*.outputs``, ``env``); anything else raises,
  so an expression the harness does not understand can never pass silently;
- ``uses:`` runs a local composite action (our ``action.yml``) step by step, and emulates
  exactly two others: ``actions/checkout`` (the repository is already checked out) and
  ``actions/upload-artifact`` (files are copied to ``artifacts/NAME/``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.github import runner

_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*")


@dataclass
class StepResult:
    name: str
    id: str | None
    kind: str  # run | checkout | upload-artifact | composite | skipped
    code: int = 0
    stdout: str = ""
    stderr: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    inner: list[StepResult] = field(default_factory=list)

    @property
    def log(self) -> str:
        return self.stdout + self.stderr + "".join(s.log for s in self.inner)


@dataclass
class Runner:
    """One job's environment: the checkout, the event, secrets, variables, temp dirs."""

    workspace: Path
    temp: Path
    event_name: str
    event: dict[str, Any]
    secrets: dict[str, str]
    variables: dict[str, str]
    base_env: dict[str, str]
    github: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.temp.mkdir(parents=True, exist_ok=True)
        self.event_path = self.temp / "event.json"
        self.event_path.write_text(json.dumps(self.event))
        self.artifacts = self.temp / "artifacts"
        self.extra_path: list[str] = []
        self._counter = 0

    # -- expressions -------------------------------------------------------------------

    def _lookup(self, expr: str, ctx: dict[str, Any]) -> str:
        if not _PATH.fullmatch(expr):
            raise NotImplementedError(f"expression not supported by the dry run: {expr!r}")
        value: Any = ctx
        for part in expr.split("."):
            if not isinstance(value, dict):
                return ""
            value = value.get(part, "")
        if isinstance(value, bool):
            return "true" if value else "false"
        return "" if value is None else str(value)

    def evaluate(self, text: Any, ctx: dict[str, Any]) -> str:
        """Substitute every ``${{ path }}`` in ``text``."""
        if isinstance(text, bool):  # YAML `false` is the string "false" to an action
            return "true" if text else "false"
        return _EXPR.sub(lambda m: self._lookup(m.group(1), ctx), str(text))

    def _condition(self, text: str | None, ctx: dict[str, Any], failed: bool) -> bool:
        if text is None:
            return not failed
        expr = _EXPR.sub(lambda m: m.group(1), str(text)).strip()
        if expr == "always()":
            return True
        if expr == "failure()":
            return failed
        if expr == "success()":
            return not failed
        m = re.fullmatch(r"([\w.-]+)\s*(==|!=)\s*'([^']*)'", expr)
        if m:
            equal = self._lookup(m.group(1), ctx) == m.group(3)
            return (not failed) and (equal if m.group(2) == "==" else not equal)
        raise NotImplementedError(f"if: not supported by the dry run: {text!r}")

    def context(self, env: dict[str, str], inputs: dict[str, str] | None = None) -> dict[str, Any]:
        github = {
            "event_name": self.event_name,
            "event": self.event,
            "workspace": str(self.workspace),
            "token": self.secrets.get("GITHUB_TOKEN", ""),
            **self.github,
        }
        return {
            "github": github,
            "secrets": self.secrets,
            "vars": self.variables,
            "env": env,
            "inputs": inputs or {},
            "steps": {},
            "runner": {"temp": str(self.temp)},
        }

    # -- steps ---------------------------------------------------------------------------

    def _environment(self, env: dict[str, str]) -> dict[str, str]:
        full = {**self.base_env}
        full["PATH"] = os.pathsep.join([*self.extra_path, full.get("PATH", "")])
        full.update(
            {
                "CI": "true",
                "GITHUB_ACTIONS": "true",
                "GITHUB_WORKSPACE": str(self.workspace),
                "GITHUB_EVENT_NAME": self.event_name,
                "GITHUB_EVENT_PATH": str(self.event_path),
                "RUNNER_TEMP": str(self.temp),
                **{f"GITHUB_{k.upper()}": v for k, v in self.github.items()},
            }
        )
        full.update(env)
        return full

    def _run(
        self, name: str, step: dict[str, Any], env: dict[str, str], workdir: Path
    ) -> StepResult:
        self._counter += 1
        files = {k: self.temp / f"step{self._counter}.{k}" for k in ("output", "summary", "path")}
        for f in files.values():
            f.write_text("")
        script = self.temp / f"step{self._counter}.sh"
        script.write_text(step["run"])
        shell = step.get("shell")
        if shell == "bash":
            argv = ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)]
        elif shell is None:
            argv = ["bash", "-e", str(script)]
        else:
            raise NotImplementedError(f"shell: {shell}")
        full = self._environment(env)
        full.update(
            GITHUB_OUTPUT=str(files["output"]),
            GITHUB_STEP_SUMMARY=str(files["summary"]),
            GITHUB_PATH=str(files["path"]),
        )
        done = subprocess.run(
            argv, cwd=workdir, env=full, capture_output=True, text=True, timeout=300, check=False
        )
        for line in files["path"].read_text().splitlines():
            if line.strip():
                self.extra_path.insert(0, line.strip())
        return StepResult(
            name,
            step.get("id"),
            "run",
            done.returncode,
            done.stdout,
            done.stderr,
            runner.outputs(files["output"].read_text()),
            files["summary"].read_text(),
        )

    def _uses(
        self, name: str, step: dict[str, Any], ctx: dict[str, Any], env: dict[str, str]
    ) -> StepResult:
        uses = str(step["uses"])
        with_ = {k: self.evaluate(v, ctx) for k, v in (step.get("with") or {}).items()}
        if uses.startswith("actions/checkout@"):
            assert with_.get("persist-credentials") == "false", "checkout must not keep the token"
            return StepResult(name, step.get("id"), "checkout")
        if uses.startswith("actions/upload-artifact@"):
            target = self.artifacts / with_["name"]
            target.mkdir(parents=True, exist_ok=True)
            for line in with_["path"].splitlines():
                if line.strip():
                    source = self.workspace / line.strip()
                    assert source.is_file(), f"artifact file missing: {line}"
                    shutil.copy(source, target / source.name)
            return StepResult(name, step.get("id"), "upload-artifact")
        if uses.startswith("./"):
            result = self.composite(self.workspace / uses, with_, name=name, env=env)
            result.id = step.get("id")
            return result
        raise NotImplementedError(f"uses: {uses}")

    def composite(
        self, action_dir: Path, with_: dict[str, str], *, name: str, env: dict[str, str]
    ) -> StepResult:
        """Run the composite action in ``action_dir`` with inputs ``with_``."""
        action = yaml.safe_load((action_dir / "action.yml").read_text())
        assert action["runs"]["using"] == "composite"
        inputs: dict[str, str] = {}
        base_ctx = self.context(env)
        for key, spec in action.get("inputs", {}).items():
            default = self.evaluate(spec.get("default", ""), base_ctx)
            inputs[key] = with_.get(key, default)
        unknown = set(with_) - set(inputs)
        assert not unknown, f"unknown inputs: {unknown}"
        ctx = self.context(env, inputs)
        ctx["github"]["action_path"] = str(action_dir)
        inner = self.steps(
            action["runs"]["steps"], ctx, env, extra_env={"GITHUB_ACTION_PATH": str(action_dir)}
        )
        outputs = {k: self.evaluate(v["value"], ctx) for k, v in action.get("outputs", {}).items()}
        code = next((s.code for s in inner if s.code), 0)
        return StepResult(
            name,
            None,
            "composite",
            code,
            outputs=outputs,
            inner=inner,
            summary="".join(s.summary for s in inner),
        )

    def steps(
        self,
        steps: list[dict[str, Any]],
        ctx: dict[str, Any],
        env: dict[str, str],
        *,
        extra_env: dict[str, str] | None = None,
    ) -> list[StepResult]:
        results: list[StepResult] = []
        failed = False
        for i, step in enumerate(steps):
            name = self.evaluate(step.get("name") or step.get("uses") or f"step {i}", ctx)
            if not self._condition(step.get("if"), ctx, failed):
                results.append(StepResult(name, step.get("id"), "skipped"))
                continue
            step_env = {**env, **(extra_env or {})}
            step_env.update({k: self.evaluate(v, ctx) for k, v in (step.get("env") or {}).items()})
            ctx["env"] = step_env
            if "uses" in step:
                result = self._uses(name, step, ctx, step_env)
            else:
                workdir = self.workspace / self.evaluate(step.get("working-directory", "."), ctx)
                result = self._run(name, step, step_env, workdir)
            results.append(result)
            if result.id:
                ctx["steps"][result.id] = {"outputs": result.outputs}
            failed = failed or result.code != 0
        return results

    def workflow(self, path: Path, job: str) -> list[StepResult]:
        """Run one job of the workflow at ``path``."""
        doc = yaml.safe_load(path.read_text())
        ctx = self.context({})
        env = {k: self.evaluate(v, ctx) for k, v in (doc.get("env") or {}).items()}
        spec = doc["jobs"][job]
        ctx["env"] = env
        env.update({k: self.evaluate(v, ctx) for k, v in (spec.get("env") or {}).items()})
        return self.steps(spec["steps"], ctx, env)
