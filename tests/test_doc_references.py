"""Docstrings point users to files that ship with the repository, never outside it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "netprism"
DOC_PATH = re.compile(r"docs/[\w/.-]+\.md")


def _sources() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_every_docs_path_named_in_the_source_exists() -> None:
    named = {
        (path.relative_to(ROOT), ref)
        for path in _sources()
        for ref in DOC_PATH.findall(path.read_text(encoding="utf-8"))
    }
    assert len(named) >= 15  # the areas and the experiments cite their method notes
    missing = sorted(f"{src}: {ref}" for src, ref in named if not (ROOT / ref).is_file())
    assert not missing, "docs paths that do not exist:\n" + "\n".join(missing)


def test_no_reference_outside_the_repository() -> None:
    bad = [
        str(path.relative_to(ROOT))
        for path in _sources()
        if "../shared" in path.read_text(encoding="utf-8")
        or "shared/papers" in path.read_text(encoding="utf-8")
    ]
    assert not bad, f"modules pointing outside the repository: {bad}"


def test_every_area_and_experiment_cites_its_method_note() -> None:
    packages = [SRC / a for a in ("memorization", "compression", "continual", "spiking")]
    packages += [SRC / a for a in ("federated", "robustness", "lm")]
    packages += [p for p in (SRC / "experiments").iterdir() if (p / "__init__.py").is_file()]
    uncited = [
        p.name
        for p in packages
        if p.name != "train" and "docs/methods/" not in (p / "__init__.py").read_text()
    ]
    assert not uncited, f"packages whose docstring names no method note: {uncited}"
