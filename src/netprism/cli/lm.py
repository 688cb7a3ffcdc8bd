"""``netprism lm``: train the byte-level LM, generate from it (optionally schema-guided), adapt it.

"Apple Intelligence Foundation Language Models: Tech Report 2025" (arXiv 2507.13575).  The
commands of :mod:`netprism.lm` registered in the CLI (``netprism lm ...`` delegates here); the
CLI imports :mod:`netprism.lm`, never the other way round.

::

    netprism lm train --out runs/lm --steps 2000 --kv-share 0.375
    netprism lm generate --model runs/lm --prompt "def main(" --max-bytes 100
    netprism lm generate --model runs/lm --prompt "person: " --schema person.json --max-bytes 64
    netprism lm adapt --model runs/lm --package email --out runs/lm/email.lora.safetensors
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from netprism.cli.common import LM_TRAIN, OneLineParser, claimed_out, out_path, shown
from netprism.io import ensure_writable_dir, load_json
from netprism.lm.model import ByteLM

VOCAB = 256  # bytes


def main(argv: Sequence[str]) -> int:
    """Run ``netprism lm ...``; returns the exit status.

    Option values are checked as they are parsed (argparse errors: one line, ``SystemExit(2)``);
    later user errors raise ``ValueError`` or ``OSError``, which ``netprism``'s ``main`` prints
    as one line.
    """
    parser = _parser()
    args = parser.parse_args(list(argv))
    if args.action is None:
        parser.print_help()
        return 2
    return int(args.handler(args))


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="netprism lm", description="The tiny on-device-style byte language model."
    )
    sub = parser.add_subparsers(dest="action")
    t = sub.add_parser("train", help="train on the Python standard library's sources")
    t.add_argument("--out", type=out_path, required=True, help="folder for weights + config")
    t.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    t.add_argument("--steps", type=integer(1), default=1000)
    t.add_argument("--batch-size", type=integer(1, 1 << 16), default=16)
    t.add_argument("--context", type=integer(1, 1 << 20), default=128)
    t.add_argument("--d-model", type=integer(1, 1 << 16), default=64)
    t.add_argument("--n-layers", type=integer(1, 1024), default=8)
    t.add_argument("--n-heads", type=integer(1, 1024), default=4)
    t.add_argument("--n-kv-heads", type=integer(1, 1024), default=2)
    t.add_argument(
        "--kv-share", type=number(0.0, 1.0), default=0.0, help="0.375 for AFM's 5:3 split"
    )
    t.add_argument("--lr", type=LR, default=3e-3)
    t.add_argument("--seed", type=SEED, default=0)
    t.add_argument("--corpus-bytes", type=integer(1), default=None, help="cap per split")
    t.add_argument("--heldout-package", default="email")
    t.add_argument("--log-every", type=integer(1), default=100)
    t.set_defaults(handler=_train)

    g = sub.add_parser("generate", help="sample bytes; --schema forces valid JSON")
    g.add_argument("--model", type=out_path, required=True)
    g.add_argument("--adapter", type=out_path, default=None, help="a LoRA file from `lm adapt`")
    g.add_argument("--prompt", default="", help="an empty prompt is a newline")
    g.add_argument(
        "--max-bytes", type=integer(1), default=None, help="default: what the context leaves"
    )
    g.add_argument("--temperature", type=number(0.0), default=1.0, help="0: greedy")
    g.add_argument("--top-k", type=integer(1, VOCAB), default=None)
    g.add_argument("--seed", type=SEED, default=0)
    g.add_argument("--schema", type=out_path, default=None, help="JSON-Schema file (subset)")
    g.set_defaults(handler=_generate)

    a = sub.add_parser("adapt", help="train a LoRA adapter on a held-out stdlib package")
    a.add_argument("--model", type=out_path, required=True)
    a.add_argument("--out", type=out_path, required=True, help="adapter .safetensors file")
    a.add_argument("--overwrite", action="store_true", help="replace a file that is no adapter")
    a.add_argument("--package", default=None, help="default: the model's held-out package")
    a.add_argument("--rank", type=integer(1, 1024), default=4)
    a.add_argument("--alpha", type=number(0.0, low_open=True), default=8.0)
    a.add_argument("--steps", type=integer(1), default=300)
    a.add_argument("--lr", type=LR, default=1e-3)
    a.add_argument("--batch-size", type=integer(1, 1 << 16), default=16)
    a.add_argument("--seed", type=SEED, default=0)
    a.set_defaults(handler=_adapt)
    return parser


# --- option types: a value out of range is an argparse error naming it ----------------------

MAX_INT = 2**31 - 1


def integer(low: int = 0, high: int = MAX_INT) -> Callable[[str], int]:
    """argparse type: an int in ``[low, high]``."""

    def convert(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"expected an int >= {low} and <= {high}, got {shown(text)}"
            )
        return value

    convert.__name__ = "int"
    return convert


def number(
    low: float | None = None, high: float | None = None, *, low_open: bool = False
) -> Callable[[str], float]:
    """argparse type: a finite float in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        bounds.append(f"<= {high:g}")
    expected = " ".join(["a finite number", " and ".join(bounds)]).strip()

    def convert(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            value = math.nan
        ok = math.isfinite(value)
        ok = ok and (low is None or (value > low if low_open else value >= low))
        ok = ok and (high is None or value <= high)
        if not ok:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {shown(text)}")
        return value

    convert.__name__ = "float"
    return convert


LR = number(0.0, 100.0, low_open=True)  # 1e30 is a typo, not a learning rate
SEED = integer(0, 2**32 - 1)  # NumPy's seed range


def _train(args: argparse.Namespace) -> int:
    with claimed_out(args.out, LM_TRAIN, overwrite=args.overwrite):
        return _train_into(args)


def _train_into(args: argparse.Namespace) -> int:
    from netprism.lm import ByteLM, LMConfig, save_lm, stdlib_corpus, train_lm

    config = LMConfig(
        context=args.context,
        n_layers=args.n_layers,
        d_model=args.d_model,
        n_heads=args.n_heads,
        n_kv_heads=args.n_kv_heads,
        kv_share=args.kv_share,
    )
    corpus = stdlib_corpus(heldout_package=args.heldout_package, max_bytes=args.corpus_bytes)
    torch.manual_seed(args.seed)
    model = ByteLM(config)
    print(
        f"corpus {corpus.sha256[:12]}: train {corpus.train.size:,} bytes, val "
        f"{corpus.val.size:,}; model {model.num_params():,} parameters",
        flush=True,
    )
    start = time.perf_counter()
    hist = train_lm(
        model,
        corpus.train,
        steps=args.steps,
        batch_size=args.batch_size,
        context=args.context,
        lr=args.lr,
        seed=args.seed,
        val=corpus.val,
        eval_every=args.log_every,
        on_eval=lambda step, bpb: print(
            f"step {step}/{args.steps}  val {bpb:.3f} bpb  ({time.perf_counter() - start:.0f} s)",
            flush=True,
        ),
    )
    save_lm(model, config, args.out)
    meta: dict[str, object] = {
        "heldout_package": corpus.heldout_package,
        "corpus_sha256": corpus.sha256,
    }
    meta["val_bpb"] = hist.val_bpb[-1]
    (args.out / "train.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    print(f"saved {args.out} (val {hist.val_bpb[-1]:.3f} bpb)")
    return 0


def _load(model_dir: Path, adapter: Path | None) -> ByteLM:
    from netprism.lm import load_lm
    from netprism.lm.lora import load_lora

    model, _ = load_lm(model_dir)
    if adapter is not None:
        load_lora(model, adapter)
    model.eval()
    return model


def _generate(args: argparse.Namespace) -> int:
    model = _load(args.model, args.adapter)
    prompt = args.prompt.encode("utf-8") or b"\n"
    if args.max_bytes is None:
        args.max_bytes = model.config.context - len(prompt)
    gen = torch.Generator().manual_seed(args.seed)
    if args.schema is not None:
        chunks = _guided_chunks(model, prompt, args, gen)
    else:
        chunks = _free_chunks(model, prompt, args, gen)
    for chunk in chunks:
        sys.stdout.write(chunk)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def _guided_chunks(
    model: ByteLM, prompt: bytes, args: argparse.Namespace, gen: torch.Generator
) -> Iterator[str]:
    from netprism.lm.guided import compile_schema, stream_guided

    try:
        schema = load_json(args.schema)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"cannot read schema file {str(args.schema)!r}: {err}") from err
    if not isinstance(schema, dict):
        raise ValueError(
            f"schema file {str(args.schema)!r} holds a JSON {type(schema).__name__}, expected "
            "an object (a JSON Schema)"
        )
    try:  # before any byte is printed
        automaton = compile_schema(schema)
    except RecursionError:
        raise ValueError(f"schema file {str(args.schema)!r} is nested too deeply") from None
    return stream_guided(
        model,
        prompt,
        automaton,
        max_bytes=args.max_bytes,
        temperature=args.temperature,
        top_k=args.top_k,
        generator=gen,
    )


def _free_chunks(
    model: ByteLM, prompt: bytes, args: argparse.Namespace, gen: torch.Generator
) -> Iterator[str]:
    """Stream sampled bytes, decoding UTF-8 incrementally."""
    import codecs

    from netprism.lm.model import sample_next

    ctx = model.config.context
    if len(prompt) + args.max_bytes > ctx:
        raise ValueError(
            f"prompt of {len(prompt)} bytes + --max-bytes {args.max_bytes} is longer than the "
            f"model's context of {ctx}"
        )
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    idx = torch.tensor([list(prompt)], dtype=torch.long, device=model.embed.weight.device)
    with torch.no_grad():
        cache = model.new_cache(1)
        logits = model(idx, cache=cache, last_only=True)[:, -1]
        for step in range(args.max_bytes):
            nxt = sample_next(logits, temperature=args.temperature, top_k=args.top_k, generator=gen)
            text = decoder.decode(bytes([int(nxt)]))
            if text:
                yield text
            if step + 1 < args.max_bytes:
                logits = model(nxt, cache=cache)[:, -1]
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail


def _adapt(args: argparse.Namespace) -> int:
    from netprism.lm import evaluate_bpb, stdlib_corpus, train_lm
    from netprism.lm.lora import add_lora, save_lora, trainable_fraction

    model = _load(args.model, None)
    heldout = _trained_heldout(args.model)
    package = args.package or heldout
    if package.replace(".", "/").strip("/") != heldout:
        raise ValueError(
            f"--package {package!r} was in the model's training data; adapt to the package it "
            f"held out ({heldout!r}) or train a model with --heldout-package {package}"
        )
    _check_adapter_out(args.out, args.overwrite)
    ensure_writable_dir(args.out.parent)
    corpus = stdlib_corpus(heldout_package=package)
    ctx = model.config.context
    half = corpus.heldout.size // 2
    fit_part, test_part = corpus.heldout[:half], corpus.heldout[half:]
    before = evaluate_bpb(model, test_part, ctx, 16, 12345)
    add_lora(model, rank=args.rank, alpha=args.alpha, seed=args.seed)
    print(f"adapting to {package!r}: {trainable_fraction(model):.1%} of parameters trainable")
    train_lm(
        model,
        fit_part,
        steps=args.steps,
        batch_size=args.batch_size,
        context=ctx,
        lr=args.lr,
        seed=args.seed,
        weight_decay=0.0,
    )
    after = evaluate_bpb(model, test_part, ctx, 16, 12345)
    path = save_lora(model, args.out)
    print(f"{package}: {before:.3f} -> {after:.3f} bpb; adapter {path} ({path.stat().st_size:,} B)")
    return 0


def _check_adapter_out(out: Path, overwrite: bool) -> None:
    """``--out`` of ``lm adapt``: a new file, or an adapter (replaced), or with ``overwrite``
    any file; never a folder or a path under a file."""
    from netprism.lm.lora import read_lora_header

    for path in out.parents:
        if path.exists() and not path.is_dir():
            raise ValueError(f"--out {str(out)!r} lies under {str(path)!r}, which is a file")
    if out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a folder; expected an adapter file path")
    if out.exists() and not overwrite:
        try:
            read_lora_header(out)
        except (ValueError, RecursionError):
            raise ValueError(
                f"--out {str(out)!r} exists and is not a LoRA adapter; choose another path or "
                "pass --overwrite"
            ) from None


def _trained_heldout(model_dir: Path) -> str:
    meta_path = model_dir / "train.json"
    if not meta_path.is_file():
        return "email"
    try:
        meta: Any = load_json(meta_path)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"cannot read {str(meta_path)!r}: {err}") from err
    package = meta.get("heldout_package", "email") if isinstance(meta, dict) else None
    if not isinstance(package, str):
        raise ValueError(f"{str(meta_path)!r}: expected an object with a 'heldout_package' name")
    return package
