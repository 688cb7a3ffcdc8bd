"""``utilized_rank``: Garg, Koguchi, Verma, Ulbricht, "Revealing the Utilized Rank of Subspaces
of Learning in Neural Networks", arXiv 2407.04797 (2024), on MNIST-1D MLPs.

The method is our reconstruction (see :mod:`netprism.compression.utilized_rank`); targets come
from a calibration run of it (``papers/calib_utilized_rank.md``).  MNIST-1D is generated
offline with 12,000 samples split 50/50, so the test set (6,000) resolves a 1-point drop.
Baselines at the same per-layer rank, measured in the same run: plain weight SVD and
whitened SVD (the optimum of the data-weighted error).
"""

from __future__ import annotations

import copy
import dataclasses
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from netprism.compression.factorize import Factorized
from netprism.compression.utilized_rank import (
    METHODS,
    decompose,
    layer_errors,
    layer_statistics,
    parameter_count,
    project,
    utilized_rank,
)
from netprism.core.seed import seed_everything, torch_threads
from netprism.data.base import DatasetInfo, TensorDataset
from netprism.data.embedded import DIGIT_CLASSES, cache_dir
from netprism.experiments.base import Claim, Result, register_experiment
from netprism.io import atomic_write
from netprism.models import create_model
from netprism.train import TrainConfig, evaluate, fit

PAPER = "Garg et al., Revealing the Utilized Rank of Subspaces of Learning, arXiv 2407.04797"


@dataclass(frozen=True)
class UtilizedRankConfig:
    """Config of the ``utilized_rank`` experiment (defaults = small scale)."""

    widths: tuple[int, ...] = (64, 256, 1024)  # MLP 40-w-w-10; the last one is compressed
    seeds: tuple[int, ...] = (0, 1, 2)  # seeds of the compressed (widest) model
    num_samples: int = 12000  # MNIST-1D samples generated, half train / half test
    epochs: int = 40
    batch_size: int = 128
    lr: float = 1e-3
    threshold: float = 0.99  # energy threshold of the utilization and comparison claims
    thresholds: tuple[float, ...] = (0.95, 0.97, 0.98, 0.99, 0.995, 0.999)
    finetune_epochs: int = 5
    finetune_lr: float = 3e-4
    max_drop: float = 0.01  # params_at_drop: accuracy drop allowed after fine-tuning
    target_fraction: float = 0.25  # the paper: ViT-L/16 to 25 % of its parameters
    preserve_tol: float = 1e-6  # rank_preserves_function: max |d logit| / max |logit|
    vit_dims: tuple[int, ...] = (32, 128)  # small-ViT analogue on digits; () skips it
    vit_epochs: int = 30
    threads: int = 1


SCALES: dict[str, dict[str, Any]] = {
    "tiny": {
        "widths": (16, 32, 64),
        "seeds": (0,),
        "num_samples": 1000,
        "epochs": 2,
        "thresholds": (0.9, 0.99),
        "finetune_epochs": 1,
        "vit_dims": (16, 32),
        "vit_epochs": 1,
    },
    "small": {},
    "full": {"seeds": (0, 1, 2, 3, 4), "threads": 0},
}


def mnist1d_split(num_samples: int) -> tuple[TensorDataset, TensorDataset]:
    """MNIST-1D with ``num_samples`` samples, split 50/50, generated offline and cached."""
    path = cache_dir() / f"mnist1d_n{num_samples}_half.npz"
    keys = ("x", "y", "x_test", "y_test")
    arrays: dict[str, np.ndarray] | None = None
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in keys}
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)  # corrupt cache: rebuild
    if arrays is None:
        from mnist1d.data import get_dataset_args, make_dataset

        args = get_dataset_args()
        args.num_samples, args.train_split = num_samples, 0.5
        data = make_dataset(args)
        arrays = {k: np.asarray(data[k]) for k in keys}
        done = arrays

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, **done)  # type: ignore[arg-type]

        atomic_write(path, write)
    info = DatasetInfo(
        "mnist1d", DIGIT_CLASSES, (40,), f"mnist1d make_dataset num_samples={num_samples}"
    )
    return tuple(  # type: ignore[return-value]
        TensorDataset(torch.from_numpy(arrays[x]).float(), torch.from_numpy(arrays[y]).long(), info)
        for x, y in (("x", "y"), ("x_test", "y_test"))
    )


def _train(width: int, seed: int, train: TensorDataset, config: UtilizedRankConfig) -> nn.Module:
    seed_everything(seed)
    model = create_model("mlp", input_shape=(40,), num_classes=10, hidden=(width, width))
    tc = TrainConfig(
        epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, optimizer="adam",
        weight_decay=0.0, seed=seed, progress=False,
    )  # fmt: skip
    fit(model, train, tc)
    return model.eval()


def _finetune(
    model: nn.Module, train: TensorDataset, seed: int, config: UtilizedRankConfig
) -> None:
    tc = TrainConfig(
        epochs=config.finetune_epochs, batch_size=config.batch_size, lr=config.finetune_lr,
        optimizer="adam", weight_decay=0.0, seed=seed, progress=False,
    )  # fmt: skip
    fit(model, train, tc)
    model.eval()


def _preservation(model: nn.Module, train: TensorDataset, test: TensorDataset) -> dict[str, float]:
    """Max |d logit| / max |logit| of the float64 projection at threshold 1.0."""
    m64 = copy.deepcopy(model).double().eval()
    x, x_test = train.x.double(), test.x.double()
    projected = project(m64, x, threshold=1.0)
    with torch.no_grad():
        ref, ref_test = m64(x), m64(x_test)
        calib = float((projected(x) - ref).abs().max() / ref.abs().max())
        held = float((projected(x_test) - ref_test).abs().max() / ref_test.abs().max())
    return {"calibration": calib, "held_out": held}


def _width_study(
    models: dict[int, nn.Module], train: TensorDataset, test: TensorDataset, tau: float
) -> dict[int, Any]:
    out: dict[int, Any] = {}
    for width, model in models.items():
        report = utilized_rank(model, train, threshold=tau)
        by_name = {la.name: la for la in report.layers}
        out[width] = {
            "report": report,
            "hidden_u": by_name["fc2"].utilization,
            "mlu": report.mlu,
            "full_rank": all(la.weight_rank == min(la.d_in, la.d_out) for la in report.layers),
            "accuracy": evaluate(model, test)["accuracy"],
            "preserve": _preservation(model, train, test),
        }
    return out


def _vit_study(config: UtilizedRankConfig) -> dict[str, float]:
    """Utilization of a small ViT's attention (q, k, v, proj) and MLP projections on digits
    at two widths: an analogue, not a reproduction of the paper's ImageNet ViT figures."""
    from netprism.data import load_dataset
    from netprism.models import MODELS

    if not config.vit_dims or "vit_tiny" not in MODELS.names():
        return {}
    train, test = load_dataset("digits", split="train"), load_dataset("digits", split="test")
    out: dict[str, float] = {}
    for dim in config.vit_dims:
        seed_everything(config.seeds[0])
        model = create_model("vit_tiny", input_shape=(1, 8, 8), num_classes=10, dim=dim, depth=2)
        tc = TrainConfig(
            epochs=config.vit_epochs, batch_size=64, lr=config.lr, optimizer="adam",
            weight_decay=0.0, seed=config.seeds[0], progress=False,
        )  # fmt: skip
        fit(model, train, tc)
        report = utilized_rank(model.eval(), train, threshold=config.threshold)
        attn = [la.utilization for la in report.layers if ".attn." in la.name]
        mlp = [la.utilization for la in report.layers if ".mlp." in la.name]
        full = all(la.weight_rank == min(la.d_in, la.d_out) for la in report.layers)
        out[f"vit_u_attn_d{dim}"] = statistics.fmean(attn)
        out[f"vit_u_mlp_d{dim}"] = statistics.fmean(mlp)
        out[f"vit_mlu_d{dim}"] = report.mlu
        out[f"vit_test_accuracy_d{dim}"] = evaluate(model, test)["accuracy"]
        out[f"vit_all_full_rank_d{dim}"] = float(full)
    return out


def _compress_seed(
    model: nn.Module, train: TensorDataset, test: TensorDataset, seed: int, config: Any
) -> list[dict[str, Any]]:
    """One row per (threshold, method): parameter fraction, accuracy before/after FT, errors."""
    calib, held = layer_statistics(model, train), layer_statistics(model, test)
    n_params = parameter_count(model)
    rows = []
    for tau in config.thresholds:
        for method in METHODS:
            small = decompose(model, train, threshold=tau, method=method, stats=calib)
            errors = layer_errors(model, small, stats=held)
            factored = [n for n, m in small.named_modules() if isinstance(m, Factorized)]
            before = evaluate(small, test)["accuracy"]
            _finetune(small, train, seed, config)
            rows.append(
                {
                    "seed": seed, "threshold": tau, "method": method,
                    "param_fraction": parameter_count(small) / n_params,
                    "acc_before": before, "acc_after": evaluate(small, test)["accuracy"],
                    "errors": errors, "factorized": factored,
                }
            )  # fmt: skip
    return rows


def _smallest_fraction(rows: list[dict[str, Any]], method: str, ref: float, drop: float) -> float:
    ok = [
        r["param_fraction"]
        for r in rows
        if r["method"] == method and r["acc_after"] >= ref - drop - 1e-12
    ]
    return min(ok, default=1.0)


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


@register_experiment(
    "utilized_rank", config=UtilizedRankConfig, scales=SCALES, demo=False, paper=PAPER
)
def run(config: UtilizedRankConfig, *, out_dir: Path | None = None) -> Result:
    """Utilized rank vs width, function preservation, and compression vs two SVD baselines."""
    with torch_threads(config.threads):
        return _run(config, out_dir)


def _run(config: UtilizedRankConfig, out_dir: Path | None) -> Result:
    train, test = mnist1d_split(config.num_samples)
    wide = config.widths[-1]
    seeds = list(config.seeds)
    models = {w: _train(w, seeds[0], train, config) for w in config.widths[:-1]}
    wide_models = {s: _train(wide, s, train, config) for s in seeds}
    models[wide] = wide_models[seeds[0]]
    study = _width_study(models, train, test, config.threshold)
    rows: list[dict[str, Any]] = []
    refs: dict[int, dict[str, float]] = {}
    for seed, model in wide_models.items():
        tuned = copy.deepcopy(model)
        _finetune(tuned, train, seed, config)
        refs[seed] = {
            "original": evaluate(model, test)["accuracy"],
            "original_ft": evaluate(tuned, test)["accuracy"],
        }
        rows += _compress_seed(model, train, test, seed, config)
    metrics, baselines = _metrics(study, rows, refs, config)
    metrics.update(_vit_study(config))
    claims = _claims(study, rows, refs, metrics, config)
    figures = [] if out_dir is None else _figures(study, rows, refs, out_dir)
    return Result(
        name="utilized_rank",
        config=dataclasses.asdict(config),
        metrics=metrics,
        baselines=baselines,
        claims=claims,
        figures=figures,
        seed=seeds[0],
    )


def _at(rows: list[dict[str, Any]], tau: float, method: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["threshold"] == tau and r["method"] == method]


def _fractions(
    rows: list[dict[str, Any]],
    refs: dict[int, dict[str, float]],
    method: str,
    drop: float,
    ref_key: str = "original",
) -> list[float]:
    return [
        _smallest_fraction([r for r in rows if r["seed"] == s], method, ref[ref_key], drop)
        for s, ref in refs.items()
    ]


def _metrics(
    study: dict[int, Any],
    rows: list[dict[str, Any]],
    refs: dict[int, dict[str, float]],
    config: UtilizedRankConfig,
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    metrics: dict[str, float] = {}
    for w, st in study.items():
        metrics.update({
            f"u_hidden_w{w}": st["hidden_u"], f"mlu_w{w}": st["mlu"],
            f"test_accuracy_w{w}": st["accuracy"], f"all_full_rank_w{w}": float(st["full_rank"]),
            f"preserve_calib_rel_w{w}": st["preserve"]["calibration"],
            f"preserve_heldout_rel_w{w}": st["preserve"]["held_out"],
        })  # fmt: skip
    metrics["original_accuracy"] = statistics.fmean(r["original"] for r in refs.values())
    metrics["original_ft_accuracy"] = statistics.fmean(r["original_ft"] for r in refs.values())
    metrics["n_test"] = float(config.num_samples - config.num_samples // 2)
    for seed, ref in refs.items():
        metrics[f"original_accuracy_seed{seed}"] = ref["original"]
        metrics[f"original_ft_accuracy_seed{seed}"] = ref["original_ft"]
    baselines: dict[str, dict[str, float]] = {m: {} for m in METHODS}
    for method in METHODS:
        for tau in config.thresholds:
            sel = _at(rows, tau, method)
            key = f"{method}_t{tau}"
            metrics[f"{key}_param_fraction"] = statistics.fmean(r["param_fraction"] for r in sel)
            metrics[f"{key}_acc_before"] = statistics.fmean(r["acc_before"] for r in sel)
            metrics[f"{key}_acc_after"] = statistics.fmean(r["acc_after"] for r in sel)
            for layer in sel[0]["errors"]:
                metrics[f"{key}_err_{layer}"] = statistics.fmean(r["errors"][layer] for r in sel)
        for drop in (config.max_drop, config.max_drop / 2):
            for ref_key in ("original", "original_ft"):
                mean, std = _mean_std(_fractions(rows, refs, method, drop, ref_key))
                tag = f"{method}_fraction_drop{drop * 100:g}pp_vs_{ref_key}"
                metrics[f"{tag}_mean"], metrics[f"{tag}_std"] = mean, std
        if method != "projection":
            baselines[method] = {k[len(method) + 1 :]: v for k, v in metrics.items()
                                 if k.startswith(method)}  # fmt: skip
    baselines.pop("projection")
    return metrics, baselines


def _claims(
    study: dict[int, Any],
    rows: list[dict[str, Any]],
    refs: dict[int, dict[str, float]],
    metrics: dict[str, float],
    config: UtilizedRankConfig,
) -> list[Claim]:
    widths = list(study)
    return [
        _claim_preserve(study, config), _claim_width(study, widths, metrics, config),
        _claim_svd(rows, config), _claim_optimum(rows, config),
        _claim_drop(rows, refs, metrics, config),
    ]  # fmt: skip


def _claim_preserve(study: dict[int, Any], config: UtilizedRankConfig) -> Claim:
    calib = max(st["preserve"]["calibration"] for st in study.values())
    held = max(st["preserve"]["held_out"] for st in study.values())
    return Claim(
        "rank_preserves_function",
        "At threshold 1.0 the projected layers P_T W P_S (float64) reproduce the logits on the "
        f"calibration data: max |d logit| / max |logit| over widths {list(study)} <= "
        f"{config.preserve_tol:g}. Not on held-out data ({held:.1e}), whose inputs reach "
        "directions the calibration set never excites (e.g. dead ReLUs).",
        calib, config.preserve_tol, "<=", held, "held-out data, same projection",
    )  # fmt: skip


def _claim_width(
    study: dict[int, Any], widths: list[int], metrics: dict[str, float], config: Any
) -> Claim:
    u = [study[w]["hidden_u"] for w in widths]
    mlu = [study[w]["mlu"] for w in widths]
    full = all(study[w]["full_rank"] for w in widths)
    ratio = max(b / a for a, b in zip(u, u[1:])) if full and all(u) else float("nan")
    rises = (
        " (it RISES: the input and output layers dominate the 3-layer mean)"
        if mlu[-1] > mlu[0]
        else ""
    )
    return Claim(
        "hidden_utilization_falls",
        f"At threshold {config.threshold}, the hidden w x w layer's utilization falls with width "
        f"{widths}: u = {', '.join(f'{x:.3f}' for x in u)}, while every W is numerically full "
        f"rank (sigma > 1e-6 sigma_max: {full}). Measured: the largest ratio u(next width) / u "
        f"(NaN if some W is not full rank). All-layer MLU: {', '.join(f'{x:.3f}' for x in mlu)}"
        f"{rises}." + _vit_text(metrics, config),
        ratio, 1.0, "<", mlu[-1] / mlu[0], "all-layer MLU ratio, widest / narrowest",
    )  # fmt: skip


def _vit_text(metrics: dict[str, float], config: UtilizedRankConfig) -> str:
    dims = [d for d in config.vit_dims if f"vit_u_attn_d{d}" in metrics]
    if not dims:
        return " No ViT analogue in this run."
    parts = [
        f"D={d}: attention u {metrics[f'vit_u_attn_d{d}']:.3f}, MLP u "
        f"{metrics[f'vit_u_mlp_d{d}']:.3f}, acc {metrics[f'vit_test_accuracy_d{d}']:.3f}"
        for d in dims
    ]
    return (" Small-ViT analogue on digits (2 blocks, not in the measured value): "
            + "; ".join(parts) + ".")  # fmt: skip


def _claim_svd(rows: list[dict[str, Any]], config: UtilizedRankConfig) -> Claim:
    tau = config.threshold
    proj, svd = _at(rows, tau, "projection"), _at(rows, tau, "weight_svd")
    err_ok = all(
        p["errors"][n] < s["errors"][n] for p, s in zip(proj, svd) for n in p["factorized"]
    )
    gap = 100 * (statistics.fmean(r["acc_before"] for r in proj)
                 - statistics.fmean(r["acc_before"] for r in svd))  # fmt: skip
    svd_acc = statistics.fmean(r["acc_before"] for r in svd)
    return Claim(
        "beats_weight_svd",
        f"At equal per-layer rank (threshold {tau}, width {config.widths[-1]}), the projection's "
        "held-out output error is below plain weight SVD's in every factorized layer "
        f"({err_ok}) and its accuracy before fine-tuning is higher. Measured: accuracy gain in "
        "points, NaN if some layer's error is not lower.",
        gap if err_ok else float("nan"), 0.0, ">", svd_acc, "plain weight SVD accuracy, before FT",
    )  # fmt: skip


def _claim_optimum(rows: list[dict[str, Any]], config: UtilizedRankConfig) -> Claim:
    tau = config.threshold
    proj, white = _at(rows, tau, "projection"), _at(rows, tau, "whitened_svd")
    ratios = [
        p["errors"][n] / w["errors"][n]
        for p, w in zip(proj, white) for n in p["factorized"] if w["errors"][n] > 0
    ]  # fmt: skip
    after = {m: statistics.fmean(r["acc_after"] for r in _at(rows, tau, m)) for m in METHODS}
    return Claim(
        "near_optimum",
        f"The projection's held-out per-layer output error is within 5 % of whitened SVD's (the "
        f"optimum at that rank), threshold {tau}: worst ratio over layers and seeds. After "
        f"{config.finetune_epochs} epochs of FT: " + ", ".join(
            f"{m} {100 * a:.1f} %" for m, a in after.items()
        ) + " (factor forms: proj (V_T A S)(B^T U_S^T), SVD (U S)(V^T), whitened (P S)(Q^T L^-1)).",
        max(ratios, default=float("nan")), 1.05, "<=", 1.0, "whitened SVD (optimum)",
    )  # fmt: skip


def _claim_drop(
    rows: list[dict[str, Any]],
    refs: dict[int, dict[str, float]],
    metrics: dict[str, float],
    config: UtilizedRankConfig,
) -> Claim:
    fr = _fractions(rows, refs, "projection", config.max_drop)
    mean, std = _mean_std(fr)
    half = _mean_std(_fractions(rows, refs, "projection", config.max_drop / 2))
    white = _mean_std(_fractions(rows, refs, "whitened_svd", config.max_drop))
    return Claim(
        "params_at_drop",
        f"Smallest parameter fraction on the threshold grid {list(config.thresholds)} with <= "
        f"{100 * config.max_drop:g} point test-accuracy drop after {config.finetune_epochs} "
        f"epochs of FT, width {config.widths[-1]}, {int(metrics['n_test'])} test samples: "
        f"{mean:.3f} +- {std:.3f} over {len(fr)} seed(s) {[round(f, 3) for f in fr]}; at <= "
        f"{50 * config.max_drop:g} point (the noise floor): {half[0]:.3f} +- {half[1]:.3f}. "
        f"Target: the paper's ViT-L/16 figure (25 %).",
        mean, config.target_fraction, "<=", white[0], "whitened SVD, same criterion",
    )  # fmt: skip


def _figures(
    study: dict[int, Any],
    rows: list[dict[str, Any]],
    refs: dict[int, dict[str, float]],
    out_dir: Path,
) -> list[str]:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    fig = Figure(figsize=(6, 3.2))
    ax = fig.subplots()
    names = [la.name for la in study[next(iter(study))]["report"].layers]
    step = 0.8 / len(study)
    for i, (w, st) in enumerate(study.items()):
        u = [la.utilization for la in st["report"].layers]
        ax.bar(np.arange(len(names)) + i * step, u, step, label=f"w={w} (MLU {st['mlu']:.2f})")
    ax.set_xticks(np.arange(len(names)) + 0.4 - step / 2, names)
    ax.set(ylabel="utilization r / min(d_in, d_out)", title="per-layer utilization")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out_dir / "utilization_bars.png")

    fig = Figure(figsize=(9, 3.4))
    axes = fig.subplots(1, 2, sharey=True)
    taus = sorted({r["threshold"] for r in rows})
    ref = 100 * statistics.fmean(r["original"] for r in refs.values())
    for ax, key in zip(axes, ("acc_before", "acc_after")):
        for method in METHODS:
            pts = [
                (
                    statistics.fmean(r["param_fraction"] for r in _at(rows, t, method)),
                    100 * statistics.fmean(r[key] for r in _at(rows, t, method)),
                )
                for t in taus
            ]
            ax.plot(*zip(*pts), marker="o", label=method)  # fmt: skip
        ax.axhline(ref, color="k", ls="--", lw=1, label="original")
        ax.set(xscale="log", xlabel="parameter fraction", title=key.replace("_", " "))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    axes[1].legend()
    fig.tight_layout()
    save_figure(fig, out_dir / "accuracy_vs_params.png")
    return ["utilization_bars.png", "accuracy_vs_params.png"]
