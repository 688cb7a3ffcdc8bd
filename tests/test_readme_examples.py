"""The README's "Your own training loop" examples run as written (each code block in turn)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(section: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {section}")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.DOTALL)


@pytest.mark.parametrize("index", range(len(_blocks("Your own training loop"))))
def test_own_loop_example_runs(index, capsys):
    code = _blocks("Your own training loop")[index]
    for module in re.findall(
        r"^(?:import|from) (lightning|pytorch_lightning|transformers)", code, re.M
    ):
        pytest.importorskip(module)
    exec(compile(code, f"README block {index}", "exec"), {"__name__": "readme_example"})
    out = capsys.readouterr().out
    aurocs = [float(v) for v in re.findall(r"(?:loss|curvature) (\d\.\d+)", out)]
    assert aurocs and all(a >= 0.8 for a in aurocs), out  # far above chance (0.5)
