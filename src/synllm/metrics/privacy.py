"""Privacy: how close are synthetic records to the real training records?

Mixed-type distance: Euclidean on an encoding fitted on the real train split. Numeric
(``int``/``float``) columns are standardised by the train mean and SD (SD 0 -> 1) and missing
values are imputed with the train mean (0 after standardising); categorical and binary
columns are one-hot over the card's categories (binary: 0/1) plus a ``<NA>`` level, so one
mismatching category adds 2 to the squared distance. ``sklearn.neighbors.NearestNeighbors``
does the (exact, k-d tree) search.

Reference set: always the **full** train split (never a downsample to the synthetic size,
which hides copies). Only the O(n_train^2) real->real baseline is subsampled: a seeded sample
of ``distance_sample`` (default 5000) train rows is queried against the full train (self
excluded). Metrics:

- ``identifiability``: share of synthetic rows identical (all columns, missing = missing) to
  some train row (lower is safer).
- ``nn_ratio``: mean synthetic->train NN distance / mean train->train NN distance (self
  excluded), higher is safer; a copy of train scores 0.
- ``dcr_median`` / ``dcr_p5``: median and 5th percentile of the synthetic->train distance to
  the closest record (higher is safer). The holdout->train values are reported next to them.
- ``nndr_mean``: mean over synthetic rows of d1/d2 (closest / second-closest train record);
  d1 = d2 = 0 gives 1 (the row matches several identical train rows, it singles none out).
- ``mia_auc`` / ``mia_advantage``: distance-based membership inference. Members: a seeded
  sample of up to ``mia_sample / 2`` train rows; non-members: a seeded sample of up to as
  many holdout rows (all of them for small tables; AUC needs no balance); score = minus
  the distance to the closest synthetic record; AUC (``roc_auc_score``) and advantage
  max(TPR - FPR). 0.5 / 0 mean the table leaks nothing about membership. Values below 0.5
  mean non-members sit closer to the synthetic rows than members (e.g. a table drawn from the
  holdout itself); ``non_member_overlap`` in the detail reports the share of non-members
  found verbatim in the synthetic table.
- ``mia_tpr_at_1pct_fpr`` / ``mia_tpr_at_0_1pct_fpr``: the same attack's TPR at FPR below 1 %
  and 0.1 % (:func:`tpr_at_fpr`): an average like the AUC hides a few copied members, the
  low-FPR operating point does not.

Score groups (Privacy): ``nn_ratio``, ``identifiability``, ``dcr_median``, ``mia_auc`` (and
``prompt_copy_rate``, ``train_copy_rate`` of :mod:`synllm.metrics.leaks`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import config_context
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.neighbors import NearestNeighbors

from synllm.cards import DatasetCard
from synllm.metrics.base import Result, declare, failed, guarded, once

declare(
    "nn_ratio",
    "privacy",
    "privacy",
    "higher",
    (0, None),
    "Mean synthetic->train NN distance over mean train->train NN distance",
)
declare(
    "identifiability",
    "privacy",
    "privacy",
    "lower",
    (0, 1),
    "Share of synthetic rows identical to a train row",
)
declare(
    "dcr_median",
    "privacy",
    "privacy",
    "higher",
    (0, None),
    "Median distance from a synthetic row to its closest train record",
)
declare(
    "dcr_p5",
    "privacy",
    None,
    "higher",
    (0, None),
    "5th percentile of the synthetic->train distance to the closest record",
)
declare(
    "nndr_mean",
    "privacy",
    None,
    "higher",
    (0, 1),
    "Mean nearest-neighbour distance ratio d1/d2 of synthetic rows against train",
)
declare(
    "mia_auc",
    "privacy",
    "privacy",
    "lower",
    (0, 1),
    "AUC of a distance-to-closest-synthetic membership-inference attack (0.5 = no leak)",
)
declare(
    "mia_advantage",
    "privacy",
    None,
    "lower",
    (0, 1),
    "Max TPR - FPR of the distance-based membership-inference attack",
)
declare(
    "mia_tpr_at_1pct_fpr",
    "privacy",
    None,
    "lower",
    (0, 1),
    "TPR of the train-split membership attack at FPR < 1% (Carlini et al. 2022)",
)
declare(
    "mia_tpr_at_0_1pct_fpr",
    "privacy",
    None,
    "lower",
    (0, 1),
    "TPR of the train-split membership attack at FPR < 0.1% (Carlini et al. 2022)",
)

NA_LABEL = "<NA>"


class MixedEncoder:
    """Standardise numerics (train mean/SD, mean-imputed) and one-hot categoricals.

    ``fit(train)`` then ``transform(df) -> ndarray (n, d)`` float64.
    """

    def __init__(self, card: DatasetCard):
        self.card = card
        self.numeric = card.numeric_columns
        self.categorical = card.categorical_columns

    def fit(self, train: pd.DataFrame) -> MixedEncoder:
        x = train[self.numeric].astype("float64")
        self.mean_ = x.mean().fillna(0.0)
        sd = x.std(ddof=1)
        self.sd_ = sd.where(sd > 0, 1.0).fillna(1.0)
        self.levels_ = {}
        for c in self.categorical:
            spec = self.card.columns[c]
            cats = ["0", "1"] if spec.type == "binary" else list(spec.categories or [])
            self.levels_[c] = cats + [NA_LABEL]
        return self

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        parts = []
        if self.numeric:
            x = (df[self.numeric].astype("float64") - self.mean_) / self.sd_
            parts.append(x.fillna(0.0).to_numpy())
        for c in self.categorical:
            lab = df[c].astype("string").fillna(NA_LABEL).astype(object)
            cat = pd.Categorical(lab, categories=self.levels_[c])
            onehot = np.zeros((len(df), len(self.levels_[c])))
            codes = cat.codes
            rows = np.flatnonzero(codes >= 0)
            onehot[rows, codes[rows]] = 1.0
            parts.append(onehot)
        return np.hstack(parts) if parts else np.zeros((len(df), 0))


def row_hashes(df: pd.DataFrame, card: DatasetCard) -> np.ndarray:
    """uint64 hash per row over the card's columns (numerics as float64, NaN == NaN)."""
    norm = pd.DataFrame(index=df.index)
    for c, spec in card.columns.items():
        if spec.is_numeric or spec.type == "binary":
            norm[c] = df[c].astype("float64")
        else:
            norm[c] = df[c].astype("string").fillna(NA_LABEL).astype(object)
    return pd.util.hash_pandas_object(norm, index=False).to_numpy()


def identifiability(
    train: pd.DataFrame, syn: pd.DataFrame, card: DatasetCard, memo: dict | None = None
) -> float:
    """Share of synthetic rows identical to at least one train row."""
    if len(syn) == 0:
        raise ValueError("synthetic table is empty")
    train_hashes = once(memo, "train_hashes", lambda: row_hashes(train, card))
    return float(np.isin(row_hashes(syn, card), train_hashes).mean())


def train_side(train: pd.DataFrame, card: DatasetCard, memo: dict | None = None):
    """The encoder fitted on ``train``, the encoded train rows and their k-d tree: the same
    for every cell scored against one train split (``memo``: one dict per split)."""
    enc = once(memo, "encoder", lambda: MixedEncoder(card).fit(train))
    x_train = once(memo, "x_train", lambda: enc.transform(train))
    return enc, x_train, once(memo, "index", lambda: nn_index(x_train))


def nn_index(reference: np.ndarray) -> NearestNeighbors:
    """Exact Euclidean nearest-neighbour index over ``reference`` (n_ref, d) (a k-d tree)."""
    return NearestNeighbors(algorithm="kd_tree").fit(reference)


def nn_distances(reference: np.ndarray | NearestNeighbors, query: np.ndarray, k: int) -> np.ndarray:
    """Euclidean distances of each query row to its k nearest reference rows, (n_query, k).

    ``reference`` is an array or an index from :func:`nn_index` (reused across queries).
    """
    index = reference if isinstance(reference, NearestNeighbors) else nn_index(reference)
    with config_context(working_memory=128):
        d, _ = index.kneighbors(query, n_neighbors=k)
    return d


def nndr(d1: np.ndarray, d2: np.ndarray) -> np.ndarray:
    """d1 / d2 per row, with 0 / 0 -> 1."""
    out = np.ones_like(d1, dtype=float)
    pos = d2 > 0
    out[pos] = d1[pos] / d2[pos]
    return out


def mia(member_d: np.ndarray, non_member_d: np.ndarray) -> tuple[float, float]:
    """(AUC, advantage) of the attack scoring ``-distance``; members are the positives."""
    y = np.r_[np.ones(len(member_d)), np.zeros(len(non_member_d))]
    score = -np.r_[member_d, non_member_d]
    fpr, tpr, _ = roc_curve(y, score)
    return float(roc_auc_score(y, score)), float(np.max(tpr - fpr))


LOW_FPRS = {"1pct": 0.01, "0_1pct": 0.001}


def tpr_at_fpr(member_d: np.ndarray, non_member_d: np.ndarray, fpr_max: float) -> float:
    """Highest TPR of the ``-distance`` attack over thresholds whose FPR is below ``fpr_max``.

    The operating point of Carlini et al. (2022, "Membership inference attacks from first
    principles"): ``tpr[fpr < fpr_max]`` on the full ``roc_curve`` (no points dropped). With
    ``n`` non-members the FPR moves in steps of ``1 / n``, so below ``1 / fpr_max`` non-members
    this is the TPR at zero false positives.
    """
    y = np.r_[np.ones(len(member_d)), np.zeros(len(non_member_d))]
    fpr, tpr, _ = roc_curve(y, -np.r_[member_d, non_member_d], drop_intermediate=False)
    return float(tpr[fpr < fpr_max].max())


def sample_rows(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted seeded sample of ``min(size, n)`` row positions out of ``n``."""
    rng = np.random.default_rng(seed)
    if size >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, size=size, replace=False))


def real_baselines(
    enc: MixedEncoder,
    index: NearestNeighbors,
    x_train: np.ndarray,
    holdout: pd.DataFrame,
    settings: dict,
    seed: int,
) -> dict:
    """The real->real distances (train->train NN, holdout->train DCR) the privacy metrics are
    compared with; the same for every cell of a dataset and seed (real-fits cache)."""
    rr_idx = sample_rows(len(x_train), int(settings["distance_sample"]), seed)
    d_rr = nn_distances(index, x_train[rr_idx], k=2)[:, 1] if len(x_train) > 1 else np.array([])
    ho_idx = sample_rows(len(holdout), int(settings["distance_sample"]), seed + 1)
    d_ho = (
        nn_distances(index, enc.transform(holdout.iloc[ho_idx]), k=1)[:, 0]
        if len(ho_idx)
        else np.array([])
    )
    return {
        "real_real_nn_mean": float(d_rr.mean()) if len(d_rr) else None,
        "holdout_dcr_median": float(np.median(d_ho)) if len(d_ho) else None,
        "holdout_dcr_p5": float(np.percentile(d_ho, 5)) if len(d_ho) else None,
        "n_real_real_sample": int(len(rr_idx)),
        "n_holdout_sample": int(len(ho_idx)),
    }


def real_cache(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    card: DatasetCard,
    settings: dict,
    seed: int,
    memo: dict | None = None,
) -> dict:
    """:func:`real_baselines` with the keys :func:`evaluate_privacy` checks before reusing it
    (``memo``: as in :func:`train_side`)."""
    enc, x_train, index = train_side(train, card, memo)
    return {
        "seed": seed,
        "distance_sample": int(settings["distance_sample"]),
        "baselines": real_baselines(enc, index, x_train, holdout, settings, seed),
    }


def evaluate_privacy(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    syn: pd.DataFrame,
    card: DatasetCard,
    settings: dict,
    seed: int,
    cache: dict | None = None,
    memo: dict | None = None,
) -> tuple[list[Result], dict]:
    """Privacy results and a detail dict (sizes, reference distances, MIA counts).

    ``cache``: :func:`real_cache` of the same train, holdout, seed and ``distance_sample``.
    ``memo``: a dict kept for one train split by a caller that scores several tables against
    it (:func:`train_side`, train row hashes); the values are those of a call without it."""
    if len(syn) == 0:
        return [
            failed(n, "synthetic table is empty")
            for n in (
                "nn_ratio",
                "identifiability",
                "dcr_median",
                "dcr_p5",
                "nndr_mean",
                "mia_auc",
                "mia_advantage",
                "mia_tpr_at_1pct_fpr",
                "mia_tpr_at_0_1pct_fpr",
            )
        ], {}
    enc, x_train, index = train_side(train, card, memo)
    x_syn = enc.transform(syn)
    detail: dict = {
        "n_train": len(train),
        "n_synthetic": len(syn),
        "distance_sample": int(settings["distance_sample"]),
        "seed": seed,
    }

    results = [guarded("identifiability", lambda: identifiability(train, syn, card, memo))]

    d_syn = nn_distances(index, x_syn, k=min(2, len(x_train)))
    d1 = d_syn[:, 0]
    usable = (
        cache is not None
        and cache.get("seed") == seed
        and cache.get("distance_sample") == int(settings["distance_sample"])
    )
    real = (
        cache["baselines"]
        if usable
        else real_baselines(enc, index, x_train, holdout, settings, seed)
    )
    detail.update(
        {
            "real_real_nn_mean": real["real_real_nn_mean"],
            "synthetic_real_nn_mean": float(d1.mean()),
            "holdout_dcr_median": real["holdout_dcr_median"],
            "holdout_dcr_p5": real["holdout_dcr_p5"],
            "n_real_real_sample": real["n_real_real_sample"],
            "n_holdout_sample": real["n_holdout_sample"],
            "real_baselines": "cached" if usable else "computed",
        }
    )

    def ratio():
        rr_mean = real["real_real_nn_mean"]
        if not real["n_real_real_sample"] or len(x_train) < 2 or rr_mean == 0:
            raise ValueError("mean train->train NN distance is 0 or undefined")
        return float(d1.mean() / rr_mean)

    def nndr_mean():
        if d_syn.shape[1] < 2:
            raise ValueError("train has fewer than 2 rows")
        return float(nndr(d_syn[:, 0], d_syn[:, 1]).mean())

    results += [
        guarded("nn_ratio", ratio),
        guarded("dcr_median", lambda: float(np.median(d1))),
        guarded("dcr_p5", lambda: float(np.percentile(d1, 5))),
        guarded("nndr_mean", nndr_mean),
    ]

    half = int(settings["mia_sample"]) // 2
    m_idx = sample_rows(len(train), half, seed + 2)
    n_idx = sample_rows(len(holdout), half, seed + 3)
    if len(m_idx) == 0 or len(n_idx) == 0:
        reason = "no train or holdout rows for the membership-inference attack"
        results += [
            failed(n, reason)
            for n in ("mia_auc", "mia_advantage", "mia_tpr_at_1pct_fpr", "mia_tpr_at_0_1pct_fpr")
        ]
    else:
        dm = nn_distances(x_syn, x_train[m_idx], k=1)[:, 0]
        dn = nn_distances(x_syn, enc.transform(holdout.iloc[n_idx]), k=1)[:, 0]
        overlap = float(
            np.isin(row_hashes(holdout.iloc[n_idx], card), row_hashes(syn, card)).mean()
        )
        note = (
            f"{overlap:.0%} of non-members appear verbatim in the synthetic table"
            if overlap > 0
            else None
        )
        results += [
            guarded("mia_auc", lambda: (mia(dm, dn)[0], note)),
            guarded("mia_advantage", lambda: (mia(dm, dn)[1], note)),
        ]
        results += [
            guarded(f"mia_tpr_at_{k}_fpr", lambda a=a: tpr_at_fpr(dm, dn, a))
            for k, a in LOW_FPRS.items()
        ]
        detail.update(
            {
                "mia_members": int(len(m_idx)),
                "mia_non_members": int(len(n_idx)),
                "non_member_overlap": overlap,
                "member_dcr_median": float(np.median(dm)),
                "non_member_dcr_median": float(np.median(dn)),
            }
        )
    return results, detail
