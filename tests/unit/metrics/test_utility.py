"""ML utility: scores against sklearn, multiclass AUC with absent classes, one-class data."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score

from synllm.metrics import utility as U

TOL = 1e-6
SETTINGS = {
    "utility_models": list(U.MODELS),
    "n_jobs": 2,
    "xgb_n_estimators": 200,
    "utility_train_max": None,
}


def test_score_matches_sklearn_binary():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p1 = np.clip(y * 0.3 + rng.uniform(0, 0.7, 200), 0, 1)
    p = np.c_[1 - p1, p1]
    out = U.score(y, p, ["0", "1"])
    pred = p.argmax(1)
    assert out["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=TOL)
    assert out["f1"] == pytest.approx(f1_score(y, pred, average="macro"), abs=TOL)
    assert out["auc"] == pytest.approx(roc_auc_score(y, p1), abs=TOL)
    assert out["confusion_matrix"]["matrix"] == confusion_matrix(y, pred).tolist()
    curve = out["pr_curve"]["1"]
    assert len(curve["precision"]) <= 101 and curve["recall"][0] == 1.0


def test_multiclass_auc_over_present_classes():
    rng = np.random.default_rng(1)
    p = rng.dirichlet([1, 1, 1], size=60)
    y = rng.integers(0, 3, 60)
    assert U.auc_score(y, p) == pytest.approx(roc_auc_score(y, p, multi_class="ovr"), abs=TOL)
    y2 = np.where(y == 1, 0, y)  # class 1 absent from the test labels
    sub = p[:, [0, 2]] / p[:, [0, 2]].sum(1, keepdims=True)
    assert U.auc_score(y2, p) == pytest.approx(roc_auc_score(y2 == 2, sub[:, 1]), abs=TOL)
    with pytest.raises(ValueError, match="single class"):
        U.auc_score(np.zeros(5, int), p[:5])


def test_single_class_training_is_an_error():
    with pytest.raises(ValueError, match="single class"):
        U.fit_model("decision_tree", np.zeros((10, 2)), np.zeros(10, int), 2, 0, SETTINGS)


def test_absent_class_gets_zero_probability():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 3))
    y = np.where(x[:, 0] > 0, 2, 0)  # class 1 of 3 never seen
    for m in U.MODELS:
        proba, imp = U.fit_model(m, x, y, 3, 0, SETTINGS)
        p = proba(x[:20])
        assert (
            p.shape == (20, 3) and np.allclose(p[:, 1], 0) and np.allclose(p.sum(1), 1, atol=1e-5)
        )
        assert imp.shape == (3,)


def test_stroke_tstr_trts_reference(split):
    card, train, holdout = split("stroke")
    syn = holdout.sample(600, random_state=0).reset_index(drop=True)
    results, detail = U.evaluate_utility(train, holdout, syn, card, SETTINGS, seed=0)
    by = {r.metric.name: r for r in results}
    assert all(r.status == "ok" for r in results), [
        (n, r.reason) for n, r in by.items() if r.status != "ok"
    ]
    assert by["reference_auc_mean"].value > 0.7
    dt = detail["models"]["decision_tree"]["tstr"]
    assert set(dt["feature_importances"]) == set(card.columns) - {card.target}
    assert sum(dt["feature_importances"].values()) == pytest.approx(1.0, abs=1e-6)
    assert np.sum(dt["confusion_matrix"]["matrix"]) == len(holdout)
    # the decision tree is a plain sklearn tree: same inputs, same scores
    from sklearn.tree import DecisionTreeClassifier

    enc = U.FeatureEncoder(card).fit(train, syn)
    y_syn = U.target_codes(syn[card.target], ["0", "1"])
    y_ho = U.target_codes(holdout[card.target], ["0", "1"])
    clf = DecisionTreeClassifier(max_depth=5, random_state=0).fit(enc.transform(syn), y_syn)
    assert by["tstr_decision_tree_auc"].value == pytest.approx(
        roc_auc_score(y_ho, clf.predict_proba(enc.transform(holdout))[:, 1]), abs=TOL
    )


def test_one_class_synthetic_trains_the_constant_predictor(split):
    card, train, holdout = split("stroke")
    syn = holdout[holdout.stroke == 0].iloc[:200].reset_index(drop=True)
    results, detail = U.evaluate_utility(train, holdout, syn, card, SETTINGS, seed=0)
    by = {r.metric.name: r for r in results}
    y_ho = holdout.stroke.astype(int).to_numpy()
    const = np.zeros_like(y_ho)  # the only model a stroke=0 table allows
    for m in U.MODELS:
        assert by[f"tstr_{m}_auc"].status == "ok" and by[f"tstr_{m}_auc"].value == 0.5
        assert by[f"tstr_{m}_accuracy"].value == pytest.approx(accuracy_score(y_ho, const), abs=TOL)
        assert by[f"tstr_{m}_f1"].value == pytest.approx(
            f1_score(y_ho, const, average="macro"), abs=TOL
        )
        assert "single class" in detail["models"][m]["tstr"]["note"]
        assert by[f"trts_{m}_accuracy"].status == "ok"
        assert (
            by[f"trts_{m}_auc"].status == "failed" and "single class" in by[f"trts_{m}_auc"].reason
        )
    assert by["tstr_auc_mean"].value == 0.5


def test_cirrhosis_multiclass_with_missing_values_and_absent_class(split):
    card, train, holdout = split("cirrhosis")
    syn = train[train.Status != "CL"].reset_index(drop=True)  # NaN-rich, no CL
    results, detail = U.evaluate_utility(train, holdout, syn, card, SETTINGS, seed=0)
    by = {r.metric.name: r for r in results}
    assert all(r.status == "ok" for r in results), [
        (n, r.reason) for n, r in by.items() if r.status != "ok"
    ]
    cm = detail["models"]["random_forest"]["tstr"]["confusion_matrix"]
    assert cm["labels"] == ["C", "CL", "D"]
    assert all(row[1] == 0 for row in cm["matrix"])  # CL never predicted
    assert set(detail["models"]["xgboost"]["reference"]["pr_curve"]) == {"C", "CL", "D"}
