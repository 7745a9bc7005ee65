"""``byokctl apply``: reconcile the live store with the files, or with a saved plan."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from byokctl.commands._inputs import make_plan, open_live_store, store_url, use_color
from byokctl.errors import ByokError
from byokctl.executor import ApplyResult, apply_plan, default_holder, locked
from byokctl.model import Workspace
from byokctl.plan import FieldChange, Plan, planfile
from byokctl.render import render_markdown, render_text
from byokctl.verify import refuse_failed_enable, verify_plan

_NO_CHANGES = "No changes. The live state matches the files."

#: Asks the operator to confirm; returns their answer.
Confirm = Callable[[str], str]


@dataclass(frozen=True)
class _Write:
    """A plan change as the executor sees it (adoptions become updates)."""

    name: str
    action: str
    after: Workspace | None
    fields: Sequence[FieldChange]


def _writes(plan: Plan) -> list[_Write]:
    out = []
    for c in plan.changes:
        if not c.is_change:
            continue
        # Adopting an unmanaged workspace, or clearing drift that already matches the
        # files, changes no field but still writes the workspace, so that the store records
        # it as managed (with a fresh drift digest) from now on.
        action = "update" if c.action == "no-op" else str(c.action)
        out.append(_Write(c.name, action, c.after, c.fields))
    return out


def _is_plan_file(args: Sequence[str]) -> bool:
    if len(args) != 1:
        return False
    path = Path(args[0])
    return path.is_file() and path.suffix not in (".yaml", ".yml")


def apply(
    args: Sequence[str],
    *,
    store: str | None,
    auto_approve: bool,
    lock_timeout: float,
    verify: bool,
    out: TextIO,
    err: TextIO,
    confirm: Confirm | None,
    parallelism: int = 8,
) -> int:
    """Apply a saved plan (``args`` is one plan file) or the files under ``args``.

    ``confirm`` is ``None`` when no terminal can answer; then only ``auto_approve`` or a
    saved plan (reviewed already) may proceed. With ``verify``, apply refuses to leave a
    workspace enabled on a provider whose credentials fail verification.
    """
    with (
        open_live_store(store_url(store), err=err, create=True) as live_store,
        # The lock comes first, as in Terraform: the live state is read, planned against
        # and written under it, so a racing apply waits its turn and then plans against
        # the state this one leaves, instead of failing on a serial that moved.
        locked(live_store, holder=default_holder(), lock_timeout=lock_timeout, notice=err) as held,
    ):
        if _is_plan_file(args):
            saved_path = Path(args[0])
            saved = planfile.read_plan(saved_path)
            current = make_plan(saved.paths, live_store, targets=saved.targets, err=err)
            planfile.check_fresh(
                saved,
                current_serial=live_store.serial(),
                current_hashes={s.path: s.sha256 for s in current.sources.values()},
            )
            planfile.check_same(saved, current)
            result_plan = current
            # A saved plan is applied as it was made: if it was verified (it carries
            # checks), the credentials are checked again now, since a key can be revoked
            # between review and merge; a plan made with --no-verify is not.
            if verify and any(c.checks for c in saved.changes):
                verified = verify_plan(current, parallelism=parallelism, err=err)
                for warning in refuse_failed_enable(verified):
                    print(f"byokctl: warning: not confirmed now: {warning.message}", file=err)
        else:
            result_plan = make_plan(args, live_store, targets=None, err=err)
            if verify:
                result_plan = verify_plan(result_plan, parallelism=parallelism, err=err)
            print(render_text(result_plan, color=use_color(out)).rstrip("\n"), file=out)
            if not result_plan.has_changes:
                _report_to_actions(result_plan, _NO_CHANGES)
                return 0
            if verify:
                refuse_failed_enable(result_plan)
            if not auto_approve:
                if confirm is None:
                    raise ByokError(
                        "refusing to apply without confirmation: standard input is not a terminal",
                        hint="review `byokctl plan` and pass --auto-approve, or apply a saved plan",
                    )
                answer = confirm("Do you want to apply these changes? Only 'yes' will be accepted")
                if answer.strip() != "yes":
                    print("Apply cancelled.", file=out)
                    return 1
        if not result_plan.has_changes:
            print(_NO_CHANGES, file=out)
            _report_to_actions(result_plan, _NO_CHANGES)
            return 0
        result = apply_plan(
            live_store,
            _writes(result_plan),
            holder=held.holder,
            lock_timeout=lock_timeout,
            expected_serial=result_plan.serial,
            held=held,
        )
    print(_summary(result), file=out)
    _report_to_actions(result_plan, _summary(result))
    return 0


def _report_to_actions(applied: Plan, result_line: str) -> None:
    """Under GitHub Actions: what was applied, and the result, in the step summary."""
    from byokctl.github import Actions, apply_markdown  # noqa: PLC0415

    actions = Actions.from_env()
    if actions is not None:
        actions.append_summary(
            apply_markdown(render_markdown(applied), result_line, commit_url=commit_url())
        )


def commit_url(env: Mapping[str, str] = os.environ) -> str | None:
    """The page of the commit being applied: GitHub lists the pull request (and its plan
    comment) that merged it there."""
    server, repo, sha = (
        env.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_SHA")
    )
    if server and repo and sha:
        return f"{server.rstrip('/')}/{repo}/commit/{sha}"
    return None


def _summary(result: ApplyResult) -> str:
    return (
        f"Apply complete! Workspaces: {len(result.created)} added, {len(result.updated)} "
        f"changed, {len(result.deleted)} destroyed. Store serial: {result.previous_serial} -> "
        f"{result.serial}."
    )
