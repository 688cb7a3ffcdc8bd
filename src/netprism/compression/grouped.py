"""Utilized-rank projection of grouped convolutions, one group at a time.

A conv with ``g`` groups is ``g`` independent convs: group ``j`` maps its ``C_in/g`` input
channels (patches of width ``C_in/g*k*k``) to its ``C_out/g`` output channels.  Each group gets
its own input subspace S_j (from its own patches) and output subspace T_j, and its weight block
becomes ``P_Tj W_j P_Sj`` (same reconstruction as :mod:`netprism.compression.utilized_rank`:
Garg et al., arXiv 2407.04797).  Factorizing a grouped conv into two thin layers would mix
groups, so grouped convs are projected (dense, same shape) but never factorized.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from netprism.core.capture import capture
from netprism.core.subspace import StreamingCovariance


def grouped_second_moments(
    model: nn.Module, convs: dict[str, nn.Conv1d | nn.Conv2d], data: Any, *, batch_size: int = 256
) -> dict[str, list[torch.Tensor]]:
    """Per-group uncentered input second moments ``[(F, F)] * g`` of each grouped conv.

    Rows of a grouped conv's patches come ordered (sample, position, group), so a reshape to
    ``(-1, g, F)`` separates the groups.
    """
    covs = {
        name: [StreamingCovariance() for _ in range(conv.groups)] for name, conv in convs.items()
    }

    def consume(name: str, kind: str, rows: torch.Tensor) -> None:
        g = convs[name].groups
        per_group = rows.reshape(-1, g, rows.shape[1])  # (N*L, g, F)
        for j, cov in enumerate(covs[name]):
            cov.update(per_group[:, j])

    sink: Callable[[str, str, torch.Tensor], None] = consume
    capture(model, list(convs), data, what="inputs", consumer=sink, batch_size=batch_size)
    return {name: [c.covariance() for c in group] for name, group in covs.items()}


def project_grouped_conv(
    conv: nn.Conv1d | nn.Conv2d,
    moments: list[torch.Tensor],
    threshold: float,
    project_layer: Callable[..., torch.Tensor],
) -> None:
    """Replace ``conv.weight`` in place by the per-group projections ``P_Tj W_j P_Sj``."""
    g = conv.groups
    weight = conv.weight.detach().double()  # (C_out, C_in/g, kh, kw)
    blocks = weight.reshape(g, conv.out_channels // g, -1)  # (g, C_out/g, C_in/g*kh*kw)
    projected = torch.stack(
        [project_layer(blocks[j], moments[j], threshold=threshold) for j in range(g)]
    )
    conv.weight.data = projected.reshape(conv.weight.shape).to(conv.weight)
