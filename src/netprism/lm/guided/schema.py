"""Compile a JSON-Schema subset into a byte-level pushdown automaton for guided generation.

"Apple Intelligence Foundation Language Models: Tech Report 2025" (arXiv 2507.13575), section on
the Foundation Models framework: guided generation turns a ``@Generable`` type into a schema and
decodes under a token mask so that the output always parses; properties come out in declared
order.  Here the vocabulary is the 256 bytes of :class:`~netprism.lm.model.ByteLM`.

**Subset** (compact JSON, no whitespace, properties in declared order):

* ``type: object`` with ``properties`` and ``required`` naming every property;
  ``additionalProperties`` absent or ``false``;
* ``type: string`` with ``maxLength`` (required) and optional ``minLength``; characters are
  printable ASCII (0x20-0x7E) except ``"`` and ``\\`` -- no escape sequences are generated;
* ``type: integer`` with ``minimum`` and ``maximum`` (both required), enforced digit by digit:
  a prefix is allowed only if it can still complete to an in-range integer; no leading zeros;
* ``enum`` of strings and/or integers (a trie over their compact JSON encodings);
* ``type: array`` with ``items``, ``maxItems`` (required) and optional ``minItems``;
* ``type: boolean``; annotations ``title``, ``description``, ``$schema`` are ignored.

Anything else raises :class:`UnsupportedSchemaError` naming the keyword and its JSON path.

**States** are hashable tuples of frames ``(node_id, local)`` (a stack, top last); the
:class:`SchemaAutomaton` answers questions about them and caches its answers per state.  A
top-level value whose end is ambiguous (e.g. an integer ``1`` that could grow to ``12``) may be
ended with :data:`END` (``\\n``), a stop signal that is not part of the output and costs no
budget.  ``min_close(state)`` is the exact number of output bytes still needed to finish.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from netprism.lm.guided.nodes import (
    INF,
    ArrayNode,
    IntRange,
    Lit,
    Node,
    Seq,
    Str,
    Trie,
)

END = 0x0A  # stop signal for an ambiguous top-level end; never part of the output
ANNOTATIONS = frozenset({"title", "description", "$schema"})
State = tuple[tuple[int, Any], ...]


class UnsupportedSchemaError(ValueError):
    """A schema uses a keyword (or value) outside the supported subset."""


# ---------------------------------------------------------------- schema -> nodes
def _check_keys(schema: dict[str, Any], allowed: Iterable[str], path: str) -> None:
    for key in schema:
        if key not in ANNOTATIONS and key not in allowed:
            raise UnsupportedSchemaError(f"unsupported keyword {key!r} at {path}")


def _bounds(
    schema: dict[str, Any], keys: tuple[str, str], path: str, lo: int | None
) -> tuple[int, int]:
    """The pair of bounds ``keys``; ``lo`` defaults the first (None: required; else >= 0)."""
    out = []
    for key, default in zip(keys, (lo, None)):
        v = schema.get(key, default)
        if v is None:
            raise UnsupportedSchemaError(
                f"{path} needs keyword {key!r}: unbounded values are not supported"
            )
        if not isinstance(v, int) or isinstance(v, bool) or (lo is not None and v < 0):
            raise UnsupportedSchemaError(
                f"keyword {key!r} at {path} must be an integer{'' if lo is None else ' >= 0'}, "
                f"got {v!r}"
            )
        out.append(v)
    if out[0] > out[1]:
        raise UnsupportedSchemaError(f"{path}: {keys[0]}={out[0]} is above {keys[1]}={out[1]}")
    return out[0], out[1]


_TYPE_KEYS = {
    "string": ("type", "maxLength", "minLength"),
    "integer": ("type", "minimum", "maximum"),
    "boolean": ("type",),
    "array": ("type", "items", "minItems", "maxItems"),
    "object": ("type", "properties", "required", "additionalProperties"),
}
_KNOWN = frozenset({"enum"}.union(*_TYPE_KEYS.values()))


class SchemaAutomaton:
    """Byte-level pushdown automaton for one schema; states are hashable tuples of frames.

    Examples
    --------
    >>> a = compile_schema({"type": "integer", "minimum": -3, "maximum": 12})
    >>> s = a.advance(a.initial, ord("1"))
    >>> sorted(chr(b) for b in a.allowed_bytes(s)), a.is_accepting(s), a.min_close(s)
    (['\\n', '0', '1', '2'], True, 0)
    """

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.starts: dict[int, Any] = {}
        self.root = -1
        self._info: dict[State, tuple[torch.Tensor, torch.Tensor, bool, bool, int]] = {}
        self._trans: dict[tuple[State, int], State] = {}
        self._leaf: dict[tuple[int, Any], torch.Tensor] = {}
        self._steps: dict[tuple[int, Any], dict[int, Any]] = {}
        self._never = torch.full((256,), INF, dtype=torch.long)

    # -- building
    def _add(self, node: Node) -> int:
        self.nodes.append(node)
        nid = len(self.nodes) - 1
        self.starts[nid] = node.start
        return nid

    def minlen(self, nid: int) -> int:
        return self.nodes[nid].rem(self.starts[nid])

    def _seq(self, chunks: list[bytes | int]) -> int:
        parts: list[int] = []
        for ch in chunks:  # merge neighbouring literals
            if isinstance(ch, bytes):
                if (
                    parts
                    and isinstance(self.nodes[parts[-1]], Lit)
                    and parts[-1] == len(self.nodes) - 1
                ):
                    lit = self.nodes[parts[-1]]
                    assert isinstance(lit, Lit)
                    lit.data += ch
                    continue
                ch = self._add(Lit(ch))
            parts.append(ch)
        if len(parts) == 1:
            return parts[0]
        nid = len(self.nodes)
        starts = [self.starts[p] for p in parts]
        return self._add(Seq(nid, parts, starts, [self.minlen(p) for p in parts]))

    def build(self, schema: Any, path: str = "$") -> int:
        if not isinstance(schema, dict):
            raise UnsupportedSchemaError(f"schema at {path} must be a dict, got {schema!r}")
        _check_keys(schema, _KNOWN, path)  # a foreign keyword first, before what is missing
        if "enum" in schema:
            _check_keys(schema, ("enum", "type"), path)
            vals = schema["enum"]
            if not isinstance(vals, list) or not vals:
                raise UnsupportedSchemaError(
                    f"'enum' at {path} must be a non-empty list, got {vals!r:.80}"
                )
            kind = schema.get("type")
            allowed = {None: (str, int), "string": (str,), "integer": (int,)}.get(kind)
            if allowed is None:
                raise UnsupportedSchemaError(
                    f"'type'={kind!r} beside 'enum' at {path}; expected 'string' or 'integer'"
                )
            for v in vals:
                if isinstance(v, bool) or not isinstance(v, allowed):
                    raise UnsupportedSchemaError(
                        f"'enum' at {path} holds {v!r}; expected "
                        f"{'strings and integers' if kind is None else kind + 's'}"
                    )
            return self._add(Trie([_dump(v) for v in vals]))
        kind = schema.get("type")
        if not isinstance(kind, str) or kind not in _TYPE_KEYS:
            if "type" not in schema:
                raise UnsupportedSchemaError(f"{path} needs keyword 'type' or 'enum'")
            raise UnsupportedSchemaError(
                f"unsupported keyword value 'type'={kind!r} at {path}; expected one of "
                f"{sorted(_TYPE_KEYS)}"
            )
        _check_keys(schema, _TYPE_KEYS[kind], path)
        if kind == "object":
            return self._object(schema, path)
        if kind == "string":
            return self._add(Str(*_bounds(schema, ("minLength", "maxLength"), path, 0)))
        if kind == "integer":
            return self._add(IntRange(*_bounds(schema, ("minimum", "maximum"), path, None)))
        if kind == "boolean":
            return self._add(Trie([b"true", b"false"]))
        if "items" not in schema:
            raise UnsupportedSchemaError(f"{path} needs keyword 'items'")
        item = self.build(schema["items"], f"{path}.items")
        lo, hi = _bounds(schema, ("minItems", "maxItems"), path, 0)
        return self._add(
            ArrayNode(len(self.nodes), (item, self.starts[item]), self.minlen(item), lo, hi)
        )

    def _object(self, schema: dict[str, Any], path: str) -> int:
        if schema.get("additionalProperties", False) is not False:
            raise UnsupportedSchemaError(
                f"unsupported keyword 'additionalProperties' (not false) at {path}"
            )
        props = schema.get("properties", {})
        if not isinstance(props, dict):
            raise UnsupportedSchemaError(
                f"'properties' at {path} must be a dict, got {type(props).__name__}"
            )
        req = schema.get("required", [])
        if (
            not isinstance(req, list)
            or not all(isinstance(r, str) for r in req)
            or sorted(req) != sorted(props)
        ):
            raise UnsupportedSchemaError(
                f"'required' at {path} must list every property {list(props)}, got {req!r}"
            )
        if not props:
            return self._seq([b"{}"])
        chunks: list[bytes | int] = []
        for i, (name, sub) in enumerate(props.items()):
            chunks += [
                (b"{" if i == 0 else b",") + _dump(name) + b":",
                self.build(sub, f"{path}.properties.{name}"),
            ]
        return self._seq([*chunks, b"}"])

    # -- states
    @property
    def initial(self) -> State:
        return ((self.root, self.starts[self.root]),)

    def _closure(self, stack: State, out: list[State]) -> bool:
        """Collect stacks reachable by epsilon moves whose top consumes bytes; True if accepting."""
        if not stack:
            return True
        nid, local = stack[-1]
        node = self.nodes[nid]
        acc = False
        if self._step(nid, local):
            out.append(stack)
        for suffix in node.expand(local):
            acc |= self._closure(stack[:-1] + suffix, out)
        if node.can_end(local):
            acc |= self._closure(stack[:-1], out)
        return acc

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
                cost[b] = 1 + node.rem(nxt)
            self._leaf[key] = torch.tensor(cost, dtype=torch.long)
        return self._leaf[key]

    def info(self, state: State) -> tuple[torch.Tensor, torch.Tensor, bool, bool, int]:
        """``(mask (256,) bool, cost (256,) long, accepting, done, min_close)`` of ``state``.

        ``cost[b]`` is the output bytes that ``b`` plus the shortest close after it take
        (``0`` for :data:`END`, huge where ``b`` is not allowed).
        """
        hit = self._info.get(state)
        if hit is not None:
            return hit
        items: list[State] = []
        acc = self._closure(state, items)
        cost = self._never
        for st in items:  # the items' byte sets are disjoint (the grammar is LL(1))
            lower = sum(self.nodes[n].rem(loc) for n, loc in st[:-1])
            lcost = self._leaf_cost(*st[-1]) + lower
            cost = lcost if cost is self._never else torch.minimum(cost, lcost)
        done = acc and not items
        if acc and items:
            cost = cost.clone()
            cost[END] = 0
        mask = cost < INF
        close = 0 if acc else sum(self.nodes[n].rem(loc) for n, loc in state)
        self._info[state] = (mask, cost, acc, done, close)
        return self._info[state]

    def mask(self, state: State) -> torch.Tensor:
        """Allowed next bytes, BoolTensor ``(256,)`` (shared: do not modify)."""
        return self.info(state)[0]

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
        nxt = ()
        if byte != END or not acc:
            items: list[State] = []
            self._closure(state, items)
            for st in items:
                nid, local = st[-1]
                moves = self._step(nid, local)
                if byte in moves:
                    nxt = st[:-1] + ((nid, moves[byte]),)
                    break
            if self.info(nxt)[3]:
                nxt = ()
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
            if b not in self.allowed_bytes(s) or b == END:
                return False
            s = self.advance(s, b)
        return self.is_accepting(s)


def _dump(v: Any) -> bytes:
    return json.dumps(v, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def compile_schema(schema: dict[str, Any]) -> SchemaAutomaton:
    """Compile ``schema`` (the subset in the module docstring) into a :class:`SchemaAutomaton`.

    Raises
    ------
    UnsupportedSchemaError
        Naming the first unsupported keyword and its JSON path, e.g. ``'pattern' at $.name``.
    """
    a = SchemaAutomaton()
    a.root = a.build(schema)
    return a


def compile_tagged_union(
    branches: dict[str, dict[str, Any]], *, tag: str = "tool", value: str = "arguments"
) -> SchemaAutomaton:
    """Automaton for ``{"<tag>": name, "<value>": <branches[name] instance>}``: the value's
    schema switches on the generated name (a tagged-union node)."""
    if not branches:
        raise ValueError("a tagged union needs at least one branch, got none")
    a = SchemaAutomaton()
    ids = {}
    for name, sub in branches.items():
        body = a.build(sub, f"$.{value}[{name}]")
        ids[_dump(name)] = a._seq([b"," + _dump(value) + b":", body, b"}"])
    trie = Trie(list(ids), ids)
    trie.extra = {k: a.minlen(v) for k, v in ids.items()}
    a.root = a._seq([b"{" + _dump(tag) + b":", a._add(trie)])
    return a
