"""``byokctl serve`` (a group: with no subcommand it serves) and ``serve token add``."""

from __future__ import annotations

import sys

import click


@click.group(invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8750, show_default=True, help="Port."
)
@click.option("--store", metavar="URL", help="Live store URL (default: $BYOK_STORE).")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, store: str | None) -> int | None:
    """Serve the resolver API, the fleet status page and /metrics until stopped.

    Binds 127.0.0.1 by default; any other address needs BYOK_SERVE_TOKENS_FILE.
    """
    if ctx.invoked_subcommand is not None:
        return None
    from byokctl.commands.serve import serve as run  # noqa: PLC0415

    return run(host=host, port=port, store=store, err=sys.stderr)


@serve.group()
def token() -> None:
    """Manage the server's tokens (BYOK_SERVE_TOKENS_FILE)."""


@token.command("add")
@click.option(
    "--scopes",
    required=True,
    help="Comma-separated: read, resolve, resolve:keys, admin.",
)
@click.option(
    "--tokens-file", metavar="FILE", help="Default: $BYOK_SERVE_TOKENS_FILE.", default=None
)
def token_add(scopes: str, tokens_file: str | None) -> int:
    """Add a token: its SHA-256 goes to the file, the token is printed once."""
    from byokctl.commands.serve import token_add as run  # noqa: PLC0415

    return run(scopes=scopes, tokens_file=tokens_file, out=sys.stdout, err=sys.stderr)
