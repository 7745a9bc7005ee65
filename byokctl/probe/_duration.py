"""``--every`` durations: ``90s``, ``15m``, ``1h``, ``1d``, or a number of seconds. Pure."""

from __future__ import annotations

import re
from typing import Final

_UNITS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}
_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
#: A shorter interval would probe providers faster than any key changes.
MIN_INTERVAL: Final = 10.0


def parse_duration(text: str) -> float:
    """Seconds in ``text``; :class:`ValueError` (with what to write) when it is not one."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"{text!r} is not a duration; write e.g. 90s, 15m, 1h or 1d")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds < MIN_INTERVAL:
        raise ValueError(f"{text!r} is shorter than the minimum of {MIN_INTERVAL:g}s")
    return seconds
