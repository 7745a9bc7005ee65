"""Facts about the SOPS 3.x file format, as pure functions: the one definition of what an
encrypted value and a SOPS file are, for ``validate`` (no key) and for decryption alike.

Sources (facts, not code): getsops/sops ``aes/cipher.go`` (the ``ENC[...]`` value, a
32-byte IV, AES-256-GCM with the key path as additional data), ``sops.go`` (which values
are encrypted, the MAC and ``ToBytes``), ``stores/stores.go`` (metadata and its defaults).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

ENC_RE = re.compile(r"^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]")

#: sops seeds the MAC with these 32 bytes (sha256 of "sops") when ``mac_only_encrypted``
#: is set, so that the two MAC modes never produce the same value.
MAC_ONLY_ENCRYPTED_INIT = bytes.fromhex(
    "8a3fd2ad54ce66527b1034f3d147be0b0b975b3bf44f72c6fdadec8176f27d69"
)

DEFAULT_UNENCRYPTED_SUFFIX = "_unencrypted"

#: Key sources other than age. Any of them non-empty means the sops binary may be needed.
OTHER_KEY_SOURCES = ("pgp", "kms", "gcp_kms", "azure_kv", "hc_vault")
ALL_KEY_SOURCES = ("age", *OTHER_KEY_SOURCES)

_RULE_FIELDS = (
    "unencrypted_suffix",
    "encrypted_suffix",
    "unencrypted_regex",
    "encrypted_regex",
    "unencrypted_comment_regex",
    "encrypted_comment_regex",
)

# RFC 3339 exactly as Go's time.Format(time.RFC3339) writes it: no fraction, "Z" for UTC.
RFC3339_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)")


@dataclass(frozen=True)
class EncryptedValue:
    """The parts of one ``ENC[AES256_GCM,...]`` value."""

    data: bytes
    iv: bytes
    tag: bytes
    type: str


def is_encrypted_value(value: object) -> bool:
    """Whether sops would take ``value`` for an encrypted value (and try to decrypt it)."""
    return isinstance(value, str) and parse_encrypted_value(value) is not None


def parse_encrypted_value(text: str) -> EncryptedValue | None:
    """Split an ``ENC[...]`` string into its parts; ``None`` if it is not one."""
    match = ENC_RE.match(text)
    if match is None:
        return None
    try:
        data, iv, tag = (base64.b64decode(match.group(i), validate=True) for i in (1, 2, 3))
    except (binascii.Error, ValueError):
        return None
    return EncryptedValue(data, iv, tag, match.group(4))


def go_format_float(value: float) -> str:
    """Format like Go's ``strconv.FormatFloat(v, 'f', -1, 64)``: shortest digits, no exponent."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    # repr() gives the shortest round-tripping digits, as Go's precision -1 does.
    return format(Decimal(repr(value)).normalize(), "f")


def as_printed_by_sops(value: float) -> float | int:
    """The number ``sops decrypt`` prints for a float, as a YAML reader gets it back.

    go-yaml writes floats with ``strconv.FormatFloat(v, 'g', -1, 64)``: shortest digits,
    an exponent from 1e+06 up and below 1e-04, and no decimal point for a whole number
    (``2.0`` prints as ``2``). So a whole float under a million reads back as an int.
    """
    if value.is_integer() and abs(value) < 1e6:
        return int(value)
    return value


def parse_rfc3339(text: str) -> datetime | None:
    """A timestamp already matching :data:`RFC3339_RE`, if Go's RFC 3339 parser takes it.

    Go checks every field's range (offset hours 0-23, minutes 0-59) as Python does for
    the date and time; ``None`` for anything either refuses.
    """
    if text[19] != "Z" and (int(text[20:22]) > 23 or int(text[23:25]) > 59):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class SelectionRule:
    """Which values sops encrypts: one suffix or regex rule applied to every key on a path."""

    kind: Literal["unencrypted_suffix", "encrypted_suffix", "unencrypted_regex", "encrypted_regex"]
    pattern: str
    regex: re.Pattern[str] | None

    def matches(self, key: str) -> bool:
        """Whether a single mapping key matches the rule's suffix or regex."""
        if self.regex is not None:
            # Go's regexp.Match finds a match anywhere in the key.
            return self.regex.search(key) is not None
        return key.endswith(self.pattern)

    @property
    def match_means_encrypted(self) -> bool:
        """True for the ``encrypted_*`` rules, where a matching key turns encryption on."""
        return self.kind.startswith("encrypted")


class UnsupportedMetadata(Exception):
    """The metadata asks for something only the sops binary handles; ``args[0]`` says what."""


def selection_rule(meta: Mapping[str, Any]) -> SelectionRule:
    """The file's encryption selection rule, with sops's default when none is set."""
    present = [name for name in _RULE_FIELDS if meta.get(name) not in (None, "")]
    if len(present) > 1:
        raise UnsupportedMetadata("more than one encryption selection rule")
    if not present:
        return SelectionRule("unencrypted_suffix", DEFAULT_UNENCRYPTED_SUFFIX, None)
    name = present[0]
    pattern = meta[name]
    if not isinstance(pattern, str):
        raise UnsupportedMetadata(f"{name} is not a string")
    if name in ("unencrypted_comment_regex", "encrypted_comment_regex"):
        raise UnsupportedMetadata(f"comment rule {name}")
    if name.endswith("_regex"):
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise UnsupportedMetadata(f"{name} is not a Python-compatible regex") from exc
        return SelectionRule(name, pattern, compiled)  # type: ignore[arg-type]
    return SelectionRule(name, pattern, None)  # type: ignore[arg-type]


_STRING_FIELDS = ("lastmodified", "mac", "version", *_RULE_FIELDS)
_LIST_FIELDS = ("key_groups", *ALL_KEY_SOURCES)
# A semantic version as github.com/blang/semver parses it (no leading zeros).
_SEMVER_RE = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*)?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)
_RFC3339_FRACTION_RE = re.compile(
    r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d{1,9})?(Z|[+-]\d\d:\d\d)"
)


def check_metadata(meta: Mapping[str, Any]) -> None:
    """Raise :class:`UnsupportedMetadata` unless sops surely loads this metadata.

    sops (``stores/stores.go``) decodes the ``sops`` mapping into a typed struct and
    converts it: a list field that is not a list of mappings, a key entry whose
    ``created_at`` is not RFC 3339, a ``shamir_threshold``, or a ``version`` that is not
    semver (sops compares it on every decrypt) make it refuse the file or take a path the
    native one does not follow. Unknown fields are ignored, as sops ignores them.
    """
    for name in _STRING_FIELDS:
        if not isinstance(meta.get(name), str | None):
            raise UnsupportedMetadata(f"{name} is not a string")
    if meta.get("shamir_threshold") is not None:
        raise UnsupportedMetadata("shamir_threshold")
    for name in _LIST_FIELDS:
        entries = meta.get(name)
        if entries is None:
            continue
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise UnsupportedMetadata(f"{name} is not a list of keys")
        if name in ALL_KEY_SOURCES:
            for entry in entries:
                _check_key_entry(name, entry)
    version = str(meta.get("version") or "").removeprefix("v")
    if not (version.startswith("1.") or _SEMVER_RE.fullmatch(version)):
        raise UnsupportedMetadata("a version sops does not parse")


def _check_key_entry(source: str, entry: Mapping[str, Any]) -> None:
    # Every field sops knows is a string (kms's context a map of them); one of another
    # shape fails the whole file there, even when another key would open it.
    for field, value in entry.items():
        allowed = dict if source == "kms" and field == "context" else str | None
        if not isinstance(value, allowed):
            raise UnsupportedMetadata(f"a {source} key with an unexpected {field}")
    if source == "age":
        return  # age keys carry no created_at
    created = _RFC3339_FRACTION_RE.fullmatch(str(entry.get("created_at") or ""))
    if created is None or parse_rfc3339(created.group(1) + created.group(2)) is None:
        raise UnsupportedMetadata(f"a {source} key whose created_at sops does not parse")


def _non_empty_list(value: object) -> bool:
    return isinstance(value, list) and len(value) > 0


def is_sops_document(doc: Mapping[str, Any]) -> bool:
    """Whether a parsed YAML document carries well-formed sops metadata.

    Needs no key: it checks the ``sops`` mapping has an encrypted MAC, a ``lastmodified``
    and at least one key (a single group or ``key_groups``).
    """
    meta = doc.get("sops")
    if not isinstance(meta, Mapping):
        return False
    mac = meta.get("mac")
    if not isinstance(mac, str) or parse_encrypted_value(mac) is None:
        return False
    if meta.get("lastmodified") in (None, ""):
        return False
    if _non_empty_list(meta.get("key_groups")):
        return True
    return any(_non_empty_list(meta.get(source)) for source in ALL_KEY_SOURCES)


def recipients_of(meta: Mapping[str, Any]) -> list[str]:
    """The file's key recipients as sops names them (age recipients, PGP fingerprints, ARNs)."""
    names: list[str] = []
    groups: list[Any] = []
    if _non_empty_list(meta.get("key_groups")):
        groups.extend(g for g in meta["key_groups"] if isinstance(g, Mapping))
    else:
        groups.append(meta)
    for group in groups:
        for source in ALL_KEY_SOURCES:
            entries = group.get(source)
            if not isinstance(entries, list):
                continue
            for entry in entries:
                if not isinstance(entry, Mapping):
                    continue
                for field in ("recipient", "fp", "arn", "resource_id", "vault_address"):
                    value = entry.get(field)
                    if isinstance(value, str) and value:
                        names.append(value if source == "age" else f"{source}:{value}")
                        break
    return names
