"""The API reference (``make docs``, pdoc) builds, and documents every exported name.

The reference is built once into a temporary folder by ``docs/build_api.py``, the script
``make docs`` runs (without the source views, to keep it quick).  Which names must appear is
read at run time from each package's ``__all__`` -- the top-level ``netprism`` and every area
``netprism.<area>`` that defines one -- so an export added later is checked without editing
this file.
"""

from __future__ import annotations

import importlib
import importlib.resources
import importlib.util
import pkgutil
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

import netprism

ROOT = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = ROOT / "docs" / "build_api.py"


def _load_build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("netprism_docs_build_api", BUILD_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """(output folder, documented module names) of one full build."""
    pytest.importorskip("pdoc", reason="pdoc is in the dev extra (make venv installs it)")
    out = tmp_path_factory.mktemp("api") / "_build"
    # the highlighted source views (half the build time) are the only thing left out
    modules = _load_build_script().build(out, show_source=False)
    return out, modules


def _page(out: Path, module_name: str) -> Path:
    return out / f"{module_name.replace('.', '/')}.html"


def _documents(html: str, name: str) -> bool:
    """pdoc gives every documented member an anchor with its (qualified) name."""
    return re.search(rf'id="{re.escape(name)}"', html) is not None


def _packages_with_all() -> list[ModuleType]:
    found = [netprism]
    for info in pkgutil.iter_modules(netprism.__path__, "netprism."):
        if info.name.rpartition(".")[2].startswith("_"):
            continue
        module = importlib.import_module(info.name)
        if hasattr(module, "__all__"):
            found.append(module)
    return found


def test_build_documents_every_public_module(reference: tuple[Path, list[str]]) -> None:
    out, modules = reference
    assert (out / "index.html").is_file()
    assert (out / "search.js").is_file()
    missing = [m for m in modules if not _page(out, m).is_file()]
    assert missing == []
    areas = {
        info.name
        for info in pkgutil.iter_modules(netprism.__path__, "netprism.")
        if not info.name.rpartition(".")[2].startswith("_")
    }
    assert "netprism" in modules
    assert areas <= set(modules), sorted(areas - set(modules))
    private = [m for m in modules if any(part.startswith("_") for part in m.split("."))]
    assert private == []
    # submodules of areas are documented too, whatever the area's __all__ says
    assert "netprism.core.capture" in modules
    assert "netprism.data.readers" in modules


def test_top_level_page_links_every_area(reference: tuple[Path, list[str]]) -> None:
    out, modules = reference
    html = _page(out, "netprism").read_text(encoding="utf-8")
    areas = [m for m in modules if m.count(".") == 1]
    unlinked = [m for m in areas if f'href="netprism/{m.rpartition(".")[2]}.html"' not in html]
    assert unlinked == []


def test_every_exported_name_is_documented(reference: tuple[Path, list[str]]) -> None:
    out, _ = reference
    packages = _packages_with_all()
    assert netprism in packages and len(packages) > 1
    undocumented = []
    for package in packages:
        page = _page(out, package.__name__)
        assert page.is_file(), package.__name__
        html = page.read_text(encoding="utf-8")
        for name in package.__all__:
            if _documents(html, name):
                continue
            obj = getattr(package, name)
            home = getattr(obj, "__module__", None)
            qualname = getattr(obj, "__qualname__", name)
            if (
                isinstance(home, str)
                and _page(out, home).is_file()
                and _documents(_page(out, home).read_text(encoding="utf-8"), qualname)
            ):
                continue
            undocumented.append(f"{package.__name__}.{name}")
    assert undocumented == []


def test_py_typed_ships_with_the_package() -> None:
    marker = importlib.resources.files("netprism") / "py.typed"
    assert marker.is_file()


def test_py_typed_is_package_data() -> None:
    """The marker reaches wheels and sdists only through setuptools' package-data."""
    if sys.version_info < (3, 11):
        pytest.skip("tomllib is Python 3.11+")
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    package_data = config["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data["netprism"]
