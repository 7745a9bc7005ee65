"""Tampering, missing and wrong keys, non-SOPS files: distinct errors that name the file
and never show a decrypted value."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from byokctl.errors import (
    DecryptionError,
    IdentityMismatchError,
    MacMismatchError,
    NoIdentityError,
    NotSopsFileError,
    SopsError,
)
from byokctl.sops import decrypt_file, is_sops_document, load_identities
from tests.sops.conftest import CANARY, CANARY_2, AgeKey, Case, clean_env, encrypt_cases

PLAIN = f"""\
name: acme
api_key: {CANARY}
backup_key: {CANARY_2}
note_unencrypted: visible
"""


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory, sops_bin: Path, key1: AgeKey) -> str:
    directory = tmp_path_factory.mktemp("tamper")
    files = encrypt_cases(
        sops_bin, directory, [Case("ws", PLAIN)], key1.recipient, clean_env(directory)
    )
    return files["ws"].read_text()


@pytest.fixture
def key1_env(key1: AgeKey, empty_home: Path) -> dict[str, str]:
    return clean_env(empty_home, SOPS_AGE_KEY=key1.secret)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ws.yaml"
    path.write_text(text)
    return path


def _flip_first_data_char(text: str, key: str) -> str:
    match = re.search(rf"^{key}: ENC\[AES256_GCM,data:(.)", text, re.MULTILINE)
    assert match
    replacement = "A" if match.group(1) != "A" else "B"
    return text[: match.start(1)] + replacement + text[match.end(1) :]


def _decrypt(path: Path, key: AgeKey, home: Path) -> object:
    return decrypt_file(path, identities=load_identities(clean_env(home, SOPS_AGE_KEY=key.secret)))


def _assert_clean(exc: SopsError, path: Path) -> None:
    text = f"{exc} {exc.hint or ''} {exc!r}"
    assert str(path) in str(exc)
    assert CANARY not in text and CANARY_2 not in text
    assert "AGE-SECRET-KEY" not in text


def test_untampered_file_decrypts_natively(
    original: str, tmp_path: Path, key1: AgeKey, empty_home: Path
) -> None:
    result = decrypt_file(
        _write(tmp_path, original),
        identities=load_identities(clean_env(empty_home, SOPS_AGE_KEY=key1.secret)),
    )
    assert result.via == "native"
    assert CANARY not in repr(result)


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("flipped_value_byte", DecryptionError),
        ("flipped_mac_byte", MacMismatchError),
        ("changed_unencrypted_value", MacMismatchError),
        ("swapped_values", DecryptionError),
        ("removed_key", MacMismatchError),
    ],
)
def test_tampering_is_reported(
    name: str, error: type[SopsError], original: str, tmp_path: Path, key1_env: dict[str, str]
) -> None:
    text = original
    if name == "flipped_value_byte":
        text = _flip_first_data_char(text, "api_key")
    elif name == "flipped_mac_byte":
        text = _flip_first_data_char(text, "    mac")
    elif name == "changed_unencrypted_value":
        text = text.replace("note_unencrypted: visible", "note_unencrypted: changed")
    elif name == "swapped_values":
        # Each value is bound to its key path (the additional data): moving one fails.
        api = re.search(r"^api_key: (.*)$", text, re.MULTILINE)
        backup = re.search(r"^backup_key: (.*)$", text, re.MULTILINE)
        assert api and backup
        text = text.replace(api.group(0), f"api_key: {backup.group(1)}").replace(
            backup.group(0), f"backup_key: {api.group(1)}"
        )
    elif name == "removed_key":
        text = re.sub(r"^backup_key: .*\n", "", text, flags=re.MULTILINE)
    assert text != original
    path = _write(tmp_path, text)

    with pytest.raises(error) as caught:
        decrypt_file(path, identities=load_identities(key1_env))
    _assert_clean(caught.value, path)


def test_no_identity_says_where_it_looked(original: str, tmp_path: Path, empty_home: Path) -> None:
    path = _write(tmp_path, original)
    with pytest.raises(NoIdentityError) as caught:
        decrypt_file(path, identities=load_identities(clean_env(empty_home)))
    message = str(caught.value)
    _assert_clean(caught.value, path)
    for place in ("SOPS_AGE_KEY", "SOPS_AGE_KEY_FILE", "SOPS_AGE_KEY_CMD", "sops/age/keys.txt"):
        assert place in message


def test_wrong_identity_names_the_recipients(
    original: str, tmp_path: Path, key1: AgeKey, outsider: AgeKey, empty_home: Path
) -> None:
    path = _write(tmp_path, original)
    with pytest.raises(IdentityMismatchError) as caught:
        _decrypt(path, outsider, empty_home)
    assert key1.recipient in str(caught.value)
    _assert_clean(caught.value, path)


def test_not_a_sops_file(tmp_path: Path, key1: AgeKey, empty_home: Path) -> None:
    path = _write(tmp_path, PLAIN)
    with pytest.raises(NotSopsFileError) as caught:
        _decrypt(path, key1, empty_home)
    _assert_clean(caught.value, path)


def test_missing_file_is_a_sops_error(tmp_path: Path) -> None:
    with pytest.raises(SopsError, match=r"missing\.yaml"):
        decrypt_file(tmp_path / "missing.yaml", identities=load_identities({}))


def test_is_sops_document_needs_no_key(original: str) -> None:
    assert is_sops_document(yaml.safe_load(original))
    assert not is_sops_document(yaml.safe_load(PLAIN))
    broken = yaml.safe_load(original)
    del broken["sops"]["mac"]
    assert not is_sops_document(broken)
    no_keys = yaml.safe_load(original)
    no_keys["sops"]["age"] = []
    assert not is_sops_document(no_keys)
