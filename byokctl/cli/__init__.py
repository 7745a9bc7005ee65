"""The ``byokctl`` command line: click parses, :mod:`byokctl.commands` does the work.

Usage errors exit 1, not click's 2: with ``--detailed-exitcode`` a 2 means "changes
present", and a pipeline must never read a typo as that.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from byokctl import __version__
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
@click.option("--format", "fmt", type=FORMAT_TEXT_JSON, default="text", show_default=True)
def validate(paths: tuple[str, ...], fmt: str) -> int:
    """Check workspace files: structure, rules, encryption status. Needs no key.

    PATHS are files or directories (searched recursively; default: ./workspaces).
    Exit 0 when valid, 1 when not.
    """
    from byokctl.commands.validate import validate as run  # noqa: PLC0415 - fast startup

    return run(paths, fmt="json" if fmt == "json" else "text", out=sys.stdout)


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

    return guarded(run)
