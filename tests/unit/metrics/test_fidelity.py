"""Fidelity and correlation metrics against direct scipy/sklearn or hand-computed values."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon
from sklearn.metrics import mutual_info_score

from synllm.metrics import fidelity as F

TOL = 1e-6


def test_bin_index_under_over_flow_and_missing():
    edges = np.array([0.0, 1.0, 2.0, 4.0])  # 3 interior bins
    x = np.array([-1, 0, 0.5, 1, 3.9, 4, 5, np.nan])
    assert F.bin_index(x, edges).tolist() == [0, 1, 1, 2, 3, 3, 4, 5]


def test_numeric_pmfs_by_hand():
    real = pd.Series([1.0, 2.0, 3.0, 4.0])
    syn = pd.Series([0.0, 2.5, 9.0, np.nan])
    p, q = F.numeric_pmfs(real, syn, bins=2)  # edges 1, 2.5, 4 -> 2 interior bins
    assert np.allclose(p, [0, 0.5, 0.5, 0, 0])
    assert np.allclose(q, [0.25, 0, 0.25, 0.25, 0.25])


def test_js_divergence_matches_scipy_and_bounds():
    p, q = np.array([0.2, 0.3, 0.5]), np.array([0.5, 0.4, 0.1])
    assert F.js_divergence(p, q) == pytest.approx(jensenshannon(p, q, base=2) ** 2, abs=TOL)
    assert F.js_divergence(np.array([1.0, 0]), np.array([0, 1.0])) == pytest.approx(1.0, abs=TOL)
    assert F.js_divergence(p, p) == pytest.approx(0.0, abs=TOL)


def test_kl_divergence_smoothed_by_hand():
    p, q = np.array([0.5, 0.5]), np.array([0.25, 0.75])
    exact = 0.5 * np.log(0.5 / 0.25) + 0.5 * np.log(0.5 / 0.75)
    assert F.kl_divergence(p, q, eps=1e-12) == pytest.approx(exact, abs=TOL)
    eps = 0.01
    ps, qs = (p + eps) / (1 + 2 * eps), (q + eps) / (1 + 2 * eps)
    assert F.kl_divergence(p, q, eps) == pytest.approx(stats.entropy(ps, qs), abs=TOL)
    assert np.isfinite(F.kl_divergence(np.array([1.0, 0]), np.array([0, 1.0]), 1e-4))


@pytest.mark.filterwarnings("ignore:p-value")
def test_numeric_column_metrics_match_scipy():
    rng = np.random.default_rng(0)
    r, s = rng.normal(0, 2, 300), rng.normal(0.5, 1, 120)
    out = F.column_metrics(pd.Series(r), pd.Series(s), True, bins=10, eps=1e-4)
    assert out["ks"] == pytest.approx(stats.ks_2samp(r, s).statistic, abs=TOL)
    assert out["wasserstein"] == pytest.approx(
        stats.wasserstein_distance(r, s) / np.std(r, ddof=1), abs=TOL
    )
    ad = stats.anderson_ksamp([r, s], variant="midrank")
    assert out["ad"] == pytest.approx(ad.statistic, abs=TOL)
    assert out["ad_pvalue"] == pytest.approx(ad.pvalue, abs=TOL)
    lo, hi = max(r.min(), s.min()), min(r.max(), s.max())
    assert out["range_coverage"] == pytest.approx((hi - lo) / (r.max() - r.min()), abs=TOL)
    assert out["column_shape"] == pytest.approx(1 - out["ks"], abs=TOL)
    assert "errors" not in out


def test_range_coverage_by_hand():
    assert F.range_coverage(np.array([0.0, 10]), np.array([5.0, 20])) == pytest.approx(0.5)
    assert F.range_coverage(np.array([0.0, 10]), np.array([11.0, 20])) == 0.0
    assert F.range_coverage(np.array([0.0, 10]), np.array([-1.0, 20])) == 1.0


def test_chi_square_by_hand_and_scipy():
    real = pd.Series(["a", "a", "a", "b"])
    syn = pd.Series(["a", "b", "b", "b"])
    exp = 4 * np.array([3.5, 1.5]) / 5
    stat, pval = F.chi_square(real, syn)
    by_hand = (1 - exp[0]) ** 2 / exp[0] + (3 - exp[1]) ** 2 / exp[1]
    assert stat == pytest.approx(by_hand, abs=TOL)
    assert pval == pytest.approx(stats.chisquare([1, 3], exp).pvalue, abs=TOL)


def test_category_preservation_and_categorical_pmfs():
    real = pd.Series(["a", "b", "c", None], dtype=object)
    syn = pd.Series(["a", "a", None, "d"], dtype=object)
    assert F.category_preservation(real, syn) == pytest.approx(1 / 3)
    p, q, cats = F.categorical_pmfs(real, syn)
    assert cats == ["<NA>", "a", "b", "c", "d"]
    assert np.allclose(p, [0.25, 0.25, 0.25, 0.25, 0]) and np.allclose(q, [0.25, 0.5, 0, 0, 0.25])


@pytest.mark.parametrize(
    "values,dtype",
    [
        (["a", None, "b", "a", float("nan"), "<NA>"], object),
        ([1, 0, None, 1], "Int64"),
        ([1.0, 0.0, float("nan"), 1.0], "float64"),
    ],
)
def test_category_counts_are_those_of_the_separate_conversions(values, dtype):
    """The four categorical metrics read one conversion; it counts what each of them
    computed on its own (labels with missing as <NA>, non-missing values as strings)."""
    s = pd.Series(values, dtype=dtype)
    memo: dict = {}
    with_missing, present = F.category_counts(s, memo)
    assert with_missing.to_dict() == F.labels(s).value_counts().to_dict()
    assert present.to_dict() == s.dropna().astype("string").value_counts().to_dict()
    assert F.category_counts(s, memo)[0] is with_missing  # computed once per memo


def test_binary_int64_column_is_categorical():
    real = pd.Series([0, 1, 1, 0], dtype="Int64")
    syn = pd.Series([1, 1, 1, pd.NA], dtype="Int64")
    out = F.column_metrics(real, syn, False, bins=10, eps=1e-4)
    p = np.array([0, 0.5, 0.5])  # <NA>, 0, 1
    q = np.array([0.25, 0, 0.75])
    assert out["jsd"] == pytest.approx(jensenshannon(p, q, base=2) ** 2, abs=TOL)
    assert out["category_preservation"] == 0.5


def test_mutual_information_matches_sklearn():
    rng = np.random.default_rng(1)
    t = rng.integers(0, 2, 500)
    x = t * 2 + rng.normal(0, 1, 500)
    codes = F.discretise(pd.Series(x), pd.Series(x), True, 10)
    assert len(np.unique(codes)) == 10
    assert F.mutual_information(codes, t) == pytest.approx(mutual_info_score(t, codes), abs=TOL)
    # string labels (categorical columns, <NA> as a level): exactly sklearn's value
    labels = np.array(["a", "b", "<NA>"], dtype=object)[rng.integers(0, 3, 500)]
    assert F.mutual_information(labels, t) == mutual_info_score(t, labels)


def test_reference_memo_gives_the_same_values(real):
    """The bootstrap scores many tables against one reference: the real side of every
    fidelity, correlation and clinical metric is computed once into ``reference``, and every
    value (per column, results, correlation detail, clinical detail) equals a call without it."""
    from synllm.metrics import clinical

    card, df = real("stroke")
    ref, settings = df.iloc[:1000], {"bins": 20, "kl_epsilon": 1e-4, "mi_bins": 10, "top_pairs": 5}
    memo: dict = {}
    for start in (1000, 1500):
        syn = df.iloc[start : start + 300].reset_index(drop=True)
        plain = F.evaluate_fidelity(ref, syn, card, settings)
        memoed = F.evaluate_fidelity(ref, syn, card, settings, memo)
        assert plain[1:] == memoed[1:]
        assert [(r.value, r.note) for r in plain[0]] == [(r.value, r.note) for r in memoed[0]]
        plain_c = clinical.evaluate_clinical(ref, syn, card)
        memo_c = clinical.evaluate_clinical(ref, syn, card, memo)
        assert plain_c[1] == memo_c[1]
        assert [r.value for r in plain_c[0]] == [r.value for r in memo_c[0]]
    mi = {k[1] for k in memo if isinstance(k, tuple) and k[0] == "mi"}
    assert mi == set(card.columns) - {card.target}
    assert {("column", c) for c in card.columns} <= set(memo)
    assert {("relation", i) for i in range(len(card.relations))} <= set(memo)


def test_frobenius_by_hand():
    r = np.array([[1, 0.5], [0.5, 1]])
    assert F.frobenius_difference(r, np.eye(2)) == pytest.approx(0.5, abs=TOL)
    rng = np.random.default_rng(2)
    a = np.corrcoef(rng.normal(size=(4, 50)))
    b = np.corrcoef(rng.normal(size=(4, 50)))
    assert F.frobenius_difference(a, b) == pytest.approx(
        np.linalg.norm(a - b) / np.sqrt(12), abs=TOL
    )


def test_fidelity_on_real_data_constant_column_is_noted(real):
    card, df = real("stroke")
    train = df.iloc[:2000]
    syn = df.iloc[2000:2300].copy()
    syn["heart_disease"] = pd.array([0] * len(syn), dtype="Int64")
    settings = {"bins": 20, "kl_epsilon": 1e-4, "mi_bins": 10, "top_pairs": 5}
    results, per, corr = F.evaluate_fidelity(train, syn, card, settings)
    by = {r.metric.name: r for r in results}
    assert all(r.status == "ok" for r in results), [
        (r.metric.name, r.reason) for r in results if r.status != "ok"
    ]
    assert "heart_disease" in by["corr_frobenius"].note
    assert per["age"]["ks"] == pytest.approx(
        stats.ks_2samp(train["age"].to_numpy(), syn["age"].to_numpy()).statistic, abs=TOL
    )
    assert by["ks_mean"].value == pytest.approx(
        np.mean([per[c]["ks"] for c in card.numeric_columns]), abs=TOL
    )
    pair_names = {(p["a"], p["b"]) for p in corr["pairs"]}
    assert len(pair_names) >= 5
    assert set(per) == set(card.columns) and "mi_diff" not in per[card.target]


def test_holdout_beats_shuffled_columns_on_correlation_and_mi(split):
    """Holdout rows keep the joint structure; independently permuted columns destroy it."""
    card, train, holdout = split("diabetes")
    train = train.iloc[:30000]
    syn = holdout.iloc[:3000].reset_index(drop=True)
    rng = np.random.default_rng(7)
    shuffled = pd.DataFrame({c: syn[c].to_numpy()[rng.permutation(len(syn))] for c in syn})
    shuffled = shuffled.astype(syn.dtypes.to_dict())
    settings = {"bins": 20, "kl_epsilon": 1e-4, "mi_bins": 10, "top_pairs": 5}
    good = {r.metric.name: r.value for r in F.evaluate_fidelity(train, syn, card, settings)[0]}
    bad = {r.metric.name: r.value for r in F.evaluate_fidelity(train, shuffled, card, settings)[0]}
    assert good["corr_frobenius"] < bad["corr_frobenius"] / 3
    assert good["mi_diff_mean"] < bad["mi_diff_mean"] / 3
    assert good["correlation_similarity_mean"] > bad["correlation_similarity_mean"]
    # marginals are identical under column permutation
    assert good["ks_mean"] == pytest.approx(bad["ks_mean"], abs=TOL)


def test_sdmetrics_scores_match_sdmetrics(real):
    """column_shape and correlation_similarity are sdmetrics' KSComplement / TVComplement /
    CorrelationSimilarity, computed without importing sdmetrics at evaluation time."""
    from sdmetrics.column_pairs import CorrelationSimilarity
    from sdmetrics.single_column import KSComplement, TVComplement

    card, df = real("cirrhosis")
    r, s = df.iloc[:250], df.iloc[250:].reset_index(drop=True)
    for c, spec in card.columns.items():
        out = F.column_metrics(r[c], s[c], spec.is_numeric, 20, 1e-4)
        if spec.is_numeric:
            want = KSComplement.compute(r[c].astype(float).dropna(), s[c].astype(float).dropna())
        else:
            want = TVComplement.compute(r[c], s[c])
        assert out["column_shape"] == pytest.approx(want, abs=TOL), c
    _, corr = F.evaluate_correlation(r, s, card, top_pairs=3)
    cols = corr["columns"]
    for a, b in [(cols[i], cols[j]) for i in range(len(cols)) for j in range(i + 1, len(cols))]:
        want = CorrelationSimilarity.compute(r[[a, b]].astype(float), s[[a, b]].astype(float))
        assert corr["similarity"][f"{a}~{b}"] == pytest.approx(want, abs=TOL), (a, b)
