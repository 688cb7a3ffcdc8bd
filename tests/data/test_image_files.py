"""Lazy image folders (``image_files``): the same samples as ``load_dataset("imagefolder")``,
bit for bit, decoded only when read; labels readable without any image."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from netprism.data import image_files, load_dataset
from netprism.data.base import DatasetInfo, labels_of
from netprism.data.readers.image_files import ImageFiles

RNG = np.random.default_rng(7)


def _folder(root: Path, shape: tuple[int, ...], per_class: int = 5) -> Path:
    for split in ("train", "test"):
        for cls in ("ant", "bee", "cow"):
            (root / split / cls).mkdir(parents=True)
            for i in range(per_class):
                arr = RNG.integers(0, 256, shape, dtype=np.uint8)
                Image.fromarray(arr).save(root / split / cls / f"{i}.png")
    return root


@pytest.mark.parametrize("shape,options", [((6, 5), {}), ((6, 5, 3), {"size": (4, 7)})])
def test_lazy_equals_eager_bit_for_bit(tmp_path, shape, options):
    root = _folder(tmp_path, shape)
    for split in ("train", "test"):
        eager = load_dataset("imagefolder", split=split, data_dir=root, **options)
        lazy = image_files(root, split=split, **options)
        assert isinstance(lazy, ImageFiles) and len(lazy) == len(eager) == 15
        assert lazy.classes == eager.classes and lazy.input_shape == eager.input_shape
        assert lazy.info.extra["files"] == eager.info.extra["files"] == lazy.files
        x = torch.stack([lazy[i][0] for i in range(len(lazy))])
        assert torch.equal(x, eager.x) and torch.equal(lazy.labels, eager.y)
        batches = list(DataLoader(lazy, batch_size=4, num_workers=2))
        assert torch.equal(torch.cat([b[0] for b in batches]), eager.x)


def test_join_subset_and_labels_without_decoding(tmp_path):
    root = _folder(tmp_path, (4, 4))
    train, test = (image_files(root, split=s) for s in ("train", "test"))
    both = train + test
    assert len(both) == 30 and both.files == train.files + test.files
    assert both.info.extra["files"] == both.files
    assert torch.equal(both[20][0], test[5][0])
    part = both.subset([29, 0])
    assert part.files == (both.files[29], both.files[0]) and part.labels.tolist() == [2, 0]
    for path in root.rglob("*.png"):
        path.unlink()  # labels never need an image
    assert torch.equal(labels_of(both), both.labels)
    assert torch.equal(labels_of(DataLoader(both, batch_size=3, shuffle=True)), both.labels)
    with pytest.raises(ValueError, match="cannot read image .*0.png"):
        both[0]


def test_bad_input_is_refused(tmp_path):
    root = _folder(tmp_path, (4, 4))
    ds = image_files(root)
    info = ds.info
    with pytest.raises(ValueError, match="one label per file"):
        ImageFiles(ds.paths, [0, 1], info)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        ImageFiles(ds.paths[:1], [3], info)
    with pytest.raises(ValueError, match="holds no image"):
        ImageFiles([], [], info)
    with pytest.raises(ValueError, match="extra\\['mode'\\]"):
        ImageFiles(ds.paths[:1], [0], DatasetInfo("x", ("a",), (16,), "test"))
    rgb = image_files(root, mode="RGB")
    with pytest.raises(ValueError, match="cannot join"):
        ds + rgb
    with pytest.raises(ValueError, match="split must be one of"):
        image_files(root, split="all")
    Image.fromarray(np.zeros((5, 4), np.uint8)).save(ds.paths[3])  # resized after listing
    with pytest.raises(ValueError, match="is 5x4 \\(HxW\\) but .* is 4x4"):
        ds[3]
