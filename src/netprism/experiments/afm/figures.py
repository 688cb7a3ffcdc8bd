"""Figures and saved runs of the ``afm`` experiment."""

from __future__ import annotations

import json
from pathlib import Path

from netprism.experiments.afm.claims import PTQ_KEYS, seed_stat
from netprism.experiments.afm.config import AFMConfig
from netprism.experiments.afm.records import AFMRuns
from netprism.io import atomic_write_text


def draw(data: AFMRuns, config: AFMConfig, out_dir: Path) -> list[str]:
    """The two bar charts and ``afm_runs.json`` (every measured number); returns the figure
    file names."""
    figures = plot_all(data, out_dir)
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
