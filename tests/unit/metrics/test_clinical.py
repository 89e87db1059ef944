"""Clinical consistency against hand-computed relation values and rule checks."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from synllm.metrics import clinical as C

TOL = 1e-6


def _rel(card, rid):
    return next(r for r in card.relations if r.id == rid)


def test_mean_difference_by_hand(real):
    card, _ = real("diabetes")
    rel = _rel(card, "hba1c_by_diabetes")  # default groups [1, 0]
    df = pd.DataFrame(
        {
            "HbA1c_level": [7.0, 8.0, 5.0, 6.0, np.nan],
            "diabetes": pd.array([1, 1, 0, 0, 1], dtype="Int64"),
        }
    )
    assert C.relation_value(df, rel) == pytest.approx(7.5 - 5.5, abs=TOL)


def test_mean_difference_with_string_groups(real):
    card, _ = real("cirrhosis")
    rel = _rel(card, "bilirubin_by_death")  # groups [D, C]
    df = pd.DataFrame({"Bilirubin": [3.0, 5.0, 1.0, 9.0], "Status": ["D", "D", "C", "CL"]})
    assert C.relation_value(df, rel) == pytest.approx(3.0, abs=TOL)
    empty = df[df.Status != "C"]
    with pytest.raises(ValueError, match="Status == 'C'"):
        C.relation_value(empty, rel)


def test_correlation_is_spearman(real):
    card, df = real("cirrhosis")
    rel = _rel(card, "bilirubin_rises_with_stage")
    keep = df[["Bilirubin", "Stage"]].dropna()
    want = stats.spearmanr(keep["Bilirubin"], keep["Stage"].astype(float)).statistic
    assert C.relation_value(df, rel) == pytest.approx(want, abs=TOL)
    assert want > 0  # the card's expected sign holds in real data


def test_deviation_scaling(real):
    card, df = real("diabetes")
    md = _rel(card, "glucose_by_diabetes")
    sd = df["blood_glucose_level"].astype(float).std(ddof=1)
    assert C.relation_deviation(60.0, 40.0, md, df) == pytest.approx(20.0 / sd, abs=TOL)
    cr = _rel(real("cirrhosis")[0], "albumin_falls_with_stage")
    assert C.relation_deviation(-0.3, 0.1, cr, df) == pytest.approx(0.4, abs=TOL)


def test_rule_violations_by_hand(real):
    card, _ = real("diabetes")
    rule = next(r for r in card.rules if r.id == "glucose_implies_diabetes")
    df = pd.DataFrame(
        {
            "blood_glucose_level": pd.array([250, 250, 100, pd.NA], dtype="Int64"),
            "diabetes": pd.array([0, 1, 0, 0], dtype="Int64"),
        }
    )
    assert C.rule_violations(df, rule).tolist() == [True, False, False, False]


def test_real_train_is_consistent_with_itself(real):
    card, df = real("diabetes")
    train, syn = df.iloc[:20000], df.iloc[20000:22000].reset_index(drop=True)
    results, detail = C.evaluate_clinical(train, train, card)
    by = {r.metric.name: r for r in results}
    assert by["clinical_consistency"].value == pytest.approx(0.0, abs=TOL)
    assert by["clinical_sign_agreement"].value == 1.0
    assert by["rule_violation_rate"].value == 0.0  # real records pass the card's rules
    results, _ = C.evaluate_clinical(train, syn, card)
    assert {r.metric.name: r for r in results}["clinical_consistency"].value < 0.2


def test_broken_relations_and_violations_are_reported(real):
    card, df = real("diabetes")
    train = df.iloc[:5000]
    syn = df.iloc[5000:5400].reset_index(drop=True).copy()
    # flip the label: HbA1c/glucose relations reverse and rules break
    syn["diabetes"] = (1 - syn["diabetes"]).astype("Int64")
    results, detail = C.evaluate_clinical(train, syn, card)
    by = {r.metric.name: r for r in results}
    assert by["clinical_sign_agreement"].value < 0.5
    assert by["clinical_consistency"].value > 0.5
    h, g, d = (
        syn["HbA1c_level"],
        syn["blood_glucose_level"].astype(float),
        syn["diabetes"].astype(int),
    )
    by_hand = ((h > 6.6) & (d == 0)) | ((g > 200) & (d == 0)) | ((d == 1) & (h < 5.7))
    assert by["rule_violation_rate"].value == pytest.approx(by_hand.mean(), abs=TOL)
    assert by_hand.mean() > 0.3
    assert all(r["status"] == "ok" for r in detail["rules"])


def test_undefined_relation_is_named_not_dropped(real):
    card, df = real("diabetes")
    syn = df[df.diabetes == 0].iloc[:300].reset_index(drop=True)
    results, detail = C.evaluate_clinical(df.iloc[:5000], syn, card)
    by = {r.metric.name: r for r in results}
    assert by["clinical_consistency"].status == "failed"
    assert "every relation undefined" in by["clinical_consistency"].reason
    assert all(
        r["status"] == "failed" and "diabetes == 1" in r["reason"] for r in detail["relations"]
    )


def test_once_computes_a_key_once_and_replays_its_error():
    from synllm.metrics.base import once

    calls = []

    def fn():
        calls.append(1)
        raise ValueError("undefined")

    memo: dict = {}
    for _ in range(2):
        with pytest.raises(ValueError, match="undefined"):
            once(memo, "k", fn)
    assert len(calls) == 1
    assert once(memo, "v", lambda: 3) == once(memo, "v", lambda: 4) == 3
    assert once(None, "v", lambda: 4) == 4  # no memo: computed every time
