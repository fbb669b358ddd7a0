"""Imports run one way (STYLE.md "Layout and layers") and no module imports itself back through others.

The graph is read from the source with `ast`, every import statement counted wherever it stands (module
level, inside a function, under ``if TYPE_CHECKING``): a deferred import is a dependency all the same.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Lowest first; a module may import its own layer and the layers below it, never one above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("common",),
    ("directory",),
    ("territory",),
    ("rules",),
    ("registration",),
    ("transfer",),
    ("server", "demo"),  # the edge: the application, its command line and the demo data
)
#: Top-level code outside the product: it may import anything, and the product may import none of it.
OUTSIDE = ("tests", "bench", "migrations")


@dataclass(frozen=True)
class Import:
    """One import statement of one of our modules that names another of our modules."""

    importer: str
    imported: str
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.importer} imports {self.imported}"


def module_files(root: Path, tops: Iterable[str]) -> dict[str, Path]:
    """Our modules by dotted name: each top-level name is a package directory or a ``.py`` file."""
    found: dict[str, Path] = {}
    for top in tops:
        if (root / f"{top}.py").is_file():
            found[top] = root / f"{top}.py"
        for path in sorted((root / top).rglob("*.py")) if (root / top).is_dir() else ():
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def top_level_names(root: Path) -> set[str]:
    """Every ``.py`` module at the top of the repository and every directory holding Python code."""
    names = {p.stem for p in root.glob("*.py")} | {p.parent.name for p in root.glob("*/*.py")}
    return {n for n in names if not n.startswith(".")}


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of `name` that is one of our modules (``a.b.C`` -> ``a.b``)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def imports_of(name: str, path: Path, modules: dict[str, Path], root: Path) -> list[Import]:
    """The imports of module `name` that name one of `modules`, with their lines."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    shown = str(path.relative_to(root))
    found: list[Import] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from a import b` imports the module a.b when there is one, else a name defined in a.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names
            ]
        for target in targets:
            imported = _known(target, modules)
            if imported is not None and imported != name:
                found.append(Import(name, imported, shown, node.lineno))
    return sorted(set(found), key=lambda i: (i.line, i.imported))


def import_graph(root: Path, layers: tuple[tuple[str, ...], ...], outside: tuple[str, ...]) -> list[Import]:
    """Every import from a layered module to another of our modules (outside code included as targets)."""
    layered = module_files(root, [top for layer in layers for top in layer])
    everything = {**layered, **module_files(root, outside)}
    return [found for name, path in layered.items() for found in imports_of(name, path, everything, root)]


def _rank(module: str, layers: tuple[tuple[str, ...], ...]) -> int:
    top = module.split(".")[0]
    return next((rank for rank, layer in enumerate(layers) if top in layer), len(layers))


def upward_imports(imports: Iterable[Import], layers: tuple[tuple[str, ...], ...]) -> list[Import]:
    """The imports that reach from a lower layer into a higher one (or into code outside the product)."""
    return [i for i in imports if _rank(i.imported, layers) > _rank(i.importer, layers)]


def import_circles(imports: Iterable[Import]) -> list[list[Import]]:
    """One circle of imports per group of modules that import each other, as the imports that close it."""
    graph = nx.DiGraph()
    for found in imports:
        if not graph.has_edge(found.importer, found.imported):
            graph.add_edge(found.importer, found.imported, found=found)
    circles = []
    for group in nx.strongly_connected_components(graph):
        if len(group) > 1:
            cycle = nx.find_cycle(graph.subgraph(group), source=min(group))
            circles.append([graph.edges[a, b]["found"] for a, b in cycle])
    return sorted(circles, key=lambda circle: circle[0].importer)


# -- this repository ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> list[Import]:
    return import_graph(REPO_ROOT, LAYERS, OUTSIDE)


def test_every_top_level_module_has_a_layer():
    named = {top for layer in LAYERS for top in layer} | set(OUTSIDE)
    assert top_level_names(REPO_ROOT) == named, "give each new top-level package or module its layer here"


def test_the_graph_holds_the_imports_we_know_of(graph):
    edges = {(i.importer, i.imported) for i in graph}
    assert ("server", "common.settings") in edges
    assert ("rules.decision_service", "territory.snapshot") in edges


def test_no_module_imports_from_a_higher_layer(graph):
    upward = upward_imports(graph, LAYERS)
    assert not upward, "imports from a lower layer into a higher one:\n" + "\n".join(map(str, upward))


def test_no_modules_import_each_other_in_a_circle(graph):
    circles = import_circles(graph)
    assert not circles, "circles of imports:\n" + "\n".join(
        " -> ".join(f"{i.importer} ({i.path}:{i.line})" for i in circle) + f" -> {circle[0].importer}"
        for circle in circles
    )


# -- the checks themselves, on a small made-up repository --------------------------------------------


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")


def test_an_upward_import_inside_a_function_is_found(tmp_path):
    _write(
        tmp_path,
        {
            "low/__init__.py": "",
            "low/seed.py": "import os\n\n\ndef seed():\n    from high.demo import DATA\n    return DATA\n",
            "high/__init__.py": "",
            "high/demo.py": "from low import seed\nDATA = 1\n",
            "tests/__init__.py": "",
            "tests/support.py": "",
        },
    )
    upward = upward_imports(import_graph(tmp_path, (("low",), ("high",)), ("tests",)), (("low",), ("high",)))
    assert [str(i) for i in upward] == [f"{Path('low/seed.py')}:5: low.seed imports high.demo"]


def test_an_import_of_test_code_from_the_product_is_upward(tmp_path):
    _write(
        tmp_path, {"low/__init__.py": "", "low/a.py": "from tests import support\n", "tests/support.py": ""}
    )
    upward = upward_imports(import_graph(tmp_path, (("low",),), ("tests",)), (("low",),))
    assert [(i.importer, i.imported) for i in upward] == [("low.a", "tests.support")]


def test_a_circle_through_relative_and_deferred_imports_is_found(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/engine.py": "from .evaluator import get\n",
            "pkg/evaluator.py": "def get():\n    from pkg.engine import Engine\n",
            "pkg/alone.py": "from pkg import engine\n",
        },
    )
    circles = import_circles(import_graph(tmp_path, (("pkg",),), ()))
    assert [[(i.importer, i.imported, i.line) for i in circle] for circle in circles] == [
        [("pkg.engine", "pkg.evaluator", 1), ("pkg.evaluator", "pkg.engine", 2)]
    ]


def test_imports_within_a_layer_and_downward_are_allowed(tmp_path):
    _write(
        tmp_path,
        {
            "low/__init__.py": "",
            "low/a.py": "import json\nfrom low.b import x\n",
            "low/b.py": "x = 1\n",
            "high.py": "import low.a\nfrom low import b\n",
        },
    )
    found = import_graph(tmp_path, (("low",), ("high",)), ())
    assert {(i.importer, i.imported) for i in found} == {
        ("low.a", "low.b"),
        ("high", "low.a"),
        ("high", "low.b"),
    }
    assert upward_imports(found, (("low",), ("high",))) == []
    assert import_circles(found) == []
