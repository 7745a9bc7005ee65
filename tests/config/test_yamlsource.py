"""Hostile and broken YAML: each gets a clear problem with a position, never a traceback."""

from __future__ import annotations

import pytest

from byokctl.config.yamlsource import MAX_NODES, Mark, YamlProblem, parse


def problem(content: bytes) -> YamlProblem:
    with pytest.raises(YamlProblem) as info:
        parse(content)
    return info.value


def test_values_and_marks() -> None:
    doc = parse(b"a: 1\nb:\n  c: [x, y]\n")
    assert doc.value == {"a": 1, "b": {"c": ["x", "y"]}}
    assert doc.mark(("b", "c")) == Mark(3, 3)
    assert doc.value_mark(("b", "c", 1)) == Mark(3, 10)
    # An unknown path falls back to its nearest ancestor.
    assert doc.mark(("b", "c", "nope")) == Mark(3, 3)


def test_duplicate_key_is_refused_with_both_positions() -> None:
    p = problem(b"a: 1\nb: 2\na: 3\n")
    assert p.rule == "duplicate-key"
    assert p.mark == Mark(3, 1)
    assert "line 1" in p.message


def test_nested_duplicate_key() -> None:
    p = problem(b"spec:\n  providers:\n    openai: {}\n    openai: {}\n")
    assert (p.rule, p.mark) == ("duplicate-key", Mark(4, 5))


@pytest.mark.parametrize(
    ("content", "rule", "mark"),
    [
        (b"", "empty-file", Mark(1, 1)),
        (b"   \n\n", "empty-file", Mark(1, 1)),
        (b"# only a comment\n", "empty-file", Mark(1, 1)),
        (b"- a\n- b\n", "not-a-mapping", Mark(1, 1)),
        (b"just a string\n", "not-a-mapping", Mark(1, 1)),
        (b"a: 1\n---\nb: 2\n", "multiple-documents", Mark(3, 1)),
        (b"a: [1, 2\nb: 3\n", "yaml-syntax", Mark(2, 2)),
        (b"a: !!python/object:os.system x\n", "yaml-tag", Mark(1, 4)),
        (b"a: !!set {x: null}\n", "yaml-tag", Mark(1, 4)),
        (b"a: !thing\n  b: 1\n", "yaml-tag", Mark(1, 4)),
        (b"a: !!python/object/apply:os.system [ls]\n", "yaml-tag", Mark(1, 4)),
        (b"a: 1\nb: \xff\xfe\n", "not-utf8", Mark(2, 4)),
        (b"? [a, b]\n: 1\n", "yaml-complex-key", Mark(1, 3)),
    ],
)
def test_broken_input(content: bytes, rule: str, mark: Mark) -> None:
    p = problem(content)
    assert (p.rule, p.mark) == (rule, mark)


def test_alias_bomb_is_bounded() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i, name in enumerate("bcdefgh"):
        prev = "abcdefgh"[i]
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 10)}]")
    p = problem("\n".join(lines).encode())
    assert p.rule == "yaml-too-complex"
    assert f"{MAX_NODES:,}" in p.message


def test_recursive_alias_is_bounded() -> None:
    p = problem(b"a: &a\n  - *a\n")
    assert p.rule == "yaml-too-complex"


def test_merge_keys_expand_with_explicit_keys_winning() -> None:
    doc = parse(b"base: &b {model: x, api_key: k}\nthing:\n  <<: *b\n  model: y\n")
    assert doc.value["thing"] == {"model": "y", "api_key": "k"}


def test_bom_is_accepted() -> None:
    assert parse("\ufeffa: 1\n".encode()).value == {"a": 1}
