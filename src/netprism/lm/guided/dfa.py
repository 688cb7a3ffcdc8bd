"""Character sets (sorted disjoint code-point intervals) and the NFA -> DFA construction behind
:mod:`~netprism.lm.guided.regex` (Thompson NFA, subset construction over elementary intervals,
dead-state pruning, product intersection).

Thompson 1968 (CACM 11(6)) for the NFA, Rabin & Scott 1959 for the subset construction; used by
the guided generation of arXiv 2507.13575.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netprism.lm.guided.errors import UnsupportedSchemaError

CharSet = tuple[tuple[int, int], ...]
MAX_CP = 0x10FFFF
SURROGATES = (0xD800, 0xDFFF)
FREE: CharSet = ((0x20, 0x21), (0x23, 0x5B), (0x5D, 0x7E))  # printable ASCII but " and \
DIGIT: CharSet = ((0x30, 0x39),)
WORD: CharSet = ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A))
SPACE: CharSet = ((0x09, 0x0D), (0x20, 0x20))
MAX_NFA, MAX_DFA = 20000, 4000


def norm(ivs: list[tuple[int, int]] | CharSet) -> CharSet:
    """Sorted, merged, surrogate-free intervals."""
    out: list[list[int]] = []
    for lo, hi in sorted(ivs):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    cut: list[tuple[int, int]] = []
    for lo, hi in out:  # drop surrogates
        if hi < SURROGATES[0] or lo > SURROGATES[1]:
            cut.append((lo, hi))
            continue
        if lo < SURROGATES[0]:
            cut.append((lo, SURROGATES[0] - 1))
        if hi > SURROGATES[1]:
            cut.append((SURROGATES[1] + 1, hi))
    return tuple(cut)


def intersect(a: CharSet, b: CharSet) -> CharSet:
    out: list[tuple[int, int]] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def subtract(a: CharSet, b: CharSet) -> CharSet:
    """``a`` minus ``b``."""
    out: list[tuple[int, int]] = []
    for lo, hi in a:
        for blo, bhi in b:
            if bhi < lo or blo > hi:
                continue
            if blo > lo:
                out.append((lo, blo - 1))
            lo = bhi + 1
            if lo > hi:
                break
        if lo <= hi:
            out.append((lo, hi))
    return tuple(out)


@dataclass
class NFA:
    eps: list[list[int]] = field(default_factory=list)
    edges: list[list[tuple[CharSet, int]]] = field(default_factory=list)

    def new(self) -> int:
        if len(self.eps) >= MAX_NFA:
            raise UnsupportedSchemaError(f"too large (more than {MAX_NFA} NFA states)")
        self.eps.append([])
        self.edges.append([])
        return len(self.eps) - 1

    def build(self, ast: tuple) -> tuple[int, int]:
        kind = ast[0]
        s, e = self.new(), self.new()
        if kind == "set":
            self.edges[s].append((ast[1], e))
        elif kind == "cat":
            cur = s
            for it in ast[1]:
                a, b = self.build(it)
                self.eps[cur].append(a)
                cur = b
            self.eps[cur].append(e)
        elif kind == "alt":
            for it in ast[1]:
                a, b = self.build(it)
                self.eps[s].append(a)
                self.eps[b].append(e)
        else:  # rep
            sub, lo, hi = ast[1], ast[2], ast[3]
            cur = s
            for _ in range(lo):
                a, b = self.build(sub)
                self.eps[cur].append(a)
                cur = b
            if hi is None:
                a, b = self.build(sub)
                self.eps[cur] += [a, e]
                self.eps[b] += [a, e]
            else:
                for _ in range(hi - lo):
                    a, b = self.build(sub)
                    self.eps[cur] += [a, e]
                    cur = b
            self.eps[cur].append(e)
        return s, e

    def closure(self, states: frozenset[int] | set[int]) -> frozenset[int]:
        seen, todo = set(states), list(states)
        while todo:
            for t in self.eps[todo.pop()]:
                if t not in seen:
                    seen.add(t)
                    todo.append(t)
        return frozenset(seen)


@dataclass
class DFA:
    """Deterministic automaton over code points: ``trans[q]`` holds ``(lo, hi, target)``."""

    trans: list[tuple[tuple[int, int, int], ...]]
    accept: frozenset[int]

    def step(self, q: int, cp: int) -> int | None:
        for lo, hi, t in self.trans[q]:
            if lo <= cp <= hi:
                return t
        return None

    def matches(self, text: str) -> bool:
        q: int | None = 0
        for ch in text:
            q = self.step(q, ord(ch)) if q is not None else None
        return q is not None and q in self.accept


def _split(edges: list[tuple[CharSet, int]]) -> list[tuple[int, int, frozenset[int]]]:
    """Elementary intervals of the edges' sets, each with the set of targets it reaches."""
    points = sorted({p for cs, _ in edges for lo, hi in cs for p in (lo, hi + 1)})
    out: list[tuple[int, int, frozenset[int]]] = []
    for lo, nxt in zip(points, points[1:]):
        hi = nxt - 1
        tg = frozenset(t for cs, t in edges if any(a <= lo and hi <= b for a, b in cs))
        if tg:
            if out and out[-1][2] == tg and out[-1][1] == lo - 1:
                out[-1] = (out[-1][0], hi, tg)
            else:
                out.append((lo, hi, tg))
    return out


def determinize(nfa: NFA, start: int, end: int) -> DFA:
    first = nfa.closure({start})
    ids, order = {first: 0}, [first]
    trans: list[tuple[tuple[int, int, int], ...]] = []
    k = 0
    while k < len(order):
        cur = order[k]
        k += 1
        row = []
        for lo, hi, tg in _split([ed for s in cur for ed in nfa.edges[s]]):
            nxt = nfa.closure(tg)
            if nxt not in ids:
                if len(order) >= MAX_DFA:
                    raise UnsupportedSchemaError(f"too large (more than {MAX_DFA} DFA states)")
                ids[nxt] = len(order)
                order.append(nxt)
            row.append((lo, hi, ids[nxt]))
        trans.append(tuple(row))
    return prune(DFA(trans, frozenset(i for i, st in enumerate(order) if end in st)))


def prune(d: DFA) -> DFA:
    """Drop transitions into states that cannot reach acceptance (state 0 is kept)."""
    live = set(d.accept)
    changed = True
    while changed:
        changed = False
        for q, row in enumerate(d.trans):
            if q not in live and any(t in live for _, _, t in row):
                live.add(q)
                changed = True
    trans = [tuple(r for r in row if r[2] in live) for row in d.trans]
    return DFA(trans, d.accept)


def intersect_dfa(a: DFA, b: DFA) -> DFA:
    """Product automaton: strings both accept."""
    ids, order = {(0, 0): 0}, [(0, 0)]
    trans: list[tuple[tuple[int, int, int], ...]] = []
    k = 0
    while k < len(order):
        qa, qb = order[k]
        k += 1
        row = []
        for alo, ahi, ta in a.trans[qa]:
            for blo, bhi, tb in b.trans[qb]:
                lo, hi = max(alo, blo), min(ahi, bhi)
                if lo <= hi:
                    if (ta, tb) not in ids:
                        if len(order) >= MAX_DFA:
                            raise UnsupportedSchemaError("pattern intersection too large")
                        ids[(ta, tb)] = len(order)
                        order.append((ta, tb))
                    row.append((lo, hi, ids[(ta, tb)]))
        trans.append(tuple(sorted(row)))
    acc = frozenset(i for i, (x, y) in enumerate(order) if x in a.accept and y in b.accept)
    return prune(DFA(trans, acc))


def any_string() -> DFA:
    """Every string over :data:`FREE`."""
    return DFA([tuple((lo, hi, 0) for lo, hi in FREE)], frozenset({0}))
