"""Utilized rank: how much of each layer's space the data and the weight actually use.

Paper: Garg, Koguchi, Verma, Ulbricht, "Revealing the Utilized Rank of Subspaces of Learning
in Neural Networks", arXiv 2407.04797 (2024).

What follows the paper (abstract and summaries): project each weight onto the subspace its
inputs occupy (S) and the subspace its outputs occupy (T), ``W' = P_T W P_S``; the utilized
rank is ``r = min(k_S, k_T)``, the utilization ``r / min(D_in, D_out)`` and the mean layer
utilization (MLU) the mean over layers; the projection is factorized into two thin layers
and fine-tuned.

What is **our reconstruction** (the method section was not retrieved): uncentered float64
second moments ``C_x = X^T X / N`` of the layer inputs (conv: unfolded patches); the output
side from ``C_y = W C_x W^T`` (pre-bias); ``k`` = the smallest count whose cumulative energy
reaches the threshold, capped at the numerical rank (``lambda > D eps64 lambda_max``); the
factor form ``(V_T A Sigma)(B^T U_S^T)``; factorizing only where ``r (D_in + D_out) <
D_in D_out``; MLU over every analysed Linear/Conv1d/Conv2d (a Conv1d is a Conv2d of height 1:
its rows are (N*L_out, C_in*k) patches).  Grouped convs are projected group by group
(:func:`project`) but never factorized (the thin layers would mix groups).

Nothing is left out silently: a layer the report cannot analyse (grouped conv, Embedding,
ConvTranspose, norm, ...) is listed in :attr:`RankReport.skipped` with the reason, see
:func:`skipped_layers`; named explicitly, it raises.

Baselines at the same per-layer rank: plain weight SVD and whitened SVD (the optimum of the
data-weighted error), see :mod:`netprism.compression.factorize`.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import torch
from torch import nn

from netprism.compression.factorize import (
    SUPPORTED,
    Factorized,
    check_factorizable,
    eigh_desc,
    faster_factorized,
    layer_inputs,
    parameter_count,
    projection_factors,
    saves_params,
    unsupported_reason,
    weight_matrix,
    weight_svd_factors,
    weighted_error,
    whitened_svd_factors,
)
from netprism.compression.grouped import grouped_second_moments, project_grouped_conv
from netprism.core.capture import layer_covariances, select_layers
from netprism.core.subspace import _check_threshold, energy_rank

Method = Literal["projection", "weight_svd", "whitened_svd"]
METHODS: tuple[Method, ...] = ("projection", "weight_svd", "whitened_svd")
DEFAULT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)


@dataclass(eq=False)
class LayerStats:
    """A layer's weight and input second moment, with cached eigendecompositions.

    Attributes
    ----------
    name : str
    layer : nn.Module
    weight : Tensor (D_out, D_in), float64
    second_moment : Tensor (D_in, D_in), float64
        Uncentered ``C_x = X^T X / N`` of the input rows.
    n : int
        Rows accumulated (conv: patches).
    """

    name: str
    layer: nn.Module
    weight: torch.Tensor
    second_moment: torch.Tensor
    n: int

    @cached_property
    def input_eig(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Eigen-energies (D_in,), basis (D_in, D_in) and numerical rank of ``C_x``."""
        return eigh_desc(self.second_moment)

    @cached_property
    def output_eig(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The same for ``C_y = W C_x W^T`` (D_out, D_out), the pre-bias outputs."""
        return eigh_desc(self.weight @ self.second_moment @ self.weight.T)

    def dims(self, threshold: float) -> tuple[int, int]:
        """``(k_S, k_T)`` at an energy threshold, each capped at its numerical rank."""
        k = []
        for vals, _, num_rank in (self.input_eig, self.output_eig):
            k.append(min(energy_rank(vals, threshold), num_rank))
        return k[0], k[1]


@dataclass(frozen=True)
class LayerRank:
    """One layer's line of a :class:`RankReport`; ``factorizable``: ``r`` saves parameters."""

    name: str
    kind: str
    d_in: int
    d_out: int
    k_s: int
    k_t: int
    rank: int
    utilization: float
    weight_rank: int
    factorizable: bool


@dataclass(frozen=True)
class RankReport:
    """Per-layer utilized ranks at one threshold; ``mlu`` is the mean utilization.

    Attributes
    ----------
    threshold : float
    layers : tuple of LayerRank
        The analysed layers, in module order.
    skipped : dict name -> reason
        Every layer left out and why (see :func:`skipped_layers`); ``str(report)`` shows both.

    Examples
    --------
    >>> net = nn.Sequential(nn.Embedding(9, 4), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> rep = utilized_rank(net, torch.randint(0, 9, (50,)), threshold=1.0)
    >>> [layer.k_s for layer in rep.layers], round(rep.mlu, 2), list(rep.skipped)
    ([4, 3], 1.0, ['0'])
    """

    threshold: float
    layers: tuple[LayerRank, ...]
    skipped: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def mlu(self) -> float:
        """Mean layer utilization over :attr:`layers`."""
        return sum(la.utilization for la in self.layers) / len(self.layers)

    @property
    def ranks(self) -> dict[str, int]:
        """Utilized rank ``r`` per layer name."""
        return {la.name: la.rank for la in self.layers}

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "mlu": self.mlu,
            "layers": [dataclasses.asdict(la) for la in self.layers],
            "skipped": dict(self.skipped),
        }

    def to_text(self) -> str:
        """A table of :attr:`layers`, then the skipped layers with their reasons."""
        head = ("layer", "kind", "d_in", "d_out", "k_S", "k_T", "r", "util", "W rank", "factor")
        rows = [head] + [
            (la.name or "<model>", la.kind)
            + tuple(str(v) for v in (la.d_in, la.d_out, la.k_s, la.k_t, la.rank))
            + (f"{la.utilization:.3f}", str(la.weight_rank), "yes" if la.factorizable else "no")
            for la in self.layers
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
        lines = [
            f"utilized rank at threshold {self.threshold:g}: MLU {self.mlu:.3f} over "
            f"{len(self.layers)} layer(s)"
        ]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
        lines.append(f"skipped {len(self.skipped)} layer(s)" + (":" if self.skipped else ""))
        lines += [f"  {name or '<model>'}: {why}" for name, why in self.skipped.items()]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


def _by_type(layers: Any) -> bool:
    return isinstance(layers, type) or (
        isinstance(layers, tuple) and all(isinstance(t, type) for t in layers)
    )


def _has_weights(module: nn.Module) -> bool:
    """Whether the module itself holds a weight (``weight``, ``in_proj_weight``, ...)."""
    return any("weight" in name for name, _ in module.named_parameters(recurse=False))


def _reason(model: nn.Module, name: str, module: nn.Module) -> str | None:
    """:func:`unsupported_reason`, plus the ``out_proj`` a fused attention never calls."""
    parent, _, child = name.rpartition(".")
    if child == "out_proj" and isinstance(model.get_submodule(parent), nn.MultiheadAttention):
        return (
            "out_proj of nn.MultiheadAttention: the fused forward uses its weight directly, "
            "so its inputs cannot be captured"
        )
    return unsupported_reason(module)


def _split_layers(model: nn.Module, layers: Any) -> tuple[dict[str, nn.Module], dict[str, str]]:
    """``(analysable selected layers, skipped name -> reason)``, both in module order."""
    selected = select_layers(model, layers)
    default = isinstance(layers, tuple) and layers == DEFAULT_LAYERS
    keep, skipped = {}, {}
    for name, module in model.named_modules():
        if name not in selected:
            if default and _has_weights(module):
                skipped[name] = _reason(model, name, module) or "not selected"
            continue
        reason = _reason(model, name, module)
        if reason is None:
            keep[name] = module
        elif _by_type(layers):
            skipped[name] = reason
        else:
            check_factorizable(module, name)
            raise ValueError(f"cannot analyse {name!r}: {reason}")
    return keep, skipped


def skipped_layers(model: nn.Module, layers: Any = DEFAULT_LAYERS) -> dict[str, str]:
    """The layers :func:`utilized_rank` leaves out, name -> reason, in module order.

    Selected by type, the selected layers it cannot analyse (grouped convs, attention's
    ``out_proj``, ...); with the default ``layers``, also every other module that holds a
    weight (Embedding, ConvTranspose, Bilinear, norms, ...).  Named explicitly, an
    unsupported layer raises ``ValueError`` instead.

    Examples
    --------
    >>> net = nn.Sequential(nn.Conv1d(2, 4, 3), nn.BatchNorm1d(4), nn.Conv1d(4, 4, 3, groups=2))
    >>> {name: why.split(":")[0] for name, why in skipped_layers(net).items()}
    {'1': 'normalization', '2': 'grouped conv (groups=2)'}
    """
    return _split_layers(model, layers)[1]


def layer_statistics(
    model: nn.Module, data: Any, *, layers: Any = DEFAULT_LAYERS, batch_size: int = 256
) -> dict[str, LayerStats]:
    """One streaming pass: each selected layer's weight and input second moment.

    ``layers`` as :func:`netprism.core.capture.select_layers`.  Selected by type, layers that
    cannot be analysed are left out (:func:`skipped_layers` says which and why); named, they
    raise.
    """
    keep, skipped = _split_layers(model, layers)
    if not keep:
        why = "; ".join(f"{n!r}: {r}" for n, r in skipped.items())
        raise ValueError(
            f"no factorizable layers ({SUPPORTED}) selected by {layers!r}"
            + (f"; skipped {why}" if why else "")
        )
    covs = layer_covariances(model, list(keep), data, what="inputs", batch_size=batch_size)
    return {
        name: LayerStats(name, module, weight_matrix(module), covs[name].covariance(), covs[name].n)
        for name, module in keep.items()
    }


def _weight_rank(weight: torch.Tensor, rtol: float) -> int:
    s = torch.linalg.svdvals(weight)
    return int((s > rtol * s[0]).sum()) if len(s) and float(s[0]) > 0 else 0


def utilized_rank(
    model: nn.Module,
    data: Any,
    *,
    threshold: float = 0.99,
    layers: Any = DEFAULT_LAYERS,
    stats: Mapping[str, LayerStats] | None = None,
    rank_rtol: float = 1e-6,
) -> RankReport:
    """Per-layer utilized rank ``r = min(k_S, k_T)`` and the mean layer utilization.

    Parameters
    ----------
    model : nn.Module
    data : Tensor (N, ...), (x, y), Dataset or DataLoader
        Calibration inputs (every token / conv patch is a row).
    threshold : float in (0, 1]
        Energy kept in S and T; 1.0 keeps every direction above rounding noise.
    layers : layer spec, default (nn.Linear, nn.Conv1d, nn.Conv2d)
        Layers selected by type that cannot be analysed are listed in ``skipped``; with
        the default, so is every other layer that holds a weight (:func:`skipped_layers`).
    stats : dict from :func:`layer_statistics`, optional
        Reuse a pass over ``data`` (then ``data`` is ignored; ``skipped`` is the layers of
        :func:`skipped_layers` ``(model, layers)`` absent from ``stats``).
    rank_rtol : float
        ``weight_rank`` counts singular values of W above ``rank_rtol * sigma_max``.

    Returns
    -------
    RankReport
        ``str(report)`` renders the table and the skipped layers with their reasons.
    """
    threshold = _check_threshold(threshold)
    if stats is None:
        stats = layer_statistics(model, data, layers=layers)
    skipped = {n: r for n, r in skipped_layers(model, layers).items() if n not in stats}
    rows = []
    for name, st in stats.items():
        d_out, d_in = st.weight.shape
        k_s, k_t = st.dims(threshold)
        r = min(k_s, k_t)
        kind = type(st.layer).__name__
        rows.append(
            LayerRank(
                name,
                kind,
                d_in,
                d_out,
                k_s,
                k_t,
                r,
                r / min(d_in, d_out),
                _weight_rank(st.weight, rank_rtol),
                saves_params(d_in, d_out, r),
            )  # fmt: skip
        )
    return RankReport(threshold, tuple(rows), skipped)


def project_layer(
    weight: torch.Tensor, second_moment: torch.Tensor, *, threshold: float = 0.99
) -> torch.Tensor:
    """``P_T W P_S`` for a weight (D_out, D_in) and its input second moment (D_in, D_in).

    Examples
    --------
    >>> w = torch.randn(3, 4, dtype=torch.float64)
    >>> c = torch.diag(torch.tensor([1.0, 1.0, 0.0, 0.0])).double()
    >>> torch.allclose(project_layer(w, c, threshold=1.0), w * torch.tensor([1, 1, 0, 0]))
    True
    """
    threshold = _check_threshold(threshold)
    st = LayerStats("", nn.Identity(), weight.to(torch.float64), second_moment.double(), 0)
    k_s, k_t = st.dims(threshold)
    u_s, v_t = st.input_eig[1][:, :k_s], st.output_eig[1][:, :k_t]
    return v_t @ v_t.T @ st.weight @ u_s @ u_s.T


def project(
    model: nn.Module,
    data: Any,
    *,
    threshold: float = 0.99,
    layers: Any = DEFAULT_LAYERS,
    stats: Mapping[str, LayerStats] | None = None,
) -> nn.Module:
    """A deep copy of ``model`` whose selected weights are ``P_T W P_S`` (dense, same shapes).

    Grouped Conv1d/Conv2d are projected group by group (:mod:`netprism.compression.grouped`);
    other layers selected by type that cannot be analysed (:func:`skipped_layers`) are left
    unchanged.  At
    ``threshold=1.0`` it reproduces the outputs on the calibration data up to rounding (not on
    held-out data, which can excite directions the calibration set never did).
    """
    threshold = _check_threshold(threshold)
    selected = select_layers(model, layers)
    grouped = {
        n: m for n, m in selected.items() if isinstance(m, (nn.Conv1d, nn.Conv2d)) and m.groups > 1
    }
    if stats is None:
        rest = [n for n in selected if n not in grouped]
        if _by_type(layers):  # as layer_statistics: leave out what cannot be analysed
            rest = [n for n in rest if _reason(model, n, selected[n]) is None]
        stats = layer_statistics(model, data, layers=rest) if rest else {}
    moments = grouped_second_moments(model, grouped, data) if grouped else {}
    new = copy.deepcopy(model)
    modules = dict(new.named_modules())
    for name, st in stats.items():
        projected = project_layer(st.weight, st.second_moment, threshold=threshold)
        w = modules[name].weight
        w.data = projected.reshape(w.shape).to(w)
    for name, group_moments in moments.items():
        project_grouped_conv(modules[name], group_moments, threshold, project_layer)
    return new


def factors(st: LayerStats, method: str, rank: int, threshold: float) -> tuple[Any, Any]:
    """``(up (D_out, R), down (R, D_in))`` of one layer by ``method`` at rank R."""
    if method == "projection":
        k_s, k_t = st.dims(threshold)
        k_s, k_t = max(k_s, rank), max(k_t, rank)  # a rank override may exceed the dims
        u_s, v_t = st.input_eig[1][:, :k_s], st.output_eig[1][:, :k_t]
        return projection_factors(st.weight, u_s, v_t, rank)
    if method == "weight_svd":
        return weight_svd_factors(st.weight, rank)
    if method == "whitened_svd":
        return whitened_svd_factors(st.weight, st.second_moment, rank)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def decompose(
    model: nn.Module,
    data: Any,
    *,
    threshold: float = 0.99,
    method: Method = "projection",
    rank: Mapping[str, int] | None = None,
    objective: Literal["params", "latency"] = "params",
    finetune: Any = None,
    layers: Any = DEFAULT_LAYERS,
    stats: Mapping[str, LayerStats] | None = None,
    latency_batch: int = 256,
) -> nn.Module:
    """A new, smaller model: each layer becomes two thin layers where that saves parameters.

    Parameters
    ----------
    model : nn.Module
        Left untouched; a deep copy is returned.
    data : Tensor, (x, y), Dataset or DataLoader
        Calibration data (and, with a ``TrainConfig`` ``finetune``, labelled training data).
    threshold : float in (0, 1]
        Sets each layer's rank ``r = min(k_S, k_T)``; every method uses this same rank.
    method : {"projection", "weight_svd", "whitened_svd"}
        Factors ``(V_T A Sigma)(B^T U_S^T)``, ``(U_R Sigma_R)(V_R^T)`` or the whitened SVD.
    rank : dict name -> int, optional
        Per-layer override of ``r``.
    objective : {"params", "latency"}
        ``"latency"``: also require the factorized layer to run faster than the dense one on a
        batch of ``latency_batch`` inputs on this device, so the model is never slower.
    finetune : callable ``f(model)`` or ``netprism.train.TrainConfig``, optional
        Run on the new model (a TrainConfig trains it on ``data`` with :func:`~netprism.train.fit`).
    layers, stats : as :func:`utilized_rank`

    Returns
    -------
    nn.Module
        Factorized layers are :class:`~netprism.compression.factorize.Factorized`
        (``down`` then ``up``) under the original names.

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(40, 40), nn.ReLU(), nn.Linear(40, 2))
    >>> small = decompose(net, torch.randn(8, 40), threshold=0.9)
    >>> type(small[0]).__name__, small[0].rank <= 8
    ('Factorized', True)
    """
    threshold = _check_threshold(threshold)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if objective not in ("params", "latency"):
        raise ValueError(f"objective must be 'params' or 'latency', got {objective!r}")
    stats = stats if stats is not None else layer_statistics(model, data, layers=layers)
    unknown = sorted(set(rank or {}) - set(stats))
    if unknown:
        raise ValueError(f"rank override for unselected layer(s) {unknown}; have {list(stats)}")
    report = utilized_rank(model, None, threshold=threshold, stats=stats)
    ranks = {**report.ranks, **(rank or {})}
    new = copy.deepcopy(model)
    inputs = layer_inputs(model, data, list(stats), latency_batch) if objective == "latency" else {}
    for name, st in stats.items():
        d_out, d_in = st.weight.shape
        r = ranks[name]
        if r < 1 or not saves_params(d_in, d_out, r):
            continue
        up, down = factors(st, method, r, threshold)
        thin = Factorized.from_factors(st.layer, up, down)
        if objective == "latency" and not faster_factorized(st.layer, thin, inputs[name]):
            continue
        _set_module(new, name, thin)
    _run_finetune(new, data, finetune)
    return new


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def _run_finetune(model: nn.Module, data: Any, finetune: Any) -> None:
    if finetune is None:
        return
    from netprism.train import TrainConfig, fit

    if isinstance(finetune, TrainConfig):
        fit(model, data, finetune)
    elif callable(finetune):
        finetune(model)
    else:
        raise TypeError(f"finetune must be None, a callable or a TrainConfig, got {finetune!r}")


def layer_errors(
    original: nn.Module,
    compressed: nn.Module,
    data: Any = None,
    *,
    stats: Mapping[str, LayerStats] | None = None,
    layers: Any = DEFAULT_LAYERS,
) -> dict[str, float]:
    """Relative output error ``||(W - W_hat) X|| / ||W X||`` per layer, pre-bias.

    ``X`` are the **original** network's inputs to the layer on ``data`` (use held-out data),
    or the pass in ``stats`` (from :func:`layer_statistics` on ``original``).  ``W_hat`` is
    the compressed layer's (effective) weight; unchanged layers give 0.
    """
    stats = stats if stats is not None else layer_statistics(original, data, layers=layers)
    modules = dict(compressed.named_modules())
    return {
        name: weighted_error(st.weight, weight_matrix(modules[name]), st.second_moment)
        for name, st in stats.items()
    }


__all__ = [
    "METHODS",
    "LayerRank",
    "LayerStats",
    "RankReport",
    "decompose",
    "factors",
    "layer_errors",
    "layer_statistics",
    "parameter_count",
    "project",
    "project_layer",
    "skipped_layers",
    "utilized_rank",
]
