import numpy as np
import pytest
import torch
from PIL import Image

from netprism.data import load_dataset
from netprism.data.ood import (
    check_same_input,
    folder_ood,
    gaussian_noise,
    held_out_classes,
    inverted,
    other_dataset,
    rotated,
    shuffled_pixels,
    uniform_noise,
)


@pytest.fixture(scope="module")
def digits_test():
    return load_dataset("digits", split="test")


def test_held_out_classes_split_and_relabel(digits_test):
    near_in, near_out = held_out_classes(digits_test, (7, 2))
    assert near_in.classes == ("7", "2") and set(near_in.y.tolist()) == {0, 1}
    assert torch.equal(near_in.x[near_in.y == 0], digits_test.x[digits_test.y == 7])
    assert len(near_in) + len(near_out) == len(digits_test)
    assert not ({2, 7} & set(near_out.y.tolist())) and near_out.info.extra["ood"]


@pytest.mark.parametrize(
    ("classes", "match"),
    [
        ((), "distinct class indices"),
        ((1, 1), "distinct"),
        ((0, 10), r"in \[0, 10\)"),
        (tuple(range(10)), "keeps every class"),
    ],
)
def test_held_out_classes_rejects_bad_classes(digits_test, classes, match):
    with pytest.raises(ValueError, match=match):
        held_out_classes(digits_test, classes)


def test_noise_sets_shape_range_and_seed(digits_test):
    g = gaussian_noise(digits_test, 200, seed=3)
    u = uniform_noise((40,), 100, low=-1.0, high=2.0)
    assert g.x.shape == (200, 1, 8, 8) and 0.0 <= float(g.x.min()) and float(g.x.max()) <= 1.0
    assert torch.equal(g.x, gaussian_noise((1, 8, 8), 200, seed=3).x)
    assert not torch.equal(g.x, gaussian_noise((1, 8, 8), 200, seed=4).x)
    assert u.x.shape == (100, 40) and -1.0 <= float(u.x.min()) and float(u.x.max()) <= 2.0
    assert gaussian_noise((3,), 5000, clip=None).x.std().item() == pytest.approx(1.0, abs=0.05)
    with pytest.raises(ValueError, match="std must be > 0"):
        gaussian_noise((3,), 5, std=0.0)
    with pytest.raises(ValueError, match="high must exceed low"):
        uniform_noise((3,), 5, low=1.0, high=1.0)
    with pytest.raises(ValueError, match="n must be a positive int, got 0"):
        uniform_noise((3,), 0)
    with pytest.raises(ValueError, match="input shape must be"):
        uniform_noise((0, 3), 4)


def test_transforms(digits_test):
    assert torch.allclose(inverted(inverted(digits_test)).x, digits_test.x)
    shuf = shuffled_pixels(digits_test, seed=1)
    assert torch.equal(shuf.x.flatten(1).sort(1).values, digits_test.x.flatten(1).sort(1).values)
    assert not torch.equal(shuf.x, digits_test.x)
    rot = rotated(digits_test, quarter_turns=1)
    assert torch.equal(rot.x[:, 0, 0, :], digits_test.x[:, 0, :, -1])  # top row = last column
    assert torch.equal(rotated(rot, quarter_turns=3).x, digits_test.x)
    with pytest.raises(ValueError, match=r"square images \(C, H, H\), got input shape \(40,\)"):
        rotated(uniform_noise((40,), 3))


def test_other_dataset_is_resampled_to_the_input(digits_test):
    far = other_dataset("mnist1d", digits_test, n=30)
    assert far.x.shape == (30, 1, 8, 8) and float(far.x.min()) == 0.0
    assert float(far.x.max()) == pytest.approx(1.0)
    same = other_dataset("digits", (1, 4, 4), n=5, value_range=None)  # bilinear image resize
    assert same.x.shape == (5, 1, 4, 4)
    check_same_input(far, digits_test)


def test_different_input_shape_is_a_clear_error(digits_test):
    with pytest.raises(
        ValueError,
        match=r"shape \(40,\) but the in-distribution inputs have "
        r"shape \(1, 8, 8\)",
    ):
        check_same_input(uniform_noise((40,), 4), digits_test)


def _write_images(folder, sizes):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(sizes):
        arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"img{i}.png")


def test_folder_ood_reads_flat_and_class_folders(tmp_path):
    _write_images(tmp_path / "flat", [(8, 8), (16, 12)])
    _write_images(tmp_path / "classes" / "cats", [(8, 8)])
    _write_images(tmp_path / "classes" / "dogs", [(8, 8)])
    flat = folder_ood(tmp_path / "flat", (1, 8, 8))
    assert flat.x.shape == (2, 1, 8, 8) and float(flat.x.max()) <= 1.0
    assert folder_ood(tmp_path / "classes", (3, 8, 8), resize=False).x.shape == (2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"img1.png is 16x12"):
        folder_ood(tmp_path / "flat", (1, 8, 8), resize=False)
    with pytest.raises(ValueError, match=r"inputs of shape \(3, 8, 8\) but the in-distribution"):
        folder_ood(tmp_path / "classes", (3, 4, 4), resize=False)
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        folder_ood(tmp_path / "missing", (1, 8, 8))
    with pytest.raises(ValueError, match=r"image input shape \(1\|3, H, W\), got \(40,\)"):
        folder_ood(tmp_path / "flat", (40,))


def test_folder_ood_refuses_links_out_of_the_folder(tmp_path):
    _write_images(tmp_path / "elsewhere", [(8, 8)])
    (tmp_path / "ood").mkdir()
    (tmp_path / "ood" / "linked.png").symlink_to(tmp_path / "elsewhere" / "img0.png")
    with pytest.raises(ValueError, match="symbolic link .* outside the data folder"):
        folder_ood(tmp_path / "ood", (1, 8, 8))
    assert len(folder_ood(tmp_path / "ood", (1, 8, 8), follow_symlinks=True)) == 1
