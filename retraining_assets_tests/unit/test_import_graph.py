"""No import cycle among the package's modules.

The graph holds the imports a module runs when it is imported: top-level statements, including
those under ``if`` / ``try`` (but not ``if TYPE_CHECKING:``), never imports inside functions.
A cycle there only loads by accident of import order; a function-level import that exists to
dodge one hides it, so such imports are not a way around this test.
"""

import ast
from pathlib import Path

import retraining_assets

PACKAGE = "retraining_assets"
ROOT = Path(retraining_assets.__file__).parent


def _modules() -> dict[str, Path]:
    modules = {}
    for path in ROOT.rglob("*.py"):
        parts = (PACKAGE, *path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level_imports(body: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If):
            if not _type_checking(node):
                found += _module_level_imports(node.body) + _module_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                found += _module_level_imports(block)
        elif isinstance(node, ast.With):
            found += _module_level_imports(node.body)
    return found


def import_graph(sources: dict[str, str]) -> dict[str, set[str]]:
    """Module -> the package's modules it imports at module level (``sources``: name -> code)."""
    graph: dict[str, set[str]] = {}
    for name, code in sources.items():
        edges: set[str] = set()
        for node in _module_level_imports(ast.parse(code).body):
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names)
                continue
            # The package imports absolutely; a relative import would be read as another module.
            assert not node.level, f"{name}: relative import of {node.module!r}"
            base = node.module or ""
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                edges.add(submodule if submodule in sources else base)
        graph[name] = {e for e in edges if e in sources and e != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (first module repeated at the end), or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def _package_graph() -> dict[str, set[str]]:
    return import_graph({name: path.read_text() for name, path in _modules().items()})


def test_the_graph_sees_the_package_imports() -> None:
    graph = _package_graph()
    assert "retraining_assets.defs.assets" in graph
    assert "retraining_assets.defs.resources" in graph["retraining_assets.defs.monitoring"]
    assert "retraining_assets.settings" in graph["retraining_assets.defs.resources"]


def test_a_cycle_is_found_and_function_or_type_checking_imports_are_not_edges() -> None:
    sources = {
        "p.a": "from p.b import x\n",
        "p.b": "import p.c\n",
        "p.c": "try:\n    from p import a\nexcept ImportError:\n    pass\n",
        "p.d": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import p.a\n"
        "def f():\n    import p.a\n",
    }
    graph = import_graph(sources)
    assert graph["p.d"] == set()
    assert find_cycle(graph) == ["p.a", "p.b", "p.c", "p.a"]
    assert find_cycle({**graph, "p.c": set()}) is None


def test_no_import_cycle_in_the_package() -> None:
    cycle = find_cycle(_package_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
