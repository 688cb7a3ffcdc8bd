"""Continual learning: task streams, one runner, GPM, SPACE and the usual baselines.

Papers: Saha, Garg & Roy, "Gradient Projection Memory for Continual Learning" (GPM, ICLR 2021,
arXiv 2103.09762); Saha, Garg, Ankit & Roy, "SPACE: Structured Compression and Sharing of
Representational Space for Continual Learning" (IEEE Access 2021, arXiv 2001.08650);
Kirkpatrick et al., "Overcoming catastrophic forgetting in neural networks"
(EWC, PNAS 2017, arXiv 1612.00796); Chaudhry et al., "Efficient Lifelong Learning with A-GEM"
(ICLR 2019, arXiv 1812.00420); Lopez-Paz & Ranzato, "Gradient Episodic Memory for Continual
Learning" (GEM, NeurIPS 2017, arXiv 1706.08840) for the ACC / BWT metrics.

Modules: ``streams`` (permuted / split / rotated task streams), ``runner`` (``ContinualMethod``,
``run_stream``, ``StreamResult``), ``baselines`` (fine-tuning, EWC, A-GEM, joint training),
``gpm``, ``space`` and ``thresholds`` (per-layer, per-task energy thresholds).
"""
