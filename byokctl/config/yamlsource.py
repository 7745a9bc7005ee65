"""YAML with line marks, hardened for untrusted files.

PyYAML (libyaml when available) composes the node graph; we build plain values from
it ourselves so that we can keep every value's position, refuse duplicate keys (PyYAML
silently keeps the last), bound alias expansion (anchor bombs) and nesting depth, and
reject several documents in one file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import yaml

try:  # libyaml is several times faster; the pure-Python loader behaves the same
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

#: Paths into a document: mapping keys and sequence indices.
Path = tuple[str | int, ...]

MAX_NODES: Final = 20_000
MAX_DEPTH: Final = 64
# Python converts at most 4,300 decimal digits to or from text (about 14,284 bits).
_MAX_INT_BITS: Final = 14_000
_MERGE_TAG: Final = "tag:yaml.org,2002:merge"
_STR_TAG: Final = "tag:yaml.org,2002:str"
_COLLECTION_TAGS: Final = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})


class Mark(NamedTuple):
    """A 1-based line and column."""

    # A tuple, not a frozen dataclass: the builder makes one for every key and value of
    # every file, and a tuple is several times cheaper to make.
    line: int
    column: int


class YamlProblem(Exception):
    """The bytes are not a single YAML mapping we are willing to read."""

    def __init__(self, rule: str, message: str, mark: Mark, hint: str | None = None) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.mark = mark
        self.hint = hint


@dataclass
class YamlDocument:
    """A parsed mapping with the position of every key and value."""

    value: dict[str, Any]
    value_marks: dict[Path, Mark] = field(default_factory=dict)
    key_marks: dict[Path, Mark] = field(default_factory=dict)

    def mark(self, path: Path) -> Mark:
        """Where ``path`` is written (its key if it has one), or its nearest ancestor."""
        while path:
            found = self.key_marks.get(path) or self.value_marks.get(path)
            if found:
                return found
            path = path[:-1]
        return self.value_marks.get((), Mark(1, 1))

    def value_mark(self, path: Path) -> Mark:
        """Where the value at ``path`` starts (falls back to :meth:`mark`)."""
        return self.value_marks.get(path) or self.mark(path)


def _mark(node_mark: Any) -> Mark:
    return Mark(node_mark.line + 1, node_mark.column + 1)


def _decode(content: bytes) -> str:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = content[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise YamlProblem(
            "not-utf8",
            f"the file is not valid UTF-8 (byte 0x{content[exc.start]:02x})",
            Mark(line, column),
            "save the file as UTF-8",
        ) from None
    return text.removeprefix("\ufeff")


def parse(content: bytes) -> YamlDocument:
    """Parse one YAML document whose top level is a mapping, keeping positions."""
    text = _decode(content)
    if not text.strip():
        raise YamlProblem(
            "empty-file", "the file is empty", Mark(1, 1), "remove it, or declare a workspace"
        )
    try:
        nodes = list(_compose_all(text))
    except yaml.MarkedYAMLError as exc:
        where = exc.problem_mark or exc.context_mark
        mark = _mark(where) if where else Mark(1, 1)
        problem = exc.problem or "invalid YAML"
        context = f" {exc.context}" if exc.context else ""
        raise YamlProblem("yaml-syntax", f"invalid YAML: {problem}{context}", mark) from None
    except yaml.YAMLError as exc:
        raise YamlProblem("yaml-syntax", f"invalid YAML: {exc}", Mark(1, 1)) from None
    if not nodes:
        raise YamlProblem("empty-file", "the file holds no YAML document", Mark(1, 1))
    if len(nodes) > 1:
        raise YamlProblem(
            "multiple-documents",
            f"the file holds {len(nodes)} YAML documents; a workspace file holds exactly one",
            _mark(nodes[1].start_mark),
            "put each workspace in its own file",
        )
    root = nodes[0]
    if not isinstance(root, yaml.MappingNode):
        kind = "a list" if isinstance(root, yaml.SequenceNode) else "a single value"
        raise YamlProblem(
            "not-a-mapping",
            f"the top level is {kind}; a workspace file is a mapping "
            "(apiVersion, kind, metadata, spec)",
            _mark(root.start_mark),
        )
    builder = _Builder()
    value = builder.build(root, ())
    assert isinstance(value, dict)
    return YamlDocument(value, builder.value_marks, builder.key_marks)


def _compose_all(text: str) -> Iterator[yaml.Node]:
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                yield node
    finally:
        loader.dispose()


class _Builder:
    """Turns a composed node graph into plain values, recording marks on the way."""

    def __init__(self) -> None:
        self.value_marks: dict[Path, Mark] = {}
        self.key_marks: dict[Path, Mark] = {}
        self._nodes = 0
        self._constructor = yaml.constructor.SafeConstructor()

    def build(self, node: yaml.Node, path: Path) -> Any:
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise YamlProblem(
                "yaml-too-complex",
                f"the document expands to more than {MAX_NODES:,} values (an anchor/alias bomb?)",
                _mark(node.start_mark),
                "workspace files are small: remove the anchors and aliases",
            )
        if len(path) > MAX_DEPTH:
            raise YamlProblem(
                "yaml-too-complex",
                f"the document nests deeper than {MAX_DEPTH} levels (a recursive alias?)",
                _mark(node.start_mark),
            )
        if path not in self.value_marks:
            start = node.start_mark
            self.value_marks[path] = Mark(start.line + 1, start.column + 1)
        if not isinstance(node, yaml.ScalarNode) and node.tag not in _COLLECTION_TAGS:
            raise YamlProblem(
                "yaml-tag",
                f"unsupported YAML tag {node.tag!r}",
                _mark(node.start_mark),
                "remove the tag: workspace files use plain mappings and lists",
            )
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _scalar(self, node: yaml.Node) -> Any:
        if node.tag == _STR_TAG:
            return node.value  # what SafeConstructor makes of a str scalar, without the calls
        construct = self._constructor.yaml_constructors.get(node.tag)
        if construct is None:
            raise YamlProblem(
                "yaml-tag",
                f"unsupported YAML tag {node.tag!r}",
                _mark(node.start_mark),
                "remove the tag: workspace files use plain strings, numbers and booleans",
            )
        try:
            value = construct(self._constructor, node)
            if isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:
                raise ValueError("an integer Python cannot print")  # 0x… parses, str() fails
            return value
        except yaml.YAMLError as exc:
            raise YamlProblem(
                "yaml-syntax", f"invalid value: {exc}", _mark(node.start_mark)
            ) from None
        except (ValueError, OverflowError):
            # A plain scalar that resolves to a type it cannot be: an integer past Python's
            # 4,300-digit conversion limit, a date such as 2026-13-45.
            shown = str(node.value)
            shown = f"{shown[:20]}… ({len(shown):,} characters)" if len(shown) > 40 else shown
            raise YamlProblem(
                "yaml-syntax",
                f"invalid {node.tag.rsplit(':', 1)[-1]} value: {shown!r}",
                _mark(node.start_mark),
                "quote it if it is meant as a string",
            ) from None

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        seen: dict[str, Mark] = {}
        merged: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.append(value_node)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlProblem(
                    "yaml-complex-key",
                    "a mapping key must be a plain string",
                    _mark(key_node.start_mark),
                )
            key = str(key_node.value)
            start = key_node.start_mark
            key_mark = Mark(start.line + 1, start.column + 1)
            if key in seen:
                first = seen[key]
                raise YamlProblem(
                    "duplicate-key",
                    f"duplicate key {key!r} "
                    f"(first defined at line {first.line}, column {first.column})",
                    key_mark,
                    "remove one of them: YAML parsers disagree about which one wins",
                )
            seen[key] = key_mark
            child = (*path, key)
            self.key_marks[child] = key_mark
            result[key] = self.build(value_node, child)
        # YAML merge keys (<<): explicit keys win over merged ones, earlier merges over later.
        for source in merged:
            sources = source.value if isinstance(source, yaml.SequenceNode) else [source]
            for item in sources:
                if not isinstance(item, yaml.MappingNode):
                    raise YamlProblem(
                        "yaml-syntax",
                        "a merge key (<<) must refer to a mapping",
                        _mark(item.start_mark),
                    )
                for key, value in self._mapping(item, path).items():
                    result.setdefault(key, value)
        return result
