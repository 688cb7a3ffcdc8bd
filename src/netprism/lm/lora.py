"""LoRA adapters on the linear layers of a model, with the base frozen, mergeable, saved small.

"Apple Intelligence Foundation Language Models: Tech Report 2025" (arXiv 2507.13575) specialises
its frozen on-device model with LoRA adapters on all linear projections; the low-rank update is
from "LoRA: Low-Rank Adaptation of Large Language Models" (Hu et al., 2021, arXiv 2106.09685).

Each adapted ``nn.Linear`` (``D_in -> D_out``) becomes a :class:`LoRALinear` that keeps the base
``weight`` ``(D_out, D_in)`` (and ``bias``) under the same names, frozen, and adds ``lora_A``
``(R, D_in)`` (uniform init) and ``lora_B`` ``(D_out, R)`` (zeros)::

    y = x W^T + b + dropout(x) A^T B^T * (alpha / R)

- With the adapter off (:func:`set_lora_enabled`) the forward is exactly ``F.linear(x, W, b)``,
  the base layer's own computation, so the outputs are bit-identical to the base model.
- :func:`merge_lora` folds ``B @ A * alpha / R`` into ``W`` and puts plain ``nn.Linear`` layers
  back, so the merged model has the base architecture and cost.
- :func:`save_lora` writes only the adapter tensors, with ``rank``, ``alpha`` and the adapted
  module names in the safetensors JSON header; :func:`load_lora` checks every shape.

The tied output embedding of :class:`~netprism.lm.model.ByteLM` is an ``nn.Embedding`` used
through ``F.linear``, not an ``nn.Linear``, so it is not adapted.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from torch import nn

from netprism.io import load_json
from netprism.train.checkpoint import write_safetensors

HEADER_KEY = "lora"  # safetensors metadata key holding the JSON header


class LoRALinear(nn.Module):
    """A frozen linear layer plus a trainable low-rank update ``B @ A * alpha / R``.

    Parameters
    ----------
    base : nn.Linear
        Its ``weight`` ``(D_out, D_in)`` and ``bias`` ``(D_out,)`` are taken over (same tensors,
        same names) and frozen.
    rank : int
        ``R >= 1``.
    alpha : float
        Scale numerator; the update is multiplied by ``alpha / R``.
    dropout : float
        Dropout on the adapter's input in training mode, in ``[0, 1)``.
    generator : torch.Generator, optional
        Source of the ``A`` initialisation (uniform in ``+-1/sqrt(D_in)``).

    Examples
    --------
    >>> layer = LoRALinear(nn.Linear(4, 3), rank=2, alpha=4.0)
    >>> layer.lora_A.shape, layer.lora_B.shape, layer.scaling
    (torch.Size([2, 4]), torch.Size([3, 2]), 2.0)
    """

    def __init__(
        self,
        base: nn.Linear,
        rank: int,
        alpha: float,
        *,
        dropout: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        _check_knobs(rank, alpha, dropout)
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight
        self.bias = base.bias
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(False)
        w = base.weight
        bound = 1.0 / math.sqrt(self.in_features)
        a = torch.empty(rank, self.in_features, dtype=w.dtype)  # CPU: `generator` is a CPU one
        a = a.uniform_(-bound, bound, generator=generator).to(w.device)
        self.lora_A = nn.Parameter(a)  # (R, D_in)
        self.lora_B = nn.Parameter(
            torch.zeros(self.out_features, rank, dtype=w.dtype, device=w.device)
        )
        self.rank, self.alpha, self.dropout = rank, float(alpha), float(dropout)
        self.scaling = self.alpha / rank
        self.enabled = True

    def delta_weight(self) -> torch.Tensor:
        """The update ``B @ A * alpha / R``, ``(D_out, D_in)``."""
        return (self.lora_B @ self.lora_A) * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., D_in)`` to ``(..., D_out)``."""
        y = F.linear(x, self.weight, self.bias)  # exactly nn.Linear's computation
        if not self.enabled:
            return y
        h = F.dropout(x, self.dropout, self.training) if self.dropout else x
        return y + F.linear(F.linear(h, self.lora_A), self.lora_B) * self.scaling

    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` whose weight is ``W + B @ A * alpha / R`` (frozen like W)."""
        out = nn.Linear(
            self.in_features,
            self.out_features,
            bias=self.bias is not None,
            device=self.weight.device,
            dtype=self.weight.dtype,
        )
        with torch.no_grad():
            out.weight.copy_(self.weight + self.delta_weight())
            if self.bias is not None:
                out.bias.copy_(self.bias)
        out.requires_grad_(False)
        return out

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"rank={self.rank}, alpha={self.alpha}, dropout={self.dropout}, enabled={self.enabled}"
        )


def _check_knobs(rank: int, alpha: float, dropout: float) -> None:
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise ValueError(f"rank must be a positive int, got {rank!r}")
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not alpha > 0:
        raise ValueError(f"alpha must be a positive number, got {alpha!r}")
    if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")


def _matches(name: str, targets: tuple[str, ...] | None) -> bool:
    return targets is None or any(name == t or name.endswith("." + t) for t in targets)


def add_lora(
    model: nn.Module,
    rank: int,
    alpha: float,
    targets: Iterable[str] | None = None,
    *,
    dropout: float = 0.0,
    seed: int = 0,
) -> nn.Module:
    """Freeze ``model`` and put a LoRA adapter on each targeted ``nn.Linear``, in place.

    Parameters
    ----------
    model : nn.Module
        Must hold no adapters yet.
    rank, alpha : int, float
        ``R`` and the scale numerator (update scale ``alpha / R``).
    targets : iterable of str, optional
        Module-name suffixes to adapt (``"q"`` matches every ``...attn.q``; ``"mlp.down"``
        matches every ``...mlp.down``); ``None`` adapts every ``nn.Linear``.
    dropout : float
        Adapter-input dropout in training mode.
    seed : int
        Seeds the ``A`` initialisation (module order), so adapters are reproducible.

    Returns
    -------
    nn.Module
        ``model`` itself; only the ``lora_A``/``lora_B`` parameters require grad.

    Raises
    ------
    ValueError
        On bad knobs, a model that already has adapters, or targets matching no linear layer.

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> _ = add_lora(net, rank=2, alpha=2.0)
    >>> sorted(lora_modules(net)), round(trainable_fraction(net), 3)
    (['0', '2'], 0.366)
    """
    _check_knobs(rank, alpha, dropout)
    if lora_modules(model):
        raise ValueError("model already has LoRA adapters; merge_lora or start from the base")
    tgt = None if targets is None else tuple(targets)
    if tgt is not None and (not tgt or not all(isinstance(t, str) and t for t in tgt)):
        raise ValueError(f"targets must be non-empty module-name strings or None, got {tgt!r}")
    chosen = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and _matches(n, tgt)]
    if not chosen:
        raise ValueError(f"targets {tgt!r} match no nn.Linear in {type(model).__name__}")
    return _attach(model, chosen, rank, alpha, dropout, seed)


def _attach(
    model: nn.Module, names: list[str], rank: int, alpha: float, dropout: float, seed: int
) -> nn.Module:
    """Freeze ``model`` and wrap exactly the ``nn.Linear`` modules ``names`` in adapters."""
    model.requires_grad_(False)
    g = torch.Generator().manual_seed(seed)
    for name in names:
        parent, attr = _parent(model, name)
        base = getattr(parent, attr)
        setattr(parent, attr, LoRALinear(base, rank, alpha, dropout=dropout, generator=g))
    return model


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    if not name:
        raise ValueError("cannot adapt the root module itself; wrap it in a container")
    head, _, attr = name.rpartition(".")
    return (model.get_submodule(head) if head else model), attr


def lora_modules(model: nn.Module) -> dict[str, LoRALinear]:
    """The adapters in ``model`` by qualified module name."""
    return {n: m for n, m in model.named_modules() if isinstance(m, LoRALinear)}


def trainable_fraction(model: nn.Module) -> float:
    """Parameters that require grad over all parameters (0 for a parameterless model)."""
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad) / total if total else 0.0


def set_lora_enabled(model: nn.Module, flag: bool) -> nn.Module:
    """Switch every adapter on or off; off gives outputs bit-identical to the base model.

    >>> net = add_lora(nn.Sequential(nn.Linear(4, 4)), rank=1, alpha=1.0)
    >>> set_lora_enabled(net, False)[0].enabled
    False
    """
    mods = lora_modules(model)
    if not mods:
        raise ValueError("model has no LoRA adapters (add_lora or load_lora first)")
    for m in mods.values():
        m.enabled = bool(flag)
    return model


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold each enabled adapter into its base weight and restore plain ``nn.Linear`` layers.

    Disabled adapters are dropped without merging.  In place; returns ``model``.

    >>> net = add_lora(nn.Sequential(nn.Linear(4, 4)), rank=1, alpha=1.0)
    >>> type(merge_lora(net)[0]).__name__
    'Linear'
    """
    mods = lora_modules(model)
    if not mods:
        raise ValueError("model has no LoRA adapters to merge")
    for name, m in mods.items():
        parent, attr = _parent(model, name)
        if m.enabled:
            plain = m.merged()
        else:
            plain = nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
            plain.weight, plain.bias = m.weight, m.bias
        setattr(parent, attr, plain)
    return model


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Adapter tensors only: ``{name}.lora_A`` ``(R, D_in)``, ``{name}.lora_B`` ``(D_out, R)``."""
    out: dict[str, torch.Tensor] = {}
    for name, m in lora_modules(model).items():
        out[f"{name}.lora_A"] = m.lora_A.detach()
        out[f"{name}.lora_B"] = m.lora_B.detach()
    return out


def save_lora(model: nn.Module, path: str | Path) -> Path:
    """Atomically write the adapter tensors and a JSON header (rank, alpha, dropout, targets).

    Returns the path.  The base weights are not written, so the file is small.
    """
    mods = lora_modules(model)
    if not mods:
        raise ValueError("model has no LoRA adapters to save")
    first = next(iter(mods.values()))
    if any((m.rank, m.alpha) != (first.rank, first.alpha) for m in mods.values()):
        raise ValueError("save_lora needs one rank and alpha across all adapters")
    header = {
        "rank": first.rank,
        "alpha": first.alpha,
        "dropout": first.dropout,
        "targets": sorted(mods),
    }
    meta = {HEADER_KEY: json.dumps(header)}
    return write_safetensors(path, lora_state_dict(model), metadata=meta)


def read_lora_header(path: str | Path) -> dict[str, Any]:
    """The JSON header of a :func:`save_lora` file.

    Raises
    ------
    ValueError
        The file is missing, not safetensors, has no LoRA header, or the header is not a JSON
        object with an int ``rank``, a number ``alpha`` and a list of string ``targets``.
    """
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{str(path)!r} is not a readable safetensors file ({err})") from err
    if HEADER_KEY not in meta:
        raise ValueError(f"{str(path)!r} is not a LoRA adapter file (no {HEADER_KEY!r} header)")
    try:
        header = load_json(meta[HEADER_KEY], name=f"the LoRA header of {str(path)!r}")
    except json.JSONDecodeError as err:
        raise ValueError(f"{str(path)!r}: LoRA header is not valid JSON ({err})") from err
    rank, alpha = (header.get("rank"), header.get("alpha")) if isinstance(header, dict) else (0, 0)
    targets = header.get("targets") if isinstance(header, dict) else None
    if (
        not isinstance(rank, int)
        or isinstance(rank, bool)
        or not isinstance(alpha, (int, float))
        or isinstance(alpha, bool)
        or not isinstance(targets, list)
        or not all(isinstance(t, str) for t in targets)
    ):
        raise ValueError(
            f"bad LoRA header in {str(path)!r}: expected an object with int 'rank', number "
            f"'alpha' and a list of names 'targets', got {meta[HEADER_KEY]!r:.200}"
        )
    return dict(header)


def load_lora(model: nn.Module, path: str | Path) -> nn.Module:
    """Load adapters saved by :func:`save_lora` into ``model``, adding them if it has none.

    Everything is checked before ``model`` is touched.

    Raises
    ------
    ValueError
        If the file is not a valid adapter file (see :func:`read_lora_header`), the file's
        targets, rank or alpha differ from the model's adapters, a target is not a linear
        layer of the model, any tensor's shape or dtype differs, or a tensor holds NaN/inf
        (the message names it).
    """
    header = read_lora_header(path)
    rank, alpha = header["rank"], header["alpha"]
    dropout = header.get("dropout", 0.0)
    try:
        _check_knobs(rank, alpha, dropout)
    except ValueError as err:
        raise ValueError(f"bad LoRA header in {str(path)!r}: {err}") from err
    targets = sorted(str(t) for t in header["targets"])
    if not targets:
        raise ValueError(f"bad LoRA header in {str(path)!r}: 'targets' is empty")
    mods = lora_modules(model)
    if mods:
        if sorted(mods) != targets:
            raise ValueError(f"adapter targets {targets} differ from the model's {sorted(mods)}")
        for name, m in mods.items():
            if (m.rank, m.alpha) != (rank, float(alpha)):
                raise ValueError(
                    f"{name}: model adapter has rank, alpha {(m.rank, m.alpha)}; "
                    f"file {(rank, alpha)}"
                )
    want = _wanted_shapes(model, targets, rank)
    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
            tensors = _checked_tensors(f, path, want, shapes)
    except SafetensorError as err:
        raise ValueError(f"{str(path)!r} is not a readable safetensors file ({err})") from err
    if not mods:
        _attach(model, targets, rank, float(alpha), float(dropout), seed=0)
    for name, m in lora_modules(model).items():
        with torch.no_grad():
            m.lora_A.copy_(tensors[f"{name}.lora_A"])
            m.lora_B.copy_(tensors[f"{name}.lora_B"])
    return model


def _wanted_shapes(
    model: nn.Module, targets: list[str], rank: int
) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """``{"<target>.lora_A": ((R, D_in), dtype), "<target>.lora_B": ((D_out, R), dtype)}``."""
    layers = dict(model.named_modules())
    want: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
    for name in targets:
        layer = layers.get(name)
        if not isinstance(layer, (nn.Linear, LoRALinear)):
            raise ValueError(f"adapter target {name!r} is not a linear layer of the model")
        dtype = layer.weight.dtype
        want[f"{name}.lora_A"] = ((rank, layer.in_features), dtype)
        want[f"{name}.lora_B"] = ((layer.out_features, rank), dtype)
    return want


def _checked_tensors(
    f: Any,
    path: str | Path,
    want: dict[str, tuple[tuple[int, ...], torch.dtype]],
    shapes: dict[str, tuple[int, ...]],
) -> dict[str, torch.Tensor]:
    """The wanted tensors of the open file ``f``: shapes checked from the header before any
    is read (a huge declared tensor is never allocated), then dtype and finiteness."""
    for key, (shape, _) in want.items():
        if key not in shapes:
            raise ValueError(f"adapter file {str(path)!r} lacks tensor {key}")
        if shapes[key] != shape:
            raise ValueError(
                f"shape mismatch for {key} in {str(path)!r}: file {shapes[key]}, "
                f"model expects {shape}"
            )
    out: dict[str, torch.Tensor] = {}
    for key, (_, dtype) in want.items():
        t = f.get_tensor(key)
        if not t.is_floating_point():
            raise ValueError(f"{key} in {str(path)!r} is {t.dtype}, expected a float dtype")
        t = t.to(dtype)  # an fp32 adapter loads into a bf16 model
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{key} in {str(path)!r} holds NaN or inf values")
        out[key] = t
    return out
