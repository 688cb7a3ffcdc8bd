"""Tests of the report package: the HTML string, file handling, and the page Chromium renders."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from netprism.core.results import Claim, Result
from netprism.report import (
    bar_chart,
    collect_results,
    format_value,
    render_html,
    save_figure,
    write_report,
)

EVIL = "<script>alert('x')</script>"


def _results(run: Path) -> list[tuple[Path, Result]]:
    """A run folder with two experiments: 3 claims (2 hold, 1 fails) and one without claims."""
    first, second = run / "alpha", run / "beta"
    bar_chart(
        {"ours": 0.93, "finetune": 0.61, "ewc": 0.7},
        title="accuracy",
        ylabel="ACC",
        path=first / "acc.png",
        highlight="ours",
    )
    claims = [
        Claim("acc", f"accuracy stays high {EVIL}", 0.931234, 0.9, ">=", 0.61, "finetune"),
        Claim("bwt", "forgetting is small", -0.01, -0.05, ">="),
        Claim("rank", "utilized rank <= 12", 17.0, 12.0, "<="),
    ]
    alpha = Result(
        "alpha",
        config={"epochs": 3, "note": "<b>bold</b>", "lr": 0.0012345678},
        metrics={"acc": 0.931234, "bwt": -0.01},
        baselines={"finetune": {"acc": 0.61}, "ewc": {"acc": 0.7, "bwt": -0.2}},
        claims=claims,
        figures=["acc.png", "nope.png"],
        seconds=12.5,
        seed=7,
        scale="tiny",
        versions={"netprism": "0.1.0", "torch": "2.13.0"},
        paper="Paper A (2024)",
    )
    beta = Result(
        "beta",
        config={},
        metrics={"loss": 1.5},
        seconds=1.0,
        scale="tiny",
        versions={"netprism": "0.1.0", "torch": "2.13.0"},
    )
    alpha.save(first)
    beta.save(second)
    return [(first, alpha), (second, beta)]


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    _results(tmp_path / "run")
    return tmp_path / "run"


def test_strings_are_escaped(run_dir: Path) -> None:
    page = render_html(collect_results(run_dir))
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold</b>" not in page


def test_holds_and_fails_counted(run_dir: Path) -> None:
    page = render_html(collect_results(run_dir))
    assert page.count('class="holds"') == 2
    assert page.count('class="fails"') == 1
    assert "3 claims" in page and "2 hold" in page and "1 do not hold" in page
    assert "≥ 0.9" in page and "≤ 12" in page and "finetune: 0.61" in page
    assert "0.9312" in page and "0.001235" in page  # 4 significant digits
    assert "netprism 0.1.0" in page and "torch 2.13.0" in page and "13.5 s" in page


def test_figure_embedded_as_data_uri(run_dir: Path) -> None:
    page = render_html(collect_results(run_dir))
    match = re.search(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert match is not None
    assert base64.b64decode(match.group(1)) == (run_dir / "alpha" / "acc.png").read_bytes()


def test_missing_figure_is_a_note(run_dir: Path) -> None:
    page = render_html(collect_results(run_dir))
    assert "figure missing: nope.png" in page


def test_experiment_without_claims_gets_section(run_dir: Path) -> None:
    page = render_html(collect_results(run_dir))
    assert '<section class="exp" id="exp-1"><h2>beta</h2>' in page
    assert "0 of 0 claim(s) hold" in page


def test_empty_results() -> None:
    page = render_html([], title="empty run", generated=datetime(2024, 1, 2, 3, 4))
    assert "No results" in page and "0 claims" in page and "2024-01-02 03:04" in page
    assert "<table" not in page


def test_bad_claim_op_fails_instead_of_crashing() -> None:
    result = Result("x", config={}, metrics={}, claims=[Claim("c", "t", 1.0, 0.0, op="~")])
    page = render_html([result])
    assert page.count('class="fails"') == 1


def test_format_value() -> None:
    assert format_value(np.float32(0.5)) == "0.5"
    assert format_value(float("nan")) == "nan"
    assert format_value(123456.0) == "1.235e+05"
    assert format_value({"a": [1, 2.0]}) == "{a: [1, 2]}"


def test_collect_results_finds_top_and_subfolders(tmp_path: Path) -> None:
    Result("top", config={}, metrics={}).save(tmp_path)
    Result("sub", config={}, metrics={}).save(tmp_path / "sub")
    assert [r.name for _, r in collect_results(tmp_path)] == ["top", "sub"]


@pytest.mark.parametrize("text", ["{not json", '{"name": "x"}', "[1, 2]"])
def test_corrupt_result_json_names_file(tmp_path: Path, text: str) -> None:
    bad = tmp_path / "broken" / "result.json"
    bad.parent.mkdir()
    bad.write_text(text)
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        collect_results(tmp_path)


def test_collect_results_rejects_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        collect_results(tmp_path / "absent")


def test_write_report_is_atomic(run_dir: Path, tmp_path: Path) -> None:
    out = write_report(run_dir)
    assert out == run_dir / "report.html" and "<!DOCTYPE html>" in out.read_text()
    pairs = collect_results(run_dir)
    out2 = write_report(pairs, tmp_path / "site" / "index.html")
    write_report(pairs, out2)  # overwrite in place
    assert sorted(p.name for p in out2.parent.iterdir()) == ["index.html"]
    assert not list(run_dir.rglob("*.tmp"))
    with pytest.raises(ValueError, match="out_path"):
        write_report(pairs)


def test_save_figure_closes_pyplot_figures(tmp_path: Path) -> None:
    plt = pytest.importorskip("matplotlib.pyplot")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    path = save_figure(fig, tmp_path / "line.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert fig.number not in plt.get_fignums()
    assert [p.name for p in tmp_path.iterdir()] == ["line.png"]
    with pytest.raises(ValueError, match=".png"):
        save_figure(fig, tmp_path / "line.svg")


def test_bar_chart_validates(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        bar_chart({}, title="t", ylabel="y", path=tmp_path / "a.png")
    with pytest.raises(ValueError, match="highlight"):
        bar_chart({"a": 1.0}, title="t", ylabel="y", path=tmp_path / "a.png", highlight="b")
    assert bar_chart(
        {"a": float("nan"), "b": 2.0}, title="t", ylabel="y", path=tmp_path / "a.png"
    ).exists()


# ---------------------------------------------------------------------------------------------
# the page as Chromium renders it


def _chromium(page: Path, profile: Path, *args: str) -> str:
    command = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
        page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _color_pixels(rgb: np.ndarray, color: tuple[int, int, int], tol: int = 40) -> int:
    return int((np.abs(rgb.astype(int) - np.array(color)).max(axis=-1) <= tol).sum())


@pytest.mark.browser
def test_rendered_page_in_chromium(run_dir: Path, tmp_path: Path) -> None:
    if shutil.which("chromium") is None:
        pytest.skip("chromium not installed: apt-get install chromium")
    from PIL import Image

    page = write_report(run_dir)
    dom = _chromium(page, tmp_path / "profile", "--dump-dom")
    board = dom.split('<table class="board">', 1)[1].split("</table>", 1)[0]
    assert board.count('<tr class="claim">') == 3
    assert len(re.findall(r'<td class="holds"[^>]*>✓</td>', board)) == 2
    assert len(re.findall(r'<td class="fails"[^>]*>✗</td>', board)) == 1
    assert re.search(r'<img src="data:image/png;base64,', dom)
    assert "<script" not in dom  # the claim's script tag stayed text

    shot = tmp_path / "shot.png"
    _chromium(page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,900")
    rgb = np.asarray(Image.open(shot).convert("RGB"))
    assert rgb.shape[:2] == (900, 1200) and rgb.var() > 0
    assert _color_pixels(rgb, (0x1A, 0x7F, 0x37)) > 200  # the green of holding claims
    assert _color_pixels(rgb, (0xCF, 0x22, 0x2E)) > 200  # the red of failing claims


def test_faithful_twins_get_one_verdict_line_each(tmp_path: Path) -> None:
    """A claim and its ``_faithful`` twin: the three verdicts, the twin's fields kept through
    result.json, and one row per pair on the page."""
    from netprism.core.results import faithful_verdict

    fails, holds = Claim("a", "a", 0.1, 0.5), Claim("b", "b", 0.9, 0.5)
    twin_holds = Claim("a_faithful", "t", 0.7, 0.5, settings={"encoding": "rate"}, seeds=[0, 1, 2],
                       diagnosis="first layer 97 % MACs")  # fmt: skip
    twin_fails = Claim("b_faithful", "t", 0.2, 0.5, diagnosis="transfer stays high")
    assert faithful_verdict(fails, twin_holds) == (
        "holds only in the paper's setting (difference: first layer 97 % MACs)"
    )
    assert faithful_verdict(fails, twin_fails).startswith("does not hold here; mechanism: trans")
    assert faithful_verdict(holds, twin_fails).startswith("holds as reproduced (the faithful")
    result = Result("exp", {}, {}, claims=[fails, twin_holds, holds, twin_fails])
    again = Result.load(result.save(tmp_path))
    assert again.claims[1].settings == {"encoding": "rate"} and again.claims[1].seeds == [0, 1, 2]
    assert "settings" not in result.claims[0].to_dict()  # plain claims keep their old record
    page = render_html([again])
    assert page.count("holds only in the paper&#x27;s setting") == 1
    assert "encoding=rate; seeds 0, 1, 2" in page and "Faithful reproductions" in page
    assert "Faithful reproductions" not in render_html([Result("exp", {}, {}, claims=[fails])])


def test_opt_in_twin_gets_a_row_with_its_command() -> None:
    """A twin left out at this scale (``faithful_seeds`` empty) is named with its command; a run
    twin or an experiment without the field gets no such row."""
    opt_in = Result("afm", {"faithful_seeds": []}, {}, claims=[Claim("a", "a", 0.1, 0.5)])
    page = render_html([opt_in])
    assert "not run at this scale (opt-in)" in page
    assert "netprism run afm --scale small --faithful-seeds 0,1,2" in page
    for config in ({"faithful_seeds": [0, 1, 2]}, {}):
        quiet = Result("afm", config, {}, claims=[Claim("a", "a", 0.1, 0.5)])
        assert "opt-in" not in render_html([quiet])
