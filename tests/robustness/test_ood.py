import numpy as np
import pytest
import torch
from torch import nn

from netprism.core.validation import NotFittedError
from netprism.data import load_dataset
from netprism.data.ood import gaussian_noise, held_out_classes, uniform_noise
from netprism.models import create_model
from netprism.robustness.ood import (
    DETECTORS,
    MSP,
    ODIN,
    Energy,
    Mahalanobis,
    MaxLogit,
    VRMDetector,
    VRMSettings,
    class_means_and_tied_cov,
    intra_class_mixup,
    noise_mixup,
    train_plain,
    train_vrm,
    vrm_config,
)
from netprism.robustness.ood_metrics import count_parameters, measure_overhead, ood_metrics

CFG = vrm_config(epochs=8, seed=0)


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    train, _ = held_out_classes(load_dataset("digits"), range(5))
    test, _ = held_out_classes(load_dataset("digits", split="test"), range(5))
    torch.manual_seed(0)
    plain = train_plain(
        create_model("mlp", input_shape=(1, 8, 8), num_classes=5, hidden=(32,)), train, CFG
    )
    torch.manual_seed(0)
    vrm = train_vrm(
        create_model("mlp", input_shape=(1, 8, 8), num_classes=6, hidden=(32,)), train, CFG
    )
    return train, test, plain, vrm


@pytest.mark.parametrize("name", sorted(DETECTORS))
@pytest.mark.parametrize("noise", [gaussian_noise, uniform_noise])
def test_detectors_rank_planted_noise_above_in_distribution(trained, name, noise):
    train, test, plain, vrm = trained
    det = DETECTORS[name]()
    det.fit(vrm if name == "vrm" else plain, train)
    s_in = det.score(test.x)
    s_out = det.score(noise(test, 300, seed=5).x)
    assert s_in.shape == (len(test),) and s_in.dtype == torch.float32
    floor = 0.95 if name in ("vrm", "mahalanobis") else 0.7
    assert ood_metrics(s_in, s_out).auroc >= floor


def test_mahalanobis_equals_closed_form_on_gaussian_data():
    rng = np.random.default_rng(0)
    k, d, n = 3, 4, 300
    centres = rng.normal(0, 3, (k, d))
    a = rng.normal(size=(d, d))
    y = rng.integers(0, k, n)
    x = centres[y] + rng.normal(size=(n, d)) @ a  # tied covariance A^T A
    w, b = rng.normal(size=(d, d)), rng.normal(size=d)
    net = nn.Sequential(nn.Flatten(), nn.Linear(d, d), nn.Linear(d, k)).double()
    with torch.no_grad():
        net[1].weight.copy_(torch.from_numpy(w))
        net[1].bias.copy_(torch.from_numpy(b))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    probe = rng.normal(0, 4, (50, d))

    def closed_form(feats, probe_feats):
        means = np.stack([feats[y == c].mean(0) for c in range(k)])
        centred = feats - means[y]
        prec = np.linalg.inv(centred.T @ centred / n)
        diff = probe_feats[:, None, :] - means[None]
        return np.einsum("nkd,de,nke->nk", diff, prec, diff).min(1) / d

    one = Mahalanobis(layers="1").fit(net, (xt, yt))
    assert np.allclose(one.score(torch.from_numpy(probe)).numpy(), closed_form(x, probe), rtol=1e-4)
    two = Mahalanobis(layers=("1", "2")).fit(net, (xt, yt))
    hidden = lambda v: v @ w.T + b  # noqa: E731  (inputs of layer "2")
    want = closed_form(x, probe) + closed_form(hidden(x), hidden(probe))
    assert np.allclose(two.score(torch.from_numpy(probe)).numpy(), want, rtol=1e-4)
    assert sum(t.numel() for t in two.stored_tensors()) == 2 * (k * d + d * d)


def test_class_means_and_tied_cov_matches_numpy():
    rng = np.random.default_rng(1)
    f, y = rng.normal(size=(40, 3)), np.arange(40) % 4
    means, cov = class_means_and_tied_cov(torch.from_numpy(f), torch.from_numpy(y))
    centred = f - np.stack([f[y == c].mean(0) for c in range(4)])[y]
    assert np.allclose(cov.numpy(), centred.T @ centred / 40)
    with pytest.raises(ValueError, match="every class in"):
        class_means_and_tied_cov(torch.from_numpy(f), torch.from_numpy(2 * y))


def test_score_definitions():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.4, 0.3]])
    net = nn.Identity()
    p = logits.softmax(1)
    assert torch.allclose(MSP().fit(net).score(logits), -p.max(1).values)
    assert torch.allclose(MaxLogit().fit(net).score(logits), -logits.max(1).values)
    assert torch.allclose(Energy().fit(net).score(logits), -torch.logsumexp(logits, 1))
    assert torch.allclose(VRMDetector().fit(net).score(logits), p[:, -1])
    max_in = VRMDetector(score_mode="max_in").fit(net).score(logits)
    assert torch.allclose(max_in, 1 - p[:, :-1].max(1).values)


def test_odin_without_step_at_t1_is_msp(trained):
    _, test, plain, _ = trained
    odin = ODIN(temperature=1.0, epsilon=0.0).fit(plain)
    assert torch.allclose(odin.score(test.x), MSP().fit(plain).score(test.x), atol=1e-6)


def test_overhead_counts_are_exact(trained):
    train, test, plain, vrm = trained
    over = {
        "vrm": measure_overhead(VRMDetector().fit(vrm), test.x, reference=plain, n_timed=50),
        "odin": measure_overhead(ODIN().fit(plain), test.x, reference=plain, n_timed=50),
        "maha": measure_overhead(Mahalanobis().fit(plain, train), test.x, n_timed=50),
        "msp": measure_overhead(MSP().fit(plain), test.x, n_timed=50),
    }
    assert over["vrm"].extra_params == 32 + 1 == count_parameters(vrm) - count_parameters(plain)
    assert (over["vrm"].forward_passes, over["vrm"].backward_passes) == (1, 0)
    assert (over["odin"].forward_passes, over["odin"].backward_passes) == (2, 1)
    assert over["maha"].stored_floats == 5 * 32 + 32 * 32
    assert over["maha"].stored_bytes == 4 * over["maha"].stored_floats
    assert over["msp"].stored_bytes == 0 and over["msp"].seconds_per_1000 > 0


def test_intra_class_mixup_never_mixes_classes():
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(64) % 4
    x = (10.0 * y).view(-1, 1, 1).expand(64, 2, 3) + torch.rand(64, 2, 3, generator=gen)
    xm, ym = intra_class_mixup(x, y, 0.5, gen)
    assert torch.equal(torch.bincount(ym), torch.bincount(y))
    assert bool(((xm - 10.0 * ym.view(-1, 1, 1)).abs() <= 1.0).all())


@pytest.mark.parametrize("aux_target", ["hard", "soft"])
def test_noise_mixup_targets(aux_target):
    gen = torch.Generator().manual_seed(0)
    cfg = VRMSettings(aux_target=aux_target, clip=(0.0, 1.0))
    x, y = torch.rand(100, 5), torch.arange(100) % 3
    xa, target = noise_mixup(x, y, 3, cfg, gen)
    assert xa.shape == x.shape and float(xa.min()) >= 0 and float(xa.max()) <= 1
    assert target.shape == (100, 4) and torch.allclose(target.sum(1), torch.ones(100))
    if aux_target == "hard":
        assert bool((target[:, 3] == 1).all())
    else:
        lam = target[torch.arange(100), y]
        assert torch.allclose(lam + target[:, 3], torch.ones(100)) and lam.std() > 0.1


def test_bad_use_raises_clear_errors():
    with pytest.raises(NotFittedError, match="not fitted"):
        MSP().score(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="needs in-distribution data"):
        Mahalanobis().fit(nn.Linear(3, 2))
    with pytest.raises(ValueError, match="non-empty"):
        MSP().fit(nn.Linear(3, 2)).score(torch.zeros(0, 3))
    with pytest.raises(ValueError, match="aux_target must be 'hard' or 'soft', got 'mixed'"):
        VRMSettings(aux_target="mixed")
    with pytest.raises(ValueError, match="noise_fraction must lie in"):
        VRMSettings(noise_fraction=1.5)
    with pytest.raises(ValueError, match="score_mode"):
        VRMDetector(score_mode="entropy")
    with pytest.raises(ValueError, match="vrm training needs 3 outputs, got 2"):
        train_vrm(nn.Linear(4, 2), (torch.rand(8, 4), torch.arange(8) % 2), vrm_config(epochs=1))
    lenet = create_model("lenet", input_shape=(1, 8, 8), num_classes=2)
    x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match="one feature row per sample"):
        Mahalanobis(layers="conv2").fit(lenet, (x, y))
