"""JSON numbers under ``minimum``/``maximum`` (inclusive or exclusive), ``multipleOf`` and
``integer``, decided digit by digit with exact rational arithmetic.

Outputs are ``-?(0|[1-9][0-9]*)(\\.[0-9]+)?`` (no exponent, no ``-0``) with at most
:data:`MAX_DIGITS` digits in all.  Fifteen digits keep every output exact as a binary double, so
a validator's float comparisons (``1.1 < 1.2``) and float division (``multipleOf``) agree
with the decimal arithmetic here; a bound is taken as the decimal its float prints as.
``multipleOf`` must be an integer or a dyadic fraction (``1.5``, ``0.25``): other fractions
(``0.1``) are not exact in binary floating point, where validators test them.

JSON numbers as RFC 8259 (section 6) writes them; part of the guided generation of arXiv
2507.13575.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from netprism.lm.guided.errors import UnsupportedSchemaError
from netprism.lm.guided.nodes import INF, Node

MAX_DIGITS = 15
INF_N = 10 ** (MAX_DIGITS + 2)  # above every magnitude written
Bound = tuple[Fraction, bool] | None  # (value, exclusive)


def as_fraction(v: Any, key: str, path: str) -> Fraction:
    """The exact decimal a schema number stands for (a float as it prints)."""
    finite = isinstance(v, int) or (isinstance(v, float) and math.isfinite(v))
    if isinstance(v, bool) or not finite:
        raise UnsupportedSchemaError(f"keyword {key!r} at {path} must be a number, got {v!r}")
    return Fraction(v) if isinstance(v, int) else Fraction(repr(float(v)))


def check_multiple(m: Fraction, path: str) -> Fraction:
    den = m.denominator
    if m <= 0 or den & (den - 1):
        raise UnsupportedSchemaError(
            f"unsupported keyword value 'multipleOf'={float(m)!r} at {path}: must be > 0 and an "
            "integer or a dyadic fraction (k/2^n); others are inexact in binary floating point"
        )
    return m


class NumberNode(Node):
    """Numbers in ``[lo, hi]`` (bounds may be exclusive or absent), multiples of ``mult``."""

    start = ""

    def __init__(self, lo: Bound, hi: Bound, mult: Fraction | None, integer: bool) -> None:
        self.lo, self.hi, self.mult, self.integer = lo, hi, mult, integer
        self.memo: dict[str, int] = {}
        self.lim: dict[tuple[bool, int], tuple[int, int, int]] = {}

    def _limits(self, neg: bool, g: int) -> tuple[int, int, int]:
        """``(a, b, step)``: valid ``(-)N / 10^g`` need ``a <= N <= b`` and ``step | N``."""
        key = (neg, g)
        hit = self.lim.get(key)
        if hit is not None:
            return hit
        scale, a, b = 10**g, (1 if neg else 0), INF_N
        for bound, upper in ((self.lo, False), (self.hi, True)):
            if bound is None:
                continue
            x, excl = bound[0] * scale, bound[1]
            if neg:  # -N/s >= lo  <=>  N <= -lo*s ;  -N/s <= hi  <=>  N >= -hi*s
                x, upper = -x, not upper
            if upper:
                b = min(b, (math.ceil(x) - 1) if excl else math.floor(x))
            else:
                a = max(a, (math.floor(x) + 1) if excl else math.ceil(x))
        step = 1
        if self.mult is not None:
            num = self.mult.numerator * scale
            step = num // math.gcd(num, self.mult.denominator)
        hit = self.lim[key] = (a, b, step)
        return hit

    def _range(self, neg: bool, a: int, b: int, g: int) -> bool:
        """Whether some ``N`` in ``[a, b]`` gives a valid ``(-)N / 10^g``."""
        lo, hi, step = self._limits(neg, g)
        a, b = max(a, lo), min(b, hi)
        return -(-a // step) * step <= b

    def _dist(self, p: str) -> int:
        hit = self.memo.get(p)
        if hit is None:
            hit = self.memo[p] = self._dist_uncached(p)
        return hit

    def _dist_uncached(self, p: str) -> int:
        neg = p.startswith("-")
        body = p[neg:]
        ip, dot, fp = body.partition(".")
        if (ip.startswith("0") and len(ip) > 1) or (dot and (not ip or self.integer)):
            return INF
        if len(ip) + len(fp) > MAX_DIGITS or not (ip + fp).isdigit() and (ip or fp):
            return INF
        best = 1 + self._dist("-") if not p else INF
        if dot:
            base = int(ip) * 10 ** len(fp) + int(fp or "0")
            for g in range(max(len(fp), 1), MAX_DIGITS - len(ip) + 1):
                k = 10 ** (g - len(fp))
                if self._range(neg, base * k, base * k + k - 1, g):
                    return min(best, g - len(fp))
            return best
        for j in range(0 if ip else 1, MAX_DIGITS - len(ip) + 1):
            if j >= best or (ip == "0" and j):
                break
            if ip:
                lo_i, hi_i = int(ip) * 10**j, int(ip) * 10**j + 10**j - 1
            else:
                lo_i, hi_i = (0, 9) if j == 1 else (10 ** (j - 1), 10**j - 1)
            fracs = [0] if self.integer else range(0, MAX_DIGITS - len(ip) - j + 1)
            for g in fracs:
                cost = j + (g + 1 if g else 0)
                if cost >= best:
                    break
                k = 10**g
                if self._range(neg, lo_i * k, hi_i * k + k - 1, g):
                    best = cost
        return best

    def step(self, p: str) -> dict[int, Any]:
        chars = "0123456789" + ("" if self.integer or "." in p else ".") + ("" if p else "-")
        return {ord(c): p + c for c in chars if self._dist(p + c) < INF}

    def rem(self, p: str) -> int:
        return self._dist(p)
