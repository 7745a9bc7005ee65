"""Verification results on disk, per credential fingerprint, for a limited time.

A repeated plan must not call the providers again, yet the cache must never become a
place where keys, or anything that lets one test guesses of a key, are stored. So an
entry is named by a keyed fingerprint: HMAC-SHA256 over provider, key, base URL, model
and every setting, under a random 32-byte secret kept in a 0600 file next to the cache.
Entries hold only the outcome, its detail and the model ids.

Only answers that describe the credentials (ok and sticky failures) are cached: a rate
limit or an outage says nothing about the next run.

A run's entries are written together, as one **batch** file (``<random>.entries``, 0600,
created under a temporary name and renamed, so a reader sees all of it or none). One file
per entry cost a file creation and a rename each: on a busy disk ~1 ms of system time per
entry, a thousand of them competing with the run's requests for the CPU. A reader indexes
every batch of the directory once, and again only when the directory has changed (another
process wrote a batch); a batch whose newest entry has outlived the lifetime is deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterable, Mapping
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
#: 3: a run's entries are one batch file; version 2's one-file-per-entry are never read.
_VERSION: Final = 3
BATCH_SUFFIX: Final = ".entries"

#: One entry: when it was checked, its outcome, detail and model ids.
_Entry = tuple[float, str, str, tuple[str, ...]]


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
        #: Fingerprint → the newest entry of every batch read or written.
        self._entries: dict[str, _Entry] = {}
        #: The batch files already indexed, and the directory's mtime when last scanned.
        self._read: set[str] = set()
        self._scanned: int | None = None

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
        return hmac.digest(self._hmac_key(), material.encode(), hashlib.sha256).hex()

    def _scan(self) -> None:
        """Index the batches written since the last scan (none when the directory is unchanged)."""
        try:
            changed = os.stat(self.directory).st_mtime_ns
        except OSError:
            return
        if changed == self._scanned:
            return
        self._scanned = changed
        with contextlib.suppress(OSError), os.scandir(self.directory) as found:
            names = [
                e.name for e in found if e.name.endswith(BATCH_SUFFIX) and e.name not in self._read
            ]
            for name in names:
                self._read.add(name)
                self._read_batch(self.directory / name)

    def _read_batch(self, path: Path) -> None:
        try:
            doc = json.loads(path.read_bytes())
            if doc["v"] != _VERSION:
                return
            entries = [
                (str(fp), (float(at), str(outcome), str(detail), tuple(str(m) for m in models)))
                for fp, (at, outcome, detail, models) in doc["entries"].items()
            ]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return  # unreadable or half a batch: its entries are misses
        if entries and self._clock() - max(e[1][0] for e in entries) >= self.lifetime:
            with contextlib.suppress(OSError):
                path.unlink()  # nothing in it is live any more
            return
        for fingerprint, entry in entries:
            self._remember(fingerprint, entry)

    def _remember(self, fingerprint: str, entry: _Entry) -> None:
        known = self._entries.get(fingerprint)
        if known is None or known[0] <= entry[0]:
            self._entries[fingerprint] = entry

    def get(self, fingerprint: str) -> CachedResult | None:
        """The live entry for ``fingerprint``, or ``None`` (missing, expired or unreadable)."""
        if not self.enabled:
            return None
        self._scan()
        entry = self._entries.get(fingerprint)
        if entry is None:
            return None
        checked_at, outcome, detail, models = entry
        age = self._clock() - checked_at
        if not 0 <= age < self.lifetime:
            return None
        try:
            return CachedResult(Classification(Outcome(outcome), detail), models, age)
        except ValueError:
            return None

    def put(self, fingerprint: str, result: Classification, models: tuple[str, ...]) -> None:
        """Store a result that describes the credentials (ok or sticky); others are skipped."""
        self.put_many([(fingerprint, result, models)])

    def put_many(self, results: Iterable[tuple[str, Classification, tuple[str, ...]]]) -> None:
        """Store the results that describe the credentials as one batch (one file)."""
        if not self.enabled:
            return
        now = self._clock()
        entries: dict[str, _Entry] = {
            fingerprint: (now, result.outcome.value, result.detail, models)
            for fingerprint, result, models in results
            if not result.transient
        }
        if not entries:
            return
        self._hmac_key()  # creates the directory with its mode
        data = json.dumps({"v": _VERSION, "entries": entries}, separators=(",", ":")).encode()
        name = f"{secrets.token_hex(16)}{BATCH_SUFFIX}"
        # Created 0600 and exclusively under a random name, then renamed into place: a
        # reader sees the whole batch or none of it.
        tmp = self.directory / f".batch.{secrets.token_hex(8)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
        try:
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            os.replace(tmp, self.directory / name)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._read.add(name)
        for fingerprint, entry in entries.items():
            self._remember(fingerprint, entry)


class CacheWriter:
    """Collects a run's entries and writes them as one batch when the run ends.

    An entry of its own cost a file creation and a rename (about 1 ms of system time on a
    busy disk) and, written from a thread, a hand-off of the interpreter lock per system
    call; a batch of a thousand entries is one file, a few milliseconds. Leaving the
    ``with`` block writes the batch, also when the run failed; an unwritable cache only
    costs the next run its provider calls.
    """

    def __init__(self, cache: VerifyCache) -> None:
        self._cache = cache
        self._pending: list[tuple[str, Classification, tuple[str, ...]]] = []

    def put(self, fingerprint: str, result: Classification, models: tuple[str, ...]) -> None:
        """Keep an entry for the batch (never blocks)."""
        self._pending.append((fingerprint, result, models))

    def close(self) -> None:
        """Write the pending entries as one batch."""
        pending, self._pending = self._pending, []
        if pending:
            with contextlib.suppress(OSError):
                self._cache.put_many(pending)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
