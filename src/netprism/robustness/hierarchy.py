"""Label trees, BREEDS-style subpopulation splits and graphical distance.

Mukherjee, Garg & Roy, "Encoding Hierarchical Information in Neural Networks helps in
Subpopulation Shift", IEEE TAI 2023, arXiv 2112.10844.  The classes are nodes of a label tree;
each class is made of unlabelled subpopulations (its descendants), training sees some of them
and testing the others (the BREEDS protocol of Santurkar, Tsipras & Madry, ICLR 2021).  A
mistake's severity is its *graphical distance*: the tree path length between the true and the
predicted leaf (6 / 4 / 2 / 0 in a depth-3 tree); its mean over all samples, correct ones
included, is the *catastrophic coefficient*.

The models and conditional training live in :mod:`netprism.robustness.hierarchy_train`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from netprism.core.seed import make_generator


class LabelTree:
    """A rooted label tree; its leaves, in depth-first order, are the class indices ``0..K-1``.

    Build it with :meth:`from_parents` (child -> parent, the root maps to ``None``) or
    :meth:`from_children` (node -> children).  Cycles, several roots, nodes that cannot be
    reached from the root and nodes with two parents raise ``ValueError``.

    Examples
    --------
    >>> t = LabelTree.from_children({"r": ["a", "b"], "a": ["a1", "a2"], "b": ["b1"]})
    >>> t.leaves, t.depth
    (('a1', 'a2', 'b1'), 2)
    >>> t.path("a2"), t.lca("a1", "a2"), t.distance("a1", "b1")
    (('r', 'a', 'a2'), 'a', 4)
    """

    def __init__(self, parents: Mapping[str, str | None]) -> None:
        self._parent = _check_parents(parents)
        self.root = next(n for n, p in self._parent.items() if p is None)
        self._children: dict[str, list[str]] = {n: [] for n in self._parent}
        for node, parent in self._parent.items():
            if parent is not None:
                self._children[parent].append(node)
        order: list[str] = []
        stack = [self.root]
        while stack:  # depth-first, children in insertion order
            node = stack.pop()
            order.append(node)
            stack.extend(reversed(self._children[node]))
        self.nodes: tuple[str, ...] = tuple(order)
        self.leaves: tuple[str, ...] = tuple(n for n in order if not self._children[n])
        self._leaf_index = {leaf: i for i, leaf in enumerate(self.leaves)}
        self._depth = {n: len(self.path(n)) - 1 for n in order}
        self.depth = max(self._depth[leaf] for leaf in self.leaves)

    @classmethod
    def from_parents(cls, parents: Mapping[str, str | None]) -> LabelTree:
        """The tree of a child -> parent map (exactly one node maps to ``None``)."""
        return cls(parents)

    @classmethod
    def from_children(cls, children: Mapping[str, Sequence[str]]) -> LabelTree:
        """The tree of a node -> children map; the root is the one node that is no child."""
        parents: dict[str, str | None] = {}
        for node, kids in children.items():
            if isinstance(kids, str):
                raise ValueError(f"children of {node!r} must be a sequence of names, got {kids!r}")
            for kid in kids:
                if kid in parents and parents[kid] is not None:
                    raise ValueError(
                        f"node {kid!r} has two parents ({parents[kid]!r} and {node!r}): "
                        "a label tree needs exactly one parent per node"
                    )
                parents[kid] = node
        for node in children:  # a node that is no one's child is a root
            parents.setdefault(node, None)
        return cls(parents)

    def parent(self, node: str) -> str | None:
        """The parent of ``node`` (``None`` for the root)."""
        return self._parent[self._check(node)]

    def children(self, node: str) -> tuple[str, ...]:
        return tuple(self._children[self._check(node)])

    def node_depth(self, node: str) -> int:
        """Edges from the root to ``node``."""
        return self._depth[self._check(node)]

    def path(self, node: str) -> tuple[str, ...]:
        """Root-to-``node`` path, both ends included."""
        out = [self._check(node)]
        while (p := self._parent[out[-1]]) is not None:
            out.append(p)
        return tuple(reversed(out))

    def lca(self, a: str, b: str) -> str:
        """Lowest common ancestor of ``a`` and ``b``."""
        common = self.root
        for x, y in zip(self.path(a), self.path(b)):
            if x != y:
                break
            common = x
        return common

    def distance(self, a: str, b: str) -> int:
        """Tree path length between ``a`` and ``b`` through their lowest common ancestor."""
        return self.node_depth(a) + self.node_depth(b) - 2 * self.node_depth(self.lca(a, b))

    def distance_matrix(self) -> torch.Tensor:
        """Graphical distances between leaves, (K, K) int64, indexed by class index."""
        k = len(self.leaves)
        out = torch.zeros(k, k, dtype=torch.long)
        for i, a in enumerate(self.leaves):
            for j in range(i + 1, k):
                out[i, j] = out[j, i] = self.distance(a, self.leaves[j])
        return out

    def level(self, depth: int) -> tuple[str, ...]:
        """Nodes ``depth`` edges below the root, in depth-first order."""
        if not isinstance(depth, int) or not 0 <= depth <= self.depth:
            raise ValueError(f"depth must be an int in [0, {self.depth}], got {depth!r}")
        return tuple(n for n in self.nodes if self._depth[n] == depth)

    def encode(self, names: Sequence[str]) -> torch.Tensor:
        """Class indices (N,) of leaf names; a name that is no leaf raises ``ValueError``."""
        bad = sorted({n for n in names if n not in self._leaf_index})
        if bad:
            raise ValueError(f"labels {bad[:5]} are not leaves of the tree; leaves: {self.leaves}")
        return torch.tensor([self._leaf_index[n] for n in names], dtype=torch.long)

    def level_labels(self, y: torch.Tensor) -> list[torch.Tensor]:
        """Per-level targets of leaf labels ``y`` (N,): level ``l = 1..depth`` indexes
        :meth:`level` ``(l)``; the last one is ``y``.  Leaves must all sit at one depth
        (pad a ragged tree with :meth:`padded`)."""
        self.check_labels(y)
        if any(self._depth[leaf] != self.depth for leaf in self.leaves):
            raise ValueError("level_labels needs every leaf at the same depth: use tree.padded()")
        table = torch.zeros(self.depth, len(self.leaves), dtype=torch.long)  # (L, K)
        for d in range(1, self.depth + 1):
            index = {n: i for i, n in enumerate(self.level(d))}
            for k, leaf in enumerate(self.leaves):
                table[d - 1, k] = index[self.path(leaf)[d]]
        return [table[d][y] for d in range(self.depth)]

    def padded(self) -> LabelTree:
        """A copy where each shallow leaf gets chains of ``"<leaf>~dummy<i>"`` nodes above it,
        so every leaf sits at the maximum depth (LIVING-17's "dummy" level-2 nodes).  Leaf
        names, order and distances between real leaves at equal depth are kept."""
        parents = dict(self._parent)
        for leaf in self.leaves:
            for i in range(self.depth - self._depth[leaf]):
                dummy = f"{leaf}~dummy{i}"
                parents[dummy], parents[leaf] = parents[leaf], dummy
        return LabelTree(parents)

    def truncated(self, depth: int) -> LabelTree:
        """The tree cut ``depth`` edges below the root (deeper nodes dropped)."""
        self.level(depth)  # validates depth
        return LabelTree({n: p for n, p in self._parent.items() if self._depth[n] <= depth})

    def check_labels(self, y: torch.Tensor, name: str = "labels") -> torch.Tensor:
        """Raise unless ``y`` is (N,) integer class indices of this tree's leaves."""
        k = len(self.leaves)
        if not isinstance(y, torch.Tensor) or y.ndim != 1 or y.is_floating_point():
            raise ValueError(f"{name} must be a 1-D integer tensor (N,), got {y!r:.60}")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= k):
            raise ValueError(
                f"{name} must be leaf indices of the tree in [0, {k}), got values in "
                f"[{int(y.min())}, {int(y.max())}]"
            )
        return y

    def to_parents(self) -> dict[str, str | None]:
        return {n: self._parent[n] for n in self.nodes}

    def _check(self, node: str) -> str:
        if node not in self._parent:
            raise ValueError(f"node {node!r} is not in the tree")
        return node

    def __repr__(self) -> str:
        return f"LabelTree(root={self.root!r}, depth={self.depth}, leaves={len(self.leaves)})"


def _check_parents(parents: Mapping[str, str | None]) -> dict[str, str | None]:
    """Validate a child -> parent map: one root, known parents, no cycle, all reachable."""
    if not parents:
        raise ValueError("a label tree needs at least one node, got an empty map")
    out = dict(parents)
    unknown = sorted({p for p in out.values() if p is not None and p not in out})
    for p in unknown:  # a parent named only as a parent: a root if nothing else is
        out[p] = None
    roots = sorted(n for n, p in out.items() if p is None)
    if not roots:
        raise ValueError("a label tree needs one root, got none: every node has a parent (a cycle)")
    if len(roots) > 1:
        raise ValueError(
            f"a label tree needs exactly one root, got {roots}: the nodes under {roots[1:]} "
            f"are unreachable from {roots[0]!r}"
        )
    for start in out:
        seen = {start}
        node = out[start]
        while node is not None:
            if node in seen:
                raise ValueError(f"the tree has a cycle through {node!r} (reached from {start!r})")
            seen.add(node)
            node = out[node]
    return out


def check_reachable(tree: LabelTree, names: Sequence[str]) -> None:
    """Raise if any of ``names`` (e.g. a dataset's classes) is not a leaf reachable from the
    tree's root."""
    missing = sorted(set(names) - set(tree.leaves))
    if missing:
        raise ValueError(
            f"classes {missing[:5]} are unreachable: not leaves under root {tree.root!r}"
        )


def graphical_distance(pred: torch.Tensor, target: torch.Tensor, tree: LabelTree) -> torch.Tensor:
    """Per-sample mistake severity: tree path length between predicted and true leaf, (N,).

    Examples
    --------
    >>> t = LabelTree.from_children({"r": ["a", "b"], "a": ["a1", "a2"], "b": ["b1"]})
    >>> graphical_distance(torch.tensor([0, 1, 2]), torch.tensor([0, 0, 0]), t).tolist()
    [0, 2, 4]
    """
    tree.check_labels(pred, "pred")
    tree.check_labels(target, "target")
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target must match, got {tuple(pred.shape)}, {tuple(target.shape)}"
        )
    return tree.distance_matrix()[target, pred]


def catastrophic_coefficient(pred: torch.Tensor, target: torch.Tensor, tree: LabelTree) -> float:
    """Mean graphical distance over **all** samples (correct ones count 0); lower is better."""
    return float(graphical_distance(pred, target, tree).float().mean())


def mistake_edge_counts(
    pred: torch.Tensor, target: torch.Tensor, tree: LabelTree
) -> dict[tuple[str, str], int]:
    """How many mistakes cross each edge ``(parent, child)`` on their true-to-predicted path.

    A mistake between cousins crosses every edge from each leaf up to their lowest common
    ancestor, so edges near the root carry the catastrophic mistakes.
    """
    counts = {(p, n): 0 for n, p in tree.to_parents().items() if p is not None}
    pairs: dict[tuple[int, int], int] = {}
    for t, p in zip(tree.check_labels(target).tolist(), tree.check_labels(pred).tolist()):
        if t != p:
            pairs[(t, p)] = pairs.get((t, p), 0) + 1
    for (t, p), n in pairs.items():
        a, b = tree.leaves[t], tree.leaves[p]
        top = tree.node_depth(tree.lca(a, b))
        for leaf in (a, b):
            path = tree.path(leaf)
            for d in range(top, len(path) - 1):
                counts[(path[d], path[d + 1])] += n
    return counts


@dataclass(frozen=True)
class SubpopulationSplit:
    """Which subpopulations (tree leaves) of each class (a node at ``class_depth``) are seen.

    Attributes
    ----------
    classes : tuple of str
        The class nodes, whose order gives the class indices ``0..K-1``.
    seen, unseen : dict str -> tuple of str
        Per class, its training (source) and held-out (target) subpopulations; disjoint, and
        every class has at least one of each.
    """

    classes: tuple[str, ...]
    seen: dict[str, tuple[str, ...]]
    unseen: dict[str, tuple[str, ...]]

    def masks(self, subpops: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Boolean (N,) masks of samples from seen and from unseen subpopulations."""
        seen = {s for v in self.seen.values() for s in v}
        unseen = {s for v in self.unseen.values() for s in v}
        bad = sorted(set(subpops) - seen - unseen)
        if bad:
            raise ValueError(f"subpopulations {bad[:5]} are not in the split")
        return (
            torch.tensor([s in seen for s in subpops], dtype=torch.bool),
            torch.tensor([s in unseen for s in subpops], dtype=torch.bool),
        )

    def class_of(self) -> dict[str, int]:
        """Subpopulation name -> class index."""
        return {s: k for k, c in enumerate(self.classes) for s in (*self.seen[c], *self.unseen[c])}


def subpopulation_split(
    tree: LabelTree, class_depth: int, *, n_seen: int, seed: int = 0
) -> SubpopulationSplit:
    """BREEDS-style split: per class node at ``class_depth``, ``n_seen`` of the leaves below it
    (chosen at random with ``seed``) are seen, the others unseen.

    Examples
    --------
    >>> t = LabelTree.from_children({"r": ["a", "b"], "a": ["a1", "a2"], "b": ["b1", "b2"]})
    >>> s = subpopulation_split(t, 1, n_seen=1, seed=0)
    >>> s.classes, all(len(s.seen[c]) == len(s.unseen[c]) == 1 for c in s.classes)
    (('a', 'b'), True)
    """
    if not isinstance(class_depth, int) or not 0 < class_depth < tree.depth:
        raise ValueError(
            f"class_depth must be an int in [1, {tree.depth - 1}] so classes have "
            f"subpopulations below them, got {class_depth!r}"
        )
    classes = tree.level(class_depth)
    below = {c: [x for x in tree.leaves if c in tree.path(x)] for c in classes}
    fewest = min(len(v) for v in below.values())
    if not isinstance(n_seen, int) or not 1 <= n_seen < fewest:
        raise ValueError(
            f"n_seen must be an int in [1, {fewest - 1}] (the smallest class has {fewest} "
            f"subpopulations and each class needs seen and unseen ones), got {n_seen!r}"
        )
    gen = make_generator(seed)
    seen, unseen = {}, {}
    for c in classes:
        order = torch.randperm(len(below[c]), generator=gen).tolist()
        chosen = set(order[:n_seen])
        seen[c] = tuple(s for i, s in enumerate(below[c]) if i in chosen)
        unseen[c] = tuple(s for i, s in enumerate(below[c]) if i not in chosen)
    return SubpopulationSplit(classes, seen, unseen)
