"""Compare the ``result.json`` files of two reproduce folders, number for number.

Used to show that a refactoring changes no result: run every experiment at fixed seeds from
two checkouts into two folders, then::

    python tools/compare_results.py BEFORE_DIR AFTER_DIR [NAME ...]

Every metric and baseline value (numbers, strings, lists) is compared exactly (NaN equals
NaN), except timing keys (seconds, milliseconds, rates; see :func:`is_timing`), which differ
from run to run.  Claims are compared
by id on ``measured``, ``target`` and ``holds``, except the timing claims (``TIMING_CLAIMS``:
a ratio of wall-clock times), which must only be present on both sides; the figure lists by
name.  Prints one Markdown
row per experiment and exits 1 if any compared value differs.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# A key is a wall-clock quantity when one of its words is one of these (words: split on "_",
# ".", spaces and punctuation), or it holds "per s" (a rate) or "overhead pct" (a time ratio).
TIMING_WORDS = frozenset(
    {"second", "seconds", "ms", "us", "time", "latency", "throughput", "elapsed", "wall"}
)
TIMING_PAIRS = (("per", "s"), ("overhead", "pct"))

# Claims whose measured value is a ratio of wall-clock times (differs from run to run).
TIMING_CLAIMS = ("fz_cost",)


@dataclass
class Comparison:
    """How one experiment's two results compare."""

    name: str
    n_numbers: int = 0
    n_timing: int = 0
    differing: list[tuple[str, Any, Any]] = field(default_factory=list)
    claims_differing: list[str] = field(default_factory=list)
    timing_claims: list[str] = field(default_factory=list)
    figures_equal: bool = True
    missing: str = ""

    @property
    def identical(self) -> bool:
        return not (self.missing or self.differing or self.claims_differing) and self.figures_equal

    def row(self) -> str:
        if self.missing:
            return f"| {self.name} | {self.missing} | | | |"
        same = self.n_numbers - len(self.differing)
        verdict = "identical" if self.identical else "DIFFERS"
        return (
            f"| {self.name} | {same}/{self.n_numbers} | {self.n_timing} | "
            f"{len(self.claims_differing)} | {verdict} |"
        )


def flat_numbers(tree: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted key, value)`` for every leaf of nested dicts that is compared: numbers (not
    booleans), strings and lists, as they are."""
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from flat_numbers(value, name + ".")
        elif isinstance(value, (int, float, str, list)) and not isinstance(value, bool):
            yield name, float(value) if isinstance(value, int) else value


def is_timing(key: str) -> bool:
    """Whether ``key`` names a wall-clock quantity (never compared).

    >>> [is_timing(k) for k in ("fit_seconds", "prefill_ms", "b4_ig_real_mse", "msp_auroc")]
    [True, True, False, False]
    >>> [is_timing(k) for k in ("decode_tokens_per_s", "n_per_subpop", "timesteps")]
    [True, False, False]
    """
    words = [w for w in re.split(r"[^a-z0-9]+", key.lower()) if w]
    pairs = set(zip(words, words[1:]))
    return bool(TIMING_WORDS.intersection(words)) or any(p in pairs for p in TIMING_PAIRS)


def _same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN, lists element by element."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def compare_results(name: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> Comparison:
    """Compare two loaded ``result.json`` dicts of experiment ``name``."""
    out = Comparison(name)
    a = dict(flat_numbers(before.get("metrics", {})))
    a |= dict(flat_numbers(before.get("baselines", {}), "baseline."))
    b = dict(flat_numbers(after.get("metrics", {})))
    b |= dict(flat_numbers(after.get("baselines", {}), "baseline."))
    for key in sorted(set(a) | set(b)):
        if is_timing(key):
            out.n_timing += 1
            continue
        out.n_numbers += 1
        if key not in a or key not in b or not _same(a[key], b[key]):
            out.differing.append((key, a.get(key), b.get(key)))
    claims_a = {c["id"]: c for c in before.get("claims", [])}
    claims_b = {c["id"]: c for c in after.get("claims", [])}
    for cid in sorted(set(claims_a) | set(claims_b)):
        ca, cb = claims_a.get(cid), claims_b.get(cid)
        if cid in TIMING_CLAIMS and ca is not None and cb is not None:
            out.timing_claims.append(cid)
            continue
        keys = ("measured", "target", "holds")
        if ca is None or cb is None or any(not _same(ca.get(k), cb.get(k)) for k in keys):
            out.claims_differing.append(cid)
    out.figures_equal = before.get("figures") == after.get("figures")
    return out


def compare_folders(before: Path, after: Path, names: Sequence[str] = ()) -> list[Comparison]:
    """Compare ``before/<name>/result.json`` with ``after/<name>/result.json`` for each name
    (default: every name with a result in ``before``)."""
    if not names:
        names = sorted(p.parent.name for p in before.glob("*/result.json"))
    rows = []
    for name in names:
        pa, pb = before / name / "result.json", after / name / "result.json"
        if not pa.exists() or not pb.exists():
            rows.append(
                Comparison(
                    name, missing=f"no result in {pa.parent if not pa.exists() else pb.parent}"
                )
            )
            continue
        rows.append(compare_results(name, json.loads(pa.read_text()), json.loads(pb.read_text())))
    return rows


def main(argv: Sequence[str]) -> int:
    if len(argv) < 2:
        print(__doc__)
        return 2
    rows = compare_folders(Path(argv[0]), Path(argv[1]), argv[2:])
    print("| experiment | numbers identical | timing keys skipped | claims differing | verdict |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(r.row())
    for r in rows:
        for key, x, y in r.differing[:10]:
            print(f"  {r.name}: {key}: {x!r} -> {y!r}")
        for cid in r.claims_differing:
            print(f"  {r.name}: claim {cid} differs")
        for cid in r.timing_claims:
            print(f"  {r.name}: claim {cid} is a timing ratio, not compared")
        if not r.figures_equal:
            print(f"  {r.name}: figure lists differ")
    return 0 if all(r.identical for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
