"""Hypothesis fuzzing of the public loaders of saved state -- training checkpoints
(``latest_checkpoint``), saved LMs (``load_lm``), LoRA adapters (``load_lora``) and experiment
results (``Result.load``) -- with garbage JSON, truncated or flipped tensor files, wrong
shapes and dtypes, NaN/inf and huge declared sizes.  Each is loaded or refused with a
``ValueError`` naming the file; a corrupt checkpoint is skipped (with a warning) for the
previous one, or refused with :class:`CheckpointError` when no valid one is left."""

import hashlib
import json
import math
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from netprism.experiments.base import Result
from netprism.lm.lora import add_lora, load_lora, save_lora
from netprism.lm.model import ByteLM, LMConfig
from netprism.lm.train import load_lm, save_lm
from netprism.train.checkpoint import CheckpointError, latest_checkpoint, save_checkpoint

FUZZ = settings(
    max_examples=40,
    database=None,  # no .hypothesis folder in the work tree; seeds vary per run
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TINY = {"context": 8, "n_layers": 2, "d_model": 8, "n_heads": 2, "n_kv_heads": 1}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


def _dumps(value) -> str:
    return json.dumps(value)  # NaN/inf become the non-standard tokens Python accepts


def _mutate(raw: bytes, cut: int | None, flips: list[tuple[int, int]]) -> bytes:
    data = bytearray(raw if cut is None else raw[: cut % (len(raw) + 1)])
    for pos, xor in flips:
        if data:
            data[pos % len(data)] ^= xor
    return bytes(data)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


cuts = st.none() | st.integers(0, 1 << 16)
flips = st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(1, 255)), min_size=1, max_size=3)


# --- training checkpoints -------------------------------------------------------------------


def _two_checkpoints(folder: Path) -> None:
    save_checkpoint(folder, 0, {"w": torch.zeros(3)}, {"note": "first"})
    save_checkpoint(folder, 1, {"w": torch.ones(3)}, {"note": "second"})


@FUZZ
@given(meta=json_values | st.dictionaries(st.sampled_from(["sha256", "epoch"]), json_values))
def test_rel_fuzz_checkpoint_json_falls_back_to_previous(tmp_path, meta):
    folder = tmp_path / "ck"
    _two_checkpoints(folder)
    newest = folder / "epoch_0001.json"
    good = json.loads(newest.read_text())
    newest.write_text(_dumps(meta))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tensors, loaded = latest_checkpoint(folder)
    if loaded["epoch"] == 1:  # only a JSON equivalent to the real one may be accepted
        assert meta["sha256"] == good["sha256"] and meta["epoch"] == 1
    else:
        assert loaded["note"] == "first" and torch.equal(tensors["w"], torch.zeros(3))
        assert any(str(newest) in str(w.message) for w in caught)


@FUZZ
@given(cut=cuts, flip=flips)
def test_rel_fuzz_checkpoint_tensors_detected_by_checksum(tmp_path, cut, flip):
    folder = tmp_path / "ck"
    _two_checkpoints(folder)
    newest = folder / "epoch_0001.safetensors"
    raw = newest.read_bytes()
    assume(_mutate(raw, cut, flip) != raw)  # two flips of one byte can cancel out
    newest.write_bytes(_mutate(raw, cut, flip))
    with pytest.warns(RuntimeWarning, match="SHA-256") as caught:
        tensors, meta = latest_checkpoint(folder)
    assert str(newest) in str(caught[0].message)
    assert meta["epoch"] == 0 and torch.equal(tensors["w"], torch.zeros(3))


def test_rel_checkpoint_all_corrupt_is_refused_not_restarted(tmp_path):
    folder = tmp_path / "ck"
    _two_checkpoints(folder)
    (folder / "epoch_0000.safetensors").write_bytes(b"")  # truncated to nothing
    (folder / "epoch_0001.json").write_text("{not json")
    with pytest.warns(RuntimeWarning), pytest.raises(CheckpointError) as info:
        latest_checkpoint(folder)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert str(folder / "epoch_0000.safetensors") in message and "SHA-256" in message
    assert str(folder / "epoch_0001.json") in message and "unreadable JSON" in message


def test_rel_checkpoint_matching_hash_but_not_safetensors(tmp_path, refuses):
    # a hand-edited JSON whose hash matches a file that is not safetensors at all
    folder = tmp_path / "ck"
    folder.mkdir()
    tensors = folder / "epoch_0000.safetensors"
    tensors.write_bytes(b"\xff" * 64)
    (folder / "epoch_0000.json").write_text(json.dumps({"epoch": 0, "sha256": _sha(tensors)}))
    with pytest.warns(RuntimeWarning):
        refuses(lambda: latest_checkpoint(folder), tensors, folder, match="not a valid")


# --- saved LMs ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    config = LMConfig(**TINY)
    torch.manual_seed(0)
    return save_lm(ByteLM(config), config, tmp_path_factory.mktemp("lm") / "model")


def _copy_lm(src: Path, dst: Path) -> Path:
    dst.mkdir(exist_ok=True)
    for name in ("model.safetensors", "config.json"):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


config_values = st.integers(-2, 4) | st.sampled_from([2**31, 2**40, 10**30, 1.5, math.nan, None])


@FUZZ
@given(
    fields=st.dictionaries(
        st.sampled_from([*TINY, "d_ff", "head_dim", "kv_share", "rope_theta", "norm_eps", "x"]),
        config_values | json_values,
        max_size=3,
    ),
    whole=st.none() | json_values,
)
def test_rel_fuzz_lm_config_json(tmp_path, lm_dir, refuses, fields, whole):
    folder = _copy_lm(lm_dir, tmp_path / "lm")
    path = folder / "config.json"
    meta = json.loads(path.read_text())
    meta["config"].update(fields)
    path.write_text(_dumps(meta if whole is None else whole))
    try:
        model, config = load_lm(folder)
    except ValueError as err:
        assert str(folder) in str(err), err
        return
    # accepted: the edits changed nothing that matters; the weights are the saved ones
    assert whole is None and config == LMConfig(**json.loads(path.read_text())["config"])
    reference, _ = load_lm(lm_dir)
    for a, b in zip(model.state_dict().values(), reference.state_dict().values()):
        assert torch.equal(a, b)


@FUZZ
@given(cut=cuts, flip=flips)
def test_rel_fuzz_lm_weights_truncated_or_flipped(tmp_path, lm_dir, refuses, cut, flip):
    folder = _copy_lm(lm_dir, tmp_path / "lm")
    weights = folder / "model.safetensors"
    raw = weights.read_bytes()
    assume(_mutate(raw, cut, flip) != raw)
    weights.write_bytes(_mutate(raw, cut, flip))
    refuses(lambda: load_lm(folder), weights, match="SHA-256")
    # a forged hash gets past the checksum; the content checks must still refuse cleanly
    meta = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**meta, "sha256": _sha(weights)}))
    try:
        model, _ = load_lm(folder)
    except ValueError as err:
        assert str(weights) in str(err), err
        return
    assert all(torch.isfinite(p).all() for p in model.state_dict().values())


@pytest.mark.parametrize("fault", ["nan", "inf", "float64", "shape", "missing", "extra"])
def test_rel_lm_weights_wrong_values_dtype_shape(tmp_path, lm_dir, refuses, fault):
    folder = _copy_lm(lm_dir, tmp_path / "lm")
    weights = folder / "model.safetensors"
    state = {k: v.clone() for k, v in load_lm(lm_dir)[0].state_dict().items()}
    name = next(k for k, v in state.items() if v.ndim == 2)
    if fault in ("nan", "inf"):
        state[name][0, 0] = float(fault)
    elif fault == "float64":
        state[name] = state[name].double()
    elif fault == "shape":
        state[name] = state[name][:, :-1].contiguous()
    elif fault == "missing":
        del state[name]
    else:
        state["extra.weight"] = torch.zeros(2)
    save_file(state, str(weights))
    meta = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**meta, "sha256": _sha(weights)}))
    refuses(lambda: load_lm(folder), weights, folder)


@pytest.mark.parametrize(
    "fields, named, match",
    [  # tens of GB of weights / of RoPE tables if built for real
        ({"d_model": 2**16, "d_ff": 2**20}, "model.safetensors", "config needs"),
        ({"context": 2**31}, "config.json", "context=2147483648"),
        ({"n_layers": 2**31}, "model.safetensors", "n_layers=2147483648"),  # 2**31 modules
    ],
)
def test_rel_lm_config_declaring_huge_model_fails_fast(
    tmp_path, lm_dir, refuses, fields, named, match
):
    folder = _copy_lm(lm_dir, tmp_path / "lm")
    meta = json.loads((folder / "config.json").read_text())
    meta["config"].update(fields)
    (folder / "config.json").write_text(json.dumps(meta))
    refuses(lambda: load_lm(folder), folder / named, folder, match=match)


# --- LoRA adapters --------------------------------------------------------------------------


def _lm():
    torch.manual_seed(0)
    return ByteLM(LMConfig(**TINY)).eval()


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    path = tmp_path_factory.mktemp("lora") / "adapter.safetensors"
    return save_lora(add_lora(_lm(), rank=2, alpha=4.0), path)


@FUZZ
@given(
    header=st.dictionaries(
        st.sampled_from(["rank", "alpha", "dropout", "targets"]),
        json_values | st.integers(-1, 3) | st.lists(st.text(max_size=4)),
    )
    | json_values,
    raw_header=st.none() | st.text(max_size=20),
)
def test_rel_fuzz_lora_header(tmp_path, adapter, refuses, header, raw_header):
    from safetensors import safe_open

    with safe_open(str(adapter), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        good = json.loads(f.metadata()["lora"])
    merged = {**good, **header} if isinstance(header, dict) else header
    path = tmp_path / "adapter.safetensors"
    text = _dumps(merged) if raw_header is None else raw_header
    save_file(tensors, str(path), metadata={"lora": text})
    model = _lm()
    try:
        load_lora(model, path)
    except ValueError as err:
        assert str(path) in str(err) or "adapter target" in str(err), err
        return
    assert isinstance(merged, dict) and merged["rank"] == good["rank"]
    assert sorted(merged["targets"]) == sorted(good["targets"])


@FUZZ
@given(cut=cuts, flip=flips)
def test_rel_fuzz_lora_file_truncated_or_flipped(tmp_path, adapter, refuses, cut, flip):
    path = tmp_path / "adapter.safetensors"
    path.write_bytes(_mutate(adapter.read_bytes(), cut, flip))
    model = _lm()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        load_lora(model, path)
    except ValueError as err:
        assert str(path) in str(err) or "adapter target" in str(err), err
        after = model.state_dict()
        assert after.keys() == before.keys()  # refused before the model was touched
        assert all(torch.equal(after[k], v) for k, v in before.items())
        return
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())


@pytest.mark.parametrize("fault", ["nan", "int32", "shape", "huge_rank"])
def test_rel_lora_wrong_values_dtype_shape(tmp_path, adapter, refuses, fault):
    from safetensors import safe_open

    with safe_open(str(adapter), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        header = json.loads(f.metadata()["lora"])
    name = sorted(tensors)[0]
    if fault == "nan":
        tensors[name][0, 0] = float("nan")
    elif fault == "int32":  # float dtypes are cast to the model's; integers are refused
        tensors[name] = tensors[name].to(torch.int32)
    elif fault == "shape":
        tensors[name] = tensors[name][:1].contiguous()
    else:
        header["rank"] = 2**40  # declared, not backed by tensors: must not allocate
    path = tmp_path / "adapter.safetensors"
    save_file(tensors, str(path), metadata={"lora": json.dumps(header)})
    refuses(lambda: load_lora(_lm(), path), path, tmp_path)


# --- experiment results (Result.load) ------------------------------------------------------


@FUZZ
@given(
    value=json_values
    | st.fixed_dictionaries(
        {"name": json_values, "config": json_values, "metrics": json_values},
        optional={"claims": json_values | st.lists(json_values, max_size=2)},
    )
)
def test_rel_fuzz_result_load(tmp_path, refuses, value):
    path = tmp_path / "result.json"
    path.write_text(_dumps(value))
    try:
        Result.load(path)
    except ValueError as err:
        assert str(path) in str(err), err
