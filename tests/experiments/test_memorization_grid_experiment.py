"""The memorization grid: the tiny run states its claims and figures, every cell measures
every detector, and the claims are the summaries their texts say (checked on hand-made runs)."""

import json

import pytest

from netprism.experiments import load_experiments
from netprism.experiments.base import execute
from netprism.experiments.memorization_grid.claims import claims_and_metrics, rows
from netprism.experiments.memorization_grid.config import GRID_METHODS, GridConfig
from netprism.experiments.memorization_grid.records import Cell, CellRun
from netprism.experiments.memorization_grid.run import cells, validate

load_experiments()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("grid_tiny")
    result = execute("memorization_grid", scale="tiny", out_dir=out)
    return result, json.loads((out / "memorization_grid_runs.json").read_text()), out


def test_tiny_run_measures_every_detector_in_every_cell(tiny):
    result, runs, out = tiny
    assert {c.id for c in result.claims} == {
        "grid_default_near_best", "csl_vs_curvature", "memorization_warning", "curvature_cost",
    }  # fmt: skip
    assert result.figures == ["memorization_grid_auroc.png"]
    assert (out / "memorization_grid_auroc.png").stat().st_size > 0
    assert "| row | curvature |" in (out / "memorization_grid_tables.md").read_text()
    assert len(runs) == 4  # digits x (mlp, lenet) x (symmetric, instance) x 20 % x seed 0
    for run in runs:
        assert set(run["auroc"]) == set(GRID_METHODS)
        assert all(0.0 <= v <= 1.0 for v in run["auroc"].values())


def test_lenet_only_on_images_and_bad_settings_refused():
    grid = cells(GridConfig(seeds=(0,)))
    assert not [c for c in grid if c.arch == "lenet" and c.dataset == "mnist1d"]
    assert len(grid) == (3 + 3 + 2) * 3 * 2  # (dataset, arch) pairs x noise kinds x rates
    with pytest.raises(ValueError, match="datasets must be a non-empty subset"):
        validate(GridConfig(datasets=("nope",)))
    with pytest.raises(ValueError, match="archs must be a non-empty subset"):
        validate(GridConfig(archs=("resnet",)))
    with pytest.raises(ValueError, match=r"rates must lie in \(0, 0.5\)"):
        validate(GridConfig(rates=(0.6,)))


def _run(dataset, noise, seed, curvature, aum, csl, warned, seconds=None):
    auroc = {m: 0.5 for m in GRID_METHODS} | {"curvature": curvature, "aum": aum, "csl": csl}
    cell = Cell(dataset, "mlp", noise, 0.2, seed)
    return CellRun(cell, auroc, dict(auroc), 1.0, warned, seconds or {})


def test_claims_summarise_the_runs():
    cost = [{"one_call_train": t, "one_call_curvature": c} for t, c in ((10, 12), (10, 20), (4, 6))]
    runs = [
        _run("digits", "symmetric", 0, curvature=0.90, aum=0.99, csl=0.995, warned=False,
             seconds=cost[0]),
        _run("digits", "symmetric", 1, curvature=0.70, aum=0.97, csl=0.975, warned=True,
             seconds=cost[1]),
        _run("mnist1d", "pairflip", 0, curvature=0.96, aum=0.90, csl=0.92, warned=True,
             seconds=cost[2]),
    ]  # fmt: skip
    claims, metrics, _ = claims_and_metrics(runs, GridConfig())
    near, csl, warn, curvature_cost = claims
    table = rows(runs)
    assert table["digits / mlp / symmetric 20%"]["aum"][0] == pytest.approx(0.98)
    # digits: aum 0.98 vs best csl 0.985 (within 0.01); mnist1d: aum 0.90 vs curvature 0.96
    assert (near.measured, near.target, near.holds) == (1.0, 2.0, False)
    assert csl.measured == pytest.approx(0.985 - 0.80) and csl.holds  # symmetric rows only
    # one run below 0.8 warned (caught), one above 0.95 warned (false): 1 violation
    assert warn.measured == 1.0 and not warn.holds
    assert metrics["warned_runs"] == 2.0
    # digits / mlp: 32 s of curvature over 20 s of training; mnist1d / mlp: 6 over 4
    assert curvature_cost.measured == pytest.approx(1.6) and curvature_cost.holds
    assert metrics["curvature per scored epoch / training epoch | digits / mlp"] == pytest.approx(
        1.6 * GridConfig().every
    )
