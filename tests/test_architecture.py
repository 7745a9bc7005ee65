"""The import rules of docs/ARCHITECTURE.md, kept true: each package imports only what its
row allows, lazy (function-level) imports included, and the packages form no cycle."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "byokctl"

#: What each unit of the package may import (ARCHITECTURE.md's "may import" column).
#: ``byokctl`` is the package's own ``__init__`` (``__version__``).
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "model": {"errors"},
    "catalog": {"model", "errors"},
    "classify": {"model", "catalog", "errors"},
    "byokctl": {"errors", "model"},
    "sopsformat": set(),
    "sops": {"errors", "model", "sopsformat"},
    "config": {"byokctl", "model", "catalog", "errors", "sops", "sopsformat"},
    "plan": {"model", "errors"},
    "render": {"plan", "model"},
    "verify": {"model", "catalog", "classify", "plan", "errors"},
    "store": {"model", "errors"},
    "executor": {"store", "model", "errors"},
    "resolver": {"model", "catalog", "classify", "store", "errors"},
    "sandbox": {"catalog", "errors"},
    "probe": {"model", "catalog", "classify", "verify", "resolver", "errors"},
    "serve": {"resolver", "classify", "model", "store", "errors"},
    "github": {"byokctl", "config", "plan", "render", "model", "errors"},
    "scaffold": set(),  # data files that ``init`` writes
    "commands": {
        "byokctl",
        "errors",
        "model",
        "catalog",
        "config",
        "sops",
        "plan",
        "render",
        "verify",
        "classify",
        "store",
        "executor",
        "resolver",
        "sandbox",
        "serve",
        "github",
        "probe",
    },
    "cli": {"byokctl", "commands", "catalog", "errors", "model", "github"},
    "__main__": {"cli"},
}


def _unit(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if parts == ("__init__",):
        return "byokctl"
    return parts[0]


def _is_unit(name: str) -> bool:
    return (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file()


def _target(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "byokctl":
        return None
    if len(parts) == 1:
        return "byokctl"
    return parts[1]


def imports() -> Iterator[tuple[str, str, str]]:
    """(unit, imported unit, where) for every import of the package, at any depth."""
    for file in sorted(PACKAGE.rglob("*.py")):
        unit = _unit(file)
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
                # "from byokctl import verify" names a unit in the alias
                if node.module == "byokctl":
                    modules = [
                        f"byokctl.{a.name}" if _is_unit(a.name) else "byokctl" for a in node.names
                    ]
            else:
                continue
            for module in modules:
                target = _target(module)
                if target is not None and target != unit and target.split(".")[0] != unit:
                    yield unit, target, f"{file.relative_to(PACKAGE.parent)}:{node.lineno}"


def test_every_unit_has_a_rule() -> None:
    units = {_unit(f) for f in PACKAGE.rglob("*.py")}
    assert units <= set(ALLOWED), f"add a row for {sorted(units - set(ALLOWED))}"


def test_each_unit_imports_only_what_its_row_allows() -> None:
    broken = [
        f"{where}: {unit} imports {target}"
        for unit, target, where in imports()
        if target not in ALLOWED[unit] and not (target == "byokctl" and unit == "byokctl")
    ]
    assert broken == []


def test_the_units_form_no_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for unit, target, _ in imports():
        graph.setdefault(unit, set()).add(target.split(".")[0])
    seen: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> None:
        if node in path:
            raise AssertionError(" -> ".join([*path[path.index(node) :], node]))
        if node in seen:
            return
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            visit(nxt)
        path.pop()
        seen.add(node)

    for unit in sorted(graph):
        visit(unit)


def test_the_resolver_never_reaches_verify() -> None:
    # It classifies answers with the pure classifier beside the catalog; verify is httpx's.
    reached = {target for unit, target, _ in imports() if unit == "resolver"}
    assert "verify" not in reached


def test_no_module_is_over_500_lines() -> None:
    # A module that cannot be read in one sitting is a module to split (issue 13).
    long = {
        str(f.relative_to(PACKAGE.parent)): n
        for f in PACKAGE.rglob("*.py")
        if (n := len(f.read_text(encoding="utf-8").splitlines())) > 500
    }
    assert long == {}
