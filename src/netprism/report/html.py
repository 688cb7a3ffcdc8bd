"""The HTML scoreboard: experiment results -> one self-contained page.

The page has inline CSS, no scripts and no external assets, so it can be mailed or opened
from any folder: a header (versions, total time, claim counts), a scoreboard with one row per
claim, the faithful reproductions (each claim beside its twin re-run in the paper's setting,
with the verdict), then a section per experiment with its config, metrics, baselines and
figures, the figures embedded as base64 ``data:`` URIs. Every string taken from a result is
escaped.
"""

from __future__ import annotations

import base64
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from netprism.core.results import Claim, Result
from netprism.io import atomic_write_text
from netprism.report.faithful import faithful_table

#: A result, optionally with the folder its relative figure paths are resolved against.
ResultItem = Result | tuple[str | Path, Result]

_OPS = {">=": "≥", "<=": "≤", "==": "="}
_MIME = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
}
_DASH = "—"

_CSS = """
body{margin:0;background:#f6f8fa;color:#1f2328;line-height:1.45;
 font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
main{max-width:1120px;margin:0 auto;padding:24px}
h1{font-size:1.6em;margin:0 0 4px}
h2{font-size:1.25em;margin:0 0 4px}
h3{font-size:1em;margin:16px 0 6px;color:#57606a}
.meta{color:#57606a;font-size:.9em;margin:2px 0}
.counts{margin:12px 0 20px;font-size:1.05em}
.counts b{padding:2px 8px;border-radius:10px;margin-right:6px}
.counts .all{background:#eaeef2}
.counts .ok{background:#1a7f37;color:#fff}
.counts .bad{background:#cf222e;color:#fff}
table{border-collapse:collapse;background:#fff;font-size:.9em}
table.board{width:100%}
th,td{border:1px solid #d0d7de;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#eaeef2;font-weight:600}
td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
td.holds,td.fails{text-align:center;font-weight:700;font-size:1.1em;color:#fff;width:3.5em}
td.holds{background:#1a7f37}
td.fails{background:#cf222e}
a{color:#0969da;text-decoration:none}
section.exp{background:#fff;border:1px solid #d0d7de;border-radius:6px;
 padding:16px 20px;margin:24px 0}
.tables{display:flex;flex-wrap:wrap;gap:8px 28px;align-items:flex-start}
.tables table td:first-child{color:#57606a}
.figs{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
figure{margin:0;max-width:100%}
figure img{max-width:100%;border:1px solid #d0d7de}
figcaption{font-size:.8em;color:#57606a}
.missing{color:#cf222e;border:1px dashed #cf222e;padding:6px 10px;margin:4px 0}
.none{color:#8c959f;margin:4px 0}
.empty{font-size:1.1em;padding:24px;background:#fff;border:1px solid #d0d7de}
"""


def format_value(value: Any) -> str:
    """Plain text for a metric or config value: floats get 4 significant digits.

    Examples
    --------
    >>> format_value(0.123456), format_value(3), format_value(None), format_value([1, 0.5])
    ('0.1235', '3', '—', '[1, 0.5]')
    """
    if value is None:
        return _DASH
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return _format_float(float(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {format_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def render_html(
    results: Iterable[ResultItem],
    *,
    title: str = "netprism report",
    generated: datetime | None = None,
) -> str:
    """Render results as a self-contained HTML scoreboard page.

    Parameters
    ----------
    results : iterable of Result or (result_dir, Result)
        The results, in display order. Relative figure paths are read from ``result_dir``
        (from the current directory for a bare ``Result``); a missing figure shows a note.
    title : str, default "netprism report"
        Page title and heading.
    generated : datetime, optional
        Time shown in the header; now by default.

    Returns
    -------
    str
        The complete HTML document.

    Examples
    --------
    >>> from netprism.core.results import Claim, Result
    >>> r = Result("demo", config={}, metrics={"acc": 0.9},
    ...            claims=[Claim("acc", "accuracy >= 0.8", 0.9, 0.8)])
    >>> 'class="holds"' in render_html([r])
    True
    """
    items = _normalize(results)
    when = (generated or datetime.now()).strftime("%Y-%m-%d %H:%M")
    parts = [_header(title, when, items)]
    if not items:
        parts.append('<p class="empty">No results: nothing to report.</p>')
    else:
        parts.append(_scoreboard(items))
        parts.append(faithful_table([r for _, r in items]))
        parts.extend(_section(i, base, r) for i, (base, r) in enumerate(items))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>\n"
        "<body><main>\n" + "\n".join(parts) + "\n</main></body></html>\n"
    )


def collect_results(run_dir: str | Path) -> list[tuple[Path, Result]]:
    """Load ``run_dir/result.json`` and every ``run_dir/*/result.json``.

    Parameters
    ----------
    run_dir : str or Path
        A run folder, as written by ``netprism reproduce`` (one sub-folder per experiment).

    Returns
    -------
    list of (Path, Result)
        Each result with its folder, sorted by folder path (the top-level one first).

    Raises
    ------
    ValueError
        If ``run_dir`` is not a folder, or a ``result.json`` cannot be read or parsed
        (the message names the file).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"run directory {str(run_dir)!r} does not exist or is not a folder")
    paths = [run_dir / "result.json"] if (run_dir / "result.json").is_file() else []
    paths += sorted(p for p in run_dir.glob("*/result.json") if p.is_file())
    return [(path.parent, _load(path)) for path in paths]


def write_report(
    results_or_dir: str | Path | Sequence[ResultItem],
    out_path: str | Path | None = None,
    *,
    title: str = "netprism report",
) -> Path:
    """Render results to an HTML file, written atomically.

    Parameters
    ----------
    results_or_dir : str, Path or sequence of (result_dir, Result)
        A run folder (its results are found with :func:`collect_results`) or the results.
    out_path : str or Path, optional
        The HTML file; defaults to ``report.html`` inside the run folder (required when
        results are passed directly).
    title : str, default "netprism report"
        Page title.

    Returns
    -------
    Path
        ``out_path``.
    """
    if isinstance(results_or_dir, (str, Path)):
        run_dir = Path(results_or_dir)
        items: Sequence[ResultItem] = collect_results(run_dir)
        out = Path(out_path) if out_path is not None else run_dir / "report.html"
    else:
        if out_path is None:
            raise ValueError("write_report needs out_path when given results, not a folder")
        items, out = results_or_dir, Path(out_path)
    return atomic_write_text(out, render_html(items, title=title))


# ---------------------------------------------------------------------------------------------
# loading


def _load(path: Path) -> Result:
    """``Result.load`` with every failure turned into a ValueError naming ``path``."""
    try:
        return Result.load(path)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        if str(path) in str(err):
            raise ValueError(str(err)) from err
        raise ValueError(f"corrupt result file {path}: {err!r}") from err


def _normalize(results: Iterable[ResultItem]) -> list[tuple[Path | None, Result]]:
    items: list[tuple[Path | None, Result]] = []
    for item in results:
        if isinstance(item, Result):
            items.append((None, item))
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Result):
            items.append((Path(item[0]), item[1]))
        else:
            raise ValueError(
                f"expected Result objects or (result_dir, Result) pairs, got {type(item).__name__}"
            )
    return items


# ---------------------------------------------------------------------------------------------
# page parts


def _header(title: str, when: str, items: list[tuple[Path | None, Result]]) -> str:
    claims = [c for _, r in items for c in r.claims]
    n_hold = sum(_holds(c) for c in claims)
    versions = " · ".join(f"{lib} {escape(_versions(items, lib))}" for lib in ("netprism", "torch"))
    seconds = sum(float(r.seconds or 0.0) for _, r in items)
    return (
        f"<header><h1>{escape(title)}</h1>"
        f'<p class="meta">generated {escape(when)} · {versions} · '
        f"{len(items)} experiment(s) · {_format_seconds(seconds)} in total</p>"
        f'<p class="counts"><b class="all">{len(claims)} claims</b>'
        f'<b class="ok">{n_hold} hold</b>'
        f'<b class="bad">{len(claims) - n_hold} do not hold</b></p></header>'
    )


def _scoreboard(items: list[tuple[Path | None, Result]]) -> str:
    head = (
        "<tr><th>experiment</th><th>paper</th><th>claim</th><th>measured</th>"
        "<th>target</th><th>baseline</th><th>holds</th></tr>"
    )
    rows = [_claim_row(i, r, c) for i, (_, r) in enumerate(items) for c in r.claims]
    if not rows:
        rows = ['<tr><td colspan="7" class="none">no experiment made a checkable claim</td></tr>']
    return (
        '<h2>Scoreboard</h2><table class="board"><thead>'
        + head
        + "</thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _claim_row(index: int, result: Result, claim: Claim) -> str:
    ok = _holds(claim)
    op = _OPS.get(claim.op, claim.op)
    baseline = _DASH
    if claim.baseline is not None or claim.baseline_name:
        baseline = f"{claim.baseline_name or 'baseline'}: {format_value(claim.baseline)}"
    cells = [
        f'<a href="#exp-{index}">{escape(result.name)}</a>',
        escape(result.paper or _DASH),
        escape(claim.text),
    ]
    return (
        '<tr class="claim">'
        + "".join(f"<td>{c}</td>" for c in cells)
        + f'<td class="num">{escape(format_value(claim.measured))}</td>'
        + f'<td class="num">{escape(op)} {escape(format_value(claim.target))}</td>'
        + f"<td>{escape(baseline)}</td>"
        + (
            '<td class="holds" title="holds">✓</td>'
            if ok
            else '<td class="fails" title="does not hold">✗</td>'
        )
        + "</tr>"
    )


def _section(index: int, base: Path | None, result: Result) -> str:
    n_hold = sum(_holds(c) for c in result.claims)
    meta = (
        f"scale {escape(result.scale)} · seed {escape(format_value(result.seed))} · "
        f"{_format_seconds(float(result.seconds or 0.0))} · "
        f"{n_hold} of {len(result.claims)} claim(s) hold"
    )
    tables = (
        _titled("config", _kv_table(result.config))
        + _titled("metrics", _kv_table(result.metrics))
        + _titled("baselines", _baselines_table(result.baselines))
    )
    figures = "".join(_figure(base, str(name)) for name in result.figures)
    return (
        f'<section class="exp" id="exp-{index}"><h2>{escape(result.name)}</h2>'
        f'<p class="meta">{escape(result.paper or "")}</p><p class="meta">{meta}</p>'
        f'<div class="tables">{tables}</div>'
        + (f'<h3>figures</h3><div class="figs">{figures}</div>' if figures else "")
        + "</section>"
    )


def _titled(name: str, body: str) -> str:
    return f"<div><h3>{escape(name)}</h3>{body}</div>"


def _kv_table(mapping: Mapping[str, Any]) -> str:
    if not mapping:
        return '<p class="none">none</p>'
    rows = "".join(
        f"<tr><td>{escape(str(k))}</td>{_value_cell(v)}</tr>" for k, v in mapping.items()
    )
    return f'<table class="kv">{rows}</table>'


def _baselines_table(baselines: Mapping[str, Any]) -> str:
    if not baselines:
        return '<p class="none">none</p>'
    rows_data = {
        name: (v if isinstance(v, Mapping) else {"value": v}) for name, v in baselines.items()
    }
    columns = list(dict.fromkeys(k for row in rows_data.values() for k in row))
    head = "<tr><th></th>" + "".join(f"<th>{escape(str(c))}</th>" for c in columns) + "</tr>"
    body = "".join(
        f"<tr><td>{escape(str(name))}</td>"
        + "".join(_value_cell(row.get(c)) for c in columns)
        + "</tr>"
        for name, row in rows_data.items()
    )
    return f'<table class="kv">{head}{body}</table>'


def _value_cell(value: Any) -> str:
    numeric = isinstance(value, numbers.Real) and not isinstance(value, bool)
    css = ' class="num"' if numeric else ""
    return f"<td{css}>{escape(format_value(value))}</td>"


def _figure(base: Path | None, name: str) -> str:
    label = escape(name)
    path = Path(name)
    if base is not None and not path.is_absolute():
        path = base / path
    mime = _MIME.get(path.suffix.lower())
    if mime is None:
        return f'<p class="missing">figure not embeddable (not an image): {label}</p>'
    try:
        data = path.read_bytes()
    except OSError:
        return f'<p class="missing">figure missing: {label}</p>'
    uri = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return f'<figure><img src="{uri}" alt="{label}"><figcaption>{label}</figcaption></figure>'


# ---------------------------------------------------------------------------------------------
# small helpers


def _holds(claim: Claim) -> bool:
    """``claim.holds``, where a claim that cannot be checked (bad op or value) fails."""
    try:
        return bool(claim.holds)
    except (ValueError, TypeError):
        return False


def _versions(items: list[tuple[Path | None, Result]], lib: str) -> str:
    found = sorted({str(r.versions[lib]) for _, r in items if r.versions.get(lib)})
    return ", ".join(found) if found else "unknown"


def _format_float(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.4g}"


def _format_seconds(seconds: float) -> str:
    if seconds >= 120:
        minutes, rest = divmod(seconds, 60)
        return f"{int(minutes)} min {rest:.0f} s"
    return f"{_format_float(seconds)} s"
