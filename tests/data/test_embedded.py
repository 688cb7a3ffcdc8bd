import pytest
import torch

from netprism.data import DATASETS, DatasetInfo, TensorDataset, load_dataset
from netprism.data.embedded import make_lowrank


def test_digits_fixed_stratified_disjoint_split():
    train, test = load_dataset("digits"), load_dataset("digits", split="test", seed=5)
    assert (len(train), len(test)) == (1347, 450)
    assert train.x.shape[1:] == (1, 8, 8) and 0 <= float(train.x.min()) <= float(train.x.max()) <= 1
    assert torch.equal(load_dataset("digits", seed=9).x, train.x)  # split ignores seed
    # Stratified: every class has ~25 % of its samples in test.
    frac = torch.bincount(test.y) / (torch.bincount(test.y) + torch.bincount(train.y))
    assert torch.all((frac - 0.25).abs() < 0.02)
    rows = {tuple(r.tolist()) for r in train.x.flatten(1)}
    overlap = sum(tuple(r.tolist()) in rows for r in test.x.flatten(1))
    assert overlap < 5  # only genuinely identical digits may coincide


def test_mnist1d_offline_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("NETPRISM_CACHE", str(tmp_path))
    train = load_dataset("mnist1d")
    assert train.x.shape == (4000, 40) and len(load_dataset("mnist1d", split="test")) == 1000
    assert (tmp_path / "mnist1d_n5000_split0.8.npz").exists()
    assert torch.equal(load_dataset("mnist1d").x, train.x)  # from the cache, identical
    (tmp_path / "mnist1d_n5000_split0.8.npz").write_bytes(b"corrupt")  # a corrupt cache is rebuilt
    assert torch.equal(load_dataset("mnist1d").x, train.x)


def test_synthetic_planted_centres_recovered():
    train = load_dataset("synthetic", n=400, num_classes=3, dim=10, seed=2)
    test = load_dataset("synthetic", split="test", n=200, num_classes=3, dim=10, seed=2)
    centers = train.info.extra["centers"]
    assert torch.equal(centers, test.info.extra["centers"])
    assert not torch.equal(train.x[:10], test.x[:10])
    nearest = torch.cdist(test.x, centers).argmin(dim=1)
    assert (nearest == test.y).float().mean() > 0.97


def test_lowrank_rank_and_span():
    x, basis = make_lowrank(200, 16, 3, noise=0.0, seed=1)
    assert torch.linalg.matrix_rank(x) == 3
    residual = x - x @ basis @ basis.T  # projection onto the planted span loses nothing
    assert residual.abs().max() < 1e-4
    ds = load_dataset("lowrank", n=100, dim=16, rank=3, seed=1)
    assert ds.info.extra["basis"].shape == (16, 3)
    with pytest.raises(ValueError, match="rank must be <= dim"):
        make_lowrank(10, 4, 5)


def test_unknown_dataset_split_and_option_are_rejected():
    with pytest.raises(KeyError, match="unknown dataset 'digit'.*did you mean 'digits'"):
        load_dataset("digit")
    with pytest.raises(ValueError, match="split must be one of"):
        load_dataset("digits", split="val")
    with pytest.raises(TypeError, match="unexpected option"):
        load_dataset("digits", n=3)
    assert {"digits", "mnist1d", "synthetic", "lowrank"} <= set(DATASETS.names())


def _info(k=2, shape=(2,)):
    return DatasetInfo("toy", tuple(map(str, range(k))), shape, "test")


@pytest.mark.parametrize(
    "x, y, match",
    [
        (torch.tensor([[0.0, float("nan")]]), torch.tensor([0]), "finite"),
        (torch.tensor([[0.0, float("inf")]]), torch.tensor([0]), "finite"),
        (torch.zeros(1, 2), torch.tensor([2]), r"\[0, 2\)"),
        (torch.zeros(1, 2), torch.tensor([-1]), r"\[0, 2\)"),
        (torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), "empty"),
        (torch.zeros(2, 3), torch.tensor([0, 1]), "shape"),
        (torch.zeros(2, 2), torch.tensor([0]), "same length"),
    ],
)
def test_tensor_dataset_validates(x, y, match):
    with pytest.raises(ValueError, match=match):
        TensorDataset(x, y, _info())


def test_tensor_dataset_subset_keeps_metadata_and_extras():
    ds = TensorDataset(
        torch.arange(8.0).reshape(4, 2),
        torch.tensor([0, 1, 0, 1]),
        _info(),
        {"group": torch.tensor([5, 6, 7, 8])},
    )
    sub = ds.subset([3, 1])
    assert sub.y.tolist() == [1, 1] and sub.extras["group"].tolist() == [8, 6]
    assert sub.classes == ds.classes and ds[2][0].tolist() == [4.0, 5.0]
