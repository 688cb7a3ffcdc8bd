"""Conformance: every object schema of the draft-7 JSON-Schema-Test-Suite is either refused by
name or compiled so that every sample validates (``jsonschema.Draft7Validator`` with format
checks) and closes within its byte budget.

The suite comes from ``make guided-suite`` (``.cache/jsonschema-suite/draft7``); without it the
test runs a built-in subset and says so.  Samples are uniform random walks over the bytes the
budget allows (an untrained model's near-uniform logits reach every allowed byte the same way);
a slice of the accepted schemas also goes through :func:`guided_generate` with an untrained
ByteLM.  ``NETPRISM_SUITE_SAMPLES`` sets the walks per schema (default 20).
"""

from __future__ import annotations

import json
import os
import time

import jsonschema
import pytest
import torch
from guided_suite import (
    SUITE_DIR,
    compile_all,
    coverage_table,
    format_checker,
    invalid_samples,
    load_suite,
)

from netprism.lm.guided.decode import guided_generate
from netprism.lm.model import ByteLM, LMConfig

SAMPLES = int(os.environ.get("NETPRISM_SUITE_SAMPLES", "20"))


@pytest.fixture(scope="module")
def compiled():
    cases, source = load_suite()
    t0 = time.perf_counter()
    accepted, refused = compile_all(cases)
    return cases, source, accepted, refused, time.perf_counter() - t0


def test_suite_coverage_and_every_sample_valid(compiled, capsys):
    cases, source, accepted, refused, compile_s = compiled
    t0 = time.perf_counter()
    bad = {}
    for i, a in accepted.items():
        invalid, budget = invalid_samples(cases[i].schema, a, SAMPLES, extra=30, seed=i)
        if invalid:
            bad[f"{cases[i].file}: {cases[i].description}"] = (budget, invalid[:2])
    with capsys.disabled():
        print(f"\n{source}")
        print(coverage_table(cases, accepted))
        print(
            f"  accepted {len(accepted)}/{len(cases)} ({100 * len(accepted) / len(cases):.1f} %); "
            f"refused by keyword {dict(refused.most_common())}; compile {compile_s:.1f} s, "
            f"{SAMPLES} samples each {time.perf_counter() - t0:.1f} s"
        )
    assert not bad, bad
    if SUITE_DIR.is_dir():
        assert len(accepted) >= 0.5 * len(cases)


def test_untrained_model_samples_validate_on_the_suite(compiled):
    cases, _, accepted, _, _ = compiled
    torch.manual_seed(0)
    model = ByteLM(LMConfig(context=128, n_layers=2, d_model=16, n_heads=2, n_kv_heads=1)).eval()
    g = torch.Generator().manual_seed(0)
    for i in sorted(accepted)[::6]:
        a = accepted[i]
        budget = a.min_close(a.initial) + 24
        if budget + 8 > model.config.context:
            continue
        v = jsonschema.Draft7Validator(cases[i].schema, format_checker=format_checker())
        for text in guided_generate(
            model, "json: ", a, max_bytes=budget, num_samples=4, generator=g
        ):
            assert len(text.encode()) <= budget
            assert v.is_valid(json.loads(text)), (cases[i].description, text)
