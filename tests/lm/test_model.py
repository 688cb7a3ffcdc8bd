"""The tiny byte LM: cached decoding equals the full forward; KV sharing drops K/V and 3/8 of
the cache bytes; prefill skipping; clear errors."""

import pytest
import torch

from netprism.lm.model import ByteLM, KVCache, LMConfig, sample_next

TINY = {"context": 32, "n_layers": 8, "d_model": 32, "n_heads": 4, "n_kv_heads": 2}


def _model(kv_share=0.0, seed=0, **kw):
    torch.manual_seed(seed)
    return ByteLM(LMConfig(**{**TINY, **kw}, kv_share=kv_share)).eval()


@pytest.mark.parametrize("kv_share", [0.0, 3 / 8])
def test_cached_steps_equal_full_forward(kv_share):
    model = _model(kv_share)
    idx = torch.randint(0, 256, (2, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(idx)  # (2, 20, 256)
        cache = model.new_cache(2)
        parts = [model(idx[:, :7], cache=cache)]  # prefill, then one byte at a time
        for t in range(7, 14):
            parts.append(model(idx[:, t : t + 1], cache=cache))
        parts.append(model(idx[:, 14:], cache=cache))  # then a chunk of 6
    assert cache.position == 20
    assert torch.allclose(torch.cat(parts, dim=1), full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kv_share", [0.0, 3 / 8])
def test_last_only_prefill_equals_full(kv_share):
    model = _model(kv_share)
    idx = torch.randint(0, 256, (3, 12))
    with torch.no_grad():
        full = model(idx)
        cache = model.new_cache(3)
        last = model(idx, cache=cache, last_only=True)
        assert last.shape == (3, 1, 256)
        assert torch.allclose(last, full[:, -1:], atol=1e-5, rtol=0)
        assert torch.allclose(model(idx, last_only=True), full[:, -1:], atol=1e-5, rtol=0)
        # the cache prefilled with block 2 skipped continues exactly
        nxt = torch.randint(0, 256, (3, 1))
        step = model(nxt, cache=cache)
        assert torch.allclose(step, model(torch.cat([idx, nxt], 1))[:, -1:], atol=1e-5, rtol=0)


@pytest.mark.parametrize("kv_share", [0.0, 3 / 8])
def test_greedy_generate_equals_uncached_loop(kv_share):
    model = _model(kv_share)
    prompt = torch.randint(0, 256, (2, 5))
    out = model.generate(prompt, 10, temperature=0)
    seq = prompt
    with torch.no_grad():
        for _ in range(10):
            seq = torch.cat([seq, model(seq)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert out.shape == (2, 15) and torch.equal(out, seq)


def test_sampled_generate_is_seeded():
    model = _model(3 / 8)
    prompt = torch.randint(0, 256, (2, 4))
    a = model.generate(prompt, 8, top_k=5, generator=torch.Generator().manual_seed(0))
    b = model.generate(prompt, 8, top_k=5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and torch.equal(a[:, :4], prompt)
    assert model.generate(prompt, 0).shape == (2, 4)


def test_kv_sharing_layers_have_no_kv_parameters():
    base, shared = _model(0.0), _model(3 / 8)
    assert shared.config.n_kv_layers == 5
    for i, layer in enumerate(shared.layers):
        names = {n for n, _ in layer.attn.named_parameters()}
        if i < 5:
            assert {"k.weight", "v.weight", "k_norm.weight", "q_norm.weight"} <= names
        else:
            assert names == {"q.weight", "q_norm.weight", "o.weight"}
            assert not hasattr(layer.attn, "k") and not hasattr(layer.attn, "v")
    cfg = shared.config
    per_layer = 2 * cfg.d_model * cfg.n_kv_heads * cfg.hd + cfg.hd  # k, v, k_norm
    assert base.num_params() - shared.num_params() == 3 * per_layer


def test_shared_layers_read_last_first_block_kv():
    model = _model(3 / 8)
    idx = torch.randint(0, 256, (1, 10))
    with torch.no_grad():
        before = model(idx)
        model.layers[4].attn.k.weight.mul_(2.0)  # the layer whose K/V block 2 reads
        after = model(idx)
    assert not torch.allclose(before, after)


@pytest.mark.parametrize("max_len", [1, 7, 32])
def test_cache_bytes_are_five_eighths(max_len):
    base, shared = _model(0.0), _model(3 / 8)
    cb, cs = base.new_cache(2, max_len), shared.new_cache(2, max_len)
    assert cs.nbytes() * 8 == cb.nbytes() * 5  # exact
    cfg = base.config
    assert cb.nbytes() == 2 * 8 * 2 * cfg.n_kv_heads * max_len * cfg.hd * 4  # formula, fp32
    idx = torch.randint(0, 256, (2, max_len))
    with torch.no_grad():
        for t in range(max_len):  # filled bytes track the position, at ratio 5/8 throughout
            base(idx[:, t : t + 1], cache=cb)
            shared(idx[:, t : t + 1], cache=cs)
            assert cs.used_nbytes() * 8 == cb.used_nbytes() * 5
            assert cb.used_nbytes() == cb.nbytes() * (t + 1) // max_len


def test_training_step_reduces_loss():
    model = _model(3 / 8).train()
    batch = torch.randint(0, 256, (4, 17), generator=torch.Generator().manual_seed(0))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        logits = model(batch[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 256), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5
    assert model.embed.weight.grad is not None  # tied: one table gets both gradients


def test_prompt_longer_than_context_is_refused():
    model = _model(3 / 8)
    with pytest.raises(
        ValueError, match="input of 33 bytes is longer than the model's context of 32"
    ):
        model(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(ValueError, match="longer than the model's context of 32"):
        model.generate(torch.zeros(1, 33, dtype=torch.long), 1)
    with pytest.raises(ValueError, match=r"prompt of 30 bytes \+ 5 new bytes is longer"):
        model.generate(torch.zeros(1, 30, dtype=torch.long), 5)


def test_input_and_cache_errors():
    model = _model()
    with pytest.raises(ValueError, match=r"byte ids must be in \[0, 256\)"):
        model(torch.tensor([[1, 256]]))
    with pytest.raises(ValueError, match="integer tensor of shape"):
        model(torch.zeros(4))
    with pytest.raises(ValueError, match="integer tensor of shape"):
        model(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="T=0"):
        model(torch.zeros(1, 0, dtype=torch.long))
    cache = model.new_cache(1, max_len=4)
    model(torch.zeros(1, 3, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="position 3 has room for 4 bytes; 2 more do not fit"):
        model(torch.zeros(1, 2, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="batch size 1, input has 2"):
        model(torch.zeros(2, 1, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="max_len must be"):
        KVCache(model.config, 1, max_len=33)
    with pytest.raises(ValueError, match="temperature must be"):
        model.generate(torch.zeros(1, 2, dtype=torch.long), 1, temperature=-1.0)
    with pytest.raises(ValueError, match="top_k must be"):
        model.generate(torch.zeros(1, 2, dtype=torch.long), 1, top_k=0)


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"n_heads": 3}, "multiple of n_kv_heads"),
        ({"kv_share": 1.0}, "kv_share must be in"),
        ({"n_layers": 1, "kv_share": 0.6}, "leaves no cache-owning layer"),
        ({"head_dim": 3}, "head_dim must be an even"),
        ({"context": 0}, "context must be a positive int"),
    ],
)
def test_config_errors(kw, msg):
    with pytest.raises(ValueError, match=msg):
        LMConfig(**{**TINY, **kw})


def test_sample_next():
    logits = torch.tensor([[0.0, 5.0, 1.0], [3.0, 0.0, 0.0]])
    assert sample_next(logits, temperature=0).tolist() == [[1], [0]]
    draws = sample_next(logits.repeat(50, 1), top_k=1, generator=torch.Generator().manual_seed(0))
    assert draws.view(50, 2).eq(torch.tensor([1, 0])).all()


def test_bench_measures_prefill_and_decode_on_the_models_device():
    from netprism.lm import ByteLM, LMConfig, decode_tokens_per_s, prefill_ms

    model = ByteLM(LMConfig(context=32, n_layers=2, d_model=16, kv_share=0.5))
    times = prefill_ms(model, length=16, repeats=2)
    assert set(times) == {"skip", "full"} and all(t > 0 for t in times.values())
    assert decode_tokens_per_s(model, prompt=8, new=4) > 0
