"""Saving, loading, CSV read-back and pandas export of MemorizationScores."""

from __future__ import annotations

import json
import math
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from netprism.memorization.scores import MemorizationScores, load_scores
from netprism.memorization.scores_io import HEADER_KEY, _digest, save_scores


def _scores(n: int = 7, epochs: int = 3) -> MemorizationScores:
    g = torch.Generator().manual_seed(0)
    history = torch.randn(epochs, n, generator=g, dtype=torch.float64)
    curvature = history.abs().mean(0)
    curvature[2] = float("nan")  # a sample the loader never drew
    return MemorizationScores(
        scores={
            "curvature": curvature,
            "curvature_final": history[-1],  # shares memory with per_epoch["curvature"]
            "loss": torch.rand(n, generator=g, dtype=torch.float32),
            "forgetting": torch.arange(n),
        },
        per_epoch={"curvature": history, "loss": torch.rand(epochs, n, generator=g)},
        history=[
            {"loss": 1.0 / (e + 1), "accuracy": math.nan if e == 0 else 0.5} for e in range(epochs)
        ],
        seconds={"train": 1.25, "curvature": 0.5},
    )


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (
        a.dtype == b.dtype
        and a.shape == b.shape
        and torch.equal(a.isnan(), b.isnan())
        and (
            torch.equal(a[~a.isnan()], b[~b.isnan()])
            if a.is_floating_point()
            else torch.equal(a, b)
        )
    )


def test_save_load_round_trip_is_exact(tmp_path):
    s = _scores()
    path = s.save(tmp_path / "sub" / "scores.safetensors")
    back = MemorizationScores.load(path)
    assert back.names == s.names and list(back.per_epoch) == list(s.per_epoch)
    for k in s.scores:
        assert _same(back[k], s[k]), k
        assert torch.equal(back[k], s[k]) or torch.allclose(back[k], s[k], equal_nan=True)
    for k in s.per_epoch:
        assert _same(back.per_epoch[k], s.per_epoch[k]), k
    assert back.seconds == s.seconds and back.model is None
    assert json.dumps(back.history) == json.dumps(s.history)  # NaN survives
    assert not list(path.parent.glob("*.tmp"))  # atomic write leaves no debris
    # no netprism tensors outside the documented names; header is in the metadata
    assert set(load_file(str(path))) == {
        "scores.curvature", "scores.curvature_final", "scores.loss", "scores.forgetting",
        "per_epoch.curvature", "per_epoch.loss",
    }  # fmt: skip


def test_header_records_methods_epochs_length_version(tmp_path):
    from safetensors import safe_open

    import netprism

    path = save_scores(_scores(n=5, epochs=4), tmp_path / "s.safetensors")
    with safe_open(str(path), framework="pt") as fh:
        header = json.loads(fh.metadata()[HEADER_KEY])
    assert header["format_version"] == 1 and header["netprism_version"] == netprism.__version__
    assert header["n"] == 5 and header["epochs"] == 4
    assert header["methods"] == ["curvature", "curvature_final", "loss", "forgetting"]
    assert header["per_epoch"] == {"curvature": 4, "loss": 4}


def _write_raw(path, tensors, header, *, fix_digest=True):
    if fix_digest:
        header = {**header, "sha256": _digest(header, tensors)}
    save_file(tensors, str(path), metadata={HEADER_KEY: json.dumps(header)})


def _raw(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return load_file(str(path)), json.loads(fh.metadata()[HEADER_KEY])


def test_load_refuses_mismatched_lengths(tmp_path):
    path = save_scores(_scores(), tmp_path / "s.safetensors")
    tensors, header = _raw(path)
    tensors["scores.loss"] = tensors["scores.loss"][:-1].clone()
    _write_raw(path, tensors, header)
    with pytest.raises(ValueError, match=r"s\.safetensors.*score 'loss' has shape \(6,\).*\(7,\)"):
        load_scores(path)
    tensors, header = _raw(save_scores(_scores(), path))
    tensors["per_epoch.loss"] = tensors["per_epoch.loss"][:, :-1].clone()
    _write_raw(path, tensors, header)
    with pytest.raises(ValueError, match=r"per_epoch 'loss' has shape \(3, 6\)"):
        load_scores(path)


def test_save_refuses_inconsistent_scores(tmp_path):
    s = _scores()
    s.scores["loss"] = s.scores["loss"][:-1]
    with pytest.raises(ValueError, match="different lengths"):
        s.save(tmp_path / "s.safetensors")
    s = _scores()
    s.per_epoch["loss"] = s.per_epoch["loss"][:, :3]
    with pytest.raises(ValueError, match=r"per_epoch\['loss'\] must be \(E, 7\)"):
        s.save(tmp_path / "s.safetensors")
    with pytest.raises(ValueError, match="no scores"):
        MemorizationScores({}).save(tmp_path / "s.safetensors")
    s = _scores()
    s.history = [{"loss": torch.ones(1)}]
    with pytest.raises(ValueError, match="not JSON"):
        s.save(tmp_path / "s.safetensors")
    assert not (tmp_path / "s.safetensors").exists()


def test_load_refuses_unknown_methods_unless_allowed(tmp_path):
    s = _scores()
    s.scores["my_score"] = torch.zeros(7)
    path = s.save(tmp_path / "s.safetensors")
    with pytest.raises(ValueError, match=r"unknown score names \['my_score'\].*allow_unknown"):
        MemorizationScores.load(path)
    assert torch.equal(
        MemorizationScores.load(path, allow_unknown=True)["my_score"], torch.zeros(7)
    )


def test_load_refuses_a_deeply_nested_header(tmp_path):
    path = save_scores(_scores(), tmp_path / "s.safetensors")
    tensors, _ = _raw(path)
    save_file(tensors, str(path), metadata={HEADER_KEY: "[" * 100_000 + "]" * 100_000})
    with pytest.raises(ValueError, match="nested deeper than 64 levels"):
        load_scores(path)


def test_load_refuses_tampered_header_and_values(tmp_path):
    path = save_scores(_scores(), tmp_path / "s.safetensors")
    tensors, header = _raw(path)
    _write_raw(path, tensors, {**header, "seconds": {"train": 0.0}}, fix_digest=False)
    with pytest.raises(ValueError, match=r"s\.safetensors: SHA-256 .* edited"):
        load_scores(path)
    tensors["scores.curvature"][0] += 1
    _write_raw(path, tensors, header, fix_digest=False)
    with pytest.raises(ValueError, match="SHA-256"):
        load_scores(path)
    _write_raw(path, tensors, {**header, "format_version": 99})
    with pytest.raises(ValueError, match="format_version 99 is newer"):
        load_scores(path)
    _write_raw(path, tensors, {**header, "n": "7"})
    with pytest.raises(ValueError, match="header 'n' must be a int"):
        load_scores(path)
    _write_raw(path, tensors, {**header, "methods": ["curvature"]})
    with pytest.raises(ValueError, match="do not match the header"):
        load_scores(path)
    save_file(tensors, str(path))  # a plain safetensors file
    with pytest.raises(ValueError, match="not a netprism scores file"):
        load_scores(path)


def test_load_refuses_truncated_or_foreign_files(tmp_path):
    path = save_scores(_scores(), tmp_path / "s.safetensors")
    data = path.read_bytes()
    for cut in (len(data) - 8, len(data) // 2, 5, 0):
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=r"s\.safetensors: not a valid safetensors file"):
            load_scores(path)
    path.write_bytes(b"\x80\x04pickle")
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        load_scores(path)
    with pytest.raises(FileNotFoundError, match="missing"):
        load_scores(tmp_path / "missing.safetensors")


def test_csv_round_trip_to_printed_precision(tmp_path):
    s = _scores()
    s.scores["loss"] = s.scores["loss"].double()
    path = s.to_csv(tmp_path / "ranked.csv", reasons={3: 'dup of #2, "x"\nsecond line'})
    back = MemorizationScores.from_csv(path)
    assert back.names == s.names and len(back) == len(s)
    for k in s.names:
        want = torch.tensor([float(f"{float(v):.6g}") for v in s[k]], dtype=torch.float64)
        assert back[k].dtype == torch.float64
        assert torch.allclose(back[k], want, rtol=0, atol=0, equal_nan=True), k
        assert torch.allclose(back[k], s[k].double(), rtol=1e-5, equal_nan=True), k
    from netprism.memorization.scores_io import csv_reasons

    assert csv_reasons(path) == {3: 'dup of #2, "x"\nsecond line'}


def test_csv_refusals(tmp_path):
    path = tmp_path / "r.csv"
    good = "rank,index,curvature,loss,reason\n1,1,0.9,1,\n2,0,0.5,nan,x\n"
    path.write_text(good)
    back = MemorizationScores.from_csv(path)
    assert back["curvature"].tolist() == [0.5, 0.9] and math.isnan(back["loss"][0])
    h = "rank,index,curvature,reason\n"
    cases = {
        h + "1,0,0.9,\n2,0,0.5,\n": r"index .* duplicates \[0\], missing \[1\]",
        "rank,index,curvature,reason\n1,0,0.9,\n2,2,0.5,\n": r"missing \[1\], out of range \[2\]",
        "rank,index,curvature,mystery,reason\n1,0,0.9,1,\n": r"unknown columns \['mystery'\]",
        "rank,index,curvature,curvature,reason\n1,0,0.9,1,\n": "duplicate method columns",
        "index,curvature\n0,0.9\n": "expected the header",
        "rank,index,curvature,reason\n1,0,0.9\n": "line 2: 3 fields, expected 4",
        "rank,index,curvature,reason\n1,0,abc,\n": "line 2: could not convert",
        "rank,index,curvature,reason\n1,0,0.1,\n1,1,0.2,\n": r"rank column .* duplicates \[1\]",
    }
    for text, msg in cases.items():
        path.write_text(text)
        with pytest.raises(ValueError, match=msg):
            MemorizationScores.from_csv(path)
    path.write_text("rank,index,curvature,mystery,reason\n1,0,0.9,1,\n")
    assert MemorizationScores.from_csv(path, allow_unknown=True).names == ["curvature", "mystery"]


def test_to_pandas_shape_columns_and_missing_pandas(monkeypatch):
    s = _scores()
    df = s.to_pandas()
    assert df.shape == (7, 4) and list(df.columns) == s.names and df.index.name == "index"
    assert list(df.index) == list(range(7))
    assert str(df["loss"].dtype) == "float32" and str(df["curvature"].dtype) == "float64"
    assert df["curvature"].isna().tolist() == s["curvature"].isnan().tolist()
    assert df.loc[4, "forgetting"] == 4
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="to_pandas needs pandas.*pip install pandas"):
        s.to_pandas()


def test_round_trip_of_a_real_run(tmp_path):
    from netprism.memorization import default_config, memorization_scores

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 4, generator=g), torch.randint(0, 3, (20,), generator=g)
    s = memorization_scores(torch.nn.Linear(4, 3), (x, y), default_config(epochs=2), n_probes=2)
    back = MemorizationScores.load(s.save(tmp_path / "run.safetensors"))
    assert back.names == s.names and back.history == s.history and back.seconds == s.seconds
    for k in s.scores:
        assert _same(back[k], s[k]), k
    for k in s.per_epoch:
        assert _same(back.per_epoch[k], s.per_epoch[k]), k
    assert back.to_pandas().shape == (20, len(s.names))
