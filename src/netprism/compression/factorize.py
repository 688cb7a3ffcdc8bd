"""Low-rank factor math for utilized-rank compression: three ways to split ``W ~ U V``.

Pure functions on float64 tensors (weights ``W`` (D_out, D_in), input second moments ``C_x``
(D_in, D_in)) plus :class:`Factorized`, the two-thin-layer module that replaces a ``Linear``,
``Conv1d`` or ``Conv2d``, and :func:`unsupported_reason`, why any other layer is left out.
Used by :mod:`netprism.compression.utilized_rank`.

Papers
------
- Projection factors ``(V_T A Sigma)(B^T U_S^T)``: Garg, Koguchi, Verma, Ulbricht, "Revealing
  the Utilized Rank of Subspaces of Learning in Neural Networks", arXiv 2407.04797 (2024).
  The factor form is **our reconstruction** (the paper's method section was not retrieved).
- Whitened SVD: the rank-R minimiser of ``||(W - W_R) X||_F`` (as in SVD-LLM, Wang et al.,
  arXiv 2403.07378): Cholesky ``C_x = L L^T``, SVD of ``W L``, truncate, un-whiten.
- Plain weight SVD (Eckart-Young on ``W`` alone, data-free).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any, cast

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

Factors = tuple[torch.Tensor, torch.Tensor]  # up (D_out, R), down (R, D_in)


SUPPORTED = "nn.Linear and ungrouped nn.Conv1d / nn.Conv2d"
_CONVS = (nn.Conv1d, nn.Conv2d)
_NORMS = (
    nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm,
    nn.LocalResponseNorm,
)  # fmt: skip
_REASONS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (
        nn.modules.conv._ConvTransposeNd,
        "transposed conv: each input position scatters into an output window, so its inputs "
        "are not unfold patches of one weight matrix",
    ),
    (nn.Conv3d, "3-D conv: patches are captured for 1-D and 2-D convs only"),
    (
        (nn.Embedding, nn.EmbeddingBag),
        "embedding lookup: its inputs are indices, not vectors, so it has no input subspace",
    ),
    (nn.Bilinear, "bilinear map of two inputs: no single input subspace"),
    (
        nn.MultiheadAttention,
        "fused attention: the packed q/k/v in_proj_weight is applied inside "
        "F.multi_head_attention_forward, not by an nn.Linear (use separate nn.Linear layers)",
    ),
    (
        nn.RNNBase,
        "recurrent layer: its weights act on inputs and hidden states inside a fused kernel",
    ),
    (_NORMS, "normalization: a per-feature scale, not a linear map between feature spaces"),
    (nn.PReLU, "activation slope: a per-channel scale, not a linear map between spaces"),
)


def unsupported_reason(layer: nn.Module) -> str | None:
    """Why ``layer`` cannot be analysed and factorized, or None when it can.

    Supported: ``Linear``, ungrouped ``Conv1d`` / ``Conv2d`` (any stride, padding, dilation)
    and :class:`Factorized`.

    Examples
    --------
    >>> unsupported_reason(nn.Conv1d(4, 8, 3)) is None
    True
    >>> unsupported_reason(nn.Conv2d(4, 4, 3, groups=4)).split(":")[0]
    'depthwise conv (groups=4)'
    """
    if isinstance(layer, Factorized | nn.Linear):
        return None
    if isinstance(layer, _CONVS):
        if layer.groups == 1:
            return None
        kind = "depthwise" if layer.groups == layer.in_channels else "grouped"
        return (
            f"{kind} conv (groups={layer.groups}): the two thin layers would mix groups "
            "(project() handles it group by group)"
        )
    for types, reason in _REASONS:
        if isinstance(layer, types):
            return reason
    return f"{type(layer).__name__} is not supported (only {SUPPORTED} are)"


def weight_matrix(layer: nn.Module) -> torch.Tensor:
    """The weight of a ``Linear`` or ungrouped ``Conv1d`` / ``Conv2d`` as a float64 matrix
    (D_out, D_in).

    Conv weights (C_out, C_in, kh, kw) flatten to (C_out, C_in*kh*kw) and (C_out, C_in, k) to
    (C_out, C_in*k): the feature order of :func:`netprism.core.capture.conv_patches`.

    Examples
    --------
    >>> weight_matrix(nn.Conv2d(3, 4, 3)).shape, weight_matrix(nn.Conv1d(3, 4, 5)).shape
    (torch.Size([4, 27]), torch.Size([4, 15]))
    """
    check_factorizable(layer)
    w = layer.dense_weight() if isinstance(layer, Factorized) else _weight(layer).detach()
    return w.reshape(w.shape[0], -1).to(torch.float64)  # (D_out, D_in)


def check_factorizable(layer: nn.Module, name: str = "layer") -> None:
    """Raise ``ValueError`` (with :func:`unsupported_reason`) unless ``layer`` is a ``Linear``,
    an ungrouped ``Conv1d`` / ``Conv2d`` or a :class:`Factorized`."""
    reason = unsupported_reason(layer)
    if reason is None:
        return
    if isinstance(layer, _CONVS):
        raise ValueError(
            f"cannot factorize grouped conv {name!r} (groups={layer.groups}): the two thin "
            "layers would mix groups; exclude it with layers=..."
        )
    raise ValueError(f"cannot factorize {name!r} of type {type(layer).__name__}: {reason}")


def eigh_desc(sym: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Eigenpairs of a PSD matrix (D, D), descending, and its numerical rank.

    Returns values (D,) clamped at 0, vectors (D, D) and the count of values above
    ``D * eps64 * lambda_max`` (directions below it are rounding noise).

    Examples
    --------
    >>> vals, vecs, rank = eigh_desc(torch.diag(torch.tensor([1.0, 0.0, 4.0])).double())
    >>> vals.tolist(), rank
    ([4.0, 1.0, 0.0], 2)
    """
    vals, vecs = torch.linalg.eigh(0.5 * (sym + sym.T))
    vals, vecs = vals.flip(0).clamp_min(0.0), vecs.flip(1)
    cutoff = sym.shape[0] * torch.finfo(torch.float64).eps * float(vals[0]) if len(vals) else 0
    rank = int((vals > cutoff).sum()) if len(vals) and float(vals[0]) > 0 else 0
    return vals, vecs, rank


def projection_factors(
    weight: torch.Tensor, u_s: torch.Tensor, v_t: torch.Tensor, rank: int
) -> Factors:
    """Factors of ``P_T W P_S`` at rank R: ``(V_T A_R Sigma_R)(B_R^T U_S^T)``.

    Parameters
    ----------
    weight : Tensor (D_out, D_in)
    u_s : Tensor (D_in, k_S)
        Orthonormal basis of the input subspace S.
    v_t : Tensor (D_out, k_T)
        Orthonormal basis of the output subspace T.
    rank : int
        R <= min(k_S, k_T); the core ``V_T^T W U_S = A Sigma B^T`` is cut to R.

    Examples
    --------
    >>> w = torch.randn(3, 4, dtype=torch.float64)
    >>> up, down = projection_factors(w, torch.eye(4).double(), torch.eye(3).double(), 3)
    >>> torch.allclose(up @ down, w)
    True
    """
    core = v_t.T @ weight @ u_s  # (k_T, k_S)
    a, s, bh = torch.linalg.svd(core, full_matrices=False)
    return v_t @ a[:, :rank] * s[:rank], bh[:rank] @ u_s.T  # (D_out, R), (R, D_in)


def weight_svd_factors(weight: torch.Tensor, rank: int) -> Factors:
    """Plain truncated SVD ``(U_R Sigma_R)(V_R^T)`` of ``weight`` (D_out, D_in).

    Examples
    --------
    >>> up, down = weight_svd_factors(torch.diag(torch.tensor([3.0, 1.0])).double(), 1)
    >>> (up @ down).tolist()
    [[3.0, 0.0], [0.0, 0.0]]
    """
    u, s, vh = torch.linalg.svd(weight, full_matrices=False)
    return u[:, :rank] * s[:rank], vh[:rank]


def whitened_svd_factors(
    weight: torch.Tensor, second_moment: torch.Tensor, rank: int, *, jitter: float = 1e-10
) -> Factors:
    """The rank-R minimiser of ``tr((W - W_R) C_x (W - W_R)^T)``: ``(P_R Sigma_R)(Q_R^T L^-1)``.

    ``C_x + jitter * tr(C_x)/D * I = L L^T`` (Cholesky), ``W L = P Sigma Q^T`` (SVD).

    Parameters
    ----------
    weight : Tensor (D_out, D_in)
    second_moment : Tensor (D_in, D_in)
        Uncentered ``C_x`` of the layer's inputs.
    rank : int

    Examples
    --------
    >>> w = torch.randn(3, 4, dtype=torch.float64)
    >>> up, down = whitened_svd_factors(w, torch.eye(4).double(), 3)
    >>> torch.allclose(up @ down, w)
    True
    """
    d = second_moment.shape[0]
    scale = float(torch.trace(second_moment)) / d or 1.0
    chol = torch.linalg.cholesky(second_moment + jitter * scale * torch.eye(d).to(second_moment))
    p, s, qh = torch.linalg.svd(weight @ chol, full_matrices=False)
    # Q_R^T L^-1 = (L^-T Q_R)^T: one triangular solve instead of an inverse.
    down = torch.linalg.solve_triangular(chol.T, qh[:rank].T, upper=True).T  # (R, D_in)
    return p[:, :rank] * s[:rank], down


def weighted_error(
    weight: torch.Tensor, approx: torch.Tensor, second_moment: torch.Tensor
) -> float:
    """Relative output error ``||(W - W_hat) X|| / ||W X||`` from ``C_x = X^T X / N``.

    Examples
    --------
    >>> w = torch.eye(2).double()
    >>> weighted_error(w, torch.diag(torch.tensor([1.0, 0.0])).double(), torch.eye(2).double())
    0.7071067811865476
    """
    diff = weight - approx
    num = float(torch.einsum("ij,jk,ik->", diff, second_moment, diff))
    den = float(torch.einsum("ij,jk,ik->", weight, second_moment, weight))
    return (max(num, 0.0) / den) ** 0.5 if den > 0 else 0.0


class Factorized(nn.Sequential):
    """Two thin layers ``down`` (D_in -> R, no bias) then ``up`` (R -> D_out, with bias).

    ``Linear`` becomes ``Linear(D_in, R) -> Linear(R, D_out)``; ``Conv2d`` becomes
    ``Conv2d(C_in, R, k, stride, padding, dilation) -> Conv2d(R, C_out, 1)``, and ``Conv1d``
    likewise with ``Conv1d``.

    Examples
    --------
    >>> lin = nn.Linear(6, 5)
    >>> f = Factorized.from_factors(lin, torch.randn(5, 2), torch.randn(2, 6))
    >>> f(torch.zeros(3, 6)).shape, f.rank
    (torch.Size([3, 5]), 2)
    """

    @classmethod
    def from_factors(cls, layer: nn.Module, up: torch.Tensor, down: torch.Tensor) -> Factorized:
        """Replace ``layer`` by ``up @ down`` (up (D_out, R), down (R, D_in)); keep its bias."""
        check_factorizable(layer)
        ref = _weight(layer)
        if isinstance(layer, nn.Linear):
            first, second = _linear_pair(layer, up.shape[1])
        else:
            first, second = _conv_pair(cast(nn.Conv1d | nn.Conv2d, layer), up.shape[1])
        for module, factor in ((first, down), (second, up)):
            w = _weight(module)
            w.data = factor.reshape(w.shape).to(ref).contiguous()
        if layer.bias is not None:
            cast(torch.Tensor, second.bias).data = cast(torch.Tensor, layer.bias).detach().clone()
        out = cls()
        out.add_module("down", first.to(ref.device))
        out.add_module("up", second.to(ref.device))
        return out

    @property
    def rank(self) -> int:
        """The inner width R."""
        return int(_weight(self.get_submodule("up")).shape[1])

    def dense_weight(self) -> torch.Tensor:
        """``up @ down`` as the original layer's weight matrix (D_out, D_in)."""
        up = _weight(self.get_submodule("up")).detach()
        up = up.reshape(up.shape[0], -1)  # (D_out, R)
        down = _weight(self.get_submodule("down")).detach().reshape(self.rank, -1)  # (R, D_in)
        return up @ down


def _linear_pair(layer: nn.Linear, rank: int) -> tuple[nn.Module, nn.Module]:
    """``Linear(D_in, R, bias=False)`` and ``Linear(R, D_out)`` (bias as ``layer``)."""
    first = nn.Linear(layer.in_features, rank, bias=False)
    return first, nn.Linear(rank, layer.out_features, bias=layer.bias is not None)


def _conv_pair(conv: nn.Conv1d | nn.Conv2d, rank: int) -> tuple[nn.Module, nn.Module]:
    """The conv's geometry with R output channels (no bias), then a 1x1 conv R -> C_out."""
    kind = nn.Conv1d if isinstance(conv, nn.Conv1d) else nn.Conv2d
    first = kind(
        conv.in_channels, rank, cast(Any, conv.kernel_size), cast(Any, conv.stride),
        cast(Any, conv.padding), cast(Any, conv.dilation), bias=False,
        padding_mode=conv.padding_mode,
    )  # fmt: skip
    return first, kind(rank, conv.out_channels, 1, bias=conv.bias is not None)


def _weight(module: nn.Module) -> torch.Tensor:
    return cast(torch.Tensor, module.weight)


def saves_params(d_in: int, d_out: int, rank: int) -> bool:
    """Whether ``R*(D_in + D_out) < D_in*D_out`` (factorizing saves weights).

    Examples
    --------
    >>> saves_params(100, 100, 49), saves_params(100, 100, 50)
    (True, False)
    """
    return rank * (d_in + d_out) < d_in * d_out


def time_module(module: nn.Module, x: torch.Tensor, *, repeats: int = 5) -> float:
    """Median seconds of ``module(x)`` over ``repeats`` calls after one warm-up (no grad)."""
    times = []
    with torch.no_grad():
        module(x)
        for _ in range(repeats):
            start = time.perf_counter()
            module(x)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def faster_factorized(
    dense: nn.Module,
    factored: nn.Module,
    x: torch.Tensor,
    *,
    timer: Callable[[nn.Module, torch.Tensor], float] = time_module,
    rounds: int = 3,
) -> bool:
    """True when ``factored(x)`` beats ``dense(x)`` in every one of ``rounds`` interleaved
    measurements (so a noisy CPU does not let a slower layer through)."""
    return all(timer(factored, x) < timer(dense, x) for _ in range(rounds))


def parameter_count(model: nn.Module) -> int:
    """Number of parameters (weights and biases)."""
    return sum(p.numel() for p in model.parameters())


def _first_inputs(data: Any, n: int) -> torch.Tensor:
    if isinstance(data, tuple):
        data = data[0]
    if isinstance(data, torch.Tensor):
        return data[:n]
    loader = DataLoader(data, batch_size=n) if isinstance(data, Dataset) else data
    batch = next(iter(loader))
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def layer_inputs(model: nn.Module, data: Any, names: list[str], n: int) -> dict[str, Any]:
    """The raw input of each named layer for the first ``n`` samples (for timing)."""
    seen: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())

    def hook_for(name: str) -> Any:
        def hook(_module: nn.Module, args: tuple[Any, ...], _out: Any) -> None:
            seen.setdefault(name, args[0].detach())  # returns None: the output is kept

        return hook

    hooks = [modules[name].register_forward_hook(hook_for(name)) for name in names]
    try:
        with torch.no_grad():
            model(_first_inputs(data, n))
    finally:
        for hook in hooks:
            hook.remove()
    return seen
