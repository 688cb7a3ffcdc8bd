"""What a model returns -> the logits every lens and the training engine read.

Users' models return a tensor, a tuple or list (logits first, as many research codebases do),
a dict with a ``"logits"`` entry, or an object with a ``.logits`` attribute (Hugging Face's
``ModelOutput``).  :func:`as_logits` maps all of them to the ``(B, K)`` tensor; a user may pass
their own ``output_fn`` instead wherever a model is called.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

OutputFn = Callable[[Any], torch.Tensor]


def as_logits(output: Any) -> torch.Tensor:
    """The logits inside a model's output.

    Parameters
    ----------
    output : Tensor, tuple/list, dict or object with ``.logits``
        A tensor is returned as is; a tuple or list gives its first element; a dict its
        ``"logits"`` entry; any other object its ``.logits`` attribute.

    Returns
    -------
    Tensor (B, K)

    Raises
    ------
    TypeError
        When no logits can be found; the message names what was returned and the fix
        (``output_fn=``).

    Examples
    --------
    >>> t = torch.zeros(2, 3)
    >>> as_logits((t, "aux")) is t, as_logits({"logits": t}) is t
    (True, True)
    """
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    if isinstance(output, Mapping):
        if isinstance(output.get("logits"), torch.Tensor):
            return output["logits"]
        raise TypeError(
            f"the model returned a dict with keys {sorted(map(str, output))} but no 'logits' "
            "tensor; pass output_fn= to say which entry holds the logits"
        )
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    raise TypeError(
        f"cannot find logits in the model's output of type {type(output).__name__}: expected a "
        "tensor, a tuple/list whose first element is a tensor, a dict with 'logits', or an "
        "object with .logits; pass output_fn= to extract them"
    )


def model_logits(model: nn.Module, x: Any, output_fn: OutputFn | None = None) -> torch.Tensor:
    """``model(x)`` reduced to its logits by ``output_fn`` (default :func:`as_logits`)."""
    return (output_fn or as_logits)(model(x))
