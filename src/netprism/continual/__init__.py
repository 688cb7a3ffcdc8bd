"""Continual learning: task streams, one runner, GPM, SPACE and the usual baselines.

Papers: Saha, Garg & Roy, "Gradient Projection Memory for Continual Learning" (GPM, ICLR 2021,
arXiv 2103.09762); Saha, Garg, Ankit & Roy, "SPACE: Structured Compression and Sharing of
Representational Space for Continual Learning" (IEEE Access 2021, arXiv 2001.08650);
Kirkpatrick et al., "Overcoming catastrophic forgetting in neural networks"
(EWC, PNAS 2017, arXiv 1612.00796); Chaudhry et al., "Efficient Lifelong Learning with A-GEM"
(ICLR 2019, arXiv 1812.00420); Lopez-Paz & Ranzato, "Gradient Episodic Memory for Continual
Learning" (GEM, NeurIPS 2017, arXiv 1706.08840) for the ACC / BWT metrics.

Modules: ``streams`` (permuted / split / rotated task streams), ``runner`` (``ContinualMethod``,
``run_stream``, ``StreamResult``), ``recipe`` (``stream_config``, the training recipe as one
``TrainConfig``), ``baselines`` (fine-tuning, EWC, A-GEM, joint training),
``gpm``, ``space`` and ``thresholds`` (per-layer, per-task energy thresholds).

>>> from netprism.continual import permuted_stream, run_stream, stream_config, GPM, SPACE

Method notes (the papers, what we measured, where we differ from them):
``docs/methods/continual.md`` in the repository.
"""

from netprism.continual.baselines import AGEM, EWC, FineTune, joint_training
from netprism.continual.gpm import GPM
from netprism.continual.recipe import stream_config
from netprism.continual.runner import ContinualMethod, StreamResult, acc_bwt, run_stream
from netprism.continual.space import SPACE
from netprism.continual.streams import permuted_stream, rotated_stream, split_stream

__all__ = [
    "AGEM",
    "ContinualMethod",
    "EWC",
    "FineTune",
    "GPM",
    "SPACE",
    "StreamResult",
    "acc_bwt",
    "joint_training",
    "permuted_stream",
    "rotated_stream",
    "run_stream",
    "split_stream",
    "stream_config",
]
