"""How every model of the ``afm`` experiment is built, trained and scored.

"Apple Intelligence Foundation Language Models: Tech Report 2025" (arXiv 2507.13575), on the
tiny byte-level LM (:mod:`netprism.lm`): the dense model's shape, one training and evaluation
budget, and validation bits per byte on the same seeded windows for every model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from netprism.experiments.afm.config import AFMConfig
from netprism.lm.corpus import ByteCorpus
from netprism.lm.model import LMConfig
from netprism.lm.train import evaluate_bpb, train_lm


@dataclass(frozen=True)
class Budget:
    """How every model of the experiment is trained and evaluated."""

    steps: int
    batch_size: int
    context: int
    lr: float
    eval_batches: int
    eval_seed: int


def train_and_score(
    model: nn.Module, corpus: ByteCorpus, budget: Budget, seed: int, *, steps: int | None = None
) -> float:
    """Train ``model`` in place on the train split; return its validation bits per byte."""
    train_lm(
        model,
        corpus.train,
        steps=budget.steps if steps is None else steps,
        batch_size=budget.batch_size,
        context=budget.context,
        lr=budget.lr,
        seed=seed,
    )
    return val_bpb(model, corpus.val, budget)


def val_bpb(model: nn.Module, data: np.ndarray, budget: Budget) -> float:
    """Bits per byte on the same seeded windows for every model."""
    return evaluate_bpb(
        model, data, budget.context, budget.eval_batches, budget.eval_seed, batch_size=8
    )


def lm_config(config: AFMConfig, kv_share: float = 0.0) -> LMConfig:
    """The experiment's dense model shape (``kv_share`` 3/8 for the 5:3 split)."""
    return LMConfig(
        context=config.context,
        n_layers=config.n_layers,
        d_model=config.d_model,
        n_heads=config.n_heads,
        n_kv_heads=config.n_kv_heads,
        kv_share=kv_share,
    )


def finetune(
    model: nn.Module, data: np.ndarray, budget: Budget, seed: int, steps: int, lr: float
) -> None:
    """Continue training ``model`` on ``data`` at ``lr`` without weight decay, on the windows of
    ``seed`` (QAT and its control: ``seed + 1000``; LoRA and full fine-tuning: ``seed + 2000``)."""
    train_lm(
        model,
        data,
        steps=steps,
        batch_size=budget.batch_size,
        context=budget.context,
        lr=lr,
        seed=seed,
        weight_decay=0.0,
    )
