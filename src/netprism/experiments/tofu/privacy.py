"""The privacy runs of the ``tofu`` experiment: gradient inversion of real and TOFU-decoded
updates.

:func:`privacy_run` (the ``privacy`` claim) attacks one local SGD step on a true batch at the
initial weights.  :func:`privacy_faithful_runs` (its twin ``privacy_faithful``) attacks updates
made of K local SGD steps, each on a fresh batch of ``attack_batch`` images of the same
client, at the weights of the rounds in ``privacy_rounds``: the paper's obfuscation grows with
the local training behind one encoded update.  The attacker keeps its one-step model in both:
it inverts ``-update / (K lr)`` as the mean gradient of all the images behind the update.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from netprism.data.base import TensorDataset
from netprism.experiments.tofu.config import TOFUExperimentConfig
from netprism.experiments.tofu.records import PrivacyRun
from netprism.federated.attacks import (
    analytic_fc_inversion,
    best_match_mse,
    dlg,
    inverting_gradients,
    per_truth_best,
    reconstruction_quality,
)
from netprism.federated.gradients import cosine, flat_params, params_from_flat, weighted_gradient
from netprism.federated.rounds import local_config, local_update
from netprism.federated.tofu import ProxySet, decode_update, encode_update


def attack_indices(data: TensorDataset, n: int, seed: int) -> torch.Tensor:
    """The first ``n`` of one seeded permutation of ``data`` ``(n,)``: every privacy run of a
    seed draws its true images from it, so the batch of B = 4 is the first batch of the
    K-step runs (and the B = 1 image the first of both)."""
    if n > len(data):
        raise ValueError(f"a privacy run needs {n} images of client 0, which has {len(data)}")
    gen = torch.Generator().manual_seed(seed + 1_000)
    return torch.randperm(len(data), generator=gen)[:n]


def privacy_run(
    config: TOFUExperimentConfig, model: torch.nn.Module, data: TensorDataset, batch: int, seed: int
) -> PrivacyRun:
    """Attack one local SGD step on ``batch`` true samples at the initial weights, real and
    TOFU-decoded, with Inverting Gradients, DLG and the analytic first-layer inversion."""
    idx = attack_indices(data, batch, seed)
    x, y = data.x[idx], data.y[idx]  # (B, *input_shape), (B,)
    w0 = flat_params(model)
    update = -config.lr * weighted_gradient(model, w0, x, y)  # one SGD step on the batch
    proxy, recon, quality = _encode_and_invert(
        config,
        model,
        w0,
        update,
        x,
        num_classes=data.num_classes,
        step=config.lr,
        seed=seed,
        controls=True,
    )
    return PrivacyRun(batch, x, proxy.x, recon, quality)


def privacy_faithful_runs(
    config: TOFUExperimentConfig,
    model: torch.nn.Module,
    data: TensorDataset,
    round_weights: dict[int, torch.Tensor],
    seed: int,
) -> dict[tuple[int, int], PrivacyRun]:
    """Attack K-step local updates for every (round, K) of ``privacy_rounds`` x
    ``privacy_local_steps``.

    Parameters
    ----------
    data : TensorDataset
        Client 0's data; the K-step update of a point uses the first ``attack_batch * K``
        images of :func:`attack_indices`.
    round_weights : dict round -> Tensor (P,)
        The global weights each round started from (FedAvg's kept snapshots).

    Returns
    -------
    dict (round, K) -> PrivacyRun
        Inverting Gradients on the real and the decoded update (``attack_batch * K``
        reconstructions each), the proxies, the encoder's cosine and the cosine of the update
        to the one step the attacker assumes.
    """
    b = config.attack_batch
    idx = attack_indices(data, b * max(config.privacy_local_steps), seed)
    out: dict[tuple[int, int], PrivacyRun] = {}
    for r in config.privacy_rounds:
        weights = round_weights[r]
        for k in config.privacy_local_steps:
            part = data.subset(idx[: b * k])
            update = local_update(
                copy.deepcopy(model),  # local_update overwrites the model's parameters
                weights,
                part,
                local_config(epochs=1, lr=config.lr, batch_size=b),  # K steps of B images
                seed=seed * 10_007 + r * 101 + k,
            )
            one_step = -config.lr * k * weighted_gradient(model, weights, part.x, part.y)
            proxy, recon, quality = _encode_and_invert(
                config,
                model,
                weights,
                update,
                part.x,
                num_classes=data.num_classes,
                step=config.lr * k,
                seed=seed,
            )
            quality.update(
                local_steps=k,
                round=r,
                one_step_cosine=cosine(update, one_step),
                proxy_best_match=reconstruction_quality(proxy.x, part.x),
            )
            out[(r, k)] = PrivacyRun(b, part.x, proxy.x, recon, quality, local_steps=k, round=r)
    return out


def _encode_and_invert(
    config: TOFUExperimentConfig,
    model: torch.nn.Module,
    weights: torch.Tensor,
    update: torch.Tensor,
    x: torch.Tensor,
    *,
    num_classes: int,
    step: float,
    seed: int,
    controls: bool = False,
) -> tuple[ProxySet, dict[str, torch.Tensor], dict[str, Any]]:
    """TOFU-encode ``update`` ``(P,)`` at ``weights``, decode it, and invert the real and the
    decoded update (``-update / step``) into ``len(x)`` images, scored against ``x``
    ``(n, *input_shape)`` (labels of ``num_classes`` classes); ``controls`` adds DLG and the
    analytic first-layer inversion."""
    n, shape, k = len(x), tuple(x.shape[1:]), num_classes
    proxy, cos = encode_update(
        model,
        weights,
        update,
        input_shape=shape,
        num_classes=k,
        n_proxy=config.n_proxy,
        steps=config.encoder_steps,
        lr=config.encoder_lr,
        seed=seed,
    )
    targets = {"real": -update / step, "tofu": -decode_update(model, weights, proxy) / step}
    recon: dict[str, torch.Tensor] = {}
    quality: dict[str, Any] = {"encoder_cosine": cos}
    attack: dict[str, Any] = dict(batch_size=n, input_shape=shape, num_classes=k, seed=seed)
    for name, target in targets.items():
        recon[f"ig_{name}"] = inverting_gradients(
            model,
            weights,
            target,
            steps=config.ig_steps,
            lr=config.ig_lr,
            tv_weight=config.tv_weight,
            **attack,
        )
        quality[f"ig_{name}"] = reconstruction_quality(recon[f"ig_{name}"], x)
        if controls:
            recon[f"dlg_{name}"] = dlg(model, weights, target, steps=config.dlg_steps, **attack)
            quality[f"dlg_{name}"] = reconstruction_quality(recon[f"dlg_{name}"], x)
            _analytic(model, target, x, name, recon, quality)
    quality["ig_tofu_to_proxy"] = float(best_match_mse(recon["ig_tofu"], proxy.x).mean())
    # Do the transmitted proxies themselves look like the private images?
    quality["proxy_to_true"] = per_truth_best(proxy.x.reshape(len(proxy.x), -1), x.reshape(n, -1))
    return proxy, recon, quality


def _analytic(
    model: torch.nn.Module,
    target: torch.Tensor,
    x: torch.Tensor,
    name: str,
    recon: dict[str, torch.Tensor],
    quality: dict[str, Any],
) -> None:
    """The analytic inversion of a fully connected first layer (with bias) of ``target``."""
    first = list(params_from_flat(model, target).items())[:2]  # first layer (weight, bias)
    if len(first) == 2 and first[0][1].dim() == 2 and first[1][1].dim() == 1:
        cands = analytic_fc_inversion(first[0][1], first[1][1])  # (H', D)
        flat_x = x.reshape(len(x), -1)
        quality[f"analytic_{name}"] = per_truth_best(cands, flat_x)
        best = torch.cdist(flat_x, cands.clamp(0, 1)).argmin(1)  # (B,)
        recon[f"analytic_{name}"] = cands[best].clamp(0, 1).reshape(x.shape)
