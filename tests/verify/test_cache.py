"""The verification cache: a second run within the lifetime makes no provider call."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from byokctl.model import DesiredState, Workspace
from byokctl.verify import Outcome, RetryPolicy, VerifyCache, list_models, verify_desired
from byokctl.verify._cache import BATCH_SUFFIX, default_cache_dir
from tests.verify.conftest import ProviderServer, Reply
from tests.verify.shapes import config, env_for, serve_ok

CANARY = "sk-canary-cache-99aa88bb77cc66dd"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _desired(n: int) -> DesiredState:
    workspaces = {
        f"ws{i}": Workspace(
            f"ws{i}", enabled="openai", providers={"openai": config("openai", f"{CANARY}-{i}")}
        )
        for i in range(n)
    }
    return DesiredState(workspaces, {})


def test_second_run_makes_zero_requests(provider_server: ProviderServer, tmp_path: Path) -> None:
    serve_ok(provider_server, "openai")
    clock = Clock()
    cache = VerifyCache(tmp_path / "cache", lifetime=600, clock=clock)
    env = env_for(provider_server)
    first = verify_desired(_desired(5), cache=cache, env=env)
    assert len(provider_server.seen()) == 5
    clock.now += 599
    second = verify_desired(_desired(5), cache=cache, env=env)
    assert len(provider_server.seen()) == 5  # no new request reached the server
    assert {c.outcome for checks in second.values() for c in checks} == {"ok"}
    assert all(c.detail.endswith("(cached)") for checks in second.values() for c in checks)
    assert [c.outcome for c in first["ws0"]] == [c.outcome for c in second["ws0"]]
    clock.now += 2  # past the lifetime
    verify_desired(_desired(5), cache=cache, env=env)
    assert len(provider_server.seen()) == 10


def test_cache_files_hold_no_key(provider_server: ProviderServer, tmp_path: Path) -> None:
    serve_ok(provider_server, "openai")
    directory = tmp_path / "cache"
    verify_desired(_desired(3), cache=VerifyCache(directory), env=env_for(provider_server))
    files = list(directory.iterdir())
    assert len(files) == 2  # the run's one batch of three entries, and the HMAC key
    for f in files:
        assert "canary" not in f.read_bytes().decode("latin-1")
        assert "canary" not in f.name
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_changed_key_or_endpoint_misses(provider_server: ProviderServer, tmp_path: Path) -> None:
    serve_ok(provider_server, "openai")
    cache = VerifyCache(tmp_path / "cache")
    env = env_for(provider_server)
    list_models(config("openai", CANARY), cache=cache, env=env)
    list_models(config("openai", CANARY + "x"), cache=cache, env=env)
    list_models(config("openai", CANARY, model="gpt-4o-mini"), cache=cache, env=env)
    env2 = {"BYOK_OPENAI_BASE_URL": provider_server.url + "/openai/v1/"}  # same after strip
    list_models(config("openai", CANARY), cache=cache, env=env2)
    assert len(provider_server.seen()) == 3


def test_a_changed_per_feature_model_misses(
    provider_server: ProviderServer, tmp_path: Path
) -> None:
    from dataclasses import replace

    serve_ok(provider_server, "openai")
    cache = VerifyCache(tmp_path / "cache")
    env = env_for(provider_server)
    plain = config("openai", CANARY)
    assert list_models(plain, cache=cache, env=env).classification.outcome is Outcome.OK
    bad = replace(plain, models={"summarize": "no-such-model-3"})
    got = list_models(bad, cache=cache, env=env)  # not the cached verdict of the default
    assert got.classification.outcome is Outcome.MODEL_NOT_AVAILABLE
    assert not got.cached
    assert list_models(bad, cache=cache, env=env).cached
    assert len(provider_server.seen()) == 2


def test_transient_results_are_not_cached(provider_server: ProviderServer, tmp_path: Path) -> None:
    provider_server.route("/openai/v1/models", Reply(503, b""))
    cache = VerifyCache(tmp_path / "cache")
    once = RetryPolicy(attempts=1)
    env = env_for(provider_server)
    assert (
        list_models(
            config("openai", CANARY), cache=cache, env=env, retry=once
        ).classification.outcome
        is Outcome.OUTAGE
    )
    list_models(config("openai", CANARY), cache=cache, env=env, retry=once)
    assert len(provider_server.seen()) == 2


def test_sticky_results_are_cached(provider_server: ProviderServer, tmp_path: Path) -> None:
    provider_server.route("/openai/v1/models", Reply(401, {"error": {"code": "invalid_api_key"}}))
    cache = VerifyCache(tmp_path / "cache")
    env = env_for(provider_server)
    for _ in range(2):
        got = list_models(config("openai", CANARY), cache=cache, env=env)
        assert got.classification.outcome is Outcome.INVALID_KEY
    assert len(provider_server.seen()) == 1


def test_lifetime_zero_disables(provider_server: ProviderServer, tmp_path: Path) -> None:
    serve_ok(provider_server, "openai")
    cache = VerifyCache.default({"XDG_CACHE_HOME": str(tmp_path), "BYOK_VERIFY_CACHE_TTL": "0"})
    for _ in range(2):
        list_models(config("openai", CANARY), cache=cache, env=env_for(provider_server))
    assert len(provider_server.seen()) == 2
    assert not (tmp_path / "byokctl").exists()


def test_default_location_follows_xdg() -> None:
    assert (
        default_cache_dir(os.environ) == Path(os.environ["XDG_CACHE_HOME"]) / "byokctl" / "verify"
    )


def test_readable_hmac_key_is_replaced(provider_server: ProviderServer, tmp_path: Path) -> None:
    serve_ok(provider_server, "openai")
    directory = tmp_path / "cache"
    list_models(
        config("openai", CANARY), cache=VerifyCache(directory), env=env_for(provider_server)
    )
    key_file = directory / "hmac.key"
    before = key_file.read_bytes()
    key_file.chmod(0o644)
    list_models(
        config("openai", CANARY), cache=VerifyCache(directory), env=env_for(provider_server)
    )
    assert key_file.read_bytes() != before
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(provider_server.seen()) == 2  # the old entries are unreachable


def test_shared_key_is_verified_once(provider_server: ProviderServer) -> None:
    serve_ok(provider_server, "openai")
    shared = config("openai", CANARY)
    desired = DesiredState(
        {f"w{i}": Workspace(f"w{i}", providers={"openai": shared}) for i in range(4)}, {}
    )
    got = verify_desired(desired, env=env_for(provider_server))
    assert len(got) == 4
    assert len(provider_server.seen()) == 1


def test_a_run_writes_one_batch(provider_server: ProviderServer, tmp_path: Path) -> None:
    # One file per run, not per entry: a thousand file creations cost the run its CPU.
    serve_ok(provider_server, "openai")
    directory = tmp_path / "cache"
    verify_desired(_desired(20), cache=VerifyCache(directory), env=env_for(provider_server))
    assert len(list(directory.glob(f"*{BATCH_SUFFIX}"))) == 1
    assert list(directory.glob(".batch.*")) == []  # no half-written file is left
    fresh = VerifyCache(directory)
    again = verify_desired(_desired(20), cache=fresh, env=env_for(provider_server))
    assert all(c.detail.endswith("(cached)") for checks in again.values() for c in checks)
    assert len(provider_server.seen()) == 20


def test_batches_of_another_process_are_seen(
    provider_server: ProviderServer, tmp_path: Path
) -> None:
    """A cache that has already read the directory sees a batch written after that."""
    serve_ok(provider_server, "openai")
    directory = tmp_path / "cache"
    env = env_for(provider_server)
    reader = VerifyCache(directory)
    list_models(config("openai", CANARY + "-a"), cache=reader, env=env)
    list_models(config("openai", CANARY + "-b"), cache=VerifyCache(directory), env=env)
    got = list_models(config("openai", CANARY + "-b"), cache=reader, env=env)
    assert got.cached
    assert len(provider_server.seen()) == 2


def test_expired_batches_are_deleted(provider_server: ProviderServer, tmp_path: Path) -> None:
    serve_ok(provider_server, "openai")
    clock = Clock()
    directory = tmp_path / "cache"
    env = env_for(provider_server)
    verify_desired(_desired(2), cache=VerifyCache(directory, lifetime=600, clock=clock), env=env)
    (old,) = directory.glob(f"*{BATCH_SUFFIX}")
    clock.now += 601
    later = VerifyCache(directory, lifetime=600, clock=clock)
    verify_desired(_desired(2), cache=later, env=env)
    assert len(provider_server.seen()) == 4
    assert not old.exists()
    assert len(list(directory.glob(f"*{BATCH_SUFFIX}"))) == 1  # the new run's batch


def test_entries_of_the_one_file_per_entry_layout_are_not_read(
    provider_server: ProviderServer, tmp_path: Path
) -> None:
    serve_ok(provider_server, "openai")
    directory = tmp_path / "cache"
    cache = VerifyCache(directory)
    cfg = config("openai", CANARY)
    fingerprint = cache.fingerprint(
        "openai", CANARY, env_for(provider_server)["BYOK_OPENAI_BASE_URL"], {"model": cfg.model}
    )
    entry = {"v": 2, "outcome": "ok", "detail": "old", "models": [], "checked_at": 1e12}
    (directory / f"{fingerprint}.json").write_text(json.dumps(entry))
    got = list_models(cfg, cache=cache, env=env_for(provider_server))
    assert not got.cached
    assert len(provider_server.seen()) == 1
