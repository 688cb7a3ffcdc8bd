"""JSON objects: declared properties in schema order (optional ones may be skipped), then
additional properties with distinct keys outside the declared names, within a count range.

Local states of :class:`ObjectNode` (``c``: properties so far, saturated; ``used``: additional
keys so far):

* ``-1`` before ``{``, ``-2`` done;
* ``("b", i, c, used)`` between properties, the next declared one at index ``>= i``;
* ``("q", c, used)`` after a comma that opens an additional key, ``("k", c, used, key)`` inside
  that key, ``("c", c, used)`` after its closing quote, ``("v", c, used)`` after its colon.

Additional keys are written over printable ASCII but ``"`` and ``\\`` (no escapes), so a key
is never equal to another one that is spelt differently.

Part of the guided generation of arXiv 2507.13575 (properties in declared order, as the
Foundation Models framework generates them).
"""

from __future__ import annotations

from typing import Any

from netprism.lm.guided.nodes import INF, STRING_BYTES, Node

KEY_CHARS = sorted(STRING_BYTES)


def key_min(key: str, taken: frozenset[str]) -> tuple[int, str]:
    """Bytes to finish ``key`` (closing quote included) and the shortest finished key."""
    level = [key]
    extra = 1
    while True:
        for k in level:
            if k not in taken:
                return extra, k
        level = [k + chr(c) for k in level for c in KEY_CHARS]
        extra += 1


class ObjectNode(Node):
    """``{...}`` with ``props`` = ``[(first_lit, comma_lit, value, required)]`` node ids."""

    start = -1

    def __init__(
        self,
        env: Any,
        node_id: int,
        props: list[tuple[int, int, int, bool]],
        addl: int | None,
        bounds: tuple[int, int],
        excluded: frozenset[str],
    ) -> None:
        self.env, self.id, self.props, self.addl = env, node_id, props, addl
        self.lo, self.hi = bounds
        self.excluded, self.n = excluded, len(props)
        self.cap = max(self.lo, 1) if self.hi >= INF else self.hi  # 0 stays 'first'
        self.next_req = [
            next((j for j in range(i, self.n) if props[j][3]), self.n) for i in range(self.n + 1)
        ]
        self.memo: dict[Any, int] = {}

    def _sat(self, c: int) -> int:
        return min(c, self.cap)

    def _close_ok(self, i: int, c: int) -> bool:
        return self.next_req[i] == self.n and c >= self.lo

    def _addl_ok(self, i: int, c: int) -> bool:
        return self.addl is not None and self.next_req[i] == self.n and c < self.hi

    def _declared(self, i: int, c: int) -> list[tuple[int, int, int]]:
        """(key literal, value node, next index) for each declared property that may follow."""
        if c >= self.hi:
            return []
        last = min(self.next_req[i], self.n - 1)
        return [
            (self.props[j][0 if c == 0 else 1], self.props[j][2], j + 1) for j in range(i, last + 1)
        ]

    def step(self, s: Any) -> dict[int, Any]:
        if s == -1:
            return {0x7B: ("b", 0, 0, frozenset())}
        if s == -2:
            return {}
        kind = s[0]
        if kind == "b":
            _, i, c, used = s
            out: dict[int, Any] = {}
            if self._close_ok(i, c):
                out[0x7D] = -2
            if self._addl_ok(i, c):
                out.update({0x2C: ("q", c, used)} if c else {0x22: ("k", c, used, "")})
            return out
        if kind == "q":
            return {0x22: ("k", s[1], s[2], "")}
        if kind == "k":
            _, c, used, key = s
            out = {b: ("k", c, used, key + chr(b)) for b in KEY_CHARS}
            if key not in self.excluded and key not in used:
                out[0x22] = ("c", c, used | {key})
            return out
        if kind == "c":
            return {0x3A: ("v", s[1], s[2])}
        return {}

    def expand(self, s: Any) -> list[tuple[tuple[int, Any], ...]]:
        if s in (-1, -2):
            return []
        if s[0] == "b":
            _, i, c, used = s
            nxt = self._sat(c + 1)
            return [
                ((self.id, ("b", j, nxt, used)), (val, self.env.starts[val]), (lit, 0))
                for lit, val, j in self._declared(i, c)
            ]
        if s[0] == "v" and self.addl is not None:
            _, c, used = s
            return [
                (
                    (self.id, ("b", self.n, self._sat(c + 1), used)),
                    (self.addl, self.env.starts[self.addl]),
                )
            ]
        return []

    def rem(self, s: Any) -> int:
        hit = self.memo.get(s)
        if hit is None:
            hit = self.memo[s] = min(self._rem(s), INF)
        return hit

    def _rem(self, s: Any) -> int:
        if s == -2:
            return 0
        if s == -1:
            return 1 + self.rem(("b", 0, 0, frozenset()))
        kind, ml = s[0], self.env.ml
        if kind == "b":
            _, i, c, used = s
            if self._close_ok(i, c):
                return 1
            best = INF
            for lit, val, j in self._declared(i, c):
                cost = self.env.nodes[lit].rem(0) + ml[val]
                best = min(best, cost + self.rem(("b", j, self._sat(c + 1), used)))
            if self._addl_ok(i, c):
                best = min(best, (1 if c else 0) + 1 + self.rem(("k", c, used, "")))
            return best
        if kind == "q":
            return 1 + self.rem(("k", s[1], s[2], ""))
        assert self.addl is not None
        c, used = s[1], s[2]
        after = ml[self.addl]
        if kind == "k":
            extra, k = key_min(s[3], self.excluded | used)
            return extra + 1 + after + self.rem(("b", self.n, self._sat(c + 1), used | {k}))
        nxt = self.rem(("b", self.n, self._sat(c + 1), used))
        return (1 if kind == "c" else 0) + after + nxt

    def reset(self) -> None:
        self.memo.clear()
