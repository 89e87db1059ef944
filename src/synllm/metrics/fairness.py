"""Per-group fidelity and utility (fairness), after Lin et al.

For each demographic grouping — the card's ``group_columns`` plus an age band for datasets
with an ``age``/``Age`` column (<40, 40-60, >=60 years; cirrhosis ``Age`` is in days and is
converted with 365.25 days/year) — and each group g:

- ``kl_mean``: mean over features (the grouping column itself excluded) of
  KL(real_g || synthetic_g), real_g = the real rows of group g, synthetic_g = the synthetic
  rows of g. Categorical/binary features use category frequencies (missing is a category);
  numeric features use 10 bins at the real column's (whole-table) deciles, plus a missing bin.
  Counts are smoothed with ``alpha`` (0.5) per bin before normalising; nats; 0 for identical
  tables; lower is better.
- ``auc``: ROC AUC on the real holdout rows of group g of an XGBoost classifier trained on the
  whole synthetic table (train-on-synthetic, test-on-real); multiclass targets use the macro
  one-vs-rest AUC over the classes present in the group. NaN (with a reason) when the group
  has a single class or the synthetic table has a single target class.

:func:`fairness_table` returns a tidy frame, one row per (grouping, group, metric):
``grouping, group, metric, value, direction, n_real, n_synthetic, reason, worst_feature,
worst_feature_kl`` (``n_real`` counts the reference rows of the group for ``kl_mean`` and the
holdout rows for ``auc``; ``worst_feature`` is the feature with the largest KL in the group).
Groups with fewer than ``min_group_rows`` real rows are left out; a group with fewer than
``min_synthetic_rows`` synthetic rows gets NaN with the reason. The gap between the best and
worst group of a metric (:func:`fairness_gaps`) is the disparity.
Smoothed histogram KL is biased upwards for small groups (cirrhosis men: 36 train rows), so
compare generators at equal ``n_synthetic``, not groups of very different sizes.

The evaluate step (``synllm evaluate --out-fairness CSV``) calls :func:`evaluate_fairness`:
it writes :func:`cell_frame` (one row per grouping and group, see ``docs/architecture.md``)
and adds the summary metrics of :data:`METRICS` (family ``fairness``, no score group) to the
cell's metrics JSON.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import entropy
from sklearn.metrics import roc_auc_score

from synllm.cards import DatasetCard
from synllm.errors import DataError
from synllm.metrics.base import Metric, Result, once

AGE_BANDS = ("<40", "40-60", ">=60")
DAYS_PER_YEAR = 365.25
_MISSING = "\x00missing"


# -- groupings ---------------------------------------------------------------------------


def age_column(card: DatasetCard) -> str | None:
    """The card's age column (``age`` or ``Age``), or None."""
    for name in ("age", "Age"):
        if name in card.columns and card.columns[name].is_numeric:
            return name
    return None


def age_band(card: DatasetCard, df: pd.DataFrame) -> pd.Series:
    """Age band label per row (<40, 40-60, >=60 years; NaN when age is missing).

    Ages with unit ``days`` are converted to years first (divided by 365.25).
    """
    col = age_column(card)
    if col is None:
        raise DataError(f"dataset {card.name!r}: no age/Age column for age bands")
    years = df[col].astype("float64")
    if (card.columns[col].unit or "").lower() == "days":
        years = years / DAYS_PER_YEAR
    out = pd.Series(
        np.where(years < 40, AGE_BANDS[0], np.where(years < 60, AGE_BANDS[1], AGE_BANDS[2])),
        index=df.index,
        dtype=object,
    )
    return out.where(years.notna(), np.nan)


def groupings(card: DatasetCard, df: pd.DataFrame) -> dict[str, pd.Series]:
    """Grouping name -> group label per row of ``df`` (``group_columns`` + ``age_band``)."""
    out = {g: df[g].map(lambda v: str(v) if pd.notna(v) else np.nan) for g in card.group_columns}
    if age_column(card) is not None:
        out["age_band"] = age_band(card, df)
    return out


def group_sort_key(group) -> tuple:
    """Age bands in age order, every other group label alphabetically."""
    g = str(group)
    return (0, AGE_BANDS.index(g), "") if g in AGE_BANDS else (1, 0, g)


# -- KL divergence -----------------------------------------------------------------------


def feature_bins(card: DatasetCard, real: pd.DataFrame, n_bins: int = 10) -> dict[str, np.ndarray]:
    """Inner bin edges per numeric feature: the real column's quantiles (unique, sorted)."""
    edges = {}
    for name in card.numeric_columns:
        v = real[name].dropna().astype("float64")
        qs = np.quantile(v, np.linspace(0, 1, n_bins + 1)[1:-1]) if len(v) else np.array([])
        edges[name] = np.unique(qs)
    return edges


def discretise(s: pd.Series, card: DatasetCard, edges: dict[str, np.ndarray]) -> pd.Series:
    """Bin label per value: category string, numeric bin index, or the missing label."""
    name = s.name
    if card.columns[name].is_numeric:
        idx = np.searchsorted(edges[name], s.astype("float64").to_numpy(), side="right")
        lab = pd.Series(idx.astype(str), index=s.index, dtype=object)
    else:
        lab = s.astype(object).map(str)
    return lab.where(s.notna(), _MISSING)


def kl_divergence(p_labels: pd.Series, q_labels: pd.Series, alpha: float = 0.5) -> float:
    """KL(P || Q) in nats between the label distributions, ``alpha`` added to every count.

    The support is the union of labels of both series; 0 when the counts are identical.
    """
    return kl_of_counts(p_labels.value_counts(), q_labels.value_counts(), alpha)


def kl_of_counts(p_counts: pd.Series, q_counts: pd.Series, alpha: float = 0.5) -> float:
    """:func:`kl_divergence` from the two series' ``value_counts()`` (label -> count)."""
    support = sorted(set(p_counts.index) | set(q_counts.index))
    p = p_counts.reindex(support, fill_value=0).to_numpy(float) + alpha
    q = q_counts.reindex(support, fill_value=0).to_numpy(float) + alpha
    return float(entropy(p / p.sum(), q / q.sum()))


def group_kl(
    card: DatasetCard,
    real: pd.DataFrame,
    synth: pd.DataFrame,
    real_groups: pd.Series,
    synth_groups: pd.Series,
    group,
    exclude: tuple[str, ...] = (),
    alpha: float = 0.5,
    edges: dict[str, np.ndarray] | None = None,
    memo: dict | None = None,
) -> dict[str, float]:
    """Per-feature KL(real_g || synth_g) for group ``group`` (features in ``exclude`` skipped).

    ``memo``: a dict kept for one ``real``, ``real_groups`` and ``edges`` by a caller that
    scores several synthetic tables against them; the real group's counts are computed once."""
    edges = feature_bins(card, real) if edges is None else edges
    s = synth[synth_groups == group]
    r = None
    out = {}
    for name in card.feature_names:
        if name in exclude:
            continue

        def real_counts(name=name):
            nonlocal r
            r = real[real_groups == group] if r is None else r
            return discretise(r[name], card, edges).value_counts()

        out[name] = kl_of_counts(
            once(memo, (group, name), real_counts),
            discretise(s[name], card, edges).value_counts(),
            alpha,
        )
    return out


# -- utility -----------------------------------------------------------------------------


def design_matrix(df: pd.DataFrame, card: DatasetCard) -> pd.DataFrame:
    """Features (all card columns but the target) as floats: numerics as is (NaN kept),
    categoricals one-hot over the card's categories (fixed column set)."""
    cols = {}
    for name, spec in card.columns.items():
        if name == card.target:
            continue
        if spec.type == "categorical":
            s = df[name].astype(object)
            for cat in spec.categories or []:
                cols[f"{name}={cat}"] = (s == cat).astype(float).to_numpy()
        else:
            cols[name] = df[name].astype("float64").to_numpy()
    return pd.DataFrame(cols, index=df.index)


def target_codes(df: pd.DataFrame, card: DatasetCard) -> tuple[np.ndarray, list]:
    """Target as integer codes over the sorted classes of the card (NaN -> -1)."""
    spec = card.columns[card.target]
    classes = list(spec.categories) if spec.type == "categorical" else [0, 1]
    vals = df[card.target].astype(object)
    lookup = {str(c): i for i, c in enumerate(classes)}
    codes = np.array([lookup.get(str(v), -1) if pd.notna(v) else -1 for v in vals])
    return codes, classes


def fit_classifier(synth: pd.DataFrame, card: DatasetCard, seed: int):
    """XGBoost classifier trained on the synthetic table; returns (model, classes present)."""
    from xgboost import XGBClassifier

    y, _ = target_codes(synth, card)
    keep = y >= 0
    X = design_matrix(synth, card)[keep]
    y = y[keep]
    present = np.unique(y)
    if len(present) < 2:
        return None, present
    remap = {c: i for i, c in enumerate(present)}
    model = XGBClassifier(
        n_estimators=100,
        max_depth=4,
        learning_rate=0.1,
        random_state=seed,
        n_jobs=1,
        eval_metric="logloss",
        tree_method="hist",
    )
    model.fit(X, np.array([remap[c] for c in y]))
    return model, present


def macro_auc(
    y_true: np.ndarray, proba: np.ndarray, present: np.ndarray
) -> tuple[float, str | None]:
    """ROC AUC (binary) or macro one-vs-rest AUC over classes with both outcomes in y_true.

    ``proba`` columns follow ``present`` (the classes the model saw); classes of y_true the
    model never saw score 0 probability.
    """
    classes = np.unique(y_true)
    if len(classes) < 2:
        return float("nan"), "single target class in this group's holdout rows"
    if len(classes) == 2:
        return float(roc_auc_score(y_true == classes[1], _score(proba, present, classes[1]))), None
    aucs = [roc_auc_score(y_true == c, _score(proba, present, c)) for c in classes]
    return float(np.mean(aucs)), None


def _score(proba: np.ndarray, present: np.ndarray, c) -> np.ndarray:
    if c in present:
        return proba[:, int(np.where(present == c)[0][0])]
    return np.zeros(len(proba))


# -- the table ---------------------------------------------------------------------------


def fairness_table(
    card: DatasetCard,
    real: pd.DataFrame,
    synth: pd.DataFrame,
    holdout: pd.DataFrame | None = None,
    seed: int = 0,
    alpha: float = 0.5,
    min_group_rows: int = 5,
    min_synthetic_rows: int = 1,
    memo: dict | None = None,
) -> pd.DataFrame:
    """Tidy per-group fairness table (see module doc).

    ``real`` is the reference for KL (usually the train split, or holdout); ``holdout`` the
    real test rows for utility (utility rows are omitted when it is None). Groups come from
    the real table; groups with fewer than ``min_group_rows`` real rows are skipped; groups
    with fewer than ``min_synthetic_rows`` synthetic rows get KL NaN with the reason.
    ``memo``: a dict kept for one ``real``, ``holdout`` and card by a caller that scores
    several synthetic tables against them (the evaluate job); their side (bin edges, groups,
    per-group counts, the holdout's design matrix and codes) is computed once into it, with
    the values of a call without it.
    """
    missing = [c for c in card.feature_names if c not in synth.columns]
    if missing:
        raise DataError(f"synthetic table lacks column(s) {missing}")
    edges = once(memo, "edges", lambda: feature_bins(card, real))
    g_real = once(memo, "groupings", lambda: groupings(card, real))
    g_synth = groupings(card, synth)
    g_hold = None
    model, present = (None, np.array([]))
    if holdout is not None:
        g_hold = once(memo, "holdout groupings", lambda: groupings(card, holdout))
        model, present = fit_classifier(synth, card, seed)
        y_hold, _ = once(memo, "holdout codes", lambda: target_codes(holdout, card))
        X_hold = once(memo, "holdout design", lambda: design_matrix(holdout, card))
        proba_hold = model.predict_proba(X_hold) if model is not None else None
    rows = []
    for grouping, labels in g_real.items():
        exclude = (grouping,) if grouping in card.columns else (age_column(card),)
        counts = once(memo, ("group counts", grouping), labels.value_counts)
        kl_memo = None if memo is None else memo.setdefault(("kl", grouping), {})
        for group in sorted(counts.index, key=group_sort_key):
            n_real = int(counts[group])
            if n_real < min_group_rows:
                continue
            n_syn = int((g_synth[grouping] == group).sum())
            base = dict(grouping=grouping, group=str(group), n_real=n_real, n_synthetic=n_syn)
            if n_syn == 0:
                rows.append(
                    {
                        **base,
                        "metric": "kl_mean",
                        "value": np.nan,
                        "direction": "lower",
                        "reason": "no synthetic rows in this group",
                    }
                )
            elif n_syn < min_synthetic_rows:
                rows.append(
                    {
                        **base,
                        "metric": "kl_mean",
                        "value": np.nan,
                        "direction": "lower",
                        "reason": f"only {n_syn} synthetic row(s) in this group (< {min_synthetic_rows})",
                    }
                )
            else:
                kl = group_kl(
                    card,
                    real,
                    synth,
                    labels,
                    g_synth[grouping],
                    group,
                    exclude,
                    alpha,
                    edges,
                    kl_memo,
                )
                worst = max(kl, key=kl.get) if kl else None
                rows.append(
                    {
                        **base,
                        "metric": "kl_mean",
                        "value": float(np.mean(list(kl.values()))),
                        "direction": "lower",
                        "reason": None,
                        "worst_feature": worst,
                        "worst_feature_kl": kl[worst] if worst else np.nan,
                    }
                )
            if holdout is None:
                continue
            mask = (g_hold[grouping] == group).to_numpy() & (y_hold >= 0)
            hbase = {**base, "n_real": int(mask.sum()), "metric": "auc", "direction": "higher"}
            if model is None:
                why = (
                    "synthetic table has a single target class"
                    if len(present) == 1
                    else "synthetic table has no rows with a target value"
                )
                rows.append({**hbase, "value": np.nan, "reason": why})
            elif mask.sum() == 0:
                rows.append({**hbase, "value": np.nan, "reason": "no holdout rows in this group"})
            else:
                auc, reason = macro_auc(y_hold[mask], proba_hold[mask], present)
                rows.append({**hbase, "value": auc, "reason": reason})
    cols = [
        "grouping",
        "group",
        "metric",
        "value",
        "direction",
        "n_real",
        "n_synthetic",
        "reason",
        "worst_feature",
        "worst_feature_kl",
    ]
    return pd.DataFrame(rows, columns=cols)


def fairness_gaps(table: pd.DataFrame) -> pd.DataFrame:
    """Disparity per (grouping, metric): max - min of ``value`` over groups (NaN skipped;
    a grouping with fewer than two groups with a value has no gap and no row)."""
    g = table.dropna(subset=["value"]).groupby(["grouping", "metric"])["value"]
    out = g.agg(["max", "min", "count"]).reset_index()
    out = out[out["count"] >= 2]
    return out.assign(gap=(out["max"] - out["min"]).astype(float))[
        ["grouping", "metric", "gap"]
    ].reset_index(drop=True)


# -- the evaluate step: per-cell table and summary metrics --------------------------------

MIN_GROUP_ROWS = 5
"""Real (train) rows a group needs to be reported, and synthetic rows it needs for a KL."""

METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "fairness_kl_gap",
            "fairness",
            None,
            "lower",
            (0, None),
            "Largest gap (max - min over the groups of one grouping) of the per-group mean feature KL",
        ),
        Metric(
            "fairness_kl_max",
            "fairness",
            None,
            "lower",
            (0, None),
            "Mean feature KL of the worst-served demographic group",
        ),
        Metric(
            "fairness_auc_gap",
            "fairness",
            None,
            "lower",
            (0, 1),
            "Largest gap (max - min over the groups of one grouping) of the per-group TSTR ROC AUC",
        ),
        Metric(
            "fairness_auc_min",
            "fairness",
            None,
            "higher",
            (0, 1),
            "TSTR ROC AUC on the real holdout rows of the worst-served demographic group",
        ),
    )
}
"""Summary metrics of the evaluate step (family ``fairness``, not part of Quality/Privacy).

Declared here rather than in :mod:`synllm.metrics` so that they only appear in a metrics JSON
when the evaluate step was asked for fairness (``--out-fairness``)."""

GROUP_COLUMNS = [
    "group_by",
    "group",
    "n_real",
    "n_synthetic",
    "kl_mean",
    "worst_feature",
    "worst_feature_kl",
    "kl_reason",
    "n_holdout",
    "auc",
    "auc_reason",
]
"""The per-group columns of the fairness CSV (and of ``aggregate.load.load_fairness``)."""
CSV_COLUMNS = ["dataset", "model", "prompt", "rep"] + GROUP_COLUMNS


def cell_frame(table: pd.DataFrame, cell: dict | None = None) -> pd.DataFrame:
    """The per-cell fairness CSV: one row per (grouping, group) from a :func:`fairness_table`.

    ``cell`` gives ``dataset, model, prompt, rep`` (repeated on every row).
    """
    cell = cell or {}
    rows = []
    for (grouping, group), sub in table.groupby(["grouping", "group"], sort=False):
        kl = sub[sub["metric"] == "kl_mean"]
        auc = sub[sub["metric"] == "auc"]
        row = {k: cell.get(k) for k in ("dataset", "model", "prompt", "rep")}
        row.update(
            group_by=grouping,
            group=group,
            n_real=int(sub["n_real"].iloc[0]),
            n_synthetic=int(sub["n_synthetic"].iloc[0]),
        )
        if len(kl):
            k = kl.iloc[0]
            row.update(
                n_real=int(k["n_real"]),
                kl_mean=k["value"],
                worst_feature=k["worst_feature"],
                worst_feature_kl=k["worst_feature_kl"],
                kl_reason=k["reason"],
            )
        if len(auc):
            a = auc.iloc[0]
            row.update(n_holdout=int(a["n_real"]), auc=a["value"], auc_reason=a["reason"])
        rows.append(row)
    return pd.DataFrame(rows, columns=CSV_COLUMNS)


def _result(
    name: str, value: float | None, reason: str | None = None, note: str | None = None
) -> Result:
    m = METRICS[name]
    if value is None or not np.isfinite(value):
        return Result(m, None, "failed", reason or f"value is {value}", note)
    return Result(m, float(value), "ok", None, note)


def summary_results(frame: pd.DataFrame, reason: str | None = None) -> list[Result]:
    """The :data:`METRICS` of one cell from its :func:`cell_frame` (``reason``: all failed).

    Gaps need at least two groups of one grouping with a value; the worst group needs one.
    The note names the grouping / group the value comes from.
    """
    if reason is not None:
        return [_result(n, None, reason) for n in METRICS]
    out = []
    for col, gap_name, worst_name, worst_is_max in (
        ("kl_mean", "fairness_kl_gap", "fairness_kl_max", True),
        ("auc", "fairness_auc_gap", "fairness_auc_min", False),
    ):
        ok = frame.dropna(subset=[col])
        why_col = "kl_reason" if col == "kl_mean" else "auc_reason"
        whys = sorted({str(r) for r in frame[why_col].dropna()})
        why = f" ({'; '.join(whys)})" if whys else ""
        if ok.empty:
            reason = f"no demographic group has a {col} value{why}"
            out += [_result(gap_name, None, reason), _result(worst_name, None, reason)]
            continue
        gaps = {
            g: float(s[col].max() - s[col].min()) for g, s in ok.groupby("group_by") if len(s) >= 2
        }
        if gaps:
            g = max(gaps, key=gaps.get)
            sub = ok[ok["group_by"] == g]
            hi, lo = sub.loc[sub[col].idxmax(), "group"], sub.loc[sub[col].idxmin(), "group"]
            note = f"{g}: {hi} vs {lo}" if gaps[g] > 0 else f"{g}: every group has the same {col}"
            out.append(_result(gap_name, gaps[g], note=note))
        else:
            out.append(
                _result(
                    gap_name, None, f"fewer than 2 groups of any grouping have a {col} value{why}"
                )
            )
        i = ok[col].idxmax() if worst_is_max else ok[col].idxmin()
        out.append(
            _result(
                worst_name, ok.loc[i, col], note=f"{ok.loc[i, 'group_by']}={ok.loc[i, 'group']}"
            )
        )
    order = list(METRICS)
    return sorted(out, key=lambda r: order.index(r.metric.name))


def evaluate_fairness(
    card: DatasetCard,
    synth: pd.DataFrame,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    seed: int,
    cell: dict | None = None,
    min_rows: int = MIN_GROUP_ROWS,
    memo: dict | None = None,
) -> tuple[list[Result], pd.DataFrame, dict]:
    """Fairness of one cell: (summary results, :func:`cell_frame`, detail dict).

    KL against the train split (the rows the generator learnt from), AUC on the holdout.
    Never raises on data: an empty or one-class synthetic table gives NaN rows with reasons
    and failed summary metrics; an unexpected error becomes the failure reason of every
    summary metric and an empty frame. ``memo``: as in :func:`fairness_table`.
    """
    try:
        table = fairness_table(
            card,
            train,
            synth,
            holdout,
            seed=seed,
            min_group_rows=min_rows,
            min_synthetic_rows=min_rows,
            memo=memo,
        )
    except Exception as err:  # noqa: BLE001 - recorded as the failure reason
        reason = f"{type(err).__name__}: {' '.join(str(err).split())}"
        return (
            summary_results(pd.DataFrame(columns=CSV_COLUMNS), reason),
            pd.DataFrame(columns=CSV_COLUMNS),
            {"reason": reason},
        )
    frame = cell_frame(table, cell)
    reason = "synthetic table has no rows" if len(synth) == 0 else None
    results = summary_results(frame, reason)
    detail = {
        "groupings": sorted(frame["group_by"].unique().tolist()),
        "n_groups": int(len(frame)),
        "min_rows": int(min_rows),
        "gaps": {
            f"{r.grouping}.{r.metric}": r.gap for r in fairness_gaps(table).itertuples(index=False)
        },
    }
    return results, frame, detail
