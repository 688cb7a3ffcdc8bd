"""Per-sample input-curvature scoring: netprism vs the official recipe vs a per-sample loop.

Garg, Ravikumar, Roy, "Memorization Through the Lens of Curvature of Loss Function Around
Samples", ICML 2024.  All methods estimate each sample's input-loss curvature with ``n``
Rademacher probes and the finite difference ``g(x + h v) - g(x)`` of input gradients, on the
same model and data, at the same ``n``, ``h`` and batch size:

- **netprism**: :func:`netprism.core.curvature.input_curvature` (``finite_difference``: the
  clean gradient ``g(x)`` is computed once per batch and reused by every probe, sum-reduced
  loss, so ``1 + n`` forward/backward passes' worth of work per batch; on small inputs several
  probes share one stacked pass, fewer and larger matrix products).  Its exact double-backprop
  back end (``hvp``) is timed too; on ReLU nets it measures only the Gauss-Newton part, so it is not
  expected to rank like the finite difference.
- **official**: :func:`official_curvature`, the authors' ``get_regularized_curvature_for_batch``
  re-implemented line by line (per probe: ``torch.randint`` probes with zeros mapped to -1 in a
  Python loop over the batch, ``v = h (v + 1e-7)``, two forwards at ``x + v`` and ``x``,
  mean-reduced ``CrossEntropyLoss``, one backward of ``loss_pos - loss_orig``, ``regr +=
  ||g_i||``, ``eigs += diag(V G^T)``).  ``official-vec`` is the same algorithm with those two
  batch-level inefficiencies vectorised (``v = 2 randint - 1``, ``eigs += (v * g).sum(1)``), so
  the ratio against it isolates the algorithmic saving (the reused clean gradient).
- **loop**: the naive way, one sample at a time, and for each probe a forward/backward at
  ``x`` and at ``x + h v`` (batch size 1, no reuse); run on a subset and normalised.

Cases: LeNet trained briefly on the bundled 8x8 digits (all 1,347 training samples), and an
untrained CIFAR-style ResNet-18 (width 16) on random 32x32 inputs (conv-heavy, fewer samples).

Reported: seconds per 1,000 samples (median of ``--repeats`` timed runs after one warm-up run),
the ratios ``loop / netprism`` (target >= 20) and ``official / netprism`` (target >= 1), and the
Spearman rank correlation between netprism's ``norm`` and the official ``regr`` (raw, and with
the official 1/B mean-reduction factor of each batch undone), next to the correlation between
two netprism runs with different probe seeds (the probe-noise ceiling).  The official score is
``h / B`` times netprism's (same probes aside); the median ratio is printed as a check.

Run::

    .venv/bin/python benchmarks/bench_curvature.py            # ~2 min on 2 CPU cores
    .venv/bin/python benchmarks/bench_curvature.py --quick    # ~20 s
    .venv/bin/python benchmarks/bench_curvature.py --threads 1 --n-probes 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from torch import nn

from netprism.core.curvature import input_curvature
from netprism.data import load_dataset
from netprism.models import create_model

LOOP_TARGET = 20.0  # loop / netprism
OFFICIAL_TARGET = 1.0  # official / netprism


# --------------------------------------------------------------------------- the three methods


def official_curvature(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    n: int,
    h: float,
    batch_size: int,
    *,
    verbatim: bool = True,
    temp: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The official ``get_regularized_curvature_for_batch``, applied batch by batch.

    Parameters
    ----------
    model : nn.Module, maps (B, *input_shape) to logits (B, K)
    x : Tensor (N, *input_shape)
    y : LongTensor (N,)
    n : int, probes (``niter``)
    h : float, finite-difference step
    batch_size : int
    verbatim : bool
        ``True`` keeps the official code's Python loop over the batch that maps the zeros of
        ``randint`` to -1 and its ``diag(V G^T)`` (a (B, B) product) for ``eigs``; ``False``
        vectorises both (same values, same random stream).

    Returns
    -------
    (regr, eigs) : Tensors (N,)
        ``mean_j ||g_j||`` and ``mean_j v_j . g_j`` per sample, with ``g_j`` the input gradient
        of the batch-mean loss difference (so each sample's value carries a 1/B factor).
    """
    criterion = nn.CrossEntropyLoss()  # mean reduction, as in the official code
    model.eval()
    regrs, eigss = [], []
    for start in range(0, len(x), batch_size):
        batch_data = x[start : start + batch_size].clone()
        batch_labels = y[start : start + batch_size]
        num_samples = batch_data.shape[0]
        model.zero_grad()
        regr = torch.zeros(num_samples)
        eigs = torch.zeros(num_samples)
        for _ in range(n):
            v = torch.randint_like(batch_data, high=2)
            if verbatim:
                for v_i in v:  # the official code's Rademacher mapping, sample by sample
                    v_i[v_i == 0] = -1
            else:
                v = v * 2 - 1
            v = h * (v + 1e-7)
            batch_data.requires_grad_()
            outputs_pos = model(batch_data + v)
            outputs_orig = model(batch_data)
            loss_pos = criterion(outputs_pos / temp, batch_labels)
            loss_orig = criterion(outputs_orig / temp, batch_labels)
            grad_diff = torch.autograd.grad(loss_pos - loss_orig, batch_data)[0]
            g = grad_diff.reshape(num_samples, -1)  # (B, D)
            regr += g.norm(dim=1).cpu().detach()
            if verbatim:
                eigs += torch.diag(torch.matmul(v.reshape(num_samples, -1), g.T)).cpu().detach()
            else:
                eigs += (v.reshape(num_samples, -1) * g).sum(dim=1).cpu().detach()
            model.zero_grad()
            if batch_data.grad is not None:
                batch_data.grad.zero_()
        regrs.append(regr / n)
        eigss.append(eigs / n)
    return torch.cat(regrs), torch.cat(eigss)


def loop_curvature(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, n: int, h: float, seed: int = 0
) -> torch.Tensor:
    """Naive per-sample loop: each sample alone, each probe two forward/backward passes.

    Returns mean over probes of ``||(g(x + h v) - g(x)) / h||`` per sample (N,), the quantity
    of netprism's ``norm``.
    """
    gen = torch.Generator().manual_seed(seed)
    model.eval()

    def input_grad(xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        xi = xi.detach().requires_grad_(True)
        loss = F.cross_entropy(model(xi), yi)
        return torch.autograd.grad(loss, xi)[0]

    out = torch.zeros(len(x))
    for i in range(len(x)):
        xi, yi = x[i : i + 1], y[i : i + 1]  # (1, *input_shape), (1,)
        total = 0.0
        for _ in range(n):
            v = torch.randint(0, 2, xi.shape, generator=gen).to(xi.dtype) * 2 - 1
            g0 = input_grad(xi, yi)
            g1 = input_grad(xi + h * v, yi)
            total += float(((g1 - g0) / h).norm())
        out[i] = total / n
    return out


# --------------------------------------------------------------------------- harness


@dataclass
class Case:
    name: str
    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    loop_samples: int
    note: str


def interleaved(
    fns: dict[str, Callable[[], Any]], warmups: dict[str, Callable[[], Any]], repeats: int
) -> tuple[dict[str, float], dict[str, Any]]:
    """Warm each method up once, then time ``repeats`` rounds that run every method in turn.

    Interleaving spreads any background load over all methods alike.  Returns the list of
    seconds per method and each method's last result.
    """
    for warm in warmups.values():
        warm()
    times: dict[str, list[float]] = {name: [] for name in fns}
    results: dict[str, Any] = {}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - t0)
    return times, results


def train_briefly(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int) -> float:
    """A few epochs of Adam so that curvature is measured on a fitted model; train accuracy."""
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(64):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def make_cases(args: argparse.Namespace) -> list[Case]:
    torch.manual_seed(0)
    ds = load_dataset("digits")
    x, y = ds.x, ds.y
    if args.quick:
        x, y = x[:384], y[:384]
    lenet = create_model("lenet", input_shape=(1, 8, 8), num_classes=10)
    acc = train_briefly(lenet, x, y, epochs=6 if args.quick else 15)
    n_res = 32 if args.quick else 128
    resnet = create_model("resnet18", input_shape=(3, 32, 32), num_classes=10, width=16).eval()
    xr = torch.randn(n_res, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    yr = torch.randint(0, 10, (n_res,), generator=torch.Generator().manual_seed(2))
    return [
        Case("lenet / digits 8x8", lenet, x, y, args.loop_samples, f"trained, acc {acc:.3f}"),
        Case(
            "resnet18 w16 / random 32x32",
            resnet,
            xr,
            yr,
            max(2, args.loop_samples // 2),
            "untrained",
        ),
    ]


def batch_sizes(n: int, batch_size: int) -> torch.Tensor:
    """Size of the batch each of ``n`` samples falls in (N,)."""
    sizes = [min(batch_size, n - s) for s in range(0, n, batch_size)]
    return torch.cat([torch.full((b,), float(b)) for b in sizes])


def rho(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(spearmanr(a.numpy(), b.numpy()).statistic)


FD, HVP, OFF, VEC, LOOP = (
    "netprism (finite_difference)",
    "netprism (hvp, exact)",
    "official (verbatim)",
    "official-vec",
    "loop (per sample)",
)


def run_case(case: Case, args: argparse.Namespace) -> dict[str, Any]:
    m, x, y = case.model, case.x, case.y
    n, h, bs = args.n_probes, args.h, args.batch_size

    def ours(xs: torch.Tensor, ys: torch.Tensor, backend: str, seed: int = 0) -> Any:
        return input_curvature(
            m, xs, ys, n_probes=n, h=h, backend=backend, seed=seed, batch_size=bs
        )

    def official(xs: torch.Tensor, ys: torch.Tensor, verbatim: bool) -> Any:
        torch.manual_seed(123)  # same probes for both official variants
        return official_curvature(m, xs, ys, n, h, bs, verbatim=verbatim)

    def methods(xs: torch.Tensor, ys: torch.Tensor, xl: torch.Tensor, yl: torch.Tensor) -> dict:
        return {
            FD: lambda: ours(xs, ys, "finite_difference"),
            HVP: lambda: ours(xs, ys, "hvp"),
            OFF: lambda: official(xs, ys, True),
            VEC: lambda: official(xs, ys, False),
            LOOP: lambda: loop_curvature(m, xl, yl, n, h),
        }

    xl, yl = x[: case.loop_samples], y[: case.loop_samples]
    warm = min(bs, len(x))  # warm-up on the first batch (the loop on its first 2 samples)
    warmups = methods(x[:warm], y[:warm], xl[:2], yl[:2])
    times, res = interleaved(methods(x, y, xl, yl), warmups, args.repeats)
    med = {name: statistics.median(t) for name, t in times.items()}
    counts = {FD: len(x), HVP: len(x), OFF: len(x), VEC: len(x), LOOP: len(xl)}
    per_k = {name: med[name] / counts[name] * 1000 for name in med}

    fd, hvp, (regr, eigs), (regr_vec, eigs_vec) = res[FD], res[HVP], res[OFF], res[VEC]
    fd_seed1 = ours(x, y, "finite_difference", seed=1)
    regr_fixed = regr * batch_sizes(len(x), bs) / h  # undo the official 1/B and missing 1/h
    last = len(x) - (len(x) - 1) // bs * bs
    return {
        "rows": [(name, counts[name], times[name], per_k[name]) for name in med],
        "loop_ratio": per_k[LOOP] / per_k[FD],
        "official_ratio": per_k[OFF] / per_k[FD],
        "vec_ratio": per_k[VEC] / per_k[FD],
        "vec_same": bool(
            torch.allclose(regr, regr_vec, rtol=1e-4) and torch.allclose(eigs, eigs_vec, rtol=1e-3)
        ),
        "rho_raw": rho(fd.norm, regr),
        "rho_fixed": rho(fd.norm, regr_fixed),
        "rho_seed": rho(fd.norm, fd_seed1.norm),
        "rho_hvp": rho(fd.norm, hvp.norm),
        "scale": float((fd.norm / regr_fixed).median()),
        "last_batch": last if last != bs and len(x) > bs else 0,
    }


def report(case: Case, r: dict[str, Any]) -> bool:
    """Print one case's markdown table and ratios; True if both speed targets hold."""
    print(f"\n## {case.name} ({case.note})\n")
    print("| method | samples run | median s / run (min-max) | s / 1k samples | x netprism |")
    print("|---|---:|---:|---:|---:|")
    base = r["rows"][0][3]
    for name, cnt, ts, pk in r["rows"]:
        spread = f"{statistics.median(ts):.3f} ({min(ts):.3f}-{max(ts):.3f})"
        print(f"| {name} | {cnt} | {spread} | {pk:.3f} | {pk / base:.2f} |")
    hold_loop = r["loop_ratio"] >= LOOP_TARGET
    hold_off = r["official_ratio"] >= OFFICIAL_TARGET
    word = {True: "holds", False: "does NOT hold"}
    short = (
        f"short last batch of {r['last_batch']} samples"
        if r["last_batch"]
        else "no short last batch"
    )
    print()
    print(
        f"- loop / netprism = {r['loop_ratio']:.1f}x (target >= {LOOP_TARGET:g}: {word[hold_loop]})"
    )
    print(
        f"- official / netprism = {r['official_ratio']:.2f}x (target >= {OFFICIAL_TARGET:g}: "
        f"{word[hold_off]}); official-vec / netprism = {r['vec_ratio']:.2f}x "
        f"(official-vec gives the same regr/eigs: {r['vec_same']})"
    )
    print(
        f"- Spearman(netprism norm, official regr) = {r['rho_raw']:.3f} raw, "
        f"{r['rho_fixed']:.3f} with the official 1/B undone ({short})"
    )
    print(
        f"- probe-noise ceiling Spearman(netprism seed 0, seed 1) = {r['rho_seed']:.3f}; "
        f"Spearman(finite_difference, hvp) = {r['rho_hvp']:.3f}"
    )
    print(f"- median of netprism norm / (official regr * B / h) = {r['scale']:.3f} (expect ~1)")
    return hold_loop and hold_off


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (~20 s)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--n-probes", type=int, default=10)
    parser.add_argument("--h", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (default 3)")
    parser.add_argument("--loop-samples", type=int, default=None, help="loop subset (32)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    args.repeats = args.repeats or 3
    args.loop_samples = args.loop_samples or (8 if args.quick else 32)

    print("# bench_curvature")
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, n_probes {args.n_probes}, "
        f"h {args.h}, batch_size {args.batch_size}, timed runs {args.repeats} (median, after "
        f"1 warm-up, interleaved){', quick' if args.quick else ''}; load average {load}"
    )
    ok = True
    for case in make_cases(args):
        ok &= report(case, run_case(case, args))
    print(f"\nall targets hold: {ok}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
