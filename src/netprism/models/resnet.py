"""ResNet-18 with the CIFAR stem.

He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016
(arXiv:1512.03385): BasicBlocks in four stages of [2, 2, 2, 2] blocks with widths
``w, 2w, 4w, 8w`` and strides 1, 2, 2, 2.  The stem is the CIFAR one (a 3x3 stride-1 conv,
no max pool, as in the widely used CIFAR ResNet-18), then adaptive average pooling and a
linear ``head``.

Layer names follow torchvision (``conv1``, ``bn1``, ``layer1.0.conv1``, ...,
``layer4.1.shortcut``) except that the classifier is ``head``, as in every netprism model.
Small inputs: strided 3x3 convs with padding 1 never collapse a dimension below 1, so 8x8
inputs give 8 -> 8 -> 4 -> 2 -> 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from netprism.core.validation import check_positive_int
from netprism.models.registry import check_image_shape, register_model


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN) shortcut.

    Shapes
    ------
    ``(N, C_in, H, W)`` -> ``(N, C_out, ceil(H / stride), ceil(W / stride))``.
    """

    expansion = 1

    def __init__(
        self, in_planes: int, planes: int, stride: int = 1, act_layer: type[nn.Module] = nn.ReLU
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = act_layer()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = act_layer()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR-stem ResNet built from :class:`BasicBlock` stages.

    Parameters
    ----------
    in_channels : int
        ``C``.
    num_classes : int
        ``K``.
    layers : sequence of int
        Blocks per stage, ``(2, 2, 2, 2)`` for ResNet-18.
    width : int
        Base width ``w`` of the stem and first stage; stage ``s`` has ``w * 2**s``.
    act_layer : type of nn.Module
        Activation class.

    Shapes
    ------
    input ``(N, C, H, W)`` -> output ``(N, K)``; any ``H, W >= 1``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        layers: Sequence[int] = (2, 2, 2, 2),
        width: int = 64,
        act_layer: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.act1 = act_layer()
        in_planes = width
        for s, n_blocks in enumerate(layers):
            planes = width * 2**s
            blocks = []
            for b in range(n_blocks):
                stride = 2 if (s > 0 and b == 0) else 1
                blocks.append(BasicBlock(in_planes, planes, stride, act_layer))
                in_planes = planes
            self.add_module(f"layer{s + 1}", nn.Sequential(*blocks))
        self.n_stages = len(layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = in_planes
        self.head = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv1(x)))  # (N, w, H, W)
        for s in range(1, self.n_stages + 1):
            x = getattr(self, f"layer{s}")(x)  # (N, w * 2**(s-1), H / 2**(s-1), ...)
        x = self.pool(x).flatten(1)  # (N, 8w, 1, 1) -> (N, 8w)
        return self.head(x)  # (N, K)


@register_model("resnet18", image_only=True)
def resnet18(
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    width: int = 64,
    act_layer: type[nn.Module] = nn.ReLU,
) -> nn.Module:
    """Build a CIFAR-stem ResNet-18 for ``(C, H, W)`` images.

    Parameters
    ----------
    input_shape : tuple of int
        ``(C, H, W)``; any channel count and size (8x8 works).
    num_classes : int
        ``K`` output logits.
    width : int, default 64
        Base width; the four stages have ``width * (1, 2, 4, 8)`` channels.
    act_layer : type of nn.Module, default nn.ReLU
        Activation class.

    Returns
    -------
    nn.Module
        Maps ``(N, C, H, W)`` to logits ``(N, K)``.

    Examples
    --------
    >>> import torch
    >>> m = resnet18(input_shape=(1, 8, 8), num_classes=10, width=8)
    >>> m(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """
    c, _, _ = check_image_shape(input_shape, "resnet18")
    check_positive_int(num_classes, "num_classes")
    check_positive_int(width, "width")
    return ResNet(c, num_classes, (2, 2, 2, 2), width, act_layer)
