"""duplicate_scores finds planted conflicting near-duplicates: exact, noisy and one-pixel
shifted copies (the shifted ones only when translations are searched); the feature space is
the last Linear layer's input; the projected search stays close to the exact one."""

import pytest
import torch

from netprism.core.metrics import auroc
from netprism.data import load_dataset, with_conflicting_duplicates
from netprism.memorization.duplicates import duplicate_scores, penultimate_features
from netprism.models import create_model


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _planted(ds, kind):
    data, dup = with_conflicting_duplicates(ds, 30, seed=0, kind=kind)
    positives = torch.zeros(len(data), dtype=torch.bool)
    positives[dup.flatten()] = True
    return data, positives


@pytest.mark.parametrize("kind", ["exact", "noise", "shift"])
def test_translation_search_finds_every_kind_of_copy(digits, kind):
    data, positives = _planted(digits, kind)
    assert auroc(positives, duplicate_scores(data, shifts=1)) > 0.99
    plain = auroc(positives, duplicate_scores(data))
    assert plain > 0.99 if kind != "shift" else plain < 0.8  # a shift defeats plain distance


def test_features_are_the_last_linear_layers_input(digits):
    torch.manual_seed(0)
    model = create_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=(16,))
    feats = penultimate_features(model, digits)
    with torch.no_grad():
        want = model.act1(model.fc1(model.flatten(digits.x)))  # what the head reads
    torch.testing.assert_close(feats, want)
    scores = duplicate_scores(_planted(digits, "exact")[0], model=model)
    assert scores.shape == (len(digits) + 30,)


def test_projected_search_stays_close_to_the_exact_one(digits):
    data, positives = _planted(digits, "noise")
    approx = duplicate_scores(data, max_exact=100, projection_dim=32, seed=1)
    assert auroc(positives, approx) > 0.95


def test_bad_arguments_are_refused(digits):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    with pytest.raises(ValueError, match="cannot be used with model="):
        duplicate_scores(digits, model=model, shifts=1)
    with pytest.raises(ValueError, match=r"shifts must be an int >= 0, got -1"):
        duplicate_scores(digits, shifts=-1)


def test_signals_are_searched_along_their_axis():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(60, 40, generator=gen)  # 1-D signals, like MNIST-1D
    y = torch.arange(60) % 3
    copies = torch.roll(x[:5], shifts=1, dims=-1)  # shifted copies with another label
    data = (torch.cat([x, copies]), torch.cat([y, (y[:5] + 1) % 3]))
    positives = torch.zeros(65, dtype=torch.bool)
    positives[:5] = positives[60:] = True
    assert auroc(positives, duplicate_scores(data, shifts=1)) > 0.99
    assert auroc(positives, duplicate_scores(data)) < 0.9


class _OnlyItems(torch.utils.data.Dataset):
    """A map-style dataset read item by item (nothing for the search to slice)."""

    def __init__(self, x, y):
        self.x, self.y, self.reads = x, y, 0

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        self.reads += 1
        return self.x[i], self.y[i]


@pytest.mark.parametrize("max_exact", [50_000, 100])
def test_streamed_search_equals_the_in_memory_one(digits, max_exact):
    """A dataset read item by item, a shuffled loader over it and chunks cut small by the
    block budget give the in-memory search's scores and neighbours: exactly, or up to
    rounding when the rows are projected (a chunk's product is blocked differently)."""
    data, _ = _planted(digits, "shift")
    options = dict(shifts=1, max_exact=max_exact, return_neighbors=True)
    want, want_nb = duplicate_scores(data, **options)
    items = _OnlyItems(data.x, data.y)
    loader = torch.utils.data.DataLoader(items, batch_size=7, shuffle=True)
    for streamed in (items, loader):
        got, got_nb = duplicate_scores(streamed, block_bytes=len(data) * 24 * 37, **options)
        if max_exact > len(data):
            assert torch.equal(got, want) and torch.equal(got_nb, want_nb)
        else:
            torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-6)
            assert (got_nb == want_nb).double().mean() > 0.99
    assert items.reads == 4 * len(data)  # two passes each, every item once per pass
    torch.manual_seed(0)
    model = create_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=(16,))
    in_memory = duplicate_scores(data, model=model, max_exact=max_exact)
    from_loader = duplicate_scores(loader, model=model, max_exact=max_exact)
    torch.testing.assert_close(from_loader, in_memory, rtol=1e-6, atol=1e-7)
