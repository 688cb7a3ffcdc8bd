"""One public API: every area exports its one-call functions and classes, and the README
imports only from the areas (never from the modules inside them)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import netprism

README = Path(__file__).resolve().parents[1] / "README.md"
AREAS = sorted(
    m.name for m in pkgutil.iter_modules(netprism.__path__) if m.ispkg and m.name != "experiments"
)
# Imported from their own module on purpose: each needs an optional engine (Lightning,
# transformers, flwr) that importing the area must not pull in.
DEEP_IMPORTS_ALLOWED = (
    "netprism.integrations.lightning",
    "netprism.integrations.transformers",
    "netprism.federated.flower",
)


def _readme_imports() -> list[tuple[str, list[str]]]:
    text = README.read_text(encoding="utf-8")
    found = []
    for block in re.findall(r"```python\n(.*?)```", text, flags=re.S):
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("netprism"):
                found.append((node.module or "", [a.name for a in node.names]))
    return found


@pytest.mark.parametrize("area", [a for a in AREAS if a != "integrations"])
def test_each_area_exports_its_public_names(area: str) -> None:
    module = importlib.import_module(f"netprism.{area}")
    names = getattr(module, "__all__", None)
    assert names, f"netprism.{area} exports nothing (__all__ missing or empty)"
    assert len(set(names)) == len(names), f"duplicates in netprism.{area}.__all__"
    missing = [n for n in names if not hasattr(module, n)]
    assert missing == [], f"netprism.{area}.__all__ names what it does not define: {missing}"


# One-call functions named like the module that defines them: the package attribute is the
# function, so reach the module with importlib.import_module or ``from ... import``.
SAME_NAME_AS_MODULE = {"compression": {"utilized_rank"}, "robustness": {"ood_metrics"}}


@pytest.mark.parametrize("area", AREAS)
def test_exports_hide_no_module_but_the_known_ones(area: str) -> None:
    package = importlib.import_module(f"netprism.{area}")
    modules = {m.name for m in pkgutil.iter_modules(package.__path__)}
    hidden = modules & set(getattr(package, "__all__", ()))
    assert hidden == SAME_NAME_AS_MODULE.get(area, set())
    for name in hidden:
        assert callable(getattr(package, name))
        assert importlib.import_module(f"netprism.{area}.{name}").__name__.endswith(name)


def test_readme_imports_from_areas_only() -> None:
    imports = _readme_imports()
    assert len(imports) > 10  # the README's code blocks were found
    deep = [m for m, _ in imports if m.count(".") > 1 and not m.startswith(DEEP_IMPORTS_ALLOWED)]
    assert deep == [], f"README imports from modules inside an area: {sorted(set(deep))}"


def test_every_readme_import_resolves_to_an_exported_name() -> None:
    for module_name, names in _readme_imports():
        module = importlib.import_module(module_name)
        exported = set(getattr(module, "__all__", ()))
        for name in names:
            assert hasattr(module, name), f"README: {module_name} has no {name!r}"
            if module_name.count(".") == 1:
                assert name in exported, f"README uses {module_name}.{name}, not in __all__"
