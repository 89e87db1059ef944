"""Fidelity: per-column distribution distances, mutual information with the target, and the
correlation structure of one synthetic table against the real train split.

Column kinds: ``int``/``float`` columns are *numeric*; ``categorical`` and ``binary`` columns
are *categorical* (binary 0/1 is a two-category distribution). Per column:

- numeric: Kolmogorov-Smirnov statistic (``scipy.stats.ks_2samp``); Wasserstein-1 distance
  divided by the real column's standard deviation (ddof=1), i.e. in units of real SDs;
  Anderson-Darling k-sample statistic (``scipy.stats.anderson_ksamp``, midrank variant; its
  p-value is interpolated from tables and floored/capped at 0.001/0.25, the warning about
  that is silenced and the p-value is reported as such); range coverage = length of
  [max(min_r, min_s), min(max_r, max_s)] over the real range length (0 when disjoint).
  Missing values are dropped for these four.
- categorical: chi-square goodness of fit (``scipy.stats.chisquare``) of the synthetic
  counts against expected counts ``n_syn * (c_real + 0.5) / (n_real + 0.5 K)`` over the K
  categories seen in either table (missing = its own category ``<NA>``); the +0.5 keeps the
  expected counts positive for categories the real train lacks. Category preservation =
  share of the categories present in real train that appear in the synthetic table.
- both: Jensen-Shannon divergence = ``scipy.spatial.distance.jensenshannon(p, q, base=2)**2``
  (the divergence, in [0, 1] bits; scipy returns its square root) and KL divergence
  ``sum p log(p/q)`` in nats with p = real, q = synthetic, both smoothed as
  ``(pmf + eps) / (1 + K eps)`` (``kl_epsilon``, default 1e-4). The pmfs are over categories
  (categorical) or over bins (numeric): ``bins`` (default 20) real-quantile bins (duplicate
  edges merged), plus an underflow and an overflow bin for synthetic values outside the real
  range, plus a missing bin; both tables use the real edges.
- mutual information with the target (``sklearn.metrics.mutual_info_score``, nats) on the
  discretised column (``mi_bins``, default 10 real-quantile bins; categories as is; missing =
  its own level), real and synthetic separately; the metric is ``|MI_real - MI_syn|``.
- column shape as sdmetrics defines it: ``KSComplement`` = 1 - KS (numeric) and
  ``TVComplement`` = 1 - total variation distance over non-missing categories (categorical).

Aggregates are plain means over the columns where the value is defined; columns where it is
not are named in the result's note. Correlation structure: Pearson matrices over the numeric
and binary columns (pairwise-complete), ``corr_frobenius = ||R - S||_F / sqrt(p (p - 1))``
(the root-mean-square difference of the off-diagonal coefficients, range [0, 2]); a synthetic
column that is constant has undefined correlations, which are taken as 0 and noted.
Selected pairs (``top_pairs`` strongest real pairs plus the card's correlation relations)
are reported with their real and synthetic rho. ``correlation_similarity_mean`` is sdmetrics'
``CorrelationSimilarity`` (Pearson), ``1 - |rho_r - rho_s| / 2``, averaged over pairs.

The three sdmetrics scores are computed here from the same arrays (the tests check them
against ``sdmetrics``): importing ``sdmetrics`` pulls in torch, ~3 s of CPU and several
hundred MB per evaluation job, for one-line formulas.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon
from sklearn.metrics import mutual_info_score
from sklearn.metrics.cluster import contingency_matrix

from synllm.cards import DatasetCard
from synllm.metrics.base import Result, declare, guarded, mean_of, once

NA_LABEL = "<NA>"

# -- declarations -----------------------------------------------------------------------
declare(
    "ks_mean",
    "fidelity",
    "quality",
    "lower",
    (0, 1),
    "Mean Kolmogorov-Smirnov statistic over numeric columns",
)
declare(
    "wasserstein_mean",
    "fidelity",
    "quality",
    "lower",
    (0, None),
    "Mean Wasserstein-1 distance over numeric columns, in real standard deviations",
)
declare(
    "jsd_mean",
    "fidelity",
    "quality",
    "lower",
    (0, 1),
    "Mean Jensen-Shannon divergence (base 2) over all columns (binned numerics)",
)
declare(
    "kl_mean",
    "fidelity",
    "quality",
    "lower",
    (0, None),
    "Mean smoothed KL divergence KL(real || synthetic), nats, over all columns",
)
declare(
    "ad_mean",
    "fidelity",
    "quality",
    "lower",
    (None, None),
    "Mean normalised Anderson-Darling k-sample statistic over numeric columns",
)
declare(
    "range_coverage_mean",
    "fidelity",
    "quality",
    "higher",
    (0, 1),
    "Mean share of the real range covered by the synthetic range, numeric columns",
)
declare(
    "chi2_pvalue_mean",
    "fidelity",
    "quality",
    "higher",
    (0, 1),
    "Mean chi-square goodness-of-fit p-value over categorical and binary columns",
)
declare(
    "chi2_stat_mean",
    "fidelity",
    None,
    "lower",
    (0, None),
    "Mean chi-square statistic over categorical and binary columns",
)
declare(
    "category_preservation_mean",
    "fidelity",
    "quality",
    "higher",
    (0, 1),
    "Mean share of real categories present in the synthetic table",
)
declare(
    "mi_diff_mean",
    "fidelity",
    "quality",
    "lower",
    (0, None),
    "Mean |MI(column; target) real - synthetic| over non-target columns, nats",
)
declare(
    "column_shape_mean",
    "fidelity",
    None,
    "higher",
    (0, 1),
    "Mean sdmetrics KSComplement (numeric) / TVComplement (categorical)",
)
declare(
    "corr_frobenius",
    "correlation",
    "quality",
    "lower",
    (0, 2),
    "Frobenius norm of the Pearson matrix difference / sqrt(p(p-1))",
)
declare(
    "correlation_similarity_mean",
    "correlation",
    None,
    "higher",
    (0, 1),
    "Mean sdmetrics CorrelationSimilarity (Pearson) over numeric/binary pairs",
)


# -- small pure helpers -----------------------------------------------------------------
def floats(s: pd.Series) -> np.ndarray:
    """A numeric column as a float64 array, missing (and unparsable) values NaN, shape (n,)."""
    return pd.to_numeric(s, errors="coerce").astype("float64").to_numpy()


def numeric_values(s: pd.Series) -> np.ndarray:
    """Non-missing values of a numeric column as a float64 array, shape (n,)."""
    x = floats(s)
    return x[~np.isnan(x)]


def labels(s: pd.Series) -> pd.Series:
    """Categorical/binary column as strings, missing -> ``<NA>``."""
    return s.astype("string").fillna(NA_LABEL).astype(object)


def column_labels(s: pd.Series, memo: dict | None = None) -> pd.Series:
    """:func:`labels` of ``s`` through ``memo`` (a dict kept for this one column)."""
    return once(memo, "labels", lambda: labels(s))


def category_counts(s: pd.Series, memo: dict | None = None) -> tuple[pd.Series, pd.Series]:
    """A categorical/binary column's label counts (missing counted as ``<NA>``) and the
    counts of its non-missing values as strings, both from one :func:`labels` conversion
    (``memo``: as in :func:`column_labels`; the string conversion is most of the time of
    the four categorical metrics, which all read these counts)."""

    def both():
        lab = column_labels(s, memo)
        return lab.value_counts(), lab[s.notna().to_numpy()].value_counts()

    return once(memo, "category counts", both)


def quantile_edges(real: np.ndarray, bins: int) -> np.ndarray:
    """Unique real-quantile bin edges at ``linspace(0, 1, bins + 1)``, shape (<= bins + 1,)."""
    return np.unique(np.quantile(real, np.linspace(0, 1, bins + 1)))


def bin_index(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value: 0 = below edges[0], 1..k = the k interior bins (the last one closed),
    k + 1 = above edges[-1]; NaN -> k + 2. Shape of ``x``."""
    x = np.asarray(x, dtype=float)
    k = len(edges) - 1
    idx = np.searchsorted(edges[1:-1], x, side="right") + 1
    if k == 0:  # a single distinct real value
        idx = np.ones(len(x), dtype=int)
    idx[x < edges[0]] = 0
    idx[x > edges[-1]] = k + 1
    idx[np.isnan(x)] = k + 2
    return idx


def real_edges(real: pd.Series, bins: int, memo: dict | None = None) -> np.ndarray:
    """:func:`quantile_edges` of the real column's non-missing values."""
    r = once(memo, "values", lambda: numeric_values(real))
    return once(memo, ("edges", bins), lambda: quantile_edges(r, bins))


def numeric_pmfs(
    real: pd.Series, syn: pd.Series, bins: int, memo: dict | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Real and synthetic pmfs over real-quantile bins (+ under/overflow + missing).

    ``memo`` (here and in the other per-column helpers): a dict kept for one real column by a
    caller that scores several synthetic columns against it; its side is computed once."""
    edges = real_edges(real, bins, memo)
    n_bins = len(edges) + 2
    p = once(
        memo,
        ("counts", bins),
        lambda: np.bincount(bin_index(floats(real), edges), minlength=n_bins).astype(float),
    )
    q = np.bincount(bin_index(floats(syn), edges), minlength=n_bins).astype(float)
    return p / p.sum(), q / q.sum()


def categorical_pmfs(
    real: pd.Series, syn: pd.Series, memo: dict | None = None, syn_memo: dict | None = None
) -> tuple[np.ndarray, np.ndarray, list]:
    """Real and synthetic pmfs over the union of categories (missing = ``<NA>``).

    ``syn_memo`` (here and in the other categorical helpers): a dict kept for the synthetic
    column by a caller that computes several metrics of it (:func:`column_metrics`)."""
    rc = category_counts(real, memo)[0]
    sc = category_counts(syn, syn_memo)[0]
    cats = sorted(set(rc.index) | set(sc.index), key=str)
    p = rc.reindex(cats, fill_value=0).to_numpy(float)
    q = sc.reindex(cats, fill_value=0).to_numpy(float)
    return p / p.sum(), q / q.sum(), cats


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits, in [0, 1] (square of scipy's JS distance)."""
    return float(jensenshannon(p, q, base=2) ** 2)


def kl_divergence(p: np.ndarray, q: np.ndarray, eps: float = 1e-4) -> float:
    """KL(p || q) in nats after additive smoothing ``(x + eps) / (1 + K eps)`` of both pmfs."""
    k = len(p)
    ps = (np.asarray(p, float) + eps) / (1 + k * eps)
    qs = (np.asarray(q, float) + eps) / (1 + k * eps)
    return float(np.sum(ps * np.log(ps / qs)))


def wasserstein_scaled(real: np.ndarray, syn: np.ndarray) -> float:
    """Wasserstein-1 distance divided by the real standard deviation (ddof=1)."""
    sd = float(np.std(real, ddof=1))
    if not sd > 0:
        raise ValueError("real column has zero standard deviation")
    return float(stats.wasserstein_distance(real, syn) / sd)


def anderson_darling(real: np.ndarray, syn: np.ndarray) -> tuple[float, float]:
    """Normalised k-sample Anderson-Darling statistic and its (floored/capped) p-value."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "p-value floored/capped": documented above
        res = stats.anderson_ksamp([real, syn], variant="midrank")
    return float(res.statistic), float(res.pvalue)


def range_coverage(real: np.ndarray, syn: np.ndarray) -> float:
    """Share of the real [min, max] covered by the synthetic [min, max], in [0, 1]."""
    rlo, rhi = float(np.min(real)), float(np.max(real))
    slo, shi = float(np.min(syn)), float(np.max(syn))
    if rhi == rlo:
        return 1.0 if slo <= rlo <= shi else 0.0
    return float(max(0.0, min(rhi, shi) - max(rlo, slo)) / (rhi - rlo))


def chi_square(
    real: pd.Series, syn: pd.Series, memo: dict | None = None, syn_memo: dict | None = None
) -> tuple[float, float]:
    """Chi-square goodness of fit of synthetic counts vs smoothed real proportions.

    Expected = ``n_syn * (c_real + 0.5) / (n_real + 0.5 K)`` over the K categories seen in
    either table. Returns (statistic, p-value); one category only -> (0, 1).
    """
    rc = category_counts(real, memo)[0]
    sc = category_counts(syn, syn_memo)[0]
    if sc.sum() == 0:
        raise ValueError("synthetic column is empty")
    cats = sorted(set(rc.index) | set(sc.index), key=str)
    obs = sc.reindex(cats, fill_value=0).to_numpy(float)
    r = rc.reindex(cats, fill_value=0).to_numpy(float) + 0.5
    exp = obs.sum() * r / r.sum()
    if len(cats) == 1:
        return 0.0, 1.0
    res = stats.chisquare(obs, exp)
    return float(res.statistic), float(res.pvalue)


def category_preservation(
    real: pd.Series, syn: pd.Series, memo: dict | None = None, syn_memo: dict | None = None
) -> float:
    """Share of the real non-missing categories that occur in the synthetic column."""
    rcats = once(memo, "categories", lambda: set(category_counts(real, memo)[1].index))
    if not rcats:
        raise ValueError("real column has no categories")
    return len(rcats & set(category_counts(syn, syn_memo)[1].index)) / len(rcats)


def tv_complement(
    real: pd.Series, syn: pd.Series, memo: dict | None = None, syn_memo: dict | None = None
) -> float:
    """1 - total variation distance of the non-missing category pmfs (sdmetrics TVComplement)."""
    rc = category_counts(real, memo)[1]
    sc = category_counts(syn, syn_memo)[1]
    if rc.empty or sc.empty:
        raise ValueError("a column has no non-missing values")
    cats = sorted(set(rc.index) | set(sc.index))
    p = rc.reindex(cats, fill_value=0).to_numpy(float)
    q = sc.reindex(cats, fill_value=0).to_numpy(float)
    return float(1 - 0.5 * np.abs(p / p.sum() - q / q.sum()).sum())


def correlation_similarity(rho_real: float, rho_syn: float) -> float:
    """``1 - |rho_real - rho_syn| / 2`` (sdmetrics CorrelationSimilarity); NaN if undefined."""
    if pd.isna(rho_real) or pd.isna(rho_syn) or rho_real == 0:
        return float("nan")
    return float(1 - abs(rho_real - rho_syn) / 2)


def discretise(
    col: pd.Series,
    ref: pd.Series,
    numeric: bool,
    bins: int,
    memo: dict | None = None,
    col_memo: dict | None = None,
) -> np.ndarray:
    """Codes for MI: numeric -> real-quantile bin of ``ref``; categorical -> labels
    (``memo``: kept for ``ref``, ``col_memo``: for ``col``)."""
    if numeric:
        return bin_index(floats(col), real_edges(ref, bins, memo))
    return column_labels(col, col_memo).to_numpy()


def mutual_information(feature: np.ndarray, target: np.ndarray) -> float:
    """``sklearn.metrics.mutual_info_score`` of two label arrays, nats.

    The contingency table is built first (as ``mutual_info_score`` does inside) because its
    label-type checks cost more than the score and our arrays are codes by construction."""
    if len(feature) != len(target) or len(target) == 0:  # sklearn's own error
        return float(mutual_info_score(target, feature))
    return float(
        mutual_info_score(None, None, contingency=contingency_matrix(target, feature, sparse=True))
    )


def corr_columns(card: DatasetCard) -> list[str]:
    """Numeric and binary columns (the Pearson matrix's columns), card order."""
    return [c for c, spec in card.columns.items() if spec.type != "categorical"]


def pearson_matrix(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """Pairwise-complete Pearson matrix of ``cols`` (p x p), NaN where undefined."""
    return df[cols].astype("float64").corr(method="pearson")


def frobenius_difference(r: np.ndarray, s: np.ndarray) -> float:
    """``||R - S||_F / sqrt(p (p - 1))``: RMS difference of off-diagonal coefficients."""
    p = r.shape[0]
    if p < 2:
        raise ValueError("fewer than two numeric/binary columns")
    d = np.asarray(r, float) - np.asarray(s, float)
    np.fill_diagonal(d, 0.0)
    return float(np.linalg.norm(d, "fro") / np.sqrt(p * (p - 1)))


# -- per-column table -------------------------------------------------------------------
def _cell(out: dict, key: str, fn) -> None:
    try:
        val = fn()
    except Exception as err:  # noqa: BLE001 - recorded in the per-column errors
        out.setdefault("errors", {})[key] = f"{type(err).__name__}: {err}"
        out[key] = None
        return
    if isinstance(val, dict):
        out.update(val)
    else:
        out[key] = None if val is None or not np.isfinite(val) else float(val)


def column_metrics(
    real: pd.Series,
    syn: pd.Series,
    numeric: bool,
    bins: int,
    eps: float,
    memo: dict | None = None,
    syn_memo: dict | None = None,
) -> dict:
    """All single-column metrics of one column (keys absent when not applicable;
    ``syn_memo``: as in :func:`categorical_pmfs`, a fresh one when None)."""
    syn_memo = {} if syn_memo is None else syn_memo
    out: dict = {"kind": "numeric" if numeric else "categorical"}
    if numeric:
        r, s = once(memo, "values", lambda: numeric_values(real)), numeric_values(syn)
        _cell(out, "ks", lambda: float(stats.ks_2samp(r, s).statistic))
        _cell(out, "wasserstein", lambda: wasserstein_scaled(r, s))
        _cell(out, "ad", lambda: dict(zip(("ad", "ad_pvalue"), anderson_darling(r, s))))
        _cell(out, "range_coverage", lambda: range_coverage(r, s))
        p, q = numeric_pmfs(real, syn, bins, memo)
        _cell(out, "column_shape", lambda: 1.0 - out["ks"] if out.get("ks") is not None else None)
    else:
        p, q, _ = categorical_pmfs(real, syn, memo, syn_memo)
        _cell(
            out,
            "chi2",
            lambda: dict(zip(("chi2", "chi2_pvalue"), chi_square(real, syn, memo, syn_memo))),
        )
        _cell(
            out,
            "category_preservation",
            lambda: category_preservation(real, syn, memo, syn_memo),
        )
        _cell(out, "column_shape", lambda: tv_complement(real, syn, memo, syn_memo))
    _cell(out, "jsd", lambda: js_divergence(p, q))
    _cell(out, "kl", lambda: kl_divergence(p, q, eps))
    return out


def evaluate_fidelity(
    real: pd.DataFrame,
    syn: pd.DataFrame,
    card: DatasetCard,
    settings: dict,
    reference: dict | None = None,
) -> tuple[list[Result], dict, dict]:
    """Fidelity and correlation metrics of ``syn`` against ``real`` (train).

    Returns (results, per_column, correlation) where per_column maps each column to its
    values and correlation holds the two matrices and the selected pairs.
    ``reference``: a dict kept by a caller that scores several tables against the same
    ``real`` (the bootstrap); every piece of the real side (per-column values, bin edges and
    counts, category counts, mutual information, Pearson matrix) is computed once into it.
    The values are those of a call without it.
    """
    bins, eps, mi_bins = settings["bins"], settings["kl_epsilon"], settings["mi_bins"]

    def memo(c: str) -> dict | None:
        return None if reference is None else reference.setdefault(("column", c), {})

    per: dict[str, dict] = {}
    syn_memo: dict[str, dict] = {c: {} for c in card.columns}  # this call's synthetic side
    for c, spec in card.columns.items():
        per[c] = column_metrics(real[c], syn[c], spec.is_numeric, bins, eps, memo(c), syn_memo[c])

    # mutual information with the target
    t_real = once(reference, "target_labels", lambda: labels(real[card.target]).to_numpy())
    t_syn = column_labels(syn[card.target], syn_memo[card.target]).to_numpy()
    for c, spec in card.columns.items():
        if c == card.target:
            continue
        fs = discretise(syn[c], real[c], spec.is_numeric, mi_bins, memo(c), syn_memo[c])

        def mi_real(c=c, spec=spec):
            fr = discretise(real[c], real[c], spec.is_numeric, mi_bins, memo(c), memo(c))
            return mutual_information(fr, t_real)

        _cell(per[c], "mi_real", lambda c=c, f=mi_real: once(reference, ("mi", c, mi_bins), f))
        _cell(per[c], "mi_synthetic", lambda fs=fs: mutual_information(fs, t_syn))
        a, b = per[c].get("mi_real"), per[c].get("mi_synthetic")
        per[c]["mi_diff"] = None if a is None or b is None else abs(a - b)

    def col(key: str) -> dict:
        return {c: v.get(key) for c, v in per.items() if key in v}

    results = [
        mean_of("ks_mean", col("ks")),
        mean_of("wasserstein_mean", col("wasserstein")),
        mean_of("jsd_mean", col("jsd")),
        mean_of("kl_mean", col("kl")),
        mean_of("ad_mean", col("ad")),
        mean_of("range_coverage_mean", col("range_coverage")),
        mean_of("chi2_pvalue_mean", col("chi2_pvalue")),
        mean_of("chi2_stat_mean", col("chi2")),
        mean_of("category_preservation_mean", col("category_preservation")),
        mean_of("mi_diff_mean", col("mi_diff")),
        mean_of("column_shape_mean", col("column_shape")),
    ]
    corr_results, correlation = evaluate_correlation(
        real, syn, card, settings["top_pairs"], reference
    )
    return results + corr_results, per, correlation


def evaluate_correlation(
    real: pd.DataFrame,
    syn: pd.DataFrame,
    card: DatasetCard,
    top_pairs: int,
    reference: dict | None = None,
) -> tuple[list[Result], dict]:
    """Pearson-structure metrics plus the selected pairs' real and synthetic rho
    (``reference``: as in :func:`evaluate_fidelity`)."""
    cols = corr_columns(card)
    rm = once(reference, "pearson", lambda: pearson_matrix(real, cols))
    sm = pearson_matrix(syn, cols)
    undefined = sorted(c for c in cols if sm[c].drop(c).isna().all())
    sm_filled = sm.fillna(0.0)
    for c in cols:
        sm_filled.loc[c, c] = 1.0
    note = (
        f"constant or empty synthetic column(s) {undefined}: correlations taken as 0"
        if undefined
        else None
    )

    def frob():
        if rm.isna().to_numpy().any():
            raise ValueError("real Pearson matrix has undefined entries")
        return frobenius_difference(rm.to_numpy(), sm_filled.to_numpy()), note

    pairs = [(a, b) for i, a in enumerate(cols) for b in cols[i + 1 :]]
    sims = {f"{a}~{b}": correlation_similarity(rm.loc[a, b], sm.loc[a, b]) for a, b in pairs}

    ranked = sorted(
        pairs, key=lambda ab: -abs(rm.loc[ab[0], ab[1]]) if np.isfinite(rm.loc[ab[0], ab[1]]) else 0
    )
    chosen = ranked[:top_pairs]
    for rel in card.relations:
        if rel.kind == "correlation" and rel.feature in cols and rel.by in cols:
            ab = (rel.feature, rel.by)
            if ab not in chosen and ab[::-1] not in chosen:
                chosen.append(ab)

    def _f(x):
        return None if pd.isna(x) else float(x)

    selected = [
        {
            "a": a,
            "b": b,
            "real": _f(rm.loc[a, b]),
            "synthetic": _f(sm.loc[a, b]),
            "abs_diff": _f(abs(rm.loc[a, b] - sm.loc[a, b])),
        }
        for a, b in chosen
    ]
    correlation = {
        "columns": cols,
        "real": [[_f(x) for x in row] for row in rm.to_numpy()],
        "synthetic": [[_f(x) for x in row] for row in sm.to_numpy()],
        "pairs": selected,
        "similarity": {k: _f(v) for k, v in sims.items()},
    }
    results = [
        guarded("corr_frobenius", frob),
        mean_of("correlation_similarity_mean", sims, "column pairs"),
    ]
    return results, correlation
