"""Read the per-cell JSON files of a run into tidy frames.

Three inputs, all written by earlier steps (formats in ``docs/architecture.md``):

- metrics JSON (``metrics/{dataset}/{model}/{prompt}/r{rep}.json``): the cell identity comes
  from its ``dataset``/``model``/``prompt``/``rep`` fields;
- raw meta JSON (``raw/.../r{rep}.meta.json``): generation duration ``wall_seconds``, the
  ``generator_kind`` and, for peers, ``train_seconds`` / ``sample_seconds`` / ``epochs_run``;
- validation reports (``validation/.../r{rep}.json``): ``valid`` record counts.

Meta and validation files carry no full identity, so it is taken from their path (the last
four components ``{dataset}/{model}/{prompt}/r{rep}``), unless the JSON itself has the fields.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from synllm.errors import SynllmError

KEY = ["dataset", "model", "prompt", "rep"]
"""Columns identifying one grid cell (one repeat of dataset x model x prompt)."""

_REP = re.compile(r"^r(\d+)(?:\.meta)?\.json$")
_GROUPS = ("quality", "privacy", None)
_DIRECTIONS = ("higher", "lower")


def read_list(path: str | Path) -> list[Path]:
    """Paths listed one per line in ``path`` (blank lines and ``#`` comments skipped)."""
    p = Path(path)
    if not p.is_file():
        raise SynllmError(f"list file not found: {p}")
    out = []
    for line in p.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(Path(line))
    return out


def gather_paths(
    lists: Iterable[str | Path] | None, direct: Iterable[str | Path] | None
) -> list[Path]:
    """Union (order kept, duplicates dropped) of the paths in list files and direct paths."""
    paths: list[Path] = []
    for lst in lists or []:
        paths += read_list(lst)
    paths += [Path(p) for p in direct or []]
    return list(dict.fromkeys(paths))


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise SynllmError(f"{what} file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise SynllmError(
            f"{what} file {path} is not valid JSON: {err.msg} (line {err.lineno})"
        ) from None
    if not isinstance(data, dict):
        raise SynllmError(f"{what} file {path} does not hold a JSON object")
    return data


def identity_from_path(path: Path) -> dict:
    """``.../{dataset}/{model}/{prompt}/r{rep}[.meta].json`` -> dict with the four key fields."""
    m = _REP.match(path.name)
    parts = path.parts
    if not m or len(parts) < 4:
        raise SynllmError(
            f"cannot read the cell identity from path {path} "
            "(expected .../{dataset}/{model}/{prompt}/r{rep}.json)"
        )
    return {"dataset": parts[-4], "model": parts[-3], "prompt": parts[-2], "rep": int(m.group(1))}


def _number(v) -> float:
    """JSON number -> float; null, strings and non-finite values -> NaN."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return math.nan
    return float(v) if math.isfinite(v) else math.nan


def parse_metrics(data: dict, source: str) -> tuple[dict, list[dict]]:
    """Check one metrics JSON against the contract; return (cell row, metric rows).

    The cell row has ``KEY`` + ``status, reason, n_synthetic, source``; each metric row has
    ``KEY`` + ``name, family, score_group, direction, range_lo, range_hi, value, metric_status``.
    Raises SynllmError naming the file and field when the contract is broken.
    """
    for field in KEY + ["status", "metrics"]:
        if field not in data:
            raise SynllmError(f"metrics file {source}: missing field '{field}'")
    if data["status"] not in ("ok", "failed"):
        raise SynllmError(
            f"metrics file {source}: field 'status' is {data['status']!r}, expected ok|failed"
        )
    try:
        rep = int(data["rep"])
    except (TypeError, ValueError):
        raise SynllmError(
            f"metrics file {source}: field 'rep' is {data['rep']!r}, expected an integer"
        ) from None
    cell = {
        "dataset": str(data["dataset"]),
        "model": str(data["model"]),
        "prompt": str(data["prompt"]),
        "rep": rep,
        "status": data["status"],
        "reason": data.get("reason"),
        "n_synthetic": _number(data.get("n_synthetic")),
        "source": source,
    }
    if not isinstance(data["metrics"], list):
        raise SynllmError(f"metrics file {source}: field 'metrics' must be a list")
    rows, seen = [], set()
    for i, m in enumerate(data["metrics"]):
        where = f"metrics file {source}: metrics[{i}]"
        if not isinstance(m, dict):
            raise SynllmError(f"{where} is not an object")
        for field in ("name", "family", "score_group", "direction", "range", "value"):
            if field not in m:
                raise SynllmError(f"{where}: missing field '{field}'")
        if m["name"] in seen:
            raise SynllmError(f"{where}: metric name {m['name']!r} appears twice")
        seen.add(m["name"])
        if m["score_group"] not in _GROUPS:
            raise SynllmError(
                f"{where} ({m['name']}): field 'score_group' is {m['score_group']!r}, expected quality|privacy|null"
            )
        if m["direction"] not in _DIRECTIONS:
            raise SynllmError(
                f"{where} ({m['name']}): field 'direction' is {m['direction']!r}, expected higher|lower"
            )
        rng = m["range"]
        if not (isinstance(rng, (list, tuple)) and len(rng) == 2):
            raise SynllmError(f"{where} ({m['name']}): field 'range' must be [min, max]")
        lo = -math.inf if rng[0] is None else float(rng[0])
        hi = math.inf if rng[1] is None else float(rng[1])
        status = m.get("status", "ok")
        value = _number(m["value"])
        if status != "ok" or cell["status"] != "ok":
            value = math.nan
        rows.append(
            {
                **{k: cell[k] for k in KEY},
                "name": str(m["name"]),
                "family": str(m["family"]),
                "score_group": m["score_group"],
                "direction": m["direction"],
                "range_lo": lo,
                "range_hi": hi,
                "value": value,
                "metric_status": "ok" if status == "ok" and not math.isnan(value) else "failed",
            }
        )
    return cell, rows


def load_metrics(paths: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    """Read metrics JSON files.

    Returns ``(cells, metrics, raw)``: one row per cell, one row per cell x metric (long
    format), and the parsed JSON objects in the order of ``cells`` (for the nested
    ``utility`` block). Two files with the same cell identity are an error.
    """
    cells, rows, raw = [], [], []
    for p in paths:
        data = _read_json(p, "metrics")
        cell, mrows = parse_metrics(data, str(p))
        cells.append(cell)
        rows += mrows
        raw.append(data)
    cells_df = pd.DataFrame(cells, columns=KEY + ["status", "reason", "n_synthetic", "source"])
    dup = cells_df.duplicated(KEY, keep=False)
    if dup.any():
        d = cells_df[dup].sort_values(KEY)
        raise SynllmError(
            f"two metrics files describe the same cell {tuple(d.iloc[0][KEY])}: "
            f"{d.iloc[0]['source']} and {d.iloc[1]['source']}"
        )
    metrics_df = pd.DataFrame(
        rows,
        columns=KEY
        + [
            "name",
            "family",
            "score_group",
            "direction",
            "range_lo",
            "range_hi",
            "value",
            "metric_status",
        ],
    )
    check_declarations(metrics_df)
    return cells_df, metrics_df, raw


def check_declarations(metrics: pd.DataFrame) -> None:
    """Within a dataset, one metric name must keep one family / score_group / direction."""
    if metrics.empty:
        return
    decl = metrics[["dataset", "name", "family", "score_group", "direction"]].fillna(
        {"score_group": "null"}
    )
    n = decl.drop_duplicates().groupby(["dataset", "name"]).size()
    bad = n[n > 1]
    if len(bad):
        ds, name = bad.index[0]
        raise SynllmError(
            f"metric {name!r} is declared with different family/score_group/direction "
            f"in different metrics files of dataset {ds!r}"
        )


def load_side_files(paths: list[Path], what: str, fields: dict[str, str]) -> pd.DataFrame:
    """Read meta or validation JSONs into one row per cell.

    ``fields`` maps JSON field -> output column; missing or non-numeric values become NaN
    (``status`` is kept as a string). Identity from the JSON when it has all four key fields,
    else from the path.
    """
    rows = []
    for p in paths:
        data = _read_json(p, what)
        if all(k in data for k in KEY):
            ident = {k: data[k] for k in KEY}
            ident["rep"] = int(ident["rep"])
        else:
            ident = identity_from_path(p)
        row = dict(ident)
        for src, dst in fields.items():
            v = data.get(src)
            row[dst] = v if src in TEXT_FIELDS else _number(v)
        rows.append(row)
    df = pd.DataFrame(rows, columns=KEY + list(fields.values()))
    df = df.drop_duplicates(KEY, keep="last")
    return df


TEXT_FIELDS = ("status", "generator_kind")
"""Side-file fields kept as text; every other field is read as a number."""

META_FIELDS = {
    "generator_kind": "generator_kind",
    "wall_seconds": "wall_seconds",
    "load_seconds": "load_seconds",
    "output_tokens": "output_tokens",
    "tokens_per_second": "tokens_per_second",
    "peak_rss_mb": "peak_rss_mb",
    # peers only (NaN for other cells): the fitted model's training, this cell's sampling
    "train_seconds": "train_seconds",
    "sample_seconds": "sample_seconds",
    "epochs_run": "epochs_run",
    "train_peak_rss_mb": "train_peak_rss_mb",
}
VALIDATION_FIELDS = {
    "candidate_lines": "candidate_lines",
    "parsed": "parsed",
    "valid": "valid",
    "status": "validation_status",
}


_FAIR_REP = re.compile(r"^r(\d+)\.csv$")


def load_fairness(paths: list[Path]) -> pd.DataFrame:
    """Read per-cell fairness CSVs (``fairness/{dataset}/{model}/{prompt}/r{rep}.csv``).

    One row per cell x grouping x group: ``KEY`` + the per-group columns the evaluate step
    writes (:data:`synllm.metrics.fairness.GROUP_COLUMNS`). The cell identity comes from the
    path (the CSV's own ``dataset/model/prompt/rep`` columns must agree when filled). A
    header-only or zero-byte file (a cell whose fairness could not be computed) contributes no
    rows; a missing file or a file without the columns is an error naming it.
    """
    from synllm.metrics.fairness import GROUP_COLUMNS as FAIRNESS_COLUMNS

    frames = []
    for p in paths:
        p = Path(p)
        if not p.is_file():
            raise SynllmError(f"fairness file not found: {p}")
        m = _FAIR_REP.match(p.name)
        if not m or len(p.parts) < 4:
            raise SynllmError(
                f"cannot read the cell identity from path {p} "
                "(expected .../{dataset}/{model}/{prompt}/r{rep}.csv)"
            )
        ident = {
            "dataset": p.parts[-4],
            "model": p.parts[-3],
            "prompt": p.parts[-2],
            "rep": int(m.group(1)),
        }
        try:
            df = pd.read_csv(p, keep_default_na=True)
        except pd.errors.EmptyDataError:
            continue
        missing = [c for c in FAIRNESS_COLUMNS if c not in df.columns]
        if missing:
            raise SynllmError(f"fairness file {p}: missing column(s) {missing}")
        for k, v in ident.items():
            if k in df.columns and df[k].notna().any() and not (df[k].astype(str) == str(v)).all():
                raise SynllmError(
                    f"fairness file {p}: column '{k}' disagrees with the path ({v!r})"
                )
        frames.append(df[FAIRNESS_COLUMNS].assign(**ident))
    if not frames:
        return pd.DataFrame(columns=KEY + FAIRNESS_COLUMNS)
    out = pd.concat(frames, ignore_index=True)[KEY + FAIRNESS_COLUMNS]
    out["group"] = out["group"].astype(str)
    return out
