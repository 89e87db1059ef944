"""Profile values against direct pandas computations, for every dataset."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from synllm.profile import category_pmf, profile_table, strong_correlations


@pytest.fixture(scope="module")
def prof(dataset, split):
    card, train, _ = split(dataset)
    return card, train, profile_table(train, card)


def test_numeric_statistics_match_pandas(prof):
    card, train, p = prof
    assert p["n_rows"] == len(train)
    for name in card.numeric_columns:
        x = train[name].astype(float)
        col = p["columns"][name]
        assert col["mean"] == pytest.approx(x.mean(), rel=1e-12)
        assert col["std"] == pytest.approx(x.std(ddof=1), rel=1e-12)
        assert col["min"] == x.min() and col["max"] == x.max()
        for q in (0.05, 0.25, 0.5, 0.75, 0.95):
            assert col["quantiles"][f"{q:g}"] == pytest.approx(x.quantile(q))
        assert col["missing"] == int(x.isna().sum())


def test_categorical_pmf_matches_pandas_with_rare_merged(prof):
    card, train, p = prof
    for name in card.categorical_columns:
        counts = train[name].dropna().astype(str).value_counts()
        pmf = p["columns"][name]["pmf"]
        assert sum(pmf.values()) == pytest.approx(1.0)
        for value, n in counts.items():
            if n >= 5:
                assert pmf[value] == pytest.approx(n / counts.sum())
            else:
                assert value not in pmf or value == "Other"
        if (counts < 5).any():
            assert "Other" in pmf


def test_correlations_are_pearson_above_threshold(prof):
    card, train, p = prof
    cols = [c for c, s in card.columns.items() if s.type != "categorical"]
    corr = train[cols].astype(float).corr()
    listed = {(c["a"], c["b"]): c["rho"] for c in p["correlations"]}
    for i, a in enumerate(cols):
        for b in cols[i + 1 :]:
            rho = corr.loc[a, b]
            if not math.isnan(rho) and abs(rho) > 0.15:
                assert listed[(a, b)] == pytest.approx(rho)
            else:
                assert (a, b) not in listed
    json.dumps(p)  # serialisable as is


def test_rare_categories_merged_into_other():
    s = pd.Series(["a"] * 10 + ["b"] * 4 + ["c"] * 6 + [None])
    assert category_pmf(s, 5) == {"a": 0.5, "c": 0.3, "Other": 0.2}


def test_stroke_gender_other_is_rare(real):
    card, df = real("stroke")
    pmf = category_pmf(df["gender"], 5)
    assert set(pmf) == {"Female", "Male", "Other"}
    assert pmf["Other"] == pytest.approx(1 / 5110)


def test_strong_correlations_hand_example():
    df = pd.DataFrame({"x": [1, 2, 3, 4.0], "y": [2, 4, 6, 8.1], "z": [1, -1, 1, -1.0]})
    out = strong_correlations(df, ["x", "y", "z"], 0.5)
    assert [(c["a"], c["b"]) for c in out] == [("x", "y")]
    assert out[0]["rho"] == pytest.approx(np.corrcoef(df.x, df.y)[0, 1])
