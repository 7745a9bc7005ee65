"""The store package's shape: no import cycle, no module over 500 lines, a pinned runtime API."""

from __future__ import annotations

import ast
from pathlib import Path

import byokctl.store
import byokctl.store.runtime

STORE = Path(byokctl.store.__file__).parent
MAX_LINES = 500


def _imports(path: Path) -> set[str]:
    """The store modules ``path`` imports, anywhere in it (lazy imports count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                names = [node.module] if node.module else [a.name for a in node.names]
            elif node.module and node.module.startswith("byokctl.store"):
                rest = node.module.removeprefix("byokctl.store").lstrip(".")
                names = [rest] if rest else [a.name for a in node.names]
            else:
                continue
            found.update(n.split(".")[0] for n in names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("byokctl.store."):
                    found.add(alias.name.removeprefix("byokctl.store.").split(".")[0])
    modules = {p.stem for p in STORE.glob("*.py")}
    return {m for m in found if m in modules and m != path.stem}


def test_no_import_cycle_in_the_store() -> None:
    graph = {p.stem: _imports(p) for p in STORE.glob("*.py") if p.stem != "__init__"}
    state: dict[str, str] = {}
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "visiting"
        for dep in sorted(graph.get(module, ())):
            if state.get(dep) == "visiting":
                cycles.append([*path[path.index(dep) :], dep] if dep in path else [module, dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_no_store_module_over_500_lines() -> None:
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in STORE.glob("*.py")}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_runtime_exports_are_pinned() -> None:
    assert sorted(byokctl.store.runtime.__all__) == sorted(
        [
            "MAX_RETRY_AFTER_S",
            "NEVER_RECOVERS",
            "RUNTIME_BACKENDS",
            "BreakerPolicy",
            "ChangeFeed",
            "ChangeSource",
            "CreditEntry",
            "CreditUsage",
            "Episode",
            "Failure",
            "HealthChange",
            "HealthRecord",
            "HealthStatus",
            "Period",
            "ProbeGrant",
            "RuntimeStore",
            "capped_retry_after",
            "open_runtime_store",
        ]
    )
    for name in byokctl.store.runtime.__all__:
        assert hasattr(byokctl.store.runtime, name), name
    assert set(byokctl.store.runtime.RUNTIME_BACKENDS) == set(byokctl.store.BACKENDS)


def test_capped_retry_after_is_public() -> None:
    cap = byokctl.store.runtime.capped_retry_after
    assert byokctl.store.runtime.MAX_RETRY_AFTER_S == 3600.0
    assert cap(None) is None
    assert cap(float("nan")) is None
    assert cap(-5.0) == 0.0
    assert cap(10**9) == 3600.0


def test_no_stale_backend_docstrings() -> None:
    stale = [p.name for p in STORE.glob("*.py") if "PostgreSQL later" in p.read_text()]
    assert stale == []
