"""Multilayer perceptron: flatten, then ``Linear -> act -> dropout`` blocks and a linear head.

The plain fully connected baseline (Rumelhart, Hinton & Williams, "Learning representations
by back-propagating errors", Nature 1986).  Works on any input shape, including 1-D
signals such as MNIST-1D ``(40,)``.  Layers are named ``fc1, fc2, ..., head`` so a lens can
select them by name (``model.fc1``, ``dict(model.named_modules())["head"]``).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from netprism.core.validation import check_fraction, check_positive_int
from netprism.models.registry import register_model


class MLP(nn.Sequential):
    """Flatten -> ``[fc_i -> act_i (-> drop_i)]`` for each hidden width -> ``head``.

    Parameters
    ----------
    in_features : int
        ``D``, the number of input features after flattening one sample.
    num_classes : int
        ``K``, the number of output logits.
    hidden : sequence of int
        Hidden widths; ``()`` gives a linear (softmax-regression) model.
    act_layer : type of nn.Module
        Activation class, instantiated once per hidden layer (timm style).
    dropout : float
        Dropout probability after each activation; ``0`` adds no dropout layer.
    bias : bool
        Give every Linear a bias (the GPM and DCT-SNN networks have none).

    Shapes
    ------
    input ``(N, *input_shape)`` -> output ``(N, K)``.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        hidden: Sequence[int] = (256, 128),
        act_layer: type[nn.Module] = nn.ReLU,
        dropout: float = 0.0,
        bias: bool = True,
    ) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["flatten"] = nn.Flatten(1)  # (N, *input_shape) -> (N, D)
        width = in_features
        for i, h in enumerate(hidden, start=1):
            layers[f"fc{i}"] = nn.Linear(width, h, bias=bias)
            layers[f"act{i}"] = act_layer()
            if dropout > 0:
                layers[f"drop{i}"] = nn.Dropout(dropout)
            width = h
        layers["head"] = nn.Linear(width, num_classes, bias=bias)  # (N, H_last) -> (N, K)
        super().__init__(layers)


@register_model("mlp", image_only=False)
def mlp(
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    hidden: Sequence[int] = (256, 128),
    act_layer: type[nn.Module] = nn.ReLU,
    dropout: float = 0.0,
    bias: bool = True,
) -> nn.Module:
    """Build an :class:`MLP` for inputs of ``input_shape`` (any rank).

    Parameters
    ----------
    input_shape : tuple of int
        One sample's shape, e.g. ``(40,)`` or ``(1, 8, 8)``; it is flattened to
        ``D = prod(input_shape)``.
    num_classes : int
        ``K`` output logits.
    hidden : sequence of int, default (256, 128)
        Hidden layer widths.
    act_layer : type of nn.Module, default nn.ReLU
        Activation class.
    dropout : float, default 0.0
        Dropout probability in ``[0, 1)`` after each hidden activation.
    bias : bool, default True
        Biases on every Linear.

    Returns
    -------
    nn.Module
        Maps ``(N, *input_shape)`` to logits ``(N, K)``.

    Examples
    --------
    >>> import torch
    >>> m = mlp(input_shape=(40,), num_classes=10, hidden=(32,))
    >>> m(torch.zeros(2, 40)).shape
    torch.Size([2, 10])
    """
    shape = tuple(input_shape)
    if not shape or any(not isinstance(s, int) or s <= 0 for s in shape):
        raise ValueError(f"input_shape must be a non-empty tuple of positive ints, got {shape!r}")
    check_positive_int(num_classes, "num_classes")
    widths = tuple(hidden)
    for i, h in enumerate(widths):
        check_positive_int(h, f"hidden[{i}]")
    check_fraction(dropout, "dropout")
    return MLP(math.prod(shape), num_classes, widths, act_layer, dropout, bias=bool(bias))
