"""Models registered by method areas (hybrid_net, spiking_mlp, the byte LMs) and the facade.

``netprism.create_model`` / ``netprism.list_models`` import the areas named in
``netprism.models.MODEL_AREAS`` first; ``import netprism`` itself stays lazy.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch

import netprism
from netprism.compression.hybrid import HybridNet
from netprism.compression.pca_design import build_model
from netprism.models import MODEL_AREAS, create_model
from netprism.spiking import DirectEncoder, EncodedSNN, ann_to_snn


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_facade_imports_the_areas_only_when_asked() -> None:
    code = (
        "import sys, netprism\n"
        f"areas = {MODEL_AREAS!r}\n"
        "print(any(a in sys.modules for a in areas))\n"
        "m = netprism.create_model('hybrid_net', input_shape=(1, 8, 8), num_classes=3)\n"
        "print(type(m).__name__, all(a in sys.modules for a in areas))\n"
        "print(sorted({'byte_lm', 'local_global_lm', 'spiking_mlp'} & set(netprism.list_models())))"
    )
    assert _run(code).splitlines() == [
        "False",
        "HybridNet True",
        "['byte_lm', 'local_global_lm', 'spiking_mlp']",
    ]


def test_hybrid_net_factory_is_the_xnor_hybrid_net() -> None:
    torch.manual_seed(0)
    model = netprism.create_model("hybrid_net", input_shape=(40,), num_classes=4)
    torch.manual_seed(0)
    direct = HybridNet((40,), 4, (32, 1, 1, 1, 1, 32))
    assert isinstance(model, HybridNet) and model.precisions == direct.precisions
    assert list(model.state_dict()) == list(direct.state_dict())
    x = torch.randn(3, 40)
    assert torch.equal(model.eval()(x), direct.eval()(x))
    custom = create_model(
        "hybrid_net",
        input_shape=(1, 8, 8),
        num_classes=3,
        precisions=(32, 2, 32),
        widths=(4, 8),
        pool_after=(1,),
    )
    assert custom.precisions == (32, 2, 32) and custom.layer_names == ("conv1", "h1", "fc")


def test_spiking_mlp_is_the_converted_mlp_on_direct_input() -> None:
    torch.manual_seed(0)
    model = netprism.create_model(
        "spiking_mlp", input_shape=(1, 8, 8), num_classes=3, hidden=(16,), timesteps=5
    )
    torch.manual_seed(0)
    ann = create_model("mlp", input_shape=(1, 8, 8), num_classes=3, hidden=(16,))
    direct = EncodedSNN(DirectEncoder(5), ann_to_snn(ann))
    assert isinstance(model, EncodedSNN) and model.encoder.timesteps == 5
    x = torch.rand(4, 1, 8, 8)
    assert torch.equal(model.eval()(x), direct.eval()(x))


def test_build_model_is_a_deprecated_alias_of_create_model() -> None:
    config = {"name": "mlp", "input_shape": (6,), "num_classes": 3, "hidden": (5,)}
    with pytest.warns(DeprecationWarning, match=r"create_model\(\*\*config\)"):
        torch.manual_seed(0)
        old = build_model(config)
    torch.manual_seed(0)
    new = create_model(**config)
    x = torch.randn(2, 6)
    assert torch.equal(old(x), new(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        create_model(**config)  # the registry itself does not warn
