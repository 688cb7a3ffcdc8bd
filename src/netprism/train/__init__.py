"""The training engine: one streaming fit/evaluate loop with hooks, per-sample identity,
checkpoints, resume and device selection.

Under ``torchrun`` :func:`fit` trains with DistributedDataParallel (see
:mod:`netprism.train.distributed`).
"""

from netprism.train.callbacks import BatchOutput, Callback, TrainContext
from netprism.train.checkpoint import CheckpointError, latest_checkpoint, save_checkpoint
from netprism.train.config import TrainConfig
from netprism.train.data import Batch, BatchKeys, epoch_order, make_source
from netprism.train.device import resolve_device
from netprism.train.distributed import init_from_env, is_main_process
from netprism.train.loop import FitResult, evaluate, fit, make_optimizer, make_scheduler
from netprism.train.resume import ResumeMismatchError

__all__ = [
    "Batch",
    "BatchKeys",
    "BatchOutput",
    "Callback",
    "CheckpointError",
    "FitResult",
    "ResumeMismatchError",
    "TrainConfig",
    "TrainContext",
    "epoch_order",
    "evaluate",
    "fit",
    "init_from_env",
    "is_main_process",
    "latest_checkpoint",
    "make_optimizer",
    "make_scheduler",
    "make_source",
    "resolve_device",
    "save_checkpoint",
]
