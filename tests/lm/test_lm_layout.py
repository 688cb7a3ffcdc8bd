"""The lm package as one house: deprecated aliases warn, the LMs are in the model registry,
the three LMs share one copy of RoPE, GPT-2 init and the input check."""

from __future__ import annotations

import importlib
import sys

import pytest
import torch

import netprism.lm
from netprism.lm import guided
from netprism.lm.layers import RESIDUAL_OUTPUTS, check_idx, gpt2_init, rope_tables
from netprism.lm.local_global import LocalGlobalConfig, LocalGlobalLM
from netprism.lm.model import ByteLM, LMConfig
from netprism.lm.parallel_track import ParallelTrackLM, PTConfig
from netprism.models import MODELS, create_model

SHIMS = {
    "netprism.lm.schema": "netprism.lm.guided.schema",
    "netprism.lm.schema_nodes": "netprism.lm.guided.nodes",
    "netprism.lm.tools": "netprism.lm.guided.tools",
}


@pytest.mark.parametrize(("old", "new"), sorted(SHIMS.items()))
def test_old_guided_paths_warn_and_reexport(old: str, new: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
        shim = importlib.import_module(old)
    target = importlib.import_module(new)
    public = [n for n in vars(target) if not n.startswith("_")]
    assert public and all(getattr(shim, n) is getattr(target, n) for n in public)
    private = [n for n in vars(target) if n.startswith("_") and not n.startswith("__")]
    assert all(getattr(shim, n) is getattr(target, n) for n in private)


def test_guided_package_exports_what_guided_module_did() -> None:
    for name in (
        "guided_generate",
        "stream_guided",
        "unconstrained_generate",
        "is_valid",
        "validity_rate",
        "mask_overhead",
        "GuidedTimings",
        "PAD",
    ):
        assert name in guided.__all__ and hasattr(guided, name)


def test_byte_lm_from_the_registry() -> None:
    assert "byte_lm" in MODELS.names()
    torch.manual_seed(0)
    model = create_model("byte_lm", input_shape=(32,), num_classes=256)
    assert isinstance(model, ByteLM) and model.config.context == 32
    assert model.config == LMConfig(context=32)
    logits = model(torch.randint(0, 256, (2, 32)))
    assert logits.shape == (2, 32, 256) and torch.isfinite(logits).all()
    torch.manual_seed(0)
    assert torch.equal(ByteLM(LMConfig(context=32)).embed.weight, model.embed.weight)


@pytest.mark.parametrize(
    ("name", "kind", "knobs"),
    [
        ("local_global_lm", LocalGlobalLM, {"n_layers": 4, "d_model": 16, "window": 4}),
        ("parallel_track_lm", ParallelTrackLM, {"d_model": 16, "n_heads": 2, "n_kv_heads": 1}),
        ("byte_lm", ByteLM, {"n_layers": 2, "d_model": 16}),
    ],
)
def test_registered_lms_take_the_registry_contract(name: str, kind: type, knobs: dict) -> None:
    model = create_model(name, input_shape=(16,), num_classes=64, **knobs)
    assert isinstance(model, kind) and MODELS.meta(name)["task"] == "language_model"
    assert model(torch.randint(0, 64, (2, 16))).shape == (2, 16, 64)


def test_vocabulary_comes_from_num_classes_not_a_knob() -> None:
    with pytest.raises(TypeError, match="vocab_size"):
        create_model("byte_lm", input_shape=(16,), num_classes=64, vocab_size=99)


@pytest.mark.parametrize("name", ["byte_lm", "local_global_lm", "parallel_track_lm"])
def test_registered_lms_name_bad_shapes(name: str) -> None:
    with pytest.raises(ValueError, match=r"input_shape \(context,\).*\(1, 8, 8\)"):
        create_model(name, input_shape=(1, 8, 8), num_classes=256)
    with pytest.raises(ValueError, match="num_classes"):
        MODELS.get(name)(input_shape=(16,), num_classes=0)


def test_one_rope_table_and_init_for_the_three_lms() -> None:
    cfg = dict(context=8, n_heads=2, n_kv_heads=1, d_model=16)
    models = [
        ByteLM(LMConfig(n_layers=2, **cfg)),
        LocalGlobalLM(LocalGlobalConfig(n_layers=2, window=4, **cfg)),
        ParallelTrackLM(PTConfig(n_layers=2, **cfg)),
    ]
    cos, sin = rope_tables(8, 8, 10_000.0)
    for model in models:
        assert torch.equal(model.rope_cos, cos) and torch.equal(model.rope_sin, sin)
        assert "rope_cos" not in model.state_dict()


def test_gpt2_init_scales_residual_outputs() -> None:
    torch.manual_seed(0)
    model = ByteLM(LMConfig(context=8, n_layers=8, d_model=256, n_heads=4, n_kv_heads=2))
    gpt2_init(model, 8)
    for name, p in model.named_parameters():
        if name.endswith(RESIDUAL_OUTPUTS):
            assert abs(float(p.detach().std()) - 0.02 / 4) < 0.001, name
        elif name.endswith("q.weight"):
            assert abs(float(p.detach().std()) - 0.02) < 0.002, name


@pytest.mark.parametrize(
    ("idx", "message"),
    [
        (torch.zeros(2, 3), "integer tensor"),
        (torch.zeros(2, 0, dtype=torch.long), "T=0"),
        (torch.zeros(1, 9, dtype=torch.long), "longer than the model's context of 8"),
        (torch.full((1, 2), 300), r"\[0, 256\), got range \[300, 300\]"),
    ],
)
def test_check_idx_names_the_problem(idx: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_idx(idx, 8, 256)


def test_lm_never_imports_the_cli() -> None:
    assert not hasattr(netprism.lm, "cli")
    assert importlib.util.find_spec("netprism.lm.cli") is None
