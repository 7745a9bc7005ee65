"""Differential test: the native path's verdict against the real sops binary's.

The rule (SPEC §4): the native path may refuse more than sops (it then defers to the
binary), but it never accepts a file sops refuses, and what it accepts decrypts to exactly
what ``sops decrypt`` prints. Seeds are written by the real ``sops encrypt`` in this run;
hypothesis mutates them as a hand editor or an attacker would (edit, insert, delete and
reorder values, list items and comment items, forge ``ENC[...,type:comment]`` items,
flip types, change ``lastmodified``, tamper with the MAC) and both paths judge each file.
"""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from byokctl.errors import DecryptionError, MacMismatchError, SopsError
from byokctl.sops import _native, decrypt_file, load_identities
from byokctl.sops._identities import Identities
from tests.sops.conftest import (
    CANARY,
    CANARY_2,
    AgeKey,
    Case,
    SopsOutputLoader,
    clean_env,
    encrypt_cases,
    first_difference,
)

WORKSPACE = f"""\
# yaml-language-server: $schema=../schemas/workspace.schema.json
apiVersion: byok/v1
kind: Workspace
metadata:
  name: acme-support  # the slug
  notify:
    - ops@acme.example
    # a comment in a list sops leaves in clear
    - oncall@acme.example
  labels: {{}}
spec:
  enabled: openai
  fallback: null
  providers:
    openai:
      model: gpt-4o
      api_key: {CANARY}
    azure_openai:
      # a comment inside a nested map
      model: gpt-4
      endpoint: https://acme.openai.azure.com
      api_version: "2024-06-01"
      api_key: "{CANARY_2}"
  tiers:
    - [gold, 1, 2.5]
    - []
    - - nested
      - [deeper, true]
"""

EVERYTHING = f"""\
name: acme
api_key: {CANARY}
count: 42
negative: -7
ratio: 0.25
whole: 2.0
big: 1.0e+20
flag: true
off: false
when: 2024-05-06T07:08:09Z
offset: 2024-05-06T07:08:09+02:00
nothing: null
empty: ""
quoted: "12345"
utc_text: "2024-05-06T07:08:09+00:00"
huge_text: "1e400"
unicode: "héllo ✓"
multiline: |
  first line
  second line
empty_map: {{}}
empty_list: []
items:
  # a comment stored as an encrypted list item
  - one
  - 2
  # another one
  - 3.5
  - null
  - false
  - [x, [y, z], []]
  - name: first
    secret: s1
  # a comment before a map item
  - name: second
    secret: s2
  # a trailing comment
nested:
  deep:
    list: [a, b]
    map: {{k: v}}
"""

MIXED = f"""\
name: mixed
api_key: {CANARY}
note_unencrypted: visible
settings_unencrypted:
  port: 8080
  ratio: 0.5
  flag: true
  nothing: null
  labels:
    - one
    # a clear comment
    - two
    - [3, 4]
secrets:
  # an encrypted comment
  - {CANARY_2}
  - second
"""

MAC_ONLY = f"""\
name: mac-only
api_key: {CANARY}
plain: shown
list:
  - a
  # a comment in a clear list
  - b
secrets:
  - s1
  # an encrypted comment
  - s2
"""

MULTI_DOC = f"""\
name: first
api_key: {CANARY}
list: [a, b]
---
name: second
values:
  - 1
  # a comment in the second document
  - [2, 3]
id_unencrypted: 5
"""

SEEDS = [
    Case("workspace", WORKSPACE, ("--encrypted-regex", "^api_key$")),
    Case("workspace_regex", WORKSPACE, ("--unencrypted-regex", "^(name|notify|model|tiers)$")),
    Case("multi_document", MULTI_DOC),
    Case("everything", EVERYTHING),
    Case("mixed", MIXED),
    Case(
        "mac_only", MAC_ONLY, rule="mac_only_encrypted: true\nencrypted_regex: ^(api_key|secrets)$"
    ),
]

ENC_RE = re.compile(r"ENC\[AES256_GCM,data:[^,\]]*,iv:[^,\]]+,tag:[^,\]]+,type:(\w+)\]")
TYPES = ["str", "int", "float", "bool", "time", "comment", "bytes", "int64"]


def _forged(data: bytes, kind: str) -> str:
    """An ENC value no key made: the MAC or the AEAD tag must give it away."""
    iv = base64.b64encode(hashlib.sha256(data).digest()).decode()
    tag = base64.b64encode(hashlib.md5(data).digest()).decode()  # noqa: S324 - filler bytes
    return f"ENC[AES256_GCM,data:{base64.b64encode(data).decode()},iv:{iv},tag:{tag},type:{kind}]"


# What an editor may type. Values go-yaml and PyYAML read differently are included on
# purpose: the native path must defer on them, not guess.
PLAIN_VALUES = [
    "x", "ops@acme.example", "42", "-7", "0", "3.5", "2.0", "1.0e+20", "true", "false",
    "null", "~", '""', "''", '"quoted"', "yes", "0755", "1e3", "2024-01-01",
    "2024-05-06T07:08:09Z", "[]", "{}", "[a, 1]", "{k: v}", '"ENC[not really]"',
    _forged(b"forged comment", "comment"), _forged(b"forged", "str"),
    "!!null x", "!!str", "!!str abc", "!!int 5", "!!binary AAAA", "&anchor x", "*anchor",
    "a # trailing comment", "'it''s'", '"tab\\there"',
]  # fmt: skip
TIMESTAMPS = [
    "2024-05-06T07:08:09Z", "2024-05-06T07:08:09+00:00", "2030-01-01T00:00:00Z",
    "2024-05-06T07:08:09.5Z", "not a time",
]  # fmt: skip

# Lines to put into (or over) the sops block: go-yaml decodes it into a typed struct.
META_LINES = [
    "mac_only_encrypted: true", "mac_only_encrypted: yes", "mac_only_encrypted: 'false'",
    "mac_only_encrypted: false", "mac_only_encrypted: 1", "mac_only_encrypted: ~",
    "version: 3.11", "version: v3.11.0", "version: ''", "shamir_threshold: 1",
    "pgp: 5", "pgp: []", "key_groups: ''", "unencrypted_suffix: _zzz",
    "unencrypted_suffix: ''", "encrypted_regex: ^nothing$", "foo: bar",
    "pgp:\n        - created_at: nope\n          enc: x\n          fp: ABCD",
]  # fmt: skip
_META_LINE = re.compile(r"^    ([a-z_]+): (?!\|).*$", re.MULTILINE)

_ITEM = re.compile(r"^(\s*)- (?!.*: )(.*)$")  # a list item that is a scalar
_KEY_VALUE = re.compile(r"^(\s*)([A-Za-z_][\w-]*): (?![|>])(\S.*)$")
_LASTMODIFIED = re.compile(r'^(\s*lastmodified: )"?([^"\n]*)"?$', re.MULTILINE)
_MAC = re.compile(r"^(\s*mac: ENC\[AES256_GCM,data:)(.)", re.MULTILINE)
_STANZA_LINE = re.compile(r"^ {12}[A-Za-z0-9+/]{40,}$", re.MULTILINE)
_RECIPIENT = re.compile(r"^(\s*- recipient: )(\S+)$", re.MULTILINE)


@dataclass
class Document:
    """An encrypted file as lines: the data part (mutated) and the sops block after it."""

    data: list[str]
    meta: str

    @classmethod
    def parse(cls, text: str) -> Document:
        head, sep, tail = text.partition("\nsops:\n")
        assert sep, "a seed must have its sops block last"
        return cls(head.split("\n"), sep + tail)

    def text(self) -> str:
        return "\n".join(self.data) + self.meta

    def leaves(self) -> list[int]:
        return [
            i for i, line in enumerate(self.data) if _ITEM.match(line) or _KEY_VALUE.match(line)
        ]

    def items(self) -> list[int]:
        return [i for i, line in enumerate(self.data) if _ITEM.match(line)]

    def encrypted_values(self) -> list[str]:
        return [m.group(0) for line in self.data for m in ENC_RE.finditer(line)]


def _set_value(line: str, value: str) -> str:
    item = _ITEM.match(line)
    if item:
        return f"{item.group(1)}- {value}"
    pair = _KEY_VALUE.match(line)
    assert pair
    return f"{pair.group(1)}{pair.group(2)}: {value}"


def _get_value(line: str) -> str:
    item = _ITEM.match(line)
    if item:
        return item.group(2)
    pair = _KEY_VALUE.match(line)
    assert pair
    return pair.group(3)


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


@st.composite
def _value(draw: st.DrawFn, doc: Document) -> str:
    """A value to write: typed plain text, a forged ENC, or a copy of a real ciphertext."""
    copies = doc.encrypted_values()
    choice = draw(st.sampled_from(["plain", "copy", "copy_as"] if copies else ["plain"]))
    if choice == "plain":
        return draw(st.sampled_from(PLAIN_VALUES))
    copied = draw(st.sampled_from(copies))
    if choice == "copy_as":  # a real ciphertext with its type flipped
        copied = re.sub(r"type:\w+\]$", f"type:{draw(st.sampled_from(TYPES))}]", copied)
    return copied


@st.composite
def _mutation(draw: st.DrawFn, doc: Document) -> str:
    """Apply one mutation to ``doc`` in place; return its name for the statistics."""
    leaves, items = doc.leaves(), doc.items()
    kinds = ["edit", "delete", "swap", "flip_type", "yaml_comment", "lastmodified", "mac"]
    kinds += ["rename_key", "requote"]  # changes sops's MAC does not see, or should not
    kinds += ["meta_add", "meta_drop", "age_stanza", "age_recipient", "mac_type"]
    kinds += ["insert_item", "move_item"] if items else []
    kind = draw(st.sampled_from(kinds))
    if kind == "edit" and leaves:
        at = draw(st.sampled_from(leaves))
        doc.data[at] = _set_value(doc.data[at], draw(_value(doc)))
    elif kind == "insert_item":
        at = draw(st.sampled_from(items))
        doc.data.insert(at + 1, f"{_indent(doc.data[at])}- {draw(_value(doc))}")
    elif kind == "move_item":
        source, target = draw(st.sampled_from(items)), draw(st.sampled_from(items))
        line = doc.data.pop(source)
        doc.data.insert(
            target, f"{_indent(doc.data[min(target, len(doc.data) - 1)])}{line.lstrip()}"
        )
    elif kind == "delete" and leaves:
        del doc.data[draw(st.sampled_from(leaves))]
    elif kind == "swap" and leaves:
        at = draw(st.sampled_from(leaves))
        other = min(at + 1, len(doc.data) - 1)
        doc.data[at], doc.data[other] = doc.data[other], doc.data[at]
    elif kind == "flip_type":
        with_enc = [i for i, line in enumerate(doc.data) if ENC_RE.search(line)]
        if with_enc:
            at = draw(st.sampled_from(with_enc))
            new = draw(st.sampled_from(TYPES))
            doc.data[at] = re.sub(r"type:\w+\]", f"type:{new}]", doc.data[at], count=1)
    elif kind == "yaml_comment" and leaves:
        # A YAML comment that sops tries to decrypt: #ENC[...] of some type.
        at = draw(st.sampled_from(leaves))
        doc.data.insert(at, f"{_indent(doc.data[at])}#{draw(_value(doc))}")
    elif kind == "rename_key":
        # The MAC covers values only; a key is bound only through encrypted values' paths.
        pairs = [i for i in leaves if _KEY_VALUE.match(doc.data[i])]
        if pairs:
            at = draw(st.sampled_from(pairs))
            doc.data[at] = re.sub(r"^(\s*[\w-]+):", r"\1x:", doc.data[at], count=1)
    elif kind == "requote" and leaves:
        at = draw(st.sampled_from(leaves))
        value = _get_value(doc.data[at])
        if not value.startswith(("'", '"', "[", "{")):
            doc.data[at] = _set_value(doc.data[at], f"'{value}'")
    elif kind == "lastmodified":
        # Other instants, and the same instant spelled another way (Go re-formats it
        # before using it as the MAC's additional data, so sops accepts some of those).
        current = _LASTMODIFIED.search(doc.meta)
        same = current.group(2).removesuffix("Z") if current else "2024-05-06T07:08:09"
        variants = [f"{same}+00:00", f"{same}.0Z", f"{same}-00:00"]
        stamp = draw(st.sampled_from(TIMESTAMPS + variants))
        doc.meta = _LASTMODIFIED.sub(lambda m: f'{m.group(1)}"{stamp}"', doc.meta, count=1)
    elif kind == "meta_add":
        line = draw(st.sampled_from(META_LINES))
        doc.meta = doc.meta.replace("\nsops:\n", f"\nsops:\n    {line}\n", 1)
    elif kind == "meta_drop":
        fields = [m.group(0) for m in _META_LINE.finditer(doc.meta)]
        if fields:
            dropped = draw(st.sampled_from(fields))
            doc.meta = doc.meta.replace(dropped + "\n", "", 1)
    elif kind == "age_stanza":
        # A damaged data-key stanza: sops tries the next one, and so must the native path.
        lines = list(_STANZA_LINE.finditer(doc.meta))
        if lines:
            hit = draw(st.sampled_from(lines))
            text = hit.group(0)
            flipped = text[:20] + ("B" if text[20] == "A" else "A") + text[21:]
            doc.meta = doc.meta[: hit.start()] + flipped + doc.meta[hit.end() :]
    elif kind == "age_recipient":
        # The recipient is a label sops never checks against the stanza.
        labels = list(_RECIPIENT.finditer(doc.meta))
        if labels:
            hit = draw(st.sampled_from(labels))
            other = draw(st.sampled_from([m.group(2) for m in labels] + ["age1nobody"]))
            doc.meta = doc.meta[: hit.start(2)] + other + doc.meta[hit.end(2) :]
    elif kind == "mac":
        doc.meta = _MAC.sub(lambda m: m.group(1) + ("A" if m.group(2) != "A" else "B"), doc.meta)
    elif kind == "mac_type":
        new_type = draw(st.sampled_from(TYPES))
        doc.meta = re.sub(r"(\n\s*mac: ENC\[.*type:)\w+\]", rf"\g<1>{new_type}]", doc.meta, count=1)
    return kind


@dataclass(frozen=True)
class Verdict:
    """What one side said: accepted (with the documents) or refused (and how)."""

    accepted: bool
    documents: list[Any] | None = None
    how: str = ""


class Oracle:
    """The sops binary, called once per distinct file content (hypothesis repeats some)."""

    def __init__(self, sops_bin: Path, env: Mapping[str, str]) -> None:
        self._sops_bin = sops_bin
        self._env = dict(env)
        self._seen: dict[bytes, Verdict] = {}
        self.calls = 0

    def __call__(self, content: bytes) -> Verdict:
        if content not in self._seen:
            self.calls += 1
            done = subprocess.run(
                [str(self._sops_bin), "decrypt", "--input-type", "yaml", "--output-type", "yaml"],
                input=content,
                env=self._env,
                capture_output=True,
                check=False,
            )
            if done.returncode != 0:
                self._seen[content] = Verdict(False, how=f"exit {done.returncode}")
            else:
                try:
                    documents = list(yaml.load_all(done.stdout, Loader=SopsOutputLoader))
                except yaml.YAMLError:
                    self._seen[content] = Verdict(True, None, "unreadable output")
                else:
                    self._seen[content] = Verdict(True, documents)
        return self._seen[content]


def native_verdict(content: bytes, identities: Identities) -> Verdict:
    try:
        documents = _native.decrypt(Path("mutated.yaml"), content, identities)
    except _native.NeedsBinary as deferred:
        return Verdict(False, how=f"deferred: {deferred.reason}")
    except SopsError as exc:
        return Verdict(False, how=f"refused: {type(exc).__name__}")
    return Verdict(True, documents)


@pytest.fixture(scope="module")
def seeds(
    tmp_path_factory: pytest.TempPathFactory, sops_bin: Path, key1: AgeKey, key2: AgeKey
) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("differential")
    # Two recipients: the native path must pick the data key as sops does.
    recipients = f"{key1.recipient},{key2.recipient}"
    files = encrypt_cases(sops_bin, directory, SEEDS, recipients, clean_env(directory))
    return {name: path.read_text() for name, path in files.items()}


@pytest.fixture
def both_keys(key1: AgeKey, key2: AgeKey) -> tuple[AgeKey, AgeKey]:
    return key1, key2


@pytest.fixture
def key_env(key1: AgeKey, empty_home: Path) -> dict[str, str]:
    return clean_env(empty_home, SOPS_AGE_KEY=key1.secret)


def test_every_seed_is_served_natively_as_sops_prints_it(
    seeds: dict[str, str], sops_bin: Path, key_env: dict[str, str]
) -> None:
    # Without this the differential test could pass with a native path that defers all.
    oracle, identities = Oracle(sops_bin, key_env), load_identities(key_env)
    for name, text in seeds.items():
        native = native_verdict(text.encode(), identities)
        sops = oracle(text.encode())
        assert native.accepted, f"{name}: {native.how}"
        assert sops.accepted and sops.documents is not None, name
        assert first_difference(native.documents, sops.documents) is None, name


EXAMPLES = 150


def test_native_never_accepts_what_sops_refuses(
    seeds: dict[str, str], sops_bin: Path, key_env: dict[str, str]
) -> None:
    oracle, identities = Oracle(sops_bin, key_env), load_identities(key_env)
    stats: Counter[str] = Counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,  # the same cases on every run and in CI
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.data())
    def check(data: st.DataObject) -> None:
        seed = data.draw(st.sampled_from(sorted(seeds)), label="seed")
        doc = Document.parse(seeds[seed])
        # One mutation most often: more of them together rarely leave a file sops accepts.
        count = data.draw(st.sampled_from([1, 1, 1, 2, 3]), label="mutations")
        kinds = [data.draw(_mutation(doc), label="mutation") for _ in range(count)]
        content = doc.text().encode()

        native = native_verdict(content, identities)
        sops = oracle(content)
        stats["cases"] += 1
        stats["native " + (native.how.partition(":")[0] or "accepted")] += 1
        stats["sops accepted" if sops.accepted else "sops refused"] += 1
        if native.how.startswith("refused"):
            # A final native refusal gives the binary no say: sops must refuse too.
            assert not sops.accepted, f"native {native.how} what sops accepts: {kinds}"
        if native.accepted:
            assert sops.accepted, f"native accepted what sops refused ({sops.how}): {kinds}"
            assert sops.documents is not None, f"sops printed unreadable YAML: {kinds}"
            difference = first_difference(native.documents, sops.documents)
            assert difference is None, f"{difference} after {kinds}"
        elif sops.accepted:
            stats["native stricter than sops"] += 1
            stats[f"stricter: {native.how}"] += 1

    check()
    # The mutations must reach both verdicts, or the test proves nothing.
    assert stats["native accepted"] >= EXAMPLES // 10, stats
    assert stats["sops refused"] >= EXAMPLES // 4, stats
    print(f"\ndifferential: {dict(stats)}; sops calls: {oracle.calls}")


def _seed_with(seeds: dict[str, str], name: str, edit: Callable[[str], str]) -> bytes:
    edited = edit(seeds[name])
    assert edited != seeds[name]
    return edited.encode()


def _after_line(pattern: str, addition: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        return re.sub(
            rf"^(\s*)({pattern})\n", rf"\g<0>\g<1>{addition}\n", text, count=1, flags=re.MULTILINE
        )

    return edit


@dataclass(frozen=True)
class Forgery:
    name: str
    seed: str
    edit: Callable[[str], str]
    error: type[SopsError]


FORGERIES = [
    # sops: the string is in the MAC of a clear list (exit 51); native used to drop it.
    Forgery(
        "forged_comment_in_clear_list",
        "workspace",
        _after_line(r"- oncall@acme\.example", "- " + _forged(b"x", "comment")),
        MacMismatchError,
    ),
    # sops decrypts every comment item of an encrypted list: a forged one fails (exit 25).
    Forgery(
        "forged_comment_in_encrypted_list",
        "everything",
        _after_line(r"- ENC\[.*type:comment\]", "- " + _forged(b"x", "comment")),
        DecryptionError,
    ),
]


@pytest.mark.parametrize("forgery", FORGERIES, ids=lambda f: f.name)
def test_forged_comment_items_are_refused(
    forgery: Forgery,
    seeds: dict[str, str],
    sops_bin: Path,
    key_env: dict[str, str],
    tmp_path: Path,
) -> None:
    content = _seed_with(seeds, forgery.seed, forgery.edit)
    identities = load_identities(key_env)
    assert not native_verdict(content, identities).accepted
    assert not Oracle(sops_bin, key_env)(content).accepted
    with pytest.raises(forgery.error) as caught:
        decrypt_file(tmp_path / f"{forgery.name}.yaml", identities=identities, content=content)
    assert CANARY not in str(caught.value) and CANARY_2 not in str(caught.value)


def test_a_copied_comment_item_is_accepted_as_sops_does(
    seeds: dict[str, str], sops_bin: Path, key_env: dict[str, str]
) -> None:
    # A real comment item repeated in its own list decrypts and stays out of the MAC.
    def repeat(text: str) -> str:
        match = re.search(r"^(\s*- ENC\[.*type:comment\])\n", text, flags=re.MULTILINE)
        assert match
        return text.replace(match.group(0), match.group(0) * 2, 1)

    content = _seed_with(seeds, "everything", repeat)
    native = native_verdict(content, load_identities(key_env))
    sops = Oracle(sops_bin, key_env)(content)
    assert native.accepted and sops.accepted, native.how
    assert first_difference(native.documents, sops.documents) is None


def test_mac_only_keeps_a_forged_item_in_a_clear_list_as_text(
    seeds: dict[str, str], sops_bin: Path, key_env: dict[str, str]
) -> None:
    # With mac_only_encrypted clear values are outside the MAC: sops accepts the item and
    # prints it as the string it is. The native path must print the same, not drop it.
    forged = _forged(b"x", "comment")
    content = _seed_with(seeds, "mac_only", _after_line(r"- b", "- " + forged))
    native = native_verdict(content, load_identities(key_env))
    sops = Oracle(sops_bin, key_env)(content)
    assert native.accepted and sops.accepted, native.how
    assert native.documents is not None and native.documents[0]["list"] == ["a", "b", forged]
    assert first_difference(native.documents, sops.documents) is None


def test_a_yaml_comment_sops_would_decrypt_defers(
    seeds: dict[str, str], key_env: dict[str, str]
) -> None:
    # '#ENC[...,type:str]' copied from a list item into a comment in the same list: sops
    # decrypts it into a value (in the MAC, and printed as an item). PyYAML cannot see it.
    def comment_copy(text: str) -> str:
        match = re.search(r"^(\s*)- (ENC\[.*type:str\])$", text, flags=re.MULTILINE)
        assert match
        return text.replace(match.group(0), f"{match.group(1)}#{match.group(2)}\n{match.group(0)}")

    content = _seed_with(seeds, "everything", comment_copy)
    verdict = native_verdict(content, load_identities(key_env))
    assert not verdict.accepted
    assert "YAML comment" in verdict.how


@dataclass(frozen=True)
class Flip:
    key: str
    kind: str
    sops_accepts: bool


FLIPS = [
    Flip("count", "int64", sops_accepts=False),  # no such sops type: "Unknown datatype"
    # Go's MarshalText writes the zero offset as Z: the bytes in the MAC differ.
    Flip("utc_text", "time", sops_accepts=False),
    # Go's ParseFloat refuses what overflows; Python's float() gives inf.
    Flip("huge_text", "float", sops_accepts=False),
    # The same bytes enter the MAC: sops accepts and prints the number (or the text).
    Flip("quoted", "int", sops_accepts=True),
    Flip("quoted", "float", sops_accepts=True),
    Flip("count", "str", sops_accepts=True),
]


@pytest.mark.parametrize("flip", FLIPS, ids=lambda f: f"{f.key}-{f.kind}")
def test_flipped_types_get_sops_verdict(
    flip: Flip, seeds: dict[str, str], sops_bin: Path, key_env: dict[str, str]
) -> None:
    def edit(text: str) -> str:
        pattern = rf"^({flip.key}: ENC\[.*type:)\w+\]$"
        return re.sub(pattern, rf"\g<1>{flip.kind}]", text, flags=re.MULTILINE)

    content = _seed_with(seeds, "everything", edit)
    sops = Oracle(sops_bin, key_env)(content)
    native = native_verdict(content, load_identities(key_env))
    assert sops.accepted is flip.sops_accepts, sops.how
    assert native.accepted is flip.sops_accepts, native.how
    if flip.sops_accepts:
        assert first_difference(native.documents, sops.documents) is None


@pytest.mark.parametrize(
    ("seed", "line"),
    [
        ("workspace", "mac_only_encrypted: yes"),  # go-yaml: true (a YAML 1.1 bool)
        ("workspace", "mac_only_encrypted: 1"),  # go-yaml: not a bool, refused
        ("mac_only", "mac_only_encrypted: 'false'"),  # a string is no bool
        ("workspace", "pgp: 5"),  # not a list
        ("workspace", "key_groups: ''"),
        ("workspace", "pgp:\n        - created_at: nope\n          enc: x\n          fp: ABCD"),
    ],
)
def test_metadata_sops_refuses_is_never_accepted(
    seed: str, line: str, seeds: dict[str, str], sops_bin: Path, key_env: dict[str, str]
) -> None:
    # sops decodes its metadata into a typed Go struct: each line makes it refuse the
    # file (or, for `yes`, read mac_only_encrypted as true and find the MAC wrong).
    content = _seed_with(seeds, seed, lambda t: t.replace("\nsops:\n", f"\nsops:\n    {line}\n"))
    assert not Oracle(sops_bin, key_env)(content).accepted
    assert not native_verdict(content, load_identities(key_env)).accepted


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda t: re.sub(r"\n    version: .*", "", t), id="no_version"),
        pytest.param(lambda t: t + "sops:\n    version: 3.11.0\n", id="duplicate_sops_key"),
        pytest.param(lambda t: re.sub(r"(\n    mac: .*)", r"\1\1", t), id="duplicate_mac"),
        # One malformed key entry fails the whole file in sops, though another key opens.
        pytest.param(
            lambda t: t.replace("\n    age:\n", "\n    age:\n        - recipient: [a]\n", 1),
            id="age_entry_of_another_shape",
        ),
        # sops compares the MAC as a typed value: only a str can match.
        pytest.param(
            lambda t: re.sub(r"(\n    mac: ENC\[.*type:)str\]", r"\1comment]", t),
            id="mac_typed_comment",
        ),
    ],
)
def test_metadata_structure_sops_refuses_is_never_accepted(
    edit: Callable[[str], str], seeds: dict[str, str], sops_bin: Path, key_env: dict[str, str]
) -> None:
    content = _seed_with(seeds, "workspace", edit)
    assert not Oracle(sops_bin, key_env)(content).accepted
    assert not native_verdict(content, load_identities(key_env)).accepted


def test_a_comment_in_a_nested_list_defers(
    seeds: dict[str, str], sops_bin: Path, key_env: dict[str, str], tmp_path: Path
) -> None:
    # Found by the differential test: a comment item moved to the end of the nested list
    # and the nested empty list moved after it, into the outer list. sops accepts the
    # file but prints YAML that no reader takes; the native path must not serve what the
    # binary path cannot.
    def comment_in_nested(text: str) -> str:
        comment = re.search(r"^\s*- (ENC\[.*type:comment\])$", text, flags=re.MULTILINE)
        assert comment
        return text.replace("\n      - []\n", f"\n      - {comment.group(1)}\n    - []\n", 1)

    content = _seed_with(seeds, "everything", comment_in_nested)
    sops = Oracle(sops_bin, key_env)(content)
    assert sops.accepted and sops.documents is None, sops.how
    identities = load_identities(key_env)
    assert "nested list" in native_verdict(content, identities).how
    with pytest.raises(DecryptionError, match="cannot read"):
        decrypt_file(tmp_path / "nested.yaml", identities=identities, content=content)


def _damage_first_stanza(text: str) -> str:
    def flip(match: re.Match[str]) -> str:
        line = match.group(0)
        return line[:20] + ("B" if line[20] == "A" else "A") + line[21:]

    return _STANZA_LINE.sub(flip, text, count=1)


@dataclass(frozen=True)
class KeyCase:
    name: str
    edit: Callable[[str], str]
    keys_held: int
    accepted: bool


KEY_CASES = [
    # The first stanza damaged: sops opens the second with the other key.
    KeyCase("first_stanza_damaged_other_key_held", _damage_first_stanza, 2, accepted=True),
    # Only the damaged stanza's key is held: both refuse.
    KeyCase("own_stanza_damaged", _damage_first_stanza, 1, accepted=False),
    # Recipient labels changed: sops never reads them to pick a key.
    KeyCase("labels_changed", lambda t: _RECIPIENT.sub(r"\1age1nobody", t), 1, accepted=True),
]


@pytest.mark.parametrize("case", KEY_CASES, ids=lambda c: c.name)
def test_the_data_key_is_found_as_sops_finds_it(
    case: KeyCase,
    seeds: dict[str, str],
    sops_bin: Path,
    both_keys: tuple[AgeKey, AgeKey],
    empty_home: Path,
) -> None:
    secrets = "\n".join(key.secret for key in both_keys[: case.keys_held])
    env = clean_env(empty_home, SOPS_AGE_KEY=secrets)
    content = _seed_with(seeds, "workspace", case.edit)
    sops = Oracle(sops_bin, env)(content)
    native = native_verdict(content, load_identities(env))
    assert sops.accepted is case.accepted, sops.how
    assert native.accepted is case.accepted, native.how
    if not case.accepted:
        assert native.how == "refused: DecryptionError"
