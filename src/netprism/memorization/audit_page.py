"""The self-contained page of a dataset audit (:func:`netprism.memorization.audit`).

Inline CSS, no scripts, every image a base64 ``data:`` URI, every string escaped: the page can
be mailed or opened from any folder.  Images ``(C, H, W)`` with 1 or 3 channels are drawn
as they are (scaled up, nearest neighbour); other inputs as a small line plot.
"""

from __future__ import annotations

import base64
import io
from html import escape
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

if TYPE_CHECKING:
    from netprism.memorization.dataset_audit import AuditReport

THUMB = 72  # pixels

_CSS = """
body{margin:0;background:#f6f8fa;color:#1f2328;line-height:1.45;
 font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
main{max-width:1120px;margin:0 auto;padding:24px}
section{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:16px 20px;
 margin:20px 0}
h1{font-size:1.6em;margin:0 0 4px} h2{font-size:1.2em;margin:0 0 8px}
table{border-collapse:collapse;font-size:.92em}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left}
th{background:#eaeef2}
.grid{display:flex;flex-wrap:wrap;gap:10px}
.card{width:96px;font-size:.78em;text-align:center}
.card img{width:72px;height:72px;image-rendering:pixelated;border:1px solid #d0d7de}
.group{display:flex;gap:10px;align-items:flex-start;padding:6px 0;border-bottom:1px solid #eaeef2}
.warn{background:#fff8c5;border:1px solid #d4a72c;padding:8px 12px;border-radius:6px}
.bad{color:#cf222e;font-weight:600}
"""


def render_audit_page(
    report: AuditReport,
    inputs: dict[int, torch.Tensor],
    y: torch.Tensor,
    *,
    show: int,
    names: Any = None,
) -> str:
    """The whole page as a string; ``inputs`` holds (at least) every sample shown."""
    label = (lambda k: str(names[k])) if names else str
    values = [v.float() for v in inputs.values()]
    low = min((float(v.min()) for v in values), default=0.0)
    high = max((float(v.max()) for v in values), default=1.0)
    thumb = lambda i: _thumbnail(inputs[i], low, high)  # noqa: E731
    parts = [
        f"<h1>Dataset audit</h1><p>{len(y)} samples, {len(torch.unique(y))} classes</p>",
        _summary(report, len(y)),
        _section(
            f"Label issues: the top {min(show, len(report.issues))} of "
            f"{len(report.issues)} estimated",
            _cards(
                report.issues[:show].tolist(), thumb,
                lambda i: f"#{i}<br>given <b>{escape(label(int(y[i])))}</b><br>model "
                f"<span class=bad>{escape(label(int(report.suggested[i])))}</span>",
            ),
        ),
        _section(
            f"Conflicting near-duplicates: {len(report.duplicate_groups)} groups",
            _groups(report, thumb, y, label, show),
        ),
        _section(
            "Memorized long-tail samples (highest curvature, not flagged above)",
            _cards(
                report.memorized[:show].tolist(), thumb,
                lambda i: f"#{i}<br>{escape(label(int(y[i])))}",
            ),
        ),
        _section("Score distributions", _histograms(report)),
    ]  # fmt: skip
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>netprism dataset audit</title><style>{_CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def _summary(report: AuditReport, n: int) -> str:
    p = report.premise
    rows = [
        ("label issues (estimated)", f"{len(report.issues)} ({len(report.issues) / n:.1%})"),
        ("ranked and counted by", f"{report.detector} (the library default, chosen by a "
         "pre-registered rule; the count is the high mode of a two-component mixture)"),
        ("training accuracy on the given labels", f"{p.train_accuracy:.1%}"),
        ("conflicting near-duplicate groups", str(len(report.duplicate_groups))),
        ("training and scoring", ", ".join(
            f"{k} {v:.1f} s" for k, v in report.scores.seconds.items())),
    ]  # fmt: skip
    table = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    warn = "" if p.holds else f'<p class="warn">{escape(p.message())}</p>'
    return _section("Summary", f"<table>{table}</table>{warn}")


def _section(title: str, body: str) -> str:
    return f"<section><h2>{escape(title)}</h2>{body}</section>"


def _cards(indices: list[int], thumb: Any, caption: Any) -> str:
    if not indices:
        return "<p>none</p>"
    cards = "".join(
        f'<div class="card"><img src="{thumb(i)}" alt="sample {i}"><br>{caption(i)}</div>'
        for i in indices
    )
    return f'<div class="grid">{cards}</div>'


def _groups(report: AuditReport, thumb: Any, y: torch.Tensor, label: Any, show: int) -> str:
    if not report.duplicate_groups:
        return "<p>none found</p>"
    rows = []
    for g, group in enumerate(report.duplicate_groups[:show]):
        members = _cards(
            group.indices.tolist(), thumb, lambda i: f"#{i}<br>{escape(label(int(y[i])))}"
        )
        rows.append(f'<div class="group"><b>{g}</b>{members}</div>')
    return "".join(rows)


def _histograms(report: AuditReport) -> str:
    from matplotlib.figure import Figure

    shown: list[tuple[str, torch.Tensor, int | None]] = [
        (report.detector, report.scores[report.detector], len(report.issues))
    ]
    if "curvature" in report.scores.names:
        shown.append(("curvature", report.scores["curvature"], None))
    shown.append(("duplicate score", report.duplicate_score, None))
    fig = Figure(figsize=(4.0 * len(shown), 2.8))
    for ax, (name, values, top) in zip(np.atleast_1d(fig.subplots(1, len(shown))), shown):
        finite = values.double()
        v = finite[torch.isfinite(finite)].numpy()
        ax.hist(v, bins=50, color="#0969da")
        if top:  # where the estimated set begins
            ax.axvline(float(np.sort(v)[-top]), color="#cf222e", ls="--", lw=1)
        ax.set_title(name, fontsize=9)
        ax.set_yscale("log")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="{uri}" alt="score histograms" style="max-width:100%">'


def _thumbnail(sample: torch.Tensor, low: float, high: float) -> str:
    """A ``data:`` URI of one input drawn as an image or a line plot."""
    a = sample.detach().cpu().float()
    if a.ndim == 3 and a.shape[0] in (1, 3):
        scaled = ((a - low) / max(high - low, 1e-12)).clamp(0, 1).mul(255).byte()
        arr = scaled[0].numpy() if a.shape[0] == 1 else scaled.permute(1, 2, 0).numpy()
        image = Image.fromarray(arr).resize((THUMB, THUMB), Image.Resampling.NEAREST)
    else:
        image = _line_plot(a.flatten().numpy())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _line_plot(values: np.ndarray) -> Image.Image:
    from PIL import ImageDraw

    image = Image.new("L", (THUMB, THUMB), 255)
    lo, hi = float(values.min()), float(values.max())
    xs = np.linspace(2, THUMB - 3, len(values))
    ys = (THUMB - 3) - (values - lo) / max(hi - lo, 1e-12) * (THUMB - 6)
    ImageDraw.Draw(image).line(list(zip(xs.tolist(), ys.tolist())), fill=0, width=1)
    return image
