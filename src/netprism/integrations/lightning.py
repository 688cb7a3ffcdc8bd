"""Memorization scores from a PyTorch Lightning run: a ``Callback`` over the monitor.

Garg, Ravikumar, Roy, "Memorization Through the Lens of Curvature of Loss Function Around
Samples", ICML 2024 (arXiv 2307.05831), and the training-dynamics peers, for a
``LightningModule`` you already train.  Needs ``pytorch-lightning`` 2.x
(``pip install "netprism[lightning]"``).

How the callback sees your run:

- **epoch end** (``on_train_epoch_end``): :meth:`MemorizationMonitor.epoch_end
  <netprism.memorization.MemorizationMonitor.epoch_end>` scores ``score_data`` -- your
  training samples without random augmentation, in dataset-index order -- with
  ``pl_module(x)``, so your module's ``forward`` must return logits (or a tuple, a dict with
  ``"logits"`` or an object with ``.logits``; else pass ``output_fn``).  The module's
  train/eval flags, BatchNorm statistics, gradients and random states are left as they were,
  so Lightning's loop is not disturbed.  Under DDP every rank scores its shard and every rank
  ends up with the same, gathered scores.
- **batch end** (``on_train_batch_end``, optional): when your training batches carry each
  sample's dataset index -- your ``Dataset`` returns ``(x, y, index)`` or a dict with an
  ``"index"`` (or ``"idx"``) entry -- the batch's training loss is recorded per sample
  (``"csl"``, the cumulative sample loss, and its per-presentation mean ``"train_loss"``, at no
  extra forward).  The logits are taken
  from ``training_step``'s return value when it is a dict with ``"logits"`` (``return {"loss":
  loss, "logits": logits}``), else from the module's single ``forward`` call of the step.
  Batches without an index are simply not observed.

Usage (the tests in ``tests/integrations/test_lightning.py`` run it on digits)::

    import pytorch_lightning as pl
    from netprism.integrations.lightning import MemorizationCallback
    from netprism.memorization import find_label_issues

    cb = MemorizationCallback(train_ds_without_augmentation)  # items (x, y[, index])
    pl.Trainer(max_epochs=30, callbacks=[cb]).fit(module, train_loader)
    issues = find_label_issues(cb.scores(), fraction=0.05)  # most suspicious first
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from netprism.integrations._monitor import resolve_monitor
from netprism.memorization import MemorizationMonitor, MemorizationScores
from netprism.train import BatchKeys
from netprism.train.data import parse_batch

_IMPORT_ERROR: ImportError | None = None
try:
    from pytorch_lightning import Callback
except ImportError as err:  # the module stays importable; the callback says what is missing
    _IMPORT_ERROR = err
    Callback = object  # type: ignore[assignment,misc]


class MemorizationCallback(Callback):
    """PyTorch Lightning callback: per-sample memorization scores of the run it joins.

    Parameters
    ----------
    score_data : DataLoader, Dataset, TensorDataset or (x, y) tensors, optional
        The training samples without random augmentation, index for index with the indices
        the training batches carry (``N`` samples).  Required unless ``monitor`` is given.
    monitor : MemorizationMonitor, optional
        A monitor you built yourself (then ``monitor_kwargs`` must be empty).
    batch_keys : BatchKeys, optional
        Entry names of dict items (input, label, index); used both for ``score_data`` and to
        read the index and labels out of training batches.
    observe : bool
        Record the training loss of batches that carry an index (default ``True``).
    **monitor_kwargs
        Passed to :class:`~netprism.memorization.MemorizationMonitor` (``methods``,
        ``every``, ``n_probes``, ``h``, ``backend``, ``seed``, ``batch_size``, ``device``,
        ``output_fn``).

    Attributes
    ----------
    monitor : MemorizationMonitor
    history_ : list of dict
        What ``epoch_end`` returned each epoch (``epoch``, ``curvature_mean``).
    """

    def __init__(
        self,
        score_data: Any = None,
        *,
        monitor: MemorizationMonitor | None = None,
        batch_keys: BatchKeys | None = None,
        observe: bool = True,
        **monitor_kwargs: Any,
    ) -> None:
        if _IMPORT_ERROR is not None:
            raise ImportError(
                "MemorizationCallback needs PyTorch Lightning 2.x: "
                'pip install "netprism[lightning]"'
            ) from _IMPORT_ERROR
        super().__init__()
        if monitor is None:  # the keys also read training batches, with any monitor
            monitor_kwargs["batch_keys"] = batch_keys
        self.monitor = resolve_monitor(score_data, monitor, **monitor_kwargs)
        self.batch_keys = batch_keys or BatchKeys()
        self.observe = observe
        self.history_: list[dict[str, float]] = []
        self._forward_outputs: list[Any] = []
        self._hook: Any = None

    # -- per batch: the training loss at the batch's dataset indices ------------------------

    def on_train_start(self, trainer: Any, pl_module: nn.Module) -> None:
        if self.observe and self._hook is None:
            self._hook = pl_module.register_forward_hook(self._record_forward)

    def _record_forward(self, module: nn.Module, args: Any, output: Any) -> None:
        # Under DDP, Lightning also runs training_step itself through the module's __call__
        # (``forward`` patched): that output (a loss or dict) is filtered out at batch end.
        if module.training and torch.is_grad_enabled():
            self._forward_outputs.append(output)

    def on_train_batch_start(
        self, trainer: Any, pl_module: nn.Module, batch: Any, batch_idx: int
    ) -> None:
        self._forward_outputs.clear()

    def on_train_batch_end(
        self, trainer: Any, pl_module: nn.Module, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        captured, self._forward_outputs = self._forward_outputs, []
        if not self.observe:
            return
        try:
            parsed = parse_batch(batch, self.batch_keys)
        except (TypeError, KeyError):
            return  # a batch layout we cannot read: epoch-end scores still come
        if parsed.index is None:
            return
        if isinstance(outputs, Mapping) and "logits" in outputs:
            logits = outputs["logits"]
        else:
            found = [out for out in map(self._as_logits, captured) if out is not None]
            found = [out for out in found if out.ndim == 2 and len(out) == len(parsed.index)]
            if len(found) != 1:
                return  # no forward, or several (augmented views?): which one is ambiguous
            logits = found[0]
        self.monitor.observe(parsed.index, logits, parsed.y)

    def _as_logits(self, output: Any) -> torch.Tensor | None:
        try:
            logits = self.monitor.output_fn(output)
        except (KeyError, AttributeError, IndexError, TypeError):
            return None
        return logits if isinstance(logits, torch.Tensor) else None

    # -- per epoch: score the un-augmented data ---------------------------------------------

    def on_train_epoch_end(self, trainer: Any, pl_module: nn.Module) -> None:
        self.history_.append(self.monitor.epoch_end(pl_module, trainer.current_epoch))

    def on_train_end(self, trainer: Any, pl_module: nn.Module) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def scores(self) -> MemorizationScores:
        """Per-sample scores ``(N,)`` of each method, in ``score_data``'s index order (see
        :meth:`MemorizationMonitor.scores <netprism.memorization.MemorizationMonitor.scores>`).
        """
        return self.monitor.scores()

    def state_dict(self) -> dict[str, Any]:
        """Saved in Lightning checkpoints, so a resumed ``fit`` continues the averages."""
        return {"monitor": self.monitor.state_dict(), "history": list(self.history_)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.monitor.load_state_dict(state_dict["monitor"])
        self.history_ = list(state_dict.get("history", []))
