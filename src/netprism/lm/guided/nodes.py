"""The nodes of the guided-generation automaton: literals, strings, integer ranges, enums,
sequences and arrays, each with its byte transitions and exact minimum remaining length.

"Apple Intelligence Foundation Language Models: Tech Report 2025" (arXiv 2507.13575), guided
generation; compiled from a JSON-Schema subset by :mod:`netprism.lm.guided.schema`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

STRING_BYTES = frozenset(b for b in range(0x20, 0x7F) if b not in (0x22, 0x5C))
INF = 1 << 30


# ---------------------------------------------------------------- nodes (one per schema part)
class Node:
    start: Any = 0

    def step(self, local: Any) -> dict[int, Any]:  # consuming transitions
        return {}

    def expand(self, local: Any) -> list[tuple[tuple[int, Any], ...]]:  # epsilon moves
        return []

    def rem(self, local: Any) -> int:  # exact minimum bytes to finish this node
        return 0

    def can_end(self, local: Any) -> bool:  # complete here (every node's minimum length >= 1)
        return self.rem(local) == 0


class Lit(Node):
    def __init__(self, data: bytes) -> None:
        self.data = data

    def step(self, i: int) -> dict[int, Any]:
        return {self.data[i]: i + 1} if i < len(self.data) else {}

    def rem(self, i: int) -> int:
        return len(self.data) - i


class Str(Node):
    start = -1  # -1: before the opening quote; n >= 0: n chars written; -2: closed

    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi

    def step(self, n: int) -> dict[int, Any]:
        if n == -1:
            return {0x22: 0}
        if n == -2:
            return {}
        out: dict[int, Any] = dict.fromkeys(STRING_BYTES, n + 1) if n < self.hi else {}
        if n >= self.lo:
            out[0x22] = -2
        return out

    def rem(self, n: int) -> int:
        return 2 + self.lo if n == -1 else 0 if n == -2 else max(self.lo - n, 0) + 1


class IntRange(Node):
    start = ""

    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi
        self.width = max(len(str(abs(lo))), len(str(abs(hi))))
        self.memo: dict[str, int] = {}

    def _dist(self, p: str) -> int:
        """Fewest digits to append to ``p`` to reach an in-range integer (``INF`` if none)."""
        if p not in self.memo:
            self.memo[p] = self._dist_uncached(p)
        return self.memo[p]

    def _dist_uncached(self, p: str) -> int:
        if p in ("", "-"):
            return min(min(1 + self._dist(p + c) for c in "-0123456789"[bool(p) :]), INF)
        if p == "-0" or p.lstrip("-").startswith("0") and len(p.lstrip("-")) > 1:
            return INF
        neg, digits = p.startswith("-"), int(p.lstrip("-"))
        for j in range(1 if digits == 0 else self.width + 2):  # nothing follows a lone zero
            a, b = digits * 10**j, digits * 10**j + 10**j - 1  # p and then j more digits
            a, b = (-b, -a) if neg else (a, b)
            if a <= self.hi and b >= self.lo:
                return j
        return INF

    def step(self, p: str) -> dict[int, Any]:
        chars = "0123456789" if p else "-0123456789"
        return {ord(c): p + c for c in chars if self._dist(p + c) < INF}

    def rem(self, p: str) -> int:
        return self._dist(p)


class Trie(Node):
    """Enum over compact JSON encodings; with ``branches`` it is the tag of a tagged union."""

    start = b""

    def __init__(self, values: Sequence[bytes], branches: dict[bytes, int] | None = None) -> None:
        self.values, self.branches = frozenset(values), branches
        self.extra = dict.fromkeys(self.values, 0)  # bytes still needed after the value

    def step(self, p: bytes) -> dict[int, Any]:
        return {
            v[len(p)]: v[: len(p) + 1] for v in self.values if len(v) > len(p) and v[: len(p)] == p
        }

    def expand(self, p: bytes) -> list[tuple[tuple[int, Any], ...]]:
        if self.branches is not None and p in self.values:
            return [((self.branches[p], 0),)]
        return []

    def rem(self, p: bytes) -> int:
        return min(
            (len(v) - len(p) + self.extra[v] for v in self.values if v.startswith(p)), default=INF
        )


class Seq(Node):
    def __init__(
        self, node_id: int, parts: list[int], starts: list[Any], minlens: list[int]
    ) -> None:
        self.id, self.parts, self.starts = node_id, parts, starts
        self.tail = [sum(minlens[i:]) for i in range(len(parts) + 1)]

    def expand(self, i: int) -> list[tuple[tuple[int, Any], ...]]:
        if i >= len(self.parts):
            return []
        child = (self.parts[i], self.starts[i])
        return [(child,)] if i + 1 == len(self.parts) else [((self.id, i + 1), child)]

    def rem(self, i: int) -> int:
        return self.tail[i]


class ArrayNode(Node):
    start = (0, 0)  # (count, phase): 0 before "[", 1 after "[", 2 after item, 3 after ",", 4 done

    def __init__(
        self, node_id: int, item: tuple[int, Any], item_len: int, lo: int, hi: int
    ) -> None:
        self.id, self.item, self.ml, self.lo, self.hi = node_id, item, item_len, lo, hi

    def step(self, s: tuple[int, int]) -> dict[int, Any]:
        c, ph = s
        if ph == 0:
            return {0x5B: (0, 1)}
        out: dict[int, Any] = {}
        if (ph == 1 and self.lo == 0) or (ph == 2 and c >= self.lo):
            out[0x5D] = (c, 4)
        if ph == 2 and c < self.hi:
            out[0x2C] = (c, 3)
        return out

    def expand(self, s: tuple[int, int]) -> list[tuple[tuple[int, Any], ...]]:
        c, ph = s
        if (ph == 1 and self.hi > 0) or ph == 3:
            return [((self.id, (c + 1, 2)), self.item)]
        return []

    def rem(self, s: tuple[int, int]) -> int:
        c, ph = s
        if ph == 0:
            return 1 + self.rem((0, 1))
        if ph == 1:
            return 1 if self.lo == 0 else self.ml + self.rem((1, 2))
        if ph == 2:
            return 1 + max(self.lo - c, 0) * (self.ml + 1)
        return self.ml + self.rem((c + 1, 2)) if ph == 3 else 0
