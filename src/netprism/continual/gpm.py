"""Gradient Projection Memory: protect old tasks by projecting gradients off their input spaces.

Saha, Garg, Roy, "Gradient Projection Memory for Continual Learning", ICLR 2021, arXiv
2103.09762; official code ``sahagobinda/GPM``.  After each task every protected layer keeps an
orthonormal basis ``M`` (D, K) of the inputs it saw (the "core gradient space"); on later tasks
each weight gradient, reshaped to (out, D), is replaced by ``G - G M M^T`` so that ``W x`` is
(nearly) unchanged for old inputs ``x``.

Code details followed (from the authors' public GPM code)
---------------------------------------------------------
- Representation matrix: ONE forward pass (eval mode) over a random subset of the task's
  training data; Linear inputs as rows, Conv inputs as ``unfold`` patches with the layer's own
  stride and padding (D = C_in/groups * kh * kw); no mean-centering (plain SVD).  Conv layers
  may use fewer examples (``conv_samples``), all of their patches kept, as in the code.
- First task: top-k right singular vectors of R (N, D) by the energy criterion.  ``rule="below"``
  (default) is the code's count ``#{i: cumsum(s^2)/sum(s^2) < eps}`` (one fewer than reaching
  eps); ``"reach"`` is the paper's Eq. 5.  Later tasks: Eqs. 8-9 via
  :func:`netprism.core.basis.incremental_basis` (residual energies over the *total* energy, added
  until eps is reached -- the code's loop, for either rule), capped at D columns.  We additionally
  re-orthogonalize the new columns (the code does not) and never add round-off directions.
- Thresholds per layer and per task index t (0-based): a float, a per-layer sequence or a
  callable ``(layer_index, t) -> eps`` (e.g. ``lambda i, t: 0.97 + 0.003 * t``).
- Batch norm and biases: after task 0 the code zeroes the gradient of every 1-D parameter before
  the heads (BN affine weights and biases); we do the same (``freeze_1d=True``) for all 1-D
  parameters outside the ``exclude``-d modules, so biases of protected layers are never projected
  but frozen after the first task.  The code's BN uses ``track_running_stats=False``; running
  statistics would drift on later tasks, so :meth:`GPM.update` warns about them.
- Heads named in ``exclude`` are never projected (task-incremental heads see only their task).
"""

from __future__ import annotations

import fnmatch
import math
import warnings
from collections.abc import Sequence
from typing import Any, Literal, cast

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from netprism.continual.runner import ContinualMethod
from netprism.continual.thresholds import Threshold, check_threshold_spec, threshold_for
from netprism.core.basis import incremental_basis
from netprism.core.capture import capture, select_layers
from netprism.core.subspace import energy_rank, subspace_from_matrix
from netprism.core.validation import NotFittedError, check_positive_int
from netprism.train.config import TrainConfig

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = (nn.modules.batchnorm._BatchNorm,)


def first_task_basis(R: torch.Tensor, threshold: float, rule: str = "below") -> torch.Tensor:
    """GPM's first-task basis (Eq. 5): top-k right singular vectors of ``R`` (N, D).

    ``k = energy_rank(sigma^2, threshold, rule)``, never counting round-off directions
    (``sigma <= max(N, D) * eps * ||R||_F``).  Returns a float64 (D, k) orthonormal basis.

    Examples
    --------
    >>> R = torch.tensor([[3.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    >>> first_task_basis(R, 0.95, "reach").shape, first_task_basis(R, 0.95, "below").shape
    (torch.Size([3, 2]), torch.Size([3, 1]))
    """
    sub = subspace_from_matrix(R)  # basis (D, min(N, D)), spectrum sigma^2
    k = energy_rank(sub.spectrum, threshold, rule=rule)  # type: ignore[arg-type]
    eps = torch.finfo(R.dtype).eps if R.dtype.is_floating_point else 1e-16
    tol = max(R.shape) * eps * math.sqrt(max(sub.total_energy, 0.0))
    k = min(k, int((sub.spectrum.sqrt() > tol).sum()))
    return sub.basis[:, :k]


def project_out(grad: torch.Tensor, projector: torch.Tensor) -> None:
    """In place ``G <- G - G P`` with G = ``grad`` reshaped to (out, D) and P (D, D).

    Examples
    --------
    >>> g = torch.ones(2, 2)
    >>> project_out(g, torch.tensor([[1.0, 0.0], [0.0, 0.0]])); g.tolist()
    [[0.0, 1.0], [0.0, 1.0]]
    """
    g2 = grad.reshape(grad.shape[0], -1)  # (out, D): conv (C_out, C_in/g*kh*kw)
    grad.copy_((g2 - g2 @ projector).view_as(grad))


def _weight(module: nn.Module) -> torch.Tensor:
    return cast(torch.Tensor, module.weight)


def sample_inputs(data: Any, n: int, gen: torch.Generator) -> torch.Tensor:
    """A random subset of at most ``n`` inputs (n, ...) from a tensor, (x, y), Dataset or
    DataLoader (its dataset), drawn with ``gen``.

    Examples
    --------
    >>> sample_inputs(torch.arange(10.0), 3, torch.Generator().manual_seed(0)).shape
    torch.Size([3])
    """
    if isinstance(data, DataLoader):
        data = data.dataset
    if isinstance(getattr(data, "x", None), torch.Tensor):  # netprism TensorDataset
        data = data.x
    if isinstance(data, (tuple, list)) and data and isinstance(data[0], torch.Tensor):
        data = data[0]
    if isinstance(data, torch.Tensor):
        idx = torch.randperm(len(data), generator=gen)[:n]
        return data[idx.to(data.device)]
    if isinstance(data, Dataset):
        size = len(data)  # type: ignore[arg-type]
        items = [data[int(i)] for i in torch.randperm(size, generator=gen)[:n]]
        return torch.stack([it[0] if isinstance(it, (tuple, list)) else it for it in items])
    raise TypeError(f"task data must be a tensor, (x, y), Dataset or DataLoader, got {data!r}")


class GPM(ContinualMethod):
    """Gradient Projection Memory (Saha et al., ICLR 2021) as a continual-learning method.

    Parameters
    ----------
    layers : layer spec, default (nn.Linear, nn.Conv2d)
        Which layers to protect (see :func:`netprism.core.capture.select_layers`).
    threshold : float, sequence of floats (one per protected layer) or callable (i, t) -> float
        Energy threshold ``eps`` in (0, 1] per layer ``i`` and task index ``t`` (0-based).
    rule : {"below", "reach"}
        First-task count: the official code's (``"below"``) or the paper's (``"reach"``).
    samples : int
        Examples of the task's data drawn for the representation matrices (the code: 125/300).
    conv_samples : int, optional
        Examples whose patches form a conv layer's matrix (the code: 24-100); default
        ``samples``.
    exclude : tuple of str
        Module names or globs never protected nor frozen (task heads), with their children.
    freeze_1d : bool
        After the first task zero the gradients of all 1-D parameters (BN affine, biases)
        outside ``exclude``, as the official code does.
    seed : int

    Attributes
    ----------
    memory_ : dict[str, Tensor of shape (D_l, K_l)]
        Orthonormal float64 basis per protected layer ``l`` (by module name): ``D_l`` its
        fan-in (``in_features``, or ``C_in / groups * kh * kw`` for a conv), ``K_l`` the
        columns kept so far (``K_l <= D_l``).
    memory_size_ : dict[str, int]
        ``K_l`` per protected layer (the columns of ``memory_``).
    thresholds_ : list over tasks of dict[str, float]
        The energy threshold each layer used at each task.
    sizes_ : list over tasks of dict[str, int]
        ``K_l`` per layer after each task (``sizes_[-1] == memory_size_``).
    n_tasks_ : int
        Tasks learned.

    All are set by the first :meth:`update` (a fitted GPM), not before.

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(4, 3, bias=False), nn.ReLU(), nn.Linear(3, 2, bias=False))
    >>> gpm = GPM(threshold=0.9).update(net, torch.randn(20, 4))
    >>> sorted(gpm.memory_size_), gpm.memory_["0"].shape[0], gpm.n_tasks_
    (['0', '2'], 4, 1)
    """

    name: str = "gpm"

    def __init__(
        self,
        layers: Any = (nn.Linear, nn.Conv2d),
        *,
        threshold: Threshold = 0.97,
        rule: Literal["below", "reach"] = "below",
        samples: int = 125,
        conv_samples: int | None = None,
        exclude: Sequence[str] = ("head", "heads"),
        freeze_1d: bool = True,
        seed: int = 0,
    ) -> None:
        if rule not in ("below", "reach"):
            raise ValueError(f"rule must be 'below' or 'reach', got {rule!r}")
        check_threshold_spec(threshold)
        check_positive_int(samples, "samples")
        if conv_samples is not None:
            check_positive_int(conv_samples, "conv_samples")
        self.layers = layers
        self.threshold = threshold
        self.rule = rule
        self.samples = samples
        self.conv_samples = conv_samples
        self.exclude = tuple(exclude)
        self.freeze_1d = freeze_1d
        self.seed = seed
        self._proj: dict[str, torch.Tensor] = {}

    def __repr__(self) -> str:
        return f"GPM(threshold={self.threshold!r}, rule={self.rule!r}, samples={self.samples})"

    # --- selection -------------------------------------------------------------------------
    def _excluded(self, name: str) -> bool:
        return any(
            name == pat or name.startswith(pat + ".") or fnmatch.fnmatchcase(name, pat)
            for pat in self.exclude
        )

    def protected_layers(self, model: nn.Module) -> dict[str, nn.Module]:
        """The protected layers of ``model``: ``layers`` minus ``exclude``, in module order."""
        chosen = {n: m for n, m in select_layers(model, self.layers).items()}
        kept = {n: m for n, m in chosen.items() if not self._excluded(n)}
        if not kept:
            raise ValueError(f"every layer selected by {self.layers!r} is excluded")
        for n, m in kept.items():
            if not isinstance(getattr(m, "weight", None), torch.Tensor):
                raise ValueError(f"layer {n!r} ({type(m).__name__}) has no weight to protect")
        return kept

    # --- memory ------------------------------------------------------------------------------
    def update(self, model: nn.Module, task_data: Any) -> GPM:
        """Grow every protected layer's memory from one pass over a subset of ``task_data``.

        Parameters
        ----------
        model : nn.Module
            Called as ``model(x)`` on a batch (n, ...) of inputs, in eval mode.
        task_data : Tensor (N, ...), (x, y), Dataset or DataLoader

        Returns
        -------
        GPM
        """
        protected = self.protected_layers(model)
        task = getattr(self, "n_tasks_", 0)
        memory: dict[str, torch.Tensor] = dict(getattr(self, "memory_", {}))
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + task)
        n_conv = self.conv_samples or self.samples
        n_draw = (
            max(self.samples, n_conv)
            if any(isinstance(m, _CONVS) for m in protected.values())
            else self.samples
        )
        x = sample_inputs(task_data, n_draw, gen)
        n = len(x)
        rows = capture(model, list(protected), x, batch_size=max(n, 1), seed=self.seed)
        assert rows is not None
        eps_used: dict[str, float] = {}
        for i, (name, module) in enumerate(protected.items()):
            R = rows[name]  # (n * positions, D)
            if isinstance(module, _CONVS):  # all patches of the first n_conv examples
                R = R[: min(n_conv, n) * (R.shape[0] // n)]
            else:
                R = R[: min(self.samples, n) * (R.shape[0] // n)]
            eps = eps_used[name] = threshold_for(self.threshold, i, name, len(protected), task)
            if name not in memory:
                memory[name] = first_task_basis(R, eps, self.rule)
            else:
                new = incremental_basis(memory[name], R, eps)
                memory[name] = torch.cat([memory[name], new], dim=1)[:, : R.shape[1]]
        self.memory_ = memory
        self.memory_size_ = {name: int(m.shape[1]) for name, m in memory.items()}
        self.thresholds_ = [*getattr(self, "thresholds_", []), eps_used]
        self.n_tasks_ = task + 1
        self.sizes_ = [*getattr(self, "sizes_", []), dict(self.memory_size_)]
        self._proj = {}
        self._warn_running_stats(model)
        return self

    def _warn_running_stats(self, model: nn.Module) -> None:
        tracked = [
            n
            for n, m in model.named_modules()
            if isinstance(m, _NORMS) and m.track_running_stats and not self._excluded(n)
        ]
        if tracked and self.n_tasks_ == 1:
            warnings.warn(
                f"batch-norm layer(s) {tracked} track running statistics, which drift on later "
                "tasks; GPM's code uses track_running_stats=False",
                stacklevel=3,
            )

    def _check_fitted(self) -> None:
        if not getattr(self, "memory_", None):
            raise NotFittedError("GPM has no memory yet: call update(model, task_data) first")

    # --- projection --------------------------------------------------------------------------
    def _projectors(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """``P = M M^T`` (D, D) per layer in the weight's dtype and device (cached)."""
        self._check_fitted()
        protected = self.protected_layers(model)
        missing = [n for n in protected if n not in self.memory_]
        if missing:
            raise NotFittedError(f"layer(s) {missing} have no memory yet")
        for name, module in protected.items():
            w = _weight(module)
            p = self._proj.get(name)
            if p is None or p.device != w.device or p.dtype != w.dtype:
                m = self.memory_[name]
                if m.shape[0] != w[0].numel():
                    raise ValueError(
                        f"layer {name!r} has fan-in {w[0].numel()}, its memory {tuple(m.shape)}"
                    )
                self._proj[name] = (m @ m.T).to(device=w.device, dtype=w.dtype)
        return self._proj

    def project_gradients(self, model: nn.Module) -> nn.Module:
        """In place: ``G <- G - G M M^T`` for every protected weight; with ``freeze_1d`` zero
        the gradients of 1-D parameters outside ``exclude``.  Returns ``model``."""
        projectors = self._projectors(model)
        for name, module in self.protected_layers(model).items():
            grad = _weight(module).grad
            if grad is not None:
                project_out(grad, projectors[name])
        if self.freeze_1d:
            for pname, param in model.named_parameters():
                if param.ndim == 1 and param.grad is not None and not self._excluded(pname):
                    param.grad.zero_()
        return model

    def project_gradients_(self, model: nn.Module) -> nn.Module:
        """Deprecated name of :meth:`project_gradients` (a trailing ``_`` marks fitted
        attributes); removed in the next release."""
        warnings.warn(
            "GPM.project_gradients_ is deprecated; use GPM.project_gradients",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.project_gradients(model)

    # --- ContinualMethod hooks ---------------------------------------------------------------
    def check_config(self, config: TrainConfig) -> None:
        """Warn about weight decay: it is not projected, so it moves old tasks' weights."""
        if config.weight_decay:
            warnings.warn(
                f"GPM with weight_decay={config.weight_decay}: the decay is not projected and "
                "changes the outputs of old tasks; use weight_decay=0 (stream_config's default)",
                stacklevel=3,
            )

    def before_task(self, model: nn.Module, task: int, data: Any) -> None:
        """Precompute the projectors once per task (nothing before the first task)."""
        if getattr(self, "memory_", None):
            self._proj = {}
            self._projectors(model)

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        """GPM adds no loss term."""
        return None

    def after_backward(self, model: nn.Module, task: int, batch: Any) -> None:
        """Project the gradients once at least one task is in memory."""
        if getattr(self, "memory_", None):
            self.project_gradients(model)

    def after_task(self, model: nn.Module, task: int, data: Any) -> None:
        """Add the finished task's input spaces to the memory (:meth:`update`)."""
        self.update(model, data)
