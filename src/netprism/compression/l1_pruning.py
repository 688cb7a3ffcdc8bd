"""L1-norm filter pruning to a MAC budget: the baseline the PCA design is compared against.

Li, Kadav, Durdanovic, Samet & Graf, "Pruning Filters for Efficient ConvNets", ICLR 2017,
arXiv 1608.08710: rank each layer's filters by the L1 norm of their weights and remove the
smallest.  Here through Torch-Pruning (the optional ``torch-pruning`` package), which removes
the filters physically and keeps the dependent layers consistent (DepGraph), at one uniform
ratio bisected until the pruned network's MACs meet a target.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["l1_prune_to_macs"]


def l1_prune_to_macs(
    model: nn.Module,
    example_inputs: torch.Tensor,
    target_macs: int,
    *,
    ignored_layers: Sequence[nn.Module] = (),
    rel_tol: float = 0.05,
    max_iter: int = 20,
) -> tuple[nn.Module, dict[str, float]]:
    """L1-norm filter pruning (Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017)
    of a copy of ``model`` down to ``target_macs``.

    Torch-Pruning removes filters physically (``MetaPruner``, ``MagnitudeImportance(p=1)`` over
    each DepGraph group's Conv/Linear weights) at one uniform ratio, bisected until the MACs
    lie within ``rel_tol`` of the target (else the closest of ``max_iter`` tries).

    Parameters
    ----------
    model : nn.Module
        The trained network; it is copied, never changed.
    example_inputs : Tensor, shape ``(1, *input_shape)``
        One input, traced to build the dependency graph and count MACs.
    target_macs : int
        The MAC budget (> 0) of one forward pass on ``example_inputs``.
    ignored_layers : sequence of nn.Module
        Modules of ``model`` whose outputs are never pruned (e.g. the classifier head).
    rel_tol : float
        Accepted relative MAC error ``|macs - target| / target``.
    max_iter : int
        Bisection steps at most.

    Returns
    -------
    tuple
        The pruned copy (not fine-tuned; in ``model``'s train/eval mode) and ``info``:
        ``pruning_ratio``, ``macs``, ``params``, ``mac_error`` (relative).

    Raises
    ------
    ImportError
        Without Torch-Pruning.
    ValueError
        When ``target_macs`` is not positive, ``rel_tol`` not positive, ``max_iter`` below 1,
        or an ``ignored_layers`` entry is not a module of ``model``.
    """
    if target_macs <= 0:
        raise ValueError(f"target_macs must be a positive MAC count, got {target_macs!r}")
    if not rel_tol > 0:
        raise ValueError(f"rel_tol must be a positive fraction, got {rel_tol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be an int >= 1, got {max_iter!r}")
    names = {id(m): n for n, m in model.named_modules()}
    strangers = [type(m).__name__ for m in ignored_layers if id(m) not in names]
    if strangers:
        raise ValueError(f"ignored_layers holds modules that are not in model: {strangers}")
    import torch_pruning as tp

    def prune(ratio: float) -> tuple[nn.Module, int, int]:
        pruned = copy.deepcopy(model).eval()
        by_name = dict(pruned.named_modules())
        ignored = [by_name[names[id(m)]] for m in ignored_layers]
        imp = tp.importance.MagnitudeImportance(p=1, target_types=[nn.Conv2d, nn.Linear])
        pruner = tp.pruner.MetaPruner(
            pruned, example_inputs, importance=imp, pruning_ratio=ratio, ignored_layers=ignored
        )
        pruner.step()
        macs, params = tp.utils.count_ops_and_params(pruned, example_inputs)
        return pruned, int(macs), int(params)

    lo, hi, best = 0.0, 0.99, None
    for _ in range(max_iter):
        mid = 0.5 * (lo + hi)
        pruned, macs, params = prune(mid)
        err = (macs - target_macs) / target_macs
        if best is None or abs(err) < abs(best[1]["mac_error"]):
            best = (
                pruned,
                {"pruning_ratio": mid, "macs": macs, "params": params, "mac_error": err},
            )
        if abs(err) <= rel_tol:
            break
        lo, hi = (mid, hi) if macs > target_macs else (lo, mid)
    assert best is not None  # max_iter >= 1
    return best[0].train(model.training), best[1]
