"""Compression to what the data uses, and to what the hardware rewards.

Modules: ``utilized_rank`` and ``factorize`` (Garg et al. 2024), ``grouped``, ``pca_design``
(Garg, Panda & Roy, IEEE Access 2019), ``hybrid`` (Hybrid-Net mixed-precision binary networks,
Chakraborty et al., Nature Machine Intelligence 2020), ``crossbar`` (mapping weights onto
analog crossbars and pricing their ADCs) and ``dub`` (D.U.B. pruning, Ibrayev et al. 2024).
"""
