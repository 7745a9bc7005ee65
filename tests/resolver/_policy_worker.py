"""A resolver process driven over stdin, for the fallback-policy tests across processes.

Usage: python -m tests.resolver._policy_worker STORE_URL COOLDOWN
(``BYOK_MASTER_KEY`` and, for e-mail, ``BYOK_SMTP_URL`` come from the environment.)

Manual refresh (``refresh_interval=None``): the test says when a process reads the store.
One command per line, one JSON answer per line:

- ``resolve WS FEATURE`` -> the route
- ``fail WS FEATURE OUTCOME`` -> resolve, report OUTCOME on it, then ``fallback``: the
  fallback route (or the route itself if it was not a provider's)
- ``ok WS FEATURE`` -> resolve, report success if it is a provider's: the route
- ``probe WS OUTCOME`` -> ``record_probe`` with the enabled provider's current fingerprint
- ``race WS FEATURE START_FILE`` -> wait for START_FILE, then resolve until unavailable:
  ``{"neo": n, "reason": last reason}``
- ``refresh``, ``flush`` (credits), ``deliver`` (owed e-mails), ``status``, ``quit``
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from byokctl.classify import Outcome
from byokctl.resolver import BreakerPolicy, Resolver, Route


def _route(route: Route) -> dict[str, Any]:
    return route.to_dict()


def main() -> None:
    url, cooldown = sys.argv[1], float(sys.argv[2])
    resolver = Resolver.from_url(
        url,
        refresh_interval=None,
        breaker=BreakerPolicy(threshold=1, cooldown=cooldown, probe_timeout=cooldown),
    )
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd, *args = line.split()
        answer: Any
        if cmd == "resolve":
            answer = _route(resolver.resolve(args[0], args[1]))
        elif cmd == "fail":
            route = resolver.resolve(args[0], args[1])
            if route.is_neo or route.is_unavailable:
                answer = _route(route)
            else:
                failure = resolver.report(route, args[2])
                answer = _route(resolver.fallback(route, failure))
        elif cmd == "ok":
            route = resolver.resolve(args[0], args[1])
            if not (route.is_neo or route.is_unavailable):
                resolver.report(route, "ok")
            answer = _route(route)
        elif cmd == "probe":
            snap = resolver._view.snap  # the test's stand-in for `byokctl probe`
            assert snap is not None
            live = snap.state.workspaces[args[0]].workspace
            fp = snap.fingerprints[(args[0], str(live.enabled))]
            c = resolver.record_probe(args[0], Outcome(args[1]), fingerprint=fp)
            answer = {"classified": None if c is None else str(c.outcome)}
        elif cmd == "race":
            start = Path(args[2])
            while not start.exists():
                time.sleep(0.001)
            neo, reason = 0, ""
            for _ in range(10_000):
                route = resolver.resolve(args[0], args[1])
                reason = route.reason
                if route.is_unavailable:
                    break
                neo += route.is_neo
            answer = {"neo": neo, "reason": reason}
        elif cmd == "refresh":
            resolver.refresh()
            answer = {}
        elif cmd == "flush":
            answer = {"written": resolver.flush()}
        elif cmd == "deliver":
            answer = {"sent": resolver.deliver_notifications()}
        elif cmd == "status":
            answer = [
                {
                    "workspace": st.workspace,
                    "provider": st.provider,
                    "reason": st.reason,
                    "neo_credits_left": st.neo_credits_left,
                    "episodes": [(e.provider, e.outcome) for e in st.episodes],
                }
                for st in resolver.status()
            ]
        elif cmd == "quit":
            break
        else:
            answer = {"error": f"unknown command {cmd}"}
        print(json.dumps(answer), flush=True)
    resolver.close()


if __name__ == "__main__":
    main()
