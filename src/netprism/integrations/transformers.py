"""Memorization scores from a Hugging Face ``Trainer`` run: a ``TrainerCallback`` over the monitor.

Garg, Ravikumar, Roy, "Memorization Through the Lens of Curvature of Loss Function Around
Samples", ICML 2024 (arXiv 2307.05831), and the training-dynamics peers, for a model you
train with ``transformers.Trainer``.  Needs ``transformers`` and ``accelerate``
(``pip install "netprism[hf]"``).  This module is ``netprism.integrations.transformers``;
it imports the ``transformers`` package absolutely, so the names never clash.

How the callback sees your run:

- **epoch end** (``on_epoch_end``): :meth:`MemorizationMonitor.epoch_end
  <netprism.memorization.MemorizationMonitor.epoch_end>` scores ``score_data`` -- your
  training samples without random augmentation, as ``(x, y)`` tensors or a dataset, in
  dataset-index order.  A Hugging Face model takes keyword inputs and returns a
  ``ModelOutput``; the monitor calls ``model(x)``, which passes ``x`` as the first argument
  of ``forward`` (``pixel_values``, ``input_ids``, ... for most models) and reads
  ``.logits``.  When ``x`` must go under another name, pass ``input_name="..."``: the model
  is then scored through a small adapter calling ``model(**{input_name: x})``.  Modes,
  BatchNorm statistics, gradients and random states are left as they were.
- **training batches** (optional): when the dataset's items are dicts carrying their row
  index under ``"index"`` (default ``index_key``), the default collator stacks it with the
  rest; the callback takes it out of the model's inputs (a forward pre-hook, so
  ``forward`` never sees it) and records that batch's training loss per sample
  (``"train_loss"``, from the training forward's logits and ``labels``, no extra forward).
  Set ``TrainingArguments(remove_unused_columns=False)``: by default the ``Trainer`` drops
  every column ``forward`` does not name, the index included.  Without an index (or when
  ``labels`` do not reach ``forward``, as with a ``label_smoother`` or ``compute_loss_func``)
  only the epoch-end scores come.
- **checkpoints** (``on_save``): the monitor's running state is written beside each
  checkpoint the ``Trainer`` saves (``checkpoint-<step>/netprism_memorization.safetensors``,
  by the main process), and ``trainer.train(resume_from_checkpoint=...)`` continues it: at
  ``on_train_begin`` the callback loads the state saved with the step the ``Trainer`` resumed
  at, from ``args.output_dir``.  A resumed run gives the scores of the uninterrupted one.
- **torchrun**: under ``torchrun --nproc_per_node K`` every rank scores its shard of
  ``score_data`` at epoch end and ``scores()`` gathers all ``N`` in index order on every rank;
  the training losses observed on each rank's part of the batches are merged the same way.

Usage (the tests in ``tests/integrations/test_hf.py`` run it on digits)::

    from transformers import Trainer, TrainingArguments
    from netprism.integrations.transformers import MemorizationTrainerCallback
    from netprism.memorization import find_label_issues

    cb = MemorizationTrainerCallback((x_train, y_train))  # un-augmented, row order
    args = TrainingArguments("out", num_train_epochs=30, remove_unused_columns=False)
    # rows: dicts {"pixel_values": x, "labels": y, "index": i}
    Trainer(model, args, train_dataset=rows, callbacks=[cb]).train()
    issues = find_label_issues(cb.scores(), fraction=0.05)  # most suspicious first
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netprism.integrations._monitor import resolve_monitor
from netprism.io import atomic_write
from netprism.memorization import MemorizationMonitor, MemorizationScores

_IMPORT_ERROR: ImportError | None = None
try:
    from transformers import TrainerCallback
except ImportError as err:  # the module stays importable; the callback says what is missing
    _IMPORT_ERROR = err
    TrainerCallback = object  # type: ignore[assignment,misc]

#: File written into each ``checkpoint-<step>`` folder with the monitor's state.
MONITOR_STATE_FILE = "netprism_memorization.safetensors"


class KeywordInput(nn.Module):
    """``x -> model(**{input_name: x})``: a keyword-input model as the monitor calls it.

    Examples
    --------
    >>> class KwModel(nn.Module):
    ...     def forward(self, attention_mask=None, input_ids=None):
    ...         return input_ids.float()
    >>> KeywordInput(KwModel(), "input_ids")(torch.ones(2, 3, dtype=torch.long)).shape
    torch.Size([2, 3])
    """

    def __init__(self, model: nn.Module, input_name: str) -> None:
        super().__init__()
        self.model, self.input_name = model, input_name

    def forward(self, x: Any) -> Any:
        return self.model(**{self.input_name: x})


class MemorizationTrainerCallback(TrainerCallback):
    """Hugging Face ``TrainerCallback``: per-sample memorization scores of the run it joins.

    Parameters
    ----------
    score_data : DataLoader, Dataset, TensorDataset or (x, y) tensors, optional
        The training samples without random augmentation, row for row with the training
        dataset (``N`` samples).  Required unless ``monitor`` is given.
    monitor : MemorizationMonitor, optional
        A monitor you built yourself (then ``monitor_kwargs`` must be empty).
    input_name : str, optional
        Score with ``model(**{input_name: x})`` instead of ``model(x)``.
    index_key : str
        The batch entry holding each row's dataset index (taken out of the model's inputs).
    label_key : str
        The batch entry holding the labels (the ``Trainer``'s ``"labels"``).
    observe : bool
        Record the training loss of batches that carry an index (default ``True``).
    **monitor_kwargs
        Passed to :class:`~netprism.memorization.MemorizationMonitor` (``methods``,
        ``every``, ``n_probes``, ``h``, ``backend``, ``seed``, ``batch_size``, ``device``,
        ``output_fn``, ``batch_keys``).

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
        input_name: str | None = None,
        index_key: str = "index",
        label_key: str = "labels",
        observe: bool = True,
        **monitor_kwargs: Any,
    ) -> None:
        if _IMPORT_ERROR is not None:
            raise ImportError(
                'MemorizationTrainerCallback needs transformers: pip install "netprism[hf]"'
            ) from _IMPORT_ERROR
        self.monitor = resolve_monitor(score_data, monitor, **monitor_kwargs)
        self.input_name = input_name
        self.index_key, self.label_key = index_key, label_key
        self.observe = observe
        self.history_: list[dict[str, float]] = []
        self._hooked: nn.Module | None = None
        self._handles: list[Any] = []
        self._index: torch.Tensor | None = None

    # -- training batches: take the index out, observe the training loss --------------------

    def on_init_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._attach(kwargs.get("model"))

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._attach(kwargs.get("model"))
        if state.global_step > 0:  # the Trainer resumed from a checkpoint
            self._resume(_checkpoint_dir(args, state))
        if self.observe and getattr(args, "remove_unused_columns", False):
            warnings.warn(
                "TrainingArguments(remove_unused_columns=True) drops the row index from "
                f"training batches ({self.index_key!r} is not an argument of forward): only "
                "epoch-end scores will come; pass remove_unused_columns=False for train_loss",
                stacklevel=2,
            )

    def _attach(self, model: nn.Module | None) -> None:
        """Hooks on the model the ``Trainer`` calls (idempotent); they stay until
        :meth:`detach`, so ``evaluate`` on rows with an index works after training too."""
        if model is None or model is self._hooked:
            return
        self.detach()
        self._handles = [
            model.register_forward_pre_hook(self._take_index, with_kwargs=True),
            model.register_forward_hook(self._observe_forward, with_kwargs=True),
        ]
        self._hooked = model

    def detach(self) -> None:
        """Remove the hooks from the model."""
        for handle in self._handles:
            handle.remove()
        self._handles, self._hooked, self._index = [], None, None

    def _take_index(
        self, module: nn.Module, args: Any, kwargs: dict[str, Any]
    ) -> tuple[Any, dict[str, Any]] | None:
        self._index = None
        if self.index_key not in kwargs:
            return None
        kwargs = dict(kwargs)
        index = kwargs.pop(self.index_key)
        if self.observe and module.training and torch.is_grad_enabled():
            self._index = torch.as_tensor(index)
        return args, kwargs

    def _observe_forward(
        self, module: nn.Module, args: Any, kwargs: dict[str, Any], output: Any
    ) -> None:
        index, self._index = self._index, None
        labels = kwargs.get(self.label_key)
        if index is None or labels is None:
            return
        self.monitor.observe(index, self.monitor.output_fn(output), labels)

    # -- epoch end: score the un-augmented data ---------------------------------------------

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        model = kwargs.get("model")
        if model is None:
            raise RuntimeError("the Trainer passed no model to on_epoch_end")
        # state.epoch is a float that reaches k.0 at the end of the k-th epoch (1-based).
        epoch = len(self.history_) if state.epoch is None else max(round(state.epoch) - 1, 0)
        scored = model if self.input_name is None else KeywordInput(model, self.input_name)
        self.history_.append(self.monitor.epoch_end(scored, epoch))

    # -- checkpoints: the monitor's state beside the Trainer's ---------------------------

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        folder = _checkpoint_dir(args, state)
        if not state.is_world_process_zero or not folder.is_dir():
            return
        from safetensors.torch import save_file

        tensors = {k: v.contiguous() for k, v in self.monitor.state_dict().items()}
        atomic_write(folder / MONITOR_STATE_FILE, lambda tmp: save_file(tensors, str(tmp)))

    def _resume(self, folder: Path) -> None:
        path = folder / MONITOR_STATE_FILE
        if not path.is_file():
            warnings.warn(
                f"resumed at step {folder.name} but found no monitor state at {path}: the "
                "scores average only the epochs from here on",
                stacklevel=3,
            )
            return
        from safetensors.torch import load_file

        self.monitor.load_state_dict(load_file(str(path)))
        self.history_ = [dict(m) for m in self.monitor.history_]

    def scores(self) -> MemorizationScores:
        """Per-sample scores ``(N,)`` of each method, in ``score_data``'s index order (see
        :meth:`MemorizationMonitor.scores <netprism.memorization.MemorizationMonitor.scores>`).
        """
        return self.monitor.scores()


def _checkpoint_dir(args: Any, state: Any) -> Path:
    """The folder the ``Trainer`` saves the checkpoint of ``state.global_step`` in."""
    return Path(args.output_dir) / f"checkpoint-{state.global_step}"
