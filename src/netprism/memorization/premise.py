"""Does curvature's premise hold in this run: has the network fit its training labels?

Garg, Ravikumar, Roy (ICML 2024, arXiv 2307.05831) train the network until it fits the noisy
set; a mislabeled sample then stands out by the sharp loss surface around it.  A recipe that
stops early (few epochs, strong regularisation, augmentation) leaves the network still
learning the ordinary samples, whose curvature is then as high as the mislabeled ones', and
curvature ranks poorly while loss-type scores already find the mislabeled samples.

The check compares the final model's training accuracy on the given labels with ``1 -`` the
share of labels a detector estimates wrong: a network that has fit its data classifies at least
every label the detector trusts as given.  The rule (no margin) was fixed on 2026-12-03, before
the memorization grid that evaluates it, from digits with symmetric noise alone (one call with
the default recipe, AUROC of averaged curvature, detector ``aum``)::

    noise  epochs  train acc  1 - estimated  curvature AUROC
    5 %       3     0.868       0.929          0.526
    5 %      10     0.915       0.933          0.828
    5 %      30     0.941       0.933          0.913
    5 %     100     0.961       0.950          0.994
    20 %      3     0.712       0.744          0.542
    20 %     10     0.765       0.780          0.776
    20 %     30     0.786       0.783          0.866
    20 %    100     0.839       0.791          0.951

The network need not memorize the wrong labels for curvature to find them here (at 100 epochs
it fits about a fifth of them); it must have fit the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from netprism.memorization.select import estimated_issue_count


class MemorizationPremiseWarning(UserWarning):
    """The trained network has not fit the labels its detector trusts, so its curvature
    scores cannot single out the mislabeled ones (see :mod:`netprism.memorization.premise`)."""


@dataclass(frozen=True)
class PremiseCheck:
    """What :func:`check_premise` measured.

    Attributes
    ----------
    train_accuracy : float
        Share of the training samples the final model classifies as their given label.
    estimated_noise : float
        Share of the samples in the detector's estimated set.
    holds : bool
        ``train_accuracy >= 1 - estimated_noise``.
    detector : str
        The score the estimate came from.
    """

    train_accuracy: float
    estimated_noise: float
    holds: bool
    detector: str

    def message(self) -> str:
        return (
            f"the trained model classifies {self.train_accuracy:.1%} of the training samples as "
            f"their given label, fewer than the {1 - self.estimated_noise:.1%} that "
            f"{self.detector!r} estimates are labelled right: it has not fit its training data "
            "yet, and in such a run curvature ranks mislabeled samples poorly (it needs a "
            "network that has fit its data).  Train longer (more epochs, less regularisation) "
            f"before trusting curvature, or rank by {self.detector!r}"
        )


def check_premise(correct: Any, issue_score: Any, detector: str) -> PremiseCheck:
    """Whether the final model classifies at least every label ``issue_score`` trusts.

    Parameters
    ----------
    correct : BoolTensor (N,)
        Whether the final model classifies each training sample as its given label.
    issue_score : Tensor (N,)
        A label-issue score (higher = more suspicious); its estimated set
        (:func:`~netprism.memorization.select.estimated_issue_count`) sizes the noise.  NaN
        scores (samples never drawn) are left out, with their ``correct`` entries.
    detector : str
        The score's name, for the message.

    Examples
    --------
    >>> score = torch.cat([torch.zeros(90), torch.full((10,), 5.0)])  # 10 look wrong
    >>> fits_the_rest = torch.arange(100) < 90
    >>> check_premise(fits_the_rest, score, "aum").holds
    True
    >>> still_learning = torch.arange(100) < 85  # 5 trusted labels not fit yet
    >>> c = check_premise(still_learning, score, "aum")
    >>> c.holds, c.train_accuracy, c.estimated_noise
    (False, 0.85, 0.1)
    """
    correct = torch.as_tensor(correct).bool().reshape(-1)
    vec = torch.as_tensor(issue_score).double().reshape(-1)
    if correct.shape != vec.shape:
        raise ValueError(
            f"correct and issue_score must both be (N,), got {tuple(correct.shape)} and "
            f"{tuple(vec.shape)}"
        )
    keep = torch.isfinite(vec)
    correct, vec = correct[keep], vec[keep]
    if len(vec) == 0:
        raise ValueError("issue_score holds no finite value")
    accuracy = float(correct.double().mean())
    noise = estimated_issue_count(vec) / len(vec)
    return PremiseCheck(accuracy, noise, accuracy >= 1.0 - noise, detector)
