"""Distance-based membership-inference attack (after Lin et al.'s privacy evaluation).

The attacker sees the synthetic table and a real record and guesses "member" (the record was
in the training rows behind the generation) when the record lies close to some synthetic
record. Members are train rows, non-members holdout rows (equal-size seeded samples). The
score of a record is minus its distance to the closest synthetic record (DCR) in a space where
numerics are min-max scaled by the real range (missing -> an extra indicator) and categoricals
are one-hot. Reported: ROC AUC of the score (0.5 = no leakage), membership advantage
max(TPR - FPR) over thresholds, and as empirical risk the share of members / non-members that
have an exact copy in the synthetic table (DCR 0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.neighbors import NearestNeighbors

from synllm.cards import DatasetCard
from synllm.errors import DataError

_EXACT = 1e-6  # DCR below this counts as an exact copy (euclidean round-off)


def encode(df: pd.DataFrame, card: DatasetCard, ref: pd.DataFrame) -> np.ndarray:
    """(n, p) float matrix: numerics scaled to [0, 1] by ``ref``'s range (missing -> 0 plus a
    missing indicator), categoricals one-hot over the card's categories (missing -> all 0)."""
    cols = []
    for name, spec in card.columns.items():
        if spec.type == "categorical":
            s = df[name].astype(object)
            cols += [(s == c).to_numpy(float) for c in spec.categories or []]
        else:
            v = df[name].astype("float64").to_numpy()
            r = ref[name].astype("float64")
            lo, hi = float(r.min()), float(r.max())
            scaled = (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)
            miss = np.isnan(v)
            cols.append(np.where(miss, 0.0, scaled))
            if spec.nullable:
                cols.append(miss.astype(float))
    return np.column_stack(cols)


def membership_inference(
    card: DatasetCard,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synth: pd.DataFrame,
    n: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """AUC, advantage and exact-match rates of the DCR attack (``n`` members and non-members)."""
    if len(synth) == 0:
        raise DataError("membership inference: the synthetic table is empty")
    k = min(n, len(train), len(holdout))
    members = train.sample(n=k, random_state=seed)
    non = holdout.sample(n=k, random_state=seed + 1)
    nn = NearestNeighbors(n_neighbors=1).fit(encode(synth, card, train))
    d_mem = nn.kneighbors(encode(members, card, train))[0][:, 0]
    d_non = nn.kneighbors(encode(non, card, train))[0][:, 0]
    y = np.r_[np.ones(k), np.zeros(k)]
    score = -np.r_[d_mem, d_non]
    fpr, tpr, _ = roc_curve(y, score)
    return {
        "mia_auc": float(roc_auc_score(y, score)),
        "mia_advantage": float(np.max(tpr - fpr)),
        "exact_match_rate_members": float(np.mean(d_mem < _EXACT)),
        "exact_match_rate_nonmembers": float(np.mean(d_non < _EXACT)),
        "n_members": int(k),
    }
