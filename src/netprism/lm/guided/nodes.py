"""The nodes of the guided-generation automaton: literals, enums, sequences, unions and arrays,
each with its byte transitions and exact minimum remaining length.

"Apple Intelligence Foundation Language Models: Tech Report 2025" (arXiv 2507.13575), guided
generation; compiled from JSON Schema by :mod:`netprism.lm.guided.schema`.  Strings live in
:mod:`~netprism.lm.guided.strings`, numbers in :mod:`~netprism.lm.guided.numbers`, objects in
:mod:`~netprism.lm.guided.objects`.

A composite node reads its children's minimum lengths from ``env.ml`` (node id -> bytes) and
their start states from ``env.starts``; with recursive ``$ref`` these are a fixpoint that the
automaton computes after building (:meth:`Node.reset` drops memos between rounds).
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

    def first(self) -> list[int]:  # nodes entered before any byte is read (left recursion)
        return []

    def reset(self) -> None:  # drop memos that depend on children's minimum lengths
        return None


class Lit(Node):
    def __init__(self, data: bytes) -> None:
        self.data = data

    def step(self, i: int) -> dict[int, Any]:
        return {self.data[i]: i + 1} if i < len(self.data) else {}

    def rem(self, i: int) -> int:
        return len(self.data) - i


class Trie(Node):
    """Enum over compact JSON encodings; with ``branches`` (value -> node id, whose minimum
    lengths ``env.ml`` holds) it is the tag of a tagged union."""

    start = b""

    def __init__(
        self, values: Sequence[bytes], branches: dict[bytes, int] | None = None, env: Any = None
    ) -> None:
        self.values, self.branches, self.env = frozenset(values), branches, env

    def _extra(self, v: bytes) -> int:  # bytes still needed after the value
        return 0 if self.branches is None else self.env.ml[self.branches[v]]

    def step(self, p: bytes) -> dict[int, Any]:
        return {
            v[len(p)]: v[: len(p) + 1] for v in self.values if len(v) > len(p) and v[: len(p)] == p
        }

    def expand(self, p: bytes) -> list[tuple[tuple[int, Any], ...]]:
        if self.branches is not None and p in self.values:
            b = self.branches[p]
            return [((b, self.env.starts[b]),)]
        return []

    def can_end(self, p: bytes) -> bool:
        return self.branches is None and p in self.values

    def rem(self, p: bytes) -> int:
        return min(
            (len(v) - len(p) + self._extra(v) for v in self.values if v.startswith(p)),
            default=INF,
        )


class Seq(Node):
    def __init__(self, env: Any, node_id: int, parts: list[int]) -> None:
        self.env, self.id, self.parts = env, node_id, parts

    def expand(self, i: int) -> list[tuple[tuple[int, Any], ...]]:
        if i >= len(self.parts):
            return []
        p = self.parts[i]
        child = (p, self.env.starts[p])
        return [(child,)] if i + 1 == len(self.parts) else [((self.id, i + 1), child)]

    def rem(self, i: int) -> int:
        return min(sum(self.env.ml[p] for p in self.parts[i:]), INF)

    def first(self) -> list[int]:
        return self.parts[:1]


class Union(Node):
    """Any one of ``branches`` (possibly overlapping: the automaton follows every match)."""

    def __init__(self, env: Any, branches: list[int]) -> None:
        self.env, self.branches = env, branches

    def expand(self, local: int) -> list[tuple[tuple[int, Any], ...]]:
        return [((b, self.env.starts[b]),) for b in self.branches] if local == 0 else []

    def rem(self, local: int) -> int:
        return min((self.env.ml[b] for b in self.branches), default=INF) if local == 0 else 0

    def can_end(self, local: int) -> bool:
        return False

    def first(self) -> list[int]:
        return list(self.branches)


class ArrayNode(Node):
    """``[items]`` with positional schemas, a count range and an optional ``contains``.

    ``items[k]`` (or ``rest`` beyond them; ``None``: no more items) is the node of position
    ``k``; ``contains`` gives the same positions merged with the ``contains`` schema and the
    number ``need`` of items that must come from them.  Local state ``(count, phase, found)``:
    phase 0 before ``[``, 1 after ``[``, 2 after an item, 3 after ``,``, 4 done.
    """

    start = (0, 0, 0)

    def __init__(
        self,
        env: Any,
        node_id: int,
        items: tuple[list[int], int | None],
        lo: int,
        hi: int,
        contains: tuple[list[int], int | None, int] | None = None,
    ) -> None:
        self.env, self.id, self.lo, self.hi = env, node_id, lo, hi
        self.tup, self.rest = items
        self.ctup, self.crest, self.need = contains or ([], None, 0)
        self.memo: dict[Any, int] = {}
        self.filled = INF  # after-item states from this count up are memoized

    def _at(self, k: int) -> tuple[int | None, int | None]:
        plain = self.tup[k] if k < len(self.tup) else self.rest
        with_c = self.ctup[k] if k < len(self.ctup) else self.crest
        return plain, (with_c if self.need else None)

    def _closable(self, c: int, f: int) -> bool:
        return c >= self.lo and f >= self.need

    def _options(self, c: int, f: int) -> list[tuple[int, int]]:
        """(item node, found after it) for the item at position ``c``."""
        if c >= self.hi:
            return []
        plain, with_c = self._at(c)
        out = []
        useless = f < self.need and c >= max(self.lo, len(self.tup), len(self.ctup))
        if plain is not None and not useless:
            out.append((plain, f))
        if with_c is not None:
            out.append((with_c, min(f + 1, self.need)))
        return out

    def step(self, s: tuple[int, int, int]) -> dict[int, Any]:
        c, ph, f = s
        if ph == 0:
            return {0x5B: (0, 1, 0)}
        out: dict[int, Any] = {}
        if ph in (1, 2) and self._closable(c, f):
            out[0x5D] = (c, 4, f)
        if ph == 2 and self._options(c, f):
            out[0x2C] = (c, 3, f)
        return out

    def expand(self, s: tuple[int, int, int]) -> list[tuple[tuple[int, Any], ...]]:
        c, ph, f = s
        if ph not in (1, 3):
            return []
        return [
            ((self.id, (c + 1, 2, nf)), (node, self.env.starts[node]))
            for node, nf in self._options(c, f)
        ]

    def rem(self, s: tuple[int, int, int]) -> int:
        hit = self.memo.get(s)
        if hit is None:
            self._fill_from_the_end(s[0])
            hit = self.memo[s] = min(self._rem(s), INF)
        return hit

    def _fill_from_the_end(self, c: int) -> None:
        """Memoize the after-item states beyond count ``c`` from the last count that matters
        down, so that a long ``minItems`` never recurses deeply."""
        top = min(self.hi, max(self.lo, len(self.tup), len(self.ctup)) + self.need + 1)
        for k in range(min(top, self.filled - 1), c + 1, -1):
            for f in range(self.need + 1):
                if (k, 2, f) not in self.memo:
                    self.memo[(k, 2, f)] = min(self._rem((k, 2, f)), INF)
            self.filled = k

    def _rem(self, s: tuple[int, int, int]) -> int:
        c, ph, f = s
        if ph == 4:
            return 0
        if ph == 0:
            return 1 + self.rem((0, 1, 0))
        if ph in (1, 2) and self._closable(c, f):
            return 1
        items = min(
            (self.env.ml[n] + self.rem((c + 1, 2, nf)) for n, nf in self._options(c, f)),
            default=INF,
        )
        return items + (1 if ph == 2 else 0)

    def reset(self) -> None:
        self.memo.clear()
        self.filled = INF


class UniqueArray(Node):
    """``[v1,v2,...]`` of distinct values from a finite set (``uniqueItems`` over an enum).

    Local state ``(used, part)``: ``None`` before ``[``; ``used`` the values written, ``part``
    the bytes of the value being written (``b""`` right after ``[`` or a comma); ``()`` done.
    A value is only counted as written at the ``,`` or ``]`` after it, as one number may be a
    prefix of another (``1`` and ``12``).
    """

    start = None

    def __init__(self, values: Sequence[bytes], lo: int, hi: int) -> None:
        self.values, self.lo, self.hi = sorted(set(values), key=lambda v: (len(v), v)), lo, hi

    def _free(self, used: frozenset[bytes]) -> list[bytes]:
        return [v for v in self.values if v not in used]

    def _candidates(self, used: frozenset[bytes], part: bytes) -> list[bytes]:
        """The values the one being written may still become."""
        if len(used) >= self.hi:
            return []
        return [v for v in self._free(used) if v.startswith(part)]

    def step(self, s: Any) -> dict[int, Any]:
        if s is None:
            return {0x5B: (frozenset(), b"")}
        if s == ():
            return {}
        used, part = s
        out: dict[int, Any] = {}
        for v in self._candidates(used, part):
            if len(v) > len(part):
                out[v[len(part)]] = (used, v[: len(part) + 1])
        if not part and not used and self.lo == 0:
            out[0x5D] = ()
        if part in self._candidates(used, part):  # a complete value: close or go on
            done = used | {part}
            if len(done) >= self.lo:
                out[0x5D] = ()
            if len(done) < self.hi and self._free(done):
                out[0x2C] = (done, b"")
        return out

    def rem(self, s: Any) -> int:
        if s == ():
            return 0
        if s is None:
            return 1 + self.rem((frozenset(), b""))
        used, part = s
        best = 1 if not part and not used and self.lo == 0 else INF
        for v in self._candidates(used, part):
            done = used | {v}
            need, free = max(self.lo - len(done), 0), self._free(done)
            if need <= len(free):  # the shortest others, each after a comma, then "]"
                rest = sum(len(w) + 1 for w in free[:need]) + 1
                best = min(best, len(v) - len(part) + rest)
        return best
