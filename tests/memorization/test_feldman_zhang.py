"""Feldman-Zhang subsampling memorization and the confident-learning peer, on planted noise.

A flipped label is predicted "correctly" (as its noisy label) only by models that trained on
it, so flipped samples must have a clearly higher memorization than clean ones.
"""

import functools
import math
import sys

import pytest
import torch

from netprism.core.metrics import auroc
from netprism.data import load_dataset, with_label_noise
from netprism.memorization.confident import (
    confident_learning_issues,
    confident_learning_scores,
    out_of_sample_probabilities,
)
from netprism.memorization.feldman_zhang import (
    FZResult,
    feldman_zhang_scores,
    memorization_from_runs,
    subset_mask,
)
from netprism.models import create_model
from netprism.train import TrainConfig

CONFIG = TrainConfig(
    epochs=40, batch_size=32, optimizer="adam", lr=0.02, weight_decay=0.0, scheduler="none"
)
# A picklable factory (needed by n_jobs > 1): a partial of the registry's front door.
FACTORY = functools.partial(create_model, "mlp", input_shape=(5,), num_classes=3, hidden=(128,))


@pytest.fixture(scope="module")
def noisy():
    ds = load_dataset("synthetic", n=120, num_classes=3, dim=5, separation=6, seed=0)
    return with_label_noise(ds, 0.1, seed=0)


@pytest.fixture(scope="module")
def result(noisy) -> FZResult:
    return feldman_zhang_scores(FACTORY, noisy[0], n_models=16, config=CONFIG, progress=False)


def test_flipped_samples_are_memorized(noisy, result):
    _, flipped = noisy
    mem_flipped, mem_clean = result.mem[flipped].nanmean(), result.mem[~flipped].nanmean()
    assert mem_flipped > mem_clean + 0.3, (float(mem_flipped), float(mem_clean))
    finite = torch.isfinite(result.mem)
    assert auroc(flipped[finite], result.mem[finite]) > 0.85


def test_parts_are_consistent(noisy, result):
    n = len(noisy[0])
    assert result.mem.shape == (n,) and result.mem.dtype == torch.float64
    assert result.masks.shape == result.correct.shape == (16, n)
    assert bool((result.n_in + result.n_out == result.n_models).all())
    assert bool((result.masks.sum(dim=1) == round(0.7 * n)).all())
    both = (result.n_in > 0) & (result.n_out > 0)
    torch.testing.assert_close(result.mem[both], (result.acc_in - result.acc_out)[both])
    assert bool(torch.isnan(result.mem[~both]).all())
    assert result.seconds > 0
    assert set(result.to_dict()) >= {"mem", "n_in", "n_out", "seconds", "n_models"}


def test_subsets_follow_the_seed(noisy, result):
    n = len(noisy[0])
    assert torch.equal(result.masks[3], subset_mask(n, round(0.7 * n), 3))
    assert not torch.equal(result.masks[0], result.masks[1])


def test_split_half_is_finite_and_positive(result):
    rel = result.split_half(seed=0)
    assert set(rel) == {"pearson", "spearman"}
    assert math.isfinite(rel["pearson"]) and math.isfinite(rel["spearman"])
    assert rel["pearson"] > 0.3
    assert result.split_half(seed=0) == rel


def test_deterministic_and_parallel_equals_serial(noisy):
    ds = noisy[0]
    cfg = TrainConfig(epochs=5, batch_size=32, optimizer="adam", lr=0.05, weight_decay=0.0)
    kwargs = {"n_models": 6, "config": cfg, "seed": 3, "progress": False}
    serial = feldman_zhang_scores(FACTORY, ds, **kwargs)
    again = feldman_zhang_scores(FACTORY, ds, **kwargs)
    threads = torch.get_num_threads()
    parallel = feldman_zhang_scores(FACTORY, ds, n_jobs=2, **kwargs)
    assert torch.get_num_threads() == threads
    for other in (again, parallel):
        assert torch.equal(serial.masks, other.masks)
        assert torch.equal(serial.correct, other.correct)
        torch.testing.assert_close(serial.mem, other.mem, equal_nan=True, rtol=0, atol=0)


def test_serial_path_restores_thread_setting(noisy):
    torch.set_num_threads(2)
    feldman_zhang_scores(
        FACTORY, noisy[0], n_models=2, config=TrainConfig(epochs=1), progress=False
    )
    assert torch.get_num_threads() == 2


def test_never_held_out_samples_get_nan():
    masks = torch.tensor([[True, True, False], [True, False, True]])
    correct = torch.tensor([[True, True, False], [False, False, True]])
    mem, acc_in, acc_out, n_in, n_out = memorization_from_runs(masks, correct)
    assert n_in.tolist() == [2, 1, 1] and n_out.tolist() == [0, 1, 1]
    assert math.isnan(mem[0]) and math.isnan(acc_out[0]) and acc_in[0] == 0.5
    assert mem[1:].tolist() == [1.0, 1.0]


def test_unpicklable_factory_is_rejected_up_front(noisy):
    with pytest.raises(TypeError, match="picklable"):
        feldman_zhang_scores(
            lambda: torch.nn.Linear(5, 3), noisy[0], n_models=2, n_jobs=2, progress=False
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_models": 1}, "n_models"),
        ({"subset_fraction": 0.0}, "subset_fraction"),
        ({"subset_fraction": 1.0}, "subset_fraction"),
        ({"subset_fraction": 0.001}, "at least one"),
        ({"n_jobs": 0}, "n_jobs"),
        ({"seed": -1}, "seed"),
        ({"config": TrainConfig(checkpoint_dir="ckpt")}, "checkpoint_dir"),
    ],
)
def test_validation_errors(noisy, kwargs, match):
    with pytest.raises(ValueError, match=match):
        feldman_zhang_scores(FACTORY, noisy[0], progress=False, **kwargs)


def test_empty_dataset_is_rejected():
    empty = (torch.zeros(0, 5), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="empty"):
        feldman_zhang_scores(FACTORY, empty, progress=False)


# --- confident learning (cleanlab) -----------------------------------------------------------


@pytest.fixture(scope="module")
def pred_probs(noisy):
    torch.set_num_threads(1)
    return out_of_sample_probabilities(FACTORY, noisy[0], folds=4, config=CONFIG, seed=0)


def test_out_of_sample_probabilities_are_probabilities(noisy, pred_probs):
    assert pred_probs.shape == (len(noisy[0]), 3)
    assert bool(torch.isfinite(pred_probs).all())
    torch.testing.assert_close(pred_probs.sum(dim=1), torch.ones(len(pred_probs)))


def test_confident_learning_finds_flipped_labels(noisy, pred_probs):
    ds, flipped = noisy
    scores = confident_learning_scores(ds.y, pred_probs)
    assert scores.shape == (len(ds),)
    assert auroc(flipped, scores) > 0.8
    issues = confident_learning_issues(ds.y, pred_probs, return_mask=True)
    assert issues.dtype == torch.bool and issues.shape == (len(ds),)
    assert int((issues & flipped).sum()) >= int(flipped.sum()) // 2
    ranked = confident_learning_issues(ds.y, pred_probs)  # default: indices, worst first
    assert (
        ranked.dtype == torch.long
        and sorted(ranked.tolist()) == issues.nonzero().flatten().tolist()
    )
    assert bool((scores[ranked].diff() <= 1e-12).all())  # ordered by 1 - self-confidence


def test_confident_learning_input_errors():
    with pytest.raises(ValueError, match="probabilities"):
        confident_learning_scores([0, 1], [[0.5, 0.9], [0.1, 0.9]])
    with pytest.raises(ValueError, match="labels"):
        confident_learning_scores([0, 2], [[0.5, 0.5], [0.1, 0.9]])


def test_missing_cleanlab_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "cleanlab", None)
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    for fn in (confident_learning_scores, confident_learning_issues):
        with pytest.raises(ImportError, match=r"pip install 'netprism\[peers\]'"):
            fn(torch.tensor([0, 1]), probs)
