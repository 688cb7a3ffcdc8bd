"""Training the byte LM: loss falls, bits per byte equals cross-entropy / ln 2, the schedule,
and a safetensors save/load round trip with identical logits."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from netprism.lm.corpus import BatchSampler
from netprism.lm.lora import add_lora
from netprism.lm.model import ByteLM, LMConfig
from netprism.lm.train import evaluate_bpb, load_lm, lr_at, save_lm, train_lm

CFG = LMConfig(context=16, n_layers=2, d_model=32, n_heads=2, n_kv_heads=1)
DATA = np.frombuffer(b"abcabdabcabe hello world. " * 20, dtype=np.uint8).copy()


def _model(seed=0, cfg=CFG):
    torch.manual_seed(seed)
    return ByteLM(cfg)


def test_loss_falls_within_50_steps():
    model = _model()
    hist = train_lm(
        model, DATA, steps=50, batch_size=8, context=16, lr=3e-3, seed=0, eval_every=25, val=DATA
    )
    assert len(hist.train_loss) == 50 and hist.step[-1] == 50
    assert hist.train_loss[0] > math.log(256) - 0.2  # starts near uniform
    assert np.mean(hist.train_loss[-5:]) < hist.train_loss[0] - 1.5
    assert hist.val_step == [25, 50]
    assert hist.val_bpb[1] < hist.val_bpb[0] < 8.1


def test_training_is_seeded_and_leaves_global_rng_alone():
    models = [_model(), _model()]
    torch.manual_seed(123)
    state = torch.get_rng_state()
    runs = [
        train_lm(m, DATA, steps=3, batch_size=2, context=16, lr=1e-3, seed=7).train_loss
        for m in models
    ]
    assert runs[0] == runs[1]
    assert torch.equal(torch.get_rng_state(), state)


def test_evaluate_bpb_equals_manual_cross_entropy():
    model = _model().eval()
    batch = BatchSampler(DATA, batch_size=4, context=16, seed=5).sample()  # (4, 17)
    with torch.no_grad():
        logits = model(batch[:, :-1].long())  # (4, 16, 256)
        ce = F.cross_entropy(logits.reshape(-1, 256), batch[:, 1:].long().reshape(-1))
    got = evaluate_bpb(model, DATA, 16, batches=1, seed=5, batch_size=4)
    assert got == pytest.approx(float(ce) / math.log(2), rel=1e-6)
    model.train()
    evaluate_bpb(model, DATA, 16, batches=1, seed=5)
    assert model.training  # mode restored


def test_lr_schedule():
    rates = [lr_at(s, steps=100, lr=1.0, warmup=10) for s in range(100)]
    assert rates[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert max(rates) == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:], strict=False))
    assert rates[-1] == pytest.approx(0.1, abs=1e-3)


@pytest.mark.parametrize("kv_share", [0.0, 3 / 8])
def test_save_load_round_trip(tmp_path, kv_share):
    cfg = LMConfig(**{**CFG.to_dict(), "n_layers": 8, "kv_share": kv_share})
    model = _model(cfg=cfg).eval()
    train_lm(model, DATA, steps=2, batch_size=2, context=16, lr=1e-3, seed=0)
    model.eval()
    save_lm(model, cfg, tmp_path / "lm")
    assert sorted(p.name for p in (tmp_path / "lm").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    loaded, cfg2 = load_lm(tmp_path / "lm")
    assert cfg2 == cfg
    idx = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded(idx), model(idx))


def test_save_load_refusals(tmp_path):
    model = _model()
    with pytest.raises(ValueError, match="not the model's config"):
        save_lm(model, LMConfig(context=8), tmp_path / "x")
    with pytest.raises(ValueError, match="LoRA adapters"):
        save_lm(add_lora(_model(), rank=1, alpha=1.0), CFG, tmp_path / "x")
    with pytest.raises(ValueError, match=r"no config\.json"):
        load_lm(tmp_path / "missing")
    save_lm(model, CFG, tmp_path / "lm")
    meta = json.loads((tmp_path / "lm" / "config.json").read_text())
    meta["sha256"] = "0" * 64
    (tmp_path / "lm" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="SHA-256"):
        load_lm(tmp_path / "lm")


def test_bad_train_args():
    kw = {"batch_size": 2, "context": 16, "lr": 1e-3, "seed": 0}
    with pytest.raises(ValueError, match="steps"):
        train_lm(_model(), DATA, steps=0, **kw)
    with pytest.raises(ValueError, match="lr"):
        train_lm(_model(), DATA, steps=1, **{**kw, "lr": 0.0})
    with pytest.raises(ValueError, match="eval_every"):
        train_lm(_model(), DATA, steps=1, eval_every=0, **kw)
    with pytest.raises(ValueError, match="warmup"):
        train_lm(_model(), DATA, steps=1, warmup=5, **kw)
    with pytest.raises(ValueError, match="no trainable"):
        train_lm(_model().requires_grad_(False), DATA, steps=1, **kw)
    with pytest.raises(ValueError, match="batches"):
        evaluate_bpb(_model(), DATA, 16, batches=0, seed=0)
