"""Verification results on disk, per credential fingerprint, for a limited time.

A repeated plan must not call the providers again, yet the cache must never become a
place where keys, or anything that lets one test guesses of a key, are stored. So an
entry is named by a keyed fingerprint: HMAC-SHA256 over provider, key, base URL, model
and every setting, under a random 32-byte secret kept in a 0600 file next to the cache.
Entries hold only the outcome, its detail and the model ids.

Only answers that describe the credentials (ok and sticky failures) are cached: a rate
limit or an outage says nothing about the next run.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import queue
import secrets
import stat
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from byokctl.classify import Classification, Outcome
from byokctl.errors import VerificationError

#: Default lifetime of an entry, in seconds.
DEFAULT_LIFETIME: Final = 600.0
LIFETIME_ENV: Final = "BYOK_VERIFY_CACHE_TTL"
KEY_FILE: Final = "hmac.key"
#: 2: answers are redacted of the request's key before they are cached; entries written
#: before (which could hold a key a gateway echoed in a model id) are never read.
_VERSION: Final = 2


@dataclass(frozen=True)
class CachedResult:
    """A cached verification: its classification, model ids and age in seconds."""

    classification: Classification
    models: tuple[str, ...]
    age: float


def default_cache_dir(env: Mapping[str, str]) -> Path:
    """``$XDG_CACHE_HOME/byokctl/verify``, else ``~/.cache/byokctl/verify``."""
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".cache")
    return Path(base) / "byokctl" / "verify"


def lifetime_from_env(env: Mapping[str, str]) -> float:
    """``BYOK_VERIFY_CACHE_TTL`` seconds (0 turns the cache off), else the default."""
    raw = env.get(LIFETIME_ENV, "").strip()
    if not raw:
        return DEFAULT_LIFETIME
    try:
        value = float(raw)
    except ValueError:
        raise VerificationError(
            f"{LIFETIME_ENV}={raw!r} is not a number of seconds",
            hint=f"set {LIFETIME_ENV} to e.g. 600, or 0 to turn the cache off",
        ) from None
    return max(0.0, value)


class VerifyCache:
    """A directory of verification results, named by keyed fingerprints."""

    def __init__(
        self,
        directory: Path,
        *,
        lifetime: float = DEFAULT_LIFETIME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.lifetime = lifetime
        self._clock = clock
        self._key: bytes | None = None

    @classmethod
    def default(
        cls, env: Mapping[str, str] = os.environ, *, clock: Callable[[], float] = time.time
    ) -> VerifyCache:
        """The cache at the default place, with the lifetime from the environment."""
        return cls(default_cache_dir(env), lifetime=lifetime_from_env(env), clock=clock)

    @property
    def enabled(self) -> bool:
        return self.lifetime > 0

    def _hmac_key(self) -> bytes:
        if self._key is not None:
            return self._key
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.directory / KEY_FILE
        try:
            info = path.stat()
            # A key others can read lets them test guesses against the entries' names.
            if info.st_mode & 0o077 or info.st_size != 32:
                path.unlink()
                raise FileNotFoundError
            self._key = path.read_bytes()
        except FileNotFoundError:
            key = secrets.token_bytes(32)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another byokctl created it at the same moment
                self._key = path.read_bytes()
                return self._key
            with os.fdopen(fd, "wb") as f:
                f.write(key)
            self._key = key
        return self._key

    def fingerprint(
        self, provider: str, key: str, base_url: str, settings: Mapping[str, str]
    ) -> str:
        """The keyed fingerprint of one credential as it would be verified."""
        material = json.dumps(
            [provider, key, base_url, sorted(settings.items())], separators=(",", ":")
        )
        return hmac.new(self._hmac_key(), material.encode(), hashlib.sha256).hexdigest()

    def get(self, fingerprint: str) -> CachedResult | None:
        """The live entry for ``fingerprint``, or ``None`` (missing, expired or unreadable)."""
        if not self.enabled:
            return None
        try:
            doc = json.loads((self.directory / f"{fingerprint}.json").read_text())
            age = self._clock() - float(doc["checked_at"])
            if doc["v"] != _VERSION or not 0 <= age < self.lifetime:
                return None
            return CachedResult(
                Classification(Outcome(doc["outcome"]), str(doc["detail"])),
                tuple(str(m) for m in doc["models"]),
                age,
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, fingerprint: str, result: Classification, models: tuple[str, ...]) -> None:
        """Store a result that describes the credentials (ok or sticky); others are skipped."""
        if not self.enabled or result.transient:
            return
        doc = {
            "v": _VERSION,
            "outcome": result.outcome.value,
            "detail": result.detail,
            "models": list(models),
            "checked_at": self._clock(),
        }
        self._hmac_key()  # creates the directory with its mode
        data = json.dumps(doc, separators=(",", ":")).encode()
        # Created 0600 and exclusively under a random name, then renamed over the entry:
        # a reader sees the old entry or the new one, never half of one. (What
        # tempfile.mkstemp does, in four system calls and no file object.)
        tmp = self.directory / f".entry.{secrets.token_hex(8)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
        try:
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            os.replace(tmp, self.directory / f"{fingerprint}.json")
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


class CacheWriter:
    """Writes a run's entries on one background thread, in the order they are given.

    An entry costs about 0.4 ms of file creation. Handing each one to
    :func:`asyncio.to_thread` cost three times that in thread hand-offs (a pool thread
    woken, a future, a wake-up of the event loop per entry) and competed with the
    requests for the CPU; a queue read by one thread costs a few microseconds per entry.
    Leaving the ``with`` block waits until every entry is written; an unwritable cache
    only costs the next run its provider calls.
    """

    def __init__(self, cache: VerifyCache) -> None:
        self._cache = cache
        self._queue: queue.SimpleQueue[tuple[str, Classification, tuple[str, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None

    def put(self, fingerprint: str, result: Classification, models: tuple[str, ...]) -> None:
        """Queue :meth:`VerifyCache.put` (never blocks)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._drain, name="byokctl-verify-cache", daemon=True
            )
            self._thread.start()
        self._queue.put((fingerprint, result, models))

    def _drain(self) -> None:
        while (entry := self._queue.get()) is not None:
            with contextlib.suppress(OSError):
                self._cache.put(*entry)

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
