"""The package's floors: imports only go down, no cycles, no private names across modules.

Every module of hipstats is parsed with :mod:`ast` (nothing is imported) and every import
statement, at module level or inside a function, becomes an edge of the import graph; imports
inside ``if TYPE_CHECKING:`` blocks are left out (they never run). The floors, bottom first,
are declared in :data:`FLOORS`; docs/DECISIONS.md ("Layering") says why they are in this order.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hipstats"

#: Floors, bottom first: a module may import modules of its own floor or of a floor below.
#: A module belongs to the floor of the longest prefix listed.
FLOORS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("hipstats.errors", "hipstats.results")),
    ("data contract and readers", ("hipstats.data",)),
    ("cohort and views", ("hipstats.cohort",)),
    ("figures", ("hipstats.plots",)),
    ("statistics, models, power", ("hipstats.stats", "hipstats.models", "hipstats.power", "hipstats._power_sim")),
    ("study questions", ("hipstats.questions",)),
    ("report pipeline", ("hipstats.report", "hipstats.notebooks")),
    ("command line", ("hipstats.cli", "hipstats.__main__")),
    ("flat public API", ("hipstats",)),
]

#: Packages that must stay free of the study: they take arrays and tidy frames, not a Cohort.
GENERIC = ("hipstats.stats", "hipstats.models")

STUDY = ("hipstats.cohort", "hipstats.questions")


def module_name(path: Path, root: Path = PACKAGE) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Yield Import/ImportFrom nodes anywhere in ``tree`` except under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def parse_package(root: Path = PACKAGE):
    """modules: name -> path; edges: (importer, imported module, line, imported name or None)."""
    modules = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    edges = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        package = name if is_package(path) else name.rpartition(".")[0]
        for node in _imports(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == root.name:
                        edges.append((name, alias.name, node.lineno, None))
                continue
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != root.name:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in modules:
                    edges.append((name, sub, node.lineno, None))
                else:
                    edges.append((name, target, node.lineno, alias.name))
    return modules, edges


def resolve(target: str, modules, importer: str) -> list[str]:
    """Modules an import of ``target`` by ``importer`` runs: the target and each package enclosing
    it, except the root and the packages enclosing the importer (already running)."""
    parts = target.split(".")
    out = [".".join(parts[:i]) for i in range(2, len(parts) + 1)]
    return [m for m in out if m in modules and m != importer and not importer.startswith(m + ".")]


def floor_of(module: str) -> int:
    best, level = -1, None
    for i, (_, prefixes) in enumerate(FLOORS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, level = len(p), i
    if level is None:
        raise AssertionError(f"{module} is on no floor; add it to FLOORS")
    return level


def graph(modules, edges):
    g: dict[str, set[str]] = {m: set() for m in modules}
    for src, target, _, _ in edges:
        g[src].update(resolve(target, modules, src))
    return g


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(g[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(g):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def violations(root: Path = PACKAGE) -> dict[str, list[str]]:
    modules, edges = parse_package(root)
    out: dict[str, list[str]] = {"cycle": [], "upward": [], "private": [], "generic": []}
    cycle = find_cycle(graph(modules, edges))
    if cycle:
        out["cycle"].append(" -> ".join(cycle))
    for src, target, line, name in edges:
        where = f"{modules[src].relative_to(root.parent)}:{line}"
        runs = resolve(target, modules, src)
        if not runs:
            continue
        dst = runs[-1]
        if floor_of(dst) > floor_of(src):
            out["upward"].append(f"{where}: {src} ({FLOORS[floor_of(src)][0]}) imports {dst} "
                                 f"({FLOORS[floor_of(dst)][0]})")
        if src.startswith(GENERIC) and dst.startswith(STUDY):
            out["generic"].append(f"{where}: {src} imports {dst}")
        # a private name, or a private module outside its own package
        if name is not None and name.startswith("_") and not name.startswith("__"):
            out["private"].append(f"{where}: {src} imports {name} from {target}")
        leaf = dst.rpartition(".")[2]
        src_pkg = src if is_package(modules[src]) else src.rpartition(".")[0]
        if leaf.startswith("_") and not leaf.startswith("__") and dst.rpartition(".")[0] != src_pkg:
            out["private"].append(f"{where}: {src} imports the private module {dst}")
    return {k: sorted(set(v)) for k, v in out.items()}


@pytest.fixture(scope="module")
def found():
    return violations()


def test_every_module_is_on_a_floor():
    modules, _ = parse_package()
    for m in modules:
        floor_of(m)


def test_no_import_cycles(found):
    assert not found["cycle"], f"import cycle: {found['cycle']}"


def test_imports_only_go_down(found):
    assert not found["upward"], "imports going up a floor:\n" + "\n".join(found["upward"])


def test_no_private_names_across_modules(found):
    assert not found["private"], "private names imported across modules:\n" + "\n".join(found["private"])


def test_generic_statistics_know_no_cohort(found):
    assert not found["generic"], "stats/models importing cohort/questions:\n" + "\n".join(found["generic"])


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "hipstats"
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def test_the_checks_catch_planted_violations(tmp_path):
    root = _plant(tmp_path, {
        "__init__.py": "",
        "errors.py": "",
        "data/__init__.py": "",
        "data/schema.py": "from hipstats.cohort.cohort import Cohort\n",
        "cohort/__init__.py": "",
        "cohort/cohort.py": "from hipstats.data import schema\nfrom hipstats.data.schema import _hidden\n",
        "stats/__init__.py": "",
        "stats/icc.py": "def f():\n    from hipstats.questions.pelvis import x\n",
        "stats/roc.py": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                         "    from hipstats.questions.screening import ScreeningResult\n"),
        "questions/__init__.py": "",
        "questions/pelvis.py": "from .screening import y\n",
        "questions/screening.py": "",
    })
    found = violations(root)
    assert found["cycle"] == ["hipstats.cohort.cohort -> hipstats.data.schema -> hipstats.cohort.cohort"]
    assert any("hipstats.data.schema (data contract and readers) imports hipstats.cohort.cohort" in v
               for v in found["upward"])
    assert any("stats/icc.py:2" in v and "hipstats.questions.pelvis" in v for v in found["upward"])
    assert not any("roc" in v for v in found["upward"] + found["generic"])
    assert found["private"] == ["hipstats/cohort/cohort.py:2: hipstats.cohort.cohort imports _hidden "
                                "from hipstats.data.schema"]
    assert found["generic"] == ["hipstats/stats/icc.py:2: hipstats.stats.icc imports hipstats.questions.pelvis"]
    # relative imports resolve like absolute ones
    _, edges = parse_package(root)
    assert ("hipstats.questions.pelvis", "hipstats.questions.screening", 1, "y") in edges


def test_flat_api_table_names_the_defining_modules():
    """Every name of the lazy table in hipstats/__init__.py is defined, and exported, by the
    module the table names (so a move that forgets the table fails here, not in a notebook)."""
    import importlib

    import hipstats

    wrong = []
    for name, module in hipstats._LAZY.items():
        mod = importlib.import_module(module)
        if name not in getattr(mod, "__all__", ()) or getattr(mod, name, None) is None:
            wrong.append(f"{name} -> {module}")
    assert not wrong, "lazy table entries not exported by their module:\n" + "\n".join(wrong)
    for sub in hipstats._SUBMODULES:
        assert importlib.import_module(f"hipstats.{sub}") is getattr(hipstats, sub)
