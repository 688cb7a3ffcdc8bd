"""One fit/evaluate loop with per-epoch callbacks, checkpoints, resume and device selection."""

from netprism.train.callbacks import BatchOutput, Callback, TrainContext
from netprism.train.checkpoint import latest_checkpoint, save_checkpoint
from netprism.train.config import TrainConfig
from netprism.train.device import resolve_device
from netprism.train.loop import FitResult, evaluate, fit, make_optimizer

__all__ = [
    "BatchOutput",
    "Callback",
    "FitResult",
    "TrainConfig",
    "TrainContext",
    "evaluate",
    "fit",
    "latest_checkpoint",
    "make_optimizer",
    "resolve_device",
    "save_checkpoint",
]
