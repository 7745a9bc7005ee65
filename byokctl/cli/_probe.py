"""``byokctl probe``'s click wiring (kept apart: ``cli/__init__`` is at its size limit)."""

from __future__ import annotations

import sys

import click


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option(
    "--store-only",
    is_flag=True,
    help="Probe the credentials the store holds (no files, no SOPS key needed).",
)
@click.option(
    "--every",
    metavar="DURATION",
    help="Probe again every DURATION (90s, 15m, 1h) until stopped (SIGTERM, Ctrl-C).",
)
@click.option(
    "--store",
    metavar="URL",
    default=None,
    help="The live store: sqlite:///PATH or postgresql://… (default: $BYOK_STORE, "
    "else sqlite:///.byok/state.db).",
)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option(
    "--parallelism",
    type=click.IntRange(1, 256),
    default=16,
    show_default=True,
    help="How many provider checks run at once.",
)
@click.option("--no-cache", is_flag=True, help="Ignore the verification cache.")
def probe(
    paths: tuple[str, ...],
    store_only: bool,
    every: str | None,
    store: str | None,
    fmt: str,
    parallelism: int,
    no_cache: bool,
) -> int:
    """Check each enabled provider's key with its cheapest read-only call; record the result.

    A failing key opens its failure episode (Neo takes over, one e-mail) before a user's
    action fails. PATHS: workspace files (default: ./workspaces); only credentials equal
    to the stored ones are recorded. Exit 0 when every key answered ok, 1 otherwise.
    """
    from byokctl.commands.probe import probe_command  # noqa: PLC0415

    return probe_command(
        paths,
        store_only=store_only,
        every=every,
        store=store,
        fmt="json" if fmt == "json" else "text",
        parallelism=parallelism,
        cache=not no_cache,
        out=sys.stdout,
        err=sys.stderr,
    )
