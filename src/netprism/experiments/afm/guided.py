"""The ``afm`` guided-generation study: schema-valid JSON and tool calls by construction.

"Apple Intelligence Foundation Language Models: Tech Report 2025" (arXiv 2507.13575), guided
generation on the tiny byte-level LM: validity of guided against unconstrained samples, and
the cost of the schema masks.
"""

from __future__ import annotations

from typing import Any

import torch

from netprism.core.seed import seed_everything
from netprism.experiments.afm.config import AFMConfig
from netprism.lm.bench import model_device
from netprism.lm.guided import (
    guided_generate,
    is_valid,
    mask_overhead,
    unconstrained_generate,
)
from netprism.lm.guided.tools import Tool, compile_tool_call, tool_call_json_schema
from netprism.lm.model import ByteLM

GUIDED_SCHEMAS: dict[str, dict[str, Any]] = {
    "record": {
        "type": "object",
        "required": ["name", "age", "role", "tags"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 12},
            "age": {"type": "integer", "minimum": 0, "maximum": 120},
            "role": {"enum": ["admin", "user", "guest"]},
            "tags": {
                "type": "array",
                "items": {"type": "string", "maxLength": 6},
                "minItems": 1,
                "maxItems": 3,
            },
        },
    },
    "nested": {
        "type": "object",
        "required": ["id", "point", "ok"],
        "properties": {
            "id": {"type": "integer", "minimum": -50, "maximum": 50},
            "point": {
                "type": "object",
                "required": ["x", "y"],
                "properties": {
                    "x": {"type": "integer", "minimum": 0, "maximum": 999},
                    "y": {"type": "integer", "minimum": 0, "maximum": 999},
                },
            },
            "ok": {"type": "boolean"},
        },
    },
}


def _tools() -> list[Tool]:
    return [
        Tool(
            "add",
            "add two integers",
            {
                "type": "object",
                "required": ["a", "b"],
                "properties": {
                    "a": {"type": "integer", "minimum": -99, "maximum": 99},
                    "b": {"type": "integer", "minimum": -99, "maximum": 99},
                },
            },
            lambda a, b: a + b,
        ),
        Tool(
            "upper",
            "upper-case a word",
            {
                "type": "object",
                "required": ["word"],
                "properties": {"word": {"type": "string", "minLength": 1, "maxLength": 10}},
            },
            lambda word: word.upper(),
        ),
    ]


def guided_study(config: AFMConfig, base: ByteLM, seed: int) -> dict[str, float]:
    """Validity of guided vs unconstrained samples from the trained and an untrained model.

    ``guided_samples`` samples per model, spread evenly over two schemas and a two-tool call
    (a tagged union), at temperature 1 within ``guided_max_bytes``; every output is parsed
    with ``json.loads`` and validated with ``jsonschema``.  The unconstrained contrast samples
    as many bytes from the same prompts and parses the text up to the first newline.
    """
    seed_everything(seed)
    untrained = ByteLM(base.config).to(model_device(base)).eval()
    tools = _tools()
    targets: list[tuple[str, Any, dict[str, Any]]] = [
        (name, schema, schema) for name, schema in GUIDED_SCHEMAS.items()
    ]
    targets.append(("tool_call", compile_tool_call(tools), tool_call_json_schema(tools)))
    per = -(-config.guided_samples // len(targets))  # at least guided_samples per model
    # a CPU generator on every device: sample_next draws on it, so the samples do not depend
    # on the device's random stream (the masks are built on the CPU anyway)
    gen = torch.Generator().manual_seed(seed)
    valid = total = free_valid = 0
    budget_ok = True
    for model in (base.eval(), untrained):
        for name, guide, check in targets:
            prompt = f"# {name}\n"
            for start in range(0, per, config.guided_batch):
                n = min(config.guided_batch, per - start)
                kwargs: dict[str, Any] = {"max_bytes": config.guided_max_bytes, "generator": gen}
                texts = guided_generate(model, prompt, guide, num_samples=n, **kwargs)
                assert isinstance(texts, list)
                fits = [len(t.encode()) <= config.guided_max_bytes for t in texts]
                valid += sum(ok and is_valid(t, check) for t, ok in zip(texts, fits, strict=True))
                budget_ok &= all(fits)
                free = unconstrained_generate(model, prompt, num_samples=n, **kwargs)
                free_valid += sum(is_valid(t.split("\n", 1)[0], check) for t in free)
                total += n
    overhead = mask_overhead(
        base, "# record\n", GUIDED_SCHEMAS["record"], max_bytes=config.guided_max_bytes
    )
    return {
        "samples": float(total),
        "valid_rate": valid / total,
        "within_budget": float(budget_ok),
        "unconstrained_valid_rate": free_valid / total,
        "max_bytes": float(config.guided_max_bytes),
        "mask_us_per_token_cold": overhead["cold_mask_us"],
        "mask_us_per_token_warm": overhead["warm_mask_us"],
        "model_us_per_token": overhead["model_us"],
        "mask_overhead_pct_cold": overhead["cold_pct"],
    }
