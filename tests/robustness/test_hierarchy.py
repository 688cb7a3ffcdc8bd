import pytest
import torch

from netprism.robustness.hierarchy import (
    LabelTree,
    catastrophic_coefficient,
    check_reachable,
    graphical_distance,
    mistake_edge_counts,
    subpopulation_split,
)
from netprism.robustness.hierarchy_train import (
    HierarchicalMLP,
    bcnn_weights,
    conditional_config,
    conditional_fit,
    level_losses,
    predict_leaves,
    validity_masks,
)

# depth 3: root > {A, B} > {A1, A2, B1} > leaves
DEPTH3 = {
    "root": ["A", "B"],
    "A": ["A1", "A2"],
    "B": ["B1"],
    "A1": ["cat", "dog"],
    "A2": ["frog"],
    "B1": ["car", "bus"],
}


def test_graphical_distance_is_6_4_2_0_on_a_depth3_tree():
    t = LabelTree.from_children(DEPTH3)
    assert t.depth == 3 and t.leaves == ("cat", "dog", "frog", "car", "bus")
    assert [t.distance("cat", x) for x in ("car", "frog", "dog", "cat")] == [6, 4, 2, 0]
    target = t.encode(["cat"] * 4)
    pred = t.encode(["car", "frog", "dog", "cat"])
    assert graphical_distance(pred, target, t).tolist() == [6, 4, 2, 0]
    assert catastrophic_coefficient(pred, target, t) == pytest.approx(3.0)
    assert torch.equal(t.distance_matrix(), t.distance_matrix().T)


def test_path_and_lowest_common_ancestor():
    t = LabelTree.from_children(DEPTH3)
    assert t.path("dog") == ("root", "A", "A1", "dog")
    assert t.path("root") == ("root",)
    assert t.lca("cat", "dog") == "A1"
    assert t.lca("cat", "frog") == "A"
    assert t.lca("cat", "bus") == "root"
    assert t.lca("A", "dog") == "A"
    assert t.parent("A") == "root" and t.parent("root") is None


def test_unbalanced_tree_padded_with_dummies_keeps_lca_distances():
    ragged = LabelTree.from_children({"r": ["a", "x"], "a": ["b", "y"], "b": ["p", "q"]})
    assert {ragged.node_depth(leaf) for leaf in ragged.leaves} == {1, 2, 3}
    with pytest.raises(ValueError, match="same depth"):
        ragged.level_labels(torch.tensor([0, 1]))
    padded = ragged.padded()
    assert padded.leaves == ragged.leaves
    assert {padded.node_depth(leaf) for leaf in padded.leaves} == {3}
    # real leaves at the same depth keep their LCA path length
    assert padded.distance("p", "q") == ragged.distance("p", "q") == 2
    for a in padded.leaves:
        for b in padded.leaves:
            lca = padded.lca(a, b)
            expected = 2 * (3 - padded.node_depth(lca))
            assert padded.distance(a, b) == expected
    levels = padded.level_labels(padded.encode(["p", "x"]))
    assert [len(v) for v in levels] == [2, 2, 2] and levels[-1].tolist() == [0, 3]


def test_level_labels_follow_the_paths():
    t = LabelTree.from_children(DEPTH3)
    l1, l2, l3 = t.level_labels(t.encode(["cat", "frog", "bus"]))
    assert [t.level(1)[i] for i in l1] == ["A", "A", "B"]
    assert [t.level(2)[i] for i in l2] == ["A1", "A2", "B1"]
    assert l3.tolist() == [0, 2, 4]


def test_mistake_edge_counts_cover_the_path_through_the_lca():
    t = LabelTree.from_children(DEPTH3)
    counts = mistake_edge_counts(t.encode(["dog", "car"]), t.encode(["cat", "cat"]), t)
    assert counts[("A1", "cat")] == 2 and counts[("A1", "dog")] == 1
    assert counts[("root", "A")] == 1 and counts[("B1", "car")] == 1
    assert counts[("A", "A2")] == 0
    assert sum(counts.values()) == 2 + 6  # distances 2 and 6


def test_bad_trees_and_labels_raise_clear_errors():
    with pytest.raises(ValueError, match="cycle"):
        LabelTree.from_parents({"r": None, "a": "b", "b": "c", "c": "a"})
    with pytest.raises(ValueError, match="cycle"):
        LabelTree.from_children({"a": ["b"], "b": ["a"]})
    with pytest.raises(ValueError, match="unreachable"):
        LabelTree.from_children({"r": ["a"], "island": ["leaf"]})
    with pytest.raises(ValueError, match="two parents"):
        LabelTree.from_children({"r": ["a", "b"], "a": ["x"], "b": ["x"]})
    t = LabelTree.from_children(DEPTH3)
    with pytest.raises(ValueError, match="not leaves of the tree"):
        t.encode(["cat", "unicorn"])
    with pytest.raises(ValueError, match=r"unicorn.*unreachable"):
        check_reachable(t, ["cat", "unicorn"])
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        graphical_distance(torch.tensor([7]), torch.tensor([0]), t)
    with pytest.raises(ValueError, match="not in the tree"):
        t.path("unicorn")


def _four_level_tree():
    children = {"root": ["s0", "s1"]}
    for s in ("s0", "s1"):
        children[s] = [f"{s}c0", f"{s}c1", f"{s}c2"]
        for c in children[s]:
            children[c] = [f"{c}p{i}" for i in range(4)]
    return LabelTree.from_children(children)


def test_split_builder_is_disjoint_and_keeps_every_class():
    t = _four_level_tree()
    s = subpopulation_split(t, 2, n_seen=3, seed=1)
    assert s.classes == t.level(2)
    for c in s.classes:
        assert len(s.seen[c]) == 3 and len(s.unseen[c]) == 1
        assert not set(s.seen[c]) & set(s.unseen[c])
        assert set(s.seen[c]) | set(s.unseen[c]) == {x for x in t.leaves if c in t.path(x)}
    seen, unseen = s.masks(list(t.leaves))
    assert not bool((seen & unseen).any()) and bool((seen | unseen).all())
    assert s == subpopulation_split(t, 2, n_seen=3, seed=1)
    # split at the superclass level: subpopulations are the 12 leaves below each
    top = subpopulation_split(t, 1, n_seen=6, seed=0)
    assert all(len(top.unseen[c]) == 6 for c in top.classes)
    with pytest.raises(ValueError, match=r"n_seen must be an int in \[1, 3\]"):
        subpopulation_split(t, 2, n_seen=4)
    with pytest.raises(ValueError, match="class_depth"):
        subpopulation_split(t, 3, n_seen=1)
    with pytest.raises(ValueError, match="not in the split"):
        s.masks(["nowhere"])


def test_validity_masks_zero_the_loss_of_samples_with_a_wrong_coarser_level():
    torch.manual_seed(0)
    model = HierarchicalMLP(6, (2, 3, 4), hidden=(8, 8))
    x = torch.randn(12, 6, requires_grad=True)
    logits = model(x)
    p1, p2 = logits[0].argmax(1).detach(), logits[1].argmax(1).detach()
    y1 = p1.clone()
    y1[:4] = 1 - p1[:4]  # head 1 wrong on samples 0-3
    y2 = p2.clone()
    y2[4:6] = (p2[4:6] + 1) % 3  # head 2 wrong on samples 4-5
    y3 = torch.arange(12) % 4
    masks = validity_masks(logits, [y1, y2, y3])
    assert masks[0].tolist() == [1.0] * 12
    assert masks[1].tolist() == [0.0] * 4 + [1.0] * 8
    assert masks[2].tolist() == [0.0] * 6 + [1.0] * 6  # masks compose multiplicatively
    losses = level_losses(logits, [y1, y2, y3])
    (g2,) = torch.autograd.grad(losses[1], x, retain_graph=True)
    (g3,) = torch.autograd.grad(losses[2], x)
    assert torch.all(g2[:4] == 0) and torch.all(g2[4:].abs().sum(1) > 0)
    assert torch.all(g3[:6] == 0) and torch.all(g3[6:].abs().sum(1) > 0)
    # mean over the whole batch, masked samples counting as zero
    ce = torch.nn.functional.cross_entropy(logits[2].detach(), y3, reduction="none")
    assert float(losses[2].detach()) == pytest.approx(float(ce[6:].sum() / 12))


def test_bcnn_weights_move_from_coarse_to_fine():
    ws = [bcnn_weights(e, 20, 3) for e in range(20)]
    assert all(sum(w) == pytest.approx(1.0) for w in ws)
    assert ws[0][0] == 0.8 and ws[-1] == [0.0, 0.0, 1.0]
    assert bcnn_weights(5, 10, 1) == [1.0]


def _toy_data():
    t = LabelTree.from_children({"r": ["a", "b"], "a": ["a0", "a1"], "b": ["b0", "b1"]})
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(200) % 4
    centers = 3.0 * torch.randn(4, 5, generator=gen)
    return t, centers[y] + 0.3 * torch.randn(200, 5, generator=gen), y


@pytest.mark.parametrize("mode", ["sequential", "combined", "bcnn", "flat"])
def test_every_mode_learns_a_separable_toy_problem(mode):
    t, x, y = _toy_data()
    torch.manual_seed(0)
    model = HierarchicalMLP(5, (4,) if mode == "flat" else (2, 4), hidden=(16, 16))
    config = conditional_config(epochs=8, batch_size=32, seed=0)
    history = conditional_fit(model, (x, y), t, mode=mode, config=config)
    assert len(history) == 8 and history[-1] < history[0]
    assert float((predict_leaves(model, x) == y).float().mean()) > 0.9


def test_conditional_fit_rejects_bad_input():
    t, x, y = _toy_data()
    model = HierarchicalMLP(5, (2, 4), hidden=(8,))
    with pytest.raises(ValueError, match="mode must be one of"):
        conditional_fit(model, (x, y), t, mode="greedy")
    with pytest.raises(ValueError, match="leaf indices"):
        conditional_fit(model, (x, y + 4), t)
    with pytest.raises(ValueError, match="must return 2 level logits"):
        flat = HierarchicalMLP(5, (4,), hidden=(8,))
        conditional_fit(flat, (x, y), t, config=conditional_config(epochs=1))
    with pytest.raises(ValueError, match="same length"):
        conditional_fit(model, (x[:10], y), t)
    with pytest.raises(ValueError, match="head_layers"):
        HierarchicalMLP(5, (2, 4), hidden=(8,), head_layers=(0, 3))


def test_conditional_fit_takes_a_dataset():
    from netprism.data import DatasetInfo, TensorDataset

    t, x, y = _toy_data()
    ds = TensorDataset(x, y, DatasetInfo("toy", t.leaves, (5,), "test"))
    torch.manual_seed(0)
    model = HierarchicalMLP(5, (2, 4), hidden=(8,))
    assert len(conditional_fit(model, ds, t, config=conditional_config(epochs=2))) == 2
