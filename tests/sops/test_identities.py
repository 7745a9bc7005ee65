"""Age identities are found where sops finds them, loaded once, and never shown."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from byokctl.sops import decrypt_file, load_identities
from tests.sops.conftest import AgeKey, Case, clean_env, encrypt_cases


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory: pytest.TempPathFactory, sops_bin: Path, key1: AgeKey) -> Path:
    directory = tmp_path_factory.mktemp("identities")
    cases = [Case("ws", "api_key: secret-value-123\n")]
    return encrypt_cases(sops_bin, directory, cases, key1.recipient, clean_env(directory))["ws"]


def _write_key(path: Path, key: AgeKey) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# created: test\n# public key: {key.recipient}\n{key.secret}\n")
    return path


def test_sops_age_key_file(encrypted: Path, tmp_path: Path, key1: AgeKey) -> None:
    key_file = _write_key(tmp_path / "k.txt", key1)
    ids = load_identities(clean_env(tmp_path, SOPS_AGE_KEY_FILE=str(key_file)))
    assert decrypt_file(encrypted, identities=ids).via == "native"


def test_xdg_config_home_keys_file(encrypted: Path, tmp_path: Path, key1: AgeKey) -> None:
    env = clean_env(tmp_path)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    _write_key(tmp_path / "xdg" / "sops" / "age" / "keys.txt", key1)
    assert decrypt_file(encrypted, identities=load_identities(env)).data == {
        "api_key": "secret-value-123"
    }


def test_home_config_keys_file_when_xdg_unset(
    encrypted: Path, tmp_path: Path, key1: AgeKey
) -> None:
    env = clean_env(tmp_path)
    del env["XDG_CONFIG_HOME"]
    _write_key(tmp_path / ".config" / "sops" / "age" / "keys.txt", key1)
    assert decrypt_file(encrypted, identities=load_identities(env)).via == "native"


def test_key_command_runs_once_per_identities_object(
    encrypted: Path, tmp_path: Path, key1: AgeKey
) -> None:
    key_file = _write_key(tmp_path / "k.txt", key1)
    counter = tmp_path / "calls"
    script = (
        f"import pathlib; p = pathlib.Path({str(counter)!r}); "
        f"p.write_text(p.read_text() + 'x' if p.exists() else 'x'); "
        f"print(pathlib.Path({str(key_file)!r}).read_text())"
    )
    command = f"{shlex.quote(sys.executable)} -c {shlex.quote(script)}"
    ids = load_identities(clean_env(tmp_path, SOPS_AGE_KEY_CMD=command))
    assert not counter.exists()  # lazy: nothing runs until a decryption needs a key
    for _ in range(3):
        assert decrypt_file(encrypted, identities=ids).via == "native"
    assert counter.read_text() == "x"


def test_default_environment_is_os_environ(
    encrypted: Path, key1: AgeKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOPS_AGE_KEY", key1.secret)
    assert decrypt_file(encrypted).via == "native"


def test_keys_pooled_from_every_source(
    encrypted: Path, tmp_path: Path, key1: AgeKey, outsider: AgeKey
) -> None:
    key_file = _write_key(tmp_path / "k.txt", key1)
    env = clean_env(tmp_path, SOPS_AGE_KEY=outsider.secret, SOPS_AGE_KEY_FILE=str(key_file))
    ids = load_identities(env)
    assert decrypt_file(encrypted, identities=ids).via == "native"
    assert {i.recipient for i in ids.identities} == {key1.recipient, outsider.recipient}


def test_bad_key_line_is_a_problem_not_a_leak(tmp_path: Path, key1: AgeKey) -> None:
    garbled = key1.secret[:-3] + "zzz"
    ids = load_identities(clean_env(tmp_path, SOPS_AGE_KEY=garbled))
    assert ids.identities == ()
    assert ids.problems
    assert garbled not in " ".join(ids.problems)


def test_repr_never_shows_a_key(tmp_path: Path, key1: AgeKey) -> None:
    ids = load_identities(clean_env(tmp_path, SOPS_AGE_KEY=key1.secret))
    assert ids.identities
    assert "AGE-SECRET-KEY" not in repr(ids)
    assert "AGE-SECRET-KEY" not in repr(ids.identities)
