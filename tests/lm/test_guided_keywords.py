"""Guided generation beyond the old subset: each keyword compiles exactly (every walk validates,
``min_close`` equals BFS), patterns agree with Python ``re``, UTF-8 strings count characters,
recursion closes within budget, and what stays unsupported is refused by keyword and path."""

from __future__ import annotations

import json
import random
import re

import jsonschema
import pytest
import torch
from guided_suite import bfs_close, format_checker, walk

from netprism.lm.guided.decode import guided_generate, stream_guided
from netprism.lm.guided.regex import FREE, compile_pattern
from netprism.lm.guided.schema import UnsupportedSchemaError, compile_schema
from netprism.lm.model import ByteLM, LMConfig

SCHEMAS = [
    {"type": "number", "minimum": -1.5, "exclusiveMaximum": 2.25, "multipleOf": 0.25},
    {"type": "number", "exclusiveMinimum": 1.1, "maximum": 1.3},
    {"type": "integer", "multipleOf": 7, "minimum": -30, "maximum": 30},
    {"type": ["string", "null"], "maxLength": 3},
    {"enum": [1, 1.0, "a", None, [1, {"b": 2}], {"c": [True]}], "not": False},
    {"type": "string", "enum": ["a", 1, "bb"], "maxLength": 1},
    {"properties": {"a": {"type": "integer"}, "b": {"const": "x"}}, "required": ["b"]},
    {
        "type": "object",
        "properties": {"a": {"type": "boolean"}},
        "minProperties": 3,
        "maxProperties": 3,
    },
    {
        "type": "object",
        "additionalProperties": {"type": "null"},
        "minProperties": 2,
        "maxProperties": 4,
    },
    {"type": "object", "properties": {"x": False}, "additionalProperties": {"enum": [1]}},
    {"anyOf": [{"type": "integer", "maximum": 3}, {"type": "integer", "minimum": 1, "maximum": 5}]},
    {"oneOf": [{"type": "string", "maxLength": 2}, {"type": "array", "maxItems": 1}]},
    {
        "oneOf": [
            {
                "type": "object",
                "properties": {"k": {"const": "a"}, "v": {"type": "integer"}},
                "required": ["k"],
            },
            {"type": "object", "properties": {"k": {"const": "b"}}, "required": ["k"]},
        ]
    },
    {
        "allOf": [
            {"properties": {"a": {"type": "integer"}}},
            {"additionalProperties": {"type": "string"}},
        ]
    },
    {
        "type": "array",
        "items": {"type": "integer"},
        "contains": {"minimum": 5, "maximum": 9},
        "maxItems": 3,
    },
    {"type": "array", "items": [{"type": "string"}, {"type": "null"}], "additionalItems": False},
    {"type": "array", "items": {"enum": ["x", "y", 3]}, "uniqueItems": True, "minItems": 2},
    {"type": "string", "format": "date-time"},
    {"type": "string", "format": "email", "maxLength": 12},
    {"type": "string", "pattern": "^(ab|c)+[0-9]{2}$", "minLength": 4},
    {
        "definitions": {"t": {"type": "array", "items": {"$ref": "#/definitions/t"}}},
        "$ref": "#/definitions/t",
    },
    {
        "type": "object",
        "properties": {"v": {"type": "integer"}, "next": {"$ref": "#"}},
        "required": ["v"],
        "additionalProperties": False,
    },
    {
        "$defs": {"a~b": {"type": "boolean"}},
        "properties": {"p": {"$ref": "#/$defs/a~0b"}},
        "type": "object",
    },
    # 23: one value a prefix of another; a value is written only at the "," or "]" after it
    {"type": "array", "items": {"enum": [1, 12, 123]}, "uniqueItems": True, "minItems": 1},
    # 24: draft 7 has no minContains: 0 must not drop 'contains'
    {"type": "array", "items": {"type": "integer"}, "contains": {"const": 1}, "minContains": 0},
    # 25: a long minItems (the minimum-length recursion must stay shallow)
    {"type": "array", "items": {"enum": [0, 1]}, "minItems": 400},
    # 26: a recursive mixin (the conjunction of one schema twice stays one node)
    {
        "definitions": {
            "base": {"properties": {"next": {"$ref": "#/definitions/a"}}},
            "a": {
                "type": "object",
                "allOf": [{"$ref": "#/definitions/base"}],
                "properties": {"next": {"$ref": "#/definitions/a"}},
                "additionalProperties": False,
            },
        },
        "$ref": "#/definitions/a",
    },
]


def _validator(schema):
    return jsonschema.Draft7Validator(schema, format_checker=format_checker())


@pytest.mark.parametrize("schema", SCHEMAS, ids=range(len(SCHEMAS)))
@pytest.mark.parametrize("extra", [0, 3, 25])
def test_walks_validate_and_close_within_budget(schema, extra):
    a, v, rng = compile_schema(schema), _validator(schema), random.Random(extra)
    budget = a.min_close(a.initial) + extra
    for _ in range(15):
        out = walk(a, budget, rng)
        assert len(out) <= budget
        assert v.is_valid(json.loads(out.decode("utf-8"))), out
        assert a.accepts(out)


BFS_SAFE = [0, 1, 2, 3, 4, 5, 6, 10, 11, 12, 14, 15, 16, 19, 22, 23]  # no free object keys


@pytest.mark.parametrize("schema", [SCHEMAS[i] for i in BFS_SAFE], ids=BFS_SAFE)
def test_min_close_matches_bfs(schema):
    a, rng = compile_schema(schema), random.Random(0)
    for _ in range(2):
        s, steps = a.initial, 0
        while not a.is_done(s) and steps < 12:
            assert a.min_close(s) == bfs_close(a, s, limit=20000)
            b = rng.choice(a.allowed_bytes(s))
            if b == 0x0A:
                break
            s, steps = a.advance(s, b), steps + 1


def test_number_bounds_and_multiples_are_exact():
    a = compile_schema({"type": "number", "minimum": -1, "maximum": 1, "multipleOf": 0.5})
    lang, stack = set(), [(a.initial, b"")]
    while stack:
        s, out = stack.pop()
        if a.is_accepting(s):
            lang.add(out.decode())
        stack += [(a.advance(s, b), out + bytes([b])) for b in a.allowed_bytes(s) if b != 0x0A]
    assert {float(x) for x in lang} == {-1, -0.5, 0, 0.5, 1}
    assert "-0" not in lang and all(float(x) % 0.5 == 0 for x in lang)


@pytest.mark.parametrize(
    "pattern", ["^a*$", "a+", "^[a-c]{2,3}x?$", "(?:ab|cd)+$", "^\\d{3}-\\w$", "[^a-z]", "^.$|^xy"]
)
def test_pattern_dfa_agrees_with_python_re(pattern):
    d, rng = compile_pattern(pattern), random.Random(0)
    alphabet = "abcdxy0129-_ ~"
    for _ in range(400):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 5)))
        assert d.matches(text) == bool(re.search(pattern, text)), text


def test_brace_that_is_no_quantifier_is_literal():  # ECMA-262 and Python's re agree here
    d = compile_pattern("^a{,x}$")
    assert d.matches("a{,x}") and re.search("^a{,x}$", "a{,x}")
    assert not d.matches("a") and not d.matches("a{,}")


def test_free_text_stays_printable_ascii():
    d = compile_pattern(".")
    assert all(lo >= 0x20 and hi <= 0x7E for row in d.trans for lo, hi, _ in row)
    assert FREE[0][0] == 0x20


def test_utf8_strings_count_characters_and_stream_whole_characters():
    schema = {"type": "string", "pattern": "^[é中😀]+$", "minLength": 2, "maxLength": 3}
    a, rng = compile_schema(schema), random.Random(0)
    for _ in range(30):
        text = json.loads(walk(a, 40, rng).decode("utf-8"))
        assert 2 <= len(text) <= 3 and set(text) <= set("é中😀")
    torch.manual_seed(0)
    model = ByteLM(LMConfig(context=64, n_layers=2, d_model=16, n_heads=2, n_kv_heads=1)).eval()
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    chunks = list(stream_guided(model, "s: ", schema, max_bytes=20, generator=g1))
    full = guided_generate(model, "s: ", schema, max_bytes=20, generator=g2)[0]
    assert "".join(chunks) == full and 2 <= len(json.loads(full)) <= 3


def test_recursive_schema_closes_at_tight_budgets():
    schema = SCHEMAS[21]
    a, v = compile_schema(schema), _validator(schema)
    assert a.min_close(a.initial) == len('{"v":0}')
    rng = random.Random(0)
    for budget in (7, 8, 15, 60):
        for _ in range(10):
            out = walk(a, budget, rng)
            assert len(out) <= budget and v.is_valid(json.loads(out))


@pytest.mark.parametrize(
    ("schema", "keyword", "path"),
    [
        (
            {"properties": {"t": {"patternProperties": {"^x": {}}}}},
            "patternProperties",
            "$.properties.t",
        ),
        ({"items": {"not": {"type": "object", "required": ["a"]}}}, "not", "$.items"),
        ({"if": {"type": "string"}, "then": {"maxLength": 2}}, "if", "$"),
        ({"dependencies": {"a": ["b"]}}, "dependencies", "$"),
        ({"propertyNames": {"maxLength": 2}}, "propertyNames", "$"),
        ({"type": "string", "pattern": "(?=a)b"}, "look-ahead", "$"),
        ({"type": "string", "pattern": "(a)\\1"}, "back-reference", "$"),
        ({"type": "string", "pattern": "(?<!a)b"}, "look-behind", "$"),
        (
            {"oneOf": [{"type": "integer"}, {"minimum": 2}]},
            "oneOf",
            "overlap on type(s) ['integer']",
        ),
        ({"multipleOf": 0.1}, "multipleOf", "$"),
        ({"$ref": "#"}, "left recursion", ""),
        ({"$ref": "other.json#/a"}, "$ref", "$"),
        ({"type": "string", "format": "uri"}, "format", "$"),
        ({"uniqueItems": True}, "uniqueItems", "$"),
        ({"type": "array", "contains": False}, "admits no value", "$"),
        (
            {"type": "object", "required": ["a"], "additionalProperties": False},
            "admits no value",
            "$",
        ),
        ({"frobnicate": 1}, "frobnicate", "$"),
        ({"items": {"pattern": "^a?+$"}}, "a quantifier after a quantifier", "$.items"),
        ({"pattern": "^a{,3}$"}, "{,n}", "$"),
        ({"pattern": "^(?<x>a)$"}, "named group", "$"),
        ({"properties": {"p": {"pattern": "a{30000}"}}}, "too large", "$.properties.p"),
        ({"type": "string", "pattern": "^\\uD800$"}, "admits no value", "$"),
        ({"items": {"enum": [1]}, "uniqueItems": 1}, "uniqueItems", "$"),
        ({"maximum": float("inf")}, "maximum", "$"),
        ({"maxLength": float("inf")}, "maxLength", "$"),
        ({"minProperties": 400}, "minProperties", "$"),
        (  # draft 7 ignores the siblings of $ref: branch 0 is any object, overlapping branch 1
            {
                "definitions": {"o": {"type": "object"}},
                "oneOf": [
                    {
                        "$ref": "#/definitions/o",
                        "required": ["k"],
                        "properties": {"k": {"const": 1}},
                    },
                    {"type": "object", "required": ["k"], "properties": {"k": {"const": 2}}},
                ],
            },
            "oneOf",
            "overlap on type(s) ['object']",
        ),
    ],
)
def test_unsupported_schemas_are_refused_by_name(schema, keyword, path):
    with pytest.raises(UnsupportedSchemaError, match=re.escape(keyword)) as e:
        compile_schema(schema)
    assert path in str(e.value)


def test_unique_items_where_one_value_prefixes_another():
    a = compile_schema(SCHEMAS[23])
    assert a.accepts(b"[1]") and a.accepts(b"[12,1]") and a.accepts(b"[123,12,1]")
    assert not a.accepts(b"[1,1]") and not a.accepts(b"[]") and not a.accepts(b"[12,12]")
    s = a.initial
    for b in b"[1":
        s = a.advance(s, b)
    assert a.min_close(s) == 1  # "]" closes "[1"
