"""The stdlib byte corpus: deterministic file split, fingerprint, held-out package, sampler."""

import math

import numpy as np
import pytest
import torch

from netprism.lm.corpus import (
    EOS,
    SPLITS,
    BatchSampler,
    bits_per_byte,
    split_files,
    stdlib_corpus,
)


def _tree(root, n_files=60, package="pkg"):
    """A fake source tree: n_files top-level modules, a package, and a test dir to skip."""
    for i in range(n_files):
        (root / f"mod{i:03d}.py").write_text(f"x = {i}\n" * (i + 1))
    (root / package).mkdir()
    (root / package / "__init__.py").write_text("# package\n")
    (root / package / "core.py").write_text("def f():\n    return 1\n")
    (root / "test").mkdir()
    (root / "test" / "test_mod.py").write_text("assert True\n")
    (root / "notes.txt").write_text("not python\n")
    return root


def test_stdlib_corpus_small_and_real():
    c = stdlib_corpus(max_bytes=2048)
    for name in SPLITS:
        arr = c.split(name)
        assert arr.dtype == np.uint8 and arr.ndim == 1 and arr.size == 2048
        assert c.files[name]
    assert all(p.startswith("email/") for p in c.files["heldout"])
    assert not any(p.startswith("email/") for s in ("train", "val", "test") for p in c.files[s])
    assert not any("/test/" in f"/{p}" for s in SPLITS for p in c.files[s])
    assert len(c.sha256) == 64 and c.to_dict()["train_bytes"] == 2048


def test_split_is_deterministic_and_disjoint(tmp_path):
    root = _tree(tmp_path)
    a = stdlib_corpus(root=root, heldout_package="pkg", val_fraction=0.2, test_fraction=0.2)
    b = stdlib_corpus(root=root, heldout_package="pkg", val_fraction=0.2, test_fraction=0.2)
    assert a.files == b.files and a.sha256 == b.sha256
    assert np.array_equal(a.train, b.train)
    every = [p for s in SPLITS for p in a.files[s]]
    assert len(every) == len(set(every)) == 62  # 60 modules + 2 package files; test/ skipped
    assert a.files["heldout"] == ("pkg/__init__.py", "pkg/core.py")
    for s in SPLITS:
        assert list(a.files[s]) == sorted(a.files[s])


def test_split_depends_on_path_only():
    paths = [f"m{i}.py" for i in range(200)]
    full = split_files(paths, "pkg", 0.1, 0.1)
    fewer = split_files(paths[::3], "pkg", 0.1, 0.1)
    for s in SPLITS:  # removing files never moves the others to another split
        assert set(fewer[s]) == set(full[s]) & set(paths[::3])
    assert 5 < len(full["val"]) < 40 and 5 < len(full["test"]) < 40


def test_split_bytes_are_the_files_with_eos(tmp_path):
    root = _tree(tmp_path)
    c = stdlib_corpus(root=root, heldout_package="pkg", val_fraction=0.2, test_fraction=0.2)
    expected = b"".join((root / p).read_bytes() + bytes([EOS]) for p in c.files["heldout"])
    assert c.heldout.tobytes() == expected
    capped = stdlib_corpus(
        root=root, heldout_package="pkg", val_fraction=0.2, test_fraction=0.2, max_bytes=7
    )
    assert capped.heldout.tobytes() == expected[:7]
    assert capped.sha256 != c.sha256  # the train bytes differ


def test_hash_tracks_content(tmp_path):
    root = _tree(tmp_path)
    kw = {"root": root, "heldout_package": "pkg", "val_fraction": 0.2, "test_fraction": 0.2}
    before = stdlib_corpus(**kw)
    (root / before.files["train"][0]).write_text("changed = True\n")
    assert stdlib_corpus(**kw).sha256 != before.sha256


def test_dotted_package_name(tmp_path):
    root = _tree(tmp_path)
    (root / "pkg" / "sub").mkdir()
    (root / "pkg" / "sub" / "a.py").write_text("a = 1\n")
    c = stdlib_corpus(root=root, heldout_package="pkg.sub", val_fraction=0.2, test_fraction=0.2)
    assert c.files["heldout"] == ("pkg/sub/a.py",) and c.heldout_package == "pkg/sub"


def test_errors(tmp_path):
    root = _tree(tmp_path, n_files=2)
    with pytest.raises(ValueError, match="'nosuchpkg' is not a package"):
        stdlib_corpus(root=root, heldout_package="nosuchpkg")
    with pytest.raises(ValueError, match="split 'val' has no files"):
        stdlib_corpus(root=root, heldout_package="pkg", val_fraction=1e-9, test_fraction=0.5)
    with pytest.raises(ValueError, match="val_fraction must be"):
        stdlib_corpus(root=root, heldout_package="pkg", val_fraction=1.5)
    with pytest.raises(ValueError, match="must be < 1"):
        stdlib_corpus(root=root, heldout_package="pkg", val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ValueError, match="max_bytes must be"):
        stdlib_corpus(root=root, heldout_package="pkg", max_bytes=0)
    with pytest.raises(ValueError, match="not a directory"):
        stdlib_corpus(root=tmp_path / "missing")
    c = stdlib_corpus(max_bytes=16)
    with pytest.raises(ValueError, match="split must be one of"):
        c.split("dev")


def test_sampler_is_seeded_windows():
    data = np.arange(256, dtype=np.uint8)
    a = BatchSampler(data, batch_size=4, context=16, seed=3)
    b = BatchSampler(data, batch_size=4, context=16, seed=3)
    c = BatchSampler(data, batch_size=4, context=16, seed=4)
    batches_a = [a.sample() for _ in range(3)]
    batches_b = [b.sample() for _ in range(3)]
    assert all(torch.equal(x, y) for x, y in zip(batches_a, batches_b))
    assert not torch.equal(batches_a[0], c.sample())
    for batch in batches_a:
        assert batch.shape == (4, 17) and batch.dtype == torch.uint8
        starts = batch[:, 0].long()
        assert torch.equal(batch.long(), starts[:, None] + torch.arange(17))  # contiguous
    edge = BatchSampler(data[:17], batch_size=2, context=16, seed=0).sample()
    assert torch.equal(edge[0], torch.from_numpy(data[:17]))  # only one window exists


def test_sampler_errors():
    data = np.zeros(10, dtype=np.uint8)
    with pytest.raises(ValueError, match="needs 11"):
        BatchSampler(data, batch_size=1, context=10, seed=0)
    with pytest.raises(ValueError, match="1-D uint8"):
        BatchSampler(data.astype(np.int64), batch_size=1, context=4, seed=0)
    with pytest.raises(ValueError, match="batch_size must be"):
        BatchSampler(data, batch_size=0, context=4, seed=0)
    with pytest.raises(ValueError, match="seed must be"):
        BatchSampler(data, batch_size=1, context=4, seed=-1)


def test_bits_per_byte():
    assert bits_per_byte(math.log(2)) == pytest.approx(1.0)
    assert torch.allclose(
        bits_per_byte(torch.tensor([0.0, math.log(256)])), torch.tensor([0.0, 8.0])
    )
