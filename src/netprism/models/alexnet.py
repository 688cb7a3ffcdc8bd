"""The 5-layer AlexNet used for continual learning by GPM.

Saha, Garg & Roy, "Gradient Projection Memory for Continual Learning", ICLR 2021
(arXiv:2103.09762), after the AlexNet of Serra et al. (HAT, ICML 2018).  Layer for layer as
in the official GPM code (``main_cifar100.py``):

    conv1 64@4x4 -> bn1 -> ReLU -> dropout 0.2 -> maxpool 2
    conv2 128@3x3 -> bn2 -> ReLU -> dropout 0.2 -> maxpool 2
    conv3 256@2x2 -> bn3 -> ReLU -> dropout 0.5 -> maxpool 2
    fc1 2048 -> bn4 -> ReLU -> dropout 0.5
    fc2 2048 -> bn5 -> ReLU -> dropout 0.5
    head K

Convolutions and linear layers have no bias; batch norms keep no running statistics
(``track_running_stats=False``), so they normalise with the current batch's statistics
even in eval mode, as GPM does -- a batch must therefore hold at least 2 samples.
GPM's per-task heads (``fc3``) are one ``head`` here; multi-head setups belong to
``netprism.continual``.

Small inputs: on 32x32 the network is exactly GPM's (32 -> 14 -> 6 -> 2, fc1 takes
256*2*2).  Where a kernel would not fit the current spatial size, that convolution is
zero-padded just enough to fit, and a max pool is skipped where the size is already 1;
8x8 inputs give 8 -> 5 -> 2 -> 2 -> 1 -> 2 -> 1.
"""

from __future__ import annotations

import torch
from torch import nn

from netprism.core.validation import check_fraction, check_positive_int
from netprism.models.registry import check_image_shape, register_model

# (out_channels, kernel) of conv1..conv3, as in GPM
_CONVS = ((64, 4), (128, 3), (256, 2))
_FC_WIDTH = 2048


Plan = list[tuple[tuple[int, int], tuple[int, int]]]


def _plan(h: int, w: int) -> tuple[Plan, tuple[int, int]]:
    """Per conv layer its ``(pad_h, pad_w)`` and pool kernel ``(kh, kw)``; then the final size.

    A dimension is zero-padded only when the kernel would not fit, and pooled only while it
    is at least 2 wide; for H, W >= 19 this is GPM's unpadded, always-pooled network.
    """
    plan: Plan = []
    size = [h, w]
    for _, k in _CONVS:
        pad = [max(0, -(-(k - s) // 2)) for s in size]  # ceil((k - s) / 2), at least 0
        size = [s + 2 * p - k + 1 for s, p in zip(size, pad)]
        pool = [2 if s >= 2 else 1 for s in size]
        size = [s // q for s, q in zip(size, pool)]
        plan.append(((pad[0], pad[1]), (pool[0], pool[1])))
    return plan, (size[0], size[1])


def _pool(kernel: tuple[int, int]) -> nn.Module:
    return nn.Identity() if kernel == (1, 1) else nn.MaxPool2d(kernel)


class AlexNet(nn.Module):
    """GPM's 5-layer AlexNet for ``(C, H, W)`` images.

    Parameters
    ----------
    in_channels : int
        ``C``.
    spatial : tuple of int
        ``(H, W)`` of the inputs; fixes paddings, pools and the width of ``fc1``.
    num_classes : int
        ``K``.
    track_running_stats : bool
        Passed to every batch norm; GPM uses ``False``.
    drop_conv, drop_fc : float
        Dropout after conv1/conv2 and after conv3/fc1/fc2 (GPM: 0.2 and 0.5).

    Shapes
    ------
    input ``(N, C, H, W)`` -> output ``(N, K)``.
    """

    def __init__(
        self,
        in_channels: int,
        spatial: tuple[int, int],
        num_classes: int,
        track_running_stats: bool = False,
        drop_conv: float = 0.2,
        drop_fc: float = 0.5,
    ) -> None:
        super().__init__()
        plan, (h, w) = _plan(*spatial)
        (c1, k1), (c2, k2), (c3, k3) = _CONVS
        trs = track_running_stats
        self.conv1 = nn.Conv2d(in_channels, c1, k1, padding=plan[0][0], bias=False)
        self.bn1 = nn.BatchNorm2d(c1, track_running_stats=trs)
        self.pool1 = _pool(plan[0][1])
        self.conv2 = nn.Conv2d(c1, c2, k2, padding=plan[1][0], bias=False)
        self.bn2 = nn.BatchNorm2d(c2, track_running_stats=trs)
        self.pool2 = _pool(plan[1][1])
        self.conv3 = nn.Conv2d(c2, c3, k3, padding=plan[2][0], bias=False)
        self.bn3 = nn.BatchNorm2d(c3, track_running_stats=trs)
        self.pool3 = _pool(plan[2][1])
        self.relu = nn.ReLU()
        self.drop1 = nn.Dropout(drop_conv)
        self.drop2 = nn.Dropout(drop_fc)
        self.flat_features = c3 * h * w
        self.fc1 = nn.Linear(self.flat_features, _FC_WIDTH, bias=False)
        self.bn4 = nn.BatchNorm1d(_FC_WIDTH, track_running_stats=trs)
        self.fc2 = nn.Linear(_FC_WIDTH, _FC_WIDTH, bias=False)
        self.bn5 = nn.BatchNorm1d(_FC_WIDTH, track_running_stats=trs)
        self.head = nn.Linear(_FC_WIDTH, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.drop1(self.relu(self.bn1(self.conv1(x)))))  # (N, 64, H_1, W_1)
        x = self.pool2(self.drop1(self.relu(self.bn2(self.conv2(x)))))  # (N, 128, H_2, W_2)
        x = self.pool3(self.drop2(self.relu(self.bn3(self.conv3(x)))))  # (N, 256, H_3, W_3)
        x = x.flatten(1)  # (N, 256 * H_3 * W_3)
        x = self.drop2(self.relu(self.bn4(self.fc1(x))))  # (N, 2048)
        x = self.drop2(self.relu(self.bn5(self.fc2(x))))  # (N, 2048)
        return self.head(x)  # (N, K)


@register_model("alexnet", image_only=True)
def alexnet(
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    track_running_stats: bool = False,
    drop_conv: float = 0.2,
    drop_fc: float = 0.5,
) -> nn.Module:
    """Build GPM's :class:`AlexNet` for ``(C, H, W)`` images (any C; 8x8 up to 32x32+).

    Parameters
    ----------
    input_shape : tuple of int
        ``(C, H, W)``.
    num_classes : int
        ``K`` output logits.
    track_running_stats : bool, default False
        As in GPM: batch norms use batch statistics in train and eval mode.
    drop_conv : float, default 0.2
        Dropout after the first two conv blocks.
    drop_fc : float, default 0.5
        Dropout after the third conv block and both hidden linear layers.

    Returns
    -------
    nn.Module
        Maps ``(N, C, H, W)`` to logits ``(N, K)``; needs ``N >= 2`` unless
        ``track_running_stats=True`` and the model is in eval mode.

    Examples
    --------
    >>> import torch
    >>> m = alexnet(input_shape=(3, 32, 32), num_classes=10)
    >>> m(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """
    c, h, w = check_image_shape(input_shape, "alexnet")
    check_positive_int(num_classes, "num_classes")
    check_fraction(drop_conv, "drop_conv")
    check_fraction(drop_fc, "drop_fc")
    return AlexNet(c, (h, w), num_classes, bool(track_running_stats), drop_conv, drop_fc)
