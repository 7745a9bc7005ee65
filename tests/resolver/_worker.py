"""A resolver process for the multi-process test: waits for a start file, then fails hard.

Usage: python -m tests.resolver._worker STORE_URL START_FILE FAILURES THREADS
(``BYOK_MASTER_KEY`` and ``BYOK_SMTP_URL`` come from the environment.)
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from byokctl.resolver import ProviderResponse, Resolver

INVALID = ProviderResponse(
    401, b'{"error":{"code":"invalid_api_key","message":"Incorrect API key"}}'
)


def main() -> None:
    url, start, failures, threads = (
        sys.argv[1],
        Path(sys.argv[2]),
        int(sys.argv[3]),
        int(sys.argv[4]),
    )
    resolver = Resolver.from_url(url, refresh_interval=0.05)
    route = resolver.resolve("acme", "assist")  # the BYOK route, before anyone failed
    assert route.provider == "openai", route
    print("ready", flush=True)
    while not start.exists():
        time.sleep(0.001)

    def fail(n: int) -> None:
        for _ in range(n):
            resolver.report(route, INVALID)

    workers = [threading.Thread(target=fail, args=(failures // threads,)) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    resolver.close()


if __name__ == "__main__":
    main()
