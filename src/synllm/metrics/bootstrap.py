"""Bootstrap replicates of one cell's metrics over its synthetic records.

``B`` resamples (settings ``bootstrap``; 0 = none) draw ``n`` of the cell's ``n`` synthetic
rows with replacement (``numpy`` generator seeded from the cell's seed). Each replicate
recomputes the metrics below; ``synllm aggregate`` normalises every replicate exactly like the
point estimate and reads percentile intervals of Quality, Privacy, Harmonic and TSTR AUC from
them. What is resampled, and how each is kept affordable:

- **fidelity, correlation, clinical** (every metric these families report): the family's own
  evaluator runs on the resampled table against a fixed seeded sample of
  ``bootstrap_reference`` train rows, and the replicate is recentred on the point estimate:
  ``v_b = v + (f(resample_b, ref) - f(synthetic, ref))``, clipped to the declared range. The
  reference is the same in every replicate, so it adds no variance; the 80k-row train split
  would cost seconds per replicate for the same deviations.
- **privacy** (``identifiability``, ``nn_ratio``, ``dcr_median``, ``dcr_p5``, ``nndr_mean``,
  ``mia_auc``, ``mia_advantage``): exact. The per-row pieces (distance of each synthetic row
  to its two closest train rows, whether it equals a train row, the distance of each attack
  member / non-member to each synthetic row) are computed once against the full train split
  and the attack sample of the point estimate; a replicate only re-reads them through its
  row indices.
- **utility, TSTR direction** (per model and the means): every configured model is refitted
  on the resampled table and scored on a fixed seeded sample of ``bootstrap_reference``
  holdout rows, recentred like fidelity. TRTS and the real->real reference would need the
  train-fitted models again (seconds each) and are not resampled.

Metrics not listed (those added by other modules, TRTS, fairness) have no replicates: the
``bootstrap`` block names them in ``fixed``, and aggregation uses their point value in every
replicate. A replicate whose metric fails (e.g. a resample with one target class) records
``null`` for it; aggregation then skips that value like a failed point value.

The loop gives exactly the values of plain calls, with less work: the reference's side of
every fidelity, correlation and clinical metric (bin edges and counts, category counts, mutual
information with the target, Pearson matrix, relation values, rule rates) is computed once
(``evaluate_fidelity`` / ``evaluate_clinical(..., reference=dict)``), TSTR
replicates skip the confusion matrix and PR curves that only the point estimate reports, and
scikit-learn's parameter validation and finiteness scans are off inside it (the point estimate
has already checked the same calls on the rows the replicates resample).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from sklearn import config_context

from synllm.cards import DatasetCard
from synllm.metrics import clinical, fidelity, privacy, utility
from synllm.metrics.base import REGISTRY, Result, once

SEED_SALT = 0xB0075
"""Mixed into the cell's seed so the resamples do not reuse the evaluator's random streams."""


def resample_indices(n: int, b: int, seed: int) -> np.ndarray:
    """``(b, n)`` row indices, each row a with-replacement resample of ``range(n)``."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), SEED_SALT]))
    return rng.integers(0, n, size=(b, n))


def _values(results: list[Result]) -> dict[str, float | None]:
    return {r.metric.name: (r.value if r.status == "ok" else None) for r in results}


def _clip(name: str, v: float) -> float:
    lo, hi = REGISTRY[name].range
    if lo is not None:
        v = max(v, float(lo))
    if hi is not None:
        v = min(v, float(hi))
    return v


def _recentred(point: dict, base: dict, rep: dict) -> dict[str, float | None]:
    out = {}
    for name, v in rep.items():
        p, b0 = point.get(name), base.get(name)
        out[name] = None if v is None or p is None or b0 is None else _clip(name, p + v - b0)
    return out


def _table_family(card, syn, ref, idx, settings, point, reference=None) -> dict[str, list]:
    """Fidelity, correlation and clinical metrics, recentred against ``ref`` (``reference``:
    the memo of ``ref``'s side, kept across the replicates and the cells of one job)."""
    reference = {} if reference is None else reference

    def run(table):
        res, _, _ = fidelity.evaluate_fidelity(ref, table, card, settings, reference)
        res += clinical.evaluate_clinical(ref, table, card, reference)[0]
        return _values(res)

    base = run(syn)
    out: dict[str, list] = {n: [] for n in base}
    for rows in idx:
        rep = _recentred(point, base, run(syn.iloc[rows].reset_index(drop=True)))
        for n in out:
            out[n].append(rep.get(n))
    return out


PRIVACY_REPLICATED = (
    "identifiability",
    "nn_ratio",
    "dcr_median",
    "dcr_p5",
    "nndr_mean",
    "mia_auc",
    "mia_advantage",
)


def privacy_pieces(card, syn, train, holdout, settings, seed, point_detail, memo=None) -> dict:
    """Per synthetic row: distances to the two closest train rows (``d``), equal to a train
    row (``same``), and the distances of the attack's members / non-members (the point
    estimate's seeded samples) to it (``dm``, ``dn``: (members, n) arrays). ``memo``: the
    train split's dict of :func:`synllm.metrics.privacy.evaluate_privacy`."""
    enc, x_train, index = privacy.train_side(train, card, memo)
    x_syn = enc.transform(syn)
    d = privacy.nn_distances(index, x_syn, k=min(2, len(x_train)))
    train_hashes = once(memo, "train_hashes", lambda: privacy.row_hashes(train, card))
    same = np.isin(privacy.row_hashes(syn, card), train_hashes)
    half = int(settings["mia_sample"]) // 2
    m_idx = privacy.sample_rows(len(train), half, seed + 2)
    n_idx = privacy.sample_rows(len(holdout), half, seed + 3)
    dm = dn = None
    if len(m_idx) and len(n_idx):
        from sklearn.metrics import pairwise_distances

        dm = pairwise_distances(x_train[m_idx], x_syn)
        dn = pairwise_distances(enc.transform(holdout.iloc[n_idx]), x_syn)
    return {
        "d": d,
        "same": same,
        "dm": dm,
        "dn": dn,
        "rr": (point_detail or {}).get("real_real_nn_mean"),
    }


def take(pieces: dict, rows: np.ndarray) -> dict:
    """The pieces of the sub-table made of synthetic rows ``rows``."""
    out = dict(pieces, d=pieces["d"][rows], same=pieces["same"][rows])
    if pieces["dm"] is not None:
        out.update(dm=pieces["dm"][:, rows], dn=pieces["dn"][:, rows])
    return out


def privacy_replicates(pieces: dict, idx: np.ndarray) -> dict[str, list]:
    """:data:`PRIVACY_REPLICATED` for each row of resample indices ``idx``."""
    d, same, rr = pieces["d"], pieces["same"], pieces["rr"]
    ratio = privacy.nndr(d[:, 0], d[:, 1]) if d.shape[1] > 1 else None
    out: dict[str, list] = {n: [] for n in PRIVACY_REPLICATED}
    for rows in idx:
        d1 = d[rows, 0]
        out["identifiability"].append(float(same[rows].mean()))
        out["nn_ratio"].append(float(d1.mean() / rr) if rr else None)
        out["dcr_median"].append(float(np.median(d1)))
        out["dcr_p5"].append(float(np.percentile(d1, 5)))
        out["nndr_mean"].append(float(ratio[rows].mean()) if ratio is not None else None)
        auc = adv = None
        if pieces["dm"] is not None:
            cols = np.unique(rows)
            auc, adv = privacy.mia(
                pieces["dm"][:, cols].min(axis=1), pieces["dn"][:, cols].min(axis=1)
            )
        out["mia_auc"].append(auc)
        out["mia_advantage"].append(adv)
    return out


def _tstr_family(card, syn, train, test, idx, settings, seed, point) -> dict[str, list]:
    """TSTR scores per model and their means, refitted per replicate, recentred on ``test``."""
    models = list(settings["utility_models"])
    classes = utility.target_classes(card)
    enc = utility.FeatureEncoder(card).fit(train, syn)
    y_test = utility.target_codes(test[card.target], classes)
    x_test = enc.transform(test)[y_test >= 0]
    y_test = y_test[y_test >= 0]
    x_syn = enc.transform(syn)
    y_syn = utility.target_codes(syn[card.target], classes)

    def run(rows) -> dict[str, float | None]:
        keep = rows[y_syn[rows] >= 0]
        x, y = x_syn[keep], y_syn[keep]
        vals: dict[str, float | None] = {}
        for m in models:
            name = {s: f"tstr_{m}_{s}" for s in utility.SCORES}
            try:
                present = np.unique(y)
                if len(present) == 0:
                    raise ValueError("no synthetic row with a target")
                if len(present) == 1:
                    proba, _ = utility.constant_model(int(present[0]), len(classes), x.shape[1])
                else:
                    proba, _ = utility.fit_model(m, x, y, len(classes), seed, settings)
                sc, _ = utility.scores(y_test, proba(x_test))
                for s in utility.SCORES:
                    vals[name[s]] = sc.get(s)
            except Exception:  # noqa: BLE001 - a replicate that cannot be fitted has no value
                for s in utility.SCORES:
                    vals[name[s]] = None
        for s in utility.SCORES:
            got = [vals[f"tstr_{m}_{s}"] for m in models if vals[f"tstr_{m}_{s}"] is not None]
            vals[f"tstr_{s}_mean"] = float(np.mean(got)) if got else None
        return vals

    base = run(np.arange(len(syn)))
    out: dict[str, list] = {n: [] for n in base}
    for rows in idx:
        rep = _recentred(point, base, run(rows))
        for n in out:
            out[n].append(rep.get(n))
    return out


def replicates(
    card: DatasetCard,
    syn: pd.DataFrame,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    seed: int,
    settings: dict,
    point: dict,
    memo: dict | None = None,
) -> dict:
    """The ``bootstrap`` block of the metrics JSON for one evaluated cell.

    ``point`` is :func:`synllm.evaluate.evaluate`'s result (``metrics`` and the ``privacy``
    detail). ``memo``: :func:`synllm.evaluate.evaluate`'s dict for these splits; the
    reference rows' side and the train split's privacy side are computed once into it.
    Returns ``{"B", "seed", "reference_rows", "values": {name: [B values or None]},
    "fixed": [names without replicates], "seconds"}``; ``B`` is 0 (no values) when bootstrap
    is off, the cell failed or it has fewer than two rows.
    """
    b = int(settings.get("bootstrap", 0))
    n_ref = int(settings.get("bootstrap_reference", 1000))
    names = [m["name"] for m in point.get("metrics", [])]
    block = {
        "B": 0,
        "seed": int(seed),
        "reference_rows": n_ref,
        "values": {},
        "fixed": names,
        "seconds": 0.0,
    }
    if b <= 0 or point.get("status") != "ok" or len(syn) < 2:
        return block
    t0 = time.perf_counter()
    pvals = {m["name"]: (m["value"] if m["status"] == "ok" else None) for m in point["metrics"]}
    idx = resample_indices(len(syn), b, seed)
    memo = {} if memo is None else memo
    ref_memo = memo.setdefault(("bootstrap reference", seed, n_ref), {})
    ref = once(
        ref_memo,
        "rows",
        lambda: train.iloc[privacy.sample_rows(len(train), n_ref, seed + 11)].reset_index(
            drop=True
        ),
    )
    test = holdout.iloc[privacy.sample_rows(len(holdout), n_ref, seed + 12)].reset_index(drop=True)
    values: dict[str, list] = {}
    # B x (every metric) sklearn calls on the same argument types the point estimate has
    # already validated: their parameter checks were a fifth of the replicates' time. The
    # arrays are resamples of the rows the point estimate checked, so the finiteness scan of
    # every input (once per tree of the forest) is skipped too; trees still find NaN features
    # by their own sum, not by that scan
    with config_context(skip_parameter_validation=True, assume_finite=True):
        values.update(_table_family(card, syn, ref, idx, settings, pvals, ref_memo))
        pieces = privacy_pieces(
            card, syn, train, holdout, settings, seed, point.get("privacy"), memo.get("privacy")
        )
        values.update(privacy_replicates(pieces, idx))
        values.update(_tstr_family(card, syn, train, test, idx, settings, seed, pvals))
    # a metric whose point value failed has no interval to give
    values = {n: v for n, v in values.items() if n in pvals and pvals[n] is not None}
    block.update(
        B=b,
        values={
            n: [None if x is None else round(float(x), 6) for x in v] for n, v in values.items()
        },
        fixed=[n for n in names if n not in values],
        seconds=round(time.perf_counter() - t0, 3),
    )
    return block
