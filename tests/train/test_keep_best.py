import pytest
import torch
from torch import nn

from netprism.train import Callback, TrainConfig, evaluate, fit
from netprism.train.callbacks import KeepBest


def _config(**kw):
    base = dict(epochs=4, batch_size=16, lr=0.5, seed=0, progress=False, device="cpu")
    return TrainConfig(**{**base, **kw})


class _Script(Callback):
    """Writes a scripted ``score`` per epoch and snapshots the weights each epoch ends with."""

    def __init__(self, scores):
        self.scores, self.weights = scores, []

    def on_epoch_end(self, ctx, metrics):
        metrics["score"] = self.scores[ctx.epoch]
        self.weights.append({k: v.clone() for k, v in ctx.model.state_dict().items()})


def _fit_scripted(scores, **keep):
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    x, y = torch.randn(48, 3), torch.randint(0, 2, (48,))
    script, best = _Script(scores), KeepBest("score", **keep)
    fit(model, (x, y), _config(epochs=len(scores)), callbacks=[script, best])
    return model, script, best


def _same(model, weights):
    return all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize(
    ("scores", "mode", "epoch"),
    [
        ([0.1, 0.7, 0.3, 0.5], "max", 1),
        ([0.4, 0.2, 0.2, 0.9], "min", 1),  # a tie keeps the earlier epoch
        ([float("nan"), 0.3, float("nan"), 0.1], "max", 1),  # NaN never improves
    ],
)
def test_model_ends_with_the_best_epochs_weights(scores, mode, epoch):
    model, script, best = _fit_scripted(scores, mode=mode)
    assert best.best_epoch == epoch and best.best_value == scores[epoch]
    assert _same(model, script.weights[epoch])
    assert not _same(model, script.weights[-1])  # the last epoch's weights differ


def test_validation_accuracy_of_the_returned_model_is_the_best_in_history():
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(200, 5, generator=gen), torch.randint(0, 3, (200,), generator=gen)
    val = (torch.randn(60, 5, generator=gen), torch.randint(0, 3, (60,), generator=gen))
    torch.manual_seed(0)
    model, best = nn.Linear(5, 3), KeepBest("val_accuracy")
    out = fit(model, (x, y), _config(epochs=5, lr=2.0), val=val, callbacks=[best])
    history = [h["val_accuracy"] for h in out.history]
    assert history[-1] < max(history)  # the last epoch is not the best one
    assert best.best_value == max(history) and best.best_epoch == history.index(max(history))
    assert evaluate(model, val, device="cpu")["accuracy"] == pytest.approx(max(history))


def test_state_round_trip_restores_the_best_weights():
    model, script, best = _fit_scripted([0.1, 0.7, 0.3, 0.5])
    copy = KeepBest("score")
    copy.load_state_dict(best.state_dict())
    assert (copy.best_epoch, copy.best_value) == (1, 0.7)
    fresh = nn.Linear(3, 2)
    copy.on_fit_end(type("Ctx", (), {"model": fresh})())
    assert _same(fresh, script.weights[1])


def test_missing_metric_and_bad_mode_are_named():
    with pytest.raises(ValueError, match="mode must be 'max' or 'min', got 'up'"):
        KeepBest(mode="up")
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    with pytest.raises(ValueError, match="KeepBest watches 'val_accuracy'.*pass val= to fit"):
        fit(nn.Linear(3, 2), (x, y), _config(epochs=1), callbacks=[KeepBest()])
