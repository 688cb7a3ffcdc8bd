"""``netprism audit``: the dataset audit of :func:`netprism.memorization.audit` from the shell.

    netprism audit --dataset imagefolder --data-dir DIR --model lenet --epochs 60 --out DIR

Any registered dataset (``netprism.data.list_datasets()``) and model.  An image folder is
audited whole (its train and test images together; ``issues.csv`` names each file), each
image decoded when it is read, so a folder larger than memory is audited in memory
proportional to its number of images; other datasets are audited on their training split.
Writes ``audit.html``, ``issues.csv`` and ``scores.safetensors`` into ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from netprism.cli.common import _OVERWRITE_HELP, claimed_out, out_path

AUDIT = "audit"  # the owner name of an audit folder


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``audit`` on the top parser's sub-commands."""
    p = sub.add_parser(AUDIT, help="audit a dataset: label issues, conflicting duplicates, ...")
    p.add_argument("--dataset", required=True, help="a registered dataset, e.g. imagefolder")
    p.add_argument("--data-dir", default=None, help="where a dataset on disk lives")
    p.add_argument("--model", default=None, help="default: lenet for images, else mlp")
    p.add_argument("--epochs", type=_positive, default=100)
    p.add_argument("--lr", type=float, default=None, help="default: the one-call recipe's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=out_path, required=True)
    p.add_argument("--overwrite", action="store_true", help=_OVERWRITE_HELP)
    p.set_defaults(handler=run_audit)


def run_audit(args: argparse.Namespace, rest: list[str]) -> int:
    from netprism.memorization import audit, default_config
    from netprism.models import create_model

    ds = _dataset(args)
    name = args.model or ("lenet" if len(ds.input_shape) == 3 else "mlp")

    def factory():
        return create_model(name, input_shape=ds.input_shape, num_classes=ds.num_classes)

    factory()  # an unknown model or an unusable shape fails before any training
    config = default_config(args.epochs, seed=args.seed, device=args.device)
    if args.lr is not None:
        config = dataclasses.replace(config, lr=args.lr)
    with claimed_out(args.out, AUDIT, overwrite=args.overwrite):
        print(f"auditing {ds.name} ({len(ds)} samples) with {name}, {args.epochs} epochs")
        report = audit(factory, ds, config, out_dir=args.out)
    print(
        f"{len(report.issues)} label issues estimated ({report.detector}), "
        f"{len(report.duplicate_groups)} conflicting near-duplicate groups; "
        f"wrote {report.files['html']}"
    )
    if not report.premise.holds:
        print(f"note: {report.premise.message()}")
    return 0


def _dataset(args: argparse.Namespace) -> Any:
    """The training split, or an image folder's every image (read lazily: any size)."""
    from netprism.data import image_files, load_dataset

    if args.dataset != "imagefolder":
        return load_dataset(args.dataset, split="train", data_dir=args.data_dir, seed=args.seed)
    if args.data_dir is None:
        raise ValueError("--dataset imagefolder reads your own images: pass --data-dir DIR")
    train, test = (image_files(args.data_dir, split=s, seed=args.seed) for s in ("train", "test"))
    return train + test


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text!r}")
    return value
