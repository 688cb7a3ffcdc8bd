"""Compile JSON Schema (draft 7, as users write it) into a byte-level pushdown automaton for
guided generation.

"Apple Intelligence Foundation Language Models: Tech Report 2025" (arXiv 2507.13575), section on
the Foundation Models framework: guided generation turns a ``@Generable`` type into a schema and
decodes under a token mask so that the output always parses; properties come out in declared
order.  Here the vocabulary is the 256 bytes of :class:`~netprism.lm.model.ByteLM`.

Every output is a valid instance (compact JSON, no whitespace); the outputs are a subset of the
valid instances, chosen so that each keyword compiles *exactly*:

* any type, type lists, no ``type`` (every JSON value, bounded by the byte budget);
  ``const``/``enum`` of any JSON values (kept when they satisfy the rest of the schema);
* numbers: ``minimum``/``maximum``/``exclusive*``, ``multipleOf`` (integer or dyadic), at
  most 15 digits and no exponent (:mod:`~netprism.lm.guided.numbers`);
* strings: ``minLength``/``maxLength`` in characters, ``pattern`` (an ECMA-262 subset,
  :mod:`~netprism.lm.guided.regex`), ``format`` date, time, date-time, email, uuid, ipv4;
  free text is printable ASCII without escapes (:mod:`~netprism.lm.guided.strings`);
* arrays: ``items`` (schema or list), ``additionalItems``, ``minItems``/``maxItems``,
  ``contains``, ``uniqueItems`` over one finite set of values;
* objects: ``properties`` in schema order, optional unless ``required``; additional
  properties (distinct keys after the declared ones, under ``additionalProperties``) only where
  the schema writes ``additionalProperties``, writes no ``properties`` or needs more than it
  declares for ``minProperties`` -- as the Foundation Models framework and outlines-core do, a
  schema that lists properties gets those; ``min/maxProperties``
  (:mod:`~netprism.lm.guided.objects`);
* ``allOf`` merged, ``anyOf``, ``oneOf`` with disjoint branches (:mod:`~netprism.lm.guided.flat`),
  ``$ref`` to ``#`` pointers, recursion included (:mod:`~netprism.lm.guided.refs`);
  ``if``/``not`` only where trivial.

Anything else (``patternProperties``, ``dependencies``, ``propertyNames``, ``not``,
``if``/``then``/``else``, other formats, look-around...) raises :class:`UnsupportedSchemaError`
naming the keyword and its JSON path; so does a schema none of whose values can be generated.

States are frozensets of stacks of frames ``(node_id, local)``; see
:mod:`~netprism.lm.guided.automaton` for the runtime, :data:`END` and ``min_close``.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from netprism.lm.guided.automaton import DONE, END, Automaton, State
from netprism.lm.guided.errors import UnsupportedSchemaError
from netprism.lm.guided.flat import Expander, Flat, canon, is_true, kinds_of, merge
from netprism.lm.guided.nodes import INF, ArrayNode, Lit, Trie, Union, UniqueArray
from netprism.lm.guided.numbers import NumberNode
from netprism.lm.guided.objects import ObjectNode
from netprism.lm.guided.refs import Resolver
from netprism.lm.guided.regex import DFA, any_string, compile_format, compile_pattern, intersect_dfa
from netprism.lm.guided.strings import StrNode

__all__ = [
    "DONE",
    "END",
    "SchemaAutomaton",
    "State",
    "UnsupportedSchemaError",
    "compile_schema",
    "compile_tagged_union",
]


def _dump(v: Any) -> bytes:
    return json.dumps(v, separators=(",", ":"), ensure_ascii=True).encode("ascii")


class SchemaAutomaton(Automaton):
    """Byte-level pushdown automaton for one schema document.

    Examples
    --------
    >>> a = compile_schema({"type": "integer", "minimum": -3, "maximum": 12})
    >>> s = a.advance(a.initial, ord("1"))
    >>> sorted(chr(b) for b in a.allowed_bytes(s)), a.is_accepting(s), a.min_close(s)
    (['\\n', '0', '1', '2'], True, 0)
    """

    def __init__(self, document: Any = None) -> None:
        super().__init__()
        self.use_document({} if document is None else document)
        self._memo: dict[tuple[int, ...], int] = {}

    def use_document(self, document: Any) -> None:
        """Resolve ``$ref`` (and validate enum values) against ``document`` from now on."""
        self.document = document
        self.resolver = Resolver(document)
        self.expander = Expander(self.resolver)
        self._validator: Any = None

    # -- schema -> nodes
    def build(self, schema: Any, path: str = "$") -> int:
        """Node id of ``schema`` (its nodes added to this automaton)."""
        return self._build([schema], path)

    def _empty(self) -> int:
        return self._add(Union(self, []))

    def _build(self, conj: list[Any], path: str) -> int:
        """Node of the conjunction of ``conj`` (memoized on the schemas it joins, references
        followed and repeats dropped, so recursion closes into a cycle)."""
        targets = [self.resolver.follow(s, path) for s in conj]
        if len(targets) == 1:
            path = targets[0][1]
        conj = [s for s, _ in targets]
        if any(s is False for s in conj):
            return self._empty()
        conj = list({id(s): s for s in conj if not is_true(s)}.values()) or [True]
        key = tuple(id(s) for s in conj)
        if key in self._memo:
            return self._memo[key]
        pid = self._empty()
        self._memo[key] = pid
        flats = [Flat(path)]
        for s in conj:
            alts = self.expander.alternatives(s, path)
            flats = [g for x in flats for y in alts if (g := merge(x, y)).kinds]
        branches = [self._flat(f) for f in flats]
        union = self.nodes[pid]
        assert isinstance(union, Union)
        union.branches = branches
        return pid

    def _flat(self, f: Flat) -> int:
        if f.enums:
            return self._enum(f)
        nodes = []
        if "null" in f.kinds:
            nodes.append(self._add(Lit(b"null")))
        if "boolean" in f.kinds:
            nodes.append(self._add(Trie([b"true", b"false"])))
        if "int" in f.kinds:
            integer = "frac" not in f.kinds or (f.mult is not None and f.mult.denominator == 1)
            nodes.append(self._add(NumberNode(f.lo, f.hi, f.mult, integer)))
        if "string" in f.kinds:
            nodes.append(self._string(f))
        if "array" in f.kinds:
            nodes.append(self._unique_array(f) if f.unique else self._array(f))
        if "object" in f.kinds:
            nodes.append(self._object(f))
        return nodes[0] if len(nodes) == 1 else self._add(Union(self, nodes))

    # -- finite values
    def _valid(self, value: Any, f: Flat) -> bool:
        """Whether ``value`` satisfies every schema of the flat (formats strictly)."""
        if kinds_of(value) not in f.kinds:
            return False
        if self._validator is None:
            cls = jsonschema.Draft7Validator
            self._validator = cls(self.document, format_checker=cls.FORMAT_CHECKER)
        if not all(self._validator.evolve(schema=s).is_valid(value) for s in f.conj):
            return False
        if isinstance(value, str):
            return all(compile_format(fm, f.path).matches(value) for fm in f.formats)
        return True

    def _values(self, f: Flat) -> dict[str, Any]:
        """Canonical key -> value of the flat's enum values that satisfy it."""
        out = {canon(v): v for v in f.enums[0]}
        for other in f.enums[1:]:
            keep = {canon(v) for v in other}
            out = {k: v for k, v in out.items() if k in keep}
        return {k: v for k, v in out.items() if self._valid(v, f)}

    def _enum(self, f: Flat) -> int:
        values = self._values(f)
        if not values:
            return self._empty()
        return self._add(Trie([_dump(v) for v in values.values()]))

    def _finite(self, conj: list[Any], path: str) -> dict[str, Any] | None:
        """The values of ``conj`` if it is a finite set (enum, const, boolean, null)."""
        if any(s is False for s in conj):
            return {}
        flats = [Flat(path)]
        for s in [s for s in conj if not is_true(s)]:
            flats = [
                g
                for x in flats
                for y in self.expander.alternatives(s, path)
                if (g := merge(x, y)).kinds
            ]
        out: dict[str, Any] = {}
        for f in flats:
            if not f.enums:
                if not f.kinds <= {"null", "boolean"}:
                    return None
                f.enums = [[None, True, False]]
            out.update(self._values(f))
        return out

    # -- types
    def _string(self, f: Flat) -> int:
        dfa: DFA | None = None
        parts = [compile_pattern(p, f.path) for p in f.patterns]
        parts += [compile_format(fm, f.path) for fm in f.formats]
        for d in parts:
            try:
                dfa = d if dfa is None else intersect_dfa(dfa, d)
            except UnsupportedSchemaError as error:
                raise UnsupportedSchemaError(
                    f"'pattern'/'format' at {f.path}: {error} (patterns and formats joined)"
                ) from None
        return self._add(StrNode(dfa or any_string(), f.min_len, f.max_len, f.path))

    def _array(self, f: Flat) -> int:
        hi = f.max_items
        if any(s is False for s in f.rest):
            hi = min(hi, len(f.tup))
        path = f"{f.path}.items"
        tup = [self._build(c, f"{path}[{k}]") for k, c in enumerate(f.tup[:hi])]
        rest = self._build(f.rest, path) if hi > len(f.tup) else None
        contains = None
        if f.contains:
            cpath = f"{f.path}.contains"
            ctup = [self._build(c + f.contains, cpath) for c in f.tup[:hi]]
            crest = self._build(f.rest + f.contains, cpath) if rest is not None else None
            contains = (ctup, crest, f.min_contains)
        nid = len(self.nodes)
        return self._add(ArrayNode(self, nid, (tup, rest), f.min_items, hi, contains))

    def _unique_array(self, f: Flat) -> int:
        hi = f.max_items
        if any(s is False for s in f.rest):
            hi = min(hi, len(f.tup))
        positions = f.tup[:hi] + ([f.rest] if hi > len(f.tup) else [])
        sets = [self._finite(c, f"{f.path}.items") for c in positions]
        if f.contains or any(s is None for s in sets) or any(s != sets[0] for s in sets):
            raise UnsupportedSchemaError(
                f"unsupported keyword 'uniqueItems' at {f.path}: supported only when every item "
                "comes from one finite set (enum, const, boolean, null) and without 'contains'"
            )
        values = sets[0] if sets else {}
        assert values is not None
        return self._add(UniqueArray([_dump(v) for v in values.values()], f.min_items, hi))

    def _object(self, f: Flat) -> int:
        names = list(dict.fromkeys([*f.props, *f.required]))
        props = []
        for name in names:
            conj = f.props.get(name, f.addl)
            if any(s is False for s in conj):
                if name in f.required:
                    return self._empty()
                continue
            val = self._build(conj, f"{f.path}.properties.{name}")
            key = _dump(name) + b":"
            props.append((self._add(Lit(key)), self._add(Lit(b"," + key)), val, name in f.required))
        addl = None
        wanted = f.addl_written or not f.props_written or f.min_props > len(names)
        if wanted and not any(s is False for s in f.addl):
            addl = self._build(f.addl, f"{f.path}.additionalProperties")
        nid, bounds = len(self.nodes), (f.min_props, f.max_props)
        return self._add(ObjectNode(self, nid, props, addl, bounds, frozenset(names)))


def compile_schema(schema: dict[str, Any] | bool) -> SchemaAutomaton:
    """Compile ``schema`` (see the module docstring) into a :class:`SchemaAutomaton`.

    Raises
    ------
    UnsupportedSchemaError
        Naming the first unsupported keyword and its JSON path, e.g.
        ``unsupported keyword 'patternProperties' at $.properties.tags``.
    """
    if not isinstance(schema, (dict, bool)):
        raise UnsupportedSchemaError(f"schema at $ must be a dict or bool, got {schema!r:.60}")
    a = SchemaAutomaton(schema)
    a.root = a.build(schema)
    _finish(a)
    return a


def _finish(a: SchemaAutomaton) -> None:
    a.finalize()
    if a.ml[a.root] >= INF:
        raise UnsupportedSchemaError(
            "schema at $ admits no value that can be generated (unsatisfiable, or it needs "
            "numbers beyond 15 digits or characters outside what patterns name)"
        )


def compile_tagged_union(
    branches: dict[str, dict[str, Any]], *, tag: str = "tool", value: str = "arguments"
) -> SchemaAutomaton:
    """Automaton for ``{"<tag>": name, "<value>": <branches[name] instance>}``: the value's
    schema switches on the generated name (a tagged-union node); each branch is its own
    document for ``$ref``."""
    if not branches:
        raise ValueError("a tagged union needs at least one branch, got none")
    a = SchemaAutomaton()
    ids = {}
    for name, sub in branches.items():
        a.use_document(sub)
        body = a.build(sub, f"$.{value}[{name}]")
        ids[_dump(name)] = a._seq([b"," + _dump(value) + b":", body, b"}"])
    trie = Trie(list(ids), ids, env=a)
    a.root = a._seq([b"{" + _dump(tag) + b":", a._add(trie)])
    _finish(a)
    return a
