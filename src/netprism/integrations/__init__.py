"""Thin adapters from other engines' training loops to netprism's monitors (optional extras).

Each adapter is a callback of its engine that drives
:class:`~netprism.memorization.MemorizationMonitor`; nothing in the library imports this
package, and importing it imports neither engine.

- :mod:`netprism.integrations.lightning` -- ``MemorizationCallback`` for PyTorch Lightning
  (``pip install "netprism[lightning]"``);
- :mod:`netprism.integrations.transformers` -- ``MemorizationTrainerCallback`` for the
  Hugging Face ``Trainer`` (``pip install "netprism[hf]"``).

>>> import netprism.integrations  # cheap: the engines load with their submodule
"""
