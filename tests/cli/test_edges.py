"""Command-line edges: option ranges are usage errors, libpq's URL spellings, honest messages."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from byokctl.store import MasterKey, open_store
from byokctl.store.runtime import open_runtime_store
from tests.cli.running import run_cli
from tests.pg import postgres_database, postgres_schema_url

__all__ = ["postgres_database"]  # the session fixture, used below


def _run(*argv: str) -> tuple[int, str]:
    code, out, err = run_cli(*argv)
    return code, out + err


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["sandbox", "--port", "70000"], "70000 is not in the range 0<=x<=65535"),
        (["sandbox", "--port", "-1"], "-1 is not in the range 0<=x<=65535"),
        (["sandbox", "--latency", "-1"], "-1.0 is not in the range 0<=x<=3600"),
        (["sandbox", "--stream-interval", "-1"], "-1.0 is not in the range 0<=x<=3600"),
        (["sandbox", "--slow-seconds", "-5"], "not in the range"),
        (["apply", "--lock-timeout", "-3"], "not in the range"),
        (["plan", "--parallelism", "0"], "not in the range"),
    ],
)
def test_out_of_range_options_are_usage_errors(argv: list[str], complaint: str) -> None:
    # Usage errors exit 1, never 2 (which plan --detailed-exitcode reserves for "changes").
    code, output = _run(*argv)
    assert code == 1, output
    assert complaint in output
    assert "unexpected error" not in output
    assert "bug" not in output


def test_postgres_scheme_is_accepted_as_libpq_accepts_it(postgres_database: str) -> None:
    url = postgres_schema_url(postgres_database)
    assert url.startswith("postgresql://")
    short = "postgres://" + url.removeprefix("postgresql://")
    key = MasterKey.generate()
    store = open_store(short, master_key=key)
    try:
        assert store.serial() == 0
    finally:
        store.close()
    open_runtime_store(short).close()


def test_postgres_scheme_works_on_the_command_line(
    postgres_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres_schema_url(postgres_database)
    monkeypatch.setenv("BYOK_MASTER_KEY", base64.b64encode(b"m" * 32).decode())
    short = "postgres://" + url.removeprefix("postgresql://")
    code, output = _run("state", "list", "--store", short)
    assert "unsupported store URL" not in output
    assert code in (0, 1), output


def test_models_without_an_identity_does_not_talk_of_planning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.config.test_rules import workspace

    monkeypatch.chdir(tmp_path)
    (tmp_path / "acme.yaml").write_text(workspace())
    code, output = _run("models", "acme.yaml", "openai")
    assert code == 1
    assert "nothing was planned" not in output
    assert "the provider was not asked" in output
