"""The measurement the default label-issue detector of ``find_label_issues`` is chosen from.

The rule (written before this script was first run, 2026-12-03):

    On digits (train split) with symmetric label noise at 5 % and 20 %, seeds 0, 1, 2, train
    the one-call recipe (``default_config(epochs=100)``, an MLP 256-256) once per cell and
    measure every score ``memorization_scores`` returns, plus SSFT and cleanlab's confident
    learning for reference.  Candidates for the default are the scores of that single run (no
    extra training: the default must cost nothing beyond the one call).  The default is the
    candidate with the highest mean AUROC over the six runs; candidates within 0.002 of it tie,
    and a tie goes to the higher mean precision at the true count.

Only this data decides the default; the memorization grid then evaluates it on every noise
type, dataset and architecture.  Prints a markdown table and writes the numbers as JSON.

    .venv/bin/python benchmarks/choose_label_issue_default.py [--quick] [--threads N]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from netprism.core.metrics import auroc, precision_at_k
from netprism.data import load_dataset, with_label_noise
from netprism.io import atomic_write_text
from netprism.memorization import default_config, memorization_scores, second_split_forgetting
from netprism.memorization.confident import confident_learning_scores, out_of_sample_probabilities
from netprism.models import create_model

RATES, SEEDS, EPOCHS = (0.05, 0.20), (0, 1, 2), 100
TIE = 0.002
EXTRA_TRAINING = ("ssft", "confident_learning")


def one_cell(rate: float, seed: int, epochs: int) -> dict:
    ds = load_dataset("digits", split="train", seed=seed)
    noisy, flipped = with_label_noise(ds, rate, seed=seed)

    def factory():
        return create_model("mlp", input_shape=ds.input_shape, num_classes=10, hidden=(256, 256))

    config = dataclasses.replace(default_config(epochs, seed=seed, device="cpu"), progress=False)
    start = time.perf_counter()
    result = memorization_scores(factory, noisy, config)
    scores, seconds = dict(result.scores), {"one_call": time.perf_counter() - start}
    start = time.perf_counter()
    scores["ssft"] = second_split_forgetting(factory, noisy, config, second_epochs=epochs // 5)
    seconds["ssft"] = time.perf_counter() - start
    start = time.perf_counter()
    probs = out_of_sample_probabilities(factory, noisy, folds=5, config=config, seed=seed)
    scores["confident_learning"] = confident_learning_scores(noisy.y, probs)
    seconds["confident_learning"] = time.perf_counter() - start
    k = int(flipped.sum())
    return {
        "rate": rate, "seed": seed, "train_accuracy": result.history[-1]["accuracy"],
        "auroc": {name: auroc(flipped, v) for name, v in scores.items()},
        "precision": {name: precision_at_k(flipped, v, k) for name, v in scores.items()},
        "seconds": seconds,
    }  # fmt: skip


def choose(cells: list[dict]) -> tuple[str, dict[str, tuple[float, float]]]:
    """The rule above: best mean AUROC among single-run scores; a tie (within ``TIE``) goes
    to the higher mean precision at the true count."""
    names = [n for n in cells[0]["auroc"] if n not in EXTRA_TRAINING]
    mean = {
        n: (
            sum(c["auroc"][n] for c in cells) / len(cells),
            sum(c["precision"][n] for c in cells) / len(cells),
        )
        for n in cells[0]["auroc"]
    }
    best = max(mean[n][0] for n in names)
    tied = [n for n in names if mean[n][0] >= best - TIE]
    return max(tied, key=lambda n: mean[n][1]), mean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one seed, 10 epochs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="runs/choose_label_issue_default.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seeds, epochs = ((0,), 10) if args.quick else (SEEDS, EPOCHS)
    cells = [one_cell(rate, seed, epochs) for rate in RATES for seed in seeds]
    chosen, mean = choose(cells)
    print("| score | mean AUROC | mean precision at true count |" + "".join(
        f" AUROC {c['rate']:.0%} s{c['seed']} |" for c in cells))  # fmt: skip
    print("|---|---|---|" + "---|" * len(cells))
    for name, (a, p) in sorted(mean.items(), key=lambda kv: -kv[1][0]):
        per = "".join(f" {c['auroc'][name]:.4f} |" for c in cells)
        print(f"| {name} | {a:.4f} | {p:.4f} |{per}")
    print(f"\ntrain accuracy: {[round(c['train_accuracy'], 4) for c in cells]}")
    print(f"seconds: {[{k: round(v, 1) for k, v in c['seconds'].items()} for c in cells]}")
    print(f"chosen by the rule: {chosen}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(args.out), json.dumps({"cells": cells, "chosen": chosen}, indent=1))


if __name__ == "__main__":
    main()
