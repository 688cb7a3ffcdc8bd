"""Stability-based memorization by subsampling.

Feldman & Zhang, "What Neural Networks Memorize and Why: Discovering the Long Tail via
Influence Estimation", NeurIPS 2020 (arXiv 2008.03703).  The memorization of sample ``i`` is

    mem(i) = P[h_S(x_i) = y_i | i in S] - P[h_S(x_i) = y_i | i not in S],

the gain in the probability of predicting ``i``'s own label from having trained on it.  It is
estimated by training ``M`` models, each on a uniformly random subset ``S_m`` holding a fixed
fraction of the data (0.7 in the paper's released scores), and comparing each sample's
accuracy between the models that saw it and those that did not.  It is the reference score the
cheap memorization proxies (curvature, loss, margins) are compared against, and costs ``M``
trainings.

Model ``m`` uses seed ``seed + m`` for its subset and its initialisation, so results do not
depend on ``n_jobs``: worker processes (``spawn``) and the serial path both run with one torch
thread per model.  Under ``torchrun`` (a multi-rank process group) model ``m`` is trained on
rank ``m % world_size`` -- alone, not data-parallel -- and the correctness rows are summed over
the ranks, so every rank returns the single-process result.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing.reduction import ForkingPickler
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from netprism.core import dist
from netprism.core.metrics import pearson, spearman
from netprism.core.per_sample import eval_mode
from netprism.core.seed import torch_threads
from netprism.core.validation import check_nonempty
from netprism.data.base import as_tensors
from netprism.train import TrainConfig, fit

__all__ = ["FZResult", "feldman_zhang_scores", "memorization_from_runs", "subset_mask"]

ModelFactory = Callable[[], nn.Module]


@dataclass
class FZResult:
    """Feldman-Zhang estimates for ``N`` samples from ``M`` subset-trained models.

    Attributes
    ----------
    mem : Tensor (N,), float64
        ``acc_in - acc_out``; ``nan`` where a sample was never held out or never included.
    acc_in, acc_out : Tensor (N,), float64
        Accuracy on the sample's own label over the models that did / did not train on it
        (``nan`` when the count is 0).
    n_in, n_out : LongTensor (N,)
        Number of models that did / did not train on the sample; ``n_in + n_out == M``.
    seconds : float
        Wall-clock time of the whole estimate.
    n_models : int
        ``M``.
    masks : BoolTensor (M, N)
        ``masks[m, i]`` is True when model ``m`` trained on sample ``i``.
    correct : BoolTensor (M, N)
        ``correct[m, i]`` is True when model ``m`` predicts sample ``i``'s label.
    """

    mem: torch.Tensor
    acc_in: torch.Tensor
    acc_out: torch.Tensor
    n_in: torch.Tensor
    n_out: torch.Tensor
    seconds: float
    n_models: int
    masks: torch.Tensor = dataclasses.field(repr=False)
    correct: torch.Tensor = dataclasses.field(repr=False)

    def split_half(self, seed: int = 0) -> dict[str, float]:
        """Reliability: correlation between estimates from two disjoint halves of the models.

        The models are shuffled with ``seed`` and split into two halves of ``M // 2``; each
        half gives its own ``mem``, and the two are compared on the samples finite in both.
        Each half has half the models, so this understates the reliability of the full
        estimate (Spearman-Brown: ``2r / (1 + r)``).

        Returns
        -------
        dict
            ``{"pearson": float, "spearman": float}`` (``nan`` if fewer than two samples
            are finite in both halves or a half is constant).
        """
        gen = torch.Generator().manual_seed(seed)
        order = torch.randperm(self.n_models, generator=gen)
        half = self.n_models // 2
        first, second = order[:half], order[half : 2 * half]
        mem_a = memorization_from_runs(self.masks[first], self.correct[first])[0]
        mem_b = memorization_from_runs(self.masks[second], self.correct[second])[0]
        keep = torch.isfinite(mem_a) & torch.isfinite(mem_b)
        if int(keep.sum()) < 2:
            return {"pearson": float("nan"), "spearman": float("nan")}
        return {
            "pearson": pearson(mem_a[keep], mem_b[keep]),
            "spearman": spearman(mem_a[keep], mem_b[keep]),
        }

    def to_dict(self) -> dict[str, Any]:
        """Per-sample estimates as lists (``nan`` kept) plus run facts; masks left out."""
        return {
            "mem": self.mem.tolist(),
            "acc_in": self.acc_in.tolist(),
            "acc_out": self.acc_out.tolist(),
            "n_in": self.n_in.tolist(),
            "n_out": self.n_out.tolist(),
            "seconds": self.seconds,
            "n_models": self.n_models,
        }


def memorization_from_runs(
    masks: torch.Tensor, correct: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The Feldman-Zhang estimator from per-model inclusion masks and correctness.

    Parameters
    ----------
    masks : BoolTensor (M, N)
        True where model ``m`` trained on sample ``i``.
    correct : BoolTensor (M, N)
        True where model ``m`` predicts sample ``i``'s label.

    Returns
    -------
    mem, acc_in, acc_out : Tensor (N,), float64
        ``nan`` where the corresponding count is 0 (no warning is raised).
    n_in, n_out : LongTensor (N,)

    Examples
    --------
    >>> masks = torch.tensor([[True, False], [False, True]])
    >>> correct = torch.tensor([[True, True], [False, True]])
    >>> memorization_from_runs(masks, correct)[0]
    tensor([1., 0.], dtype=torch.float64)
    """
    if masks.shape != correct.shape or masks.ndim != 2:
        raise ValueError(
            f"masks and correct must both have shape (M, N), got {tuple(masks.shape)} "
            f"and {tuple(correct.shape)}"
        )
    inside, hit = masks.bool(), correct.to(torch.float64)
    n_in = inside.sum(dim=0)  # (N,)
    n_out = (~inside).sum(dim=0)
    hits_in = (hit * inside).sum(dim=0)
    hits_out = (hit * ~inside).sum(dim=0)
    nan = torch.full_like(hits_in, float("nan"))
    acc_in = torch.where(n_in > 0, hits_in / n_in.clamp(min=1), nan)
    acc_out = torch.where(n_out > 0, hits_out / n_out.clamp(min=1), nan)
    return acc_in - acc_out, acc_in, acc_out, n_in, n_out


def feldman_zhang_scores(
    model_factory: ModelFactory,
    dataset: Any,
    *,
    n_models: int = 200,
    subset_fraction: float = 0.7,
    config: TrainConfig | None = None,
    seed: int = 0,
    n_jobs: int = 1,
    progress: bool = True,
    distributed: bool | None = None,
) -> FZResult:
    """Estimate Feldman-Zhang memorization by training ``n_models`` models on random subsets.

    Model ``m`` draws ``round(subset_fraction * N)`` samples without replacement with a
    ``torch.Generator`` seeded ``seed + m``, is built by ``model_factory()`` after
    ``torch.manual_seed(seed + m)``, is trained with :func:`netprism.train.fit` (``config``
    with ``seed=seed + m``, no progress bar), and then predicts every sample in one batched
    eval-mode pass.

    Parameters
    ----------
    model_factory : callable () -> nn.Module
        Returns a fresh, untrained model mapping ``(B, *input_shape)`` to logits ``(B, K)``.
        With ``n_jobs > 1`` it must be picklable: a top-level function or a
        ``functools.partial`` of :func:`netprism.models.create_model`, not a lambda.
    dataset : TensorDataset, Dataset, DataLoader or (x, y) tensors
        ``N`` samples with their (possibly noisy) labels.
    n_models : int >= 2
        ``M``; the paper's released scores used thousands, 200 give a usable ranking.
    subset_fraction : float in (0, 1)
        Fraction of the data each model trains on.
    config : TrainConfig, optional
        Training settings (``TrainConfig()`` by default); must not checkpoint.
    seed : int >= 0
    n_jobs : int
        Worker processes (``-1``: one per CPU).  Every model, serial or not, runs with one
        torch thread (the caller's setting is restored afterwards), so results are identical
        for every ``n_jobs``.
    progress : bool
        Show a tqdm bar over models (on rank 0 only when distributed).
    distributed : bool, optional
        ``None``: when a multi-rank process group is up, spread the models over the ranks
        (model ``m`` on rank ``m % world_size``, each rank using ``n_jobs`` workers for its
        share) and gather the results; every rank must call this with the same arguments.
        ``False``: train every model here.

    Returns
    -------
    FZResult
        ``mem`` (N,) and its parts; samples that were never held out (or never included)
        get ``nan``, and ``n_out`` (``n_in``) says which.

    Examples
    --------
    >>> from netprism.data import load_dataset
    >>> ds = load_dataset("synthetic", n=40, num_classes=2, dim=3)
    >>> res = feldman_zhang_scores(lambda: torch.nn.Linear(3, 2), ds, n_models=4,
    ...                            config=TrainConfig(epochs=1), progress=False)
    >>> res.mem.shape, int((res.n_in + res.n_out).max())
    (torch.Size([40]), 4)
    """
    x, y = as_tensors(dataset)
    n_sub, config, workers = _validated(len(y), n_models, subset_fraction, config, seed, n_jobs)
    if workers > 1:
        _check_picklable(model_factory)
    start = time.perf_counter()
    x, y = x.detach().cpu().float(), y.detach().cpu().long()
    seeds = [seed + m for m in range(n_models)]
    masks = torch.stack([subset_mask(len(y), n_sub, s) for s in seeds])  # (M, N)
    parallel = dist.resolve(distributed)
    rank, world = dist.rank_world() if parallel else (0, 1)
    mine = list(range(rank, n_models, world))  # the models this rank trains
    progress = progress and rank == 0
    sub_masks, sub_seeds = masks[mine], [seeds[m] for m in mine]
    if not mine:
        runs = []
    elif min(workers, len(mine)) > 1:
        workers = min(workers, len(mine))
        runs = _run_parallel(model_factory, x, y, sub_masks, config, sub_seeds, workers, progress)
    else:
        runs = _run_serial(model_factory, x, y, sub_masks, config, sub_seeds, progress)
    correct = torch.zeros(n_models, len(y), dtype=torch.uint8)  # (M, N)
    if runs:
        correct[mine] = torch.stack(runs).to(torch.uint8)
    correct = (dist.all_reduce_sum(correct) if parallel else correct).bool()  # one rank per row
    mem, acc_in, acc_out, n_in, n_out = memorization_from_runs(masks, correct)
    seconds = time.perf_counter() - start
    return FZResult(mem, acc_in, acc_out, n_in, n_out, seconds, n_models, masks, correct)


def subset_mask(n: int, size: int, seed: int) -> torch.Tensor:
    """BoolTensor (n,) marking ``size`` samples drawn without replacement with ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    mask = torch.zeros(n, dtype=torch.bool)
    mask[torch.randperm(n, generator=gen)[:size]] = True
    return mask


def _validated(
    n: int,
    n_models: int,
    subset_fraction: float,
    config: TrainConfig | None,
    seed: int,
    n_jobs: int,
) -> tuple[int, TrainConfig, int]:
    """Check the arguments; return the subset size, the per-model config and worker count."""
    check_nonempty(n, "dataset")
    if not isinstance(n_models, int) or isinstance(n_models, bool) or n_models < 2:
        raise ValueError(f"n_models must be an int >= 2, got {n_models!r}")
    ok = isinstance(subset_fraction, (int, float)) and not isinstance(subset_fraction, bool)
    if not ok or not 0.0 < subset_fraction < 1.0:
        raise ValueError(f"subset_fraction must lie in (0, 1), got {subset_fraction!r}")
    n_sub = round(subset_fraction * n)
    if not 0 < n_sub < n:
        raise ValueError(
            f"subset_fraction={subset_fraction} of N={n} samples gives subsets of {n_sub}; "
            "each subset must include at least one sample and leave at least one out"
        )
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    if not isinstance(n_jobs, int) or isinstance(n_jobs, bool) or not (n_jobs >= 1 or n_jobs == -1):
        raise ValueError(f"n_jobs must be an int >= 1 or -1 (all CPUs), got {n_jobs!r}")
    config = config or TrainConfig()
    if config.checkpoint_dir is not None:
        raise ValueError(
            "config.checkpoint_dir must be None: the subset models would resume from each "
            f"other's checkpoints, got {config.checkpoint_dir!r}"
        )
    workers = (os.cpu_count() or 1) if n_jobs == -1 else n_jobs
    return n_sub, dataclasses.replace(config, progress=False), min(workers, n_models)


def _check_picklable(model_factory: ModelFactory) -> None:
    try:
        ForkingPickler.dumps(model_factory)  # what the process pool will do with it
    except Exception as err:  # pickle raises PicklingError, AttributeError or TypeError
        raise TypeError(
            f"n_jobs > 1 needs a picklable model_factory, got {model_factory!r} ({err}); use a "
            "top-level function or functools.partial(netprism.models.create_model, name, "
            "input_shape=..., num_classes=...), or n_jobs=1"
        ) from err


def _train_and_check(
    factory: ModelFactory,
    x: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor,
    config: TrainConfig,
    seed: int,
) -> torch.Tensor:
    """Train one model on ``x[mask]``; return BoolTensor (N,) of correct predictions."""
    torch.manual_seed(seed)
    model = factory()
    # distributed=False: under torchrun each rank trains its own models, not one together
    fit(model, (x[mask], y[mask]), dataclasses.replace(config, seed=seed), distributed=False)
    device = next(iter(model.parameters()), torch.empty(0)).device
    batch = max(512, config.batch_size)
    hits = []
    with torch.no_grad(), eval_mode(model):
        for start in range(0, len(y), batch):
            logits = model(x[start : start + batch].to(device))  # (B, K)
            hits.append(logits.argmax(dim=1).cpu() == y[start : start + batch])
    return torch.cat(hits)


def _run_serial(
    factory: ModelFactory,
    x: torch.Tensor,
    y: torch.Tensor,
    masks: torch.Tensor,
    config: TrainConfig,
    seeds: list[int],
    progress: bool,
) -> list[torch.Tensor]:
    bar = tqdm(total=len(seeds), desc="feldman-zhang", unit="model", disable=not progress)
    runs = []
    with torch_threads(1), bar:
        for m, s in enumerate(seeds):
            runs.append(_train_and_check(factory, x, y, masks[m], config, s))
            bar.update()
    return runs


# Process-local state of a worker process, set once by ``_init_worker`` so the dataset is
# sent to each worker once rather than with every model.  Never set in the parent process.
_WORKER_STATE: dict[str, Any] = {}


def _init_worker(factory: ModelFactory, x: np.ndarray, y: np.ndarray, config: TrainConfig) -> None:
    torch.set_num_threads(1)
    _WORKER_STATE.update(
        factory=factory, x=torch.from_numpy(x), y=torch.from_numpy(y), config=config
    )


def _worker_run(mask: np.ndarray, seed: int) -> np.ndarray:
    st = _WORKER_STATE
    hits = _train_and_check(
        st["factory"], st["x"], st["y"], torch.from_numpy(mask), st["config"], seed
    )
    return hits.numpy()  # NumPy travels back by value (no shared-memory file descriptors)


def _run_parallel(
    factory: ModelFactory,
    x: torch.Tensor,
    y: torch.Tensor,
    masks: torch.Tensor,
    config: TrainConfig,
    seeds: list[int],
    workers: int,
    progress: bool,
) -> list[torch.Tensor]:
    ctx = multiprocessing.get_context("spawn")
    init_args = (factory, x.numpy(), y.numpy(), config)
    runs: list[torch.Tensor | None] = [None] * len(seeds)
    bar = tqdm(total=len(seeds), desc="feldman-zhang", unit="model", disable=not progress)
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=init_args
    )
    try:
        futures = {pool.submit(_worker_run, masks[m].numpy(), s): m for m, s in enumerate(seeds)}
        for fut in as_completed(futures):
            runs[futures[fut]] = torch.from_numpy(fut.result())
            bar.update()
    finally:
        # On an error (or Ctrl-C) drop the models not yet started instead of waiting for them.
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    return [r for r in runs if r is not None]
