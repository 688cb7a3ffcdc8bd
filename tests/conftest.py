"""Shared test settings: one torch thread (CI has 2 cores, and the tiny models here run
fastest single-threaded; pytest fixtures of any scope then see the same setting), quiet bars."""

import os

import torch

os.environ.setdefault("TQDM_DISABLE", "1")
torch.set_num_threads(1)
