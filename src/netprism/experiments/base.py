"""The experiment contract: a frozen config dataclass + ``run(config) -> Result``.

:class:`Claim`, :class:`Result` and :func:`mean_std` are defined in
:mod:`netprism.core.results` (so the report renders results without importing experiments)
and re-exported here, the same objects.

Each paper's reproduction is a package ``experiments/<name>/`` that registers itself with
:func:`register_experiment`, giving its config class, per-scale overrides and whether it
belongs to the demo set.  The CLI builds its options from the config's fields.

Most experiments are a :class:`SeedStudy`: validate the config, measure every seed, judge the
claims from the per-seed records, draw the figures and save the records.  A package lays those
steps out in modules that import downwards only::

    config.py   the frozen config dataclass and its scales (imports nothing of its siblings)
    records.py  what one seed (or one unit of work) measures, as dataclasses
    run.py      measure: the per-seed work, on the library's areas
    claims.py   the claims, flat metrics and baselines, from the records
    figures.py  the figures and the saved records
    __init__.py builds the study and registers it
"""

from __future__ import annotations

import dataclasses
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from netprism.core import dist
from netprism.core.registry import Registry
from netprism.core.results import Claim as Claim
from netprism.core.results import Result as Result
from netprism.core.results import mean_std as mean_std
from netprism.core.seed import torch_threads
from netprism.io import ensure_writable_dir
from netprism.version import __version__

SCALES = ("tiny", "small", "full")


def check_seeds(seeds: Sequence[int]) -> None:
    """A run over seeds needs at least one."""
    if not seeds:
        raise ValueError("seeds must name at least one seed")


def check_faithful_seeds(faithful: Sequence[int], seeds: Sequence[int], why: str) -> None:
    """A faithful twin that reuses what each reproduced seed trained runs on some of ``seeds``;
    ``why`` says what it reuses."""
    missing = [s for s in faithful if s not in seeds]
    if missing:
        raise ValueError(
            f"faithful_seeds {tuple(faithful)} must be among seeds {tuple(seeds)} ({why}); "
            f"not there: {missing}"
        )


def seeded_result(
    name: str,
    config: Any,
    *,
    metrics: dict[str, Any],
    baselines: dict[str, dict[str, float]],
    claims: list[Claim],
    figures: list[str],
    seed: int | None = None,
    config_extra: dict[str, Any] | None = None,
) -> Result:
    """The :class:`Result` of a run of ``config`` (a dataclass): the config as a dict (plus
    ``config_extra``) and ``seed`` recorded (default: the first of ``config.seeds``)."""
    return Result(
        name=name,
        config=dataclasses.asdict(config) | (config_extra or {}),
        metrics=metrics,
        baselines=baselines,
        claims=claims,
        figures=figures,
        seed=config.seeds[0] if seed is None else seed,
    )


def spread_over_ranks(
    items: Sequence[Any], run_many: Callable[[list[Any]], list[Any]]
) -> list[Any]:
    """``run_many(list(items))``, with the items shared out over torchrun's ranks.

    Item ``i`` goes to rank ``i % world_size``; each rank runs its share alone (inside
    :func:`netprism.core.dist.local`, so nothing in it waits on other ranks) and the results
    (picklable) are all-gathered back into item order on every rank.  Without a process group
    this is just ``run_many(list(items))``.
    """
    rank, world = dist.rank_world()
    if world == 1:
        return run_many(list(items))
    with dist.local():
        mine = run_many(list(items[rank::world]))
    shares = dist.all_gather_object(mine)
    return [shares[i % world][i // world] for i in range(len(items))]


ConfigT = TypeVar("ConfigT")
RecordsT = TypeVar("RecordsT")


def _no_extra_checks(config: Any) -> None:
    """The default ``validate`` of a study: the seeds alone are checked."""


@dataclass(frozen=True)
class SeedStudy(Generic[ConfigT, RecordsT]):
    """The skeleton every seeded experiment shares: validate -> measure -> claims -> figures.

    Parameters
    ----------
    name : str
        The experiment's registered name (also the :class:`Result`'s).
    measure : callable ``(config) -> records``
        All the measuring, run under ``torch_threads(config.threads)``; usually
        :func:`per_seed` of a one-seed function, returning a list with one record per seed.
    claims : callable ``(records, config) -> tuple``
        ``(claims, metrics, baselines)``: pure summaries of the records.
    figures : callable ``(records, config, out_dir) -> list[str]``
        Draws the figures (and writes any per-seed records) into ``out_dir``; only called when
        the run has an output folder.  Returns the figure file names.
    validate : callable ``(config) -> None``
        Raises ``ValueError`` naming a bad setting before any work.  ``config.seeds`` is always
        checked first; a ``config.device`` is resolved (an unavailable one fails here).
    """

    name: str
    measure: Callable[[ConfigT], RecordsT]
    claims: Callable[[RecordsT, ConfigT], tuple[list[Claim], dict[str, Any], dict[str, Any]]]
    figures: Callable[[RecordsT, ConfigT, Path], list[str]]
    validate: Callable[[ConfigT], None] = _no_extra_checks

    def run(self, config: ConfigT, *, out_dir: Path | None = None) -> Result:
        """Run the study on ``config``; figures are drawn only when ``out_dir`` is given."""
        check_seeds(config.seeds)  # type: ignore[attr-defined]
        self.validate(config)
        _check_device(config)
        with torch_threads(config.threads):  # type: ignore[attr-defined]
            records = self.measure(config)
        claims, metrics, baselines = self.claims(records, config)
        figures = [] if out_dir is None else self.figures(records, config, Path(out_dir))
        return seeded_result(
            self.name,
            config,
            metrics=metrics,
            baselines=baselines,
            claims=claims,
            figures=figures,
        )


def per_seed(
    one_seed: Callable[[Any, int], RecordsT], *, over_ranks: bool = False
) -> Callable[[Any], list[RecordsT]]:
    """``measure`` for a :class:`SeedStudy`: ``[one_seed(config, s) for s in config.seeds]``.

    With ``over_ranks`` the seeds are shared out over torchrun's ranks
    (:func:`spread_over_ranks`) and gathered back in seed order on every rank.
    """

    def measure(config: Any) -> list[RecordsT]:
        if over_ranks:
            return spread_over_ranks(
                config.seeds, lambda seeds: [one_seed(config, s) for s in seeds]
            )
        return [one_seed(config, seed) for seed in config.seeds]

    return measure


def in_workers(
    work: Callable[[Any], RecordsT],
    items: Sequence[Any],
    workers: int,
    desc: str,
    *,
    progress: bool = True,
) -> list[RecordsT]:
    """``[work(item) for item in items]`` with a progress bar, in ``workers`` spawned worker
    processes (one torch thread each) when ``workers > 1``; results in ``items`` order.
    ``work`` must be picklable (a top-level function or a ``functools.partial`` of one)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from tqdm.auto import tqdm

    bar = tqdm(total=len(items), desc=desc, disable=not progress)
    if workers <= 1:
        results = []
        for item in items:
            results.append(work(item))
            bar.update()
        bar.close()
        return results
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_one_thread) as pool:
        futures = [pool.submit(work, item) for item in items]
        for f in futures:
            f.add_done_callback(lambda _: bar.update())
        results = [f.result() for f in futures]
    bar.close()
    return results


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a result's numbers."""
    import numpy
    import torch

    return {
        "netprism": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


@dataclass(frozen=True)
class Experiment:
    """A registered experiment: its config class, scale presets and ``run`` function."""

    name: str
    config_cls: type
    run: Callable[..., Result]
    scales: dict[str, dict[str, Any]]
    demo: bool
    paper: str
    cost: float = 1.0
    """Rough CPU minutes at small scale; ``reproduce --jobs`` starts the costliest first."""

    def make_config(self, scale: str = "small", **overrides: Any) -> Any:
        """The config for ``scale`` with ``overrides`` applied (unknown keys rejected)."""
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
        known = {f.name for f in dataclasses.fields(self.config_cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(
                f"unknown option(s) {unknown} for experiment {self.name!r}: "
                f"expected some of {sorted(known)}"
            )
        values = {**self.scales.get(scale, {}), **overrides}
        return dataclasses.replace(self.config_cls(), **values)


EXPERIMENTS: Registry[Experiment] = Registry("experiment")


def register_experiment(
    name: str,
    *,
    config: type,
    scales: dict[str, dict[str, Any]],
    demo: bool = False,
    paper: str = "",
    cost: float = 1.0,
) -> Callable[[Callable[..., Result]], Callable[..., Result]]:
    """Register ``run(config) -> Result`` under ``name``.

    ``config`` must be a frozen dataclass whose defaults are the small scale; ``scales``
    maps "tiny" / "small" / "full" to field overrides.  ``cost`` is a rough count of CPU
    minutes at small scale, only used to start the longest experiments first when several run
    at once (the last to finish is then a short one).
    """
    if not (dataclasses.is_dataclass(config) and config.__dataclass_params__.frozen):  # type: ignore[attr-defined]
        raise TypeError(f"config of experiment {name!r} must be a frozen dataclass")
    for scale in scales:
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")

    def decorator(run: Callable[..., Result]) -> Callable[..., Result]:
        EXPERIMENTS.register(name)(Experiment(name, config, run, scales, demo, paper, cost))
        return run

    return decorator


def execute(name: str, *, scale: str = "small", out_dir: str | Path, **overrides: Any) -> Result:
    """Run experiment ``name`` at ``scale`` and save ``out_dir/result.json``.

    Fills in what every result carries (name, paper, scale, seconds, versions) so an
    experiment's ``run`` only measures.  ``out_dir`` is proven writable before any work
    (:func:`netprism.io.ensure_writable_dir`).

    Under ``torchrun`` every rank runs the experiment (training and the lenses shard their
    work); rank 0 alone checks and writes ``out_dir`` (the others run with ``out_dir=None``)
    and all ranks fail together if it is not writable.  The process group is started here if
    needed and destroyed at the end if this call started it.
    """
    import time

    from netprism.train.distributed import init_from_env

    exp = EXPERIMENTS.get(name)
    config = exp.make_config(scale, **overrides)
    _check_device(config)
    out = Path(out_dir)
    created = init_from_env()
    try:
        main = _writable_on_rank0(out)
        start = time.perf_counter()
        result = exp.run(config, out_dir=out if main else None)
        result.seconds = round(time.perf_counter() - start, 3)
        result.name, result.scale, result.paper = name, scale, result.paper or exp.paper
        result.config = result.config or dataclasses.asdict(config)
        result.versions = library_versions()
        if main:
            result.save(out)
    finally:
        if created:
            import torch.distributed

            torch.distributed.destroy_process_group()
    return result


def _check_device(config: Any) -> None:
    """A config's ``device`` must exist here: fail before any work, not at the first fit."""
    from netprism.train.device import resolve_device

    device = getattr(config, "device", None)
    if device is not None:
        resolve_device(device)


def _writable_on_rank0(out: Path) -> bool:
    """Check ``out`` on rank 0 and share the verdict; returns whether this rank writes."""
    rank, _ = dist.rank_world()
    error: OSError | None = None
    if rank == 0:
        try:
            ensure_writable_dir(out)
        except OSError as err:
            error = err
    if dist.broadcast_int(error is not None):  # every rank stops, not only rank 0
        if error is not None:
            raise error
        raise OSError(f"rank 0 cannot write the output folder {out}; see rank 0's error")
    return rank == 0
