"""The cache's writer: a run's entries written as one batch at its end, failures contained."""

from __future__ import annotations

import stat
from pathlib import Path

from byokctl.classify import Classification, Outcome
from byokctl.verify._cache import BATCH_SUFFIX, CacheWriter, VerifyCache

OK = Classification(Outcome.OK, "the key works")
LIMITED = Classification(Outcome.RATE_LIMITED, "slow down")


def test_entries_are_written_when_the_writer_closes(tmp_path: Path) -> None:
    cache = VerifyCache(tmp_path / "cache", lifetime=600)
    prints = [cache.fingerprint("openai", f"sk-writer-{i:04d}", "http://x", {}) for i in range(50)]
    with CacheWriter(cache) as writer:
        for fingerprint in prints:
            writer.put(fingerprint, OK, ("gpt-4o",))
        assert list(cache.directory.glob(f"*{BATCH_SUFFIX}")) == []  # not before the end
    (batch,) = cache.directory.glob(f"*{BATCH_SUFFIX}")
    assert stat.S_IMODE(batch.stat().st_mode) == 0o600
    assert list(cache.directory.glob(".batch.*")) == []  # no half-written file is left
    fresh = VerifyCache(tmp_path / "cache", lifetime=600)
    for fingerprint in prints:
        hit = fresh.get(fingerprint)
        assert hit is not None
        assert hit.models == ("gpt-4o",)


def test_transient_results_are_left_out(tmp_path: Path) -> None:
    cache = VerifyCache(tmp_path / "cache", lifetime=600)
    ok, limited = (
        cache.fingerprint("openai", f"sk-writer-{i:04d}", "http://x", {}) for i in (1, 2)
    )
    with CacheWriter(cache) as writer:
        writer.put(ok, OK, ())
        writer.put(limited, LIMITED, ())
    fresh = VerifyCache(tmp_path / "cache", lifetime=600)
    assert fresh.get(ok) is not None
    assert fresh.get(limited) is None


def test_an_unwritable_cache_costs_only_that_batch(tmp_path: Path) -> None:
    cache = VerifyCache(tmp_path / "cache", lifetime=600)
    lost, kept = (cache.fingerprint("openai", f"sk-writer-{i:04d}", "http://x", {}) for i in (1, 2))
    # A file where the batch would be renamed to is not possible to predict; a file where
    # the directory must be is, and blocks every write even for root.
    moved = tmp_path / "moved"
    cache.directory.rename(moved)
    cache.directory.write_bytes(b"")
    with CacheWriter(cache) as writer:
        writer.put(lost, OK, ())  # closing must not raise
    cache.directory.unlink()
    moved.rename(cache.directory)
    with CacheWriter(cache) as writer:
        writer.put(kept, OK, ())
    fresh = VerifyCache(tmp_path / "cache", lifetime=600)
    assert fresh.get(lost) is None
    assert fresh.get(kept) is not None
