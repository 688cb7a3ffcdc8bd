"""Conv1d in the utilized-rank report and decompose, and the skipped-layer census."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netprism.compression.factorize import Factorized, weight_matrix
from netprism.compression.utilized_rank import (
    decompose,
    layer_statistics,
    project,
    skipped_layers,
    utilized_rank,
)
from netprism.core.subspace import energy_rank


def _patches_by_hand(x, k, stride, padding, dilation):
    """(B*L_out, C*k) rows of a Conv1d input (B, C, L): pad, strided windows, channel-major."""
    xp = F.pad(x, (padding, padding))
    span = dilation * (k - 1) + 1
    win = xp.unfold(2, span, stride)[..., ::dilation]  # (B, C, L_out, k)
    return win.permute(0, 2, 1, 3).reshape(-1, x.shape[1] * k)


def _planted(n=40, c_in=4, length=20, mix=2, seed=0):
    """Inputs (n, c_in, length) whose channels are ``mix`` mixtures of free signals: every
    kernel-3 patch lies in span{A[:, j] (x) v : v in R^3}, dimension ``3 * mix``."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(c_in, mix, generator=g, dtype=torch.float64)
    s = torch.randn(n, mix, length, generator=g, dtype=torch.float64)
    return torch.einsum("cj,njt->nct", a, s)


@pytest.mark.parametrize("stride,padding,dilation", [(1, 0, 1), (2, 1, 1), (1, 2, 2)])
def test_conv1d_statistics_equal_unfold_and_eigendecomposition_by_hand(stride, padding, dilation):
    torch.manual_seed(0)
    conv = nn.Conv1d(3, 5, 3, stride=stride, padding=padding, dilation=dilation).double()
    x = torch.randn(7, 3, 16, dtype=torch.float64)
    st = layer_statistics(conv, x)[""]
    rows = _patches_by_hand(x, 3, stride, padding, dilation)  # (B*L_out, 9)
    c_x = rows.T @ rows / len(rows)
    assert st.n == len(rows) == 7 * conv(x).shape[2]
    assert torch.allclose(st.second_moment, c_x, atol=1e-12)
    assert torch.equal(st.weight, conv.weight.detach().reshape(5, 9))
    # k_S and k_T from the eigenvalues of C_x and W C_x W^T, done by hand.
    w = conv.weight.detach().reshape(5, 9)
    for tau in (0.5, 0.9, 0.99):
        k_s = energy_rank(torch.linalg.eigvalsh(c_x).flip(0).clamp_min(0), tau)
        k_t = energy_rank(torch.linalg.eigvalsh(w @ c_x @ w.T).flip(0).clamp_min(0), tau)
        line = utilized_rank(conv, x, threshold=tau).layers[0]
        assert (line.kind, line.d_in, line.d_out) == ("Conv1d", 9, 5)
        assert (line.k_s, line.k_t, line.rank) == (k_s, k_t, min(k_s, k_t))


def test_conv1d_planted_patch_subspace_gives_the_planted_input_rank():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv1d(4, 16, 3), nn.ReLU(), nn.Conv1d(16, 8, 1)).double()
    report = utilized_rank(net, _planted(mix=2), threshold=1.0)
    first = report.layers[0]
    assert (first.name, first.d_in, first.d_out) == ("0", 12, 16)
    assert first.k_s == 6 and first.rank == 6 and first.utilization == 6 / 12
    assert first.weight_rank == 12  # W is full rank; the data are not
    assert utilized_rank(net, _planted(mix=4), threshold=1.0).layers[0].k_s == 12
    assert report.skipped == {}


def test_conv1d_projection_and_decompose_preserve_calibration_outputs():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv1d(4, 16, 3, stride=2, padding=1), nn.Tanh()).double()
    x = _planted(mix=2)
    with torch.no_grad():
        ref = net(x)
        projected = project(net, x, threshold=1.0)
        assert torch.allclose(projected(x), ref, atol=1e-9)
        assert not torch.allclose(projected[0].weight, net[0].weight)
        small = decompose(net, x, threshold=1.0)
        thin = small[0]
        assert isinstance(thin, Factorized) and thin.rank == 6
        assert isinstance(thin.down, nn.Conv1d) and isinstance(thin.up, nn.Conv1d)
        assert (thin.down.stride, thin.down.padding, thin.up.kernel_size) == ((2,), (1,), (1,))
        assert torch.allclose(small(x), ref, atol=1e-9)
        # The factorized conv is the dense conv with weight up @ down.
        dense = nn.Conv1d(4, 16, 3, stride=2, padding=1).double()
        dense.weight.data = weight_matrix(thin).reshape(16, 4, 3)
        dense.bias.data = net[0].bias.data
        h = torch.randn(3, 4, 11, dtype=torch.float64)
        assert torch.allclose(thin(h), dense(h), atol=1e-12)


class _Mixed(nn.Module):
    """Conv1d and Linear (analysed) next to layers the report cannot analyse."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(11, 4)
        self.conv = nn.Conv1d(4, 8, 3, padding=1)
        self.norm = nn.BatchNorm1d(8)
        self.depthwise = nn.Conv1d(8, 8, 3, padding=1, groups=8)
        self.up = nn.ConvTranspose1d(8, 4, 2, stride=2)
        self.attn = nn.MultiheadAttention(4, 2, batch_first=True)
        self.head = nn.Linear(4, 3)

    def forward(self, tokens):
        h = self.emb(tokens).transpose(1, 2)  # (B, 4, T)
        h = self.up(self.depthwise(torch.relu(self.norm(self.conv(h))))).transpose(1, 2)
        h, _ = self.attn(h, h, h)
        return self.head(h)


def test_unsupported_layers_are_listed_with_reasons_not_dropped():
    torch.manual_seed(3)
    net = _Mixed().eval()
    tokens = torch.randint(0, 11, (6, 10))
    report = utilized_rank(net, tokens, threshold=0.99)
    assert [la.name for la in report.layers] == ["conv", "head"]
    assert [la.kind for la in report.layers] == ["Conv1d", "Linear"]
    expected = {
        "emb": "embedding lookup",
        "norm": "normalization",
        "depthwise": "depthwise conv (groups=8)",
        "up": "transposed conv",
        "attn": "fused attention",
        "attn.out_proj": "out_proj of nn.MultiheadAttention",
    }
    assert list(report.skipped) == list(expected)  # module order
    for name, start in expected.items():
        assert report.skipped[name].startswith(start), (name, report.skipped[name])
    assert skipped_layers(net) == report.skipped
    assert report.to_dict()["skipped"] == dict(report.skipped)
    text = str(report)
    assert "skipped 6 layer(s):" in text
    for name, why in report.skipped.items():
        assert f"  {name}: {why}" in text
    assert text.splitlines()[2].split()[:2] == ["conv", "Conv1d"]


def test_decompose_factorizes_conv1d_and_leaves_skipped_layers_alone():
    torch.manual_seed(4)
    net = _Mixed().eval()
    small = decompose(net, torch.randint(0, 11, (6, 10)), threshold=0.5, rank={"conv": 2})
    assert isinstance(small.conv, Factorized) and small.conv.rank == 2
    for name in ("emb", "norm", "depthwise", "up", "attn"):
        assert type(small.get_submodule(name)) is type(net.get_submodule(name))
        before, after = net.get_submodule(name).state_dict(), small.get_submodule(name).state_dict()
        assert before.keys() == after.keys()
        assert all(torch.equal(before[k], after[k]) for k in before)


def test_named_unsupported_layers_raise_and_explicit_types_list_only_their_selection():
    net = _Mixed().eval()
    tokens = torch.randint(0, 11, (6, 10))
    with pytest.raises(ValueError, match="cannot factorize 'emb' of type Embedding: embedding"):
        utilized_rank(net, tokens, layers="emb")
    with pytest.raises(ValueError, match="cannot factorize grouped conv 'depthwise'"):
        utilized_rank(net, tokens, layers="depthwise")
    with pytest.raises(ValueError, match="cannot analyse 'attn.out_proj': out_proj of"):
        utilized_rank(net, tokens, layers="attn.out_proj")
    assert skipped_layers(net, nn.Conv1d) == {"depthwise": skipped_layers(net)["depthwise"]}
    assert skipped_layers(net, "conv") == {}
    with pytest.raises(ValueError, match="no factorizable layers .*'up': transposed conv"):
        utilized_rank(net, tokens, layers=nn.ConvTranspose1d)


def test_grouped_conv1d_is_projected_group_by_group():
    torch.manual_seed(5)
    net = nn.Sequential(nn.Conv1d(4, 6, 3, padding=1), nn.Tanh(), nn.Conv1d(6, 6, 3, groups=3))
    net = net.double()
    x = _planted(mix=2)
    projected = project(net, x, threshold=1.0)
    with torch.no_grad():
        assert torch.allclose(projected(x), net(x), atol=1e-9)
    assert not torch.equal(projected[0].weight, net[0].weight)


def test_linear_and_conv2d_lines_are_unchanged_by_the_conv1d_default():
    torch.manual_seed(6)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 5)
    )
    x = torch.randn(10, 3, 8, 8)
    new, old = utilized_rank(net, x), utilized_rank(net, x, layers=(nn.Linear, nn.Conv2d))
    assert new.layers == old.layers and new.skipped == old.skipped == {}
