import pytest
import torch

from netprism.data import (
    load_dataset,
    partition_clients,
    permuted_tasks,
    split_tasks,
    with_conflicting_duplicates,
    with_label_noise,
)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.mark.parametrize("kind", ["symmetric", "pairflip"])
def test_label_noise_mask_is_exact(digits, kind):
    noisy, flipped = with_label_noise(digits, 0.2, kind=kind, seed=3)
    assert int(flipped.sum()) == round(0.2 * len(digits))
    assert torch.equal(noisy.y != digits.y, flipped)  # every flip changed the label
    assert torch.equal(noisy.x, digits.x) and torch.equal(noisy.extras["clean_y"], digits.y)
    if kind == "pairflip":
        assert torch.equal(noisy.y[flipped], (digits.y[flipped] + 1) % 10)
    again, flipped2 = with_label_noise(digits, 0.2, kind=kind, seed=3)
    assert torch.equal(again.y, noisy.y) and torch.equal(flipped, flipped2)


def test_instance_noise_takes_the_most_confused_other_class(digits):
    n = len(digits)
    gen = torch.Generator().manual_seed(0)
    target = (digits.y + torch.randint(1, 10, (n,), generator=gen)) % 10  # never the label
    confusion = torch.rand(n, 10, generator=gen)
    confusion[torch.arange(n), target] = 2.0  # the planted confusion of each sample
    confusion[torch.arange(n), digits.y] = 3.0  # the given class scores highest: skipped
    noisy, flipped = with_label_noise(digits, 0.2, kind="instance", confusion=confusion, seed=1)
    assert int(flipped.sum()) == round(0.2 * n)
    assert torch.equal(noisy.y[flipped], target[flipped])
    assert torch.equal(noisy.y[~flipped], digits.y[~flipped])
    _, same = with_label_noise(digits, 0.2, kind="symmetric", seed=1)
    assert torch.equal(flipped, same)  # which samples flip does not depend on the kind


def test_instance_noise_checks_its_confusion(digits):
    n = len(digits)
    with pytest.raises(ValueError, match=rf"needs confusion, a tensor \(N, K\) = \({n}, 10\)"):
        with_label_noise(digits, 0.1, kind="instance")
    with pytest.raises(ValueError, match=rf"got \({n}, 9\)"):
        with_label_noise(digits, 0.1, kind="instance", confusion=torch.zeros(len(digits), 9))
    with pytest.raises(ValueError, match="only used by kind='instance'"):
        with_label_noise(digits, 0.1, confusion=torch.zeros(len(digits), 10))
    bad = torch.zeros(len(digits), 10)
    bad[3, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        with_label_noise(digits, 0.1, kind="instance", confusion=bad)


def test_symmetric_noise_reaches_every_other_class(digits):
    noisy, flipped = with_label_noise(digits, 0.5, seed=0)
    pairs = {(int(a), int(b)) for a, b in zip(digits.y[flipped], noisy.y[flipped])}
    assert len(pairs) > 80  # of the 90 possible (clean, noisy) pairs


@pytest.mark.parametrize("rate", [1.0, -0.1, float("nan"), 1.5])
def test_label_noise_rejects_bad_rate(digits, rate):
    with pytest.raises(ValueError, match="rate must lie in"):
        with_label_noise(digits, rate)
    with pytest.raises(ValueError, match="kind must be one of"):
        with_label_noise(digits, 0.1, kind="asym")


def test_conflicting_duplicates_identical_inputs_different_labels(digits):
    ds, dup = with_conflicting_duplicates(digits, 7, seed=1)
    assert len(ds) == len(digits) + 7 and dup.shape == (7, 2)
    assert torch.equal(ds.x[dup[:, 0]], ds.x[dup[:, 1]])
    assert torch.all(ds.y[dup[:, 0]] != ds.y[dup[:, 1]])
    assert torch.equal(ds.y[: len(digits)], digits.y)
    with pytest.raises(ValueError):
        with_conflicting_duplicates(digits, 0)


def test_permuted_tasks_match_across_splits_and_are_bijections(digits):
    test = load_dataset("digits", split="test")
    tr, te = permuted_tasks(digits, 3, seed=4), permuted_tasks(test, 3, seed=4)
    assert torch.equal(tr[0].x, digits.x)  # first task is the identity
    for a, b in zip(tr, te):
        # Each task permutes pixels: labels kept, each image's multiset of values kept.
        assert torch.equal(a.y, digits.y) and torch.equal(b.y, test.y)
        assert torch.equal(
            a.x.flatten(1).sort(dim=1).values, digits.x.flatten(1).sort(dim=1).values
        )
    # The same permutation on both splits: probe with images whose pixel i holds value i.
    probe = digits.with_tensors(
        x=torch.arange(64.0).reshape(1, 1, 8, 8).repeat(len(digits), 1, 1, 1)
    )
    p_train = permuted_tasks(probe, 3, seed=4)[2].x[0].flatten()
    p_test = permuted_tasks(probe.subset(range(5)), 3, seed=4)[2].x[0].flatten()
    assert torch.equal(p_train, p_test) and not torch.equal(p_train, torch.arange(64.0))
    assert not torch.equal(tr[1].x, tr[2].x) and not torch.equal(te[1].x, te[0].x)


def test_split_tasks_partition_classes_and_relabel(digits):
    tasks = split_tasks(digits, 5)
    assert sum(len(t) for t in tasks) == len(digits)
    for t, task in enumerate(tasks):
        assert set(task.y.tolist()) == {0, 1} and task.num_classes == 2
        assert set(task.extras["global_y"].tolist()) == {2 * t, 2 * t + 1}
    with pytest.raises(ValueError, match="divide"):
        split_tasks(digits, 3)


def test_partition_clients_covers_once_and_skews_with_alpha(digits):
    iid = partition_clients(digits, 4, seed=0)
    assert sum(len(c) for c in iid) == len(digits)
    assert max(len(c) for c in iid) - min(len(c) for c in iid) <= 1

    def skew(clients):  # mean over clients of the largest class share
        return sum(float(torch.bincount(c.y, minlength=10).max()) / len(c) for c in clients) / 4

    skewed = partition_clients(digits, 4, alpha=0.1, seed=0)
    rows = torch.cat([c.x.flatten(1) for c in skewed])
    assert len(rows) == len(digits)
    assert skew(skewed) > skew(partition_clients(digits, 4, alpha=100.0, seed=0)) + 0.2
    with pytest.raises(ValueError, match="alpha"):
        partition_clients(digits, 4, alpha=0.0)


def test_conflicting_duplicates_with_noise_or_shift(digits):
    noisy, dup = with_conflicting_duplicates(digits, 10, seed=4, kind="noise")
    exact, dup_exact = with_conflicting_duplicates(digits, 10, seed=4)
    assert torch.equal(dup, dup_exact) and torch.equal(noisy.y, exact.y)  # same picks, labels
    original, copy = noisy.x[dup[:, 0]], noisy.x[dup[:, 1]]
    diff = copy - original
    assert 0 < float(diff.abs().max()) and float(diff.std()) < 0.06  # small noise, std ~0.05
    assert float(copy.min()) >= 0.0 and float(copy.max()) <= 1.0  # clipped to the pixel range
    shifted, dup = with_conflicting_duplicates(digits, 10, seed=4, kind="shift")
    assert torch.equal(shifted.x[dup[:, 1]], torch.roll(shifted.x[dup[:, 0]], 1, dims=-1))
    assert bool((shifted.y[dup[:, 0]] != shifted.y[dup[:, 1]]).all())
    with pytest.raises(ValueError, match="kind must be one of"):
        with_conflicting_duplicates(digits, 3, kind="blur")
    with pytest.raises(ValueError, match="noise_std"):
        with_conflicting_duplicates(digits, 3, kind="noise", noise_std=float("nan"))
