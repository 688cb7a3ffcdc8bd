"""Shared test settings: one torch thread (CI has 2 cores, and the tiny models here run
fastest single-threaded; pytest fixtures of any scope then see the same setting), quiet bars.

Hypothesis draws fresh examples on every local run, so the fuzzers keep looking for new
failures; under CI (``CI`` or ``NETPRISM_FIXED_FUZZ`` set, as ``.ci/run`` does) the examples
are derandomized so that main's verdict does not depend on a draw.
"""

import os

import torch
from hypothesis import settings

os.environ.setdefault("TQDM_DISABLE", "1")
torch.set_num_threads(1)
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI") or os.environ.get("NETPRISM_FIXED_FUZZ"):
    settings.load_profile("ci")
