"""Guided generation for the byte LM: JSON-Schema-constrained decoding and tool calling.

"Apple Intelligence Foundation Language Models: Tech Report 2025" (arXiv 2507.13575), the
Foundation Models framework's guided generation and tool calling, at byte level:

* :mod:`~netprism.lm.guided.schema` -- JSON Schema (draft 7, as users write it) compiled
  exactly into a byte-level pushdown automaton (:class:`SchemaAutomaton`), built on
  :mod:`~netprism.lm.guided.flat` (allOf/anyOf/oneOf), :mod:`~netprism.lm.guided.refs` ($ref),
  the nodes of :mod:`~netprism.lm.guided.nodes`, :mod:`~netprism.lm.guided.numbers`,
  :mod:`~netprism.lm.guided.strings` (with :mod:`~netprism.lm.guided.regex` and
  :mod:`~netprism.lm.guided.dfa` for ``pattern``/``format``) and
  :mod:`~netprism.lm.guided.objects`, run by :mod:`~netprism.lm.guided.automaton`;
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
