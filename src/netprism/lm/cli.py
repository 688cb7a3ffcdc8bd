"""``netprism lm``: train the byte-level LM, generate from it (optionally schema-guided), adapt it.

"Apple Intelligence Foundation Language Models: Tech Report 2025" (arXiv 2507.13575).

::

    netprism lm train --out runs/lm --steps 2000 --kv-share 0.375
    netprism lm generate --model runs/lm --prompt "def main(" --max-bytes 100
    netprism lm generate --model runs/lm --prompt "person: " --schema person.json --max-bytes 64
    netprism lm adapt --model runs/lm --package email --out runs/lm/email.lora.safetensors
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from netprism.io import ensure_writable_dir
from netprism.lm.model import ByteLM


def main(argv: Sequence[str]) -> int:
    """Run ``netprism lm ...``; returns the exit status (errors raise ``ValueError``)."""
    parser = _parser()
    args = parser.parse_args(list(argv))
    if args.action is None:
        parser.print_help()
        return 2
    return int(args.handler(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netprism lm", description="The tiny on-device-style byte language model."
    )
    sub = parser.add_subparsers(dest="action")
    t = sub.add_parser("train", help="train on the Python standard library's sources")
    t.add_argument("--out", type=Path, required=True, help="folder for weights + config")
    t.add_argument("--steps", type=int, default=1000)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--context", type=int, default=128)
    t.add_argument("--d-model", type=int, default=64)
    t.add_argument("--n-layers", type=int, default=8)
    t.add_argument("--n-heads", type=int, default=4)
    t.add_argument("--n-kv-heads", type=int, default=2)
    t.add_argument("--kv-share", type=float, default=0.0, help="0.375 for AFM's 5:3 split")
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--corpus-bytes", type=int, default=None, help="cap per split")
    t.add_argument("--heldout-package", default="email")
    t.add_argument("--log-every", type=int, default=100)
    t.set_defaults(handler=_train)

    g = sub.add_parser("generate", help="sample bytes; --schema forces valid JSON")
    g.add_argument("--model", type=Path, required=True)
    g.add_argument("--adapter", type=Path, default=None, help="a LoRA file from `lm adapt`")
    g.add_argument("--prompt", default="", help="an empty prompt is a newline")
    g.add_argument("--max-bytes", type=int, default=None, help="default: what the context leaves")
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument("--top-k", type=int, default=None)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--schema", type=Path, default=None, help="JSON-Schema file (subset)")
    g.set_defaults(handler=_generate)

    a = sub.add_parser("adapt", help="train a LoRA adapter on a held-out stdlib package")
    a.add_argument("--model", type=Path, required=True)
    a.add_argument("--out", type=Path, required=True, help="adapter .safetensors file")
    a.add_argument("--package", default=None, help="default: the model's held-out package")
    a.add_argument("--rank", type=int, default=4)
    a.add_argument("--alpha", type=float, default=8.0)
    a.add_argument("--steps", type=int, default=300)
    a.add_argument("--lr", type=float, default=1e-3)
    a.add_argument("--batch-size", type=int, default=16)
    a.add_argument("--seed", type=int, default=0)
    a.set_defaults(handler=_adapt)
    return parser


def _train(args: argparse.Namespace) -> int:
    from netprism.lm import ByteLM, LMConfig, save_lm, stdlib_corpus, train_lm

    ensure_writable_dir(args.out)
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
    from netprism.lm.guided import stream_guided

    try:
        schema = json.loads(args.schema.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read schema file {args.schema}: {err}") from err
    return stream_guided(
        model,
        prompt,
        schema,
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


def _trained_heldout(model_dir: Path) -> str:
    meta = model_dir / "train.json"
    if meta.is_file():
        return str(json.loads(meta.read_text(encoding="utf-8")).get("heldout_package", "email"))
    return "email"
