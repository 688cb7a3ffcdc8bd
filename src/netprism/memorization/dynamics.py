"""Training-dynamics peers of the curvature score, all from one training run.

After every epoch one eval-mode pass over the training set records each sample's loss,
assigned-class probability, logit margin, correctness and predictive entropy.  From those:

- the epoch-averaged loss of that pass (``"loss"``: the end-of-epoch twin of CSL, below);
- final-epoch in-confidence ``1 - p_y``;
- AUM, the area under the margin (Pleiss et al., NeurIPS 2020, arXiv 2001.10528), negated so
  that higher is more suspicious;
- forgetting events (Toneva et al., ICLR 2019, arXiv 1812.05159): correct -> wrong transitions
  between epochs, never-learned samples ranked highest;
- learning time (as in Maini et al., "Characterizing Datapoints via Second-Split Forgetting",
  NeurIPS 2022): the first epoch from which a sample stays classified as its label;
- dataset cartography (Swayamdipta et al., EMNLP 2020, arXiv 2009.10795): ``1 - mean p_y``
  and the standard deviation of ``p_y`` over epochs;
- label-free predictive entropy of the final model: on ReLU networks the input Hessian of the
  loss does not depend on the label, so entropy is the control for how much of curvature is
  plain uncertainty (Garg et al., arXiv 2307.05831).

Every score is oriented so that higher means more memorized / more likely mislabeled.

:class:`CumulativeLoss` records the cumulative sample loss, CSL, of Ravikumar et al., "Towards
Memorization Estimation: Fast, Formal and Free" (ICML 2025) as that paper defines it: the sum
of a sample's loss over training, read from the training batches themselves (the loss each
step computed, in train mode and with any augmentation), so it costs no extra forward pass.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F

from netprism.core.per_sample import eval_mode, margins_from_logits

DYNAMICS_SCORES = (
    "loss",
    "in_confidence",
    "aum",
    "forgetting",
    "cartography_confidence",
    "cartography_variability",
    "entropy",
    "learning_time",
)
TRAINING_LOSS_SCORES = ("csl",)


class TrainingDynamics:
    """Training callback recording per-sample dynamics at the end of every epoch.

    Use with :func:`netprism.train.fit`; read :attr:`scores_` after training.  Each epoch's
    values come from an eval-mode pass over the context's scoring data (``fit``'s
    ``score_data``, else the training set) in index order, stored at each sample's index.

    Parameters
    ----------
    batch_size : int
        Samples per eval forward pass.

    Examples
    --------
    >>> from netprism.train import TrainConfig, fit
    >>> x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    >>> dyn = TrainingDynamics()
    >>> _ = fit(torch.nn.Linear(3, 2), (x, y), TrainConfig(epochs=3, progress=False),
    ...         callbacks=[dyn])
    >>> sorted(dyn.scores_) == sorted(DYNAMICS_SCORES), dyn.loss_history_.shape
    (True, torch.Size([3, 16]))
    """

    def __init__(self, *, batch_size: int = 1024) -> None:
        self.batch_size = batch_size
        self._losses: list[torch.Tensor] = []  # per epoch (N,)
        self._p_y: list[torch.Tensor] = []
        self._margins: list[torch.Tensor] = []
        self._correct: list[torch.Tensor] = []
        self._entropy: torch.Tensor | None = None
        self.seconds_ = 0.0

    needs_index = True  # fit refuses data without a stable sample index

    def on_epoch_end(self, ctx: Any, metrics: dict[str, Any]) -> None:
        """One eval pass over the scoring data; appends this epoch's values."""
        start = time.perf_counter()
        loss, p_y, margin, correct, entropy = self._eval_pass(ctx)
        self._losses.append(loss)
        self._p_y.append(p_y)
        self._margins.append(margin)
        self._correct.append(correct)
        self._entropy = entropy
        self.seconds_ += time.perf_counter() - start

    @torch.no_grad()
    def _eval_pass(self, ctx: Any) -> tuple[torch.Tensor, ...]:
        """Stream ``ctx.score_batches`` in index order; each value lands at its sample's
        dataset index, so memory is O(batch + N) and the loader's order cannot matter."""
        n = ctx.num_samples
        cols = [torch.full((n,), float("nan"), dtype=torch.float64) for _ in range(5)]
        cols[3] = torch.zeros(n, dtype=torch.bool)  # correct
        with eval_mode(ctx.model):
            for batch in ctx.score_batches(self.batch_size):
                xb, yb = batch.x.to(ctx.device), batch.y.to(ctx.device)
                logits = ctx.output_fn(ctx.model(xb)).double()  # (B, K)
                log_p = F.log_softmax(logits, dim=1)
                loss = -log_p.gather(1, yb.unsqueeze(1)).squeeze(1)
                entropy = -(log_p.exp() * log_p).sum(dim=1)
                margin = margins_from_logits(logits, yb)
                correct = logits.argmax(dim=1) == yb
                values = (loss, (-loss).exp(), margin, correct, entropy)
                for col, value in zip(cols, values):
                    col[batch.index] = value.cpu()
        return tuple(cols)

    @property
    def epochs_(self) -> int:
        return len(self._losses)

    @property
    def final_correct_(self) -> torch.Tensor:
        """Whether each scored sample was classified as its label after the last epoch
        (eval mode, no augmentation), ``(N,)`` bool."""
        self._check_recorded()
        return self._correct[-1].clone()

    @property
    def loss_history_(self) -> torch.Tensor:
        """Per-epoch losses, ``(E, N)``."""
        self._check_recorded()
        return torch.stack(self._losses)

    @property
    def scores_(self) -> dict[str, torch.Tensor]:
        """Each of :data:`DYNAMICS_SCORES` as an ``(N,)`` float64 tensor, higher = suspicious."""
        self._check_recorded()
        p_y = torch.stack(self._p_y)  # (E, N)
        assert self._entropy is not None
        return {
            "loss": torch.stack(self._losses).mean(0),
            "in_confidence": 1.0 - p_y[-1],
            "aum": -torch.stack(self._margins).mean(0),
            "forgetting": forgetting_events(torch.stack(self._correct)),
            "cartography_confidence": 1.0 - p_y.mean(0),
            "cartography_variability": p_y.std(0, unbiased=False),
            "entropy": self._entropy,
            "learning_time": learning_time(torch.stack(self._correct)),
        }

    def _check_recorded(self) -> None:
        if not self._losses:
            raise RuntimeError("TrainingDynamics has recorded no epoch yet; train first")

    def state_dict(self) -> dict[str, torch.Tensor]:
        if not self._losses:
            return {}
        return {
            "losses": torch.stack(self._losses),
            "p_y": torch.stack(self._p_y),
            "margins": torch.stack(self._margins),
            "correct": torch.stack(self._correct),
            "entropy": self._entropy if self._entropy is not None else torch.empty(0),
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if not state:
            return
        self._losses, self._p_y = list(state["losses"]), list(state["p_y"])
        self._margins, self._correct = list(state["margins"]), list(state["correct"])
        self._entropy = state["entropy"]


class CumulativeLoss:
    """Training callback summing each sample's training-batch losses: CSL (Ravikumar et al.,
    ICML 2025), at the samples' dataset indices, whatever order the loader draws them in.

    Use with :func:`netprism.train.fit`; read :attr:`scores_` after training.  A sample drawn
    ``c`` times contributes ``c`` losses (a loader with ``drop_last`` leaves some at 0; ``fit``
    reports them as unseen).

    Examples
    --------
    >>> from netprism.train import TrainConfig, fit
    >>> x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    >>> csl = CumulativeLoss()
    >>> _ = fit(torch.nn.Linear(3, 2), (x, y), TrainConfig(epochs=3, progress=False),
    ...         callbacks=[csl])
    >>> csl.scores_["csl"].shape, bool((csl.scores_["csl"] > 0).all())
    (torch.Size([16]), True)
    """

    needs_index = True

    def __init__(self) -> None:
        self._sum: torch.Tensor | None = None

    def on_fit_start(self, ctx: Any) -> None:
        if self._sum is None:  # a resumed run keeps the sums it loaded
            self._sum = torch.zeros(ctx.num_samples, dtype=torch.float64)

    def on_batch_end(self, ctx: Any, out: Any) -> None:
        assert self._sum is not None and out.index is not None
        losses = out.loss.detach().double().cpu()
        if losses.ndim != 1:
            raise ValueError(
                f"CSL needs one loss per sample, shape ({len(out.index)},); got per-position "
                f"losses of shape {tuple(losses.shape)}"
            )
        self._sum.index_add_(0, out.index, losses)

    @property
    def scores_(self) -> dict[str, torch.Tensor]:
        """``{"csl": (N,) float64}``, higher = more memorized / more likely mislabeled."""
        if self._sum is None:
            raise RuntimeError("CumulativeLoss has recorded nothing yet; train first")
        return {"csl": self._sum.clone()}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {} if self._sum is None else {"sum": self._sum.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if "sum" in state:
            self._sum = state["sum"].double().clone()


def learning_time(correct: torch.Tensor) -> torch.Tensor:
    """The first epoch from which each sample stays classified as its label (``E`` if it is
    wrong after the last epoch): late learners are more likely mislabeled or memorized.

    Parameters
    ----------
    correct : BoolTensor (E, N)

    Returns
    -------
    Tensor (N,) float64

    Examples
    --------
    >>> learning_time(torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 0]]).bool())
    tensor([0., 1., 3.], dtype=torch.float64)
    >>> learning_time(torch.tensor([[1], [0], [1]]).bool())  # forgotten then relearned
    tensor([2.], dtype=torch.float64)
    """
    c = correct.bool()
    stays = c.flip(0).cumprod(dim=0).sum(dim=0)  # trailing epochs classified correctly
    return (len(c) - stays).double()


def forgetting_events(correct: torch.Tensor) -> torch.Tensor:
    """Count correct -> wrong transitions per sample; never-learned samples score ``E + 1``.

    Parameters
    ----------
    correct : BoolTensor (E, N)
        Whether each sample was classified as its label after each epoch.

    Returns
    -------
    Tensor (N,) float64

    Examples
    --------
    >>> forgetting_events(torch.tensor([[1, 0, 1], [0, 0, 1], [1, 0, 1]]).bool())
    tensor([1., 4., 0.], dtype=torch.float64)
    """
    c = correct.bool()
    forgets = (c[:-1] & ~c[1:]).sum(dim=0).double()
    never = ~c.any(dim=0)
    forgets[never] = float(len(c) + 1)
    return forgets
