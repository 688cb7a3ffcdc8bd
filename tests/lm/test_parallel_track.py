"""Parallel-track MoE byte LM: L/D combines counted by a hook, tracks independent inside a
block, dropless MoE equals a per-token loop, soft cap, load entropy, exact parameter counts,
width matching, and training with train_lm."""

import numpy as np
import pytest
import torch

from netprism.lm.model import ByteLM, LMConfig
from netprism.lm.parallel_track import (
    ParallelTrackLM,
    PTConfig,
    config_params,
    count_params,
    match_width,
)
from netprism.lm.parallel_track_moe import MoE, aux_loss, load_entropy, softcap
from netprism.lm.train import evaluate_bpb, train_lm

TINY = {"context": 16, "d_model": 16, "n_heads": 2, "n_kv_heads": 1, "n_experts": 4, "top_k": 2}


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    return ParallelTrackLM(PTConfig(**{**TINY, **kw})).eval()


@pytest.mark.parametrize(("n_layers", "depth", "n_tracks"), [(4, 1, 2), (4, 2, 3), (6, 3, 2)])
def test_sync_count_is_l_over_d_and_hook_agrees(n_layers, depth, n_tracks):
    model = _model(n_layers=n_layers, block_depth=depth, n_tracks=n_tracks)
    calls = []
    handle = model.combine.register_forward_hook(lambda m, inp, out: calls.append(inp[0].shape))
    with torch.no_grad():
        model(torch.randint(0, 256, (2, 7)))
        assert model.sync_count == n_layers // depth == model.syncs_per_forward()
        model(torch.randint(0, 256, (2, 5)))  # the counter restarts every forward
    handle.remove()
    assert model.sync_count == n_layers // depth
    assert len(calls) == 2 * n_layers // depth
    assert all(s[0] == n_tracks for s in calls)  # each combine sees every track
    assert model.tensor_parallel_syncs() == 2 * n_layers


def test_tracks_do_not_interact_inside_a_block():
    model = _model(n_layers=4, block_depth=2, n_tracks=3)
    x = torch.randn(2, 6, 16)
    h = x.expand(3, *x.shape).clone()
    bumped = h.clone()
    bumped[0] += torch.randn_like(x)  # perturb track 0 only
    pos = torch.arange(6)
    with torch.no_grad():
        a, b = model.run_block(1, h, pos), model.run_block(1, bumped, pos)
    assert torch.equal(a[1:], b[1:])  # other tracks bit-identical until the combine
    assert not torch.allclose(a[0], b[0])
    assert not torch.allclose(a[1], a[2])  # distinct tracks have distinct weights
    assert not torch.allclose(model.combine(a), model.combine(b))  # the combine mixes them


def test_forward_is_mean_combine_of_blocks():
    model = _model(n_layers=4, block_depth=2, n_tracks=2)
    idx = torch.randint(0, 256, (2, 5))
    pos = torch.arange(5)
    with torch.no_grad():
        x = model.embed(idx)
        for blk in range(2):
            x = model.run_block(blk, torch.stack([x, x]), pos).mean(0)
        ref = torch.nn.functional.linear(model.norm(x), model.embed.weight)
        assert torch.allclose(model(idx), ref, atol=1e-6)


def test_moe_dropless_equals_naive_per_token_loop():
    model = _model(n_layers=2, block_depth=1, n_experts=5, top_k=2)
    moe = model.tracks[0][1].mlp
    assert isinstance(moe, MoE)
    x = torch.randn(3, 7, 16)
    with torch.no_grad():
        out = moe(x)
        flat, ref = x.reshape(-1, 16), torch.zeros(21, 16)
        for n in range(21):
            logits = softcap(moe.router(flat[n]), moe.cap)
            top, ids = torch.topk(logits, 2)
            for g, e in zip(torch.softmax(top, -1), ids.tolist()):
                ref[n] += g * moe.experts[e](flat[n : n + 1])[0]
    assert torch.allclose(out.reshape(-1, 16), ref, atol=1e-6)
    assert int(moe.last_load.sum()) == 21 * 2  # dropless: every assignment served
    assert moe.last_load.shape == (5,)


def test_router_softcap_bounds_logits():
    model = _model(n_layers=2, block_depth=1, router_softcap=3.0)
    moe = model.tracks[1][1].mlp
    with torch.no_grad():
        moe.router.weight.mul_(1e3)
        logits = moe.router_logits(torch.randn(50, 16))
        assert logits.abs().max() <= 3.0 and logits.abs().max() > 2.9
        moderate = moe.router_logits(torch.randn(50, 16) * 1e-3)
    assert moderate.abs().max() < 3.0
    assert torch.allclose(softcap(torch.tensor([0.5]), 50.0), torch.tensor([0.5]), atol=1e-4)


def test_load_entropy_extremes_and_aux_loss():
    assert load_entropy(torch.tensor([7, 7, 7, 7])) == pytest.approx(1.0)
    assert load_entropy(torch.tensor([0, 0, 28, 0])) == 0.0
    assert 0 < load_entropy(torch.tensor([1, 2, 3, 4])) < 1
    model = _model(n_layers=2, block_depth=1)
    model(torch.randint(0, 256, (2, 9)))
    loads = model.expert_load()
    assert len(loads) == 2 and all(int(ld.sum()) == 2 * 9 * 2 for ld in loads)
    loss = aux_loss(model)
    loss.backward()  # differentiable w.r.t. the routers
    assert loss.item() > 0 and model.tracks[0][1].mlp.router.weight.grad is not None


def test_param_counts_closed_form():
    cfg = PTConfig(**{**TINY, "n_layers": 4, "block_depth": 2, "n_tracks": 3, "d_ff": 40})
    C, hd, F_, Fe, E, k = 16, 8, 40, cfg.expert_ff, 4, 2
    assert Fe == 24  # half of 40, rounded up to a multiple of 8
    attn = C * 2 * hd * 2 + 2 * C * 1 * hd + 2 * hd
    dense, expert = 3 * C * F_, 3 * C * Fe
    layer = attn + 2 * C
    per_track = 4 * layer + 2 * dense + 2 * (C * E + E * expert)
    total = 256 * C + C + 3 * per_track
    active = total - 3 * 2 * (E - k) * expert
    model = ParallelTrackLM(cfg)
    assert count_params(model) == config_params(cfg) == (total, active)
    dense_cfg = PTConfig(**{**TINY, "n_layers": 4, "block_depth": 2, "moe": False})
    t, a = count_params(ParallelTrackLM(dense_cfg))
    assert t == a == config_params(dense_cfg)[0]
    lm = LMConfig(context=16, n_layers=4, d_model=16, n_heads=2, n_kv_heads=1, kv_share=0.5)
    assert count_params(ByteLM(lm)) == config_params(lm)


def test_matched_active_params_within_5_percent():
    dense = LMConfig(n_layers=8, d_model=96, n_heads=4, n_kv_heads=2)
    target = config_params(dense)[1]
    assert 0.9e6 < target < 1.1e6
    template = PTConfig(n_layers=4, n_tracks=2, block_depth=2, n_heads=4, n_kv_heads=2)
    pt = match_width(template, target)
    total, active = count_params(ParallelTrackLM(pt))
    assert abs(active / target - 1) <= 0.05 and total > active
    back = match_width(LMConfig(n_layers=8, n_heads=4, n_kv_heads=2), active)
    assert abs(config_params(back)[1] / active - 1) <= 0.05
    with pytest.raises(ValueError, match="target_active=10"):
        match_width(template, 10)


def test_config_errors_name_the_value():
    with pytest.raises(ValueError, match=r"n_layers \(5\).*block_depth \(2\)"):
        PTConfig(n_layers=5, block_depth=2)
    with pytest.raises(ValueError, match="top_k must be in"):
        PTConfig(n_experts=2, top_k=3)
    with pytest.raises(ValueError, match="router_softcap"):
        PTConfig(router_softcap=0.0)
    with pytest.raises(ValueError, match="n_tracks"):
        PTConfig(n_tracks=0)
    model = _model(n_layers=2, block_depth=1)
    with pytest.raises(ValueError, match="longer than the model's context of 16"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="integer tensor"):
        model(torch.zeros(1, 4))


def test_trains_with_train_lm():
    data = np.frombuffer(b"abcabdabcabe hello world. " * 20, dtype=np.uint8).copy()
    model = _model(n_layers=2, block_depth=1, d_model=32)
    before = evaluate_bpb(model, data, 16, batches=2, seed=1)
    hist = train_lm(model, data, steps=30, batch_size=8, context=16, lr=3e-3, seed=0)
    assert np.mean(hist.train_loss[-5:]) < np.mean(hist.train_loss[:5]) - 0.5
    assert evaluate_bpb(model, data, 16, batches=2, seed=1) < before - 0.5
