"""Privacy metrics: hand-computed distances and attacks, and sanity on real splits."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from synllm.metrics import privacy as P

TOL = 1e-6
SETTINGS = {"distance_sample": 2000, "mia_sample": 2000}


def test_encoder_distances_by_hand(real):
    card, df = real("stroke")
    enc = P.MixedEncoder(card).fit(df)
    a = df.iloc[[0]].copy()
    b = a.copy()
    b["work_type"] = "Never_worked" if a["work_type"].iloc[0] != "Never_worked" else "Private"
    xa, xb = enc.transform(a), enc.transform(b)
    assert np.sum((xa - xb) ** 2) == pytest.approx(2.0, abs=TOL)
    c = a.copy()
    c["age"] = a["age"] + df["age"].std(ddof=1)
    assert np.sum((enc.transform(c) - xa) ** 2) == pytest.approx(1.0, abs=TOL)
    d = a.copy()
    d["bmi"] = np.nan  # imputed by the train mean -> standardised 0
    assert enc.transform(d)[0, card.numeric_columns.index("bmi")] == pytest.approx(0.0, abs=TOL)


def test_identifiability_by_hand(real):
    card, df = real("stroke")
    train = df.iloc[:100]
    syn = pd.concat([df.iloc[[3, 7]], df.iloc[[200, 300]]], ignore_index=True)
    assert P.identifiability(train, syn, card) == 0.5
    syn2 = syn.copy()
    syn2.loc[0, "bmi"] = syn2.loc[0, "bmi"] + 0.1 if pd.notna(syn2.loc[0, "bmi"]) else 30.0
    assert P.identifiability(train, syn2, card) == 0.25


def test_nndr_and_mia_by_hand():
    assert P.nndr(np.array([0.0, 1.0, 2.0]), np.array([0.0, 2.0, 2.0])).tolist() == [1.0, 0.5, 1.0]
    auc, adv = P.mia(np.array([0.0, 0.0]), np.array([1.0, 2.0]))
    assert (auc, adv) == (1.0, 1.0)
    m, n = np.array([0.1, 0.5, 0.9]), np.array([0.2, 0.6, 0.3])
    y = np.r_[1, 1, 1, 0, 0, 0]
    auc, adv = P.mia(m, n)
    assert auc == pytest.approx(roc_auc_score(y, -np.r_[m, n]), abs=TOL)
    assert adv == pytest.approx(1 / 3, abs=TOL)  # threshold 0.1: TPR 1/3, FPR 0


def test_nn_distances_match_brute_force():
    rng = np.random.default_rng(0)
    ref, q = rng.normal(size=(50, 4)), rng.normal(size=(7, 4))
    full = np.sqrt(((q[:, None, :] - ref[None, :, :]) ** 2).sum(-1))
    assert np.allclose(P.nn_distances(ref, q, 2), np.sort(full, axis=1)[:, :2], atol=TOL)


def test_copy_of_train_is_flagged_diabetes(split):
    """1,000 train rows copied: identifiable, at distance 0, compared with the full train."""
    card, train, holdout = split("diabetes")
    syn = train.sample(1000, random_state=3).reset_index(drop=True)
    results, detail = P.evaluate_privacy(train, holdout, syn, card, SETTINGS, seed=1)
    by = {r.metric.name: r.value for r in results}
    assert by["identifiability"] == 1.0
    assert by["nn_ratio"] < 1e-6
    assert by["dcr_median"] < 1e-6 and by["dcr_p5"] < 1e-6
    assert detail["n_train"] == len(train)


def test_copy_of_train_mia_and_holdout_like_table(split):
    card, train, holdout = split("stroke")
    results, _ = P.evaluate_privacy(train, holdout, train.copy(), card, SETTINGS, seed=1)
    by = {r.metric.name: r.value for r in results}
    assert by["identifiability"] == 1.0 and by["nn_ratio"] < 1e-6
    assert by["mia_auc"] > 0.9 and by["mia_advantage"] > 0.8
    # a table of unseen real records (half the holdout; the other half are the non-members)
    half = len(holdout) // 2
    syn, non_members = (
        holdout.iloc[:half].reset_index(drop=True),
        holdout.iloc[half:].reset_index(drop=True),
    )
    results, detail = P.evaluate_privacy(train, non_members, syn, card, SETTINGS, seed=1)
    by = {r.metric.name: r for r in results}
    assert all(r.status == "ok" for r in results)
    assert abs(by["mia_auc"].value - 0.5) < 0.06
    assert 0.8 < by["nn_ratio"].value < 1.3
    assert by["identifiability"].value == 0.0
    assert detail["non_member_overlap"] == 0.0


def test_holdout_as_synthetic_is_noted(split):
    """Non-members drawn from the same rows as the table: the reversal is flagged in a note."""
    card, train, holdout = split("stroke")
    results, detail = P.evaluate_privacy(train, holdout, holdout, card, SETTINGS, seed=1)
    auc = next(r for r in results if r.metric.name == "mia_auc")
    assert auc.value < 0.5 and "appear verbatim" in auc.note
    assert detail["non_member_overlap"] == 1.0


def test_empty_synthetic_fails_every_privacy_metric(split):
    card, train, holdout = split("cirrhosis")
    results, _ = P.evaluate_privacy(train, holdout, train.iloc[:0], card, SETTINGS, seed=1)
    assert results and all(r.status == "failed" and "empty" in r.reason for r in results)
