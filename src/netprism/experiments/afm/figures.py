"""Figures and saved runs of the ``afm`` experiment."""

from __future__ import annotations

import json
from pathlib import Path

from netprism.experiments.afm.claims import PTQ_KEYS, seed_stat
from netprism.experiments.afm.config import AFMConfig
from netprism.experiments.afm.lora_faithful import FULL, arm_label, faithful_records
from netprism.experiments.afm.records import AFMRuns
from netprism.io import atomic_write_text


def draw(data: AFMRuns, config: AFMConfig, out_dir: Path) -> list[str]:
    """The two bar charts, the faithful LoRA twin's mechanism (when it ran) and
    ``afm_runs.json`` (every measured number); returns the figure file names."""
    figures = plot_all(data, out_dir)
    if faithful_records(data):
        figures.append(plot_lora_faithful(data, config, out_dir))
    atomic_write_text(out_dir / "afm_runs.json", json.dumps(data, indent=1))
    return figures


def plot_all(data: AFMRuns, out_dir: Path) -> list[str]:
    """Bar charts of validation bpb per variant and the 2-bit study."""
    from matplotlib.figure import Figure

    out_dir.mkdir(parents=True, exist_ok=True)
    figures = []
    fig = Figure(figsize=(6.5, 3.2))
    ax = fig.add_subplot(1, 1, 1)
    names = [k for k in ("base", "kv_share", "pt_moe", "local_global") if _has(data, k)]
    stats = [seed_stat(data, k) for k in names]
    ax.bar(names, [s[0] for s in stats], yerr=[s[1] for s in stats], color="#4a7ab5")
    ax.set_ylabel("validation bits per byte")
    ax.set_title("architecture variants (mean +- std over seeds)")
    lo = min(s[0] for s in stats)
    ax.set_ylim(lo * 0.9, max(s[0] + s[1] for s in stats) * 1.02)
    fig.tight_layout()
    fig.savefig(out_dir / "afm_variants.png", dpi=120)
    figures.append("afm_variants.png")

    q = data["qat"]
    keys = ["fp32_control", *PTQ_KEYS, "qat", "qat_embed4", "fp32_kv8"]
    fig = Figure(figsize=(7.5, 3.4))
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(range(len(keys)), [q[k] for k in keys], color="#b5634a")
    ax.set_xticks(range(len(keys)), keys, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("validation bits per byte")
    ax.set_title("2-bit: PTQ variants vs QAT at an equal token budget")
    fig.tight_layout()
    fig.savefig(out_dir / "afm_qat.png", dpi=120)
    figures.append("afm_qat.png")
    return figures


def _has(data: AFMRuns, key: str) -> bool:
    return all(key in runs for runs in data["seeds"].values())


def plot_lora_faithful(data: AFMRuns, config: AFMConfig, out_dir: Path) -> str:
    """The twin's mechanism.  Left: held-out bpb (scoring half) against adaptation steps on the
    first faithful seed, LoRA at each rank and full fine-tuning at their chosen rates, the base
    as a flat line.  Right: general validation bpb at the end (forgetting), mean over seeds
    with each seed as a dot (the other ranks: first seed only)."""
    from matplotlib.figure import Figure

    from netprism.report.figures import save_figure

    twins = faithful_records(data)
    seeds = list(twins)
    first = twins[seeds[0]]
    fig = Figure(figsize=(10, 3.8))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    full = first["arms"][arm_label(FULL, 0.0, first["full_lr"])]
    ranks = first.get("ranks") or {
        config.lora_rank: {"arm": arm_label(config.lora_rank, config.lora_alpha, first["lora_lr"])}
    }
    for k, (rank, r) in enumerate(ranks.items()):
        arm = first["arms"][r["arm"]]
        left.plot(arm["step"], arm["bpb"], "o-", ms=3, color=f"C{k}",
                  label=f"LoRA r={rank} (lr {arm['lr']:g})")  # fmt: skip
    left.plot(full["step"], full["bpb"], "s-", ms=3, color="C3",
              label=f"full fine-tuning (lr {full['lr']:g})")  # fmt: skip
    left.axhline(full["bpb"][0], color="gray", ls="--", lw=1, label="base")
    left.axvline(config.lora_steps, color="gray", ls=":", lw=1,
                 label=f"reproduced run's {config.lora_steps} steps")  # fmt: skip
    left.set(xlabel="adaptation step", ylabel="held-out bits per byte",
             title=f"held-out package ({config.heldout_package}), seed {seeds[0]}")  # fmt: skip
    left.legend(fontsize=7)
    names, per_seed = ["base"], [[twins[s]["base_val_general"] for s in seeds]]
    for rank, r in sorted(
        {config.lora_rank: {}, **first.get("ranks", {})}.items(), key=lambda p: p[0]
    ):
        names.append(f"LoRA r={rank}")
        claim_rank = rank == config.lora_rank
        per_seed.append([twins[s]["lora_val_general"] for s in seeds] if claim_rank
                        else [r["val_general"]])  # fmt: skip
    names.append("full FT")
    per_seed.append([twins[s]["full_val_general"] for s in seeds])
    x = range(len(names))
    right.bar(x, [sum(v) / len(v) for v in per_seed], color="#4a7ab5", alpha=0.7)
    for i, values in enumerate(per_seed):
        right.plot([i] * len(values), values, "k.", ms=5)
    low = min(min(v) for v in per_seed)
    right.set_ylim(low - 0.05 * abs(low), max(max(v) for v in per_seed) + 0.02 * abs(low))
    right.set_xticks(list(x), names, rotation=20, fontsize=8)
    right.set(ylabel="general validation bits per byte",
              title=f"after adapting (seeds {', '.join(map(str, seeds))})")  # fmt: skip
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out_dir / "afm_lora_faithful.png")
    return "afm_lora_faithful.png"
