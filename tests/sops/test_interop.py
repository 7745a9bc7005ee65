"""Interop: files written by the real sops decrypt natively to exactly what sops says.

Each supported case must be served by the native path (``via == "native"``); each case
the native path does not support must be served by the binary, with the same answer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from byokctl.sops import decrypt_file, load_identities
from tests.sops.conftest import (
    CANARY,
    CANARY_2,
    AgeKey,
    Case,
    clean_env,
    encrypt_cases,
    first_difference,
    sops_decrypt,
)

WORKSPACE = f"""\
# yaml-language-server: $schema=../schemas/workspace.schema.json
apiVersion: byok/v1
kind: Workspace
metadata:
  name: acme-support  # the slug
  notify: [ops@acme.example, "oncall@acme.example"]
spec:
  enabled: openai
  providers:
    openai:
      model: gpt-4o
      api_key: {CANARY}
    azure_openai:
      # a comment inside a nested map
      model: gpt-4
      endpoint: https://acme.openai.azure.com
      api_version: "2024-06-01"
      deployment: gpt4-prod
      api_key: "{CANARY_2}"
"""

ALL_TYPES = (
    WORKSPACE
    + """\
types:
  string: plain text
  integer: 42
  negative: -7
  zero: 0
  float: 3.25
  float_whole: 2.0
  big_float: 1.0e+20
  tiny: 0.000001
  yes_true: true
  no_false: false
  timestamp: 2024-05-06T07:08:09Z
  offset_time: 2024-05-06T07:08:09+02:00
  date: 2024-05-06
  nothing: null
  empty: ""
  unicode: "héllo wörld ✓ 日本語 🎉"
  multiline: |
    first line
    second line: with a colon
  folded: >
    folded text
    continues here
  quoted_number: "12345"
lists:
  scalars: [a, 1, 2.5, true]
  maps:
    - name: first
      secret: one
    # a comment stored as a list element
    - name: second
      secret: two
  nested:
    - [x, y]
    - []
note_unencrypted: visible to all
settings_unencrypted:
  port: 8080
  ratio: 0.5
  flag: true
  label: plain
  quoted: "007"
  nothing:
empty_map: {}
"""
)

SELECTORS = """\
db_secret: hunter2
nested_secret:
  a: 1
  b: [x, 2.5]
plain: shown
model: gpt-4o
name: acme
count: 3
ratio: 0.75
enabled: false
api_key: sk-also-secret
deep:
  model: inner
  api_key: inner-secret
  list: [1, two]
"""

MULTI_DOC = f"""\
name: first
api_key: {CANARY}
---
name: second
values: [1, 2, 3]
id_unencrypted: 5
"""

SUPPORTED = [
    Case("all_types", ALL_TYPES),
    Case("encrypted_regex", SELECTORS, ("--encrypted-regex", "^(api_key|db_secret)$")),
    Case("encrypted_suffix", SELECTORS, ("--encrypted-suffix", "_secret")),
    Case("unencrypted_regex", SELECTORS, ("--unencrypted-regex", "^(model|name|deep)$")),
    Case(
        "unencrypted_suffix", SELECTORS + "note_plain: shown\n", ("--unencrypted-suffix", "_plain")
    ),
    Case(
        "mac_only_encrypted",
        SELECTORS,
        rule="mac_only_encrypted: true\nencrypted_regex: ^api_key$",
    ),
    Case("multi_document", MULTI_DOC),
]

FALLBACK = [
    Case(
        "merge_keys",
        "base: &b\n  model: gpt-4o\nprod:\n  <<: *b\n  api_key: x\n",
        ("--encrypted-regex", "^api_key$"),
        native=False,
    ),
    Case(
        "exotic_scalars",
        'mode_unencrypted: 0755\nwhen_unencrypted: 2024-01-01\nsecret: s\nhuge: "1e400"\n',
        native=False,
    ),
    Case(
        "comment_rule",
        "# sops:enc\nsecret: s\nplain: p\n",
        rule="encrypted_comment_regex: sops:enc",
        native=False,
    ),
    Case(
        "shamir_key_groups",
        f"api_key: {CANARY}\nname: acme\n",
        rule="shamir_threshold: 2\nkey_groups:\n  - age: [{key1}]\n  - age: [{key2}]",
        native=False,
    ),
]

CASES = SUPPORTED + FALLBACK


@pytest.fixture(scope="module")
def encrypted(
    tmp_path_factory: pytest.TempPathFactory, sops_bin: Path, key1: AgeKey, key2: AgeKey
) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("interop")
    env = clean_env(directory)
    return encrypt_cases(sops_bin, directory, CASES, f"{key1.recipient},{key2.recipient}", env)


@pytest.fixture
def both_keys_env(key1: AgeKey, key2: AgeKey, empty_home: Path) -> dict[str, str]:
    # Both keys: the Shamir case needs a key from each of its two groups.
    return clean_env(empty_home, SOPS_AGE_KEY=f"{key1.secret}\n{key2.secret}")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_native_equals_sops(
    case: Case, encrypted: dict[str, Path], sops_bin: Path, both_keys_env: dict[str, str]
) -> None:
    path = encrypted[case.name]
    env = both_keys_env

    result = decrypt_file(path, identities=load_identities(env))

    assert result.via == ("native" if case.native else "sops"), result.fallback_reason
    oracle = sops_decrypt(sops_bin, path, env)
    assert first_difference(list(result.documents), oracle) is None
    assert list(result.documents) == oracle
    assert result.data == result.documents[0]
    assert "sops" not in result.data


def test_every_value_type_is_read_as_sops_types_it(
    encrypted: dict[str, Path], key1: AgeKey, empty_home: Path
) -> None:
    env = clean_env(empty_home, SOPS_AGE_KEY=key1.secret)
    data = decrypt_file(encrypted["all_types"], identities=load_identities(env)).data
    types = data["types"]
    assert types["integer"] == 42 and isinstance(types["integer"], int)
    assert types["float"] == 3.25 and isinstance(types["float"], float)
    # sops (go-yaml) prints the float 2.0 as `2`, so `sops decrypt` gives an int: so must we.
    assert types["float_whole"] == 2 and type(types["float_whole"]) is int
    assert types["big_float"] == 1e20 and isinstance(types["big_float"], float)
    assert types["yes_true"] is True and types["no_false"] is False
    assert types["timestamp"].isoformat() == "2024-05-06T07:08:09+00:00"
    assert types["offset_time"].isoformat() == "2024-05-06T07:08:09+02:00"
    assert types["unicode"] == "héllo wörld ✓ 日本語 🎉"
    assert types["multiline"] == "first line\nsecond line: with a colon\n"
    assert types["quoted_number"] == "12345"
    assert data["lists"]["maps"] == [
        {"name": "first", "secret": "one"},
        {"name": "second", "secret": "two"},
    ]
    assert data["spec"]["providers"]["openai"]["api_key"] == CANARY


def test_binary_path_reads_what_sops_prints_as_go_yaml_meant_it(
    encrypted: dict[str, Path], key1: AgeKey, empty_home: Path
) -> None:
    # sops prints the string "1e400" bare (go-yaml quotes only what parses as a float64);
    # a YAML 1.2 reader would make it infinity.
    env = clean_env(empty_home, SOPS_AGE_KEY=key1.secret)
    result = decrypt_file(encrypted["exotic_scalars"], identities=load_identities(env))
    assert result.via == "sops"
    assert result.data["huge"] == "1e400"


def test_second_recipient_decrypts_natively(
    encrypted: dict[str, Path], key2: AgeKey, empty_home: Path
) -> None:
    env = clean_env(empty_home, SOPS_AGE_KEY=key2.secret)
    result = decrypt_file(encrypted["all_types"], identities=load_identities(env))
    assert result.via == "native"
    assert result.data["spec"]["providers"]["azure_openai"]["api_key"] == CANARY_2


def test_selector_rules_left_the_right_values_in_clear(encrypted: dict[str, Path]) -> None:
    text = encrypted["encrypted_regex"].read_text()
    assert "model: gpt-4o" in text and "hunter2" not in text
    mac_only = encrypted["mac_only_encrypted"].read_text()
    assert "mac_only_encrypted: true" in mac_only


def test_mac_only_encrypted_ignores_changes_to_clear_values(
    encrypted: dict[str, Path], tmp_path: Path, sops_bin: Path, key1: AgeKey, empty_home: Path
) -> None:
    # With mac_only_encrypted the MAC covers only encrypted values, so sops accepts an
    # edited clear value; the native path must agree rather than call it tampering.
    edited = tmp_path / "edited.yaml"
    edited.write_text(
        encrypted["mac_only_encrypted"].read_text().replace("plain: shown", "plain: x")
    )
    env = clean_env(empty_home, SOPS_AGE_KEY=key1.secret)
    result = decrypt_file(edited, identities=load_identities(env))
    assert result.via == "native"
    assert result.data["plain"] == "x"
    assert [result.data] == sops_decrypt(sops_bin, edited, env)


def test_content_argument_is_what_gets_decrypted(
    encrypted: dict[str, Path], key1: AgeKey, empty_home: Path, tmp_path: Path
) -> None:
    env = clean_env(empty_home, SOPS_AGE_KEY=key1.secret)
    content = encrypted["multi_document"].read_bytes()
    result = decrypt_file(
        tmp_path / "never-read.yaml", identities=load_identities(env), content=content
    )
    assert result.via == "native"
    assert [d["name"] for d in result.documents] == ["first", "second"]
