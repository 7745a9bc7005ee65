"""``byokctl sandbox``: serve the six providers' APIs on loopback until stopped."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import TextIO

from byokctl.errors import ByokError
from byokctl.sandbox import SANDBOX_URL_ENV, LoggedRequest, Sandbox, marker_table


def sandbox(
    *,
    port: int,
    latency: float,
    slow_seconds: float,
    out: TextIO,
    err: TextIO | None = None,
    stream_interval: float = 0.0,
) -> int:
    """Start the sandbox, print its ``export`` lines and key markers, serve until SIGINT/SIGTERM.

    ``out`` gets a shell snippet (exports, the table as comments); ``err`` (default stderr)
    gets one line per request answered. Must run in the main thread (it handles signals).
    """
    log = err if err is not None else sys.stderr
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        stop.set()

    def on_request(entry: LoggedRequest) -> None:
        print(f"{entry.method} {entry.path} -> {entry.status}", file=log, flush=True)

    server = Sandbox(
        port=port,
        latency=latency,
        slow_seconds=slow_seconds,
        stream_interval=stream_interval,
        on_request=on_request,
    )
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            server.start()
        except OSError as exc:
            raise ByokError(
                f"the sandbox cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}",
                hint="choose another --port, or --port 0 for a free one",
            ) from exc
        try:
            _print_banner(server, out)
            # A timed wait, so that the signal handler's flag is seen promptly everywhere.
            while not stop.wait(0.2):
                pass
        finally:
            server.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _print_banner(server: Sandbox, out: TextIO) -> None:
    lines = [
        f"# byokctl sandbox on {server.url} (latency {server.latency:g} s"
        + (
            f", {server.stream_interval:g} s between stream events"
            if server.stream_interval
            else ""
        )
        + "); Ctrl-C stops it",
        f"export {SANDBOX_URL_ENV}={server.url}",
        *(f"export {name}={url}" for name, url in server.base_urls().items()),
        "#",
        "# The API key chooses the answer (case-insensitive substring; first match wins):",
        *(f"#   {line}" for line in marker_table().splitlines()),
    ]
    print("\n".join(lines), file=out, flush=True)
