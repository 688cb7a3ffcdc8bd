"""VGG-11/13/16/19 in the CIFAR style: 3x3 conv stacks, global average pool, linear head.

Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015 (arXiv:1409.1556), configurations A/B/D/E, with batch norm
(Ioffe & Szegedy 2015) and the usual CIFAR head (as in kuangliu/pytorch-cifar): the
features end in an adaptive average pool to 1x1 and one linear layer (two with
``head_hidden``) instead of ImageNet's three 4096-wide layers.

Layers are named for selection by name: ``features.conv{i}``, ``features.bn{i}``,
``features.act{i}`` (i = 1..L over all conv layers) and ``features.pool{j}`` (j = 1..5),
then ``pool`` and ``head``.  ``channels`` overrides the per-layer widths, e.g. with the
widths a PCA-driven design proposes.

Small inputs: each max pool is :class:`MaybeMaxPool2d`, which leaves a dimension alone
once it is 1 wide, so the five pools work on 8x8 inputs (8 -> 4 -> 2 -> 1 -> 1 -> 1).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from netprism.core.validation import check_fraction, check_positive_int
from netprism.models.registry import check_image_shape, register_model

# Configurations A, B, D, E: convs per stage (stage widths 64, 128, 256, 512, 512); each
# stage ends in a 2x2 max pool.  CFGS spells them out, "M" marking a pool.
_STAGE_WIDTHS = (64, 128, 256, 512, 512)
_CONVS_PER_STAGE = {
    11: (1, 1, 2, 2, 2),
    13: (2, 2, 2, 2, 2),
    16: (2, 2, 3, 3, 3),
    19: (2, 2, 4, 4, 4),
}


def _cfg(convs: Sequence[int]) -> list[int | str]:
    cfg: list[int | str] = []
    for n, width in zip(convs, _STAGE_WIDTHS):
        cfg += [width] * n + ["M"]
    return cfg


CFGS: dict[int, list[int | str]] = {d: _cfg(c) for d, c in _CONVS_PER_STAGE.items()}


class MaybeMaxPool2d(nn.Module):
    """2x2/stride-2 max pool that skips any spatial dimension already 1 wide.

    Shapes
    ------
    ``(N, C, H, W)`` -> ``(N, C, H', W')`` with ``H' = H // 2`` if ``H >= 2`` else ``H``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kh = 2 if x.shape[-2] >= 2 else 1
        kw = 2 if x.shape[-1] >= 2 else 1
        if kh == kw == 1:
            return x
        return F.max_pool2d(x, (kh, kw))


class VGG(nn.Module):
    """VGG features -> global average pool -> linear head.

    Parameters
    ----------
    in_channels : int
        ``C``.
    num_classes : int
        ``K``.
    cfg : sequence of int or "M"
        Conv widths and pool markers, as in :data:`CFGS`.
    batch_norm : bool
        Insert ``BatchNorm2d`` after every conv (the conv then has no bias).
    act_layer : type of nn.Module
        Activation class.
    head_hidden : int or None
        If given, the head is ``Linear -> act -> Dropout -> Linear`` with this width.
    dropout : float
        Dropout inside a two-layer head.

    Shapes
    ------
    input ``(N, C, H, W)`` -> output ``(N, K)``; any ``H, W >= 1``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        cfg: Sequence[int | str],
        batch_norm: bool = True,
        act_layer: type[nn.Module] = nn.ReLU,
        head_hidden: int | None = None,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        c, i, j = in_channels, 0, 0
        for v in cfg:
            if v == "M":
                j += 1
                layers[f"pool{j}"] = MaybeMaxPool2d()
                continue
            i += 1
            out = int(v)
            layers[f"conv{i}"] = nn.Conv2d(c, out, 3, padding=1, bias=not batch_norm)
            if batch_norm:
                layers[f"bn{i}"] = nn.BatchNorm2d(out)
            layers[f"act{i}"] = act_layer()
            c = out
        self.features = nn.Sequential(layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = c
        self.head: nn.Module
        if head_hidden is None:
            self.head = nn.Linear(c, num_classes)
        else:
            self.head = nn.Sequential(
                OrderedDict(
                    [
                        ("fc1", nn.Linear(c, head_hidden)),
                        ("act", act_layer()),
                        ("drop", nn.Dropout(dropout)),
                        ("fc2", nn.Linear(head_hidden, num_classes)),
                    ]
                )
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (N, C_L, H', W')
        x = self.pool(x).flatten(1)  # (N, C_L, 1, 1) -> (N, C_L)
        return self.head(x)  # (N, K)


@register_model("vgg", image_only=True)
def vgg(
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    depth: int = 16,
    width_mult: float = 1.0,
    batch_norm: bool = True,
    channels: Sequence[int] | None = None,
    act_layer: type[nn.Module] = nn.ReLU,
    head_hidden: int | None = None,
    dropout: float = 0.5,
    cfg: Sequence[int | str] | None = None,
) -> nn.Module:
    """Build a CIFAR-style :class:`VGG` of ``depth`` 11, 13, 16 or 19.

    Parameters
    ----------
    input_shape : tuple of int
        ``(C, H, W)``; any channel count and size (8x8 works).
    num_classes : int
        ``K`` output logits.
    depth : {11, 13, 16, 19}, default 16
        Standard configuration A, B, D or E.
    width_mult : float, default 1.0
        Scales every conv width (rounded, at least 1); e.g. 0.25 for quick CPU runs.
    batch_norm : bool, default True
        Batch norm after each conv.
    channels : sequence of int or None
        Explicit width of every conv layer (length = number of convs in ``depth``);
        overrides ``width_mult``.
    act_layer : type of nn.Module, default nn.ReLU
        Activation class.
    head_hidden : int or None, default None
        Width of a hidden layer in the head; ``None`` gives a single linear head.
    dropout : float, default 0.5
        Dropout in a two-layer head.
    cfg : sequence of int and "M", optional
        An explicit layer list (conv widths, "M" for a max-pool), e.g. what PCA-driven design
        produces after dropping layers; overrides ``depth``, ``width_mult`` and ``channels``.

    Returns
    -------
    nn.Module
        Maps ``(N, C, H, W)`` to logits ``(N, K)``.

    Examples
    --------
    >>> import torch
    >>> m = vgg(input_shape=(1, 8, 8), num_classes=10, depth=11, width_mult=0.125)
    >>> m(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """
    c, _, _ = check_image_shape(input_shape, "vgg")
    check_positive_int(num_classes, "num_classes")
    if cfg is not None:
        layers = [v if v == "M" else check_positive_int(v, "cfg width") for v in cfg]  # type: ignore[arg-type]
        if not any(v != "M" for v in layers):
            raise ValueError(f"cfg must hold at least one conv width, got {list(cfg)!r}")
        return VGG(c, num_classes, layers, bool(batch_norm), act_layer, head_hidden, dropout)
    if depth not in CFGS:
        raise ValueError(f"vgg depth must be one of {sorted(CFGS)}, got {depth!r}")
    base = CFGS[depth]
    n_convs = sum(v != "M" for v in base)
    if channels is None:
        if not isinstance(width_mult, (int, float)) or not width_mult > 0:
            raise ValueError(f"width_mult must be a positive float, got {width_mult!r}")
        widths = [max(1, round(int(v) * width_mult)) for v in base if v != "M"]
    else:
        widths = list(channels)
        if len(widths) != n_convs:
            raise ValueError(
                f"channels must give {n_convs} widths for vgg{depth}, got {len(widths)}"
            )
        for k, wk in enumerate(widths):
            check_positive_int(wk, f"channels[{k}]")
    it = iter(widths)
    cfg = [v if v == "M" else next(it) for v in base]
    if head_hidden is not None:
        check_positive_int(head_hidden, "head_hidden")
    check_fraction(dropout, "dropout")
    return VGG(c, num_classes, cfg, bool(batch_norm), act_layer, head_hidden, dropout)
