"""Constrained tool calling: the arguments schema switches on the generated tool name, the right
function runs with valid arguments, failures are recorded, the transcript has the documented
format."""

import json
import random

import jsonschema
import pytest
import torch

from netprism.lm.guided.schema import END, compile_tagged_union
from netprism.lm.guided.tools import (
    Tool,
    call_tool,
    compile_tool_call,
    parse_tool_call,
    run_tool_loop,
    tool_call_json_schema,
)
from netprism.lm.model import ByteLM, LMConfig


def _int(lo, hi):
    return {"type": "integer", "minimum": lo, "maximum": hi}


def _obj(**props):
    return {"type": "object", "properties": props, "required": list(props)}


def _tools(log):
    def add(a, b):
        log.append(("add", a, b))
        return a + b

    def shout(text, times):
        log.append(("shout", text, times))
        return (text.upper() + "!") * times

    return [
        Tool("add", "add two small integers", _obj(a=_int(-9, 9), b=_int(0, 99)), add),
        Tool(
            "shout",
            "repeat a word loudly",
            _obj(text={"type": "string", "minLength": 1, "maxLength": 5}, times=_int(1, 3)),
            shout,
        ),
    ]


def _model(context=256):
    torch.manual_seed(0)
    return ByteLM(LMConfig(context=context, n_layers=2, d_model=16, n_heads=2, n_kv_heads=1)).eval()


def test_arguments_schema_switches_on_the_generated_name():
    tools = _tools([])
    a, schema, rng = compile_tool_call(tools), tool_call_json_schema(tools), random.Random(0)
    seen = set()
    for _ in range(60):
        s, out = a.initial, bytearray()
        while not a.is_done(s):
            b = rng.choice(a.allowed_bytes(s))
            assert b != END
            s = a.advance(s, b)
            out.append(b)
        obj = json.loads(out)
        jsonschema.validate(obj, schema)
        seen.add(obj["tool"])
    assert seen == {"add", "shout"}
    s = a.initial
    for b in b'{"tool":"add","arguments":{"a":':
        s = a.advance(s, b)
    assert set(a.allowed_bytes(s)) == set(b"-0123456789")  # add's integer, not shout's string


def test_min_close_of_a_tagged_union_is_the_shortest_branch():
    a = compile_tagged_union({"long": _obj(x=_int(100, 999)), "s": _obj()})
    assert a.min_close(a.initial) == len('{"tool":"s","arguments":{}}')


def test_tool_loop_runs_the_right_functions_with_valid_arguments():
    log = []
    tools = _tools(log)
    g = torch.Generator().manual_seed(0)
    transcript, calls = run_tool_loop(
        _model(), "Use the tools.", tools, max_calls=6, max_bytes=64, generator=g
    )
    assert len(calls) == 6 and len(log) == 6
    by_name = {t.name: t for t in tools}
    for call, entry in zip(calls, log):
        jsonschema.validate(call.arguments, by_name[call.name].parameters)
        assert entry == (call.name, *call.arguments.values())
        assert call.error is None
        args = call.arguments
        want = (
            args["a"] + args["b"]
            if call.name == "add"
            else (args["text"].upper() + "!") * args["times"]
        )
        assert call.result == want
        assert f"<call>{call.text}</call>\n<result>{json.dumps(call.result)}</result>" in transcript
    assert transcript.startswith("Use the tools.\n<call>")
    assert {c.name for c in calls} == {"add", "shout"}


def test_failing_tool_is_recorded_and_unknown_tool_rejected():
    def boom(x):
        raise RuntimeError(f"no {x}")

    tools = [Tool("boom", "always fails", _obj(x=_int(0, 5)), boom)]
    call = call_tool(_model(), "go", tools, max_bytes=40, generator=torch.Generator())
    assert call.result is None and call.error == f"RuntimeError: no {call.arguments['x']}"
    transcript, calls = run_tool_loop(_model(), "go", tools, max_calls=1, max_bytes=40)
    assert transcript.endswith(f"<error>{calls[0].error}</error>")
    with pytest.raises(ValueError, match="unknown tool 'nope'"):
        parse_tool_call('{"tool":"nope","arguments":{}}', tools)
    with pytest.raises(ValueError, match="duplicate tool name"):
        compile_tool_call(tools + tools)


def test_long_transcript_is_cut_to_the_context():
    log = []
    transcript, calls = run_tool_loop(
        _model(context=128), "x" * 200, _tools(log), max_calls=3, max_bytes=64
    )
    assert len(calls) == 3 and len(transcript) > 200
