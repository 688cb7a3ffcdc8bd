"""Build the netprism API reference from the docstrings with pdoc: ``make docs``.

Usage: ``python docs/build_api.py [OUT_DIR]`` (default ``docs/_build``), then open
``OUT_DIR/index.html``.

Every public module is documented: the top-level package, each area package ``netprism.<area>``
and all their submodules, at any depth; a module is private (left out) when any part of its
dotted name starts with an underscore.  Modules are named explicitly because pdoc on its own
skips the submodules a package's ``__all__`` does not list.

Each page's navigation lists its package's public submodules (pdoc on its own lists only those in
``__all__``, so the top-level page would link to no area at all), and Sphinx's short-reference
tilde (``:class:`~netprism.train.TrainConfig```) is dropped rather than shown.

A module that fails to import fails the build (pdoc on its own would only warn and leave the
page out); warnings about docstrings stay warnings.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
import shutil
import sys
import warnings
from pathlib import Path
from unittest import mock

PACKAGE = "netprism"
DEFAULT_OUT = Path(__file__).resolve().parent / "_build"

# pdoc reports a module it cannot import as a warning with one of these openings.
_IMPORT_FAILURES = r"(Error importing|Error loading|Couldn't import|Cannot find spec)"
# ":class:`~a.b.C`" -> ":class:`a.b.C`" before pdoc turns the role into a link.
_ROLE_TILDE = re.compile(r"(:(?:py:)?(?:mod|func|data|const|class|meth|attr|exc|obj):`)~")


def public_modules(package: str = PACKAGE) -> list[str]:
    """Dotted names of the package and every public submodule, found on disk (not imported)."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.submodule_search_locations is None:
        raise ModuleNotFoundError(f"{package} is not an importable package")
    names = [package]

    def walk(paths: list[str], prefix: str) -> None:
        for info in sorted(pkgutil.iter_modules(paths, prefix), key=lambda m: m.name):
            if info.name.rpartition(".")[2].startswith("_"):
                continue
            names.append(info.name)
            if info.ispkg:
                sub = [str(Path(p) / info.name.rpartition(".")[2]) for p in paths]
                walk([p for p in sub if Path(p).is_dir()], info.name + ".")

    walk(list(spec.submodule_search_locations), package + ".")
    return names


def _resolve_lazy_exports(module_name: str) -> None:
    """Bind the names a package exports lazily (a module ``__getattr__``) into its namespace.

    pdoc reads ``__all__`` members from the module's ``__dict__``; the top-level package keeps
    its exports behind ``__getattr__`` so ``import netprism`` stays fast, and without this the
    top-level page would list none of them.  Only this build process is affected.
    """
    module = importlib.import_module(module_name)
    for name in getattr(module, "__all__", ()):
        if name not in vars(module):
            setattr(module, name, getattr(module, name))


def build(
    out: Path | str = DEFAULT_OUT, modules: list[str] | None = None, *, show_source: bool = True
) -> list[str]:
    """Render the reference into ``out`` (emptied first); returns the documented module names.

    ``show_source=False`` leaves out each member's highlighted source: about half the time.
    """
    import pdoc
    import pdoc.doc
    import pdoc.docstrings
    import pdoc.render

    out = Path(out)
    names = public_modules() if modules is None else list(modules)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    pdoc.render.configure(docformat="numpy", show_source=show_source, search=True)
    rst = pdoc.docstrings.rst

    def rst_without_tilde(contents: str, source_file: Path | None) -> str:
        return rst(_ROLE_TILDE.sub(r"\1", contents), source_file)

    with (
        warnings.catch_warnings(),
        mock.patch.object(pdoc.docstrings, "rst", rst_without_tilde),
    ):
        warnings.filterwarnings("error", message=_IMPORT_FAILURES)
        _resolve_lazy_exports(PACKAGE)
        docs: dict[str, pdoc.doc.Module] = {}
        for name in names:
            docs[name] = pdoc.doc.Module.from_name(name)  # RuntimeError if the import fails
        for name, module in docs.items():  # navigation: every documented direct child
            children = [m for n, m in docs.items() if n.rpartition(".")[0] == name]
            module.__dict__["submodules"] = children  # fills pdoc's cached_property
        for name, module in docs.items():
            page = out / f"{name.replace('.', '/')}.html"
            page.parent.mkdir(parents=True, exist_ok=True)
            page.write_text(pdoc.render.html_module(module, docs), encoding="utf-8")
        (out / "index.html").write_text(pdoc.render.html_index(docs), encoding="utf-8")
        (out / "search.js").write_text(pdoc.render.search_index(docs), encoding="utf-8")
    return names


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else DEFAULT_OUT
    names = build(out)
    print(f"API reference: {len(names)} modules -> {out / 'index.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
