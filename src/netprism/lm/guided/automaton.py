"""The byte-level pushdown automaton that runs the compiled nodes.

A *stack* is a tuple of frames ``(node_id, local)`` (top last); a *state* is a frozenset of
stacks, so overlapping alternatives (``anyOf``, optional properties that share a first byte)
are followed together and a byte is allowed when any stack takes it.  :data:`DONE` (the empty
state) is a finished output.  A top-level value whose end is ambiguous (``1`` that could grow to
``12``) may be ended with :data:`END` (``\\n``), a stop signal that is not part of the output
and costs no budget.  ``min_close(state)`` is the exact number of output bytes still needed.

Guided generation of arXiv 2507.13575 (Apple Foundation Models); masking a language model's
vocabulary with an automaton as in Willard & Louf 2023 (outlines, arXiv 2307.09702) and
XGrammar (arXiv 2411.15100), here with a pushdown stack instead of a token index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from netprism.lm.guided.errors import UnsupportedSchemaError
from netprism.lm.guided.nodes import INF, Lit, Node, Seq

END = 0x0A  # stop signal for an ambiguous top-level end; never part of the output
Stack = tuple[tuple[int, Any], ...]
State = Any  # frozenset of stacks; the empty one (or ``()``) is DONE
DONE: frozenset[Stack] = frozenset()
Info = tuple[torch.Tensor, torch.Tensor, bool, bool, int]


class Automaton:
    """Nodes plus the state machinery; :class:`~netprism.lm.guided.schema.SchemaAutomaton`
    adds the schema compiler."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.starts: dict[int, Any] = {}
        self.ml: list[int] = []
        self.root = -1
        self._initial: State | None = None
        self._info: dict[State, Info] = {}
        self._trans: dict[tuple[State, int], State] = {}
        self._clos: dict[Stack, tuple[tuple[Stack, ...], bool]] = {}
        self._leaf: dict[tuple[int, Any], torch.Tensor] = {}
        self._steps: dict[tuple[int, Any], dict[int, Any]] = {}
        self._never = torch.full((256,), INF, dtype=torch.long)
        self._done_info: Info = (torch.zeros(256, dtype=torch.bool), self._never, True, True, 0)

    # -- building
    def _add(self, node: Node) -> int:
        self.nodes.append(node)
        self.ml.append(INF)
        nid = len(self.nodes) - 1
        self.starts[nid] = node.start
        return nid

    def minlen(self, nid: int) -> int:
        return self.ml[nid]

    def _seq(self, chunks: list[bytes | int]) -> int:
        parts: list[int] = []
        for ch in chunks:
            parts.append(self._add(Lit(ch)) if isinstance(ch, bytes) else ch)
        if len(parts) == 1:
            return parts[0]
        return self._add(Seq(self, len(self.nodes), parts))

    def finalize(self) -> None:
        """Minimum lengths as a fixpoint (recursive refs), then a left-recursion check."""
        for _ in range(4 * len(self.nodes) + 8):
            changed = False
            for node in self.nodes:
                node.reset()
            for nid, node in enumerate(self.nodes):
                v = min(node.rem(self.starts[nid]), INF)
                if v < self.ml[nid]:
                    self.ml[nid], changed = v, True
            if not changed:
                break
        for node in self.nodes:
            node.reset()
        self._check_left_recursion()

    def _check_left_recursion(self) -> None:
        color = [0] * len(self.nodes)  # 0 new, 1 on the path, 2 done
        for root in range(len(self.nodes)):
            todo: list[tuple[int, int]] = [(root, 0)]
            while todo:
                nid, k = todo.pop()
                if k == 0:
                    if color[nid] == 2:
                        continue
                    if color[nid] == 1:
                        raise UnsupportedSchemaError(
                            "recursive $ref that reaches itself before any byte is written "
                            "(left recursion)"
                        )
                    color[nid] = 1
                    todo.append((nid, 1))
                    todo.extend((c, 0) for c in self.nodes[nid].first())
                else:
                    color[nid] = 2

    # -- states
    @property
    def initial(self) -> State:
        """The start state: one shared object, so the per-state caches hit it by identity."""
        if self._initial is None:
            self._initial = frozenset({((self.root, self.starts[self.root]),)})
        return self._initial

    def _closure(self, stack: Stack) -> tuple[tuple[Stack, ...], bool]:
        """Stacks reachable by epsilon moves whose top consumes bytes; True if accepting."""
        hit = self._clos.get(stack)
        if hit is not None:
            return hit
        out: list[Stack] = []
        acc, todo = False, [stack]
        while todo:
            st = todo.pop()
            if not st:
                acc = True
                continue
            nid, local = st[-1]
            node = self.nodes[nid]
            if self._step(nid, local):
                out.append(st)
            todo.extend(st[:-1] + suffix for suffix in node.expand(local))
            if node.can_end(local):
                todo.append(st[:-1])
        hit = self._clos[stack] = (tuple(dict.fromkeys(out)), acc)
        return hit

    def _step(self, nid: int, local: Any) -> dict[int, Any]:
        key = (nid, local)
        hit = self._steps.get(key)
        if hit is None:
            hit = self._steps[key] = self.nodes[nid].step(local)
        return hit

    def _leaf_cost(self, nid: int, local: Any) -> torch.Tensor:
        """Output bytes of each byte plus the shortest finish of this node after it, (256,)."""
        key = (nid, local)
        if key not in self._leaf:
            node, cost = self.nodes[nid], [INF] * 256
            for b, nxt in self._step(nid, local).items():
                cost[b] = min(1 + node.rem(nxt), INF)
            self._leaf[key] = torch.tensor(cost, dtype=torch.long)
        return self._leaf[key]

    def _stack_rem(self, st: Stack) -> int:
        return sum(self.nodes[n].rem(loc) for n, loc in st)

    def info(self, state: State) -> Info:
        """``(mask (256,) bool, cost (256,) long, accepting, done, min_close)`` of ``state``.

        ``cost[b]`` is the output bytes that ``b`` plus the shortest close after it take
        (``0`` for :data:`END`, huge where ``b`` is not allowed).
        """
        hit = self._info.get(state)
        if hit is not None:
            return hit
        if not state:
            return self._done_info
        items: dict[Stack, None] = {}
        acc = False
        for stack in state:
            its, a = self._closure(stack)
            acc |= a
            items.update(dict.fromkeys(its))
        cost = self._never
        for st in items:
            lcost = self._leaf_cost(*st[-1]) + self._stack_rem(st[:-1])
            cost = lcost if cost is self._never else torch.minimum(cost, lcost)
        done = acc and not items
        if acc and items:
            cost = cost.clone()
            cost[END] = 0
        mask = cost < INF
        close = 0 if acc else min((self._stack_rem(st) for st in state), default=INF)
        self._info[state] = (mask, cost, acc, done, close)
        return self._info[state]

    def mask(self, state: State) -> torch.Tensor:
        """Allowed next bytes, BoolTensor ``(256,)`` (shared: do not modify)."""
        hit = self._info.get(state)  # the warm path, one lookup
        return (hit if hit is not None else self.info(state))[0]

    def allowed_bytes(self, state: State) -> list[int]:
        return self.info(state)[0].nonzero().flatten().tolist()

    def is_accepting(self, state: State) -> bool:
        """The output so far is a complete valid value (possibly extendable)."""
        return self.info(state)[2]

    def is_done(self, state: State) -> bool:
        """Complete and no byte may follow."""
        return self.info(state)[3]

    def min_close(self, state: State) -> int:
        """Exact minimum number of output bytes needed to complete from ``state``."""
        return self.info(state)[4]

    def advance(self, state: State, byte: int) -> State:
        """The state after ``byte`` (:data:`END` ends an accepting one); ValueError if barred."""
        key = (state, byte)
        nxt = self._trans.get(key)
        if nxt is not None:
            return nxt
        mask, _, acc, _, _ = self.info(state)
        if not 0 <= byte < 256 or not mask[byte]:
            raise ValueError(
                f"byte {byte!r} ({chr(byte)!r}) is not allowed here; allowed: "
                f"{bytes(self.allowed_bytes(state))!r}"
            )
        nxt = DONE
        if byte != END or not acc:
            found: set[Stack] = set()
            for stack in state:
                for st in self._closure(stack)[0]:
                    nid, local = st[-1]
                    moves = self._step(nid, local)
                    if byte in moves:
                        found.add(st[:-1] + ((nid, moves[byte]),))
            nxt = frozenset(found)
            if self.info(nxt)[3]:
                nxt = DONE
        self._trans[key] = nxt
        return nxt

    def batch_masks(self, states: Sequence[State], remaining: torch.Tensor) -> torch.Tensor:
        """Allowed bytes under the budget, ``(B, 256)``: ``b`` is allowed iff the shortest close
        after it fits in ``remaining`` ``(B,)`` output bytes."""
        cost = torch.stack([self.info(s)[1] for s in states])  # (B, 256)
        return cost <= remaining[:, None]

    def accepts(self, data: bytes) -> bool:
        """Whether ``data`` is a complete output (a full walk ending accepting)."""
        s = self.initial
        for b in data:
            if b == END or not self.info(s)[0][b]:
                return False
            s = self.advance(s, b)
        return self.is_accepting(s)
