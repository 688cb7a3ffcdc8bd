"""``pca_design``: PCA-designed narrow CNN vs L1 filter pruning at equal MACs.

Garg, Panda, Roy, "A Low Effort Approach to Structured CNN Design Using PCA", IEEE Access
2020, arXiv 1812.06224.  The paper's claim [abs]: AlexNet/VGG-style networks on CIFAR and
ImageNet with up to 3.8x fewer operations and 9x fewer parameters at < 1 % accuracy loss.

Here (small scale, CPU): a VGG-11 (batch norm, width 0.5) on the 8x8 digits.  Per seed:
train the original; channel-wise PCA of every hidden layer's post-ReLU outputs on the
training set; design at each threshold (widths = significant dimensions, depth rule per
stage); train the designed network from scratch for the same epochs.  Baseline measured in
the same run: L1-norm filter pruning (Li et al., ICLR 2017) of the trained original to the
designed net's MACs (Torch-Pruning, bisection on a uniform ratio), fine-tuned for the same
epochs at ``finetune_lr``.  The claim: mean accuracy drop of the design at the first
threshold <= ``max_drop`` points, with its parameter and MAC reductions in the text.
"""

from __future__ import annotations

import copy
import dataclasses
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netprism.compression.pca_design import (
    DesignReport,
    build_model,
    design,
    output_spectra,
)
from netprism.core.seed import seed_everything, torch_threads
from netprism.data import load_dataset
from netprism.experiments.base import Claim, Result, register_experiment
from netprism.models import create_model
from netprism.train import TrainConfig, evaluate, fit


@dataclass(frozen=True)
class PCADesignConfig:
    """Config of the ``pca_design`` experiment (defaults = small scale)."""

    dataset: str = "digits"
    data_dir: str | None = None
    depth: int = 11
    width_mult: float = 0.5
    thresholds: tuple[float, ...] = (0.999, 0.99)
    epochs: int = 15
    batch_size: int = 64
    lr: float = 0.05
    finetune_lr: float = 0.01
    weight_decay: float = 5e-4
    seeds: tuple[int, ...] = (0, 1, 2)
    max_drop: float = 1.0  # accuracy points (the paper's "< 1 %")
    apply_depth_rule: bool = True
    device: str = "auto"
    threads: int = 1  # 1 is fastest for these tiny models; 0 = torch default


SCALES: dict[str, dict[str, Any]] = {
    "tiny": {"width_mult": 0.125, "epochs": 1, "seeds": (0,), "thresholds": (0.999,)},
    "small": {},
    "full": {"dataset": "cifar10", "depth": 16, "width_mult": 1.0, "epochs": 60, "threads": 0},
}


@register_experiment(
    "pca_design",
    config=PCADesignConfig,
    scales=SCALES,
    demo=False,
    paper="Garg, Panda, Roy: A Low Effort Approach to Structured CNN Design Using PCA "
    "(IEEE Access 2020, arXiv 1812.06224)",
)
def run(config: PCADesignConfig, *, out_dir: Path | None = None) -> Result:
    """Train, design by PCA, retrain from scratch, and compare with L1 pruning."""
    with torch_threads(config.threads):
        return _run(config, out_dir)


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
    lie within ``rel_tol`` of the target (else the closest of ``max_iter`` tries).  Returns
    the pruned copy (not fine-tuned; ``model`` is untouched) and ``info``: ``pruning_ratio``,
    ``macs``, ``params``, ``mac_error`` (relative).  ImportError without Torch-Pruning.
    """
    import torch_pruning as tp

    def prune(ratio: float) -> tuple[nn.Module, int, int]:
        pruned = copy.deepcopy(model).eval()
        names = {id(m): n for n, m in model.named_modules()}
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
    assert best is not None
    return best[0].train(model.training), best[1]


def _train_config(config: PCADesignConfig, seed: int, lr: float) -> TrainConfig:
    return TrainConfig(
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=lr,
        weight_decay=config.weight_decay,
        seed=seed,
        device=config.device,
        progress=False,
    )


def _one_seed(config: PCADesignConfig, seed: int, train: Any, test: Any) -> dict[Any, Any]:
    seed_everything(seed)
    base = {"input_shape": train.input_shape, "num_classes": train.num_classes}
    base |= {"depth": config.depth, "width_mult": config.width_mult}
    model = create_model("vgg", **base)
    fit(model, train, _train_config(config, seed, config.lr))
    out: dict[Any, Any] = {"original": evaluate(model, test, device=config.device)["accuracy"]}
    spectra = output_spectra(model, train, seed=seed)
    example = train.x[:1]
    for thr in config.thresholds:
        new_config, report = design(
            model,
            train,
            threshold=thr,
            base_config=base,
            spectra=spectra,
            apply_depth_rule=config.apply_depth_rule,
        )
        seed_everything(seed)
        designed = build_model(new_config)
        fit(designed, train, _train_config(config, seed, config.lr))
        row: dict[str, Any] = {
            "config": new_config,
            "report": report,
            "designed": evaluate(designed, test, device=config.device)["accuracy"],
        }
        try:
            pruned, info = l1_prune_to_macs(
                model, example, report.macs_after, ignored_layers=[model.get_submodule("head")]
            )
        except ImportError:
            row["l1"] = None
        else:
            fit(pruned, train, _train_config(config, seed, config.finetune_lr))
            row["l1"] = {**info, "accuracy": evaluate(pruned, test, device=config.device)}
            row["l1"]["accuracy"] = row["l1"]["accuracy"]["accuracy"]
        out[thr] = row
    return out


def _mean(xs: list[float]) -> float:
    return float(statistics.fmean(xs)) if xs else float("nan")


def _std(xs: list[float]) -> float:
    return float(statistics.stdev(xs)) if len(xs) > 1 else 0.0


def _summarize(
    config: PCADesignConfig, runs: list[dict[Any, Any]]
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    orig = [r["original"] for r in runs]
    metrics: dict[str, float] = {"original_accuracy": _mean(orig), "original_std": _std(orig)}
    baselines: dict[str, dict[str, float]] = {}
    for thr in config.thresholds:
        reps: list[DesignReport] = [r[thr]["report"] for r in runs]
        acc = [r[thr]["designed"] for r in runs]
        drops = [100 * (o - a) for o, a in zip(orig, acc)]
        tag = f"t{thr:g}"
        metrics |= {
            f"{tag}_designed_accuracy": _mean(acc),
            f"{tag}_drop_points": _mean(drops),
            f"{tag}_drop_points_std": _std(drops),
            f"{tag}_param_reduction": _mean([r.param_reduction for r in reps]),
            f"{tag}_mac_reduction": _mean([r.mac_reduction for r in reps]),
            f"{tag}_params_after": _mean([float(r.params_after) for r in reps]),
            f"{tag}_macs_after": _mean([float(r.macs_after) for r in reps]),
            f"{tag}_layers_kept": _mean([float(sum(ly.kept for ly in r.layers)) for r in reps]),
        }
        l1 = [r[thr]["l1"] for r in runs if r[thr]["l1"] is not None]
        if l1:
            l1_drops = [100 * (o - b["accuracy"]) for o, b in zip(orig, l1)]
            baselines[f"l1_pruning_{tag}"] = {
                "accuracy": _mean([b["accuracy"] for b in l1]),
                "drop_points": _mean(l1_drops),
                "drop_points_std": _std(l1_drops),
                "params": _mean([float(b["params"]) for b in l1]),
                "macs": _mean([float(b["macs"]) for b in l1]),
                "pruning_ratio": _mean([b["pruning_ratio"] for b in l1]),
                "mac_error": _mean([b["mac_error"] for b in l1]),
            }
    return metrics, baselines


def _claim(config: PCADesignConfig, metrics: dict[str, float], baselines: dict) -> Claim:
    thr = config.thresholds[0]
    tag = f"t{thr:g}"
    l1 = baselines.get(f"l1_pruning_{tag}")
    l1_text = (
        f"; L1 filter pruning to equal MACs ({l1['params']:.0f} params), fine-tuned "
        f"{config.epochs} epochs, drops {l1['drop_points']:.2f} points"
        if l1
        else "; L1 baseline skipped: torch-pruning is not installed"
    )
    return Claim(
        id="pca_design_reduction",
        text=f"PCA design at {thr:.1%} variance (VGG-{config.depth} x{config.width_mult:g} on "
        f"{config.dataset}, seeds {list(config.seeds)}) has "
        f"{metrics[f'{tag}_param_reduction']:.2f}x fewer params and "
        f"{metrics[f'{tag}_mac_reduction']:.2f}x fewer MACs, trained from scratch "
        f"{config.epochs} epochs, with accuracy drop (points, mean) <= {config.max_drop:g}"
        + l1_text,
        measured=metrics[f"{tag}_drop_points"],
        target=config.max_drop,
        op="<=",
        baseline=None if l1 is None else l1["drop_points"],
        baseline_name=None if l1 is None else "L1 filter pruning at equal MACs (drop, points)",
    )


def _run(config: PCADesignConfig, out_dir: Path | None) -> Result:
    if not config.thresholds or not config.seeds:
        raise ValueError("pca_design needs at least one threshold and one seed")
    train = load_dataset(config.dataset, split="train", data_dir=config.data_dir, seed=0)
    test = load_dataset(config.dataset, split="test", data_dir=config.data_dir, seed=0)
    runs = [_one_seed(config, seed, train, test) for seed in config.seeds]
    metrics, baselines = _summarize(config, runs)
    figures = [] if out_dir is None else [_plot_dims(runs[0], config, out_dir)]
    cfg = dataclasses.asdict(config)
    cfg["designs"] = {
        f"t{thr:g}": {"config": runs[0][thr]["config"], "report": runs[0][thr]["report"].to_dict()}
        for thr in config.thresholds
    }
    return Result(
        name="pca_design",
        config=cfg,
        metrics=metrics,
        baselines=baselines,
        claims=[_claim(config, metrics, baselines)],
        figures=figures,
        seed=config.seeds[0],
    )


def _plot_dims(run0: dict[Any, Any], config: PCADesignConfig, out_dir: Path) -> str:
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    reports: list[DesignReport] = [run0[thr]["report"] for thr in config.thresholds]
    layers = reports[0].layers
    xs = list(range(len(layers)))
    fig = Figure(figsize=(8, 3.6))
    ax = fig.add_subplot()
    ax.bar(xs, [ly.width for ly in layers], color="#d0d7de", label="original width")
    for rep, marker in zip(reports, "os^v"):
        ys = [ly.significant for ly in rep.layers]
        ax.plot(xs, ys, marker=marker, label=f"significant dims @ {rep.threshold:.1%}")
        drop = [i for i, ly in enumerate(rep.layers) if not ly.kept]
        ax.scatter(drop, [ys[i] for i in drop], marker="x", s=90, color="#cf222e", zorder=3)
    for i in range(1, len(layers)):
        if layers[i].stage != layers[i - 1].stage:
            ax.axvline(i - 0.5, color="#8c959f", ls=":", lw=1)
    ax.scatter([], [], marker="x", color="#cf222e", label="dropped by depth rule")
    ax.set_xticks(xs, [ly.name.split(".")[-1] for ly in layers], rotation=45)
    ax.set(
        ylabel="channels",
        title="PCA design: significant dimensions per layer (seed "
        f"{config.seeds[0]}; dotted lines = pools)",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out_dir / "significant_dims.png")
    return "significant_dims.png"
