"""LeNet-5 style CNN: conv-pool-conv-pool-fc-fc-fc.

After LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to document
recognition", Proc. IEEE 1998, in its modern form (ReLU by default, max pooling).
Layers: ``conv1`` (6, 5x5) -> pool -> ``conv2`` (16, 5x5) -> pool -> ``fc1`` (120) ->
``fc2`` (84) -> ``head`` (K).

Small inputs: the classic network uses unpadded 5x5 convolutions, which collapse an
8x8 digit to nothing.  With ``padding=None`` (default) the convolutions are unpadded when
that still leaves at least 1x1 at the end (e.g. 16x16 to 32x32 inputs) and "same"-padded
(padding 2) otherwise, so 8x8 inputs give 8 -> 4 -> 4 -> 2.
"""

from __future__ import annotations

import torch
from torch import nn

from netprism.core.validation import check_positive_int
from netprism.models.registry import check_image_shape, register_model

_KERNEL = 5


def _features_out(size: int, padding: int) -> int:
    """Spatial size after ``conv5 -> pool2 -> conv5 -> pool2`` with the given padding."""
    for _ in range(2):
        size = (size + 2 * padding - _KERNEL + 1) // 2
    return size


class LeNet(nn.Module):
    """LeNet-5 for ``(C, H, W)`` images.

    Parameters
    ----------
    in_channels : int
        ``C``.
    spatial : tuple of int
        ``(H, W)`` of the inputs, used to size ``fc1``.
    num_classes : int
        ``K``.
    padding : int
        Padding of both 5x5 convolutions.
    act_layer : type of nn.Module
        Activation class (the 1998 network used a scaled tanh).

    Shapes
    ------
    input ``(N, C, H, W)`` -> output ``(N, K)``.
    """

    def __init__(
        self,
        in_channels: int,
        spatial: tuple[int, int],
        num_classes: int,
        padding: int,
        act_layer: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, _KERNEL, padding=padding)
        self.act1 = act_layer()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 16, _KERNEL, padding=padding)
        self.act2 = act_layer()
        self.pool2 = nn.MaxPool2d(2)
        h, w = (_features_out(s, padding) for s in spatial)
        self.fc1 = nn.Linear(16 * h * w, 120)
        self.act3 = act_layer()
        self.fc2 = nn.Linear(120, 84)
        self.act4 = act_layer()
        self.head = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.act1(self.conv1(x)))  # (N, 6, H1, W1)
        x = self.pool2(self.act2(self.conv2(x)))  # (N, 16, H2, W2)
        x = x.flatten(1)  # (N, 16 * H2 * W2)
        x = self.act3(self.fc1(x))  # (N, 120)
        x = self.act4(self.fc2(x))  # (N, 84)
        return self.head(x)  # (N, K)


@register_model("lenet", image_only=True)
def lenet(
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    padding: int | None = None,
    act_layer: type[nn.Module] = nn.ReLU,
) -> nn.Module:
    """Build a :class:`LeNet` for ``(C, H, W)`` images (H, W from 8 up to 32 and beyond).

    Parameters
    ----------
    input_shape : tuple of int
        ``(C, H, W)``; any channel count.
    num_classes : int
        ``K`` output logits.
    padding : int or None, default None
        Padding of the 5x5 convolutions; ``None`` picks 0 when the unpadded network fits
        the input and 2 ("same") otherwise.
    act_layer : type of nn.Module, default nn.ReLU
        Activation class.

    Returns
    -------
    nn.Module
        Maps ``(N, C, H, W)`` to logits ``(N, K)``.

    Examples
    --------
    >>> import torch
    >>> m = lenet(input_shape=(1, 8, 8), num_classes=10)
    >>> m(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """
    c, h, w = check_image_shape(input_shape, "lenet")
    check_positive_int(num_classes, "num_classes")
    if padding is None:
        padding = 0 if min(_features_out(h, 0), _features_out(w, 0)) >= 1 else 2
    elif not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be a non-negative int or None, got {padding!r}")
    if min(_features_out(h, padding), _features_out(w, padding)) < 1:
        need = next(s for s in range(1, 64) if _features_out(s, padding) >= 1)
        raise ValueError(
            f"lenet with padding={padding} reduces input_shape {tuple(input_shape)}"
            f" below 1x1; expected H, W >= {need}"
        )
    return LeNet(c, (h, w), num_classes, padding, act_layer)
