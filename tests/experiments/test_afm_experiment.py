import copy
import json

import pytest
import torch

from netprism.experiments import load_experiments
from netprism.experiments.afm.claims import claims_and_metrics
from netprism.experiments.afm.config import SCALES, AFMConfig
from netprism.experiments.afm.dense_studies import PTQ_VARIANTS, kv_cache_ratios, val_bpb_kv8
from netprism.experiments.afm.lora_faithful import adaptation_split, check_faithful
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
    "lora_adapts_faithful",  # tiny runs the opt-in twin on seed 0
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


def test_lora_faithful_twin_claim_and_figure(tiny):
    result, runs, out = tiny
    claim = next(c for c in result.claims if c.id == "lora_adapts_faithful")
    twin = runs["lora_faithful"]["0"]
    assert claim.seeds == [0] and claim.target == 0.5 and claim.op == ">="  # target unchanged
    assert claim.measured == pytest.approx(twin["lora_drop"] / twin["full_drop"])
    assert claim.settings == {
        "lora_steps": 4,
        "lora_lrs": [1e-3, 3e-3],
        "full_finetune_lrs": [3e-4, 1e-3],
        "lr_selection": "last 10% of the adaptation half",
        "eval_every": 2,
        "curve_ranks": [4, 8],
    }
    assert "drops LoRA" in claim.diagnosis and "forgetting" in claim.diagnosis
    assert "afm_lora_faithful.png" in result.figures
    assert (out / "afm_lora_faithful.png").stat().st_size > 0


def test_lora_faithful_rates_are_chosen_off_the_scoring_half(tiny):
    _, runs, _ = tiny
    twin = runs["lora_faithful"]["0"]
    for method, prefix in (("lora", "lora_r4_a8@"), ("full", "full@")):
        arms = {k: a for k, a in twin["arms"].items() if k.startswith(prefix)}
        assert len(arms) == 2  # one arm per rate of the grid
        best = min(arms.values(), key=lambda a: a["select_bpb"])
        assert twin[f"{method}_lr"] == best["lr"]
    for arm in twin["arms"].values():  # every curve starts at the base, then every 2 steps
        assert arm["step"] == [0, 2, 4] and arm["bpb"][0] == twin["base_curve_bpb"]
    assert set(twin["ranks"]) == {"4", "8"}
    assert twin["ranks"]["4"]["arm"] == f"lora_r4_a8@{twin['lora_lr']:g}"  # the claim's arm


def test_original_claims_ignore_the_faithful_records(tiny):
    result, runs, _ = tiny
    config = AFMConfig(**SCALES["tiny"])
    without = {k: v for k, v in runs.items() if k != "lora_faithful"}
    claims, _, _ = claims_and_metrics(without, config)
    assert {c.id for c in claims} == CLAIMS - {"lora_adapts_faithful"}
    measured = {c.id: c.measured for c in result.claims}
    for claim in claims:
        assert claim.measured == pytest.approx(measured[claim.id], nan_ok=True)
    assert runs["lora"]["lora_heldout"] != runs["lora_faithful"]["0"]["lora_heldout"]


def test_adaptation_split_keeps_the_scoring_half_apart():
    import numpy as np

    data = np.arange(1000) % 256
    fit, select, score = adaptation_split(data, 0.1)
    assert (fit.size, select.size, score.size) == (450, 50, 500)
    assert np.array_equal(np.concatenate([fit, select, score]), data)


def test_faithful_seeds_must_have_a_base():
    with pytest.raises(ValueError, match=r"faithful_seeds \(0, 3\).*\[3\]"):
        check_faithful(AFMConfig(seeds=(0, 1), faithful_seeds=(0, 3)))
    with pytest.raises(ValueError, match="faithful_select_fraction"):
        check_faithful(AFMConfig(faithful_select_fraction=1.0))
    with pytest.raises(ValueError, match="faithful_full_lrs"):
        check_faithful(AFMConfig(faithful_full_lrs=(3e-4, 0.0)))
    check_faithful(AFMConfig())  # small scale: the twin is off
