"""JSON strings under a character DFA and a length range counted in characters.

A character is written in exactly one way, so the bytes decide the characters: printable
ASCII but ``"`` and ``\\`` as itself (and DEL), ``"`` and ``\\`` escaped (``\\"``, ``\\\\``),
other control characters as ``\\u00xx``, everything else as UTF-8.  The node's local state is
``-1`` (before the opening quote), ``-2`` (closed) or ``(q, n, pending)``: DFA state, characters
written (saturated at the largest bound that matters) and the bytes of a character begun.

JSON strings as RFC 8259 (section 7) writes them; part of the guided generation of arXiv
2507.13575.
"""

from __future__ import annotations

import heapq
from typing import Any

from netprism.lm.guided.errors import UnsupportedSchemaError
from netprism.lm.guided.nodes import INF, Node
from netprism.lm.guided.regex import DFA, CharSet, intersect

HEXDIG = b"0123456789abcdef"
_UTF8 = [(0x80, 0x7FF, 2), (0x800, 0xFFFF, 3), (0x10000, 0x10FFFF, 4)]
MAX_PRODUCT = 200_000


def enc_len(cp: int) -> int:
    if cp < 0x20:
        return 6
    if cp < 0x80:
        return 2 if cp in (0x22, 0x5C) else 1
    return 2 if cp < 0x800 else 3 if cp < 0x10000 else 4


def encode(cp: int) -> bytes:
    """The one encoding of code point ``cp`` inside a JSON string."""
    if cp < 0x20:
        return b"\\u00" + bytes([HEXDIG[cp >> 4], HEXDIG[cp & 15]])
    if cp in (0x22, 0x5C):
        return b"\\" + bytes([cp])
    return chr(cp).encode("utf-8")


def _min_len(cs: CharSet) -> int:
    """Fewest bytes any character of ``cs`` takes."""
    classes = [
        (((0x20, 0x21), (0x23, 0x5B), (0x5D, 0x7F)), 1),
        (((0x22, 0x22), (0x5C, 0x5C), (0x80, 0x7FF)), 2),
        (((0x800, 0xFFFF),), 3),
        (((0x10000, 0x10FFFF),), 4),
        (((0, 0x1F),), 6),
    ]
    return next((n for ivs, n in classes if intersect(cs, ivs)), INF)


def prefix_chars(p: bytes) -> CharSet:
    """Code points whose encoding starts with ``p`` (``p`` non-empty)."""
    b0 = p[0]
    if b0 == 0x5C:
        if len(p) == 1:
            return ((0, 0x1F), (0x22, 0x22), (0x5C, 0x5C))
        if p[1] in (0x22, 0x5C):
            return ((p[1], p[1]),) if len(p) == 2 else ()
        if p[1] != 0x75 or len(p) > 6 or p[2:4] != b"00"[: len(p) - 2]:
            return ()
        if len(p) <= 4:
            return ((0, 0x1F),)
        hi = p[4] - 0x30
        if hi not in (0, 1):
            return ()
        if len(p) == 5:
            return ((hi * 16, hi * 16 + 15),)
        lo = HEXDIG.find(p[5])
        return ((hi * 16 + lo,) * 2,) if lo >= 0 else ()
    if b0 < 0x80:
        return ((b0, b0),) if len(p) == 1 and b0 >= 0x20 and b0 not in (0x22, 0x5C) else ()
    n = 2 if 0xC2 <= b0 <= 0xDF else 3 if 0xE0 <= b0 <= 0xEF else 4 if 0xF0 <= b0 <= 0xF4 else 0
    if not n or len(p) > n or any(not 0x80 <= c <= 0xBF for c in p[1:]):
        return ()
    lo = int.from_bytes(p + b"\x80" * (n - len(p)), "big")
    hi = int.from_bytes(p + b"\xbf" * (n - len(p)), "big")
    lo_cp, hi_cp = _decode(lo.to_bytes(n, "big")), _decode(hi.to_bytes(n, "big"))
    bounds = {2: (0x80, 0x7FF), 3: (0x800, 0xFFFF), 4: (0x10000, 0x10FFFF)}[n]
    lo_cp, hi_cp = max(lo_cp, bounds[0]), min(hi_cp, bounds[1])
    if lo_cp > hi_cp:
        return ()
    out = [(lo_cp, min(hi_cp, 0xD7FF)), (max(lo_cp, 0xE000), hi_cp)]
    return tuple((a, b) for a, b in out if a <= b)


def _decode(data: bytes) -> int:
    n = len(data)
    cp = data[0] & (0x7F >> n)
    for c in data[1:]:
        cp = (cp << 6) | (c & 0x3F)
    return cp


_LEAD_OF = [(0x80, 0x7FF), (0x800, 0xD7FF), (0xE000, 0xFFFF), (0x10000, 0x10FFFF)]


def _first_bytes(moves: list[tuple[int, int, int]]) -> list[int]:
    """Bytes that may open a character of one of the ``moves`` intervals (a superset)."""
    out: set[int] = set()
    for lo, hi, _ in moves:
        out.update(b for b in range(max(lo, 0x20), min(hi, 0x7F) + 1) if b not in (0x22, 0x5C))
        if intersect(((lo, hi),), ((0, 0x1F), (0x22, 0x22), (0x5C, 0x5C))):
            out.add(0x5C)
        for a, z in _LEAD_OF:
            lo2, hi2 = max(lo, a), min(hi, z)
            if lo2 <= hi2:
                out.update(range(chr(lo2).encode()[0], chr(hi2).encode()[0] + 1))
    return sorted(out)


class StrNode(Node):
    """A JSON string in the language of ``dfa`` with ``lo <= characters <= hi`` (hi may be INF)."""

    start = -1

    def __init__(self, dfa: DFA, lo: int, hi: int, path: str) -> None:
        self.dfa, self.lo, self.hi = dfa, lo, hi
        self.cap = hi if hi < INF else lo  # counts above cap are all alike
        if len(dfa.trans) * (self.cap + 1) > MAX_PRODUCT:
            raise UnsupportedSchemaError(
                f"string at {path}: {len(dfa.trans)} pattern states x length bound {self.cap} "
                "is too large to compile"
            )
        self.dist = self._distances()
        self.memo: dict[Any, int] = {}

    def _sat(self, n: int) -> int:
        return min(n, self.cap) if self.hi >= INF else n

    def _distances(self) -> dict[tuple[int, int], int]:
        """Fewest bytes from ``(q, n)`` (no pending bytes) to the closing quote, included."""
        rev: list[list[tuple[int, int]]] = [[] for _ in self.dfa.trans]
        for q, row in enumerate(self.dfa.trans):
            for lo, hi, t in row:
                rev[t].append((q, _min_len(((lo, hi),))))
        dist: dict[tuple[int, int], int] = {}
        heap = [
            (1, q, n) for q in self.dfa.accept for n in range(self.lo, min(self.hi, self.cap) + 1)
        ]
        heapq.heapify(heap)
        while heap:
            d, q, n = heapq.heappop(heap)
            if (q, n) in dist:
                continue
            dist[(q, n)] = d
            preds = [n - 1] if n > 0 else []
            if self.hi >= INF and n == self.cap:
                preds.append(n)  # saturated: a character may keep the count at cap
            for pq, cost in rev[q]:
                for pn in preds:
                    if pn >= 0 and (pq, pn) not in dist and cost < INF:
                        heapq.heappush(heap, (d + cost, pq, pn))
        return dist

    def _chars(self, q: int, n: int) -> list[tuple[int, int, int]]:
        """Transitions ``(lo, hi, target)`` from ``q`` that can still finish after one char."""
        if n >= self.hi:
            return []
        m = self._sat(n + 1)
        return [(lo, hi, t) for lo, hi, t in self.dfa.trans[q] if (t, m) in self.dist]

    def step(self, local: Any) -> dict[int, Any]:
        if local == -1:
            return {0x22: (0, 0, b"")} if (0, 0) in self.dist else {}
        if local == -2:
            return {}
        q, n, pend = local
        out: dict[int, Any] = {}
        if not pend and q in self.dfa.accept and self.lo <= n <= self.hi:
            out[0x22] = -2
        moves = self._chars(q, n)
        if not moves:
            return out
        for b in range(0x80, 0xC0) if pend else _first_bytes(moves):
            p = pend + bytes([b])
            cs = prefix_chars(p) if pend or b >= 0x80 or b == 0x5C else ((b, b),)
            for lo, hi, t in moves:
                hit = intersect(cs, ((lo, hi),))
                if not hit:
                    continue
                cp = hit[0][0]
                if len(cs) == 1 and cs[0][0] == cs[0][1] and len(p) == enc_len(cp):
                    out[b] = (t, self._sat(n + 1), b"")
                else:
                    out[b] = (q, n, p)
                break
        if pend[:1] == b"\\":  # inside an escape: the next byte is ASCII
            for b in range(0x20, 0x7F):
                cs = prefix_chars(pend + bytes([b]))
                for lo, hi, t in moves if cs else ():
                    hit = intersect(cs, ((lo, hi),))
                    if hit:
                        done = (
                            len(cs) == 1
                            and cs[0][0] == cs[0][1]
                            and len(pend) + 1 == enc_len(hit[0][0])
                        )
                        out[b] = (t, self._sat(n + 1), b"") if done else (q, n, pend + bytes([b]))
                        break
        return out

    def rem(self, local: Any) -> int:
        if local == -2:
            return 0
        if local == -1:
            return 1 + self.dist.get((0, 0), INF)
        q, n, pend = local
        if not pend:
            return self.dist.get((q, n), INF)
        hit = self.memo.get(local)
        if hit is None:
            hit = min((1 + self.rem(nxt) for nxt in self.step(local).values()), default=INF)
            self.memo[local] = hit
        return hit
