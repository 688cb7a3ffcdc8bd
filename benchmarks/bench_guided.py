"""Guided generation: allowed-byte mask throughput (netprism vs outlines-core) and mask overhead
per decoded byte against a ByteLM step.

"Apple Intelligence Foundation Language Models: Tech Report 2025" (arXiv 2507.13575), guided
generation in the Foundation Models framework.  Both libraries follow the *same* random walks
(drawn once from our automaton) over a 256-entry byte vocabulary, one token per byte:

- **netprism**: :class:`netprism.lm.guided.schema.SchemaAutomaton`; per step ``mask(state)`` (a
  cached BoolTensor (256,)) then ``advance``.  *cold* = fresh automaton (every state compiled on
  first sight), *warm* = the best of three replays of the same walks (per-state caches hit).
- **outlines-core** 0.2.x: ``Index`` built from the exact regular expression of our compact
  language (integer ranges enumerated; same regex as the cross-check test), then per step
  ``Guide.write_mask_into`` (its bitmask fast path) and ``Guide.advance(b, return_tokens=False)``.
  Best of three passes; index construction is reported separately.  xgrammar is skipped: it
  needs transformers and triton, which this CPU environment does not have.

The overhead rows run :func:`netprism.lm.guided.decode.mask_overhead` with an untrained ByteLM
(d_model 128, 8 layers, context 256) and report mask + automaton time per decoding step against
the one-byte cached forward pass, for 1 and 8 rows.

**Suite** (``--suite``; ``make guided-suite`` first): every object schema of the draft-7
JSON-Schema-Test-Suite, per keyword file: accepted by netprism (``compile_schema``) and by
outlines-core (``json_schema.build_regex_from_schema`` then ``Index`` over the byte vocabulary);
compile time per schema; the validity rate of random walks (uniform over the allowed bytes, the
limit of an untrained model) under each library's constraint, checked by
``jsonschema.Draft7Validator`` with format checks.  netprism walks close within their budget
(``min_close + 40`` bytes); outlines-core has no budget, so a walk still open after
``--max-bytes`` bytes counts as invalid, and is reported apart from closed outputs that the
validator rejects (those are listed per keyword file).

Run::

    .venv/bin/python benchmarks/bench_guided.py            # ~1 min
    .venv/bin/python benchmarks/bench_guided.py --quick
    .venv/bin/python benchmarks/bench_guided.py --suite    # several minutes
    .venv/bin/python benchmarks/bench_guided.py --suite --quick  # 30 schemas, 5 walks each
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "lm"))

from netprism.lm.guided.decode import mask_overhead  # noqa: E402
from netprism.lm.guided.schema import END, compile_schema  # noqa: E402
from netprism.lm.model import ByteLM, LMConfig  # noqa: E402


def _obj(**p):
    return {"type": "object", "properties": p, "required": list(p)}


SCHEMAS = {
    "person": _obj(
        name={"type": "string", "minLength": 1, "maxLength": 20},
        age=_obj(years={"type": "integer", "minimum": 0, "maximum": 120}),
        tags={"type": "array", "items": {"enum": ["a", "bb", "ccc"]}, "maxItems": 4},
        ok={"type": "boolean"},
    ),
    "int-array": {
        "type": "array",
        "items": {"type": "integer", "minimum": -250, "maximum": 250},
        "minItems": 1,
        "maxItems": 8,
    },
    "nested": _obj(
        rows={
            "type": "array",
            "items": _obj(k={"enum": ["x", "y"]}, v={"type": "string", "maxLength": 6}),
            "maxItems": 3,
        }
    ),
}


def _walks(schema, n, seed):
    a, rng, walks = compile_schema(schema), random.Random(seed), []
    for _ in range(n):
        s, out = a.initial, []
        while not a.is_done(s):
            choices = [b for b in a.allowed_bytes(s) if b != END]
            if not choices:
                break
            out.append(rng.choice(choices))
            s = a.advance(s, out[-1])
        walks.append(out)
    return walks


def _ours(schema, walks):
    a = compile_schema(schema)
    times = []
    for _ in range(4):  # cold, then three warm replays
        t0, n = time.perf_counter(), 0
        for w in walks:
            s = a.initial
            for b in w:
                a.mask(s)
                s = a.advance(s, b)
                n += 1
        times.append(n / (time.perf_counter() - t0))
    return times[0], max(times[1:])


def _outlines(schema, walks):
    import outlines_core as oc
    from test_guided import _regex

    vocab = oc.Vocabulary(256, {bytes([b]): [b] for b in range(256)})
    t0 = time.perf_counter()
    index = oc.Index(_regex(schema), vocab)
    build = time.perf_counter() - t0
    bits = torch.zeros((257 + 31) // 32, dtype=torch.int32)
    rates = []
    for _ in range(3):
        t0, n = time.perf_counter(), 0
        for w in walks:
            g = oc.Guide(index)
            for b in w:
                g.write_mask_into(bits.data_ptr(), bits.numel(), 4)
                g.advance(b, return_tokens=False)
                n += 1
        rates.append(n / (time.perf_counter() - t0))
    return max(rates), build


def _outlines_walk(index, vocab_eos: int, max_bytes: int, rng: random.Random) -> bytes | None:
    """A uniform walk on outlines-core's guide; None if still open after ``max_bytes``."""
    import outlines_core as oc

    g, out = oc.Guide(index), bytearray()
    while len(out) < max_bytes:
        tokens = list(g.get_tokens())
        if not tokens:
            return None
        t = rng.choice(tokens)
        if t == vocab_eos:
            return bytes(out)
        out.append(t)
        g.advance(t, return_tokens=False)
    return None


def _valid(validator, data: bytes | None) -> bool:
    import json

    if data is None:
        return False
    try:
        return validator.is_valid(json.loads(data.decode("utf-8")))
    except ValueError:
        return False


def suite(quick: bool, walks: int, max_bytes: int) -> None:
    """Coverage, compile time and sample validity on the draft-7 suite, ours vs outlines-core."""
    import json

    import jsonschema
    from guided_suite import compile_all, format_checker, load_suite, walk

    cases, source = load_suite()
    if quick:
        cases = cases[:: max(len(cases) // 30, 1)]
    print(f"\n{source}; {len(cases)} used, {walks} walks per accepted schema")
    t0 = time.perf_counter()
    ours, _ = compile_all(cases)
    ours_s = (time.perf_counter() - t0) / len(cases)
    try:
        import outlines_core as oc
    except ImportError as e:
        oc = None
        print(f"(outlines-core unavailable: {e})")
    vocab = oc.Vocabulary(256, {bytes([b]): [b] for b in range(256)}) if oc else None
    theirs: dict[int, Any] = {}
    their_s: list[float] = []
    for i, c in enumerate(cases):
        if oc is None:
            break
        t1 = time.perf_counter()
        try:
            regex = oc.json_schema.build_regex_from_schema(
                json.dumps(c.schema), whitespace_pattern=""
            )
            theirs[i] = oc.Index(regex, vocab)
        except Exception:  # noqa: BLE001 -- any refusal counts as not covered
            continue
        finally:
            their_s.append(time.perf_counter() - t1)
    per: dict[str, list[int]] = {}
    valid = {"ours": [0, 0], "outlines": [0, 0]}
    still_open, rejected = 0, Counter[str]()
    rng = random.Random(0)
    for i, c in enumerate(cases):
        row = per.setdefault(c.file, [0, 0, 0])
        row[0] += i in ours
        row[1] += i in theirs
        row[2] += 1
        v = jsonschema.Draft7Validator(c.schema, format_checker=format_checker())
        if i in ours:
            a = ours[i]
            budget = a.min_close(a.initial) + 40
            for _ in range(walks):
                valid["ours"][0] += _valid(v, walk(a, budget, rng))
                valid["ours"][1] += 1
        if i in theirs:
            for _ in range(walks):
                out = _outlines_walk(theirs[i], 256, max_bytes, rng)
                ok = _valid(v, out)
                valid["outlines"][0] += ok
                valid["outlines"][1] += 1
                still_open += out is None
                rejected[c.file] += out is not None and not ok
    print(f"{'keyword file':<26} {'netprism':>9} {'outlines':>9} {'of':>4}")
    for name, (a, b, n) in sorted(per.items()):
        print(f"{name:<26} {a:>9} {b:>9} {n:>4}")
    n = len(cases)
    print(
        f"{'total':<26} {len(ours):>9} {len(theirs):>9} {n:>4}   "
        f"({100 * len(ours) / n:.1f} % vs {100 * len(theirs) / n:.1f} %)"
    )
    for lib, (ok, tot) in valid.items():
        print(f"valid samples {lib:<9} {ok}/{tot} ({100 * ok / max(tot, 1):.1f} %)")
    shown = ", ".join(f"{k} {n}" for k, n in sorted(rejected.items()) if n)
    print(
        f"outlines-core: {still_open} walks still open after {max_bytes} bytes; closed but "
        f"rejected by the validator: {sum(rejected.values())} ({shown or 'none'})"
    )
    mean_theirs = sum(their_s) / max(len(their_s), 1)
    print(
        f"compile per schema: netprism {ours_s * 1e3:.1f} ms, outlines-core regex+index "
        f"{mean_theirs * 1e3:.1f} ms (max {max(their_s, default=0) * 1e3:.0f} ms)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--suite", action="store_true", help="only the draft-7 suite comparison")
    ap.add_argument("--walks", type=int, default=20, help="walks per accepted suite schema")
    ap.add_argument("--max-bytes", type=int, default=256, help="cap on an outlines-core walk")
    args = ap.parse_args()
    if args.suite:
        torch.set_num_threads(args.threads)
        suite(args.quick, 5 if args.quick else args.walks, args.max_bytes)
        return
    n_walks, repeats = (20, 1) if args.quick else (100, 3)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {n_walks} walks/schema")
    print(
        f"{'schema':<10} {'ours cold':>12} {'ours warm':>12} {'outlines':>12} {'index build':>12}"
    )
    for name, schema in SCHEMAS.items():
        walks = _walks(schema, n_walks, seed=0)
        cold, warm = _ours(schema, walks)
        try:
            theirs, build = _outlines(schema, walks)
            peer = f"{theirs:12.0f} {build * 1e3:10.1f}ms"
        except ImportError as e:
            peer = f"  (outlines-core unavailable: {e})"
        print(f"{name:<10} {cold:12.0f} {warm:12.0f} {peer}   masks/s")

    torch.manual_seed(0)
    model = ByteLM(LMConfig(context=256, n_layers=8, d_model=128)).eval()
    print("\nmask overhead per decoding step (us), ByteLM d_model=128 n_layers=8, 120 bytes")
    head = ["schema", "rows", "cold mask", "warm mask", "model step", "cold %", "warm %"]
    print(f"{head[0]:<10} {head[1]:>4}" + "".join(f"{h:>11}" for h in head[2:]))
    for name, schema in SCHEMAS.items():
        for rows in (1, 8):
            runs = [
                mask_overhead(model, "json: ", schema, max_bytes=120, num_samples=rows)
                for _ in range(repeats)
            ]  # shared CPU: keep the least disturbed (minimum) of each column
            o = {k: min(r[k] for r in runs) for k in runs[0]}
            vals = [o[k] for k in ("cold_mask_us", "warm_mask_us", "model_us")]
            pct = [o["cold_pct"], o["warm_pct"]]
            print(
                f"{name:<10} {rows:>4}"
                + "".join(f"{v:11.1f}" for v in vals)
                + "".join(f"{p:10.2f}%" for p in pct)
            )


if __name__ == "__main__":
    main()
