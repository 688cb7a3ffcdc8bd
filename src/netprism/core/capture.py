"""Capture what chosen layers see: forward hooks that turn activations into rows.

The subspace lens works on representation matrices with one row per sample, token or conv
patch.  This module selects layers of any ``nn.Module`` (:func:`select_layers`), runs the model
over data with forward hooks (:func:`capture`), turns each layer's inputs and/or outputs into
rows and either stacks them (small cases) or streams them batch by batch into consumers such
as :class:`~netprism.core.subspace.StreamingCovariance` (:func:`layer_covariances`).

Papers
------
- GPM: Saha, Garg, Roy, "Gradient Projection Memory for Continual Learning", ICLR 2021,
  arXiv 2103.09762: Linear inputs as vectors, conv inputs as ``unfold`` patches with the
  layer's own stride and padding (GPM stacks them as columns; we stack rows, i.e. ``R^T``).
- Utilized rank: Garg, Koguchi, Verma, Ulbricht, arXiv 2407.04797: inputs and outputs of every
  linear map, every token of a sequence a row.

Rows per layer type (``g`` = groups)
------------------------------------
- ``Linear``: inputs (B, ..., D_in) -> (B*..., D_in); outputs (B*..., D_out).
- ``Conv2d``: inputs -> per-group patches stacked, (N*H_out*W_out*g, C_in/g*kh*kw), ordered
  (sample, position, group) with features ordered (channel, kh, kw) like the flattened weight
  (C_out, C_in/g*kh*kw); a shared basis thus spans the union of the groups' patch spaces.
  Outputs (N*H_out*W_out, C_out), channels as features.
- ``Conv1d``: the same with one spatial axis.
- anything else: flattened from dim 1, (B, prod(rest)).
"""

from __future__ import annotations

import difflib
import fnmatch
import itertools
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, Protocol, TypeAlias, cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from netprism.core.subspace import StreamingCovariance
from netprism.core.validation import check_positive_int

What = Literal["inputs", "outputs", "both"]
LayerSpec: TypeAlias = "str | type[nn.Module] | tuple[type[nn.Module], ...] | Sequence[Any]"


class RowConsumer(Protocol):
    """Anything with ``update(rows)``, e.g. a :class:`StreamingCovariance`."""

    def update(self, rows: torch.Tensor) -> Any: ...


Consumer: TypeAlias = Callable[[str, str, torch.Tensor], Any] | Mapping[Any, RowConsumer]


def _update(sink: RowConsumer, layer: str, rows: torch.Tensor) -> None:
    """``sink.update(rows)``; a ``ValueError`` (non-finite or overflowing rows) names the
    layer the rows came from."""
    try:
        sink.update(rows)
    except ValueError as err:
        raise ValueError(f"layer {layer!r}: {err}") from err


def _preview(names: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _match(spec: Any, named: dict[str, nn.Module], model: nn.Module) -> list[str]:
    if isinstance(spec, str):
        if any(c in spec for c in "*?["):  # a glob; it never matches the root ("")
            return [n for n in named if n and fnmatch.fnmatchcase(n, spec)]
        if spec not in named:
            close = difflib.get_close_matches(spec, [n for n in named if n], n=3)
            hint = f" (did you mean {_preview(close)}?)" if close else ""
            avail = _preview([n for n in named if n])
            raise ValueError(
                f"no layer named {spec!r} in {type(model).__name__}{hint}; "
                f"available layers: {avail}"
            )
        return [spec]
    is_types = isinstance(spec, tuple) and spec and all(isinstance(t, type) for t in spec)
    if (isinstance(spec, type) and issubclass(spec, nn.Module)) or is_types:
        return [n for n, m in named.items() if isinstance(m, spec)]
    raise TypeError(
        "layers must be a name, a glob, an nn.Module type, a tuple of types or a list of "
        f"these, got {spec!r}"
    )


def last_linear_name(model: nn.Module) -> str:
    """The name of ``model``'s last ``nn.Linear`` (whose inputs are its penultimate features).

    >>> last_linear_name(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)))
    '2'
    """
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer: pass layers=")
    return names[-1]


def select_layers(model: nn.Module, layers: LayerSpec) -> dict[str, nn.Module]:
    """The modules of ``model`` chosen by ``layers``, in ``named_modules`` order.

    Parameters
    ----------
    model : nn.Module
    layers : str, type, tuple of types, or list of these
        An exact ``named_modules`` name, an ``fnmatch`` glob (``"features.*"``, ``"*fc*"``;
        globs also match containers), an ``nn.Module`` subclass or a tuple of them; a list
        (or a tuple holding non-types) takes the union.

    Raises
    ------
    ValueError
        An exact name that does not exist (with close matches), or an empty selection (with
        the available names).

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> list(select_layers(net, nn.Linear)), list(select_layers(net, ["1", "2"]))
    (['0', '2'], ['1', '2'])
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    named = dict(model.named_modules())
    union = isinstance(layers, list) or (
        isinstance(layers, tuple) and not all(isinstance(t, type) for t in layers)
    )
    specs = cast("Sequence[Any]", layers) if union else [layers]
    chosen = {name for spec in specs for name in _match(spec, named, model)}
    if not chosen:
        raise ValueError(
            f"no layers selected by {layers!r} in {type(model).__name__}; "
            f"available layers: {_preview([n for n in named if n])}"
        )
    return {n: m for n, m in named.items() if n in chosen}


def linear_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows (B*..., D) of a Linear layer's input or output (B, ..., D).

    Examples
    --------
    >>> linear_rows(torch.zeros(2, 5, 4)).shape
    torch.Size([10, 4])
    """
    if x.ndim == 0:
        raise ValueError("linear_rows needs at least 1 dimension (..., D), got a scalar")
    return x.reshape(-1, x.shape[-1])  # (B*T*..., D): every token is a row


def _conv_geometry(conv: nn.Conv1d | nn.Conv2d) -> tuple[tuple[int, ...], ...]:
    """Kernel, stride, dilation and F.pad widths (last axis first) of a conv, as 2-D."""
    k, s, d = tuple(conv.kernel_size), tuple(conv.stride), tuple(conv.dilation)
    if conv.padding == "valid":
        pads = [(0, 0) for _ in k]
    elif conv.padding == "same":  # as PyTorch: the extra pixel, if any, goes right/bottom
        pads = [(di * (ki - 1) // 2, di * (ki - 1) - di * (ki - 1) // 2) for ki, di in zip(k, d)]
    else:
        pads = [(int(p), int(p)) for p in conv.padding]
    if isinstance(conv, nn.Conv1d):  # treat (N, C, L) as (N, C, 1, L)
        k, s, d, pads = (1, *k), (1, *s), (1, *d), [(0, 0), *pads]
    flat = tuple(p for pair in reversed(pads) for p in pair)  # (w_l, w_r, h_t, h_b)
    return k, s, d, flat


def _as_batched(x: torch.Tensor, conv: nn.Module) -> torch.Tensor:
    """(N, C, H, W) for Conv2d, (N, C, 1, L) for Conv1d; unbatched inputs get N = 1."""
    spatial = 2 if isinstance(conv, nn.Conv2d) else 1
    x = x.unsqueeze(0) if x.ndim == spatial + 1 else x
    if x.ndim != spatial + 2:
        raise ValueError(
            f"{type(conv).__name__} input must be {spatial + 2}-D, got {tuple(x.shape)}"
        )
    return x if spatial == 2 else x.unsqueeze(2)


def conv_patches(
    x: torch.Tensor,
    conv: nn.Conv1d | nn.Conv2d,
    *,
    per_group: bool = False,
    rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """Receptive-field patches of a conv's input, one row per output position and group.

    Uses the layer's own kernel_size, stride, padding (ints, ``"same"``, ``"valid"``; any
    padding_mode), dilation and groups, via ``F.pad`` + ``F.unfold``.

    Parameters
    ----------
    x : Tensor (N, C_in, H, W) for Conv2d, (N, C_in, L) for Conv1d (or unbatched)
    conv : nn.Conv2d or nn.Conv1d
    per_group : bool
        Return (g, N*H_out*W_out, C_in/g*kh*kw) instead of the stacked rows.
    rows : LongTensor (R,), optional
        Only these rows of the stacked result, gathered from a strided view of the padded
        input without materialising the other patches (what sub-sampled capture uses).

    Returns
    -------
    Tensor (N*H_out*W_out*g, C_in/g*kh*kw)
        Ordered (sample, position, group); features ordered (channel, kh, kw) as the
        flattened weight, so ``out[n, c, pos] = weight[c].flatten() @ row + bias[c]``.

    Examples
    --------
    >>> conv = nn.Conv2d(3, 4, kernel_size=3, padding=1, groups=1)
    >>> conv_patches(torch.zeros(2, 3, 5, 5), conv).shape
    torch.Size([50, 27])
    """
    if not isinstance(conv, (nn.Conv1d, nn.Conv2d)):
        raise TypeError(f"conv must be nn.Conv1d or nn.Conv2d, got {type(conv).__name__}")
    x = _as_batched(x, conv)
    if x.shape[1] != conv.in_channels:
        raise ValueError(f"conv expects {conv.in_channels} input channels, got {tuple(x.shape)}")
    k, s, d, pads = _conv_geometry(conv)
    if any(pads):
        mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
        x = F.pad(x, pads, mode=mode)
    if rows is not None:
        if per_group:
            raise ValueError("rows and per_group cannot be combined")
        return _gather_patches(x, conv.groups, k, s, d, rows)
    cols = F.unfold(x, k, dilation=d, stride=s)  # (N, C_in*kh*kw, L), channel-major
    n, _, length = cols.shape
    cols = cols.reshape(n, conv.groups, -1, length)  # (N, g, C_in/g*kh*kw, L)
    if per_group:
        return cols.permute(1, 0, 3, 2).reshape(conv.groups, n * length, -1)  # (g, N*L, F)
    return cols.permute(0, 3, 1, 2).reshape(n * length * conv.groups, -1)  # (N*L*g, F)


def _gather_patches(
    xp: torch.Tensor,
    groups: int,
    k: tuple[int, ...],
    s: tuple[int, ...],
    d: tuple[int, ...],
    rows: torch.Tensor,
) -> torch.Tensor:
    """Rows ``rows`` of the stacked patch matrix of the padded input ``xp`` (N, C, H, W)."""
    # Windows as a strided view: (N, C, H_out, W_out, span_h, span_w), then the dilation.
    span = [di * (ki - 1) + 1 for ki, di in zip(k, d)]
    win = xp.unfold(2, span[0], s[0]).unfold(3, span[1], s[1])[..., :: d[0], :: d[1]]
    n, c, h_out, w_out = win.shape[:4]
    rows = rows.to(xp.device)
    sample, rem = rows // (h_out * w_out * groups), rows % (h_out * w_out * groups)
    pos, group = rem // groups, rem % groups
    patches = win[sample, :, pos // w_out, pos % w_out]  # (R, C, kh, kw)
    patches = patches.reshape(len(rows), groups, c // groups, k[0], k[1])  # (R, g, C/g, kh, kw)
    return patches[torch.arange(len(rows), device=xp.device), group].reshape(len(rows), -1)


def conv_patch_count(x: torch.Tensor, conv: nn.Conv1d | nn.Conv2d) -> int:
    """Number of rows :func:`conv_patches` returns for ``x`` (N*H_out*W_out*g), cheaply."""
    xb = _as_batched(x, conv)
    k, s, d, pads = _conv_geometry(conv)
    h = xb.shape[2] + pads[2] + pads[3]
    w = xb.shape[3] + pads[0] + pads[1]
    h_out = (h - d[0] * (k[0] - 1) - 1) // s[0] + 1
    w_out = (w - d[1] * (k[1] - 1) - 1) // s[1] + 1
    return xb.shape[0] * h_out * w_out * conv.groups


def _input_rows(
    module: nn.Module, x: torch.Tensor, rows: torch.Tensor | None = None
) -> torch.Tensor:
    if isinstance(module, nn.Linear):
        return linear_rows(x)
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        return conv_patches(x, module, rows=rows)
    return x.reshape(x.shape[0], -1) if x.ndim > 1 else x.reshape(1, -1)  # (B, prod(rest))


def _output_rows(module: nn.Module, y: torch.Tensor) -> torch.Tensor:
    if isinstance(module, nn.Linear):
        return linear_rows(y)
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        y = _as_batched(y, module)  # (N, C_out, H, W); Conv1d: H = 1
        return y.permute(0, 2, 3, 1).reshape(-1, y.shape[1])  # (N*H*W, C_out)
    return y.reshape(y.shape[0], -1) if y.ndim > 1 else y.reshape(1, -1)


def _first_tensor(value: Any, name: str, kind: str) -> torch.Tensor:
    if isinstance(value, (tuple, list)) and value:
        value = value[0]
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"layer {name!r}: expected a tensor as {kind}, got {type(value).__name__}")
    # One reduction in the common case; the exact check only when the sum is not finite.
    if (
        value.is_floating_point()
        and not bool(torch.isfinite(value.sum()))
        and not bool(torch.isfinite(value).all())
    ):
        n_bad = int((~torch.isfinite(value)).sum())
        raise ValueError(f"non-finite {kind} at layer {name!r}: {n_bad} NaN/inf value(s)")
    return value


def _iter_batches(data: Any, batch_size: int) -> Iterator[torch.Tensor]:
    """Input batches from a tensor, an ``(x, y, ...)`` tuple, a Dataset, a DataLoader or any
    iterable of batches (tensors or ``(x, ...)`` tuples/lists)."""
    if isinstance(data, tuple):
        data = data[0]
    if isinstance(data, torch.Tensor):
        yield from (data.split(batch_size) if len(data) else ())
        return
    if isinstance(data, Dataset) and not isinstance(data, DataLoader):
        data = DataLoader(data, batch_size=batch_size, shuffle=False)
    if not isinstance(data, Iterable):
        raise TypeError(f"data must be a tensor, (x, y), Dataset or DataLoader, got {data!r}")
    for batch in data:
        x = batch[0] if isinstance(batch, (tuple, list)) and batch else batch
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"each batch must be a tensor or (x, ...), got {type(x).__name__}")
        yield x


def _resolve_device(model: nn.Module, device: str | torch.device) -> torch.device:
    first = next(itertools.chain(model.parameters(), model.buffers()), None)
    model_dev = first.device if first is not None else torch.device("cpu")
    if isinstance(device, str) and device == "auto":
        return model_dev
    dev = torch.device(device)
    same = dev.type == model_dev.type and (dev.index is None or dev.index == model_dev.index)
    if first is not None and not same:
        raise ValueError(
            f"device {dev} differs from the model's device {model_dev}; move the model "
            "first (model.to(device)) or pass device='auto'"
        )
    return dev


def _key(name: str, kind: str, kinds: tuple[str, ...]) -> Any:
    return name if len(kinds) == 1 else (name, kind)


def _make_sink(
    consumer: Consumer | None, names: Iterable[str], kinds: tuple[str, ...]
) -> tuple[Callable[[str, str, torch.Tensor], Any], dict[Any, list[torch.Tensor]]]:
    store: dict[Any, list[torch.Tensor]] = {_key(n, k, kinds): [] for n in names for k in kinds}
    if consumer is None:
        return lambda name, kind, rows: store[_key(name, kind, kinds)].append(rows.cpu()), store
    if isinstance(consumer, Mapping):
        missing = [key for key in store if key not in consumer]
        if missing:
            raise ValueError(f"consumer has no entry for {_preview(missing)}")
        return lambda name, kind, rows: _update(
            consumer[_key(name, kind, kinds)], name, rows
        ), store
    if not callable(consumer):
        raise TypeError(f"consumer must be callable or a mapping, got {type(consumer).__name__}")
    return consumer, store


_CONVS = (nn.Conv1d, nn.Conv2d)


def _make_hook(
    name: str, kinds: tuple[str, ...], sink: Callable, gen: torch.Generator | None, cap: int | None
) -> Callable:
    def hook(module: nn.Module, args: tuple, output: Any) -> None:
        picks: dict[int, torch.Tensor] = {}  # same positions for inputs and outputs
        for kind in kinds:
            act = _first_tensor(args if kind == "inputs" else output, name, kind)
            if kind == "inputs" and cap is not None and isinstance(module, _CONVS):
                # Pick the patches first and gather only those (no full im2col).
                n = conv_patch_count(act, module)
                if n > cap:
                    if n not in picks:
                        picks[n] = torch.randperm(n, generator=gen)[:cap].sort().values
                    sink(name, kind, conv_patches(act.detach(), module, rows=picks[n]))
                    continue
            rows = (_input_rows if kind == "inputs" else _output_rows)(module, act).detach()
            if cap is not None and rows.shape[0] > cap:
                n = rows.shape[0]
                if n not in picks:
                    picks[n] = torch.randperm(n, generator=gen)[:cap].sort().values
                rows = rows[picks[n].to(rows.device)]
            sink(name, kind, rows)

    return hook


def capture(
    model: nn.Module,
    layers: LayerSpec,
    data: Any,
    *,
    what: What = "inputs",
    rows_per_batch: int | None = None,
    seed: int | None = None,
    batch_size: int = 256,
    device: str | torch.device = "auto",
    consumer: Consumer | None = None,
    eval_mode: bool = True,
) -> dict[Any, torch.Tensor] | None:
    """Run ``model`` over ``data`` and record the chosen layers' inputs and/or outputs as rows.

    Runs under ``torch.no_grad()``, in eval mode unless ``eval_mode=False``; every module's
    train/eval flag is restored afterwards and the hooks are removed even if the forward
    raises.  Row layouts per layer type are in the module docstring.

    Parameters
    ----------
    model : nn.Module
    layers : see :func:`select_layers`
    data : Tensor (N, ...), ``(x, y)`` tuple, Dataset (items ``(x, y)`` or ``x``), DataLoader,
        or an iterable of batches.  Tensors and Datasets are cut into ``batch_size`` batches.
    what : {"inputs", "outputs", "both"}
    rows_per_batch : int, optional
        Keep at most this many rows per layer and batch, uniformly without replacement (the
        same positions for inputs and outputs when their row counts agree).
    seed : int, optional
        Makes the subsampling repeatable; each layer draws from its own generator (seeded by
        ``seed`` and its name), so its rows do not depend on which other layers are captured.
    device : "auto" or device
        Where batches are sent; "auto" is the model's device.  The model is never moved.
    consumer : callable or mapping, optional
        ``consumer(layer_name, kind, rows)``, or a mapping from key to an object with
        ``update(rows)`` (e.g. :class:`StreamingCovariance`).  Rows stay on ``device``.
    eval_mode : bool

    Returns
    -------
    dict or None
        Without a consumer, all rows stacked on the CPU -- everything is held in memory, so
        this is for small cases.  Keys are layer names, or ``(name, kind)`` for
        ``what="both"`` (the same keys a consumer mapping must hold).  None with a consumer.

    Raises
    ------
    ValueError
        Bad selection, non-finite activations (naming the layer), empty data, or a selected
        layer that never ran.

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> rows = capture(net, "*", torch.randn(5, 4), what="outputs")
    >>> {name: tuple(r.shape) for name, r in rows.items()}
    {'0': (5, 3), '1': (5, 3), '2': (5, 2)}
    """
    if what not in ("inputs", "outputs", "both"):
        raise ValueError(f"what must be 'inputs', 'outputs' or 'both', got {what!r}")
    kinds = ("inputs", "outputs") if what == "both" else (what,)
    selected = select_layers(model, layers)
    cap = None if rows_per_batch is None else check_positive_int(rows_per_batch, "rows_per_batch")
    check_positive_int(batch_size, "batch_size")
    dev = _resolve_device(model, device)
    sink, store = _make_sink(consumer, selected, kinds)
    fired: set[str] = set()

    def note(name: str, kind: str, rows: torch.Tensor) -> None:
        fired.add(name)
        sink(name, kind, rows)

    modes = {m: m.training for m in model.modules()}
    handles = []
    try:
        for name, module in selected.items():
            gen = None
            if seed is not None:  # per-layer stream: seed and a stable hash of the name
                gen = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
            handles.append(module.register_forward_hook(_make_hook(name, kinds, note, gen, cap)))
        if eval_mode:
            model.eval()
        n_batches = 0
        with torch.no_grad():
            for xb in _iter_batches(data, batch_size):
                model(xb.to(dev))
                n_batches += 1
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.training = training
    if n_batches == 0:
        raise ValueError("data yielded no batches: expected at least one sample")
    silent = [n for n in selected if n not in fired]
    if silent:
        raise ValueError(f"selected layer(s) {_preview(silent)} never ran in the forward pass")
    if consumer is not None:
        return None
    return {key: torch.cat(chunks) for key, chunks in store.items()}


def layer_covariances(
    model: nn.Module, layers: LayerSpec, data: Any, *, what: What = "inputs", **kwargs: Any
) -> dict[Any, StreamingCovariance]:
    """Streaming float64 covariances of the chosen layers' rows, one pass over ``data``.

    Keys as in :func:`capture` (layer names, or ``(name, kind)`` for ``what="both"``);
    ``kwargs`` are :func:`capture`'s (``rows_per_batch``, ``seed``, ``batch_size``, ...).

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> covs = layer_covariances(net, nn.Linear, torch.randn(10, 4))
    >>> {name: (c.n, c.dim) for name, c in covs.items()}
    {'0': (10, 4), '2': (10, 3)}
    """
    kinds = ("inputs", "outputs") if what == "both" else (what,)
    names = select_layers(model, layers)
    covs = {_key(n, k, kinds): StreamingCovariance() for n in names for k in kinds}
    capture(model, list(names), data, what=what, consumer=covs, **kwargs)
    return covs
