"""The training configuration: one frozen dataclass, saved beside every checkpoint."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("none", "cosine", "step")
RESUME_MODES = (False, True, "weights-only")
# Fields that do not change what is trained (where, how loudly, where it is saved); every
# other field defines the run and must match a checkpoint's for ``resume=True``.
NOT_RUN_FIELDS = ("device", "checkpoint_dir", "resume", "progress")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`netprism.train.fit`.

    Attributes
    ----------
    epochs, batch_size : int
    lr, momentum, weight_decay : float
    optimizer : {"sgd", "adam", "adamw"}
    scheduler : {"none", "cosine", "step"}
        Per-epoch learning-rate schedule ("step" divides by 10 at 50 % and 75 % of epochs).
    label_smoothing : float
    seed : int
        Seeds initialisation-independent randomness: shuffling (a generator per epoch, so
        resumed runs see the same order) and the global RNG for dropout.
    device : str
        "auto" picks CUDA when present.
    checkpoint_dir : str or None
        Where to write a checkpoint after every epoch (safetensors + JSON).
    resume : {False, True, "weights-only"}
        ``True``: continue from the newest valid checkpoint in ``checkpoint_dir`` if there is
        one (none: start afresh), restoring weights, optimizer, schedule, RNG, callbacks and
        history.  The checkpoint must belong to this run: the same model architecture,
        optimizer and run-defining fields (:meth:`run_fields`: lr, epochs, seed, batch size,
        ...); otherwise :class:`~netprism.train.ResumeMismatchError` names what differs.
        ``"weights-only"``: a deliberate change of run; load only the model weights of the
        newest checkpoint (same architecture required) and train from epoch 0 with a fresh
        optimizer and empty history; the new run's first checkpoint replaces the old ones,
        and a kill after it is continued with ``resume=True``.  Needs ``checkpoint_dir``.
    progress : bool
        Show a tqdm bar over epochs.
    max_grad_norm : float or None
        Clip the global gradient norm when set.
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    optimizer: str = "sgd"
    scheduler: str = "cosine"
    label_smoothing: float = 0.0
    seed: int = 0
    device: str = "auto"
    checkpoint_dir: str | None = None
    resume: bool | str = False
    progress: bool = True
    max_grad_norm: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise ValueError(f"epochs must be an int >= 0, got {self.epochs!r}")
        if not isinstance(self.batch_size, int) or self.batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {self.batch_size!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {self.scheduler!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must lie in [0, 1), got {self.label_smoothing!r}")
        if not (isinstance(self.resume, bool) or self.resume == "weights-only"):
            raise ValueError(f"resume must be one of {RESUME_MODES}, got {self.resume!r}")
        if self.resume and self.checkpoint_dir is None:
            raise ValueError(f"resume={self.resume!r} needs checkpoint_dir to be set")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def run_fields(self) -> dict[str, Any]:
        """The fields that define the run (all but :data:`NOT_RUN_FIELDS`), by name."""
        return {k: v for k, v in self.to_dict().items() if k not in NOT_RUN_FIELDS}

    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.checkpoint_dir is None else Path(self.checkpoint_dir)


# Fields no recipe with its own random stream can honour: a checkpoint does not hold that
# stream, so a resumed run would not be the run it continues.  name -> (the value kept, why).
NO_CHECKPOINTS: dict[str, tuple[Any, str]] = {
    "checkpoint_dir": (None, "its batch stream is not saved in a checkpoint"),
    "resume": (False, "its batch stream is not saved in a checkpoint"),
}


def require_train_config(
    config: Any,
    default: TrainConfig,
    owner: str,
    unsupported: Mapping[str, tuple[Any, str]] = NO_CHECKPOINTS,
) -> TrainConfig:
    """The training recipe a method was given, checked: every method takes it one way.

    Parameters
    ----------
    config : TrainConfig or None
        ``None`` gives ``default``.
    default : TrainConfig
        The method's own recipe.
    owner : str
        The function's name, for the messages.
    unsupported : mapping of field name -> (the only value honoured, why)
        Fields the method cannot honour.

    Returns
    -------
    TrainConfig

    Raises
    ------
    TypeError
        ``config`` is not a :class:`TrainConfig`.
    ValueError
        ``epochs < 1``, or a field of ``unsupported`` set to another value (named).

    Examples
    --------
    >>> require_train_config(None, TrainConfig(epochs=3), "f").epochs
    3
    >>> require_train_config({"epochs": 3}, TrainConfig(), "f")
    Traceback (most recent call last):
    ...
    TypeError: f takes config as a netprism.train.TrainConfig or None, got dict
    """
    if config is None:
        config = default
    if not isinstance(config, TrainConfig):
        raise TypeError(
            f"{owner} takes config as a netprism.train.TrainConfig or None, "
            f"got {type(config).__name__}"
        )
    if config.epochs < 1:
        raise ValueError(f"{owner} needs config.epochs >= 1, got {config.epochs!r}")
    for name, (allowed, why) in unsupported.items():
        value = getattr(config, name)
        if value != allowed:
            raise ValueError(
                f"{owner} cannot honour TrainConfig.{name}={value!r} ({why}); "
                f"leave it at {allowed!r}"
            )
    return config
