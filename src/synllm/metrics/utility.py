"""ML utility: train-synthetic-test-real (TSTR), train-real-test-synthetic (TRTS) and the
train-real-test-real reference, for a decision tree (max depth 5), a random forest (50
trees) and XGBoost (learning rate 0.3, depth 6, up to ``xgb_n_estimators`` rounds, early
stopping after 100 rounds without improvement of the log-loss on a stratified 20 % validation
split of its training data).

Features: every card column except the target. Numeric and binary columns stay numeric with
missing values as NaN (scikit-learn trees and XGBoost route NaN natively, nothing is
imputed); categorical columns are one-hot encoded by a ``OneHotEncoder`` fitted on the union
of real-train and synthetic categories (missing = its own ``<NA>`` level). Target classes are
the card's (binary 0/1, or the categorical target's categories) in card order.

Scores on each test set: accuracy, macro-F1 (``f1_score(average="macro")``), AUC (binary:
positive-class probability; multiclass: one-vs-rest macro AUC over the classes present in the
test labels, probabilities renormalised over them) and average precision. The JSON keeps the
confusion matrix (rows = true, columns = predicted, card class order), precision-recall curve
points (one-vs-rest per class for multiclass; thinned to at most 101 points), and feature
importances summed back to the original columns. A synthetic table whose target has a single
class trains the only model it allows, the constant predictor of that class (probability 1,
like ``DummyClassifier(strategy="prior")``): its TSTR scores are chance level (AUC 0.5,
accuracy = that class's share of the holdout), not missing, and the direction's detail has a
``note``. A model that cannot be trained or scored (e.g. AUC on a one-class test set, as in
TRTS on such a table) is recorded as failed with its reason. ``utility_train_max`` (default
None = all rows) optionally caps the real training rows by a seeded stratified sample.

Score groups: ``tstr_f1_mean`` and ``tstr_auc_mean`` (means over the models) feed Quality.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    roc_auc_score,
)
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import OneHotEncoder
from sklearn.tree import DecisionTreeClassifier

from synllm.cards import DatasetCard
from synllm.metrics.base import Result, declare, failed, mean_of, ok

MODELS = ("decision_tree", "random_forest", "xgboost")
DIRECTIONS = {
    "tstr": "train on synthetic, test on real holdout",
    "trts": "train on real train, test on synthetic",
    "reference": "train on real train, test on real holdout",
}
SCORES = {"accuracy": "accuracy", "f1": "macro-F1", "auc": "AUC (one-vs-rest for multiclass)"}
NA_LABEL = "<NA>"

for _d, _what in DIRECTIONS.items():
    for _s, _sw in SCORES.items():
        group = "quality" if _d == "tstr" and _s in ("f1", "auc") else None
        declare(
            f"{_d}_{_s}_mean",
            "utility",
            group,
            "higher",
            (0, 1),
            f"Mean {_sw} over the utility models, {_what}",
        )
        for _m in MODELS:
            declare(f"{_d}_{_m}_{_s}", "utility", None, "higher", (0, 1), f"{_sw} of {_m}, {_what}")


def target_classes(card: DatasetCard) -> list[str]:
    """Class labels of the target as strings, card order."""
    spec = card.columns[card.target]
    return ["0", "1"] if spec.type == "binary" else list(spec.categories or [])


def target_codes(s: pd.Series, classes: list[str]) -> np.ndarray:
    """Target as class indices into ``classes``; -1 for missing or unknown labels."""
    return pd.Categorical(s.astype("string").astype(object), categories=classes).codes.astype(int)


class FeatureEncoder:
    """Numerics/binaries as float (NaN kept), categoricals one-hot; ``fit(*frames)``."""

    def __init__(self, card: DatasetCard):
        self.card = card
        feats = [c for c in card.columns if c != card.target]
        self.numeric = [c for c in feats if card.columns[c].type != "categorical"]
        self.categorical = [c for c in feats if card.columns[c].type == "categorical"]

    def _cats(self, df: pd.DataFrame) -> pd.DataFrame:
        return df[self.categorical].astype("string").fillna(NA_LABEL).astype(object)

    def fit(self, *frames: pd.DataFrame) -> FeatureEncoder:
        self.onehot_ = None
        if self.categorical:
            both = pd.concat([self._cats(f) for f in frames], ignore_index=True)
            self.onehot_ = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(both)
        names = list(self.numeric)
        self.source_ = list(self.numeric)
        if self.onehot_ is not None:
            for c, cats in zip(self.categorical, self.onehot_.categories_):
                names += [f"{c}={v}" for v in cats]
                self.source_ += [c] * len(cats)
        self.names_ = names
        return self

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        parts = [df[self.numeric].astype("float64").to_numpy()]
        if self.onehot_ is not None:
            parts.append(self.onehot_.transform(self._cats(df)))
        return np.hstack(parts)

    def importances_by_column(self, values: np.ndarray) -> dict[str, float]:
        out: dict[str, float] = {}
        for src, v in zip(self.source_, values):
            out[src] = out.get(src, 0.0) + float(v)
        return out


def _split(x: np.ndarray, y: np.ndarray, seed: int, frac: float = 0.2):
    try:
        return train_test_split(x, y, test_size=frac, random_state=seed, stratify=y)
    except ValueError:
        return train_test_split(x, y, test_size=frac, random_state=seed)


def fit_model(name: str, x: np.ndarray, y: np.ndarray, n_classes: int, seed: int, settings: dict):
    """Fit one model; returns (predict_proba(x) -> (n, n_classes), importances (d,)).

    ``y`` holds indices into the card's classes; classes absent from ``y`` get probability 0.
    Raises ValueError when ``y`` has fewer than two classes.
    """
    present = np.unique(y)
    if len(present) < 2:
        raise ValueError(f"training data has a single class ({len(y)} rows)")
    remap = {c: i for i, c in enumerate(present)}
    yy = np.array([remap[v] for v in y])
    n_jobs = int(settings["n_jobs"])
    if name == "decision_tree":
        model = DecisionTreeClassifier(max_depth=5, random_state=seed).fit(x, yy)
    elif name == "random_forest":
        model = RandomForestClassifier(n_estimators=50, random_state=seed, n_jobs=n_jobs).fit(x, yy)
    elif name == "xgboost":
        from xgboost import XGBClassifier

        xt, xv, yt, yv = _split(x, yy, seed)
        if len(np.unique(yt)) < len(present):
            raise ValueError(
                "a class is missing from the XGBoost training part after the validation split"
            )
        keep = np.isin(yv, np.unique(yt))
        model = XGBClassifier(
            n_estimators=int(settings["xgb_n_estimators"]),
            learning_rate=0.3,
            max_depth=6,
            early_stopping_rounds=100,
            tree_method="hist",
            random_state=seed,
            n_jobs=n_jobs,
        )
        model.fit(xt, yt, eval_set=[(xv[keep], yv[keep])], verbose=False)
    else:
        raise ValueError(f"unknown utility model {name!r} (known: {', '.join(MODELS)})")

    return Fitted(model, present, n_classes), np.asarray(model.feature_importances_, dtype=float)


class Fitted:
    """A fitted model as ``proba(x) -> (n, n_classes)`` (picklable, for the real-fits cache)."""

    def __init__(self, model, present: np.ndarray, n_classes: int):
        self.model, self.present, self.n_classes = model, present, n_classes

    def __call__(self, xq: np.ndarray) -> np.ndarray:
        p = self.model.predict_proba(xq)
        full = np.zeros((len(xq), self.n_classes))
        full[:, self.present] = p
        return full


def constant_model(cls: int, n_classes: int, n_features: int):
    """The model a single-class training table allows: probability 1 for its class (like
    ``sklearn.dummy.DummyClassifier(strategy="prior")`` fitted on it), importances 0."""

    def proba(xq: np.ndarray) -> np.ndarray:
        full = np.zeros((len(xq), n_classes))
        full[:, cls] = 1.0
        return full

    return proba, np.zeros(n_features)


def thin(x: np.ndarray, n: int = 101) -> list[float]:
    """At most ``n`` evenly spaced points of a curve array (ends kept)."""
    if len(x) <= n:
        return [float(v) for v in x]
    idx = np.unique(np.linspace(0, len(x) - 1, n).round().astype(int))
    return [float(v) for v in x[idx]]


def auc_score(y: np.ndarray, p: np.ndarray) -> float:
    """Binary AUC of column 1, or OvR macro AUC over the classes present in ``y``."""
    present = np.unique(y)
    if len(present) < 2:
        raise ValueError("test labels have a single class")
    if p.shape[1] == 2:
        return float(roc_auc_score(y, p[:, 1]))
    sub = p[:, present]
    tot = sub.sum(axis=1, keepdims=True)
    sub = np.where(tot > 0, sub / np.where(tot > 0, tot, 1), 1.0 / len(present))
    if len(present) == 2:
        return float(roc_auc_score(y == present[1], sub[:, 1]))
    return float(roc_auc_score(y, sub, multi_class="ovr", labels=present, average="macro"))


def scores(y: np.ndarray, p: np.ndarray) -> tuple[dict, dict]:
    """The :data:`SCORES` of probabilities ``p`` (None where undefined) and why not."""
    pred = p.argmax(axis=1)
    out: dict = {
        "accuracy": float(accuracy_score(y, pred)),
        "f1": float(f1_score(y, pred, average="macro")),
    }
    errors = {}
    try:
        out["auc"] = auc_score(y, p)
    except ValueError as err:
        out["auc"], errors["auc"] = None, str(err)
    return out, errors


def score(y: np.ndarray, p: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, macro-F1, AUC, AP, confusion matrix and PR curves of probabilities ``p``."""
    values, errors = scores(y, p)
    out: dict = {
        "n_test": int(len(y)),
        "status": "ok",
        "reason": None,
        "errors": errors,
        "accuracy": values["accuracy"],
        "f1": values["f1"],
        "confusion_matrix": {
            "labels": classes,
            "matrix": confusion_matrix(y, p.argmax(axis=1), labels=range(len(classes))).tolist(),
        },
        "auc": values["auc"],
    }
    curves = {}
    targets = [1] if len(classes) == 2 else range(len(classes))
    for k in targets:
        yk = y == k
        if yk.all() or not yk.any():
            continue
        prec, rec, _ = precision_recall_curve(yk, p[:, k])
        curves[classes[k]] = {
            "precision": thin(prec),
            "recall": thin(rec),
            "average_precision": float(average_precision_score(yk, p[:, k])),
        }
    out["pr_curve"] = curves
    return out


REAL_FIT_KEYS = ("utility_models", "utility_train_max", "xgb_n_estimators", "n_jobs")
"""Settings the fits on real data depend on (keys of the real-fits cache)."""


def _real_part(train: pd.DataFrame, card: DatasetCard, settings: dict, seed: int) -> pd.DataFrame:
    cap = settings.get("utility_train_max")
    if cap and len(train) > int(cap):
        real, _ = train_test_split(
            train,
            train_size=int(cap),
            random_state=seed,
            stratify=target_codes(train[card.target], target_classes(card)),
        )
        return real
    return train


def _fit_real(
    m: str,
    enc: FeatureEncoder,
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    seed: int,
    settings: dict,
):
    try:
        proba, imp = fit_model(m, x, y, n_classes, seed, settings)
        return proba, enc.importances_by_column(imp)
    except Exception as err:  # noqa: BLE001 - recorded as the model's failure
        return f"{type(err).__name__}: {err}"


def _score_direction(
    fit,
    src: str,
    xt: np.ndarray,
    yt: np.ndarray,
    classes: list[str],
    n_train: int,
    note: str | None,
) -> dict:
    if isinstance(fit, str):
        return {"status": "failed", "reason": f"training on {src} data failed: {fit}"}
    if len(yt) == 0:
        return {"status": "failed", "reason": "empty test set"}
    try:
        out = score(yt, fit[0](xt), classes)
    except Exception as err:  # noqa: BLE001
        return {"status": "failed", "reason": f"{type(err).__name__}: {err}"}
    out["feature_importances"] = fit[1]
    if src == "synthetic" and note:
        out["note"] = note
    out["n_train"] = n_train
    return out


def real_fits(
    train: pd.DataFrame, holdout: pd.DataFrame, card: DatasetCard, settings: dict, seed: int
) -> dict:
    """What utility computes on real data only, the same for every cell of a dataset and seed:
    the models trained on real train and their scores on the real holdout (``reference``).

    The encoder here sees the real train only; :func:`evaluate_utility` uses the cache when a
    cell's encoder (real train + synthetic categories) has the same features, else it fits.
    """
    classes = target_classes(card)
    enc = FeatureEncoder(card).fit(train)
    real = _real_part(train, card, settings, seed)
    y_real, y_ho = (target_codes(d[card.target], classes) for d in (real, holdout))
    x_real, x_ho = enc.transform(real), enc.transform(holdout)
    ok_real, ok_ho = y_real >= 0, y_ho >= 0
    models = {}
    for m in settings["utility_models"]:
        fit = _fit_real(m, enc, x_real[ok_real], y_real[ok_real], len(classes), seed, settings)
        models[m] = {
            "fit": fit,
            "reference": _score_direction(
                fit, "real", x_ho[ok_ho], y_ho[ok_ho], classes, int(ok_real.sum()), None
            ),
        }
    return {
        "features": enc.names_,
        "seed": seed,
        "settings": {k: settings.get(k) for k in REAL_FIT_KEYS},
        "models": models,
    }


def cache_usable(cache: dict | None, features: list[str], settings: dict, seed: int) -> bool:
    """The cached real fits match this cell (same features, seed and fit settings)."""
    return (
        cache is not None
        and cache["features"] == features
        and cache["seed"] == seed
        and cache["settings"] == {k: settings.get(k) for k in REAL_FIT_KEYS}
    )


def evaluate_utility(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    syn: pd.DataFrame,
    card: DatasetCard,
    settings: dict,
    seed: int,
    cache: dict | None = None,
) -> tuple[list[Result], dict]:
    """Utility results (per model/direction and means) and the full detail dict.

    ``cache``: :func:`real_fits` of the same train, holdout, seed and settings; used when the
    features match (``detail['real_fits']`` says ``cached`` or ``fitted``).
    """
    import copy

    models = list(settings["utility_models"])
    classes = target_classes(card)
    enc = FeatureEncoder(card).fit(train, syn)
    real = _real_part(train, card, settings, seed)
    y_real, y_ho, y_syn = (target_codes(d[card.target], classes) for d in (real, holdout, syn))
    x_syn = enc.transform(syn)
    ok_real, ok_ho, ok_syn = y_real >= 0, y_ho >= 0, y_syn >= 0
    use_cache = cache_usable(cache, enc.names_, settings, seed)
    x_ho = enc.transform(holdout)
    if not use_cache:
        x_real = enc.transform(real)

    detail: dict = {
        "classes": classes,
        "features": enc.names_,
        "n_real_train": int(ok_real.sum()),
        "n_holdout": int(ok_ho.sum()),
        "n_synthetic": int(ok_syn.sum()),
        "models": {},
    }
    syn_present = np.unique(y_syn[ok_syn])
    single = int(syn_present[0]) if len(syn_present) == 1 else None
    note = (
        None
        if single is None
        else f"synthetic target has a single class ({classes[single]!r}): constant predictor of that class"
    )
    for m in models:
        per: dict = {}
        if use_cache:
            real_fit = cache["models"][m]["fit"]
            per["reference"] = copy.deepcopy(cache["models"][m]["reference"])
        else:
            real_fit = _fit_real(
                m, enc, x_real[ok_real], y_real[ok_real], len(classes), seed, settings
            )
            per["reference"] = _score_direction(
                real_fit, "real", x_ho[ok_ho], y_ho[ok_ho], classes, int(ok_real.sum()), None
            )
        if single is not None:
            proba, imp = constant_model(single, len(classes), x_syn.shape[1])
            syn_fit = (proba, enc.importances_by_column(imp))
        else:
            syn_fit = _fit_real(m, enc, x_syn[ok_syn], y_syn[ok_syn], len(classes), seed, settings)
        per["trts"] = _score_direction(
            real_fit, "real", x_syn[ok_syn], y_syn[ok_syn], classes, int(ok_real.sum()), note
        )
        per["tstr"] = _score_direction(
            syn_fit, "synthetic", x_ho[ok_ho], y_ho[ok_ho], classes, int(ok_syn.sum()), note
        )
        detail["models"][m] = {d: per[d] for d in ("reference", "trts", "tstr")}
    detail["real_fits"] = "cached" if use_cache else "fitted"

    results: list[Result] = []
    for d in DIRECTIONS:
        for s in SCORES:
            vals: dict[str, float | None] = {}
            for m in models:
                r = detail["models"][m][d]
                name = f"{d}_{m}_{s}"
                if r["status"] != "ok":
                    results.append(failed(name, r["reason"]))
                    vals[m] = None
                elif r.get(s) is None:
                    results.append(failed(name, r["errors"].get(s, "undefined")))
                    vals[m] = None
                else:
                    results.append(ok(name, r[s]))
                    vals[m] = r[s]
            results.append(mean_of(f"{d}_{s}_mean", vals, "models"))
    return results, detail
