"""Guided generation for the byte LM: JSON-Schema-constrained decoding and tool calling.

"Apple Intelligence Foundation Language Models: Tech Report 2025" (arXiv 2507.13575), the
Foundation Models framework's guided generation and tool calling, at byte level:

* :mod:`~netprism.lm.guided.nodes` -- the automaton's nodes (literals, strings, integer ranges,
  enums, sequences, arrays), each with its byte transitions and minimum remaining length;
* :mod:`~netprism.lm.guided.schema` -- a JSON-Schema subset compiled into a byte-level pushdown
  automaton (:class:`SchemaAutomaton`);
* :mod:`~netprism.lm.guided.decode` -- masked decoding with budget forcing and streaming, the
  unconstrained contrast and the mask-overhead timing;
* :mod:`~netprism.lm.guided.tools` -- constrained tool calls and the tool loop.
"""

from netprism.lm.guided.decode import (
    PAD,
    GuidedTimings,
    guided_generate,
    is_valid,
    mask_overhead,
    stream_guided,
    unconstrained_generate,
    validity_rate,
)
from netprism.lm.guided.schema import (
    END,
    SchemaAutomaton,
    UnsupportedSchemaError,
    compile_schema,
    compile_tagged_union,
)
from netprism.lm.guided.tools import (
    Tool,
    ToolCall,
    call_tool,
    compile_tool_call,
    describe_tools,
    parse_tool_call,
    run_tool_loop,
    tool_call_json_schema,
)

__all__ = [
    "END",
    "PAD",
    "GuidedTimings",
    "SchemaAutomaton",
    "Tool",
    "ToolCall",
    "UnsupportedSchemaError",
    "call_tool",
    "compile_schema",
    "compile_tagged_union",
    "compile_tool_call",
    "describe_tools",
    "guided_generate",
    "is_valid",
    "mask_overhead",
    "parse_tool_call",
    "run_tool_loop",
    "stream_guided",
    "tool_call_json_schema",
    "unconstrained_generate",
    "validity_rate",
]
