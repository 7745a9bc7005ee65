"""A resolver process that reports when its route for ``acme`` changes (propagation tests).

Usage: python -m tests.resolver._watcher STORE_URL REFRESH_INTERVAL LISTEN(0|1)
(``BYOK_MASTER_KEY`` and optionally ``BYOK_SMTP_URL`` come from the environment.)

Prints ``ready``, then one line per change it sees: ``seen PROVIDER REASON T`` where T
is ``time.monotonic()`` (one clock for every process on Linux). Reads commands on
stdin: ``fail`` reports an invalid key on the current route and prints ``reported T``
(T after the report returned, i.e. after its transaction committed); ``quit`` (or
end of input) closes the resolver and exits.
"""

from __future__ import annotations

import sys
import threading
import time

from byokctl.resolver import ProviderResponse, Resolver

WORKSPACE = "acme"
INVALID = ProviderResponse(
    401, b'{"error":{"code":"invalid_api_key","message":"Incorrect API key"}}'
)


def _say(line: str, lock: threading.Lock) -> None:
    with lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _seconds_or_none(text: str) -> float | None:
    return None if text == "none" else float(text)


def main() -> None:
    url, interval, listen = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "1"
    # An optional 4th argument: max_staleness in seconds, or "none".
    extra = {} if len(sys.argv) < 5 else {"max_staleness": _seconds_or_none(sys.argv[4])}
    resolver = Resolver.from_url(url, refresh_interval=interval, listen=listen, **extra)
    out = threading.Lock()
    stop = threading.Event()

    def watch() -> None:
        last: tuple[str, str] | None = None
        while not stop.is_set():
            route = resolver.peek(WORKSPACE, "assist")
            state = (route.provider, route.reason)
            if state != last:
                _say(f"seen {route.provider} {route.reason} {time.monotonic():.6f}", out)
                last = state
            time.sleep(0.0005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    _say("ready", out)
    for line in sys.stdin:
        command = line.strip()
        if command == "fail":
            route = resolver.resolve(WORKSPACE, "assist")
            if not route.is_neo:
                resolver.report(route, INVALID)
            _say(f"reported {time.monotonic():.6f}", out)
        elif command == "quit":
            break
    stop.set()
    watcher.join()
    resolver.close()


if __name__ == "__main__":
    main()
