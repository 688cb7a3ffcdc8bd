"""The import rules of docs/architecture.md, checked on the source with ``ast``.

The graph has one node per module of ``src/netprism`` and one arrow per module-level import
(``import x``, ``from x import y``, relative imports resolved; ``from pkg import name`` where
``name`` is a submodule is an arrow to that submodule).  Imports inside functions and inside
``if TYPE_CHECKING:`` blocks are not arrows: they run late or never.

Checked: no import cycle; no arrow up the layer order; no arrow between two method areas.
``KNOWN_EXCEPTIONS`` is a ratchet: a new violation fails, and so does a listed one that no
longer occurs (delete it from the list and from docs/architecture.md).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "netprism"

# Lowest first.  A module may import modules of a lower layer; within a layer only the pairs
# in SAME_LAYER_ALLOWED (and anything within the top layer).  "" is netprism/__init__.py.
AREAS = (
    "memorization",
    "compression",
    "continual",
    "spiking",
    "federated",
    "robustness",
    "lm",
    "integrations",
)
LAYERS: tuple[tuple[str, ...], ...] = (
    ("io", "version"),  # file I/O and the version string: import nothing of ours
    ("core",),
    ("data", "models", "nn"),  # no arrows between these three today; keep it so
    ("train",),
    AREAS,
    ("report",),  # renders core.results; experiments draw their figures with it
    ("experiments",),
    ("cli", "__main__", ""),  # entry points: the CLI and the lazy top-level facade
)
# (importer, imported) top-level parts allowed within one layer.
SAME_LAYER_ALLOWED = {
    ("integrations", "memorization"),  # adapters over the memorization monitors
}

# (importer module, imported module) -> why it is tolerated for now.  Shrink only.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}


# ---------------------------------------------------------------- the graph


def module_files(root: Path = SRC, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under ``root/package``."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported: not in a def/class, not TYPE_CHECKING."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node):
                yield from _module_level_imports(node.body)
            yield from _module_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _module_level_imports(block)
            for handler in node.handlers:
                yield from _module_level_imports(handler.body)
        elif isinstance(node, ast.With):
            yield from _module_level_imports(node.body)


def _all_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import that can run, function bodies included; not ``if TYPE_CHECKING:`` ones."""
    for node in body:
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from _all_imports(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                yield from _all_imports([child])
            elif not isinstance(child, ast.expr):  # handlers, match cases: their bodies
                yield from _all_imports([n for n in ast.walk(child) if isinstance(n, ast.stmt)])


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """``name`` or its longest prefix that is a module of ours (``a.b.C`` -> ``a.b``)."""
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name if name in modules else None


def import_graph(
    root: Path = SRC, package: str = PACKAGE, *, late: bool = False
) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports at module level (with ``late``: also
    inside functions and methods)."""
    modules = module_files(root, package)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found = _all_imports(tree.body) if late else _module_level_imports(tree.body)
        for node in found:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    hit = _known(alias.name, modules)
                    if hit:
                        targets.add(hit)
                continue
            if node.level:  # relative: resolve against this module's package
                here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                here = here[: len(here) - (node.level - 1)]
                source = ".".join(here + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                hit = sub if sub in modules else _known(source, modules)
                if hit:
                    targets.add(hit)
        targets.discard(name)
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path ``[a, b, ..., a]``, or None if the graph has none."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def part(module: str) -> str:
    """The top-level part of a module: ``netprism.core.x`` -> ``core``; ``netprism`` -> ``""``."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else ""


def layer_of(module: str) -> int:
    top = part(module)
    for level, members in enumerate(LAYERS):
        if top in members:
            return level
    raise AssertionError(f"{module}: top-level part {top!r} is in no layer; add it to LAYERS")


def violations(graph: dict[str, set[str]]) -> dict[tuple[str, str], str]:
    """Every arrow against the rules, with what it breaks."""
    found = {}
    top_layer = len(LAYERS) - 1
    for src, targets in graph.items():
        for dst in targets:
            a, b = part(src), part(dst)
            if a == b:
                continue
            la, lb = layer_of(src), layer_of(dst)
            if lb > la:
                found[(src, dst)] = f"upward: layer {la} ({a or PACKAGE}) -> layer {lb} ({b})"
            elif lb == la and la != top_layer and (a, b) not in SAME_LAYER_ALLOWED:
                what = "area -> area" if a in AREAS else "same layer"
                found[(src, dst)] = f"{what}: {a} -> {b}"
    return found


# ---------------------------------------------------------------- the rules


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_graph_sees_the_package(graph: dict[str, set[str]]) -> None:
    # a broken parser would pass every rule on an empty graph
    assert len(graph) > 100
    assert "netprism.core.seed" in graph["netprism.train.loop"]
    assert "netprism.core.dist" in graph["netprism.core.curvature"]  # from pkg import submodule
    assert "netprism.core" not in graph["netprism.core.curvature"]
    assert "netprism.core.results" in graph["netprism.report.html"]


def test_every_module_has_a_layer(graph: dict[str, set[str]]) -> None:
    for module in graph:
        layer_of(module)


def test_no_import_cycle(graph: dict[str, set[str]]) -> None:
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_new_violation(graph: dict[str, set[str]]) -> None:
    new = {k: v for k, v in violations(graph).items() if k not in KNOWN_EXCEPTIONS}
    lines = [f"{src} -> {dst}  ({why})" for (src, dst), why in sorted(new.items())]
    assert not lines, "imports against docs/architecture.md:\n" + "\n".join(lines)


def test_late_imports_keep_the_rules_too() -> None:
    """Imports inside functions run late, so they cannot break module loading, but they may not
    point upward or sideways or close a circle either."""
    late = import_graph(late=True)
    assert "netprism.train.distributed" in late["netprism.experiments.base"]  # seen at all
    cycle = find_cycle(late)
    assert cycle is None, "circle through function-level imports: " + " -> ".join(cycle or [])
    new = {k: v for k, v in violations(late).items() if k not in KNOWN_EXCEPTIONS}
    assert not new, "function-level imports against docs/architecture.md: " + repr(new)


def test_known_exceptions_still_occur(graph: dict[str, set[str]]) -> None:
    gone = sorted(set(KNOWN_EXCEPTIONS) - set(violations(graph)))
    assert not gone, (
        "fixed, so remove from KNOWN_EXCEPTIONS and docs/architecture.md: "
        + ", ".join(f"{s} -> {d}" for s, d in gone)
    )


def test_report_never_imports_experiments(graph: dict[str, set[str]]) -> None:
    bad = [
        (s, d)
        for s, ds in graph.items()
        for d in ds
        if part(s) == "report" and part(d) == "experiments"
    ]
    assert bad == []


def test_architecture_doc_lists_the_known_exceptions() -> None:
    doc = (SRC.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    for src, dst in KNOWN_EXCEPTIONS:
        assert f"`{src}` -> `{dst}`" in doc, f"docs/architecture.md does not list {src} -> {dst}"


# ---------------------------------------------------------------- the checker itself


def test_parser_on_a_small_package(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import b\n"
        "from .sub import c\n"
        "if TYPE_CHECKING:\n    from pkg import d\n"
        "def f():\n    import pkg.d\n"
    )
    (pkg / "b.py").write_text("import pkg.sub.c\n")
    (pkg / "d.py").write_text("from pkg.sub.c import thing\n")
    (pkg / "sub" / "__init__.py").write_text("from .. import d\n")
    (pkg / "sub" / "c.py").write_text("thing = 1\n")
    g = import_graph(tmp_path, "pkg")
    assert g["pkg.a"] == {"pkg.b", "pkg.sub.c"}
    assert g["pkg.b"] == {"pkg.sub.c"}
    assert g["pkg.d"] == {"pkg.sub.c"}
    assert g["pkg.sub"] == {"pkg.d"}
    assert find_cycle(g) is None


def test_find_cycle_reports_the_path() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_violations_catches_up_and_sideways_arrows() -> None:
    g = {
        "netprism.core.x": {"netprism.train.loop"},
        "netprism.spiking.y": {"netprism.lm.model"},
        "netprism.integrations.z": {"netprism.memorization.scores"},
        "netprism.experiments.e": {"netprism.report.figures", "netprism.core.results"},
    }
    assert set(violations(g)) == {
        ("netprism.core.x", "netprism.train.loop"),
        ("netprism.spiking.y", "netprism.lm.model"),
    }


def test_library_tests_never_need_the_experiments() -> None:
    """What a method needs lives in its area: no test of a library layer imports an
    experiment (the experiments' own tests, the CLI's and the cross-cutting ones may)."""
    tests = SRC.parent / "tests"
    library = {"core", "data", "models", "nn", "train", "report", *AREAS}
    offenders = []
    for folder in sorted(p for p in tests.iterdir() if p.is_dir() and p.name in library):
        for path in sorted(folder.rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                if any(n.startswith(f"{PACKAGE}.experiments") for n in names):
                    offenders.append(str(path.relative_to(tests)))
    assert len(list(tests.glob("*/test_*.py"))) > 50  # the walk sees the suite
    assert not offenders, f"library tests importing experiments: {sorted(set(offenders))}"
