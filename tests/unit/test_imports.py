"""No import cycle in the package, counting imports inside functions too.

Two checks over the same AST edges. Grouped by the package's first level
(``synllm.metrics.privacy`` -> ``synllm.metrics``; ``synllm.config`` stays itself), a cycle
between two subpackages (``metrics`` -> ``fairness`` -> ``metrics``) counts. Module by module,
a cycle between two modules of one subpackage counts too (``generate.run`` ->
``generate.peers`` -> ``generate.run``), while a package's own ``__init__`` importing its
submodules does not. Implicit imports of parent packages are not edges.
"""

from __future__ import annotations

import ast
from pathlib import Path


def _module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _unit(module: str) -> str:
    """``synllm.a.b`` -> ``synllm.a``; ``synllm`` itself stays ``synllm``."""
    return ".".join(module.split(".")[:2])


def _imports(path: Path, module: str, modules: frozenset[str] = frozenset()) -> set[str]:
    """Modules ``path`` imports; ``from pkg import sub`` names ``pkg.sub`` when that is one
    of ``modules``."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("synllm")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.startswith("synllm"):
                subs = {f"{name}.{a.name}" for a in node.names} & modules
                out |= subs if len(subs) == len(node.names) else subs | {name}
    return out


def module_graph(src: Path) -> dict[str, set[str]]:
    """Module -> modules it imports, without a package's edges to its own submodules."""
    paths = {_module_name(p, src): p for p in sorted((src / "synllm").rglob("*.py"))}
    modules = frozenset(paths)
    graph = {}
    for module, path in paths.items():
        targets = _imports(path, module, modules) - {module}
        if path.name == "__init__.py":
            targets = {t for t in targets if not t.startswith(module + ".")}
        graph[module] = targets
    return graph


def import_graph(src: Path) -> dict[str, set[str]]:
    """First-level unit -> units it imports (self-edges dropped), of the package under ``src``."""
    graph: dict[str, set[str]] = {}
    for path in sorted((src / "synllm").rglob("*.py")):
        module = _module_name(path, src)
        unit = _unit(module)
        targets = {_unit(m) for m in _imports(path, module)} - {unit, "synllm"}
        graph.setdefault(unit, set()).update(targets)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(u: str) -> list[str] | None:
        state[u] = 1
        stack.append(u)
        for v in sorted(graph.get(u, ())):
            if state.get(v) == 1:
                return stack[stack.index(v) :] + [v]
            if v not in state:
                found = visit(v)
                if found:
                    return found
        stack.pop()
        state[u] = 2
        return None

    for u in sorted(graph):
        if u not in state:
            found = visit(u)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_between_modules_or_subpackages(root):
    graph = import_graph(root / "src")
    assert "synllm.config" in graph and "synllm.metrics" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_import_cycle_between_modules_of_a_subpackage(root):
    graph = module_graph(root / "src")
    assert "synllm.generate.run" in graph["synllm.generate.cli"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_module_graph_sees_a_cycle_inside_a_subpackage(tmp_path):
    pkg = tmp_path / "synllm" / "generate"
    pkg.mkdir(parents=True)
    (tmp_path / "synllm" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from synllm.generate import run, peers\n")
    (pkg / "run.py").write_text("def f():\n    from synllm.generate.peers import KEYS\n")
    (pkg / "peers.py").write_text("from . import run\n")
    graph = module_graph(tmp_path)
    assert graph["synllm.generate"] == set()
    assert find_cycle(graph) == [
        "synllm.generate.peers",
        "synllm.generate.run",
        "synllm.generate.peers",
    ]


def test_names_is_a_leaf(root):
    assert import_graph(root / "src")["synllm.names"] <= {"synllm.errors"}


def test_validate_and_its_train_reader_do_not_import_scikit_learn(root):
    """A validate job only parses text and reads the train split (``split.read_split``):
    scikit-learn's import (about 2 s) would double its time in a grid of many small jobs."""
    import subprocess
    import sys

    code = "import sys, synllm.validate, synllm.split; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
