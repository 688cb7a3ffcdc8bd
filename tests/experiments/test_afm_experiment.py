import copy
import json

import pytest
import torch

from netprism.experiments import load_experiments
from netprism.experiments.afm.dense_studies import PTQ_VARIANTS, kv_cache_ratios, val_bpb_kv8
from netprism.experiments.afm.training import Budget, val_bpb
from netprism.experiments.base import execute
from netprism.lm.model import ByteLM, LMConfig
from netprism.lm.quant import ptq_copy

load_experiments()

CLAIMS = {
    "kv_share_memory",
    "qat_closes_gap",
    "pt_syncs",
    "local_global_kv",
    "guided_valid",
    "lora_adapts",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("afm_tiny")
    result = execute("afm", scale="tiny", out_dir=out)
    return result, json.loads((out / "afm_runs.json").read_text()), out


def test_tiny_run_states_claims_and_figures(tiny):
    result, _, out = tiny
    assert {c.id for c in result.claims} == CLAIMS
    for fig in result.figures:
        assert (out / fig).stat().st_size > 0


def test_kv_sharing_claim_is_the_exact_ratio(tiny):
    result, runs, _ = tiny
    claim = next(c for c in result.claims if c.id == "kv_share_memory")
    assert claim.measured == 0.0 and claim.holds
    assert all(r == 0.625 for r in runs["kv_ratio"].values())


def test_qat_and_lora_claims_follow_their_numbers(tiny):
    result, runs, _ = tiny
    q = runs["qat"]
    best = min(q[k] for k in PTQ_VARIANTS)
    closed = (best - q["qat"]) / (best - q["fp32_control"])
    claim = next(c for c in result.claims if c.id == "qat_closes_gap")
    assert claim.measured == pytest.approx(closed)
    lo = runs["lora"]
    claim = next(c for c in result.claims if c.id == "lora_adapts")
    assert claim.measured == pytest.approx(lo["lora_drop"] / lo["full_drop"])
    assert 0 < lo["lora_trainable_fraction"] < 1
    # QAT starts from the same per-channel MSE-clip quantization as that PTQ variant
    assert q["qat_step0"] == pytest.approx(q["base_ptq_channel_mse"], abs=1e-6)


def test_kv_ratio_is_five_eighths_at_every_length():
    cfg = LMConfig(context=32, n_layers=8, d_model=16, n_heads=2, n_kv_heads=1, kv_share=3 / 8)
    assert kv_cache_ratios(cfg, (1, 7, 32, 100)) == {1: 0.625, 7: 0.625, 32: 0.625, 100: 0.625}


def test_ptq_copy_quantizes_every_linear_and_leaves_the_original():
    torch.manual_seed(0)
    model = ByteLM(LMConfig(context=16, n_layers=2, d_model=16, n_heads=2, n_kv_heads=1))
    before = copy.deepcopy(model.state_dict())
    q = ptq_copy(model, PTQ_VARIANTS["ptq_tensor_maxabs"])
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    for m in q.modules():
        if isinstance(m, torch.nn.Linear):
            assert m.weight.unique().numel() <= 4
    assert torch.equal(q.embed.weight, model.embed.weight)  # tied embedding stays fp32


def test_int8_kv_bpb_is_close_to_fp32_on_the_same_windows():
    import numpy as np

    torch.manual_seed(0)
    model = ByteLM(LMConfig(context=16, n_layers=3, d_model=16, n_heads=2, n_kv_heads=1))
    data = np.frombuffer(b"def f(x):\n    return x + 1\n" * 20, dtype=np.uint8).copy()
    budget = Budget(1, 4, 16, 1e-3, eval_batches=2, eval_seed=7)
    fp, q = val_bpb(model, data, budget), val_bpb_kv8(model, data, budget)
    assert fp != q and abs(fp - q) < 0.01 * fp


def test_identity_claims_hold_exactly(tiny):
    result, runs, _ = tiny
    claims = {c.id: c for c in result.claims}
    pt = runs["pt"]
    assert pt["counted_syncs"] == pt["layers"] // pt["block_depth"] == claims["pt_syncs"].measured
    assert pt["tensor_parallel_syncs"] == 2 * pt["layers"]
    assert abs(pt["active_params"] / pt["dense_active_params"] - 1) <= 0.05
    for r in runs["local_global"]["ratios"].values():
        assert r["measured"] == pytest.approx(r["formula"], abs=1e-12)
    g = runs["guided"]
    assert g["valid_rate"] == 1.0 and g["within_budget"] == 1.0
    assert g["samples"] >= result.config["guided_samples"] * 2
    assert claims["guided_valid"].holds and g["unconstrained_valid_rate"] < 1.0
