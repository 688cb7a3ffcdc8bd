"""Schemas as unions of *flat* conjunctions: ``allOf`` merged, ``anyOf``/``oneOf`` distributed.

A :class:`Flat` holds one conjunction of keyword constraints, per JSON type, with no
combinators left at its top (subschemas of properties and items stay as lists of schemas whose
conjunction applies).  Merging two flats is exact: bounds tighten, enums and patterns pile up,
and a property named on one side only meets the other side's ``additionalProperties``.

``oneOf`` is compiled only when its branches are disjoint (then it equals ``anyOf``): their
possible JSON types do not overlap, or both are finite sets (``enum``/``const``) with no value in
common, or both are objects that require one property with disjoint finite values (a tagged
union).  Otherwise :class:`~netprism.lm.guided.errors.UnsupportedSchemaError` names the overlap.

JSON Schema draft 7 (Wright & Andrews, draft-handrews-json-schema-validation-01) semantics;
part of the guided generation of arXiv 2507.13575.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

from netprism.lm.guided.errors import UnsupportedSchemaError
from netprism.lm.guided.nodes import INF
from netprism.lm.guided.numbers import Bound, as_fraction, check_multiple
from netprism.lm.guided.refs import Resolver

ANNOTATIONS = frozenset(
    {"title", "description", "$schema", "$comment", "default", "examples", "readOnly"}
    | {"writeOnly", "contentMediaType", "contentEncoding", "definitions", "$defs", "$id"}
)
KINDS = frozenset({"null", "boolean", "int", "frac", "string", "array", "object"})
_TYPE_KINDS = {"integer": {"int"}, "number": {"int", "frac"}}
COMBINATORS = ("allOf", "anyOf", "oneOf", "if", "then", "else", "not", "$ref")
KEYWORDS = frozenset(
    {"type", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}
    | {"multipleOf", "minLength", "maxLength", "pattern", "format", "items", "additionalItems"}
    | {"minItems", "maxItems", "uniqueItems", "contains", "minContains", "properties"}
    | {"required", "additionalProperties", "minProperties", "maxProperties", "propertyNames"}
    | {"patternProperties"}
)
MAX_ALTERNATIVES = 64
MAX_MIN_COUNT = 64  # minProperties / minContains: the minimum-length recursion stays shallow


def kinds_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "int"
    if isinstance(value, float):
        return "frac"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names[type(value)]


def canon(value: Any) -> str:
    """A key equal for JSON-equal values (``1 == 1.0``, ``true != 1``)."""

    def norm(v: Any) -> Any:
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, list):
            return [norm(x) for x in v]
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        return v

    return json.dumps(norm(value), sort_keys=True)


def is_true(schema: Any) -> bool:
    return schema is True or (isinstance(schema, dict) and set(schema) <= ANNOTATIONS)


@dataclass
class Flat:
    """One conjunction of constraints; lists of schemas (``props``, ``tup``...) are
    conjunctions too, ``[]`` meaning any value and a ``False`` inside meaning none."""

    path: str
    conj: list[Any] = field(default_factory=list)  # the schemas this flat satisfies
    kinds: frozenset[str] = KINDS
    enums: list[list[Any]] = field(default_factory=list)
    lo: Bound = None
    hi: Bound = None
    mult: Fraction | None = None
    min_len: int = 0
    max_len: int = INF
    patterns: list[str] = field(default_factory=list)
    formats: list[str] = field(default_factory=list)
    min_items: int = 0
    max_items: int = INF
    tup: list[list[Any]] = field(default_factory=list)
    rest: list[Any] = field(default_factory=list)
    unique: bool = False
    contains: list[Any] = field(default_factory=list)
    min_contains: int = 1
    props: dict[str, list[Any]] = field(default_factory=dict)
    required: list[str] = field(default_factory=list)
    addl: list[Any] = field(default_factory=list)
    addl_written: bool = False  # some schema wrote additionalProperties
    props_written: bool = False  # some schema wrote properties
    min_props: int = 0
    max_props: int = INF

    def item_at(self, k: int) -> list[Any]:
        return self.tup[k] if k < len(self.tup) else self.rest


def _count(schema: dict[str, Any], key: str, path: str) -> int | None:
    v = schema.get(key)
    if v is None:
        return None
    finite = isinstance(v, int) or (isinstance(v, float) and math.isfinite(v))
    if isinstance(v, bool) or not finite or v < 0 or v != int(v):
        raise UnsupportedSchemaError(
            f"keyword {key!r} at {path} must be an integer >= 0, got {v!r}"
        )
    return int(v)


def _small_count(schema: dict[str, Any], key: str, path: str) -> int | None:
    v = _count(schema, key, path)
    if v is not None and v > MAX_MIN_COUNT:
        raise UnsupportedSchemaError(
            f"unsupported keyword value {key!r}={v} at {path}: at most {MAX_MIN_COUNT}"
        )
    return v


def _schema(v: Any, key: str, path: str) -> Any:
    if not isinstance(v, (dict, bool)):
        raise UnsupportedSchemaError(f"keyword {key!r} at {path} must be a schema, got {v!r:.60}")
    return v


def _types(schema: dict[str, Any], path: str) -> frozenset[str]:
    t = schema.get("type")
    if t is None:
        return KINDS
    names = [t] if isinstance(t, str) else t
    known = {"null", "boolean", "integer", "number", "string", "array", "object"}
    if not isinstance(names, list) or not names or any(n not in known for n in names):
        raise UnsupportedSchemaError(
            f"unsupported keyword value 'type'={t!r} at {path}; expected names from {sorted(known)}"
        )
    return frozenset(k for n in names for k in _TYPE_KINDS.get(n, {n}))


def _bound(schema: dict[str, Any], key: str, excl_key: str, path: str, upper: bool) -> Bound:
    out: Bound = None
    for k, excl in ((key, False), (excl_key, True)):
        if k in schema:
            out = tighter(out, (as_fraction(schema[k], k, path), excl), upper)
    return out


def tighter(a: Bound, b: Bound, upper: bool) -> Bound:
    if a is None or b is None:
        return a or b
    if a[0] != b[0]:
        return a if (a[0] < b[0]) == upper else b
    return (a[0], a[1] or b[1])


def from_schema(schema: dict[str, Any], path: str) -> Flat:
    """The flat constraints of ``schema``'s own keywords (combinators excluded)."""
    for key in schema:
        if key not in KEYWORDS and key not in ANNOTATIONS and key not in COMBINATORS:
            raise UnsupportedSchemaError(f"unsupported keyword {key!r} at {path}")
    f = Flat(path, [schema], _types(schema, path))
    if "enum" in schema:
        if not isinstance(schema["enum"], list) or not schema["enum"]:
            raise UnsupportedSchemaError(
                f"'enum' at {path} must be a non-empty list, got {schema['enum']!r:.80}"
            )
        f.enums.append(list(schema["enum"]))
    if "const" in schema:
        f.enums.append([schema["const"]])
    f.lo = _bound(schema, "minimum", "exclusiveMinimum", path, False)
    f.hi = _bound(schema, "maximum", "exclusiveMaximum", path, True)
    if "multipleOf" in schema:
        f.mult = check_multiple(as_fraction(schema["multipleOf"], "multipleOf", path), path)
    _strings(f, schema, path)
    _arrays(f, schema, path)
    _objects(f, schema, path)
    return f


def _strings(f: Flat, schema: dict[str, Any], path: str) -> None:
    f.min_len = _count(schema, "minLength", path) or 0
    f.max_len = _count(schema, "maxLength", path) if "maxLength" in schema else INF  # type: ignore[assignment]
    if "pattern" in schema:
        if not isinstance(schema["pattern"], str):
            raise UnsupportedSchemaError(f"'pattern' at {path} must be a string")
        f.patterns.append(schema["pattern"])
    if "format" in schema:
        f.formats.append(schema["format"])


def _arrays(f: Flat, schema: dict[str, Any], path: str) -> None:
    f.min_items = _count(schema, "minItems", path) or 0
    f.max_items = _count(schema, "maxItems", path) if "maxItems" in schema else INF  # type: ignore[assignment]
    items = schema.get("items", True)
    if isinstance(items, list):
        f.tup = [[_schema(s, "items", path)] for s in items]
        f.rest = [_schema(schema.get("additionalItems", True), "additionalItems", path)]
    else:
        f.rest = [_schema(items, "items", path)]
    unique = schema.get("uniqueItems", False)
    if not isinstance(unique, bool):
        raise UnsupportedSchemaError(
            f"'uniqueItems' at {path} must be true or false, got {unique!r}"
        )
    f.unique = unique
    if "contains" in schema:
        # draft 7 has no minContains (validators ignore it): a count above 1 only narrows the
        # outputs, and 0 must not drop 'contains', which draft 7 still enforces
        f.contains = [_schema(schema["contains"], "contains", path)]
        f.min_contains = max(_small_count(schema, "minContains", path) or 1, 1)


def _objects(f: Flat, schema: dict[str, Any], path: str) -> None:
    f.min_props = _small_count(schema, "minProperties", path) or 0
    f.max_props = _count(schema, "maxProperties", path) if "maxProperties" in schema else INF  # type: ignore[assignment]
    props = schema.get("properties", {})
    if not isinstance(props, dict):
        raise UnsupportedSchemaError(f"'properties' at {path} must be a dict, got {props!r:.60}")
    f.props = {k: [_schema(v, "properties", f"{path}.properties.{k}")] for k, v in props.items()}
    req = schema.get("required", [])
    if not isinstance(req, list) or not all(isinstance(r, str) for r in req):
        raise UnsupportedSchemaError(f"'required' at {path} must be a list of names, got {req!r}")
    f.required = list(dict.fromkeys(req))
    f.addl = [_schema(schema.get("additionalProperties", True), "additionalProperties", path)]
    f.addl_written = "additionalProperties" in schema
    f.props_written = "properties" in schema
    if schema.get("patternProperties", {}) != {}:
        raise UnsupportedSchemaError(f"unsupported keyword 'patternProperties' at {path}")
    names = schema.get("propertyNames", True)
    if names is False:
        f.max_props = 0
    elif not is_true(names):
        raise UnsupportedSchemaError(f"unsupported keyword 'propertyNames' at {path}")


def merge(a: Flat, b: Flat) -> Flat:
    """The conjunction of two flats (exact)."""
    names = list(dict.fromkeys([*a.props, *b.props]))
    n = max(len(a.tup), len(b.tup))
    if a.contains and b.contains:
        raise UnsupportedSchemaError(
            f"unsupported keyword 'contains' at {b.path}: a conjunction with the 'contains' at "
            f"{a.path} (two 'contains' on one array)"
        )
    return replace(
        a,
        conj=a.conj + b.conj,
        kinds=a.kinds & b.kinds,
        enums=a.enums + b.enums,
        lo=tighter(a.lo, b.lo, False),
        hi=tighter(a.hi, b.hi, True),
        mult=_lcm(a.mult, b.mult),
        min_len=max(a.min_len, b.min_len),
        max_len=min(a.max_len, b.max_len),
        patterns=a.patterns + b.patterns,
        formats=a.formats + b.formats,
        min_items=max(a.min_items, b.min_items),
        max_items=min(a.max_items, b.max_items),
        tup=[a.item_at(k) + b.item_at(k) for k in range(n)],
        rest=a.rest + b.rest,
        unique=a.unique or b.unique,
        contains=a.contains + b.contains,
        min_contains=a.min_contains if a.contains else b.min_contains,
        props={k: a.props.get(k, a.addl) + b.props.get(k, b.addl) for k in names},
        required=list(dict.fromkeys(a.required + b.required)),
        addl=a.addl + b.addl,
        addl_written=a.addl_written or b.addl_written,
        props_written=a.props_written or b.props_written,
        min_props=max(a.min_props, b.min_props),
        max_props=min(a.max_props, b.max_props),
    )


def _lcm(a: Fraction | None, b: Fraction | None) -> Fraction | None:
    if a is None or b is None:
        return a if b is None else b
    num = a.numerator * b.numerator // math.gcd(a.numerator, b.numerator)
    return Fraction(num, math.gcd(a.denominator, b.denominator))


# ---------------------------------------------------------------- combinators
class Expander:
    """``alternatives(schema)``: the flats whose union is ``schema``."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver

    def alternatives(self, schema: Any, path: str, seen: tuple[int, ...] = ()) -> list[Flat]:
        if schema is True:
            return [Flat(path)]
        if schema is False:
            return []
        if not isinstance(schema, dict):
            raise UnsupportedSchemaError(f"schema at {path} must be a dict or bool, got {schema!r}")
        if "$ref" in schema:
            target, where = self.resolver.resolve(schema["$ref"], path)
            if id(target) in seen:
                raise UnsupportedSchemaError(
                    f"'$ref' at {path} recurses through allOf/anyOf/oneOf only (left recursion)"
                )
            return self.alternatives(target, where, (*seen, id(target)))
        out = [from_schema(schema, path)]
        inner = (*seen, id(schema))
        for key, subs in self._parts(schema, path):
            branches = [
                self.alternatives(sub, f"{path}.{key}[{i}]", inner) for i, sub in enumerate(subs)
            ]
            if key != "allOf":  # a union: one list of alternatives
                branches = [[f for alts in branches for f in alts]]
            for alts in branches:
                out = [g for x in out for y in alts if (g := merge(x, y)).kinds]
                if len(out) > MAX_ALTERNATIVES:
                    raise UnsupportedSchemaError(
                        f"{path}: more than {MAX_ALTERNATIVES} alternatives after distributing "
                        "anyOf/oneOf over allOf"
                    )
        return out

    def _parts(self, schema: dict[str, Any], path: str) -> list[tuple[str, list[Any]]]:
        parts: list[tuple[str, list[Any]]] = []
        for key in ("allOf", "anyOf", "oneOf"):
            if key in schema:
                subs = schema[key]
                if not isinstance(subs, list) or not subs:
                    raise UnsupportedSchemaError(f"'{key}' at {path} must be a non-empty list")
                if key == "oneOf":
                    self.check_disjoint(subs, path)
                parts.append((key, subs))
        if "if" in schema and ("then" in schema or "else" in schema):
            cond = schema["if"]
            if not isinstance(cond, bool):
                raise UnsupportedSchemaError(f"unsupported keyword 'if' (with then/else) at {path}")
            branch = schema.get("then" if cond else "else", True)
            parts.append(("allOf", [branch]))
        if "not" in schema:
            neg = schema["not"]
            if is_true(neg):
                parts.append(("allOf", [False]))
            elif neg is not False:
                raise UnsupportedSchemaError(f"unsupported keyword 'not' at {path}")
        return parts

    # -- oneOf
    def type_set(self, schema: Any, path: str, seen: tuple[int, ...] = ()) -> frozenset[str]:
        """A superset of the JSON kinds that ``schema`` (at ``path``) accepts."""
        if schema is True or not isinstance(schema, dict) or id(schema) in seen:
            return KINDS if schema is not False else frozenset()
        seen = (*seen, id(schema))
        if "$ref" in schema:
            target, where = self.resolver.resolve(schema["$ref"], path)
            return self.type_set(target, where, seen)
        out = _types(schema, path)
        for key in ("enum", "const"):
            if key in schema:
                vals = schema[key] if key == "enum" else [schema[key]]
                out &= frozenset(kinds_of(v) for v in (vals if isinstance(vals, list) else []))
        for i, sub in enumerate(schema.get("allOf", [])):
            out &= self.type_set(sub, f"{path}.allOf[{i}]", seen)
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list):
                subs = enumerate(schema[key])
                out &= frozenset().union(
                    *(self.type_set(s, f"{path}.{key}[{i}]", seen) for i, s in subs)
                )
        return out

    def check_disjoint(self, subs: list[Any], path: str) -> None:
        kinds = [self.type_set(s, f"{path}.oneOf[{i}]") for i, s in enumerate(subs)]
        for i in range(len(subs)):
            for j in range(i + 1, len(subs)):
                common = kinds[i] & kinds[j]
                if common and not self._apart(subs[i], subs[j], common, path):
                    shown = sorted(
                        {
                            "integer" if k == "int" else "number" if k == "frac" else k
                            for k in common
                        }
                    )
                    raise UnsupportedSchemaError(
                        f"'oneOf' at {path}: branches {i} and {j} overlap on type(s) {shown}; "
                        "oneOf is compiled only when its branches are disjoint"
                    )

    def _apart(self, a: Any, b: Any, common: frozenset[str], path: str) -> bool:
        a, b = self.resolver.follow(a, path)[0], self.resolver.follow(b, path)[0]
        va, vb = self._finite(a), self._finite(b)
        if va is not None and vb is not None:
            return not (va & vb)
        if common != {"object"} or not isinstance(a, dict) or not isinstance(b, dict):
            return False
        pa, pb = a.get("properties", {}), b.get("properties", {})
        for name in set(a.get("required", [])) & set(b.get("required", [])):
            fa, fb = self._finite(pa.get(name)), self._finite(pb.get(name))
            if fa is not None and fb is not None and not (fa & fb):
                return True
        return False

    def _finite(self, schema: Any) -> set[str] | None:
        """Canonical values of a pure ``enum``/``const`` schema, else None."""
        if not isinstance(schema, dict) or not set(schema) - ANNOTATIONS <= {"enum", "const"}:
            return None
        if "enum" not in schema and "const" not in schema:
            return None
        vals: set[str] | None = None
        for key in ("enum", "const"):
            if key in schema:
                here = {canon(v) for v in (schema["enum"] if key == "enum" else [schema["const"]])}
                vals = here if vals is None else vals & here
        return vals
