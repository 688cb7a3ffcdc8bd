"""LoRA adapters: off equals base bit for bit, merged equals unmerged, only adapters train,
small safetensors files that round-trip and refuse mismatched shapes."""

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from torch import nn

from netprism.lm.lora import (
    LoRALinear,
    add_lora,
    load_lora,
    lora_modules,
    lora_state_dict,
    merge_lora,
    read_lora_header,
    save_lora,
    set_lora_enabled,
    trainable_fraction,
)
from netprism.lm.model import ByteLM, LMConfig
from netprism.lm.train import train_lm

TINY = {"context": 16, "n_layers": 4, "d_model": 16, "n_heads": 2, "n_kv_heads": 1}
DATA = np.frombuffer(b"the quick brown fox jumps over the lazy dog. " * 8, dtype=np.uint8).copy()


def _base(seed=0, kv_share=0.0, **kw):
    torch.manual_seed(seed)
    return ByteLM(LMConfig(**{**TINY, **kw}, kv_share=kv_share)).eval()


def _perturb(model, seed=1):
    """Give every adapter a non-zero B (as if trained)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in lora_modules(model).values():
            m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=g) * 0.1)
    return model


IDX = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(3))


def _linear_names(model):
    return sorted(n for n, m in model.named_modules() if isinstance(m, nn.Linear))


@pytest.mark.parametrize("kv_share", [0.0, 3 / 8])
def test_every_linear_adapted_and_only_adapters_trainable(kv_share):
    model = _base(kv_share=kv_share)
    names = _linear_names(model)
    n_base = model.num_params()
    add_lora(model, rank=2, alpha=4.0)
    assert sorted(lora_modules(model)) == names
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith((".lora_A", ".lora_B")) for n in trainable)
    n_lora = sum(2 * (m.in_features + m.out_features) for m in lora_modules(model).values())
    assert trainable_fraction(model) == pytest.approx(n_lora / (n_base + n_lora))
    assert all(
        torch.equal(m.lora_B, torch.zeros_like(m.lora_B)) for m in lora_modules(model).values()
    )


@pytest.mark.parametrize("kv_share", [0.0, 3 / 8])
def test_lora_off_equals_base_bit_for_bit(kv_share):
    base = _base(kv_share=kv_share)
    with torch.no_grad():
        want = base(IDX)
    model = _perturb(add_lora(_base(kv_share=kv_share), rank=3, alpha=6.0, dropout=0.1))
    with torch.no_grad():
        assert not torch.allclose(model(IDX), want, atol=1e-4)  # the adapter does something
        set_lora_enabled(model, False)
        assert torch.equal(model(IDX), want)
        set_lora_enabled(model, True)
        assert not torch.equal(model(IDX), want)


def test_fresh_adapter_is_identity():
    want = _base()(IDX)
    model = add_lora(_base(), rank=2, alpha=2.0)
    assert torch.equal(model(IDX), want)  # B = 0 at init


@pytest.mark.parametrize("kv_share", [0.0, 3 / 8])
def test_merged_equals_unmerged(kv_share):
    model = _perturb(add_lora(_base(kv_share=kv_share), rank=4, alpha=8.0))
    with torch.no_grad():
        unmerged = model(IDX)
        merge_lora(model)
        merged = model(IDX)
    assert not lora_modules(model)
    assert all(type(m) is nn.Linear for n, m in model.named_modules() if n in _linear_names(model))
    assert torch.allclose(merged, unmerged, atol=1e-5, rtol=0)
    assert set(model.state_dict()) == set(_base(kv_share=kv_share).state_dict())


def test_merge_of_disabled_adapter_gives_base():
    want = _base()(IDX)
    model = set_lora_enabled(_perturb(add_lora(_base(), rank=2, alpha=2.0)), False)
    assert torch.equal(merge_lora(model)(IDX), want)


def test_targets_select_modules():
    model = add_lora(_base(), rank=2, alpha=2.0, targets=["q", "mlp.down"])
    got = sorted(lora_modules(model))
    assert got == sorted(
        n for n in _linear_names(_base()) if n.endswith(".attn.q") or n.endswith(".mlp.down")
    )


def test_lora_fine_tune_changes_only_adapter_tensors():
    model = add_lora(_base(), rank=2, alpha=4.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_lm(model, DATA, steps=5, batch_size=4, context=16, lr=1e-2, seed=0)
    after = model.state_dict()
    for k, v in before.items():
        if k.endswith(("lora_A", "lora_B")):
            assert not torch.equal(after[k], v), k
        else:
            assert torch.equal(after[k], v), k


def test_save_load_round_trip(tmp_path):
    model = _perturb(add_lora(_base(), rank=2, alpha=3.0, targets=["q", "v"]))
    path = save_lora(model, tmp_path / "adapter.safetensors")
    assert [p.name for p in tmp_path.iterdir()] == ["adapter.safetensors"]  # no temp left
    header = read_lora_header(path)
    assert header["rank"] == 2 and header["alpha"] == 3.0
    assert header["targets"] == sorted(lora_modules(model))
    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
        assert json.loads(f.metadata()["lora"]) == header
    assert keys and all(k.endswith((".lora_A", ".lora_B")) for k in keys)  # no base weights
    fresh = load_lora(_base(), path)  # adds the adapters from the header
    with torch.no_grad():
        assert torch.equal(fresh(IDX), model(IDX))
    again = add_lora(_base(), rank=2, alpha=3.0, targets=["q", "v"])
    with torch.no_grad():
        assert torch.equal(load_lora(again, path)(IDX), model(IDX))


def test_load_refuses_mismatches(tmp_path):
    path = save_lora(_perturb(add_lora(_base(), rank=2, alpha=2.0)), tmp_path / "a.safetensors")
    wide = _base(d_model=32)
    with pytest.raises(ValueError, match="shape mismatch for .*lora_A"):
        load_lora(wide, path)
    assert not lora_modules(wide)  # untouched on failure
    with pytest.raises(ValueError, match="rank, alpha"):
        load_lora(add_lora(_base(), rank=4, alpha=2.0), path)
    with pytest.raises(ValueError, match="targets"):
        load_lora(add_lora(_base(), rank=2, alpha=2.0, targets=["q"]), path)
    with pytest.raises(ValueError, match="not a linear layer"):
        load_lora(nn.Sequential(nn.Linear(16, 16)), path)


def test_load_refuses_non_adapter_file(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "w.safetensors"))
    with pytest.raises(ValueError, match="not a LoRA adapter file"):
        load_lora(_base(), tmp_path / "w.safetensors")


def test_bad_input():
    with pytest.raises(ValueError, match="rank"):
        add_lora(_base(), rank=0, alpha=1.0)
    with pytest.raises(ValueError, match="alpha"):
        add_lora(_base(), rank=1, alpha=0.0)
    with pytest.raises(ValueError, match="dropout"):
        add_lora(_base(), rank=1, alpha=1.0, dropout=1.0)
    with pytest.raises(ValueError, match="match no nn.Linear"):
        add_lora(_base(), rank=1, alpha=1.0, targets=["nope"])
    model = add_lora(_base(), rank=1, alpha=1.0)
    with pytest.raises(ValueError, match="already has LoRA"):
        add_lora(model, rank=1, alpha=1.0)
    with pytest.raises(ValueError, match="no LoRA adapters"):
        set_lora_enabled(_base(), False)
    with pytest.raises(ValueError, match="no LoRA adapters"):
        merge_lora(_base())


def test_dropout_only_in_training():
    model = _perturb(add_lora(_base(), rank=2, alpha=2.0, dropout=0.5))
    assert isinstance(next(iter(lora_modules(model).values())), LoRALinear)
    with torch.no_grad():
        assert torch.equal(model.eval()(IDX), model(IDX))
        model.train()
        assert not torch.equal(model(IDX), model.eval()(IDX))


def test_fp32_adapter_loads_into_a_bf16_model(tmp_path):
    model = _perturb(add_lora(_base(), rank=2, alpha=2.0))
    path = save_lora(model, tmp_path / "a.safetensors")
    half = load_lora(_base().to(torch.bfloat16), path)
    for name, t in lora_state_dict(half).items():
        assert t.dtype == torch.bfloat16
        assert torch.equal(t, lora_state_dict(model)[name].to(torch.bfloat16))
