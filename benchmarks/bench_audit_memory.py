"""Peak memory of a dataset audit on an image folder: 100,000 images vs 10,000.

``netprism audit --dataset imagefolder`` reads the folder lazily (each PNG decoded when a batch
needs it) and every pass of the audit -- the training epochs, the per-epoch scoring, the
model's suggestions, the two passes of the duplicate search -- streams it.  What must stay in
memory grows with ``N`` only through per-sample arrays: the scores and their per-epoch
histories, labels, file names, and the rows of the duplicate search (``N * D`` values for an
exact search up to 50,000 samples, ``N * 64`` projected above).

The benchmark writes two synthetic folders of 3x32x32 RGB PNGs (10 class folders; each image a
class template plus per-pixel noise, 2 % of them filed under a wrong class), then audits each
in a fresh process exactly as the command line does (the folder's train and test images
together, LeNet, ``--epochs 2``: curvature is scored once, at the default ``every=2``; 10
probes; the one-call recipe), after a warm-up audit of 200 images in the same process (one-time
costs: imports, the first optimizer's ``torch._dynamo``) and a reset of the RSS high-water mark
(``/proc/self/clear_refs``).

Reported per size: the measured audit's peak RSS (``VmHWM`` after the reset), the process's
peak over its whole life (``ru_maxrss``, warm-up included), the RSS before the call, the
bytes of the O(N) arrays the audit returns, and wall time per stage.  Targets: peak RSS of the
100k audit < 2 GB and ``peak(100k) <= 1.3 x (peak(10k) + arrays(100k))`` (also printed: the
stricter ``1.3 x peak(10k) + arrays(100k)``).

Run::

    .venv/bin/python benchmarks/bench_audit_memory.py             # ~30-60 min on 2 CPU cores
    .venv/bin/python benchmarks/bench_audit_memory.py --quick     # 2,000 vs 500 images, ~1 min
                                                                  # (a smoke run of the code)
    .venv/bin/python benchmarks/bench_audit_memory.py --sizes 20000 5000 --folder /tmp/imgs
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from rss import reset_peak_rss, vm_status  # benchmarks/rss.py

MB = 1 << 20
CLASSES = 10
FLIP_RATE = 0.02


def write_folder(root: Path, n: int, seed: int = 0) -> float:
    """``n`` 3x32x32 PNGs under ``root/class_k/``; seconds taken.  Idempotent per ``n``."""
    done = root / f".complete-{n}"
    if done.exists():
        return 0.0
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    templates = rng.integers(40, 216, (CLASSES, 32, 32, 3)).astype(np.int16)
    for k in range(CLASSES):
        (root / f"class_{k}").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        true = i % CLASSES
        filed = (
            (true + 1 + rng.integers(CLASSES - 1)) % CLASSES if rng.random() < FLIP_RATE else true
        )
        noise = rng.integers(-40, 41, (32, 32, 3))
        img = np.clip(templates[true] + noise, 0, 255).astype(np.uint8)
        Image.fromarray(img, mode="RGB").save(root / f"class_{filed}" / f"{i:06d}.png")
    done.touch()
    return time.perf_counter() - start


def audit_folder(folder: Path, out: Path, epochs: int) -> Any:
    """The audit exactly as ``netprism audit --dataset imagefolder --model lenet`` runs it."""
    from netprism.data import image_files
    from netprism.memorization import audit, default_config
    from netprism.models import create_model

    train, test = (image_files(folder, split=s) for s in ("train", "test"))
    ds = train + test

    def factory() -> torch.nn.Module:
        return create_model("lenet", input_shape=ds.input_shape, num_classes=ds.num_classes)

    return ds, audit(factory, ds, default_config(epochs, device="cpu"), out_dir=out)


def worker(cfg: dict[str, Any]) -> dict[str, Any]:
    torch.set_num_threads(cfg["threads"])
    with tempfile.TemporaryDirectory() as tmp:
        audit_folder(Path(cfg["warm"]), Path(tmp) / "warm", 1)
        reset = reset_peak_rss()
        base = vm_status("VmRSS")
        start = time.perf_counter()
        ds, report = audit_folder(Path(cfg["folder"]), Path(tmp) / "audit", cfg["epochs"])
        seconds = time.perf_counter() - start
        peak = vm_status("VmHWM")
    tensors = [
        *report.scores.scores.values(), *report.scores.per_epoch.values(), report.suggested,
        report.duplicate_score, report.issues, report.memorized, ds.labels,
    ]  # fmt: skip
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    rows = 8 * len(ds) * (64 if len(ds) > 50_000 else int(np.prod(ds.input_shape)))
    return {
        "n": len(ds),
        "reset": reset,
        "base": base,
        "peak": peak,
        "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "array_bytes": sum(storages.values()),
        "search_rows_bytes": rows,
        "seconds": seconds,
        "parts": report.scores.seconds,
        "issues": len(report.issues),
        "groups": len(report.duplicate_groups),
    }


def run_worker(cfg: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(cfg)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"audit worker {cfg} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=(100_000, 10_000),
                        metavar=("LARGE", "SMALL"))  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="2,000 vs 500 images")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--folder", type=Path, default=None, help="keep the images here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    large, small = (2_000, 500) if args.quick else args.sizes
    root = args.folder or Path(tempfile.mkdtemp(prefix="netprism-audit-bench-"))
    try:
        written = {n: write_folder(root / f"n{n}", n) for n in (200, small, large)}
        print(f"wrote the folders in {sum(written.values()):.0f} s under {root}", flush=True)
        res = {}
        for n in (small, large):
            cfg = {"folder": str(root / f"n{n}"), "warm": str(root / "n200"),
                   "epochs": args.epochs, "threads": args.threads}  # fmt: skip
            res[n] = run_worker(cfg)
            print(f"audited {n:,} images in {res[n]['seconds']:.0f} s", flush=True)
    finally:
        if args.folder is None:
            shutil.rmtree(root, ignore_errors=True)
    report(res, small, large, args)
    s, big = res[small], res[large]
    ok = big["peak"] < 2 << 30 and big["peak"] <= 1.3 * (s["peak"] + big["array_bytes"])
    if args.quick:  # both sizes search exactly there: a smoke run, not the measurement
        print("\n--quick is a smoke run: the targets apply to 100,000 vs 10,000 images")
        return 0
    print(f"\ntargets {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


def report(res: dict[int, Any], small: int, large: int, args: argparse.Namespace) -> None:
    print(
        f"\n## Audit peak memory: LeNet, {args.epochs} epochs, curvature once (10 probes), "
        f"3x32x32 PNGs read lazily, {args.threads} thread(s), fresh process each after a "
        f"warm-up audit (high-water mark reset: {all(r['reset'] for r in res.values())})\n"
    )
    print("| N | peak RSS MB (audit) | peak RSS MB (process) | RSS before MB | growth MB "
          "| O(N) arrays MB | search rows MB | s total (train / curvature / dynamics) "
          "| label issues | duplicate groups |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for n in (small, large):
        r = res[n]
        p = r["parts"]
        split = " / ".join(f"{p.get(k, 0.0):.0f}" for k in ("train", "curvature", "dynamics"))
        print(f"| {r['n']:,} | {r['peak'] / MB:.0f} | {r['maxrss'] / MB:.0f} | "
              f"{r['base'] / MB:.0f} | {(r['peak'] - r['base']) / MB:.0f} | "
              f"{r['array_bytes'] / MB:.1f} | {r['search_rows_bytes'] / MB:.0f} | "
              f"{r['seconds']:.0f} ({split}) | {r['issues']} | {r['groups']} |")  # fmt: skip
    s, big = res[small], res[large]
    loose = 1.3 * (s["peak"] + big["array_bytes"])
    strict = 1.3 * s["peak"] + big["array_bytes"]
    print(f"\npeak({large:,}) = {big['peak'] / MB:.0f} MB; < 2048 MB: {big['peak'] < 2 << 30}")
    print(f"1.3 x (peak({small:,}) + arrays({large:,})) = {loose / MB:.0f} MB: "
          f"{'within' if big['peak'] <= loose else 'over'}")  # fmt: skip
    print(f"1.3 x peak({small:,}) + arrays({large:,}) = {strict / MB:.0f} MB: "
          f"{'within' if big['peak'] <= strict else 'over'}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
