"""SPACE: a frozen Core of units grown per task by channel-wise PCA; old tasks keep their units.

Saha, Garg, Ankit, Roy, "SPACE: Structured Compression and Sharing of Representational Space
for Continual Learning", IEEE Access 9, 2021, arXiv 2001.08650; official code
``sahagobinda/CL_PCA``.  Every hidden ``Linear`` / ``Conv`` layer's output units (filters) are
split into a **Core** (a prefix ``[0, n_core)``, frozen, shared by all later tasks) and a
**Residual** (``[n_core, width)``, free).  Task ``t`` is learned in two phases:

1. train with the Core frozen (gradient rows ``[0, n_core)`` of weight and bias zeroed);
2. run channel-wise PCA of each layer's outputs on the task's data (rows = samples x positions,
   columns = units, centered) and decide how many units the task adds to the Core; zero the
   rest of the Residual and retrain the new units only; then re-initialize the unused tail
   from a fresh random layer, free for the next task.

How many units (the "ResNet variant" of the code, all layers in one shot, units kept by index):

- first task: ``k = energy_rank(sigma^2, var_kept, rule)`` on the layer's centered outputs
  (``rule="below"``, the code's count of components whose cumulative ratio is below
  ``var_kept``; at least one unit);
- later tasks, **projection-subtraction**: ``U_c`` = left singular vectors of the Core columns
  ``A[:, :n_core]``; the Residual columns ``A_r = A[:, n_core:]`` with energy
  ``V = ||A_r||^2``; ``A_rem = A_r - U_c U_c^T A_r``; starting from ``(V - ||A_rem||^2) / V``,
  add ``sigma_i^2(A_rem) / V`` until ``var_kept`` is reached (the GPM loop,
  :func:`netprism.core.basis.incremental_basis` applied to the columns).  A full layer adds
  nothing ("resource exhausted", recorded in ``exhausted_``).

Inference (task-incremental): task ``j`` uses the first ``n_j`` units of every layer (later
units' outputs are zeroed, which is the same as zeroing their incoming weights in the next
layer) and its own stored head.  Every weight that sub-network reads is frozen afterwards, so
its outputs are bit-identical after any later task: zero forgetting by construction.  The
structured sparsity is counted as per-task MACs (:meth:`SPACE.task_macs`).

Scope, stated: units are the outputs of ``nn.Linear`` / ``nn.Conv1d`` / ``nn.Conv2d`` layers
(``groups=1``) in a chain; activations must map 0 to 0 (ReLU, GELU, tanh, SiLU); batch norm is
refused (a zeroed channel would come out as its shift ``beta``).  Units are kept by index, not
rotated into the principal basis (the code's CIFAR variant rotates).  Optimizers must not decay
weights, or frozen rows would move: :meth:`SPACE.check_config` refuses a recipe with
``weight_decay > 0``.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator
from typing import Any, Literal, cast

import torch
from torch import nn

from netprism.continual.gpm import sample_inputs
from netprism.continual.runner import ContinualMethod, Trainer
from netprism.continual.thresholds import Threshold, check_threshold_spec, threshold_for
from netprism.core.basis import incremental_basis
from netprism.core.capture import capture
from netprism.core.subspace import energy_rank
from netprism.core.validation import NotFittedError, check_positive_int
from netprism.train.config import TrainConfig

_UNITS = (nn.Linear, nn.Conv1d, nn.Conv2d)
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


def _unit_axis(module: nn.Module) -> int:
    """Axis of the output units: last for Linear (B, ..., C), 1 for conv (B, C, ...)."""
    return -1 if isinstance(module, nn.Linear) else 1


def _rows(module: nn.Module) -> int:
    return int(cast(torch.Tensor, module.weight).shape[0])


def first_task_units(A: torch.Tensor, var_kept: float, rule: str = "below") -> int:
    """Units a first task keeps: the energy rank of the centered outputs ``A`` (N, C), >= 1.

    Examples
    --------
    >>> A = torch.tensor([[3.0, 0.0, 0.0], [-3.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, -1.0, 0.0]])
    >>> first_task_units(A, 0.95, "reach"), first_task_units(A, 0.95, "below")
    (2, 1)
    """
    s = torch.linalg.svdvals(A.double())
    return max(1, energy_rank(s**2, var_kept, rule=rule))  # type: ignore[arg-type]


def added_units(A: torch.Tensor, n_core: int, var_kept: float) -> int:
    """SPACE's projection-subtraction count: units a later task adds to a Core of ``n_core``.

    Parameters
    ----------
    A : Tensor (N, C)
        Centered outputs of the layer on the new task (rows = samples x positions).
    n_core : int
        Units already in the Core (``0 < n_core``); the result is at most ``C - n_core``.
    var_kept : float in (0, 1]

    Examples
    --------
    >>> A = torch.tensor([[1.0, 2.0, 0.0], [-1.0, -2.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
    >>> added_units(A, 1, 0.99)  # unit 1 copies the Core, unit 2 is new
    1
    >>> added_units(A[:2], 1, 0.99)  # nothing outside the Core's span
    0
    """
    A = A.double()
    width = A.shape[1]
    if not 0 < n_core <= width:
        raise ValueError(f"n_core must lie in [1, {width}], got {n_core}")
    if n_core == width:
        return 0
    u, s, _ = torch.linalg.svd(A[:, :n_core], full_matrices=False)  # u (N, r)
    tol = max(A.shape) * torch.finfo(A.dtype).eps * float(s.max()) if s.numel() else 0.0
    core_basis = u[:, s > tol]  # (N, r) orthonormal
    residual = A[:, n_core:].T  # (C - n_core, N): residual units as rows over samples
    new = incremental_basis(core_basis, residual, var_kept)
    return min(int(new.shape[1]), width - n_core)


class SPACE(ContinualMethod):
    """SPACE (Saha, Garg et al., IEEE Access 2021) as a continual-learning method.

    Parameters
    ----------
    var_kept : float, sequence (one per unit layer) or callable (layer_index, task) -> float
        Energy fraction in (0, 1] each layer keeps (the code: 0.995 for the first layer and
        0.95 for the others on CIFAR-10).
    head : str or None
        Name of the classifier module, stored per task and restored for that task's inference;
        None picks the last ``nn.Linear``.  It is never pruned nor frozen.
    retrain_epochs : int, optional
        Epochs of the retraining phase after pruning; default: the runner's ``epochs``.
        0 prunes without retraining.
    samples : int
        Examples drawn from the task's training data for the PCA.
    rule : {"below", "reach"}
        First-task count (see :func:`netprism.core.subspace.energy_rank`).
    seed : int
        Seeds the PCA subsample and the re-initialization of the freed units.

    Attributes
    ----------
    units_ : list over tasks of dict[str, int]
        ``units_[t][l]``: the units ``n_t`` of layer ``l`` (by module name) that task ``t``
        uses, the prefix ``[0, n_t)`` of its outputs; never decreasing, at most the width.
    widths_ : dict[str, int]
        Output units (rows of the weight) of every unit layer.
    exhausted_ : list over tasks of list[str]
        Layers that had no free unit left, per task.
    heads_ : list over tasks of dict[str, Tensor]
        The head's ``state_dict`` after each task (e.g. ``"weight"`` (K, C_last), ``"bias"``
        (K,)), loaded for that task's inference.
    n_tasks_ : int
        Tasks learned.

    All are set by the first :meth:`fit_task` (a fitted SPACE), not before.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> space = SPACE(var_kept=0.9, head="2", retrain_epochs=0)
    >>> space.fit_task(net, 0, torch.randn(50, 4), train=lambda epochs=None: None)
    >>> space.units_[0]["0"] <= 8, space.widths_, space.n_tasks_
    (True, {'0': 8}, 1)
    """

    name: str = "space"

    def __init__(
        self,
        var_kept: Threshold = 0.95,
        *,
        head: str | None = "head",
        retrain_epochs: int | None = None,
        samples: int = 300,
        rule: Literal["below", "reach"] = "below",
        seed: int = 0,
    ) -> None:
        check_threshold_spec(var_kept)
        if rule not in ("below", "reach"):
            raise ValueError(f"rule must be 'below' or 'reach', got {rule!r}")
        bad_epochs = not isinstance(retrain_epochs, int) or retrain_epochs < 0
        if retrain_epochs is not None and bad_epochs:
            raise ValueError(f"retrain_epochs must be a nonnegative int, got {retrain_epochs!r}")
        check_positive_int(samples, "samples")
        self.var_kept = var_kept
        self.head = head
        self.retrain_epochs = retrain_epochs
        self.samples = samples
        self.rule = rule
        self.seed = seed
        self._open: dict[str, tuple[int, int]] = {}  # trainable unit range per layer

    def __repr__(self) -> str:
        return f"SPACE(var_kept={self.var_kept!r}, rule={self.rule!r}, samples={self.samples})"

    def _learned(self) -> int:
        """Tasks learned so far (0 before fitting, when ``n_tasks_`` does not exist yet)."""
        return len(getattr(self, "units_", []))

    # --- structure ---------------------------------------------------------------------------
    def head_module(self, model: nn.Module) -> tuple[str, nn.Module]:
        """The classifier ``(name, module)``: ``head`` by name, or the last ``nn.Linear``."""
        named = dict(model.named_modules())
        if self.head is None:
            linears = [n for n, m in named.items() if isinstance(m, nn.Linear)]
            if not linears:
                raise ValueError("the model has no nn.Linear to serve as the per-task head")
            return linears[-1], named[linears[-1]]
        if self.head not in named:
            raise ValueError(
                f"no module named {self.head!r} for the head; modules: {sorted(named)[:20]}"
            )
        return self.head, named[self.head]

    def unit_layers(self, model: nn.Module) -> dict[str, nn.Module]:
        """Layers whose output units SPACE manages: every Linear/Conv except the head, in order."""
        head_name, _ = self.head_module(model)
        layers: dict[str, nn.Module] = {}
        for name, module in model.named_modules():
            if isinstance(module, _NORMS):
                raise ValueError(
                    f"SPACE cannot mask units through normalization layer {name!r} "
                    f"({type(module).__name__}); use a network without normalization (GPM "
                    "handles batch norm)"
                )
            inside_head = name == head_name or name.startswith(head_name + ".")
            if isinstance(module, _UNITS) and not inside_head:
                if getattr(module, "groups", 1) != 1:
                    raise ValueError(f"grouped convolution {name!r} is not supported by SPACE")
                layers[name] = module
        if not layers:
            raise ValueError("SPACE needs at least one hidden Linear/Conv layer before the head")
        if self._learned() and set(layers) != set(self.units_[-1]):
            raise ValueError(
                f"the model's unit layers {sorted(layers)} differ from the ones SPACE learned "
                f"{sorted(self.units_[-1])}"
            )
        return layers

    # --- ContinualMethod hooks ---------------------------------------------------------------
    def check_config(self, config: TrainConfig) -> None:
        """Refuse weight decay: it would move the frozen Core and break zero forgetting."""
        if config.weight_decay:
            raise ValueError(
                f"SPACE needs weight_decay=0 (the frozen Core must not move), got "
                f"weight_decay={config.weight_decay}"
            )

    def fit_task(self, model: nn.Module, task: int, data: Any, train: Trainer) -> None:
        """Train with the Core frozen, pick the new Core by PCA, prune, retrain, free the tail."""
        if task != self._learned():
            raise ValueError(f"SPACE has learned {self._learned()} task(s); got task {task}")
        layers = self.unit_layers(model)
        core = self.units_[-1] if task else dict.fromkeys(layers, 0)
        self._open = {n: (core[n], _rows(m)) for n, m in layers.items()}
        train()
        new, exhausted = self._grow(model, layers, core, data, task)
        self._open = {n: (core[n], new[n]) for n in layers}
        self._zero_units(layers, new)
        if self.retrain_epochs != 0:
            train(self.retrain_epochs)
        self._open = {}
        _, head = self.head_module(model)
        stored = {k: v.detach().clone() for k, v in head.state_dict().items()}
        self.heads_: list[dict[str, torch.Tensor]] = [*getattr(self, "heads_", []), stored]
        self.units_: list[dict[str, int]] = [*getattr(self, "units_", []), new]
        self.exhausted_: list[list[str]] = [*getattr(self, "exhausted_", []), exhausted]
        self.widths_ = {n: _rows(m) for n, m in layers.items()}
        self.n_tasks_ = len(self.units_)
        self._reinit_tail(layers, new, task)

    def after_backward(self, model: nn.Module, task: int, batch: Any) -> None:
        """Zero the gradients of every unit outside the trainable range (Core, pruned tail)."""
        if not self._open:
            return
        for name, module in self.unit_layers(model).items():
            lo, hi = self._open[name]
            for param in (module.weight, getattr(module, "bias", None)):
                if isinstance(param, torch.Tensor) and param.grad is not None:
                    param.grad[:lo].zero_()
                    param.grad[hi:].zero_()

    @contextlib.contextmanager
    def task_context(self, model: nn.Module, task: int) -> Iterator[nn.Module]:
        """Task ``task``'s own sub-network for a learned task; the live network otherwise."""
        if task < self._learned():
            with self.subnetwork(model, task) as net:
                yield net
        else:
            yield model

    @contextlib.contextmanager
    def subnetwork(self, model: nn.Module, task: int) -> Iterator[nn.Module]:
        """Within the block ``model`` computes task ``task``'s sub-network (units and head).

        Outputs of units added after ``task`` are zeroed by forward hooks and the task's
        stored head is loaded; both are undone on exit, even after an exception.
        """
        if not 0 <= task < self._learned():
            raise NotFittedError(
                f"SPACE has no sub-network for task {task}: {self._learned()} task(s) learned"
            )
        units = self.units_[task]
        handles = []
        for name, module in self.unit_layers(model).items():
            handles.append(module.register_forward_hook(_mask_hook(units[name], module)))
        _, head = self.head_module(model)
        live = {k: v.detach().clone() for k, v in head.state_dict().items()}
        try:
            with torch.no_grad():
                head.load_state_dict(self.heads_[task])
            yield model
        finally:
            for h in handles:
                h.remove()
            with torch.no_grad():
                head.load_state_dict(live)

    # --- PCA, pruning, re-initialization -----------------------------------------------------
    def _grow(
        self,
        model: nn.Module,
        layers: dict[str, nn.Module],
        core: dict[str, int],
        data: Any,
        task: int,
    ) -> tuple[dict[str, int], list[str]]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + task)
        x = sample_inputs(data, self.samples, gen)
        rows = capture(model, list(layers), x, what="outputs", batch_size=max(len(x), 1))
        assert rows is not None
        new: dict[str, int] = {}
        exhausted: list[str] = []
        for i, (name, module) in enumerate(layers.items()):
            eps = threshold_for(self.var_kept, i, name, len(layers), task)
            A = rows[name].double()  # (N * positions, C)
            A = A - A.mean(dim=0, keepdim=True)
            width = _rows(module)
            if core[name] == 0:
                new[name] = min(first_task_units(A, eps, self.rule), width)
            elif core[name] >= width:
                exhausted.append(name)
                new[name] = width
            else:
                new[name] = core[name] + added_units(A, core[name], eps)
        if exhausted:
            warnings.warn(
                f"SPACE task {task}: layer(s) {exhausted} have no free unit left "
                "(resource exhausted); the task reuses the Core only",
                stacklevel=3,
            )
        return new, exhausted

    @staticmethod
    def _zero_units(layers: dict[str, nn.Module], keep: dict[str, int]) -> None:
        with torch.no_grad():
            for name, module in layers.items():
                for param in (module.weight, getattr(module, "bias", None)):
                    if isinstance(param, torch.Tensor):
                        param[keep[name] :].zero_()

    def _reinit_tail(self, layers: dict[str, nn.Module], keep: dict[str, int], task: int) -> None:
        """Units past ``keep`` get the weights of a freshly initialized copy of their layer.

        The copy is initialized on the CPU from its own seed, inside a forked CPU RNG: the same
        weights on every device, and no global generator (CPU or CUDA) is touched.
        """
        for i, (name, module) in enumerate(layers.items()):
            if keep[name] >= _rows(module):
                continue
            fresh = copy.deepcopy(module).to("cpu")
            with torch.random.fork_rng(devices=[]):
                torch.random.default_generator.manual_seed(
                    self.seed * 1_000_003 + 7_919 * (task + 1) + i
                )
                fresh.reset_parameters()  # type: ignore[operator]
            with torch.no_grad():
                for attr in ("weight", "bias"):
                    param, init = getattr(module, attr, None), getattr(fresh, attr, None)
                    if isinstance(param, torch.Tensor) and isinstance(init, torch.Tensor):
                        param[keep[name] :] = init[keep[name] :].to(param.device)

    # --- cost ----------------------------------------------------------------------------------
    def task_macs(
        self, model: nn.Module, example: torch.Tensor, task: int | None = None
    ) -> dict[str, int]:
        """Multiply-accumulates of one forward pass of task ``task``'s sub-network, per layer.

        Parameters
        ----------
        model : nn.Module
        example : Tensor (1, *input_shape)
        task : int, optional
            None counts the full-width network.

        Returns
        -------
        dict[str, int]
            MACs per unit layer and head, and ``"total"``.  A layer with ``n`` of its ``C``
            units, fed by a layer using ``n'`` of ``C'``, costs ``n * fan_in * (n'/C') *
            positions`` (exact for chains, including conv -> flatten -> linear).
        """
        if task is not None and not 0 <= task < self._learned():
            raise NotFittedError(f"no sub-network for task {task}: {self._learned()} learned")
        layers = self.unit_layers(model)
        head_name, head = self.head_module(model)
        chain = {**layers, head_name: head}
        positions = _output_positions(model, chain, example)
        macs: dict[str, int] = {}
        used_prev, width_prev = 1, 1
        for name, module in chain.items():
            width = _rows(module)
            used = width if task is None or name == head_name else self.units_[task][name]
            fan_in = int(cast(torch.Tensor, module.weight)[0].numel())
            macs[name] = used * (fan_in * used_prev // width_prev) * positions[name]
            used_prev, width_prev = used, width
        macs["total"] = sum(macs.values())
        return macs


def _mask_hook(keep: int, module: nn.Module) -> Any:
    axis = _unit_axis(module)

    def hook(_: nn.Module, __: Any, out: torch.Tensor) -> torch.Tensor:
        out = out.clone()
        out.narrow(axis, keep, out.shape[axis] - keep).zero_()
        return out

    return hook


@torch.no_grad()
def _output_positions(
    model: nn.Module, chain: dict[str, nn.Module], example: torch.Tensor
) -> dict[str, int]:
    """Output positions per unit (H_out * W_out for conv, tokens for Linear) of one example."""
    if example.ndim < 1 or example.shape[0] != 1:
        raise ValueError(f"example must be one input (1, *input_shape), got {tuple(example.shape)}")
    seen: dict[str, int] = {}
    handles = [
        m.register_forward_hook(
            lambda mod, _i, out, n=n: seen.__setitem__(n, out.numel() // _rows(mod))
        )
        for n, m in chain.items()
    ]
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        model(example.to(device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    missing = [n for n in chain if n not in seen]
    if missing:
        raise ValueError(f"layer(s) {missing} did not run on the example")
    return seen
