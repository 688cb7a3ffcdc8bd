"""LIF time loop, forward + backward: netprism vs snnTorch ``Leaky`` vs SpikingJelly ``LIFNode``.

Garg, Chowdhury, Roy, "DCT-SNN", ICCV 2021 (arXiv 2010.01795): hidden LIF layers with leak
0.99 and a soft reset, trained by back-propagation through all ``T`` steps.  Every method runs
the same fully connected SNN ``784 -> LIF(512) -> integrator(10)`` on the same Bernoulli
rate-coded input (T, B, 784): the Linear layers are applied to all steps at once (they have no
state), only the neuron loops over time; loss = cross-entropy of ``sum_t fc2(s_t) / T``; one
timed call = forward + backward.  Two views:

- **network**: the whole step above (the two Linear layers' matmuls are common to all);
- **neuron only**: the LIF layer alone on pre-computed input currents (T, B, 512), loss
  ``sum(w * spikes)``: isolates the time loop that the libraries implement differently.

Methods (threshold ``--threshold``, default 1; leak 0.99; soft reset; no reset detach in
netprism and SpikingJelly; with ``V_th != 1`` netprism adds one division per step):

- **netprism** :func:`netprism.nn.lif_sequence` (fused forward, hand-written backward);
  ``netprism (module loop)`` calls the ``LIF`` module once per step (autograd records every op),
  the naive baseline.
- **snnTorch** ``snn.Leaky(beta=0.99, reset_mechanism="subtract", spike_grad=fast_sigmoid(25))``
  called once per step (its idiom).  Its default ``reset_delay=True`` has exactly the membrane
  of our ``delay=True`` ordering (the official DCT-SNN one), so it is compared with
  ``LIF(delay=True, surrogate="fast_sigmoid")``.  snnTorch detaches the reset from the graph.
- **SpikingJelly** ``LIFNode(tau=100, decay_input=False, v_reset=None, surrogate=ATan(),
  step_mode="m")``: ``H = V - V / tau + X = 0.99 V + X``, fire at ``H >= 1``, subtract; the
  same dynamics as our default ordering (fire at ``> 1``: equal but on a measure-zero set), so
  it is compared with ``LIF(delay=False, surrogate="arctan")`` (same ``alpha = 2``).  On CPU
  SpikingJelly runs its registered ``sj_lif`` operator: a graph-free Python forward loop and a
  hand-written backward loop.

Peers are optional: a failed import prints a line and skips that row.  Reported: median ms per
forward + backward over ``--repeats`` interleaved rounds (after a warm-up), the hidden spike
rate (a check that the dynamics agree), and ``peer / netprism`` (target >= 1, not slower) of
the medians (the target) and of the minima (less sensitive to other jobs on a shared CPU).

Run::

    .venv/bin/python benchmarks/bench_lif.py             # ~1 min, T = 16 and 48
    .venv/bin/python benchmarks/bench_lif.py --quick     # ~15 s
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from netprism.nn import LIF, lif_sequence
from netprism.nn.neurons import _loop

TARGET = 1.0  # peer / netprism
LEAK, D_IN, D_HID, K = 0.99, 784, 512, 10
THRESHOLD = 1.0  # set by --threshold

Neuron = Callable[[torch.Tensor], torch.Tensor]  # currents (T, B, N) -> spikes (T, B, N)


def make_neurons() -> dict[str, tuple[Neuron, str]]:
    """name -> (neuron over a sequence, the netprism row it is compared with)."""
    ours_sn = LIF(THRESHOLD, LEAK, "soft", "fast_sigmoid", delay=True)
    ours_sj = LIF(THRESHOLD, LEAK, "soft", "arctan")
    out: dict[str, tuple[Neuron, str]] = {
        "netprism (delay, fast_sigmoid)": (lambda c: lif_sequence(c, ours_sn)[0], ""),
        "netprism (no delay, arctan)": (lambda c: lif_sequence(c, ours_sj)[0], ""),
        "netprism module loop (no delay, arctan)": (
            lambda c: _loop(c, ours_sj, torch.zeros_like(c[0]), False)[0],
            "netprism (no delay, arctan)",
        ),
    }
    try:
        import snntorch as snn
        from snntorch import surrogate as sn_sur

        leaky = snn.Leaky(
            beta=LEAK,
            threshold=THRESHOLD,
            spike_grad=sn_sur.fast_sigmoid(slope=25),
            reset_mechanism="subtract",
        )

        def snn_run(c: torch.Tensor) -> torch.Tensor:
            mem, spikes = torch.zeros_like(c[0]), []
            for t in range(len(c)):
                spk, mem = leaky(c[t], mem)
                spikes.append(spk)
            return torch.stack(spikes)

        ver = getattr(snn, "__version__", "?")
        out[f"snnTorch {ver} Leaky"] = (snn_run, "netprism (delay, fast_sigmoid)")
    except ImportError as err:
        print(f"- snnTorch skipped: {err}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from spikingjelly.activation_based import neuron, surrogate

        node = neuron.LIFNode(
            tau=1.0 / (1.0 - LEAK),
            decay_input=False,
            v_threshold=THRESHOLD,
            v_reset=None,
            surrogate_function=surrogate.ATan(alpha=2.0),
            step_mode="m",
        )

        def sj_run(c: torch.Tensor) -> torch.Tensor:
            node.reset()
            spikes: torch.Tensor = node(c)
            return spikes

        out["SpikingJelly LIFNode (m)"] = (sj_run, "netprism (no delay, arctan)")
    except ImportError as err:
        print(f"- SpikingJelly skipped: {err}")
    return out


def make_network_step(
    neuron: Neuron, fc1: nn.Linear, fc2: nn.Linear, x: torch.Tensor, y: torch.Tensor
) -> Callable[[], float]:
    """One forward + backward of the SNN on x (T, B, 784); returns the hidden spike rate."""

    def step() -> float:
        fc1.zero_grad(set_to_none=True)
        fc2.zero_grad(set_to_none=True)
        cur = fc1(x)  # (T, B, 512)
        spikes = neuron(cur)  # (T, B, 512)
        logits = fc2(spikes).sum(0) / len(x)  # integrator: (B, 10)
        F.cross_entropy(logits, y).backward()
        return float(spikes.detach().mean())

    return step


def make_neuron_step(neuron: Neuron, cur: torch.Tensor, w: torch.Tensor) -> Callable[[], float]:
    """The neuron alone on fixed input currents cur (T, B, 512)."""

    def step() -> float:
        c = cur.detach().requires_grad_(True)
        spikes = neuron(c)
        (spikes * w).sum().backward()
        return float(spikes.detach().mean())

    return step


def interleaved(fns: dict[str, Callable[[], float]], repeats: int) -> dict[str, Any]:
    """Warm each method up once, then time ``repeats`` rounds running every method in turn."""
    rates = {name: fn() for name, fn in fns.items()}
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {"times": times, "rates": rates}


def report(title: str, neurons: dict[str, tuple[Neuron, str]], res: dict[str, Any]) -> bool:
    print(f"\n### {title}\n")
    print(
        "| method | median ms (min-max) | hidden spike rate | vs | peer / netprism (median) "
        "| (min) |"
    )
    print("|---|---:|---:|---|---:|---:|")
    med = {name: statistics.median(ts) * 1e3 for name, ts in res["times"].items()}
    low = {name: min(ts) * 1e3 for name, ts in res["times"].items()}
    ok = True
    for name, ts in res["times"].items():
        base = neurons[name][1]
        ratio = f"{med[name] / med[base]:.2f} | {low[name] / low[base]:.2f}" if base else " |"
        if base and not name.startswith("netprism"):
            ok &= med[name] / med[base] >= TARGET
        spread = f"{med[name]:.1f} ({low[name]:.1f}-{max(ts) * 1e3:.1f})"
        print(f"| {name} | {spread} | {res['rates'][name]:.4f} | {base or '-'} | {ratio} |")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="T = 16 only, fewer repeats")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (1)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, nargs="+", default=None, help="T values (16 48)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 7)")
    parser.add_argument(
        "--threshold", type=float, default=1.0, help="V_th of all neurons (DCT-SNN: 0.2-2.7)"
    )
    args = parser.parse_args(argv)
    global THRESHOLD
    THRESHOLD = args.threshold
    torch.set_num_threads(args.threads)
    steps = args.steps or ([16] if args.quick else [16, 48])
    repeats = args.repeats or (3 if args.quick else 7)
    B = args.batch_size

    print("# bench_lif")
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {B}, "
        f"net {D_IN}-{D_HID}-{K}, leak {LEAK}, threshold {THRESHOLD}, soft reset; median of "
        f"{repeats} interleaved rounds after 1 warm-up; load average {load}"
    )
    neurons = make_neurons()
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    fc1, fc2 = nn.Linear(D_IN, D_HID, bias=False), nn.Linear(D_HID, K, bias=False)
    ok = True
    for T in steps:
        image = torch.rand(B, D_IN, generator=gen)
        x = (torch.rand(T, B, D_IN, generator=gen) < image).float()  # rate code (T, B, 784)
        y = torch.randint(0, K, (B,), generator=gen)
        net = {n: make_network_step(f, fc1, fc2, x, y) for n, (f, _) in neurons.items()}
        ok &= report(f"network, T = {T}", neurons, interleaved(net, repeats))
        cur = fc1(x).detach()  # (T, B, 512)
        w = torch.randn(cur.shape, generator=gen)
        alone = {n: make_neuron_step(f, cur, w) for n, (f, _) in neurons.items()}
        ok &= report(f"neuron only, T = {T}", neurons, interleaved(alone, repeats))
    print(f"\nall peers >= {TARGET:g}x netprism: {ok}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
