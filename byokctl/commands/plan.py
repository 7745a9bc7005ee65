"""``byokctl plan``: what apply would change, rendered for people or machines."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal, TextIO

from byokctl.commands._inputs import make_plan, open_live_store, store_url, use_color
from byokctl.plan import Plan, planfile
from byokctl.render import render_json, render_markdown, render_text
from byokctl.store import safe_url, store_exists

PlanFormat = Literal["text", "json", "markdown"]


def render(plan: Plan, fmt: PlanFormat, *, color: bool) -> str:
    """The plan in one of the three formats."""
    if fmt == "json":
        return render_json(plan)
    if fmt == "markdown":
        return render_markdown(plan)
    return render_text(plan, color=color)


def report_to_actions(result: Plan) -> None:
    """Under GitHub Actions: the plan in the step summary, its counts as step outputs."""
    from byokctl.github import Actions, plan_outputs  # noqa: PLC0415

    actions = Actions.from_env()
    if actions is not None:
        actions.append_summary(render_markdown(result))
        actions.set_outputs(plan_outputs(result.summary, has_changes=result.has_changes))


def plan(
    paths: Sequence[str],
    *,
    store: str | None,
    fmt: PlanFormat,
    out_file: Path | None,
    detailed_exitcode: bool,
    targets: Sequence[str],
    verify: bool,
    out: TextIO,
    err: TextIO,
    parallelism: int = 8,
) -> int:
    """Plan the files under ``paths`` against the live store.

    With ``verify``, every provider of the planned workspaces is checked with the
    provider (at most ``parallelism`` at a time) and the outcome shown per workspace.
    Exit 0, or with ``detailed_exitcode`` 0 for no changes and 2 for changes (1 is an
    error, raised as an exception and turned into 1 by the error boundary). A verified
    plan that apply would refuse (:func:`~byokctl.verify.refuse_failed_enable`) is such
    an error, after the plan (failure first) is printed and saved.
    """
    url = store_url(store)
    if store_exists(url):
        with open_live_store(url, err=err) as live_store:
            result = make_plan(paths, live_store, targets=targets, err=err)
    else:
        print(
            f"byokctl: no store at {safe_url(url)} yet: planning against an empty state "
            "(apply creates it)",
            file=err,
        )
        result = make_plan(paths, None, targets=targets, err=err)
    if verify:
        # httpx and the adapters load only for a verified plan (--no-verify starts faster).
        from byokctl.verify import verify_plan  # noqa: PLC0415

        result = verify_plan(result, parallelism=parallelism, err=err)
    if out_file is not None:
        planfile.write_plan(out_file, result)
        print(
            f"byokctl: saved the plan to {out_file}; apply it with: byokctl apply {out_file}",
            file=err,
        )
    print(render(result, fmt, color=use_color(out)).rstrip("\n"), file=out)
    report_to_actions(result)
    if verify:
        # apply's own rule: what it would refuse fails the plan (exit 1, also with
        # --detailed-exitcode), so a green pull-request check means the merge applies.
        # The rendering above already shows the failure first; the plan file keeps it.
        from byokctl.verify import refuse_failed_enable  # noqa: PLC0415

        refuse_failed_enable(result)
    if detailed_exitcode and result.has_changes:
        return 2
    return 0
