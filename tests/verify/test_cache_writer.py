"""The cache's background writer: every entry written by the end of the run, failures contained."""

from __future__ import annotations

import stat
from pathlib import Path

from byokctl.classify import Classification, Outcome
from byokctl.verify._cache import CacheWriter, VerifyCache

OK = Classification(Outcome.OK, "the key works")


def test_entries_are_written_when_the_writer_closes(tmp_path: Path) -> None:
    cache = VerifyCache(tmp_path / "cache", lifetime=600)
    prints = [cache.fingerprint("openai", f"sk-writer-{i:04d}", "http://x", {}) for i in range(50)]
    with CacheWriter(cache) as writer:
        for fingerprint in prints:
            writer.put(fingerprint, OK, ("gpt-4o",))
    for fingerprint in prints:
        hit = cache.get(fingerprint)
        assert hit is not None
        assert hit.models == ("gpt-4o",)
        mode = (cache.directory / f"{fingerprint}.json").stat().st_mode
        assert stat.S_IMODE(mode) == 0o600
    assert list(cache.directory.glob(".entry.*")) == []  # no half-written file is left


def test_a_failed_entry_costs_only_that_entry(tmp_path: Path) -> None:
    cache = VerifyCache(tmp_path / "cache", lifetime=600)
    first, blocked, last = (
        cache.fingerprint("openai", f"sk-writer-{i:04d}", "http://x", {}) for i in range(3)
    )
    # A directory where the entry should go: the rename fails even for root.
    (cache.directory / f"{blocked}.json").mkdir()
    with CacheWriter(cache) as writer:
        for fingerprint in (first, blocked, last):
            writer.put(fingerprint, OK, ())
    assert cache.get(first) is not None
    assert cache.get(blocked) is None
    assert cache.get(last) is not None
    assert list(cache.directory.glob(".entry.*")) == []
