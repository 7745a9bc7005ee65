"""The ``byokctl`` command line: click parses, :mod:`byokctl.commands` does the work.

Usage errors exit 1, not click's 2: with ``--detailed-exitcode`` a 2 means "changes
present", and a pipeline must never read a typo as that.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import click

from byokctl import __version__
from byokctl.catalog import PROVIDERS
from byokctl.cli._probe import probe as probe_command
from byokctl.cli._sandbox import sandbox as sandbox_command
from byokctl.cli.boundary import guarded

FORMAT_TEXT_JSON = click.Choice(["text", "json"])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="byokctl")
def cli() -> None:
    """Bring-Your-Own-Key AI provider configuration as code.

    Declare each workspace's AI providers in SOPS-encrypted YAML; validate, plan and apply
    them to the live store.
    """


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "sarif"]),
    default="text",
    show_default=True,
    help="sarif: SARIF 2.1.0 for GitHub code scanning.",
)
@click.option(
    "--only",
    multiple=True,
    metavar="RULE",
    help="Report only this rule id (repeatable), e.g. secret-not-encrypted.",
)
def validate(paths: tuple[str, ...], fmt: str, only: tuple[str, ...]) -> int:
    """Check workspace files: structure, rules, encryption status. Needs no key.

    PATHS are files or directories (searched recursively; default: ./workspaces).
    Exit 0 when valid, 1 when not.
    """
    from byokctl.commands.validate import validate as run  # noqa: PLC0415 - fast startup

    chosen: Literal["text", "json", "sarif"] = (
        "json" if fmt == "json" else "sarif" if fmt == "sarif" else "text"
    )
    return run(paths, fmt=chosen, out=sys.stdout, err=sys.stderr, only=only)


FORMAT_PLAN = click.Choice(["text", "json", "markdown"])

store_option = click.option(
    "--store",
    metavar="URL",
    default=None,
    help="The live store: sqlite:///PATH or postgresql://… (default: $BYOK_STORE, "
    "else sqlite:///.byok/state.db).",
)
no_verify_option = click.option(
    "--no-verify",
    is_flag=True,
    help="Do not check credentials with the providers.",
)
parallelism_option = click.option(
    "--parallelism",
    type=click.IntRange(1, 256),
    default=8,
    show_default=True,
    help="How many provider checks run at once.",
)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@store_option
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Save the plan to FILE for `byokctl apply FILE`.",
)
@click.option("--format", "fmt", type=FORMAT_PLAN, default="text", show_default=True)
@click.option(
    "--detailed-exitcode", is_flag=True, help="Exit 0 with no changes, 2 with changes, 1 on error."
)
@click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="NAME",
    help="Limit the plan to this workspace (repeatable).",
)
@no_verify_option
@parallelism_option
def plan(
    paths: tuple[str, ...],
    store: str | None,
    out_file: Path | None,
    fmt: str,
    detailed_exitcode: bool,
    targets: tuple[str, ...],
    no_verify: bool,
    parallelism: int,
) -> int:
    """Show what apply would change: files (decrypted) against the live store."""
    from byokctl.commands.plan import plan as run  # noqa: PLC0415

    return run(
        paths,
        store=store,
        fmt=_plan_format(fmt),
        out_file=out_file,
        detailed_exitcode=detailed_exitcode,
        targets=targets,
        verify=not no_verify,
        out=sys.stdout,
        err=sys.stderr,
        parallelism=parallelism,
    )


@cli.command()
@click.argument("args", nargs=-1, metavar="[PLANFILE | PATH...]")
@store_option
@click.option("--auto-approve", is_flag=True, help="Apply without asking (for CI).")
@click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0, max=86400),
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    help="Wait this long for a held lock.",
)
@no_verify_option
@parallelism_option
def apply(
    args: tuple[str, ...],
    store: str | None,
    auto_approve: bool,
    lock_timeout: float,
    no_verify: bool,
    parallelism: int,
) -> int:
    """Apply a saved plan, or plan and apply the files under PATHs."""
    from byokctl.commands._inputs import stdin_is_terminal  # noqa: PLC0415
    from byokctl.commands.apply import apply as run  # noqa: PLC0415

    def ask(prompt: str) -> str:
        return str(click.prompt(prompt, default="", show_default=False))

    return run(
        args,
        store=store,
        auto_approve=auto_approve,
        lock_timeout=lock_timeout,
        verify=not no_verify,
        out=sys.stdout,
        err=sys.stderr,
        confirm=ask if stdin_is_terminal() else None,
        parallelism=parallelism,
    )


@cli.command()
@click.argument("planfile", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=FORMAT_PLAN, default="text", show_default=True)
def show(planfile: Path, fmt: str) -> int:
    """Render a plan saved by `plan --out`."""
    from byokctl.commands.show import show as run  # noqa: PLC0415

    return run(planfile, fmt=_plan_format(fmt), out=sys.stdout)


@cli.group()
def state() -> None:
    """Read the live store (API keys are never shown)."""


@state.command("list")
@store_option
@click.option("--format", "fmt", type=FORMAT_TEXT_JSON, default="text", show_default=True)
def state_list(store: str | None, fmt: str) -> int:
    """List the live workspaces."""
    from byokctl.commands.state import state_list as run  # noqa: PLC0415

    return run(store=store, fmt="json" if fmt == "json" else "text", out=sys.stdout, err=sys.stderr)


@state.command("show")
@click.argument("name")
@store_option
@click.option("--format", "fmt", type=FORMAT_TEXT_JSON, default="text", show_default=True)
def state_show(name: str, store: str | None, fmt: str) -> int:
    """Show one live workspace."""
    from byokctl.commands.state import state_show as run  # noqa: PLC0415

    return run(
        name, store=store, fmt="json" if fmt == "json" else "text", out=sys.stdout, err=sys.stderr
    )


@cli.command("import")
@click.argument("names", nargs=-1, metavar="[NAME...]")
@store_option
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("workspaces"),
    show_default=True,
)
@click.option("--force", is_flag=True, help="Overwrite existing files.")
def import_(names: tuple[str, ...], store: str | None, out_dir: Path, force: bool) -> int:
    """Write workspace files from the live store (default: every unmanaged workspace).

    API keys are encrypted by sops per the .sops.yaml above OUT_DIR; plaintext never
    touches the disk.
    """
    from byokctl.commands.import_ import import_workspaces as run  # noqa: PLC0415

    return run(names, store=store, out_dir=out_dir, force=force, out=sys.stdout, err=sys.stderr)


@cli.command("force-unlock")
@click.argument("lock_id", metavar="ID")
@store_option
def force_unlock(lock_id: str, store: str | None) -> int:
    """Remove a stuck apply lock (its ID is in the lock-held message)."""
    from byokctl.commands.maintenance import force_unlock as run  # noqa: PLC0415

    return run(lock_id, store=store, out=sys.stdout, err=sys.stderr)


@cli.group("store")
def store_group() -> None:
    """Store maintenance."""


@store_group.command("rotate-key")
@store_option
@click.option(
    "--new-key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File holding the new master key (base64 of 32 bytes). Default: generate one "
    "(only for the local store's auto-created key, which is then replaced).",
)
def rotate_key(store: str | None, new_key_file: Path | None) -> int:
    """Re-encrypt every API key in the store under a new master key, atomically."""
    from byokctl.commands.maintenance import rotate_key as run  # noqa: PLC0415

    return run(store=store, new_key_file=new_key_file, out=sys.stdout, err=sys.stderr)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("provider", type=click.Choice(list(PROVIDERS)))
@click.option("--format", "fmt", type=FORMAT_TEXT_JSON, default="text", show_default=True)
def models(file: Path, provider: str, fmt: str) -> int:
    """List the models a workspace file's key for PROVIDER can use (asks the provider)."""
    from byokctl.commands.models import models as run  # noqa: PLC0415

    return run(
        file, provider, fmt="json" if fmt == "json" else "text", out=sys.stdout, err=sys.stderr
    )


cli.add_command(sandbox_command)


@cli.command()
@click.argument("name")
@click.option(
    "--feature", default="assist", show_default=True, help="assist, summarize or auto_reply."
)
@store_option
@click.option("--format", "fmt", type=FORMAT_TEXT_JSON, default="text", show_default=True)
def resolve(name: str, feature: str, store: str | None, fmt: str) -> int:
    """Where workspace NAME's next AI action goes (its provider, or Neo), and why."""
    from byokctl.commands.resolve import resolve as run  # noqa: PLC0415

    return run(
        name,
        feature=feature,
        store=store,
        fmt="json" if fmt == "json" else "text",
        out=sys.stdout,
        err=sys.stderr,
    )


cli.add_command(probe_command)


@cli.command()
@store_option
@click.option("--format", "fmt", type=FORMAT_TEXT_JSON, default="text", show_default=True)
def status(store: str | None, fmt: str) -> int:
    """Every workspace: route, reason, since when, open failure episodes."""
    from byokctl.commands.resolve import status as run  # noqa: PLC0415

    return run(store=store, fmt="json" if fmt == "json" else "text", out=sys.stdout, err=sys.stderr)


@cli.command()
@click.argument("name", required=False)
@click.option("--since", metavar="DATE", help="Only usage from this date on (YYYY-MM-DD).")
@store_option
@click.option("--format", "fmt", type=FORMAT_TEXT_JSON, default="text", show_default=True)
def credits(name: str | None, since: str | None, store: str | None, fmt: str) -> int:
    """Credit usage from the ledger, per workspace, feature and route."""
    from byokctl.commands.resolve import credits as run  # noqa: PLC0415

    return run(
        name,
        since=since,
        store=store,
        fmt="json" if fmt == "json" else "text",
        out=sys.stdout,
        err=sys.stderr,
    )


@cli.command()
@click.argument("planfile", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option(
    "--pr", type=click.IntRange(1), default=None, help="Default: from $GITHUB_EVENT_PATH."
)
@click.option(
    "--mode",
    type=click.Choice(["update", "recreate", "delete"]),
    default="update",
    show_default=True,
    help="update: edit the comment in place; recreate: delete and post it again; "
    "delete: remove it.",
)
@click.option(
    "--id",
    "marker_id",
    default=None,
    help="Which comment is ours (default: this config directory, relative to the repo).",
)
@click.option(
    "--allow-readonly",
    is_flag=True,
    help="Exit 0 with a warning when the token may not comment (a fork's pull request).",
)
@click.option(
    "--drift-issue",
    metavar="LABEL",
    default=None,
    help="Instead: keep one open issue with this label while the plan has changes; "
    "close it when clean.",
)
@click.option("--author", default=None, help="Only a comment by this login counts as ours.")
@click.option(
    "--failed",
    is_flag=True,
    help="No PLANFILE: replace the comment with a note that the plan failed (its run's link).",
)
def comment(
    planfile: Path | None,
    pr: int | None,
    mode: str,
    marker_id: str | None,
    allow_readonly: bool,
    drift_issue: str | None,
    author: str | None,
    failed: bool,
) -> int:
    """Post a saved plan as one sticky pull-request comment (GitHub REST API).

    Needs GITHUB_REPOSITORY and GITHUB_TOKEN (GITHUB_API_URL for GitHub Enterprise).
    """
    from byokctl.commands.comment import comment as run  # noqa: PLC0415

    chosen: Literal["update", "recreate", "delete"] = (
        "recreate" if mode == "recreate" else "delete" if mode == "delete" else "update"
    )
    return run(
        planfile,
        pr=pr,
        mode=chosen,
        marker_id=marker_id,
        allow_readonly=allow_readonly,
        drift_issue=drift_issue,
        author=author,
        failed=failed,
        out=sys.stdout,
        err=sys.stderr,
    )


@cli.command()
@click.argument(
    "directory", type=click.Path(file_okay=False, path_type=Path), default=Path(), required=False
)
@click.option(
    "--age-recipient",
    metavar="AGE1…",
    default=None,
    help="Encrypt to this age public key (default: create an identity in DIR/.byok/age.key).",
)
@click.option("--force", is_flag=True, help="Overwrite existing files.")
def init(directory: Path, age_recipient: str | None, force: bool) -> int:
    """Scaffold a config repository in DIRECTORY: .sops.yaml, an example workspace,
    the GitHub workflows, pre-commit hooks and .gitignore."""
    from byokctl.commands.init import init as run  # noqa: PLC0415

    return run(directory, age_recipient=age_recipient, force=force, out=sys.stdout, err=sys.stderr)


from byokctl.cli.serve import serve as _serve  # noqa: E402 - registered after the others

cli.add_command(_serve)


def _plan_format(fmt: str) -> Literal["text", "json", "markdown"]:
    return "json" if fmt == "json" else "markdown" if fmt == "markdown" else "text"


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: run the CLI inside the error boundary and return the exit code."""

    def run() -> int:
        try:
            result = cli.main(args=argv, prog_name="byokctl", standalone_mode=False)
        except click.exceptions.Exit as exc:
            return exc.exit_code
        except click.exceptions.Abort:
            raise KeyboardInterrupt from None
        except click.ClickException as exc:
            exc.show()
            return 1
        return result if isinstance(result, int) else 0

    if os.environ.get("GITHUB_ACTIONS", "").lower() != "true":
        return guarded(run)
    # The runner reads workflow commands from our output: no line from a file may be one.
    from byokctl.github import guard_streams  # noqa: PLC0415

    with guard_streams():
        return guarded(run)
