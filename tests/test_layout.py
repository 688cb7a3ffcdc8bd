"""The test tree has no __init__.py files, so pytest imports test modules by basename: two test
files with the same name in different folders break collection. Keep basenames unique."""

from collections import Counter
from pathlib import Path


def test_test_module_basenames_are_unique():
    names = Counter(p.name for p in Path(__file__).parent.rglob("test_*.py"))
    assert [n for n, c in names.items() if c > 1] == []
