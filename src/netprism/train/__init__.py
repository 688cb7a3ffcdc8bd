"""One fit/evaluate loop with per-epoch callbacks, checkpoints, resume and device selection.

Under ``torchrun`` :func:`fit` trains with DistributedDataParallel (see
:mod:`netprism.train.distributed`).
"""

from netprism.train.callbacks import BatchOutput, Callback, TrainContext
from netprism.train.checkpoint import CheckpointError, latest_checkpoint, save_checkpoint
from netprism.train.config import TrainConfig
from netprism.train.device import resolve_device
from netprism.train.distributed import init_from_env, is_main_process
from netprism.train.loop import FitResult, evaluate, fit, make_optimizer

__all__ = [
    "BatchOutput",
    "Callback",
    "CheckpointError",
    "FitResult",
    "TrainConfig",
    "TrainContext",
    "evaluate",
    "fit",
    "init_from_env",
    "is_main_process",
    "latest_checkpoint",
    "make_optimizer",
    "resolve_device",
    "save_checkpoint",
]
