"""Tokens files, scopes, the bind rule, ``byokctl serve token add`` (no server needed)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from byokctl.errors import ByokError
from byokctl.serve import access_for, is_loopback
from byokctl.serve.auth import Sessions, Tokens, add_token, hash_token
from tests.cli.running import run_cli

ANY = "0.0.0.0"  # noqa: S104 - the bind the server must refuse


def test_a_tokens_file_line_is_a_digest_and_scopes(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    token = add_token(path, frozenset({"read", "admin"}))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    line = path.read_text()
    assert token not in line
    assert line == f"{hash_token(token)} read,admin\n"
    tokens = Tokens.load(path)
    assert tokens.scopes(token) == {"read", "admin"}
    assert tokens.scopes(token + "x") is None


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("abc read\n", "tokens:1:1", "64 lowercase hex"),
        ("# c\n" + "a" * 64 + " read, writer\n", "tokens:2:66", "unknown scope 'writer'"),
        ("a" * 64 + "\n", "tokens:1:65", "no scope"),
    ],
)
def test_a_bad_tokens_file_names_file_line_and_column(text: str, where: str, words: str) -> None:
    with pytest.raises(ByokError) as caught:
        Tokens.parse(text, path="tokens")
    assert caught.value.args[0].startswith(where)
    assert words in caught.value.args[0]


def test_a_non_loopback_bind_refuses_to_start_without_tokens(tmp_path: Path) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback(ANY) and not is_loopback("10.0.0.5")
    with pytest.raises(ByokError, match=r"refusing to serve on 0\.0\.0\.0 without tokens"):
        access_for(ANY, {})
    assert access_for("127.0.0.1", {}).open
    path = tmp_path / "tokens"
    add_token(path, frozenset({"read"}))
    assert not access_for(ANY, {"BYOK_SERVE_TOKENS_FILE": str(path)}).open
    empty = tmp_path / "empty"
    empty.write_text("# none yet\n")
    with pytest.raises(ByokError, match="holds no token"):
        access_for(ANY, {"BYOK_SERVE_TOKENS_FILE": str(empty)})


def test_the_cli_refuses_a_public_bind_without_tokens() -> None:
    code, _, err = run_cli("serve", "--host", ANY, "--store", "sqlite:///nowhere/state.db")
    assert code == 1
    assert "refusing to serve on 0.0.0.0 without tokens" in err
    assert "Traceback" not in err


def test_token_add_prints_the_token_once_and_keeps_its_digest(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    code, out, err = run_cli(
        "serve", "token", "add", "--scopes", "resolve,resolve:keys", "--tokens-file", str(path)
    )
    assert code == 0, err
    token = out.strip()
    assert token.startswith("byok_")
    assert token not in err
    assert Tokens.load(path).scopes(token) == {"resolve", "resolve:keys"}
    code, _, err = run_cli("serve", "token", "add", "--scopes", "root", "--tokens-file", str(path))
    assert code == 1
    assert "unknown scope 'root'" in err


def test_csrf_tokens_are_bound_to_the_caller() -> None:
    sessions = Sessions()
    sid = sessions.create(frozenset({"admin"}))
    assert sessions.scopes(sid) == {"admin"}
    token = sessions.csrf(sid)
    assert sessions.check_csrf(sid, token)
    assert not sessions.check_csrf("another", token)
    sessions.end(sid)
    assert sessions.scopes(sid) is None
