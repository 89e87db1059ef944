"""Per-group fairness (KL, utility) and membership inference on the real datasets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import entropy

from synllm.cards import find_card
from synllm.metrics.fairness import (
    age_band,
    fairness_gaps,
    fairness_table,
    kl_divergence,
)
from synllm.metrics.membership import membership_inference

CARDS = "resources/datasets"  # repo-relative: the tests run from the repo root (conftest.py)


@pytest.fixture(scope="module")
def splits(split):
    """``splits(name, n_train=None)``: the ``split`` fixture's (card, train, holdout), the train
    frame cut to a seeded sample of ``n_train`` rows."""

    def get(name: str, n_train: int | None = None):
        card, train, holdout = split(name)
        if n_train is not None:
            train = train.sample(n=n_train, random_state=0).reset_index(drop=True)
        return card, train, holdout

    return get


def shuffled(df: pd.DataFrame, keep: list[str], seed: int) -> pd.DataFrame:
    """Every column but ``keep`` permuted independently: same marginals, no joint structure."""
    rng = np.random.default_rng(seed)
    out = df.copy()
    for c in df.columns:
        if c not in keep:
            out[c] = df[c].to_numpy()[rng.permutation(len(df))]
    return out


@pytest.fixture(scope="module")
def diabetes(splits):
    return splits("diabetes", n_train=5000)


def test_kl_matches_scipy_on_hand_counts():
    p = pd.Series(["a"] * 6 + ["b"] * 3 + ["c"])
    q = pd.Series(["a"] * 2 + ["b"] * 8)
    ref = entropy(np.array([6.5, 3.5, 1.5]) / 11.5, np.array([2.5, 8.5, 0.5]) / 11.5)
    assert kl_divergence(p, q) == pytest.approx(ref)
    assert kl_divergence(p, p.sample(frac=1, random_state=1)) == 0.0


def test_identical_table_has_zero_kl_in_every_group(diabetes):
    card, train, _ = diabetes
    t = fairness_table(card, train, train.copy())
    kl = t[t.metric == "kl_mean"]
    assert set(kl.grouping) == {"gender", "age_band"}
    assert set(kl[kl.grouping == "age_band"].group) == {"<40", "40-60", ">=60"}
    assert (kl.value.abs() < 1e-12).all()
    assert (kl.n_real == kl.n_synthetic).all()


def test_shuffled_table_has_larger_kl_in_every_group(diabetes):
    card, train, _ = diabetes
    shuf = shuffled(train, keep=["gender"], seed=3)
    kl = (
        fairness_table(card, train, shuf)
        .query("metric == 'kl_mean'")
        .set_index(["grouping", "group"])
    )
    same = (
        fairness_table(card, train, train.copy())
        .query("metric == 'kl_mean'")
        .set_index(["grouping", "group"])
    )
    # gender is only weakly tied to the other features (measured KL 0.002-0.005), age strongly
    assert (kl.value > same.value + 1e-3).all(), kl.value
    assert (kl.loc["age_band"].value > 0.015).all()  # measured 0.019-0.045
    assert kl.loc["age_band"].value.min() > kl.loc["gender"].value.max()
    gaps = fairness_gaps(fairness_table(card, train, shuf))
    assert set(gaps.metric) == {"kl_mean"} and (gaps.gap >= 0).all()


def test_age_bands_use_years_and_days():
    card = find_card("cirrhosis", CARDS)
    df = pd.DataFrame({"Age": pd.array([3650, 18262, 14609, 21915, 36525, None], dtype="Int64")})
    # 10 y, 50 y, 39.997 y, 60.0 y, 100 y, missing
    assert age_band(card, df).tolist()[:5] == ["<40", "40-60", "<40", ">=60", ">=60"]
    assert pd.isna(age_band(card, df).iloc[5])
    dcard = find_card("diabetes", CARDS)
    ddf = pd.DataFrame({"age": [0.5, 39.99, 40.0, 59.9, 60.0]})
    assert age_band(dcard, ddf).tolist() == ["<40", "<40", "40-60", "40-60", ">=60"]


def test_per_group_utility_real_vs_shuffled_target(splits):
    card, train, holdout = splits("diabetes", n_train=8000)
    good = fairness_table(card, train, train, holdout, seed=0).query("metric == 'auc'")
    bad_synth = shuffled(train, keep=[c for c in card.feature_names if c != card.target], seed=1)
    bad = fairness_table(card, train, bad_synth, holdout, seed=0).query("metric == 'auc'")
    good_g = good[good.grouping == "gender"].set_index("group").value
    bad_g = bad[bad.grouping == "gender"].set_index("group").value
    assert set(good_g.index) >= {"Female", "Male"}
    assert (good_g[["Female", "Male"]] > 0.9).all()  # TRTR-like: XGBoost on real rows
    assert (bad_g[["Female", "Male"]] - 0.5).abs().max() < 0.1  # no signal left
    assert (good.n_real > 0).all()


def test_multiclass_utility_and_single_class_synthetic(splits):
    card, train, holdout = splits("cirrhosis")
    t = fairness_table(card, train, train, holdout, seed=0).query("metric == 'auc'")
    # 84 holdout rows: per-group AUCs are noisy (measured 0.44-0.96), the mean is not
    assert t.value.notna().all() and t.value.between(0, 1).all() and t.value.mean() > 0.65
    one_class = train.assign(Status="C")
    t1 = fairness_table(card, train, one_class, holdout).query("metric == 'auc'")
    assert t1.value.isna().all() and t1.reason.str.contains("single target class").all()


@pytest.mark.parametrize("name", ["stroke", "cirrhosis"])
def test_a_shared_memo_gives_the_tables_of_fresh_calls(splits, name):
    """One memo per evaluate job: the real side is computed by the first table, replayed for
    the next ones, and every table is exactly that of a call without the memo."""
    card, train, holdout = splits(name)
    tables = [
        shuffled(train, keep=[card.target], seed=s).sample(n=n, random_state=s)
        for s, n in ((1, 150), (2, 40), (3, 7))
    ]
    memo: dict = {}
    for t in tables:
        got = fairness_table(card, train, t, holdout, seed=0, min_synthetic_rows=5, memo=memo)
        ref = fairness_table(card, train, t, holdout, seed=0, min_synthetic_rows=5)
        pd.testing.assert_frame_equal(got, ref, check_exact=True)
    assert {"edges", "groupings", "holdout design"} <= set(memo)


def test_membership_inference_copy_vs_independent(splits):
    card, train, holdout = splits("stroke")
    leak = membership_inference(card, train, holdout, train, n=500, seed=0)
    assert leak["exact_match_rate_members"] == 1.0
    assert leak["mia_auc"] > 0.95 and leak["mia_advantage"] > 0.9
    from synllm.generate.baselines import sample_marginals

    safe = membership_inference(
        card, train, holdout, sample_marginals(train, card, 2000, 0), n=500, seed=0
    )
    assert abs(safe["mia_auc"] - 0.5) < 0.06 and safe["exact_match_rate_members"] < 0.01
