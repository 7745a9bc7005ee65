"""``byokctl sandbox``'s click wiring (kept apart: ``cli/__init__`` is at its size limit)."""

from __future__ import annotations

import sys

import click


@click.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8089,
    show_default=True,
    help="0 picks a free port.",
)
@click.option(
    "--latency",
    type=click.FloatRange(min=0, max=3600),
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    help="Added to every answer.",
)
@click.option(
    "--slow-seconds",
    type=click.FloatRange(min=0, max=3600),
    default=5.0,
    show_default=True,
    help="How long keys marked 'slow' wait.",
)
@click.option(
    "--stream-interval",
    type=click.FloatRange(min=0, max=3600),
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    help="Pause between two events of a streamed answer.",
)
def sandbox(port: int, latency: float, slow_seconds: float, stream_interval: float) -> int:
    """Run a loopback stand-in for the seven providers' APIs until stopped.

    It prints the BYOK_<PROVIDER>_BASE_URL lines to export and the key markers that choose
    each answer (valid, invalid, no credits, rate limited, outage, slow, flaky).
    """
    from byokctl.commands.sandbox import sandbox as run  # noqa: PLC0415

    return run(
        port=port,
        latency=latency,
        slow_seconds=slow_seconds,
        stream_interval=stream_interval,
        out=sys.stdout,
    )
