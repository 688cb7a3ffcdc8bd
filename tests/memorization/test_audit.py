"""`netprism audit` on a generated image folder: the planted label issues land in its
estimated set, every planted shifted duplicate pair in one of its groups, the CSV names each
file, and the page renders in headless Chromium."""

import csv
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from netprism.cli import main
from netprism.data import load_dataset

N_FLIPS, N_DUPS = 40, 8


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Digits as PNGs in class folders, 40 of them in a wrong class folder and 8 copies shifted
    by one pixel filed under another class."""
    root = tmp_path_factory.mktemp("images")
    ds = load_dataset("digits")
    gen = np.random.default_rng(0)
    x = (ds.x[:, 0].numpy() * 255).round().astype(np.uint8)  # (N, 8, 8)
    y = ds.y.numpy().copy()
    flipped = gen.choice(len(y), N_FLIPS, replace=False)
    y[flipped] = (y[flipped] + gen.integers(1, 10, N_FLIPS)) % 10
    files = {}
    for i, (img, label) in enumerate(zip(x, y)):
        files[i] = _save(root, label, f"s{i:04d}.png", img)
    originals = gen.choice(np.setdiff1d(np.arange(len(y)), flipped), N_DUPS, replace=False)
    pairs = []
    for j, i in enumerate(originals):
        shifted = np.zeros_like(x[i])
        shifted[:, 1:] = x[i][:, :-1]  # one pixel to the right, zero-filled
        copy = _save(root, (y[i] + 1 + j % 9) % 10, f"dup{j:02d}.png", shifted)
        pairs.append((files[i], copy))
    return root, {files[i] for i in flipped}, pairs


def _save(root: Path, label: int, name: str, img: np.ndarray) -> str:
    folder = root / f"class_{label}"
    folder.mkdir(exist_ok=True)
    Image.fromarray(img, mode="L").save(folder / name)
    return str(folder / name)


@pytest.fixture(scope="module")
def audited(folder, tmp_path_factory):
    root, flipped, pairs = folder
    out = tmp_path_factory.mktemp("audit")
    args = ["audit", "--dataset", "imagefolder", "--data-dir", str(root), "--model", "mlp",
            "--epochs", "60", "--device", "cpu", "--out", str(out), "--overwrite"]  # fmt: skip
    assert main(args) == 0
    return out, flipped, pairs


def test_planted_issues_and_duplicates_are_found(audited):
    out, flipped, pairs = audited
    rows = list(csv.DictReader((out / "issues.csv").open()))
    assert len(rows) == 1347 + N_DUPS  # every image of both splits, once
    issues = {r["file"] for r in rows if "label issue" in r["reason"]}
    assert len(issues & flipped) >= 0.9 * N_FLIPS
    group = {r["file"]: r["duplicate_group"] for r in rows}
    for original, copy in pairs:
        assert group[original] != "" and group[original] == group[copy], (original, copy)
    grouped = {f for f, g in group.items() if g != ""}
    assert len(grouped & flipped) <= 0.1 * N_FLIPS  # label issues are not duplicate groups
    assert (out / "scores.safetensors").stat().st_size > 0


def test_page_renders_in_chromium(audited, tmp_path):
    out, _, _ = audited
    page = out / "audit.html"
    text = page.read_text()
    assert "<script" not in text and "http://" not in text and "https://" not in text
    if shutil.which("chromium") is None:
        pytest.skip("chromium not installed: apt-get install chromium")
    dom = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert "Dataset audit" in dom and "Conflicting near-duplicates" in dom
    assert dom.count('<img src="data:image/png;base64,') > 48


def test_bad_input_is_refused_before_training(tmp_path, capsys):
    assert main(["audit", "--dataset", "digits", "--model", "nope", "--out", str(tmp_path)]) == 2
    assert "nope" in capsys.readouterr().err
    with pytest.raises(ValueError, match="duplicate_ratio"):
        from netprism.memorization import audit

        audit(torch.nn.Linear(2, 2), (torch.zeros(4, 2), torch.zeros(4).long()), out_dir=tmp_path,
              duplicate_ratio=0.0)  # fmt: skip
    with pytest.raises(ValueError, match="detector must be one of"):
        audit(torch.nn.Linear(2, 2), (torch.zeros(4, 2), torch.zeros(4).long()), out_dir=tmp_path,
              detector="magic")  # fmt: skip
