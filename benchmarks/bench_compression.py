"""CPU inference latency of utilized-rank factorization and PCA-designed networks.

Two compressions, each timed against its original in the same run:

1. **Factorized wide MLP** (utilized rank; Garg, Koguchi, Verma, Ulbricht, arXiv 2407.04797):
   the MNIST-1D MLP 40-1024-1024-10, trained ``--mlp-epochs`` epochs on ``load_dataset("mnist1d")``
   (so the utilized ranks are realistic), then
   :func:`netprism.compression.utilized_rank.decompose` at ``threshold=0.99`` with
   ``method="projection"``: ``objective="params"`` (every layer whose factors save parameters
   becomes two thin layers) and ``objective="latency"``, which keeps a layer dense unless its
   factorized form is measured faster on this device.  The latency objective decides per
   layer at ONE batch size, ``latency_batch`` (decompose's default 256); it is run at 256 and
   at 1, and each is judged at the batch size it was decided at.
2. **PCA-designed VGG** (Garg, Panda, Roy, IEEE Access 2020, arXiv 1812.06224): VGG-11 (width
   x0.5) trained ``--vgg-epochs`` epochs on the bundled 8x8 digits, redesigned by
   :func:`netprism.compression.pca_design.design` at ``threshold=0.999``; the designed network
   is timed untrained (weights do not change its latency).

Reported per model and batch size (1 and 256): median seconds per forward pass over
``--repeats`` interleaved measurements (every model of a case inside each repeat, so background
load hits all alike; each measurement is the mean of enough calls to last ~``--min-time`` s),
min-max, speedup = original / this, the MACs ratio original / this at batch 1 (the ideal
speedup; :func:`netprism.compression.pca_design.count_cost`, Torch-Pruning when installed)
and speedup / ideal.  Eval mode, ``torch.no_grad``, ``--threads`` threads (default 1).

Targets: speedup >= 0.5 x ideal at batch 256 for the factorized wide MLP (``objective="params"``);
at batch 1 factorization may be slower.  ``objective="latency"`` must not be slower than the
original at the batch size it was decided at (speedup >= 1 up to the ``--noise`` band).

Run::

    .venv/bin/python benchmarks/bench_compression.py            # ~40 s on 2 CPU cores
    .venv/bin/python benchmarks/bench_compression.py --quick    # ~12 s
    .venv/bin/python benchmarks/bench_compression.py --threads 2 --repeats 9
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import torch
from torch import nn

from netprism.compression.factorize import Factorized
from netprism.compression.pca_design import build_model, count_cost, design
from netprism.compression.utilized_rank import decompose, layer_statistics, utilized_rank
from netprism.core.seed import seed_everything
from netprism.data import load_dataset
from netprism.models import create_model
from netprism.train import TrainConfig, evaluate, fit

BATCHES = (1, 256)
IDEAL_TARGET = 0.5  # speedup / ideal at batch 256, factorized wide MLP
THRESHOLD = 0.99  # utilized-rank energy threshold
PCA_THRESHOLD = 0.999  # the PCA-design paper's default


def train(model: nn.Module, data: Any, epochs: int, batch_size: int, seed: int = 0) -> nn.Module:
    tc = TrainConfig(
        epochs=epochs, batch_size=batch_size, lr=1e-3, optimizer="adam", weight_decay=0.0,
        seed=seed, progress=False, device="cpu",
    )  # fmt: skip
    fit(model, data, tc)
    return model.eval()


def factorized_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, Factorized)]


def time_models(
    models: dict[str, nn.Module], x: torch.Tensor, repeats: int, min_time: float
) -> dict[str, list[float]]:
    """Seconds per forward pass of each model on ``x``: ``repeats`` interleaved measurements,
    each the mean over ``calls`` calls (``calls`` set once per model so a call lasts
    ``min_time`` in all)."""
    calls: dict[str, int] = {}
    with torch.no_grad():
        for name, m in models.items():  # warm-up, and how many calls fill min_time
            m(x)
            t0 = time.perf_counter()
            m(x)
            calls[name] = max(1, int(min_time / max(time.perf_counter() - t0, 1e-6)))
        times: dict[str, list[float]] = {k: [] for k in models}
        for _ in range(repeats):
            for name, m in models.items():
                t0 = time.perf_counter()
                for _ in range(calls[name]):
                    m(x)
                times[name].append((time.perf_counter() - t0) / calls[name])
    return times


def latency_table(
    title: str,
    models: dict[str, nn.Module],
    example: torch.Tensor,
    pool: torch.Tensor,
    args: argparse.Namespace,
) -> dict[tuple[str, int], float]:
    """Print the table of one case; return speedup per (model, batch).  The first model in
    ``models`` is the original."""
    macs = {k: count_cost(m, example)[0] for k, m in models.items()}
    params = {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()}
    counter = count_cost(next(iter(models.values())), example)[2]
    base = next(iter(models))
    print(
        f"\n## {title}\n\nMACs at batch 1 by {counter}; median s / forward of {args.repeats} "
        f"interleaved measurements (min-max), {torch.get_num_threads()} thread(s)\n"
    )
    print("| model | batch | params | MACs | median ms (min-max) | speedup | ideal | "
          "speedup / ideal |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    speedups: dict[tuple[str, int], float] = {}
    for bs in BATCHES:
        x = pool[torch.arange(bs) % len(pool)]
        times = time_models(models, x, args.repeats, args.min_time)
        med = {k: statistics.median(v) for k, v in times.items()}
        for name, t in med.items():
            speed, ideal = med[base] / t, macs[base] / macs[name]
            speedups[name, bs] = speed
            ms = f"{1e3 * t:.3f} ({1e3 * min(times[name]):.3f}-{1e3 * max(times[name]):.3f})"
            print(
                f"| {name} | {bs} | {params[name]:,} | {macs[name]:,} | {ms} | {speed:.2f} | "
                f"{ideal:.2f} | {speed / ideal:.2f} |"
            )
    return speedups


def mlp_case(args: argparse.Namespace) -> bool:
    train_set, test_set = (
        load_dataset("mnist1d", split="train"),
        load_dataset("mnist1d", split="test"),
    )
    seed_everything(0)
    model = create_model("mlp", input_shape=(40,), num_classes=10, hidden=(1024, 1024))
    t0 = time.perf_counter()
    train(model, train_set, args.mlp_epochs, 128)
    t_train = time.perf_counter() - t0
    calib = train_set.x[: args.calib]
    stats = layer_statistics(model, calib)
    report = utilized_rank(model, None, threshold=THRESHOLD, stats=stats)
    kw: dict[str, Any] = {"threshold": THRESHOLD, "method": "projection", "stats": stats}
    models = {
        "original": model,
        "factorized (params)": decompose(model, calib, **kw).eval(),
        "factorized (latency @ 256)": decompose(
            model, calib, objective="latency", latency_batch=256, **kw
        ).eval(),
        "factorized (latency @ 1)": decompose(
            model, calib, objective="latency", latency_batch=1, **kw
        ).eval(),
    }
    print(
        f"\nMLP 40-1024-1024-10 trained {args.mlp_epochs} epoch(s) on mnist1d ({len(train_set)} "
        f"samples, {t_train:.1f} s); calibration: {len(calib)} training inputs; threshold "
        f"{THRESHOLD}, method projection\n"
    )
    print("| layer | D_in | D_out | k_S | k_T | rank r | factorized by: params / lat@256 / lat@1 |")
    print("|---|---:|---:|---:|---:|---:|---|")
    facs = [set(factorized_names(m)) for m in list(models.values())[1:]]
    for la in report.layers:
        marks = " / ".join("yes" if la.name in f else "no" for f in facs)
        print(f"| {la.name} | {la.d_in} | {la.d_out} | {la.k_s} | {la.k_t} | {la.rank} | {marks} |")
    acc = {k: evaluate(m, test_set, device="cpu")["accuracy"] for k, m in models.items()}
    print("\nTest accuracy (no fine-tuning): " + ", ".join(f"{k} {v:.3f}" for k, v in acc.items()))
    sp = latency_table(
        "Factorized wide MLP (utilized rank, threshold 0.99)",
        models, test_set.x[:1], test_set.x, args,
    )  # fmt: skip
    return verdicts(sp, models, test_set.x[:1], args)


def verdicts(
    sp: dict[tuple[str, int], float],
    models: dict[str, nn.Module],
    example: torch.Tensor,
    args: argparse.Namespace,
) -> bool:
    macs0 = count_cost(models["original"], example)[0]
    ideal = macs0 / count_cost(models["factorized (params)"], example)[0]
    frac = sp["factorized (params)", 256] / ideal
    ok = frac >= IDEAL_TARGET
    print(
        f"\n- factorized (params), batch 256: speedup {sp['factorized (params)', 256]:.2f} = "
        f"{frac:.2f} x ideal {ideal:.2f} (target >= {IDEAL_TARGET:g} x ideal: "
        f"{'holds' if ok else 'does NOT hold'}); batch 1: speedup "
        f"{sp['factorized (params)', 1]:.2f} (may be < 1)"
    )
    floor = 1.0 - args.noise
    for decided in (256, 1):
        name = f"factorized (latency @ {decided})"
        other = 1 if decided == 256 else 256
        s_dec, s_other = sp[name, decided], sp[name, other]
        hold = s_dec >= floor
        ok &= hold
        print(
            f"- {name}: layers chosen by timing at batch {decided}; speedup {sp[name, 256]:.2f} "
            f"at batch 256, {sp[name, 1]:.2f} at batch 1. Not slower at batch {decided} "
            f"(>= {floor:.2f}, the noise band): {'holds' if hold else 'does NOT hold'}; at "
            f"batch {other} (not the batch it was decided at) {s_other:.2f}"
        )
    return ok


def vgg_case(args: argparse.Namespace) -> None:
    train_set = load_dataset("digits", split="train")
    test_set = load_dataset("digits", split="test")
    seed_everything(0)
    base = {"input_shape": (1, 8, 8), "num_classes": 10, "depth": 11, "width_mult": 0.5}
    model = create_model("vgg", **base)
    t0 = time.perf_counter()
    train(model, train_set, args.vgg_epochs, 64)
    t_train = time.perf_counter() - t0
    new_config, report = design(model, train_set, threshold=PCA_THRESHOLD, base_config=base)
    seed_everything(0)
    designed = build_model(new_config).eval()
    widths = ", ".join(
        f"{ly.name.split('.')[-1]} {ly.width}->{ly.significant if ly.kept else 'cut'}"
        for ly in report.layers
    )
    print(
        f"\n\nVGG-11 x0.5 trained {args.vgg_epochs} epoch(s) on digits ({t_train:.1f} s, test "
        f"accuracy {evaluate(model, test_set, device='cpu')['accuracy']:.3f}); PCA design at "
        f"threshold {PCA_THRESHOLD}: {widths}; designed network timed untrained"
    )
    latency_table(
        "PCA-designed VGG-11 (digits 8x8)",
        {"original": model, "PCA-designed": designed}, test_set.x[:1], test_set.x, args,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs and repeats (~12 s)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--mlp-epochs", type=int, default=None, help="MLP training (20)")
    parser.add_argument("--vgg-epochs", type=int, default=None, help="VGG training (15)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (default 7)")
    parser.add_argument("--min-time", type=float, default=None, help="s per measurement (0.1)")
    parser.add_argument("--calib", type=int, default=2000, help="calibration inputs (MLP)")
    parser.add_argument("--noise", type=float, default=0.05, help="timing-noise band")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.mlp_epochs = args.mlp_epochs or (3 if args.quick else 20)
    args.vgg_epochs = args.vgg_epochs or (3 if args.quick else 15)
    args.repeats = args.repeats or (3 if args.quick else 7)
    args.min_time = args.min_time or (0.03 if args.quick else 0.1)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(
        f"# Compression latency benchmark ({torch.get_num_threads()} thread(s), torch "
        f"{torch.__version__}{', quick' if args.quick else ''}; load average {load})"
    )
    t0 = time.perf_counter()
    ok = mlp_case(args)
    vgg_case(args)
    print(f"\nTotal {time.perf_counter() - t0:.0f} s; MLP targets {'hold' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
