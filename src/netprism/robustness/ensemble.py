"""Hard-vote ensembles, ensemble PGD attacks and TREND's robust ensemble design.

Ravikumar, Kodge, Garg & Roy, "TREND: Transferability based Robust ENsemble Design" (IEEE TAI
2023, arXiv 2008.01524), ``perturb_bpda_ensemble`` of the official code.

- :func:`majority_vote`: the ensemble predicts the class most members' arg-max names; a tie
  between top classes (with no two members agreeing: full disagreement) is broken by a
  randomly chosen member among the tied ones (seeded).
- :func:`ensemble_direction`: the per-pixel step direction from member gradients ``g_m``:
  ``"avg"`` (D-AG) ``sign(sum_m g_m)`` -- one member with a huge gradient (a BPDA surrogate, a
  quantised net, a rescaled loss) dictates it ("gradient domination"); ``"sign_avg"`` (A-GD,
  the paper's attack) ``sign(sum_m sign(g_m))`` -- one vote per member and pixel, unchanged
  when any member's gradient is multiplied by a positive constant; ``"sign_all"`` (U-GD) the
  common sign where all members agree, else 0.
- :func:`ensemble_pgd`: L-inf PGD with one of those directions.
- :func:`select_ensemble`: the design procedure -- from a pool, the members with the lowest
  mutual transferability; :func:`design_robust_ensemble` runs it end to end on a pool.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from netprism.robustness.adversarial import (
    check_attack_inputs,
    input_gradient,
    predict,
    project,
    random_init,
)
from netprism.robustness.transfer import TransferResult, transferability_matrix

MODES = ("avg", "sign_avg", "sign_all")
MODE_NAMES = {"avg": "D-AG", "sign_avg": "A-GD", "sign_all": "U-GD"}


def majority_vote(preds: torch.Tensor, num_classes: int, *, seed: int = 0) -> torch.Tensor:
    """Hard majority vote of member predictions.

    Parameters
    ----------
    preds : LongTensor (M, N)
        Each member's arg-max class for each sample.
    num_classes : int
        ``K``.
    seed : int
        Seeds the tie-breaking draw.

    Returns
    -------
    LongTensor (N,)
        The most voted class; on a tie (e.g. no two members agree) the vote of a member drawn
        uniformly among those voting for a tied class.

    Examples
    --------
    >>> majority_vote(torch.tensor([[0, 1], [0, 2], [1, 3]]), 4)[0].item()
    0
    """
    if preds.ndim != 2 or preds.is_floating_point():
        raise ValueError(
            f"preds must be an integer tensor (M, N), got {preds.dtype} {tuple(preds.shape)}"
        )
    if int(preds.min()) < 0 or int(preds.max()) >= num_classes:
        raise ValueError(
            f"preds must lie in [0, {num_classes}), got [{int(preds.min())}, {int(preds.max())}]"
        )
    M, N = preds.shape
    votes = torch.zeros(N, num_classes, dtype=torch.long, device=preds.device)
    votes.scatter_add_(1, preds.T, torch.ones(N, M, dtype=torch.long, device=preds.device))
    top = votes.max(dim=1).values  # (N,)
    tied = votes == top[:, None]  # (N, K)
    out = votes.argmax(dim=1)
    ambiguous = tied.sum(dim=1) > 1
    if ambiguous.any():
        gen = torch.Generator().manual_seed(seed)
        # eligible[n, m]: member m voted for one of sample n's tied top classes
        eligible = tied.gather(1, preds.T).float()  # (N, M)
        # drawn on the CPU generator whatever the device, so ties break the same way everywhere
        pick = torch.multinomial(eligible[ambiguous].cpu(), 1, generator=gen).squeeze(1)
        pick = pick.to(preds.device)
        out[ambiguous] = preds.T[ambiguous].gather(1, pick[:, None]).squeeze(1)
    return out


class HardVoteEnsemble(nn.Module):
    """Hard majority vote of ``members``; ``forward`` returns vote counts (N, K) (not
    differentiable -- attack it with :func:`ensemble_pgd`); :meth:`predict` breaks ties.
    """

    def __init__(self, members: Sequence[nn.Module], num_classes: int, *, seed: int = 0) -> None:
        super().__init__()
        if len(members) < 1:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.num_classes, self.seed = int(num_classes), int(seed)

    def member_predictions(self, x: torch.Tensor) -> torch.Tensor:
        """(M, N) arg-max classes of every member."""
        return torch.stack([predict(m, x) for m in self.members])

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        preds = self.member_predictions(x)  # (M, N), on the members' device
        votes = torch.zeros(x.shape[0], self.num_classes, device=preds.device)
        ones = torch.ones(preds.shape[1], preds.shape[0], device=preds.device)
        return votes.scatter_add_(1, preds.T, ones)  # (N, K)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """(N,) hard-vote predictions with the seeded tie rule."""
        return majority_vote(self.member_predictions(x), self.num_classes, seed=self.seed)


def member_gradients(
    members: Sequence[nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    loss_scales: Sequence[float] | None = None,
) -> torch.Tensor:
    """Input gradients of each member's summed CE loss (times its ``loss_scales``): (M, N, ...)."""
    scales = list(loss_scales) if loss_scales is not None else [1.0] * len(members)
    if len(scales) != len(members) or any(not s > 0 for s in scales):
        raise ValueError(f"loss_scales must be {len(members)} positive numbers, got {scales}")
    return torch.stack([input_gradient(m, x, y, loss_scale=s) for m, s in zip(members, scales)])


def ensemble_direction(grads: torch.Tensor, mode: str = "sign_avg") -> torch.Tensor:
    """Step direction (N, ...) in {-1, 0, 1} from member gradients ``grads`` (M, N, ...).

    Examples
    --------
    >>> g = torch.tensor([[[1e3, -1e3]], [[-1.0, -1.0]], [[-2.0, 3.0]]])  # (M=3, N=1, D=2)
    >>> ensemble_direction(g, "avg").tolist(), ensemble_direction(g, "sign_avg").tolist()
    ([[1.0, -1.0]], [[-1.0, -1.0]])
    >>> ensemble_direction(g, "sign_all").tolist()
    [[0.0, 0.0]]
    """
    if mode == "avg":
        return grads.sum(dim=0).sign()
    if mode == "sign_avg":
        return grads.sign().sum(dim=0).sign()
    if mode == "sign_all":
        s = grads.sign()
        agree = (s == s[0:1]).all(dim=0)
        return torch.where(agree, s[0], torch.zeros_like(s[0]))
    raise ValueError(f"mode must be one of {MODES} (D-AG, A-GD, U-GD), got {mode!r}")


def ensemble_pgd(
    members: Sequence[nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    mode: str = "sign_avg",
    steps: int = 40,
    step_size: float | None = None,
    random_start: bool = True,
    seed: int = 0,
    loss_scales: Sequence[float] | None = None,
) -> torch.Tensor:
    """L-inf PGD on an ensemble, stepping along :func:`ensemble_direction`.

    Parameters
    ----------
    members : sequence of nn.Module, each (N, ...) in [0, 1] -> logits (N, K), eval mode
    x : Tensor (N, ...) in [0, 1]; y : LongTensor (N,)
    eps : float; mode : {"avg", "sign_avg", "sign_all"}
    steps : int (TREND: 40); step_size : float, default ``eps / 4``
    random_start : bool; seed : int
    loss_scales : sequence of float, optional
        Multiply member ``m``'s loss by ``loss_scales[m]`` (gradient-domination experiments).

    Returns
    -------
    Tensor (N, ...) adversarial images in the eps-ball and [0, 1].

    Examples
    --------
    >>> ms = [nn.Linear(4, 3), nn.Linear(4, 3)]
    >>> x = torch.rand(5, 4)
    >>> adv = ensemble_pgd(ms, x, torch.zeros(5, dtype=torch.long), eps=0.1, steps=2)
    >>> bool((adv - x).abs().max() <= 0.1 + 1e-7)
    True
    """
    check_attack_inputs(x, y, eps)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES} (D-AG, A-GD, U-GD), got {mode!r}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    alpha = step_size if step_size is not None else eps / 4.0
    x = x.detach()
    adv = random_init(x, eps, "linf", seed) if random_start else x.clone()
    for _ in range(steps):
        grads = member_gradients(members, adv, y, loss_scales=loss_scales)  # (M, N, ...)
        adv = project(adv + alpha * ensemble_direction(grads, mode), x, eps, "linf")
    return adv.detach()


def robust_accuracy(ensemble: HardVoteEnsemble, x_adv: torch.Tensor, y: torch.Tensor) -> float:
    """Hard-vote accuracy on (adversarial) inputs ``x_adv`` (N, ...)."""
    return float((ensemble.predict(x_adv) == y).float().mean())


def select_ensemble(
    tm: np.ndarray,
    size: int,
    *,
    include: Sequence[int] = (),
    candidates: Sequence[int] | None = None,
) -> list[int]:
    """TREND's design step: the ``size`` members with the lowest mean mutual transferability.

    Searches all subsets of ``candidates`` (default: every model) that contain ``include``,
    scoring each by the mean of ``tm[i, j]`` over ordered pairs ``i != j`` (both directions).

    Parameters
    ----------
    tm : ndarray (M, M), TM matrix (rows: source)
    size : int, ensemble size
    include : indices that must be members (e.g. the full-precision model)

    Returns
    -------
    list of int, sorted indices of the chosen members.

    Examples
    --------
    >>> tm = np.array([[1, .9, .1], [.9, 1, .2], [.1, .2, 1]])
    >>> select_ensemble(tm, 2)
    [0, 2]
    """
    tm = np.asarray(tm, dtype=float)
    M = tm.shape[0]
    if tm.shape != (M, M):
        raise ValueError(f"tm must be a square (M, M) matrix, got shape {tm.shape}")
    pool = list(range(M)) if candidates is None else list(candidates)
    if not isinstance(size, int) or not 1 <= size <= len(pool):
        raise ValueError(f"size must be an int in [1, {len(pool)}], got {size!r}")
    fixed = sorted(set(include))
    if any(i not in pool for i in fixed) or len(fixed) > size:
        raise ValueError(f"include {fixed} must be <= {size} indices of the candidates {pool}")
    rest = [i for i in pool if i not in fixed]
    best: tuple[float, list[int]] | None = None
    for combo in itertools.combinations(rest, size - len(fixed)):
        members = sorted([*fixed, *combo])
        score = _mutual_tm(tm, members)
        if best is None or score < best[0]:
            best = (score, members)
    assert best is not None
    return best[1]


def _mutual_tm(tm: np.ndarray, members: Sequence[int]) -> float:
    pairs = [(i, j) for i in members for j in members if i != j]
    return float(np.nanmean([tm[i, j] for i, j in pairs])) if pairs else 0.0


def design_robust_ensemble(
    models: Mapping[str, nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    size: int = 3,
    eps: Sequence[float] = (0.05, 0.1, 0.15, 0.2, 0.3),
    eval_eps: float = 0.1,
    include: Sequence[str] = (),
    seed: int = 0,
) -> tuple[HardVoteEnsemble, list[str], TransferResult]:
    """TREND in one call: the TM matrix of the pool, the lowest-transfer members, their
    hard-vote ensemble.

    Parameters
    ----------
    models : mapping name -> model ((N, ...) in [0, 1] -> logits (N, K), eval mode)
    x : Tensor (N, ...) in [0, 1]; y : LongTensor (N,) (held-out data for the TM matrix)
    size : int, ensemble size; eps : the PGD eps sweep; eval_eps : where TM is read
    include : names that must be members; seed : the vote's tie-breaking seed

    Returns
    -------
    (ensemble, member names, TransferResult)

    Examples
    --------
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> pool = {n: nn.Linear(4, 3) for n in "abc"}
    >>> x = torch.rand(30, 4)
    >>> ens, names, _ = design_robust_ensemble(pool, x, pool["a"](x).argmax(1), size=2)
    >>> len(names), ens.predict(x).shape
    (2, torch.Size([30]))
    """
    names = list(models)
    missing = [n for n in include if n not in models]
    if missing:
        raise ValueError(f"include names {missing} are not in the pool {names}")
    result = transferability_matrix(models, x, y, eps=eps, eval_eps=eval_eps)
    chosen = select_ensemble(result.tm, size, include=[names.index(n) for n in include])
    members = [names[i] for i in chosen]
    with torch.no_grad():
        K = int(models[names[0]](x[:1]).shape[1])
    return HardVoteEnsemble([models[n] for n in members], K, seed=seed), members, result
