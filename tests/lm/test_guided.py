"""Guided generation: random schemas of the subset, random walks and a tiny untrained LM always
give valid JSON within budget; integer/enum languages are exact; min_close equals BFS; clear
errors; streaming; a cross-check of masks against outlines-core on a 256-byte vocabulary."""

import json
import random
import re

import jsonschema
import pytest
import torch
from guided_suite import bfs_close, walk
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from netprism.lm.guided.decode import (
    guided_generate,
    is_valid,
    mask_overhead,
    stream_guided,
    unconstrained_generate,
    validity_rate,
)
from netprism.lm.guided.nodes import STRING_BYTES
from netprism.lm.guided.schema import END, UnsupportedSchemaError, compile_schema
from netprism.lm.model import ByteLM, LMConfig

NAMES = st.text("abcxyz_", min_size=1, max_size=4)


@st.composite
def _int_schema(draw):
    lo = draw(st.integers(-150, 150))
    return {"type": "integer", "minimum": lo, "maximum": lo + draw(st.integers(0, 300))}


@st.composite
def _str_schema(draw):
    lo = draw(st.integers(0, 3))
    return {"type": "string", "minLength": lo, "maxLength": lo + draw(st.integers(0, 4))}


LEAVES = st.one_of(
    _int_schema(),
    _str_schema(),
    st.just({"type": "boolean", "title": "flag"}),
    st.builds(
        lambda v: {"enum": v},
        st.lists(
            st.one_of(st.text("ab1", max_size=3), st.integers(-20, 20)),
            min_size=1,
            max_size=4,
            unique=True,
        ),
    ),
)


def _extend(children):
    obj = st.dictionaries(NAMES, children, max_size=3).map(
        lambda p: {"type": "object", "properties": p, "required": list(p)}
    )
    arr = st.tuples(children, st.integers(0, 2), st.integers(0, 2)).map(
        lambda t: {"type": "array", "items": t[0], "minItems": t[1], "maxItems": t[1] + t[2]}
    )
    return st.one_of(obj, arr)


SCHEMAS = st.recursive(LEAVES, _extend, max_leaves=5)


@settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(schema=SCHEMAS, extra=st.integers(0, 25), seed=st.integers(0, 2**16))
def test_random_walks_validate_within_budget(schema, extra, seed):
    a = compile_schema(schema)
    budget = a.min_close(a.initial) + extra
    rng = random.Random(seed)
    for _ in range(3):
        out = walk(a, budget, rng)
        assert len(out) <= budget
        jsonschema.validate(json.loads(out), schema)
        assert a.accepts(out)


def _tiny(context=256, seed=0):
    torch.manual_seed(seed)
    cfg = LMConfig(context=context, n_layers=2, d_model=16, n_heads=2, n_kv_heads=1)
    return ByteLM(cfg).eval()


MODEL = _tiny()


@settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(schema=SCHEMAS, extra=st.integers(0, 15), seed=st.integers(0, 2**16))
def test_untrained_lm_always_validates(schema, extra, seed):
    a = compile_schema(schema)
    budget = a.min_close(a.initial) + extra
    assume(budget + 8 <= MODEL.config.context)
    g = torch.Generator().manual_seed(seed)
    texts = guided_generate(MODEL, "json: ", a, max_bytes=budget, num_samples=4, generator=g)
    for t in texts:
        assert len(t.encode()) <= budget
        assert is_valid(t, schema), t


def _language(a, limit=5000):
    """All complete outputs of a finite automaton (by DFS), as strings."""
    found, stack = set(), [(a.initial, b"")]
    while stack:
        s, out = stack.pop()
        if a.is_accepting(s):
            found.add(out.decode())
        for b in a.allowed_bytes(s):
            if b != END:
                stack.append((a.advance(s, b), out + bytes([b])))
        assert len(found) < limit
    return found


@pytest.mark.parametrize(
    "lo,hi",
    [(5, 5), (0, 0), (-7, -3), (-12, 7), (-100, -100), (9, 10), (0, 105), (-1, 0), (-250, -190)],
)
def test_integer_range_language_is_exact(lo, hi):
    a = compile_schema({"type": "integer", "minimum": lo, "maximum": hi})
    assert _language(a) == {str(i) for i in range(lo, hi + 1)}
    assert a.min_close(a.initial) == min(len(str(i)) for i in range(lo, hi + 1))


def test_enum_language_and_prefix_values():
    vals = [1, 12, 123, -4, "a", "ab", ""]
    a = compile_schema({"enum": vals})
    assert _language(a) == {json.dumps(v) for v in vals}
    s = a.advance(a.initial, ord("1"))  # "1" is complete but may grow: END is allowed
    assert a.is_accepting(s) and not a.is_done(s) and END in a.allowed_bytes(s)
    assert a.is_done(a.advance(a.advance(s, ord("2")), ord("3")))


SMALL = [
    {"type": "integer", "minimum": 95, "maximum": 1003},
    {"type": "integer", "minimum": -31, "maximum": -9},
    {"enum": ["abc", 7, "z"]},
    {
        "type": "object",
        "properties": {
            "n": {"type": "string", "minLength": 2, "maxLength": 3},
            "v": {"type": "array", "items": {"type": "boolean"}, "minItems": 2, "maxItems": 3},
            "o": {"type": "object", "properties": {"k": {"enum": [10, 200]}}, "required": ["k"]},
        },
        "required": ["n", "v", "o"],
    },
    {"type": "array", "items": {"type": "integer", "minimum": -3, "maximum": 40}, "maxItems": 2},
]


def _walk_checking_min_close(a, rng):
    """A random walk to the end, checking ``min_close`` against BFS at every state."""
    s = a.initial
    while not a.is_done(s):
        assert a.min_close(s) == bfs_close(a, s)
        b = rng.choice(a.allowed_bytes(s))
        if b == END:
            break
        s = a.advance(s, b)


@pytest.mark.parametrize("schema", SMALL)
def test_min_close_matches_bfs(schema):
    a = compile_schema(schema)
    rng = random.Random(0)
    for _ in range(4):
        _walk_checking_min_close(a, rng)


@pytest.mark.parametrize(
    "schema,keyword,path",
    [
        ({"type": "string", "maxLength": 3, "pattern": "(?=a)"}, "look-ahead", "$"),
        ({"oneOf": []}, "oneOf", "$"),
        ({"$ref": "#/x"}, "$ref", "$"),
        (
            {
                "type": "object",
                "properties": {"d": {"type": "string", "maxLength": 2, "format": "uri"}},
                "required": ["d"],
            },
            "format",
            "$.properties.d",
        ),
        ({"type": "integer", "minimum": 0, "multipleOf": 0.3}, "multipleOf", "$"),
        ({"type": "object", "patternProperties": {"a": {}}}, "patternProp", "$"),
        ({"type": "array", "items": {"not": {"required": ["a"]}}, "maxItems": 1}, "not", "$.items"),
        ({"enum": []}, "enum", "$"),
    ],
)
def test_unsupported_keywords_are_named(schema, keyword, path):
    with pytest.raises(UnsupportedSchemaError, match=re.escape(keyword)) as e:
        compile_schema(schema)
    assert path in str(e.value)
    assert isinstance(e.value, ValueError)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "maxLength": 3, "pattern": "a+"},
        {"type": "object", "properties": {"d": {"type": "string", "format": "date"}}},
        {"type": "number"},
        {"type": "integer", "minimum": 0},
        {"type": "string"},
        {"type": "array", "items": {"type": "boolean"}},
        {"type": "object", "properties": {}, "additionalProperties": True},
        {"type": "array", "items": {"type": "null"}, "maxItems": 1},
        {"enum": [1.5]},
    ],
)
def test_formerly_refused_schemas_now_compile_and_validate(schema):
    a, rng = compile_schema(schema), random.Random(0)
    for _ in range(10):
        out = walk(a, a.min_close(a.initial) + 12, rng)
        jsonschema.validate(json.loads(out), schema)


def test_disallowed_byte_and_too_long_prompt_are_refused():
    schema = {"type": "integer", "minimum": 0, "maximum": 9}
    a = compile_schema(schema)
    with pytest.raises(ValueError, match="not allowed"):
        a.advance(a.initial, ord("x"))
    model = _tiny(context=32)
    with pytest.raises(ValueError, match="context of 32"):
        guided_generate(model, "p" * 30, schema, max_bytes=3)
    with pytest.raises(ValueError, match="shortest valid output"):
        guided_generate(model, "p", {"type": "string", "minLength": 5, "maxLength": 9}, max_bytes=4)
    with pytest.raises(ValueError, match="empty prompt"):
        guided_generate(model, "", schema, max_bytes=3)


def test_budget_forces_close_at_exact_minimum():
    schema = SMALL[3]
    a = compile_schema(schema)
    need = a.min_close(a.initial)
    g = torch.Generator().manual_seed(3)
    for t in guided_generate(MODEL, "x", a, max_bytes=need, num_samples=6, generator=g):
        assert len(t) == need and is_valid(t, schema)


def test_streaming_chunks_concatenate_to_final_text():
    schema = SMALL[3]
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    chunks = list(stream_guided(MODEL, "obj: ", schema, max_bytes=40, generator=g1))
    full = guided_generate(MODEL, "obj: ", schema, max_bytes=40, generator=g2)[0]
    assert len(chunks) > 1 and "".join(chunks) == full and is_valid(full, schema)


def test_unconstrained_contrast_and_overhead_helper():
    schema = SMALL[3]
    g = torch.Generator().manual_seed(0)
    texts = unconstrained_generate(MODEL, "obj: ", max_bytes=40, num_samples=16, generator=g)
    assert validity_rate(texts, schema) == 0.0
    guided = guided_generate(MODEL, "obj: ", schema, max_bytes=40, num_samples=16, generator=g)
    assert validity_rate(guided, schema) == 1.0
    o = mask_overhead(MODEL, "obj: ", schema, max_bytes=40)
    assert o["cold_mask_us"] > 0 and o["warm_mask_us"] > 0 and o["model_us"] > 0


# ------------------------------------------------ cross-check with outlines-core
def _esc(s):
    return "".join("\\" + c if c in "\\.+*?()|[]{}^$" else c for c in s)


def _alt(options):
    return "(?:" + "|".join(sorted(set(options), key=len, reverse=True)) + ")"


def _regex(schema):
    """The exact regular language of our compact subset (integer ranges enumerated).

    outlines-core's index gives alternation leftmost-first priority (``2|20`` never reaches
    ``20``), so alternatives are listed longest first."""
    if "enum" in schema:
        return _alt(_esc(json.dumps(v)) for v in schema["enum"])
    t = schema["type"]
    if t == "string":
        lo, hi = schema.get("minLength", 0), schema["maxLength"]
        return '"[ !#-\\[\\]-~]{' + f"{lo},{hi}" + '}"'
    if t == "integer":
        return _alt(str(i) for i in range(schema["minimum"], schema["maximum"] + 1))
    if t == "boolean":
        return "(?:true|false)"
    if t == "object":
        body = ",".join(f'"{k}":{_regex(v)}' for k, v in schema["properties"].items())
        return "\\{" + body + "\\}"
    item, lo, hi = _regex(schema["items"]), schema.get("minItems", 0), schema["maxItems"]
    if hi == 0:
        return "\\[\\]"
    if lo == 0:
        return "\\[(?:" + item + "(?:," + item + "){0," + str(hi - 1) + "})?\\]"
    return "\\[" + item + "(?:," + item + "){" + f"{lo - 1},{hi - 1}" + "}\\]"


def _outlines_guide(regex):
    oc = pytest.importorskip("outlines_core")
    vocab = oc.Vocabulary(256, {bytes([b]): [b] for b in range(256)})  # byte b is token b
    return oc.Guide(oc.Index(regex, vocab))


def _ours(a, s):
    return set(a.allowed_bytes(s)) - {END} | ({256} if a.is_accepting(s) else set())


@pytest.mark.parametrize("schema", SMALL)
def test_masks_match_outlines_core_exact_regex(schema):
    a = compile_schema(schema)
    rng = random.Random(1)
    for _ in range(5):
        guide, s = _outlines_guide(_regex(schema)), a.initial
        theirs = set(guide.get_tokens())
        while True:
            assert _ours(a, s) == theirs
            choices = sorted(_ours(a, s) - {256})
            if not choices:
                break
            b = rng.choice(choices)
            s, theirs = a.advance(s, b), set(guide.advance(b))


def test_masks_match_outlines_core_schema_regex_on_shared_alphabet():
    """outlines' own schema->regex: strings also allow escapes and non-ASCII, integers are
    unbounded; on a schema without integers, compare on printable ASCII minus the backslash."""
    oc = pytest.importorskip("outlines_core")
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 4},
            "kind": {"enum": ["a", "bb"]},
            "ok": {"type": "boolean"},
            "tags": {"type": "array", "items": {"enum": ["x", "y"]}, "minItems": 1, "maxItems": 2},
        },
        "required": ["name", "kind", "ok", "tags"],
    }
    regex = oc.json_schema.build_regex_from_schema(json.dumps(schema), whitespace_pattern="")
    shared = set(STRING_BYTES) | {0x22, 256}
    a, rng = compile_schema(schema), random.Random(2)
    for _ in range(5):
        guide, s = _outlines_guide(regex), a.initial
        theirs = set(guide.get_tokens())
        while True:
            assert _ours(a, s) == theirs & shared
            choices = sorted(_ours(a, s) - {256})
            if not choices:
                break
            b = rng.choice(choices)
            s, theirs = a.advance(s, b), set(guide.advance(b))


@settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(schema=SCHEMAS, seed=st.integers(0, 2**16))
def test_masks_match_outlines_core_on_random_schemas(schema, seed):
    a, rng = compile_schema(schema), random.Random(seed)
    guide, s = _outlines_guide(_regex(schema)), a.initial
    theirs = set(guide.get_tokens())
    while True:
        assert _ours(a, s) == theirs
        choices = sorted(_ours(a, s) - {256})
        if not choices:
            break
        b = rng.choice(choices)
        s, theirs = a.advance(s, b), set(guide.advance(b))


@pytest.mark.parametrize("kw", [{"temperature": 0.0}, {"top_k": 3}, {"temperature": 2.0}])
def test_greedy_and_top_k_stay_valid(kw):
    schema = SMALL[3]
    g = torch.Generator().manual_seed(0)
    texts = guided_generate(MODEL, "obj: ", schema, max_bytes=45, num_samples=4, generator=g, **kw)
    assert validity_rate(texts, schema) == 1.0


def test_outlines_schema_regex_drops_integer_enum_values_with_a_prefix_value():
    """A legitimate disagreement: outlines-core compiles ``enum [1, 12]`` to ``(1|12)`` and,
    alternation being leftmost-first, never allows ``2`` after ``1``; we allow both."""
    oc = pytest.importorskip("outlines_core")
    schema = {"enum": [1, 12]}
    guide = _outlines_guide(oc.json_schema.build_regex_from_schema(json.dumps(schema)))
    assert set(guide.advance(ord("1"))) == {256}
    a = compile_schema(schema)
    assert _ours(a, a.advance(a.initial, ord("1"))) == {ord("2"), 256}


@settings(
    max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(schema=SCHEMAS, seed=st.integers(0, 2**16))
def test_min_close_matches_bfs_on_random_schemas(schema, seed):
    _walk_checking_min_close(compile_schema(schema), random.Random(seed))


@pytest.mark.parametrize(
    ("schema", "keyword"),
    [
        ({"type": "strin"}, "type"),
        ({"type": "boolean", "minLength": -1}, "minLength"),
        ({"type": "array", "items": 3}, "items"),
        (
            {"type": "object", "properties": {"a": {"type": "boolean"}}, "required": ["a", 1]},
            "required",
        ),
    ],
)
def test_malformed_schemas_are_rejected_by_keyword(schema, keyword):
    with pytest.raises(UnsupportedSchemaError, match=f"'{keyword}'"):
        compile_schema(schema)


def test_enum_values_must_satisfy_their_siblings():
    a = compile_schema({"type": "string", "enum": ["a", 1, "bcd"], "maxLength": 2})
    assert a.accepts(b'"a"') and not a.accepts(b"1") and not a.accepts(b'"bcd"')
    b = compile_schema({"type": ["boolean", "null"], "enum": [True, 0, None]})
    assert b.accepts(b"true") and b.accepts(b"null") and not b.accepts(b"0")


def test_typed_enum_is_exactly_its_values():
    a = compile_schema({"type": "integer", "enum": [1, 12]})
    assert a.accepts(b"12") and a.accepts(b"1") and not a.accepts(b"2")
