"""Finding, creating and handling the master key."""

from __future__ import annotations

import base64
import pickle
import stat
from pathlib import Path

import pytest

from byokctl.errors import MasterKeyError
from byokctl.store import MasterKey, load_master_key, save_master_key

LOCAL = "sqlite:///.byok/state.db"


def test_inline_key(tmp_path: Path) -> None:
    key = MasterKey.generate()
    loaded = load_master_key(
        {"BYOK_MASTER_KEY": key.to_base64()}, store_url=LOCAL, byok_dir=tmp_path / ".byok"
    )
    assert loaded.key == key
    assert loaded.source == "BYOK_MASTER_KEY"
    assert not loaded.created
    assert not (tmp_path / ".byok").exists()


def test_key_file(tmp_path: Path) -> None:
    key = MasterKey.generate()
    path = tmp_path / "keys" / "k"
    save_master_key(path, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_master_key(
        {"BYOK_MASTER_KEY_FILE": str(path)}, store_url="postgresql://h/db", byok_dir=tmp_path
    )
    assert loaded.key == key
    with pytest.raises(FileExistsError):
        save_master_key(path, MasterKey.generate())
    save_master_key(path, MasterKey.generate(), replace=True)
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_local_default_creates_a_key_once(tmp_path: Path) -> None:
    byok = tmp_path / ".byok"
    first = load_master_key({}, store_url=LOCAL, byok_dir=byok)
    assert first.created
    assert stat.S_IMODE((byok / "master.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(byok.stat().st_mode) == 0o700
    second = load_master_key({}, store_url=LOCAL, byok_dir=byok)
    assert not second.created
    assert second.key == first.key


@pytest.mark.parametrize("url", ["postgresql://h/db", "sqlite:////elsewhere/state.db"])
def test_no_key_outside_the_local_default_is_an_error(tmp_path: Path, url: str) -> None:
    with pytest.raises(MasterKeyError, match="no master key") as excinfo:
        load_master_key({}, store_url=url, byok_dir=tmp_path / ".byok")
    assert "BYOK_MASTER_KEY" in (excinfo.value.hint or "")
    assert not (tmp_path / ".byok").exists()


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("not base64!", "not valid base64"),
        (base64.b64encode(b"short").decode(), "decodes to 5 bytes"),
    ],
)
def test_bad_keys_are_clear_errors(tmp_path: Path, value: str, match: str) -> None:
    with pytest.raises(MasterKeyError, match=match) as excinfo:
        load_master_key({"BYOK_MASTER_KEY": value}, store_url=LOCAL, byok_dir=tmp_path)
    assert value not in str(excinfo.value)


def test_both_sources_is_an_error(tmp_path: Path) -> None:
    key = MasterKey.generate().to_base64()
    env = {"BYOK_MASTER_KEY": key, "BYOK_MASTER_KEY_FILE": "/x"}
    with pytest.raises(MasterKeyError, match="both"):
        load_master_key(env, store_url=LOCAL, byok_dir=tmp_path)


def test_unreadable_key_file(tmp_path: Path) -> None:
    with pytest.raises(MasterKeyError, match="cannot read"):
        load_master_key(
            {"BYOK_MASTER_KEY_FILE": str(tmp_path / "missing")}, store_url=LOCAL, byok_dir=tmp_path
        )
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe" * 20)
    with pytest.raises(MasterKeyError, match="not base64 text"):
        load_master_key({"BYOK_MASTER_KEY_FILE": str(binary)}, store_url=LOCAL, byok_dir=tmp_path)


def test_master_key_never_shows_its_value() -> None:
    key = MasterKey.generate()
    assert key.to_base64() not in repr(key)
    assert repr(key) == f"MasterKey(key_id={key.key_id})"
    assert len(key.key_id) == 16
    assert key.key_id not in key.to_base64()
    with pytest.raises(TypeError):
        pickle.dumps(key)
    assert MasterKey.from_base64(key.to_base64(), source="x").key_id == key.key_id
