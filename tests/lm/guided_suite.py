"""The JSON-Schema-Test-Suite (draft 7) for guided generation: loader, random walks, checks.

``make guided-suite`` unpacks ``json/tests/draft7/`` of the ``jsonschema`` sdist into
:data:`SUITE_DIR`; without it :func:`load_suite` falls back to :data:`BUILTIN` (a small subset
of our own) and says so.  Used by ``tests/lm/test_guided_conformance.py`` and
``benchmarks/bench_guided.py``.
"""

from __future__ import annotations

import datetime
import json
import os
import random
import re
import uuid
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import torch

from netprism.lm.guided.schema import END, UnsupportedSchemaError, compile_schema

ROOT = Path(__file__).resolve().parents[2]
SUITE_DIR = Path(
    os.environ.get("NETPRISM_JSON_SUITE", ROOT / ".cache" / "jsonschema-suite" / "draft7")
)

BUILTIN: dict[str, list[Any]] = {
    "type": [
        {"type": "integer"},
        {"type": "number"},
        {"type": "null"},
        {"type": ["array", "object"]},
    ],
    "enum": [{"enum": [6, "foo", [], True, {"foo": 12}]}, {"enum": [False]}],
    "const": [{"const": {"foo": "bar", "baz": "bax"}}, {"const": -2.0}],
    "properties": [{"properties": {"foo": {"type": "integer"}, "bar": {"type": "string"}}}],
    "required": [{"properties": {"foo": {}, "bar": {}}, "required": ["foo"]}],
    "additionalProperties": [
        {"properties": {"foo": {}}, "additionalProperties": {"type": "boolean"}}
    ],
    "anyOf": [{"anyOf": [{"type": "integer"}, {"minimum": 2}]}],
    "oneOf": [{"oneOf": [{"type": "integer"}, {"minimum": 2}]}],
    "allOf": [{"allOf": [{"maximum": 30}, {"minimum": 20}]}],
    "ref": [{"properties": {"foo": {"$ref": "#"}}, "additionalProperties": False}],
    "pattern": [{"pattern": "^a*$"}, {"pattern": "a+"}],
    "format": [{"format": "date"}, {"format": "ipv4"}, {"format": "uri"}],
    "multipleOf": [{"multipleOf": 1.5}, {"multipleOf": 0.0001}],
    "uniqueItems": [
        {"items": [{"type": "boolean"}] * 2, "uniqueItems": True, "additionalItems": False}
    ],
    "not": [{"not": {"type": "integer"}}],
}


@dataclass
class Case:
    file: str  # keyword file of the suite, e.g. "anyOf"
    description: str
    schema: Any


def load_suite(include_optional: bool = False) -> tuple[list[Case], str]:
    """Every object schema of the draft-7 suite (or the built-in subset) and where it came from."""
    if not SUITE_DIR.is_dir():
        cases = [
            Case(k, f"builtin {k} {i}", s) for k, ss in BUILTIN.items() for i, s in enumerate(ss)
        ]
        return (
            cases,
            f"built-in subset of {len(cases)} schemas "
            f"({SUITE_DIR} missing: run `make guided-suite`)",
        )
    files = sorted(SUITE_DIR.glob("**/*.json" if include_optional else "*.json"))
    cases = []
    for f in files:
        name = str(f.relative_to(SUITE_DIR).with_suffix(""))
        for group in json.loads(f.read_text()):
            if isinstance(group["schema"], dict):
                cases.append(Case(name, group["description"], group["schema"]))
    return cases, f"JSON-Schema-Test-Suite draft 7 at {SUITE_DIR}: {len(cases)} object schemas"


def refusal_keyword(err: Exception) -> str:
    """The first quoted keyword of a refusal message (``'pattern'``), else ``other``."""
    m = re.search(r"'([$A-Za-z][A-Za-z-]*)'", str(err))
    return m.group(1) if m else "other"


def compile_all(cases: list[Case]) -> tuple[dict[int, Any], Counter[str]]:
    """Automata of the accepted schemas (by case index) and refusals counted by keyword."""
    accepted, refused = {}, Counter()
    for i, case in enumerate(cases):
        try:
            accepted[i] = compile_schema(case.schema)
        except UnsupportedSchemaError as e:
            refused[refusal_keyword(e)] += 1
    return accepted, refused


def coverage_table(cases: list[Case], accepted: dict[int, Any]) -> str:
    per: dict[str, list[int]] = {}
    for i, c in enumerate(cases):
        per.setdefault(c.file, [0, 0])
        per[c.file][0] += i in accepted
        per[c.file][1] += 1
    rows = [f"  {k:<28} {a:>3}/{t:<3}" for k, (a, t) in sorted(per.items())]
    return "\n".join(rows)


def walk(a: Any, budget: int, rng: random.Random) -> bytes:
    """One output: uniform choices over the bytes allowed under the budget (like an untrained
    model's near-uniform logits), stopping at END or when done."""
    s, out = a.initial, bytearray()
    while not a.is_done(s):
        left = torch.tensor([budget - len(out)])
        allowed = a.batch_masks([s], left)[0].nonzero().flatten().tolist()
        if not allowed:
            assert a.is_accepting(s) and len(out) == budget, (bytes(out), budget)
            break
        b = rng.choice(allowed)
        s = a.advance(s, b)
        if b == END:
            break
        out.append(b)
    assert a.is_accepting(s)
    return bytes(out)


def bfs_close(a: Any, state: Any, limit: int | None = None) -> int:
    """Fewest bytes from ``state`` to an accepting state, by breadth-first search (the check
    of ``min_close``); ``limit`` caps how many states are visited."""
    seen, q = {state}, deque([(state, 0)])
    while q:
        s, d = q.popleft()
        if a.is_accepting(s):
            return d
        for b in a.allowed_bytes(s):
            n = a.advance(s, b)
            if n not in seen and (limit is None or len(seen) < limit):
                seen.add(n)
                q.append((n, d + 1))
    raise AssertionError("no completion")


def _time(s: str) -> bool:
    m = re.fullmatch(r"(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", s)
    if not m:
        return False
    datetime.time.fromisoformat(s.replace("Z", "+00:00"))  # raises on a bad hour/minute/offset
    return True


def _date_time(s: str) -> bool:
    date, sep, time = s.partition("T")
    return bool(sep) and _time(time) and datetime.date.fromisoformat(date) is not None


def _uuid(s: str) -> bool:
    return len(s) == 36 and str(uuid.UUID(s)) == s.lower()


def _date(s: str) -> bool:
    return bool(re.fullmatch(r"\d{4}-\d\d-\d\d", s)) and bool(datetime.date.fromisoformat(s))


def format_checker() -> jsonschema.FormatChecker:
    """Draft-7 checks plus strict ones for formats whose checker needs an extra package
    (a format constrains strings only)."""
    fc = jsonschema.FormatChecker()
    for name, fn in (("time", _time), ("date-time", _date_time), ("uuid", _uuid), ("date", _date)):
        fc.checks(name, raises=ValueError)(lambda v, fn=fn: not isinstance(v, str) or fn(v))
    return fc


def invalid_samples(schema: Any, a: Any, n: int, extra: int, seed: int) -> tuple[list[bytes], int]:
    """Draw ``n`` walks with a budget of ``min_close + extra``; the invalid ones and the budget."""
    validator = jsonschema.Draft7Validator(schema, format_checker=format_checker())
    budget = a.min_close(a.initial) + extra
    rng, bad = random.Random(seed), []
    for _ in range(n):
        out = walk(a, budget, rng)
        if len(out) > budget or not validator.is_valid(json.loads(out.decode("utf-8"))):
            bad.append(out)
    return bad, budget
