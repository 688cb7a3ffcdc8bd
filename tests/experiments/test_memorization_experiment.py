"""The memorization experiment's machinery at tiny scale (the claims are judged at small)."""

import csv

import pytest

from netprism.experiments import load_experiments
from netprism.experiments.base import execute

load_experiments()
CLAIMS = [
    "mislabel_auroc",
    "average_beats_final",
    "fz_agreement",
    "fz_cost",
    "duplicates_auroc",
    "curvature_vs_best_peer",
    "combined_beats_all",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("mem")
    return execute(
        "memorization", scale="tiny", out_dir=out, export_csv=True, epochs=(20,), hidden=(256,)
    ), out


def test_seven_claims_with_fixed_ids(tiny):
    result, _ = tiny
    assert [c.id for c in result.claims] == CLAIMS


def test_planted_noise_recovered_and_peers_from_the_same_runs(tiny):
    result, _ = tiny
    # Peers are scored on the same runs: every method has an AUROC for the same setting.
    methods = set(result.baselines)
    assert {"loss", "aum", "forgetting", "entropy", "confident_learning"} <= methods
    assert result.baselines["loss"]["digits 10%"] > 0.9  # far above chance (0.5)
    assert "curvature AUROC digits 10%" in result.metrics


def test_duplicates_found(tiny):
    result, out = tiny
    # Far above chance (0.5) after 20 tiny epochs; the 0.95 target is judged at small scale.
    assert result.baselines["loss"]["dup_exact wd=0"] > 0.7
    assert "| curvature |" in (out / "auroc_tables.md").read_text()


def test_estimated_label_issue_sets_are_measured(tiny):
    result, out = tiny
    table = (out / "auroc_tables.md").read_text()
    assert "| estimated set (no size given) |" in table
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines() if " on " in line}
    assert set(rows) == {
        "loss on digits", "curvature on digits", "cleanlab find_label_issues on digits",
    }  # fmt: skip
    cells = rows["loss on digits"].strip("|").split("|")
    precision, recall = (float(c.split("±")[0]) for c in cells[4:6])
    # the default detector's estimated set holds most planted flips (>= 0.5 of them) and is
    # mostly flips (far above the 10 % base rate), after 20 tiny epochs
    assert recall > 0.5 and precision > 0.3


def test_set_quality_counts_hits():
    import torch

    from netprism.experiments.memorization.training_runs import set_quality

    found = torch.tensor([True, True, False, False, True])
    planted = torch.tensor([True, False, False, True, True])
    assert set_quality(found, planted) == {
        "size": 3, "planted": 3, "precision": 2 / 3, "recall": 2 / 3,
    }  # fmt: skip


def test_figures_and_csv_written(tiny):
    result, out = tiny
    for name in result.figures:
        assert (out / name).stat().st_size > 1000
    assert any(name.endswith("_roc.png") for name in result.figures)
    rows = list(csv.reader((out / "ranked_samples.csv").open()))
    assert rows[0][:3] == ["rank", "index", "curvature"] and len(rows) == 1347 + 1
    assert any(r[-1] for r in rows[1:])  # the top samples carry a reason


def test_users_own_cifar10_folder_end_to_end(tmp_path):
    """`netprism run memorization --dataset cifar10 --data-dir DIR --model ... --export-csv`."""
    import pickle

    import numpy as np

    from netprism.cli import main

    rng = np.random.default_rng(0)
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, (40, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, 40)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"label_names": [f"c{k}".encode() for k in range(10)]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    out = tmp_path / "out"
    code = main(
        [
            "run",
            "memorization",
            "--scale",
            "tiny",
            "--dataset",
            "cifar10",
            "--data-dir",
            str(tmp_path / "data"),
            "--model",
            "lenet",
            "--export-csv",
            "--fz-models",
            "0",
            "--cleanlab-epochs",
            "0",
            "--duplicates",
            "5",
            "--epochs",
            "2",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    rows = list(csv.reader((out / "ranked_samples.csv").open()))
    assert len(rows) == 200 + 1 and rows[0][1] == "index"
    assert sorted(int(r[1]) for r in rows[1:]) == list(range(200))


def test_fz_cost_is_timed_on_runs_at_the_library_defaults(tiny):
    from netprism.memorization.names import DEFAULT_EVERY, DEFAULT_H, DEFAULT_N_PROBES

    result, _ = tiny
    cost = next(c for c in result.claims if c.id == "fz_cost")
    assert (
        f"h = {DEFAULT_H:g}, {DEFAULT_N_PROBES} probes, every {DEFAULT_EVERY} epochs" in cost.text
    )
    ratio = result.metrics["fz cost ratio, library defaults"]
    r = result.metrics["fz pearson, library defaults"]
    assert cost.measured == pytest.approx(min(ratio / 50, r / 0.5))
    assert "fz cost ratio, the experiment's curvature settings" in result.metrics
