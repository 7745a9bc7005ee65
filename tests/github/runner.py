"""How the GitHub Actions runner reads a step: workflow commands in the log, and the
``$GITHUB_OUTPUT`` file. Written from the runner's documented rules, used as the oracle.

- Log lines are split on CR, LF and CRLF (.NET ``ReadLine``); a line whose text, after
  leading white space is trimmed, starts with ``::`` is a command
  ``::name k=v,k=v::message``; ``%25``, ``%0D``, ``%0A`` (and in properties ``%3A``,
  ``%2C``) are unescaped.
- ``$GITHUB_OUTPUT`` holds ``name=value`` lines and ``name<<DELIM`` … ``DELIM`` blocks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SPLIT = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class Command:
    name: str
    properties: dict[str, str]
    message: str


def _unescape_data(text: str) -> str:
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def _unescape_property(text: str) -> str:
    return (
        text.replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%3A", ":")
        .replace("%2C", ",")
        .replace("%25", "%")
    )


def commands(log: str) -> list[Command]:
    """Every workflow command the runner would execute from ``log``."""
    found = []
    for line in _SPLIT.split(log):
        text = line.lstrip()
        if not text.startswith("::"):
            continue
        end = text.find("::", 2)
        if end < 0:
            continue
        head, message = text[2:end], text[end + 2 :]
        name, _, props = head.partition(" ")
        properties = {}
        for pair in props.split(","):
            if "=" in pair:
                key, _, value = pair.partition("=")
                properties[key.strip()] = _unescape_property(value)
        found.append(Command(name, properties, _unescape_data(message)))
    return found


def outputs(text: str) -> dict[str, str]:
    """The step outputs in a ``$GITHUB_OUTPUT`` file (the last value of a name wins)."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, _, delimiter = line.partition("<<")
            block = []
            while lines[i] != delimiter:
                block.append(lines[i])
                i += 1
            i += 1
            values[name] = "\n".join(block)
        else:
            name, _, value = line.partition("=")
            values[name] = value
    return values
