"""Memorization scores that last and travel: safetensors files, CSV read-back, pandas.

Garg, Ravikumar, Roy, "Memorization Through the Lens of Curvature of Loss Function Around
Samples", ICML 2024 (arXiv 2307.05831): scores cost a training run, so they are worth keeping.

File format (one ``.safetensors`` file, written atomically; nothing is pickled):

- tensors ``scores.<method>`` ``(N,)`` and ``per_epoch.<name>`` ``(E, N)``, each in the dtype
  it had (float64 stays float64, NaN positions included);
- the safetensors metadata key ``"netprism.memorization_scores"``: a JSON header with
  ``format_version``, ``netprism_version``, ``n`` (dataset length), ``epochs`` (length of the
  training history), ``methods`` (score names, in order), ``per_epoch`` (name -> rows ``E``,
  in order), ``history``, ``seconds`` and ``sha256``: the SHA-256 of the header without that
  key (canonical JSON) followed by every tensor's name, dtype, shape and bytes, so an edited
  header or edited values are refused on load.

The trained model is not saved: save its weights yourself (``safetensors.torch.save_model``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from netprism.io import atomic_write, load_json
from netprism.memorization.names import ALL_METHODS
from netprism.version import __version__

if TYPE_CHECKING:
    import pandas as pd

    from netprism.memorization.scores import MemorizationScores

FORMAT_VERSION = 1
HEADER_KEY = "netprism.memorization_scores"
# Score names netprism writes: memorization_scores' methods plus the experiments' extra peers.
EXTRA_SCORES = ("confident_learning", "feldman_zhang", "train_loss")
KNOWN_SCORES = frozenset(ALL_METHODS + EXTRA_SCORES)
_SCORE, _EPOCH = "scores.", "per_epoch."


def save_scores(scores: MemorizationScores, path: str | Path) -> Path:
    """Write ``scores`` to one safetensors file (atomically) and return its path.

    Saved: every score ``(N,)`` and per-epoch array ``(E, N)`` exactly as they are (dtype and
    NaNs kept), the training history and the seconds.  Not saved: the trained model (save its
    weights yourself).  Score names outside :data:`KNOWN_SCORES` are saved, but loading them
    needs ``allow_unknown=True``.

    Parameters
    ----------
    scores : MemorizationScores
    path : str or Path
        Target file, conventionally ``*.safetensors``; its folder is created.

    Raises
    ------
    ValueError
        No scores, a score that is not 1-D, scores of different lengths, a per-epoch array
        that is not ``(E, N)``, or a history / seconds that is not JSON (all checked before
        anything is written).
    OSError
        The write failed; a previous file at ``path`` is left intact.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if not scores.scores:
        raise ValueError(f"cannot save {path}: the MemorizationScores holds no scores")
    n = _check_shapes(scores.scores, scores.per_epoch, where=f"cannot save {path}")
    # Clone: per-epoch rows may share memory with a score (curvature_final is the last row of
    # the curvature history), and safetensors refuses tensors that share storage.
    tensors = {_SCORE + k: _plain(v) for k, v in scores.scores.items()}
    tensors.update({_EPOCH + k: _plain(v) for k, v in scores.per_epoch.items()})
    try:
        header: dict[str, Any] = json.loads(
            json.dumps(
                {
                    "format_version": FORMAT_VERSION,
                    "netprism_version": _version(),
                    "n": n,
                    "epochs": len(scores.history),
                    "methods": list(scores.scores),
                    "per_epoch": {k: int(v.shape[0]) for k, v in scores.per_epoch.items()},
                    "history": list(scores.history),
                    "seconds": dict(scores.seconds),
                }
            )
        )
    except (TypeError, ValueError) as err:
        raise ValueError(f"cannot save {path}: history or seconds is not JSON ({err})") from err
    header["sha256"] = _digest(header, tensors)
    metadata = {HEADER_KEY: json.dumps(header)}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def read_scores_file(path: str | Path, *, allow_unknown: bool = False) -> dict[str, Any]:
    """Read what :func:`save_scores` wrote, after checking it: the keyword arguments of a
    :class:`~netprism.memorization.scores.MemorizationScores` (``model`` is ``None``), which
    ``MemorizationScores.load`` builds.

    Tensors are read with safetensors' own loader; nothing is unpickled.

    Parameters
    ----------
    path : str or Path
    allow_unknown : bool
        Accept score names outside :data:`KNOWN_SCORES` (your own methods).

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        Naming the file and the problem: not a safetensors file (truncated, corrupted), no
        netprism header, a newer format version, unknown score names, tensors that do not match
        the header's names, a score whose length is not the header's ``n``, a per-epoch array
        not ``(E, N)``, or a SHA-256 mismatch (header or values edited).
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no memorization scores file at {path}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            metadata = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise ValueError(f"{path}: not a valid safetensors file ({err})") from err
    if HEADER_KEY not in metadata:
        raise ValueError(f"{path}: no {HEADER_KEY!r} header: not a netprism scores file")
    try:
        header = load_json(metadata[HEADER_KEY], name=f"{path} header")
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: the header is not valid JSON ({err})") from err
    _check_header(path, header, tensors, allow_unknown=allow_unknown)
    digest = _digest({k: v for k, v in header.items() if k != "sha256"}, tensors)
    if digest != header["sha256"]:
        raise ValueError(
            f"{path}: SHA-256 {digest[:12]}... does not match {header['sha256'][:12]!r}... "
            f"recorded in its header (header or values edited or corrupted)"
        )
    return {
        "scores": {m: tensors[_SCORE + m] for m in header["methods"]},
        "per_epoch": {k: tensors[_EPOCH + k] for k in header["per_epoch"]},
        "model": None,
        "history": header["history"],
        "seconds": header["seconds"],
    }


def read_scores_csv(path: str | Path, *, allow_unknown: bool = False) -> dict[str, torch.Tensor]:
    """The scores of a CSV written by :meth:`MemorizationScores.to_csv`, keyed by sample index
    (``MemorizationScores.from_csv`` wraps them).

    The rows are ranked; score ``m`` of sample ``i`` lands at ``scores[m][i]`` (float64).
    Values carry the CSV's 6 significant digits; ``nan``/``inf`` are read back as such.  The
    ``reason`` column is not kept (see :func:`csv_reasons`); ``per_epoch``, ``history`` and
    ``seconds`` are empty.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        Naming the file (and line): a header that is not ``rank,index,<methods...>,reason``,
        duplicate or unknown method columns (unless ``allow_unknown``), a row with the wrong
        number of fields or an unparsable number, ranks that are not ``1..N`` or indices that
        are not ``0..N-1`` each exactly once.
    """
    path = Path(path)
    methods, rows = _read_csv(path, allow_unknown=allow_unknown)
    n = len(rows)
    index = torch.tensor([r[0] for r in rows], dtype=torch.long)
    values = torch.tensor([r[1] for r in rows], dtype=torch.float64).reshape(n, len(methods))
    by_index = torch.empty_like(values)
    by_index[index] = values
    return {m: by_index[:, j].clone() for j, m in enumerate(methods)}


def csv_reasons(path: str | Path) -> dict[int, str]:
    """The non-empty ``reason`` entries of a :meth:`MemorizationScores.to_csv` file, by index."""
    _, rows = _read_csv(Path(path), allow_unknown=True)
    return {idx: reason for idx, _, reason in rows if reason}


def scores_to_pandas(scores: MemorizationScores) -> pd.DataFrame:
    """A DataFrame indexed by sample index (``"index"``), one column per method, dtypes kept.

    Raises
    ------
    ImportError
        pandas is not installed.
    """
    try:
        import pandas as pd
    except ImportError as err:
        raise ImportError(
            "MemorizationScores.to_pandas needs pandas, which is not installed: "
            "pip install pandas (or use to_csv / save instead)"
        ) from err
    n = _check_shapes(scores.scores, {}, where="cannot convert to pandas") if scores.scores else 0
    data = {k: v.detach().cpu().numpy() for k, v in scores.scores.items()}
    return pd.DataFrame(data, index=pd.RangeIndex(n, name="index"), columns=list(data))


# --- helpers -----------------------------------------------------------------------------------


def _version() -> str:
    return __version__


def _plain(t: torch.Tensor) -> torch.Tensor:
    return t.detach().cpu().contiguous().clone()


def _check_shapes(
    scores: Mapping[str, torch.Tensor], per_epoch: Mapping[str, torch.Tensor], *, where: str
) -> int:
    """The common length ``N`` of ``scores``; ``ValueError`` if they or ``per_epoch`` disagree."""
    lengths = {k: tuple(v.shape) for k, v in scores.items()}
    bad = {k: s for k, s in lengths.items() if len(s) != 1}
    if bad:
        raise ValueError(f"{where}: every score must be 1-D (N,), got shapes {bad}")
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{where}: scores have different lengths {lengths}")
    n = next(iter(lengths.values()))[0]
    for k, v in per_epoch.items():
        if v.dim() != 2 or v.shape[1] != n:
            raise ValueError(f"{where}: per_epoch[{k!r}] must be (E, {n}), got {tuple(v.shape)}")
    return n


def _digest(header: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of the canonical header JSON (no ``sha256`` key) and every tensor, by name."""
    body = {k: v for k, v in header.items() if k != "sha256"}
    h = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"\0{name}\0{t.dtype}\0{list(t.shape)}\0".encode())
        # (E, N) float64 -> (E, 8N) uint8: the raw bytes of any dtype
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _check_header(
    path: Path, header: Any, tensors: Mapping[str, torch.Tensor], *, allow_unknown: bool
) -> None:
    if not isinstance(header, dict):
        raise ValueError(f"{path}: the header must be a JSON object")
    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"{path}: bad format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path}: format_version {version} is newer than this netprism reads "
            f"({FORMAT_VERSION}; written by netprism {header.get('netprism_version')!r})"
        )
    expected = {
        "netprism_version": str,
        "n": int,
        "epochs": int,
        "methods": list,
        "per_epoch": dict,
        "history": list,
        "seconds": dict,
        "sha256": str,
    }
    for key, kind in expected.items():
        if not isinstance(header.get(key), kind) or isinstance(header.get(key), bool):
            raise ValueError(f"{path}: header {key!r} must be a {kind.__name__}")
    n, methods, per_epoch = header["n"], header["methods"], header["per_epoch"]
    if n < 0 or header["epochs"] < 0:
        raise ValueError(f"{path}: header n={n}, epochs={header['epochs']} must be >= 0")
    if not methods or len(set(methods)) != len(methods):
        raise ValueError(f"{path}: header methods must be non-empty and distinct: {methods}")
    if not all(isinstance(m, str) for m in methods):
        raise ValueError(f"{path}: header methods must be strings: {methods}")
    if not all(isinstance(h, dict) for h in header["history"]):
        raise ValueError(f"{path}: header history must be a list of objects")
    if not all(_is_number(s) for s in header["seconds"].values()):
        raise ValueError(f"{path}: header seconds must map names to numbers")
    if not allow_unknown:
        unknown = sorted(set(methods) - KNOWN_SCORES) + sorted(set(per_epoch) - KNOWN_SCORES)
        if unknown:
            raise ValueError(
                f"{path}: unknown score names {unknown}; known: {sorted(KNOWN_SCORES)} "
                f"(pass allow_unknown=True to load your own methods)"
            )
    names = {_SCORE + m for m in methods} | {_EPOCH + k for k in per_epoch}
    if set(tensors) != names:
        raise ValueError(
            f"{path}: tensors {sorted(tensors)} do not match the header, which lists "
            f"{sorted(names)}"
        )
    for m in methods:
        shape = tuple(tensors[_SCORE + m].shape)
        if shape != (n,):
            raise ValueError(f"{path}: score {m!r} has shape {shape}, the header says ({n},)")
    for k, rows in per_epoch.items():
        shape = tuple(tensors[_EPOCH + k].shape)
        if not _is_int(rows) or shape != (rows, n):
            raise ValueError(
                f"{path}: per_epoch {k!r} has shape {shape}, the header says ({rows}, {n})"
            )


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _read_csv(path: Path, *, allow_unknown: bool) -> tuple[list[str], list[Any]]:
    """``(methods, [(index, [values...], reason), ...])`` of a to_csv file, validated."""
    if not path.is_file():
        raise FileNotFoundError(f"no scores CSV at {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a UTF-8 text file ({err})") from err
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header or header[:2] != ["rank", "index"] or header[-1] != "reason" or len(header) < 4:
        raise ValueError(
            f"{path}: expected the header rank,index,<methods...>,reason as written by "
            f"MemorizationScores.to_csv, got {header}"
        )
    methods = header[2:-1]
    dup = sorted({m for m in methods if methods.count(m) > 1})
    if dup:
        raise ValueError(f"{path}: duplicate method columns {dup}")
    unknown = sorted(set(methods) - KNOWN_SCORES)
    if unknown and not allow_unknown:
        raise ValueError(
            f"{path}: unknown columns {unknown}; known methods: {sorted(KNOWN_SCORES)} "
            f"(pass allow_unknown=True to read your own methods)"
        )
    rows, ranks = [], []
    for line, row in enumerate(reader, 2):
        if not row:
            continue  # a blank line
        if len(row) != len(header):
            raise ValueError(f"{path}, line {line}: {len(row)} fields, expected {len(header)}")
        try:
            rank, idx = int(row[0]), int(row[1])
            values = [float(v) for v in row[2:-1]]
        except ValueError as err:
            raise ValueError(f"{path}, line {line}: {err}") from err
        ranks.append(rank)
        rows.append((idx, values, row[-1]))
    n = len(rows)
    _check_permutation(path, "index", (r[0] for r in rows), start=0, n=n)
    _check_permutation(path, "rank", ranks, start=1, n=n)
    return methods, rows


def _check_permutation(path: Path, what: str, values: Iterable[int], *, start: int, n: int) -> None:
    seen: dict[int, int] = {}
    for v in values:
        seen[v] = seen.get(v, 0) + 1
    dup = sorted(v for v, c in seen.items() if c > 1)
    missing = sorted(set(range(start, start + n)) - set(seen))
    extra = sorted(set(seen) - set(range(start, start + n)))
    if dup or missing or extra:
        raise ValueError(
            f"{path}: the {what} column must hold {start}..{start + n - 1} once each; "
            f"duplicates {_few(dup)}, missing {_few(missing)}, out of range {_few(extra)}"
        )


def _few(xs: list[int]) -> str:
    return str(xs[:10])[:-1] + (", ...]" if len(xs) > 10 else "]")
