import pytest
import torch

from netprism.data.hierarchical import hierarchical, tree_parents

SMALL = dict(n_super=3, n_mid=2, n_leaf=2, n_subpops=3, n_per_subpop=20, dim=16)


def test_generator_is_deterministic_and_splits_share_the_means():
    a = hierarchical(split="train", seed=3, **SMALL)
    b = hierarchical(split="train", seed=3, **SMALL)
    test = hierarchical(split="test", seed=3, **SMALL)
    other = hierarchical(split="train", seed=4, **SMALL)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert torch.equal(a.info.extra["means"], test.info.extra["means"])
    assert not torch.equal(a.x, test.x)
    assert not torch.equal(a.info.extra["means"], other.info.extra["means"])


def test_shapes_labels_and_tree_agree():
    ds = hierarchical(seed=0, **SMALL)
    n_classes, n_sub = 3 * 2 * 2, 3 * 2 * 2 * 3
    assert ds.x.shape == (n_sub * 20, 16) and ds.num_classes == n_classes
    parents = ds.info.extra["parents"]
    subpops = ds.info.extra["subpops"]
    assert len(subpops) == n_sub
    for i in torch.randint(0, len(ds), (30,)).tolist():
        sub = subpops[int(ds.extras["subpop"][i])]
        cls = parents[sub]
        mid = parents[cls]
        sup = parents[mid]
        assert ds.classes[int(ds.y[i])] == cls
        assert mid.endswith(f"m{int(ds.extras['level2'][i]) % 2}")
        assert sup == f"s{int(ds.extras['level1'][i])}" and parents[sup] == "root"


def test_planted_means_nest_with_offsets_shrinking_by_depth():
    ds = hierarchical(seed=0, n_per_subpop=200, noise=0.5)
    means = ds.info.extra["means"]  # (64, D), subpopulations in tree order
    dist = torch.cdist(means, means)
    sub = torch.arange(len(means))
    same = lambda k: (sub[:, None] // k) == (sub[None, :] // k)  # noqa: E731
    sibling_sub = dist[same(4) & ~torch.eye(len(means), dtype=torch.bool)].mean()
    same_mid = dist[same(8) & ~same(4)].mean()
    same_super = dist[same(16) & ~same(8)].mean()
    other_super = dist[~same(16)].mean()
    assert sibling_sub < same_mid < same_super < other_super
    # the sample means recover the planted subpopulation means
    est = torch.stack([ds.x[ds.extras["subpop"] == s].mean(0) for s in range(len(means))])
    assert float((est - means).norm(dim=1).max()) < 0.5


def test_tree_parents_and_bad_options():
    p = tree_parents(2, 2, 2, 2)
    assert sum(v == "root" for v in p.values()) == 2 and len(p) == 1 + 2 + 4 + 8 + 16
    with pytest.raises(ValueError, match="n_mid must be a positive int"):
        tree_parents(2, 0, 2, 2)
    with pytest.raises(ValueError, match="scales must be 4"):
        hierarchical(scales=(1.0, 2.0))
    with pytest.raises(ValueError, match="noise must be >= 0"):
        hierarchical(noise=-1.0)
    with pytest.raises(ValueError, match="unknown option"):
        hierarchical(depth=5)


def test_cifar100_hierarchy_from_the_users_files(tmp_path):
    import pickle

    import numpy as np

    from netprism.data.hierarchical import cifar100_hierarchy
    from netprism.robustness.hierarchy import LabelTree, subpopulation_split

    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    fine = list(range(100)) * 2
    batch = {
        b"data": np.random.default_rng(0).integers(0, 256, (200, 3072), dtype=np.uint8),
        b"fine_labels": fine,
        b"coarse_labels": [f // 5 for f in fine],  # fine class f lies under coarse f // 5
    }
    for split in ("train", "test"):
        (folder / split).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {
        b"fine_label_names": [f"f{k}".encode() for k in range(100)],
        b"coarse_label_names": [f"s{k}".encode() for k in range(20)],
    }
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    ds, parents = cifar100_hierarchy(tmp_path)
    assert ds.num_classes == 20 and ds.extras["subpop"].tolist() == fine
    tree = LabelTree.from_parents(parents)
    assert tree.depth == 2 and tree.path("f7") == ("root", "s1", "f7")
    split = subpopulation_split(tree, 1, n_seen=3, seed=0)
    seen, unseen = split.masks([f"f{k}" for k in fine])
    assert int(seen.sum()) == 120 and int(unseen.sum()) == 80
