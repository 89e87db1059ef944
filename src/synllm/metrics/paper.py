"""The SynLLM authors' metrics of one cell (``evaluation.protocol: paper``).

Declared in :data:`PAPER_METRICS` (same :class:`~synllm.metrics.base.Metric` fields as the
project's registry, kept apart so the project's evaluation never has to compute them).
Which metrics enter Quality / Privacy per dataset (:data:`METRIC_SETS`) is what the authors'
scoring lists kept after silently dropping the columns each dataset's evaluator did not emit.

Quirks reproduced on purpose (they are what the published numbers measure):

- the evaluator's cleaning: rows with "generate"/"format" in any field dropped, numeric and
  binary columns coerced, rows with a missing value there dropped (cirrhosis: numeric gaps
  filled with the column mean first), other gaps filled with column means;
- a synthetic table without both target classes gets a copy of its first row with the missing
  class appended (the authors' "fix", done before the distance and privacy metrics);
- Wasserstein after rescaling **each sample by its own min and max** (0 when one is constant);
- ``hba1c_gap``: the raw synthetic HbA1c difference diabetic - non-diabetic, lower = better;
- ``nn_ratio``: mean within-sample nearest-neighbour distance of a synthetic sample over that of
  a real sample, both drawn with replacement (min(1000, n) rows, numeric columns);
- ``overall_privacy``: 100 x mean(min(nn_ratio / 2, 1), 1 - k-anonymity violation rate,
  min(mean scaled distance to the nearest real row / 3, 1), 1 - mean JS change over 20 90 %
  subsets); ``identifiability``: share of distinct synthetic rows equal to a real row.

The authors drew the random parts unseeded; here every draw takes a ``numpy`` seed, and the
evaluate step runs the privacy metrics under K seeds to show their spread.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

from synllm.metrics.base import Metric
from synllm.protocol import PAPER, Protocol, downsample_real

PAPER_METRICS: dict[str, Metric] = {}


def _declare(name, family, group, direction, rng, description) -> None:
    PAPER_METRICS[name] = Metric(name, family, group, direction, tuple(rng), description)


_declare(
    "paper_wasserstein_age",
    "fidelity",
    "quality",
    "lower",
    (0, None),
    "Wasserstein distance of age (each sample min-max scaled on its own)",
)
_declare(
    "paper_wasserstein_bmi",
    "fidelity",
    "quality",
    "lower",
    (0, None),
    "Wasserstein distance of bmi (each sample min-max scaled on its own)",
)
_declare(
    "paper_corr_distance",
    "correlation",
    "quality",
    "lower",
    (0, None),
    "Frobenius norm of the Pearson correlation-matrix difference (numeric columns)",
)
_declare(
    "paper_hba1c_gap",
    "clinical",
    "quality",
    "lower",
    (None, None),
    "synthetic mean HbA1c of diabetic minus non-diabetic rows (raw gap, lower = better)",
)
_declare(
    "paper_nn_ratio",
    "privacy",
    "privacy",
    "higher",
    (0, None),
    "within-sample NN distance, synthetic over real, samples drawn with replacement",
)
_declare(
    "paper_identifiability",
    "privacy",
    "privacy",
    "lower",
    (0, 1),
    "share of distinct synthetic rows equal to a real row",
)
_declare(
    "paper_overall_privacy",
    "privacy",
    "privacy",
    "higher",
    (0, 100),
    "the authors' overall privacy score (NN ratio, k-anonymity, similarity, DP stability)",
)

METRIC_SETS = {
    "diabetes": {
        "quality": [
            "paper_wasserstein_age",
            "paper_wasserstein_bmi",
            "paper_corr_distance",
            "paper_hba1c_gap",
        ],
        "privacy": ["paper_nn_ratio", "paper_identifiability", "paper_overall_privacy"],
    },
    "stroke": {
        "quality": ["paper_wasserstein_age", "paper_wasserstein_bmi", "paper_corr_distance"],
        "privacy": ["paper_nn_ratio", "paper_identifiability"],
    },
    "cirrhosis": {
        "quality": ["paper_corr_distance"],
        "privacy": ["paper_nn_ratio", "paper_identifiability"],
    },
}
# the evaluators' column lists
NUMERICAL = {
    "diabetes": ["age", "bmi", "HbA1c_level", "blood_glucose_level"],
    "stroke": ["age", "avg_glucose_level", "bmi"],
    "cirrhosis": [
        "Age",
        "Bilirubin",
        "Cholesterol",
        "Albumin",
        "Copper",
        "Alk_Phos",
        "SGOT",
        "Tryglicerides",
        "Platelets",
        "Prothrombin",
        "N_Days",
    ],
}
BINARY = {
    "diabetes": ["hypertension", "heart_disease", "diabetes"],
    "stroke": ["hypertension", "heart_disease", "ever_married", "stroke"],
    "cirrhosis": ["Sex", "Ascites", "Hepatomegaly", "Spiders"],
}
TARGET = {"diabetes": "diabetes", "stroke": "stroke"}
# divergence step 4 runs the project's metrics on at most this many (seeded) train rows
STEP4_TRAIN_ROWS = 5_000


def clean(df: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The authors' evaluator cleaning of one table (real or synthetic)."""
    df = df.copy()
    # only text can hold the words; numeric columns are skipped for speed (same result)
    for col in [c for c in df.columns if df[c].dtype == object]:
        mask = df[col].astype(str).str.contains("generate|format", case=False, na=False)
        df = df[~mask]
    num = [c for c in NUMERICAL[dataset] if c in df.columns]
    binary = [c for c in BINARY[dataset] if c in df.columns]
    for col in binary:
        if dataset == "cirrhosis":
            df[col] = df[col].map({"Y": 1, "N": 0, "M": 1, "F": 0})
        elif df[col].dtype == object:
            df[col] = df[col].map({"Yes": 1, "No": 0, 1: 1, 0: 0, "1": 1, "0": 0})
        df[col] = pd.to_numeric(df[col], errors="coerce")
    for col in num:
        df[col] = pd.to_numeric(df[col], errors="coerce")
    if dataset == "cirrhosis":
        df = df.fillna(df.mean(numeric_only=True))
        df = df.dropna(subset=num + binary)
    else:
        df = df.dropna(subset=num + binary)
        df = df.fillna(df.mean(numeric_only=True))
    return df


def _ensure_classes(syn: pd.DataFrame, target: str) -> pd.DataFrame:
    """Append a copy of the first row with each missing target class (the authors' fix)."""
    for cls in (0, 1):
        if len(syn) and cls not in syn[target].values:
            row = syn.iloc[[0]].copy()
            row[target] = cls
            row.index = [syn.index.max() + 1]
            syn = pd.concat([syn, row])
    return syn


def wasserstein(real: pd.Series, syn: pd.Series, scaling: str) -> float:
    r, s = real.to_numpy(dtype=float), syn.to_numpy(dtype=float)
    if len(r) == 0 or len(s) == 0:
        return math.nan
    if scaling == "raw":
        return float(wasserstein_distance(r, s))
    if r.min() == r.max() or s.min() == s.max():
        return 0.0
    r = (r - r.min()) / (r.max() - r.min() + 1e-10)
    s = (s - s.min()) / (s.max() - s.min() + 1e-10)
    return float(wasserstein_distance(r, s))


def corr_distance(real: pd.DataFrame, syn: pd.DataFrame, cols: list[str]) -> float:
    """NaN when a synthetic column is constant (undefined correlation), as for the authors."""
    d = real[cols].corr().to_numpy() - syn[cols].corr().to_numpy()
    return float(np.linalg.norm(d))


def hba1c_gap(syn: pd.DataFrame) -> float:
    g = syn.groupby("diabetes")["HbA1c_level"].mean()
    if 0 in g.index and 1 in g.index:
        return float(g[1] - g[0])
    return math.nan


def _nn_mean(x: np.ndarray) -> float:
    if len(x) < 2:
        return 0.1
    nbrs = NearestNeighbors(n_neighbors=2).fit(x)
    dist, _ = nbrs.kneighbors(x)
    return float(np.mean(dist[:, 1]))


def nn_ratio(
    real: pd.DataFrame, syn: pd.DataFrame, cols: list[str], rng: np.random.RandomState
) -> float:
    n = min(1000, len(real), len(syn))
    if n < 2:
        return math.nan
    r = real[cols].fillna(0).sample(n, replace=True, random_state=rng).to_numpy(dtype=float)
    s = syn[cols].fillna(0).sample(n, replace=True, random_state=rng).to_numpy(dtype=float)
    mr = _nn_mean(r)
    return _nn_mean(s) / mr if mr > 0 else 1.0


def _row_set(df: pd.DataFrame) -> set[tuple]:
    return set(map(tuple, df.fillna("MISSING").astype(str).to_numpy().tolist()))


def identifiability(real: pd.DataFrame, syn: pd.DataFrame) -> float:
    rt, st = _row_set(real), _row_set(syn)
    return len(st & rt) / len(st) if st else 0.0


def _k_violation(syn: pd.DataFrame, ident: list[str], k: int = 5) -> float:
    rates = []
    for i in range(1, len(ident) + 1):
        for cols in itertools.combinations(ident, i):
            tmp = syn[list(cols)].copy()
            for c in cols:
                tmp[c] = tmp[c].fillna("Unknown" if c == "gender" else -999)
                if c in ("age", "bmi") and tmp[c].dtype.kind in "fi":
                    tmp[c] = pd.qcut(tmp[c], q=10, duplicates="drop", labels=False)
            counts = tmp.groupby(list(cols)).size()
            # the authors counted groups below k, divided by records
            rates.append(int((counts < k).sum()) / len(syn) if len(syn) else 0.0)
    return float(np.mean(rates)) if rates else 0.0


def overall_privacy(
    real: pd.DataFrame, syn: pd.DataFrame, num: list[str], rng: np.random.RandomState
) -> float:
    comps = []
    nn = nn_ratio(real, syn, num, rng)
    if not math.isnan(nn):
        comps.append(min(nn / 2, 1.0))
    ident = [c for c in ("age", "gender", "bmi") if c in syn.columns]
    comps.append(1.0 - _k_violation(syn, ident))
    n = min(1000, len(real), len(syn))
    try:
        rs = real[num].sample(n, random_state=42)
        ss = syn[num].sample(n, random_state=42)
        scaler = StandardScaler()
        d, _ = (
            NearestNeighbors(n_neighbors=1)
            .fit(scaler.fit_transform(rs))
            .kneighbors(scaler.transform(ss))
        )
        comps.append(min(float(np.mean(d)) / 3, 1.0))
    except ValueError:
        pass
    changes = []
    size = int(0.9 * len(syn))
    full = {c: np.histogram(syn[c], bins=20, density=True) for c in num}
    for _ in range(20):
        sub = syn.loc[rng.choice(syn.index, size=size, replace=False)]
        for col in num:
            part, _ = np.histogram(sub[col], bins=full[col][1], density=True)
            changes.append(jensenshannon(full[col][0] + 1e-10, part + 1e-10))
    comps.append(1.0 - float(np.mean(changes)))
    return float(np.mean(comps) * 100)


def cell_metrics(
    dataset: str,
    syn_raw: pd.DataFrame,
    real_full: pd.DataFrame,
    protocol: Protocol = PAPER,
    seeds: tuple[int, ...] = (0,),
    real_clean: pd.DataFrame | None = None,
) -> dict:
    """``{"values": {metric: value}, "privacy_seeds": {metric: [value per seed]}}``.

    ``values`` holds the seed-independent metrics and the median of the seeded ones.
    ``real_clean``: ``clean(real_full)`` when already computed (``real_rows="full"`` only).
    """
    n = len(syn_raw)
    if protocol.real_rows == "full":
        real = real_clean if real_clean is not None else clean(real_full, dataset)
    else:
        real = clean(downsample_real(real_full, n), dataset)
    syn = clean(syn_raw, dataset)
    num = [c for c in NUMERICAL[dataset] if c in syn.columns]
    vals: dict[str, float] = {}
    wanted = METRIC_SETS[dataset]["quality"] + METRIC_SETS[dataset]["privacy"]
    if len(syn) == 0:
        return {"values": {m: math.nan for m in wanted}, "privacy_seeds": {}}
    vals["paper_corr_distance"] = corr_distance(real, syn, num)
    if dataset in TARGET:
        if dataset == "diabetes":
            fixed = _ensure_classes(syn, "diabetes")
            vals["paper_hba1c_gap"] = hba1c_gap(fixed)
        syn = _ensure_classes(syn, TARGET[dataset])
        for col in ("age", "bmi"):
            vals[f"paper_wasserstein_{col}"] = wasserstein(
                real[col], syn[col], protocol.wasserstein
            )
    vals["paper_identifiability"] = identifiability(real, syn)
    per_seed: dict[str, list[float]] = {"paper_nn_ratio": []}
    if "paper_overall_privacy" in wanted:
        per_seed["paper_overall_privacy"] = []
    for seed in seeds:
        rng = np.random.RandomState(seed)
        per_seed["paper_nn_ratio"].append(nn_ratio(real, syn, num, rng))
        if "paper_overall_privacy" in per_seed:
            per_seed["paper_overall_privacy"].append(overall_privacy(real, syn, num, rng))
    for name, v in per_seed.items():
        arr = np.asarray(v, dtype=float)
        vals[name] = float(np.nanmedian(arr)) if np.isfinite(arr).any() else math.nan
    return {"values": {m: vals.get(m, math.nan) for m in wanted}, "privacy_seeds": per_seed}


# --------------------------------------------------------------------------- one cell
def paper_results(values: dict[str, float]) -> list[dict]:
    out = []
    for name, v in values.items():
        m = PAPER_METRICS[name]
        ok = v is not None and np.isfinite(v)
        out.append(
            {
                "name": name,
                "family": m.family,
                "score_group": m.score_group,
                "direction": m.direction,
                "range": list(m.range),
                "value": float(v) if ok else None,
                "status": "ok" if ok else "failed",
                "reason": None
                if ok
                else "undefined on this table (constant column or "
                "no rows left after the authors' cleaning)",
            }
        )
    return out
