"""Who may do what: tokens (``BYOK_SERVE_TOKENS_FILE``), scopes, sessions, CSRF tokens.

The tokens file holds one line per token: the SHA-256 of the token in hex, then its
scopes (``read``, ``resolve``, ``resolve:keys``, ``admin``), separated by spaces or
commas; ``#`` starts a comment. The token itself is never stored: ``byokctl serve token
add`` prints it once and appends its digest. A presented token is hashed and compared
with every line in constant time (:func:`hmac.compare_digest`), so neither a match nor
its position shows in the timing.

``admin`` implies ``read``; ``resolve:keys`` implies ``resolve``. Without a tokens file
(loopback only) every request has :data:`OPEN_SCOPES`: everything but ``resolve:keys``,
so a key leaves the server only for a token that was given that scope.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from byokctl.errors import ByokError

TOKENS_FILE_ENV: Final = "BYOK_SERVE_TOKENS_FILE"
SCOPES: Final = ("read", "resolve", "resolve:keys", "admin")
#: What a scope brings with it.
IMPLIES: Final = {"admin": {"read"}, "resolve:keys": {"resolve"}}
#: The scopes of every request on a loopback server without a tokens file.
OPEN_SCOPES: Final = frozenset({"read", "resolve", "admin"})
#: How long a login session lasts.
SESSION_SECONDS: Final = 8 * 3600.0
_HEX = frozenset("0123456789abcdef")


def hash_token(token: str) -> str:
    """The SHA-256 hex digest a tokens file line holds for ``token``."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def expand(scopes: Iterable[str]) -> frozenset[str]:
    """``scopes`` with what each implies."""
    out = set(scopes)
    for scope in list(out):
        out |= IMPLIES.get(scope, set())
    return frozenset(out)


def parse_scopes(text: str, *, where: str = "--scopes") -> frozenset[str]:
    """``read,admin`` (commas or spaces) → the scopes; a ByokError names an unknown one."""
    names = [s for s in text.replace(",", " ").split() if s]
    if not names:
        raise ByokError(f"{where}: no scope given", hint=f"scopes are: {', '.join(SCOPES)}")
    for name in names:
        if name not in SCOPES:
            raise ByokError(
                f"{where}: unknown scope {name!r}", hint=f"scopes are: {', '.join(SCOPES)}"
            )
    return frozenset(names)


@dataclass(frozen=True)
class TokenLine:
    """One line of the tokens file: a token's digest and its scopes."""

    digest: str
    scopes: frozenset[str]


class Tokens:
    """The tokens of a tokens file; :meth:`scopes` answers for a presented token."""

    def __init__(self, lines: Iterable[TokenLine]) -> None:
        self._lines = tuple(lines)

    def __len__(self) -> int:
        return len(self._lines)

    def scopes(self, token: str) -> frozenset[str] | None:
        """The scopes of ``token`` (``None``: not a known token). Constant time per line."""
        digest = hash_token(token).encode()
        found: frozenset[str] | None = None
        for line in self._lines:  # every line, match or not: the timing tells nothing
            if hmac.compare_digest(digest, line.digest.encode()):
                found = line.scopes
        return None if found is None else expand(found)

    @classmethod
    def parse(cls, text: str, *, path: str) -> Tokens:
        """Read a tokens file's text; a ByokError names the file, line and column."""
        lines = []
        for number, raw in enumerate(text.splitlines(), start=1):
            body = raw.split("#", 1)[0].strip()
            if not body:
                continue
            digest, _, rest = body.partition(" ")
            where = f"{path}:{number}"
            if len(digest) != 64 or not set(digest) <= _HEX:
                raise ByokError(
                    f"{where}:1: expected the SHA-256 of a token (64 lowercase hex digits), "
                    "then its scopes",
                    hint="`byokctl serve token add --scopes read` prints a token and the line",
                )
            column = raw.index(rest.strip()) + 1 if rest.strip() else len(raw) + 1
            lines.append(TokenLine(digest, parse_scopes(rest, where=f"{where}:{column}")))
        return cls(lines)

    @classmethod
    def load(cls, path: Path) -> Tokens:
        """Read the tokens file at ``path``."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ByokError(
                f"cannot read the tokens file {path}: {exc.strerror or exc}",
                hint=f"{TOKENS_FILE_ENV} names a file of `<sha256> <scopes>` lines",
            ) from None
        return cls.parse(text, path=str(path))


def new_token() -> str:
    """A fresh random token (what ``byokctl serve token add`` prints once)."""
    return "byok_" + secrets.token_urlsafe(32)


def add_token(path: Path, scopes: frozenset[str]) -> str:
    """Append a new token's line to ``path`` (created 0600) and return the token."""
    token = new_token()
    line = f"{hash_token(token)} {','.join(s for s in SCOPES if s in scopes)}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(line)
    return token


class Sessions:
    """Login sessions (an HttpOnly cookie holds the id) and their CSRF tokens, in memory."""

    def __init__(self) -> None:
        self._clock = time.monotonic
        self._secret = secrets.token_bytes(32)
        self._sessions: dict[str, tuple[frozenset[str], float]] = {}
        self._lock = threading.Lock()

    def create(self, scopes: frozenset[str]) -> str:
        """A new session with ``scopes``; returns its id (the cookie's value)."""
        sid = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            for old in [k for k, (_, until) in self._sessions.items() if until < now]:
                del self._sessions[old]
            self._sessions[sid] = (scopes, now + SESSION_SECONDS)
        return sid

    def scopes(self, sid: str) -> frozenset[str] | None:
        """The scopes of a live session, or ``None``."""
        with self._lock:
            entry = self._sessions.get(sid)
        if entry is None or entry[1] < self._clock():
            return None
        return entry[0]

    def end(self, sid: str) -> None:
        """Log a session out."""
        with self._lock:
            self._sessions.pop(sid, None)

    def csrf(self, identity: str) -> str:
        """The CSRF token of a caller (a session id, a token's digest, or ``open``)."""
        return hmac.new(self._secret, identity.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, identity: str, token: str) -> bool:
        """Whether ``token`` is the caller's CSRF token (constant time)."""
        return hmac.compare_digest(self.csrf(identity).encode(), token.encode())
