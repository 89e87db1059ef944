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
``grouping, group, metric, value, direction, n_real, n_synthetic, reason`` (``n_real`` counts
the reference rows of the group for ``kl_mean`` and the holdout rows for ``auc``). The gap
between the best and worst group of a metric (:func:`fairness_gaps`) is the disparity.
Smoothed histogram KL is biased upwards for small groups (cirrhosis men: 36 train rows), so
compare generators at equal ``n_synthetic``, not groups of very different sizes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import entropy
from sklearn.metrics import roc_auc_score

from synllm.cards import DatasetCard
from synllm.errors import DataError

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
    out = pd.Series(np.where(years < 40, AGE_BANDS[0], np.where(years < 60, AGE_BANDS[1], AGE_BANDS[2])),
                    index=df.index, dtype=object)
    return out.where(years.notna(), np.nan)


def groupings(card: DatasetCard, df: pd.DataFrame) -> dict[str, pd.Series]:
    """Grouping name -> group label per row of ``df`` (``group_columns`` + ``age_band``)."""
    out = {g: df[g].map(lambda v: str(v) if pd.notna(v) else np.nan) for g in card.group_columns}
    if age_column(card) is not None:
        out["age_band"] = age_band(card, df)
    return out


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
    support = sorted(set(p_labels) | set(q_labels))
    p = p_labels.value_counts().reindex(support, fill_value=0).to_numpy(float) + alpha
    q = q_labels.value_counts().reindex(support, fill_value=0).to_numpy(float) + alpha
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
) -> dict[str, float]:
    """Per-feature KL(real_g || synth_g) for group ``group`` (features in ``exclude`` skipped)."""
    edges = feature_bins(card, real) if edges is None else edges
    r, s = real[real_groups == group], synth[synth_groups == group]
    out = {}
    for name in card.feature_names:
        if name in exclude:
            continue
        out[name] = kl_divergence(discretise(r[name], card, edges), discretise(s[name], card, edges), alpha)
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
        n_estimators=100, max_depth=4, learning_rate=0.1, random_state=seed, n_jobs=1,
        eval_metric="logloss", tree_method="hist",
    )
    model.fit(X, np.array([remap[c] for c in y]))
    return model, present


def macro_auc(y_true: np.ndarray, proba: np.ndarray, present: np.ndarray) -> tuple[float, str | None]:
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
) -> pd.DataFrame:
    """Tidy per-group fairness table (see module doc).

    ``real`` is the reference for KL (usually the train split, or holdout); ``holdout`` the
    real test rows for utility (utility rows are omitted when it is None). Groups come from
    the real table; groups with fewer than ``min_group_rows`` real rows are skipped.
    """
    missing = [c for c in card.feature_names if c not in synth.columns]
    if missing:
        raise DataError(f"synthetic table lacks column(s) {missing}")
    edges = feature_bins(card, real)
    g_real, g_synth = groupings(card, real), groupings(card, synth)
    g_hold = groupings(card, holdout) if holdout is not None else None
    model, present = (None, np.array([]))
    if holdout is not None:
        model, present = fit_classifier(synth, card, seed)
        y_hold, _ = target_codes(holdout, card)
        X_hold = design_matrix(holdout, card)
        proba_hold = model.predict_proba(X_hold) if model is not None else None
    rows = []
    for grouping, labels in g_real.items():
        exclude = (grouping,) if grouping in card.columns else (age_column(card),)
        counts = labels.value_counts()
        for group in sorted(counts.index, key=str):
            n_real = int(counts[group])
            if n_real < min_group_rows:
                continue
            n_syn = int((g_synth[grouping] == group).sum())
            base = dict(grouping=grouping, group=str(group), n_real=n_real, n_synthetic=n_syn)
            if n_syn == 0:
                rows.append({**base, "metric": "kl_mean", "value": np.nan, "direction": "lower",
                             "reason": "no synthetic rows in this group"})
            else:
                kl = group_kl(card, real, synth, labels, g_synth[grouping], group, exclude, alpha, edges)
                rows.append({**base, "metric": "kl_mean", "value": float(np.mean(list(kl.values()))),
                             "direction": "lower", "reason": None})
            if holdout is None:
                continue
            mask = (g_hold[grouping] == group).to_numpy() & (y_hold >= 0)
            hbase = {**base, "n_real": int(mask.sum()), "metric": "auc", "direction": "higher"}
            if model is None:
                rows.append({**hbase, "value": np.nan, "reason": "synthetic table has a single target class"})
            elif mask.sum() == 0:
                rows.append({**hbase, "value": np.nan, "reason": "no holdout rows in this group"})
            else:
                auc, reason = macro_auc(y_hold[mask], proba_hold[mask], present)
                rows.append({**hbase, "value": auc, "reason": reason})
    cols = ["grouping", "group", "metric", "value", "direction", "n_real", "n_synthetic", "reason"]
    return pd.DataFrame(rows, columns=cols)


def fairness_gaps(table: pd.DataFrame) -> pd.DataFrame:
    """Disparity per (grouping, metric): max - min of ``value`` over groups (NaN skipped)."""
    g = table.dropna(subset=["value"]).groupby(["grouping", "metric"])["value"]
    return g.agg(lambda v: float(v.max() - v.min())).rename("gap").reset_index()
