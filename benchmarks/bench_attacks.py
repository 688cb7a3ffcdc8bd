"""PGD throughput and success: netprism vs torchattacks on the same model, eps, steps and batch.

Ravikumar, Kodge, Garg & Roy, "TREND: Transferability based Robust ENsemble Design" (IEEE TAI
2023, arXiv 2008.01524) evaluates with L-inf PGD (random start).  This compares
:func:`netprism.robustness.adversarial.pgd` with ``torchattacks.PGD`` (3.5.1, installed with
``--no-deps``) in one run: same model in eval mode, same eps, step size, steps and batch, both
with a random start.  Each timed round runs both (interleaved, after one warm-up each);
reported are the median seconds, throughput (samples / s), the ratio ours / torchattacks
(target >= 1) and both attack success rates (target: equal within noise; with the same seed
the adversarials coincide up to round-off, see ``tests/robustness/test_adversarial.py``).

Cases: LeNet trained briefly on the bundled 8x8 digits (all 450 test samples), and an
untrained CIFAR-style ResNet-18 (width 16) on random 32x32 inputs (conv-heavy).

Run::

    .venv/bin/python benchmarks/bench_attacks.py            # ~3 min on 2 idle CPU cores
    .venv/bin/python benchmarks/bench_attacks.py --quick    # ~20 s
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from netprism.data import load_dataset
from netprism.models import create_model
from netprism.robustness.adversarial import attack_success_rate, pgd

TARGET = 1.0  # ours / torchattacks throughput


def train_briefly(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int) -> nn.Module:
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(64):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


def timed(fns: dict[str, Callable[[], torch.Tensor]], repeats: int) -> tuple[dict, dict]:
    """Warm up each, then ``repeats`` interleaved rounds; seconds and last outputs."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    outs: dict[str, torch.Tensor] = {}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            outs[name] = fn()
            times[name].append(time.perf_counter() - t0)
    return times, outs


def run_case(
    name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, args: argparse.Namespace
) -> float:
    import torchattacks

    eps, steps = args.eps, args.steps
    alpha = eps / 4
    atk = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)

    def ours() -> torch.Tensor:
        return torch.cat(
            [
                pgd(model, xb, yb, eps=eps, steps=steps, step_size=alpha, seed=None)
                for xb, yb in zip(x.split(args.batch_size), y.split(args.batch_size))
            ]
        )

    def theirs() -> torch.Tensor:
        return torch.cat(
            [atk(xb, yb) for xb, yb in zip(x.split(args.batch_size), y.split(args.batch_size))]
        )

    times, outs = timed({"netprism pgd": ours, "torchattacks PGD": theirs}, args.repeats)
    print(
        f"\n## {name}: N={len(x)}, batch {args.batch_size}, eps {eps:g}, step {alpha:g}, "
        f"{steps} steps, random start\n"
    )
    print("| method | median s (min-max) | samples / s | success rate | x torchattacks |")
    print("|---|---:|---:|---:|---:|")
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["torchattacks PGD"]
    for k, v in times.items():
        rate = attack_success_rate(model, x, outs[k], y)
        print(
            f"| {k} | {med[k]:.3f} ({min(v):.3f}-{max(v):.3f}) | {len(x) / med[k]:.0f} | "
            f"{rate:.3f} | {base / med[k]:.2f} |"
        )
    ratio = base / med["netprism pgd"]
    word = "holds" if ratio >= TARGET else "does NOT hold"
    print(f"\n- throughput ours / torchattacks = {ratio:.2f}x (target >= {TARGET:g}: {word})")
    return ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (~15 s)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--steps", type=int, default=None, help="PGD steps (default 40, quick 10)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    try:
        import torchattacks
    except ImportError:
        print("torchattacks is not installed: pip install --no-deps torchattacks==3.5.1")
        return 1
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    args.steps = args.steps or (10 if args.quick else 40)
    torch.manual_seed(0)
    train, test = load_dataset("digits"), load_dataset("digits", split="test")
    lenet = train_briefly(
        create_model("lenet", input_shape=(1, 8, 8), num_classes=10),
        train.x,
        train.y,
        epochs=3 if args.quick else 10,
    )
    n_res = 32 if args.quick else 64
    resnet = create_model("resnet18", input_shape=(3, 32, 32), num_classes=10, width=16).eval()
    xr = torch.rand(n_res, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        yr = resnet(xr).argmax(1)  # the untrained net's own labels: all clean-correct
    print("# bench_attacks")
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(
        f"torch {torch.__version__}, torchattacks {torchattacks.__version__}, threads "
        f"{torch.get_num_threads()}, timed runs {args.repeats} (median, after 1 warm-up, "
        f"interleaved){', quick' if args.quick else ''}; load average {load}"
    )
    ratios = [
        run_case("lenet / digits 8x8 (trained)", lenet, test.x, test.y, args),
        run_case("resnet18 w16 / random 32x32 (untrained)", resnet, xr, yr, args),
    ]
    print(f"\nall targets hold: {all(r >= TARGET for r in ratios)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
