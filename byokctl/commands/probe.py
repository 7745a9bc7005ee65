"""``byokctl probe``: check every enabled provider's key now, or every DURATION.

The store is opened with a :class:`~byokctl.resolver.Resolver` that records each probe's
verdict (episodes, breaker) and sends the e-mails owed over ``BYOK_SMTP_URL`` before the
command returns. With PATHs the credentials come from the files (decrypted) and only
those equal to the stored ones are recorded; ``--store-only`` probes what the store
holds, with no file and no SOPS key (the usual scheduled job). Exit 0 when every
probed key answered ok, 1 when any failed.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Literal, TextIO

from byokctl.commands._inputs import open_resolver, read_desired
from byokctl.config.discover import DEFAULT_PATH
from byokctl.errors import ByokError
from byokctl.model import Workspace
from byokctl.probe import ProbeReport, parse_duration, probe
from byokctl.probe._lowbalance import notify_low_balance
from byokctl.resolver import Resolver
from byokctl.verify import VerifyCache

Format = Literal["text", "json"]


def _print(report: ProbeReport, fmt: Format, out: TextIO) -> None:
    if fmt == "json":
        print(json.dumps(report.to_dict(), indent=2), file=out, flush=True)
        return
    width = max((len(r.workspace) for r in report.results), default=0)
    for r in report.results:
        extra = (
            "" if r.recorded else " (not recorded: the store holds other credentials; apply first)"
        )
        if r.running_low:
            extra += f" (balance {r.balance:g} below low_balance {r.low_balance:g})"
        print(
            f"{r.workspace.ljust(width)}  {r.provider:<17} {r.outcome:<19} {r.detail}{extra}",
            file=out,
        )
    failed = sum(not r.ok for r in report.results)
    mails = report.emails_sent + report.low_balance_emails
    print(
        f"Probed {len(report.results)} key(s): {len(report.results) - failed} ok, "
        f"{failed} failed; {mails} e-mail(s) sent.",
        file=out,
        flush=True,
    )


def probe_command(
    paths: Sequence[str],
    *,
    store_only: bool,
    every: str | None,
    store: str | None,
    fmt: Format,
    parallelism: int,
    cache: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    """Probe once (or every ``every`` until SIGTERM/SIGINT); exit 0 all ok, 1 otherwise."""
    if store_only and paths:
        raise ByokError(
            "give PATHs or --store-only, not both",
            hint="--store-only probes the credentials the store holds, without files",
        )
    try:
        interval = parse_duration(every) if every is not None else None
    except ValueError as exc:
        raise ByokError(f"--every: {exc}") from None
    workspaces: list[Workspace] | None = None
    if not store_only:
        desired = read_desired(paths or [DEFAULT_PATH], err=err, refused="nothing was probed")
        workspaces = list(desired.workspaces.values())
    with open_resolver(store, err=err, notify=True) as resolver:
        stop = threading.Event()
        restore = _stop_on_signals(stop) if interval is not None else None
        try:
            while True:
                report = _round(resolver, workspaces, parallelism=parallelism, cache=cache)
                _print(report, fmt, out)
                if interval is None or stop.wait(interval):
                    return 0 if report.ok else 1
                resolver.refresh()  # what apply changed meanwhile
        finally:
            if restore is not None:
                restore()


def _round(
    resolver: Resolver, workspaces: list[Workspace] | None, *, parallelism: int, cache: bool
) -> ProbeReport:
    report = probe(
        resolver,
        workspaces=workspaces,
        parallelism=parallelism,
        cache=VerifyCache.default(os.environ) if cache else None,
    )
    return notify_low_balance(resolver, report)


def _stop_on_signals(stop: threading.Event) -> Callable[[], None]:
    """Set ``stop`` on SIGTERM and SIGINT (a timer's stop, Ctrl-C); return the undo."""

    def handler(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for s, h in previous.items():
            signal.signal(s, h)

    return restore
