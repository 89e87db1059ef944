"""Uncertainty of the cell scores: bootstrap replicates -> percentile intervals.

Every metrics JSON may carry a ``bootstrap`` block (:mod:`synllm.metrics.bootstrap`): ``B``
replicate values per metric, each computed on the cell's synthetic records resampled with
replacement. Replicate ``b`` of the run is every cell's replicate ``b``; it is scored exactly
like the point estimate (:func:`synllm.aggregate.scores.normalise` with the run's
normalisation, pooled per dataset, metric and replicate under ``run``; the point estimates'
anchors under ``anchored``), so Quality, Privacy and Harmonic carry the uncertainty of the
normalisation too. A metric without replicates (see ``fixed`` in the block) enters every
replicate at its point value. TSTR AUC is the raw mean over the utility classifiers, read
through :func:`synllm.aggregate.scores.parse_utility_key` like Table V.

Interval of a cell (one repeat), :func:`cell_intervals`: with ``B >= 100`` replicates the
2.5 % and 97.5 % percentiles of its replicate scores (``numpy.percentile``, linear); with fewer
(the default 20, sized for the default grid's time budget) the percentile ends of so few values sit
near their extremes and under-cover, so the interval is the point score ± ``t_{0.975, B-1}``
times the replicates' standard deviation, clipped to [0, 1]. With several repeats, tables keep
the t-interval over repeats (:func:`synllm.aggregate.scores.mean_ci`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from synllm.aggregate.load import KEY
from synllm.aggregate.scores import harmonic, normalise, parse_utility_key

INTERVAL_SCORES = ("quality", "privacy", "harmonic", "tstr_auc")
LEVEL = 0.95


def replicate_long(raw: list[dict]) -> pd.DataFrame:
    """``KEY, replicate, name, value`` from the ``bootstrap`` blocks of ok cells."""
    rows = []
    for data in raw:
        block = data.get("bootstrap") or {}
        if data.get("status") != "ok" or not isinstance(block, dict) or not block.get("B"):
            continue
        key = (str(data["dataset"]), str(data["model"]), str(data["prompt"]), int(data["rep"]))
        for name, vals in (block.get("values") or {}).items():
            for b, v in enumerate(vals):
                ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                rows.append((*key, b, str(name), float(v) if ok else math.nan))
    return pd.DataFrame(rows, columns=KEY + ["replicate", "name", "value"])


def replicate_metrics(metrics: pd.DataFrame, reps: pd.DataFrame) -> pd.DataFrame:
    """The run's metrics frame once per replicate (``replicate`` column added).

    Cells with replicates take their replicate values; their other metrics and every metric
    of cells without a bootstrap block keep the point value (failed values stay NaN).
    """
    if reps.empty or metrics.empty:
        return metrics.assign(replicate=pd.Series(dtype=int)).iloc[0:0]
    b = np.sort(reps["replicate"].unique())
    frame = metrics.merge(pd.DataFrame({"replicate": b}), how="cross")
    frame = frame.merge(
        reps.rename(columns={"value": "rep_value"}),
        on=KEY + ["replicate", "name"],
        how="left",
        indicator=True,
    )
    has = (frame.pop("_merge") == "both") & frame["value"].notna()
    frame["value"] = np.where(has, frame["rep_value"], frame["value"])
    return frame.drop(columns="rep_value")


def _tstr_auc(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per ``keys``: mean TSTR ROC-AUC over the classifiers (an averaged entry when none)."""
    parsed = {n: parse_utility_key(n) for n in frame["name"].unique()}
    tstr = {n for n, p in parsed.items() if p and p[0] == "tstr" and p[2] == "auc"}
    sub = frame[frame["name"].isin(tstr) & frame["value"].notna()]
    if sub.empty:
        return pd.DataFrame(columns=keys + ["tstr_auc"])
    per_clf = sub["name"].map(lambda n: parsed[n][1] != "all")
    have = sub[per_clf].groupby(keys)["value"].mean()
    avg = sub[~per_clf].groupby(keys)["value"].mean()
    out = pd.concat([have, avg[~avg.index.isin(have.index)]])
    return out.rename("tstr_auc").reset_index()


def scores_from(norm: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Quality, Privacy, Harmonic and TSTR AUC per ``keys`` from a normalised frame."""
    parts = []
    for group in ("quality", "privacy"):
        g = norm[norm["score_group"] == group].groupby(keys)["norm"].mean().rename(group)
        parts.append(g)
    out = (
        pd.concat(parts, axis=1).reset_index()
        if any(len(p) for p in parts)
        else pd.DataFrame(columns=keys + ["quality", "privacy"])
    )
    out["harmonic"] = harmonic(out["quality"], out["privacy"])
    return out.merge(_tstr_auc(norm, keys), on=keys, how="left")


def replicate_scores(
    metrics: pd.DataFrame,
    reps: pd.DataFrame,
    cells: pd.DataFrame,
    mode: str = "run",
) -> pd.DataFrame:
    """``KEY, replicate, quality, privacy, harmonic, tstr_auc`` for the cells with replicates.

    ``metrics``: the run's point metrics (long frame of :func:`load_metrics`); ``cells``: its
    cell frame (failed cells get no replicate scores).
    """
    cols = KEY + ["replicate", *INTERVAL_SCORES]
    frame = replicate_metrics(metrics, reps)
    if frame.empty:
        return pd.DataFrame(columns=cols)
    anchors = None
    if mode == "anchored":
        from synllm.aggregate.scores import anchor_table

        anchors = anchor_table(metrics)
    norm = normalise(frame, mode, anchors=anchors, by=("replicate",))
    with_reps = reps[KEY].drop_duplicates()
    ok = cells.loc[cells["status"] == "ok", KEY]
    keep = with_reps.merge(ok, on=KEY)
    norm = norm.merge(keep, on=KEY)
    out = scores_from(norm, KEY + ["replicate"])
    return out.reindex(columns=cols)


PERCENTILE_MIN_B = 100
"""From this many replicates on, intervals are percentile ends; below, the t interval."""


def cell_intervals(
    rep_scores: pd.DataFrame, point: pd.DataFrame | None = None, level: float = LEVEL
) -> pd.DataFrame:
    """``KEY, n_boot, boot_method`` + ``<score>_low`` / ``<score>_high`` per cell.

    ``B >= PERCENTILE_MIN_B`` replicates: the percentile ends (``percentile``). Fewer: percentile
    ends of so few values are close to their minimum and maximum and cover less than the
    nominal level, so the interval is ``point ± t_{(1+level)/2, B-1} * sd(replicates)`` (``t``),
    clipped to [0, 1]; it needs ``point`` (``KEY`` + the scores; without it, percentiles).
    """
    cols = (
        KEY
        + ["n_boot", "boot_method"]
        + [f"{s}_{e}" for s in INTERVAL_SCORES for e in ("low", "high")]
    )
    if rep_scores.empty:
        return pd.DataFrame(columns=cols)
    q = [100 * (1 - level) / 2, 100 * (1 + level) / 2]
    centre = point.set_index(KEY) if point is not None and len(point) else None
    rows = []
    for key, g in rep_scores.groupby(KEY, sort=False):
        row = dict(zip(KEY, key))
        b = int(g["replicate"].nunique())
        use_t = b < PERCENTILE_MIN_B and centre is not None and key in centre.index
        row["n_boot"], row["boot_method"] = b, "t" if use_t else "percentile"
        for s in INTERVAL_SCORES:
            v = g[s].to_numpy(dtype=float)
            v = v[np.isfinite(v)]
            lo = hi = math.nan
            if len(v) >= 2 and use_t:
                c = float(centre.loc[key, s]) if s in centre.columns else math.nan
                if np.isfinite(c):
                    half = stats.t.ppf((1 + level) / 2, len(v) - 1) * v.std(ddof=1)
                    lo, hi = max(0.0, c - half), min(1.0, c + half)
            elif len(v) >= 2:
                lo, hi = np.percentile(v, q)
            row[f"{s}_low"], row[f"{s}_high"] = float(lo), float(hi)
        rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def summary_intervals(
    summary: pd.DataFrame, cell: pd.DataFrame, intervals: pd.DataFrame, tstr: pd.DataFrame
) -> pd.DataFrame:
    """Add ``tstr_auc_mean/_ci95`` and ``<score>_low/_high/_interval`` to the summary.

    ``cell``: per-repeat cell scores; ``tstr``: ``KEY, tstr_auc`` point values. With several
    repeats the ends are mean ± the t half-width (``interval = repeats``); with one, the
    bootstrap percentiles of that repeat (``bootstrap``); otherwise NaN (``""``).
    """
    from synllm.aggregate.scores import mean_ci

    out = summary.copy()
    t = (
        cell[KEY].merge(tstr, on=KEY, how="left")
        if len(tstr)
        else cell[KEY].assign(tstr_auc=np.nan)
    )
    t = t.merge(cell[KEY + ["status"]], on=KEY)
    t.loc[t["status"] != "ok", "tstr_auc"] = np.nan
    boot = intervals.set_index(KEY) if len(intervals) else None
    add = []
    for r in out.itertuples(index=False):
        sub = t[(t["dataset"] == r.dataset) & (t["model"] == r.model) & (t["prompt"] == r.prompt)]
        mean, half, _ = mean_ci(sub["tstr_auc"].to_numpy())
        row = {"tstr_auc_mean": mean, "tstr_auc_ci95": half}
        for s in INTERVAL_SCORES:
            m = mean if s == "tstr_auc" else getattr(r, f"{s}_mean")
            h = half if s == "tstr_auc" else getattr(r, f"{s}_ci95")
            lo = hi = math.nan
            kind = ""
            if r.n_reps > 1 and np.isfinite(h):
                lo, hi, kind = m - h, m + h, "repeats"
            elif r.n_reps == 1 and boot is not None and np.isfinite(m):
                rep = int(sub["rep"].iloc[0]) if len(sub) else 1
                k = (r.dataset, r.model, r.prompt, rep)
                if k in boot.index and np.isfinite(boot.loc[k, f"{s}_low"]):
                    lo, hi, kind = boot.loc[k, f"{s}_low"], boot.loc[k, f"{s}_high"], "bootstrap"
            row[f"{s}_low"], row[f"{s}_high"], row[f"{s}_interval"] = lo, hi, kind
        add.append(row)
    cols = ["tstr_auc_mean", "tstr_auc_ci95"] + [
        f"{s}_{e}" for s in INTERVAL_SCORES for e in ("low", "high", "interval")
    ]
    return pd.concat([out.reset_index(drop=True), pd.DataFrame(add, columns=cols)], axis=1)


def bracket(value: float, low: float, high: float, digits: int = 2) -> str:
    """``0.62 [0.55, 0.70]``; no interval -> the value alone; NaN -> empty."""
    if value is None or not np.isfinite(value):
        return ""
    s = f"{value:.{digits}f}"
    if np.isfinite(low) and np.isfinite(high):
        s += f" [{low:.{digits}f}, {high:.{digits}f}]"
    return s


def half_width(low: float, high: float) -> float:
    """Half the interval's width, what Markdown / LaTeX print after ±."""
    return (high - low) / 2 if np.isfinite(low) and np.isfinite(high) else math.nan
