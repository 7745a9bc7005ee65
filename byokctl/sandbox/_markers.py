"""Which behaviour an API key asks for: the marker table, in one place.

The CLI prints this table, ``docs/sandbox.md`` documents it, and a test pins that the two
agree. Markers are case-insensitive substrings; the first row that matches wins, so
``flaky-invalid`` is an invalid key, not a flaky one.

A failure marker followed by ``-after-N`` (``sk-outage-after-3``) moves the failure into
streams: a streamed answer sends N deltas, then the failure as the provider's in-stream
error event; every call that does not stream answers as for a valid key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Behaviour(StrEnum):
    """What the sandbox does for a key."""

    VALID = "valid"
    INVALID = "invalid"
    NO_CREDITS = "no_credits"
    FORBIDDEN = "forbidden"
    RATE_LIMITED = "rate_limited"
    OUTAGE = "outage"
    SLOW = "slow"
    FLAKY = "flaky"


@dataclass(frozen=True)
class Marker:
    """One row of the table: the substrings that select a behaviour, and what it answers."""

    substrings: tuple[str, ...]
    behaviour: Behaviour
    answer: str


#: In match order: the first row whose substring occurs in the key wins.
MARKERS: tuple[Marker, ...] = (
    Marker(("invalid",), Behaviour.INVALID, "invalid or revoked key"),
    Marker(("nocredits", "no-credits"), Behaviour.NO_CREDITS, "out of credits / billing"),
    Marker(("forbidden",), Behaviour.FORBIDDEN, "permission denied (403)"),
    Marker(("ratelimited", "rate-limited"), Behaviour.RATE_LIMITED, "429, retry after 1 s"),
    Marker(("outage",), Behaviour.OUTAGE, "503 (Anthropic: 529 overloaded_error)"),
    Marker(("slow",), Behaviour.SLOW, "OK after --slow-seconds (default 5 s)"),
    Marker(("flaky",), Behaviour.FLAKY, "first 2 requests per provider and key: 503; then OK"),
)

#: How many requests of a ``flaky`` key fail before it answers OK.
FLAKY_FAILURES = 2

#: ``after-N`` in a key: its failure comes inside streams, after N deltas.
_AFTER = re.compile(r"after-(\d{1,6})(?!\d)", re.IGNORECASE)


def fail_after(key: str) -> int | None:
    """N of an ``after-N`` in ``key``; ``None`` when the key has none."""
    match = _AFTER.search(key)
    return int(match.group(1)) if match else None


def behaviour_for(key: str) -> Behaviour:
    """The behaviour ``key`` selects; :attr:`Behaviour.VALID` when no marker occurs in it."""
    lowered = key.lower()
    for marker in MARKERS:
        if any(s in lowered for s in marker.substrings):
            return marker.behaviour
    return Behaviour.VALID


def marker_table() -> str:
    """The table as aligned plain-text lines (for the terminal)."""
    rows = [(" or ".join(m.substrings), m.answer) for m in MARKERS]
    rows.append(("anything else", "valid: the provider's model list"))
    rows.append(("…-after-N", "with a failure marker: streams fail after N deltas, the rest is OK"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
