"""Constrained tool calling for the byte LM: a tool-name enum plus the chosen tool's arguments.

"Apple Intelligence Foundation Language Models: Tech Report 2025" (arXiv 2507.13575): in the
Foundation Models framework a tool has a name, a short description and ``@Generable`` arguments;
constrained decoding guarantees valid arguments, the framework runs the tool and inserts its output
into the transcript.  Here a call is generated as compact JSON
``{"tool":"<name>","arguments":{...}}`` under a tagged-union automaton
(:func:`~netprism.lm.guided.schema.compile_tagged_union`): once the name is generated, the arguments
follow that tool's schema.

**Transcript format** (plain text, one element per line)::

    <prompt>
    <call>{"tool":"add","arguments":{"a":1,"b":2}}</call>
    <result>3</result>

A tool that raises is recorded, not re-raised: its line is ``<error>TypeName: message</error>``
and :attr:`ToolCall.error` holds the same text.  A name not in the tool list can only arise from
text parsed outside constrained decoding; :func:`parse_tool_call` raises ``ValueError`` for it.
When the transcript outgrows the model's context, the model sees only its most recent bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from netprism.lm.guided.decode import guided_generate
from netprism.lm.guided.schema import SchemaAutomaton, compile_tagged_union
from netprism.lm.model import ByteLM

CALL_OPEN, CALL_CLOSE = "<call>", "</call>"


@dataclass(frozen=True)
class Tool:
    """A callable tool: ``parameters`` is an object schema of the supported subset."""

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any]


@dataclass
class ToolCall:
    """One generated call: the raw JSON text, parsed name/arguments, and the outcome."""

    text: str
    name: str
    arguments: dict[str, Any]
    result: Any = None
    error: str | None = None


def _check_tools(tools: Sequence[Tool]) -> dict[str, Tool]:
    if not tools:
        raise ValueError("need at least one tool, got none")
    by_name: dict[str, Tool] = {}
    for t in tools:
        if not isinstance(t, Tool):
            raise ValueError(f"expected Tool instances, got {type(t).__name__}")
        if t.name in by_name:
            raise ValueError(f"duplicate tool name {t.name!r}")
        kind = t.parameters.get("type") if isinstance(t.parameters, dict) else None
        if kind != "object":
            raise ValueError(
                f"tool {t.name!r}: parameters must be an object schema (type 'object'), got "
                f"{t.parameters!r:.80}"
            )
        by_name[t.name] = t
    return by_name


def compile_tool_call(tools: Sequence[Tool]) -> SchemaAutomaton:
    """Automaton for one call ``{"tool": name, "arguments": <that tool's parameters>}``."""
    return compile_tagged_union({t.name: t.parameters for t in _check_tools(tools).values()})


def tool_call_json_schema(tools: Sequence[Tool]) -> dict[str, Any]:
    """Standard JSON Schema (``oneOf``) equivalent to :func:`compile_tool_call`, for validation."""
    return {
        "oneOf": [
            {
                "type": "object",
                "properties": {"tool": {"const": t.name}, "arguments": t.parameters},
                "required": ["tool", "arguments"],
                "additionalProperties": False,
            }
            for t in _check_tools(tools).values()
        ]
    }


def describe_tools(tools: Sequence[Tool]) -> str:
    """One line per tool (name, description, argument schema) to put in the prompt."""
    return "\n".join(
        f"tool {t.name}: {t.description} args={json.dumps(t.parameters, separators=(',', ':'))}"
        for t in tools
    )


def parse_tool_call(text: str, tools: Sequence[Tool]) -> ToolCall:
    """Parse a call's JSON text; ValueError for bad JSON or a name not in ``tools``."""
    by_name = {t.name: t for t in tools}
    obj = json.loads(text)
    if not isinstance(obj, dict) or set(obj) != {"tool", "arguments"}:
        raise ValueError(f"a tool call is an object with keys 'tool', 'arguments', got {text!r}")
    if obj["tool"] not in by_name:
        raise ValueError(f"unknown tool {obj['tool']!r}; expected one of {sorted(by_name)}")
    return ToolCall(text=text, name=obj["tool"], arguments=obj["arguments"])


def execute(call: ToolCall, tools: Sequence[Tool]) -> ToolCall:
    """Run ``fn(**arguments)``; an exception is recorded in ``call.error`` (not raised)."""
    fn = {t.name: t for t in tools}[call.name].fn
    try:
        call.result = fn(**call.arguments)
    except Exception as e:  # noqa: BLE001 -- a failing tool is an outcome, recorded
        call.error = f"{type(e).__name__}: {e}"
    return call


def call_tool(
    model: ByteLM,
    prompt: str,
    tools: Sequence[Tool],
    *,
    max_bytes: int = 96,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> ToolCall:
    """Generate one constrained call after ``prompt``, parse it and run the tool.

    Examples
    --------
    >>> from netprism.lm.model import LMConfig
    >>> m = ByteLM(LMConfig(context=128, n_layers=2, d_model=16, n_heads=2, n_kv_heads=1))
    >>> args = {"type": "object", "properties": {"x": {"type": "integer", "minimum": 0,
    ...         "maximum": 9}}, "required": ["x"]}
    >>> sq = Tool("square", "x squared", args, lambda x: x * x)
    >>> c = call_tool(m, "<call>", [sq], max_bytes=40)
    >>> c.name, c.result == c.arguments["x"] ** 2
    ('square', True)
    """
    automaton = compile_tool_call(tools)
    text = guided_generate(
        model,
        prompt,
        automaton,
        max_bytes=max_bytes,
        temperature=temperature,
        top_k=top_k,
        generator=generator,
    )[0]
    assert isinstance(text, str)
    return execute(parse_tool_call(text, tools), tools)


def _result_text(call: ToolCall) -> str:
    if call.error is not None:
        return f"<error>{call.error}</error>"
    try:
        body = json.dumps(call.result, separators=(",", ":"))
    except (TypeError, ValueError):
        body = str(call.result)
    return f"<result>{body}</result>"


def run_tool_loop(
    model: ByteLM,
    prompt: str,
    tools: Sequence[Tool],
    *,
    max_calls: int,
    max_bytes: int = 96,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[str, list[ToolCall]]:
    """Make ``max_calls`` calls in turn, appending each call and its result to the transcript.

    Returns
    -------
    transcript : str
        ``prompt`` followed by ``<call>..</call>`` and ``<result>..</result>`` (or
        ``<error>..</error>``) lines, in the format of the module docstring.
    calls : list of ToolCall
    """
    if not isinstance(max_calls, int) or max_calls < 0:
        raise ValueError(f"max_calls must be an int >= 0, got {max_calls!r}")
    automaton = compile_tool_call(tools)
    room = model.config.context - max_bytes
    if room < len(CALL_OPEN):
        raise ValueError(f"max_bytes={max_bytes} leaves no room for a prompt in the context")
    transcript, calls = prompt, []
    for _ in range(max_calls):
        seen = (transcript + "\n" + CALL_OPEN).encode("utf-8")[-room:]  # the most recent bytes
        text = guided_generate(
            model,
            seen,
            automaton,
            max_bytes=max_bytes,
            temperature=temperature,
            top_k=top_k,
            generator=generator,
        )[0]
        assert isinstance(text, str)
        call = execute(parse_tool_call(text, tools), tools)
        calls.append(call)
        transcript += f"\n{CALL_OPEN}{text}{CALL_CLOSE}\n{_result_text(call)}"
    return transcript, calls
