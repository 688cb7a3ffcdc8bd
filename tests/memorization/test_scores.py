"""memorization_scores, selection and duplicates: planted truth recovered, peers share a run."""

import dataclasses

import pytest
import torch

from netprism.core.metrics import auroc
from netprism.core.per_sample import per_sample_losses
from netprism.data import load_dataset, with_conflicting_duplicates, with_label_noise
from netprism.memorization import (
    ALL_METHODS,
    TrainingDynamics,
    default_config,
    find_conflicting_duplicates,
    find_label_issues,
    memorization_scores,
)
from netprism.models import create_model
from netprism.train import epoch_order


@pytest.fixture(scope="module")
def noisy_run():
    ds = load_dataset("digits").subset(range(600))
    noisy, flipped = with_label_noise(ds, 0.1, seed=0)
    factory = lambda: create_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=(256,))  # noqa: E731
    cfg = dataclasses.replace(default_config(60, seed=0, device="cpu"), lr=3e-3, progress=False)
    scores = memorization_scores(factory, noisy, config=cfg, n_probes=3, every=4)
    return noisy, flipped, scores


def test_planted_label_noise_is_recovered_far_above_chance(noisy_run):
    noisy, flipped, scores = noisy_run
    assert set(scores.names) == set(ALL_METHODS)
    assert auroc(flipped, scores["loss"]) > 0.95
    assert auroc(flipped, scores["curvature"]) > 0.8
    assert auroc(flipped, scores["csl"]) > 0.95  # summed training-batch losses
    assert auroc(flipped, scores["learning_time"]) > 0.8
    top = find_label_issues(scores, fraction=0.1)  # default detector
    assert flipped[top].float().mean() > 0.7  # precision far above the 10 % base rate


def test_peers_come_from_the_same_training_run(noisy_run):
    noisy, _, scores = noisy_run
    # The last recorded loss row is exactly the returned model's per-sample loss.
    final = per_sample_losses(scores.model, noisy.x, noisy.y)
    assert torch.allclose(scores.per_epoch["loss"][-1].float(), final, atol=1e-5)
    assert scores.per_epoch["loss"].shape == (60, len(noisy))
    assert scores.per_epoch["curvature"].shape == (15, len(noisy))  # every 4th of 60 epochs
    assert torch.allclose(scores["curvature"], scores.per_epoch["curvature"].double().mean(0))
    assert torch.allclose(scores["curvature_final"], scores.per_epoch["curvature"][-1].double())
    assert len(scores.history) == 60 and scores.seconds["curvature"] > 0


def test_user_model_is_not_modified():
    model = torch.nn.Linear(4, 2)
    before = model.weight.clone()
    x, y = torch.randn(20, 4), torch.randint(0, 2, (20,))
    out = memorization_scores(
        model, (x, y), default_config(epochs=2), n_probes=1, methods=("loss",)
    )
    assert torch.equal(model.weight, before) and out.model is not model
    assert out.names == ["loss"]


def test_forgetting_and_cartography_closed_form():
    dyn = TrainingDynamics()
    # Three epochs of recorded values for four samples.
    dyn._losses = [torch.tensor([1.0, 2.0, 3.0, 4.0]).double()] * 3
    dyn._p_y = [
        torch.tensor([0.5, 0.1, 0.9, 0.2]).double(),
        torch.tensor([0.7, 0.1, 0.9, 0.4]).double(),
        torch.tensor([0.9, 0.1, 0.9, 0.6]).double(),
    ]
    dyn._margins = [torch.tensor([1.0, -1.0, 2.0, 0.5]).double()] * 3
    dyn._correct = [
        torch.tensor([True, False, True, False]),
        torch.tensor([False, False, True, True]),
        torch.tensor([True, False, True, True]),
    ]
    dyn._entropy = torch.zeros(4).double()
    s = dyn.scores_
    assert s["forgetting"].tolist() == [1.0, 4.0, 0.0, 0.0]
    assert torch.allclose(
        s["cartography_confidence"], 1 - torch.tensor([0.7, 0.1, 0.9, 0.4]).double()
    )
    assert torch.allclose(s["in_confidence"], 1 - torch.tensor([0.9, 0.1, 0.9, 0.6]).double())
    assert s["aum"].tolist() == [-1.0, 1.0, -2.0, -0.5]
    assert s["learning_time"].tolist() == [2.0, 3.0, 0.0, 1.0]


def test_csl_is_the_sum_of_the_training_batches_losses():
    # a hand-written loop with the engine's order, optimizer and schedule: CSL is the sum of
    # each sample's training-batch cross-entropy, however the batches were ordered
    torch.manual_seed(0)
    x, y = torch.randn(40, 5), torch.randint(0, 3, (40,))
    cfg = dataclasses.replace(
        default_config(3, seed=4, device="cpu"), batch_size=16, progress=False
    )
    got = memorization_scores(lambda: torch.nn.Linear(5, 3), (x, y), cfg, methods=("csl",))
    torch.manual_seed(4)
    model = torch.nn.Linear(5, 3)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=3)
    want = torch.zeros(40, dtype=torch.float64)
    for epoch in range(3):
        for idx in epoch_order(40, 4, epoch).split(16):
            losses = torch.nn.functional.cross_entropy(model(x[idx]), y[idx], reduction="none")
            opt.zero_grad()
            losses.mean().backward()
            opt.step()
            want[idx] += losses.detach().double()
        sched.step()
    assert got.names == ["csl"]
    torch.testing.assert_close(got["csl"], want, rtol=0, atol=1e-6)


def test_find_label_issues_estimates_the_planted_set():
    gen = torch.Generator().manual_seed(0)
    clean = 0.05 * torch.rand(950, generator=gen)  # a tight low-loss mode
    noisy = 1.5 + torch.rand(50, generator=gen)  # a broad high-loss mode
    loss = torch.cat([clean, noisy])[torch.randperm(1000, generator=gen)]
    planted = loss > 1.0
    found = find_label_issues({"aum": loss})  # neither fraction nor threshold: estimated
    assert sorted(found.tolist()) == planted.nonzero().flatten().tolist()
    assert bool((loss[found].diff() <= 0).all())  # ranked, most suspicious first
    assert torch.equal(find_label_issues({"aum": loss}, return_mask=True), planted)
    assert len(find_label_issues({"aum": torch.ones(5)})) == 0  # no second mode: no issues


def test_find_label_issues_selection_modes_and_errors():
    scores = {"aum": torch.tensor([0.5, 3.0, 0.1, 2.0, 1.0]), "curvature": torch.arange(5.0)}
    assert find_label_issues(scores, threshold=-1.0).tolist() == [1, 3, 4, 0, 2]  # all, ranked
    assert find_label_issues(scores, fraction=0.4).tolist() == [1, 3]
    assert find_label_issues(scores, fraction=0.4, return_mask=True).tolist() == [
        False, True, False, True, False,
    ]  # fmt: skip
    assert find_label_issues(scores, threshold=1.0).tolist() == [1, 3, 4]
    assert find_label_issues(scores, method="curvature", fraction=0.2).tolist() == [4]
    for bad in (0.0, 1.0, -0.2, 1.5):
        with pytest.raises(ValueError, match=r"fraction must lie in \(0, 1\)"):
            find_label_issues(scores, fraction=bad)
    with pytest.raises(ValueError, match="not both"):
        find_label_issues(scores, fraction=0.1, threshold=1.0)
    with pytest.raises(KeyError, match="no scores for method 'csl'"):
        find_label_issues(scores, method="csl")
    with pytest.raises(KeyError, match=r"no scores for method 'aum'; have \['loss'\]"):
        find_label_issues({"loss": torch.ones(3)})  # the default detector was not computed
    with pytest.raises(ValueError, match="finite"):
        find_label_issues(torch.tensor([1.0, float("nan")]))


def test_no_epochs_and_unknown_method_are_errors():
    x, y = torch.randn(10, 3), torch.randint(0, 2, (10,))
    with pytest.raises(ValueError, match="epochs"):
        memorization_scores(torch.nn.Linear(3, 2), (x, y), default_config(epochs=0))
    with pytest.raises(ValueError, match="methods must be"):
        memorization_scores(torch.nn.Linear(3, 2), (x, y), default_config(1), methods=("magic",))
    with pytest.raises(TypeError, match="takes config as a netprism.train.TrainConfig"):
        memorization_scores(torch.nn.Linear(3, 2), (x, y), {"epochs": 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="epochs"):  # the recipe is passed one way: config
        memorization_scores(torch.nn.Linear(3, 2), (x, y), epochs=1)  # type: ignore[call-arg]


def test_conflicting_duplicates_recovered_as_groups():
    ds = load_dataset("digits").subset(range(400))
    aug, dup = with_conflicting_duplicates(ds, 6, seed=2)
    scores = torch.rand(len(aug), generator=torch.Generator().manual_seed(0))
    scores[dup.flatten()] += 1.0  # the memorization score ranks duplicates high
    groups = find_conflicting_duplicates(aug, {"curvature": scores}, return_groups=True)
    found = {frozenset(g.indices.tolist()) for g in groups}
    planted = {frozenset(pair.tolist()) for pair in dup}
    assert planted <= found  # every planted pair is a group (exact copies: distance 0)
    for g in groups:
        assert len(set(g.labels.tolist())) > 1 and g.max_distance <= 1e-9
    assert [g.score for g in groups] == sorted((g.score for g in groups), reverse=True)
    ranked = find_conflicting_duplicates(aug, {"curvature": scores})  # the default: indices
    members = torch.cat([g.indices for g in groups])
    assert sorted(ranked.tolist()) == sorted(members.tolist())
    assert bool((scores[ranked].diff() <= 0).all())  # most suspicious first
    mask = find_conflicting_duplicates(aug, {"curvature": scores}, return_mask=True)
    assert mask.dtype == torch.bool and mask.nonzero().flatten().tolist() == sorted(ranked.tolist())
    with pytest.raises(ValueError, match="not both"):
        find_conflicting_duplicates(aug, scores, return_groups=True, return_mask=True)
    with pytest.raises(ValueError, match="same length"):
        find_conflicting_duplicates(ds, {"curvature": scores})


def test_csv_export_ranks_and_quotes(tmp_path):
    from netprism.memorization import MemorizationScores

    s = MemorizationScores({"curvature": torch.tensor([0.2, 0.9, 0.5]), "loss": torch.ones(3)})
    path = s.to_csv(tmp_path / "ranked.csv", reasons={1: 'dup of #2, "labels" 3/5'})
    lines = path.read_text().splitlines()
    assert lines[0] == "rank,index,curvature,loss,reason"
    assert lines[1].startswith("1,1,0.9,1,") and lines[1].endswith('"dup of #2, ""labels"" 3/5"')
    assert [int(r.split(",")[1]) for r in lines[1:]] == [1, 2, 0]
