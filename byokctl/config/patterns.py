"""String patterns with JSON Schema's meaning: ECMA-262 regular expressions.

A JSON Schema ``pattern`` is an ECMA-262 regular expression, and editors check the schema
that way. Python's ``re`` reads the same text differently in ways that matter for
identity: ``$`` also matches *before a trailing newline*, so ``^[a-z]+$`` accepts
``"acme\\n"`` and a second workspace could sit beside ``acme``. Every pattern byokctl
checks — the schema's and the rules' — goes through :func:`matches`, which uses an
ECMA-262 engine (``regress``), so ``$`` is the end of the value and nothing else.

Control characters are refused separately, in every non-secret string, by
:func:`first_control_character` (the rules module reports them).
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from typing import Final

import regress

# C0, DEL and C1 control characters, and the invisible characters that change how text
# prints (line/paragraph separators, bidirectional overrides and isolates, zero-width
# characters): two values that print alike must never be two different values.
_INVISIBLE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


@cache
def _compiled(pattern: str) -> regress.Regex:
    return regress.Regex(pattern)


def matches(pattern: str, value: str) -> bool:
    """Whether ``value`` matches the ECMA-262 ``pattern`` (JSON Schema's ``pattern``)."""
    return _compiled(pattern).find(value) is not None


def first_control_character(value: str) -> tuple[int, str] | None:
    """The index and a printable name (``U+001B ESCAPE``) of the first refused character."""
    found = _INVISIBLE.search(value)
    if found is None:
        return None
    char = found.group()
    name = unicodedata.name(char, "") or _C0_NAMES.get(char, "control character")
    return found.start(), f"U+{ord(char):04X} {name}".rstrip()


# unicodedata has no names for control characters; these are the ones people type by mistake.
_C0_NAMES: Final = {
    "\x00": "NULL",
    "\x07": "BELL",
    "\x08": "BACKSPACE",
    "\t": "TAB",
    "\n": "LINE FEED (a trailing newline?)",
    "\r": "CARRIAGE RETURN",
    "\x1b": "ESCAPE",
    "\x7f": "DELETE",
}
