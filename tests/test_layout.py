"""The architecture holds: ``bridge`` imports neither ``finetune`` nor ``backtest``, no module-level import runs in a
circle, and every project path the README and docs name exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bridge", "backtest", "finetune")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, top_level_only: bool) -> set[str]:
    """Project modules imported by ``path`` (every import, or only those run when the module is imported)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in out if m.split(".")[0] in PACKAGES}


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def test_bridge_imports_neither_finetune_nor_backtest_even_lazily():
    offenders = {
        (name, imp)
        for name, path in _modules().items()
        if name.startswith("bridge")
        for imp in _imports(path, top_level_only=False)
        if imp.split(".")[0] in ("finetune", "backtest")
    }
    assert not offenders


def test_no_module_level_import_cycle():
    modules = _modules()
    graph = {
        name: {imp for imp in _imports(path, top_level_only=True) if imp in modules and imp != name}
        for name, path in modules.items()
    }
    # A package's __init__ importing its own submodules is not a cycle of the submodules.
    for name in graph:
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".")}
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                pytest.fail(f"import cycle: {' -> '.join(stack[stack.index(nxt) :] + [nxt])}")
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])


PATH_IN_TEXT = re.compile(r"`((?:bridge|backtest|finetune|mql5|bench|tests|docs|scripts)/[\w./-]*\w)`")


@pytest.mark.parametrize("doc", ["README.md", *sorted(p.name for p in (ROOT / "docs").glob("*.md"))])
def test_every_project_path_the_documentation_names_exists(doc):
    path = ROOT / doc if doc == "README.md" else ROOT / "docs" / doc
    missing = [p for p in PATH_IN_TEXT.findall(path.read_text(encoding="utf-8")) if not (ROOT / p).exists()]
    assert not missing, f"{doc} names paths that do not exist: {missing}"
