"""Scores: normalisation, Quality / Privacy / Harmonic, utility, GFI and efficiency.

Definitions (also written to ``tables/score_definitions.md`` by :mod:`synllm.aggregate`):

- **Normalisation.** For every dataset and metric name, the values of all cells of the run
  whose cell status and metric status are ``ok`` are min-max scaled to [0, 1] and aligned so
  that 1 is best: ``x = (v - min) / (max - min)``, ``1 - x`` when the metric's ``direction``
  is ``lower``. A metric with the same value in every cell (``max - min <= 1e-12 * max(1, |max|)``)
  gives 1.0 to every cell. A failed metric value is skipped for that cell only.
- **Anchored normalisation** (config ``scores.normalisation: anchored``; the default ``run``
  is the min-max above). Per dataset and metric, ``x = (v - w) / (b - w)`` clipped to [0, 1],
  with ``b`` the value of the real ``holdout`` baseline (scores 1) and ``w`` that of the worst
  reference (scores 0): the ``uniform`` baseline (independent uniform values over the card's
  ranges and categories) for every metric except score group ``privacy``, whose worst is
  ``train_copy`` (verbatim train rows; uniform noise is the most private table there is).
  Anchor values are the means over the anchor's ok cells; a missing one falls back to the
  end of the metric's declared ``range``; when the anchors do not differ in the metric's
  direction by 1 % of a bounded range, both range ends are used; an unbounded metric with such
  anchors is left out for that dataset. A cell's anchored scores depend on that cell and the
  anchors only, so they do not move when another model joins or leaves the run.
- **Quality** of a cell = mean of its normalised metrics with ``score_group == "quality"``;
  **Privacy** likewise over ``"privacy"`` (Anonymeter's risks, config ``anonymeter``, are
  shown in ``table_privacy`` only: they scale with the cell's size relative to train, see
  docs/privacy.md); **Harmonic** = 2QP / (Q + P), 0 when Q + P = 0.
  A failed cell (metrics ``status: failed``) has no scores ("–" in tables).
- **Utility** of a cell = mean of the six Table V scores of the cell (TSTR and TRTS accuracy,
  macro-F1 and ROC-AUC; each the mean over the classifiers, or one classifier when chosen),
  each min-max normalised within the dataset like a metric (higher is better). The
  real->real reference scores are not part of it (they do not depend on the synthetic data).
  **Clinical** = mean of its normalised metrics whose family starts with ``clinical``.
- **GFI** (global fidelity index) of a cell = unweighted mean of the available components
  among Quality, Privacy, Utility and Clinical (each in [0, 1], higher is better); a failed
  cell counts as GFI = 0, so a model that produces little valid data is not rewarded for speed.
- **Efficiency** per model = (NormSpeed + GFI) / 2, with GFI the mean cell GFI of the model
  and NormSpeed = min-max normalised (across the ranked models) inverse mean generation
  duration ``1 / mean(wall_seconds)``: 1 = fastest, 0 = slowest. Higher is better. Ranked
  models are the LLMs with at least one valid cell; baselines and models that never produced
  a valid record are listed without rank.
- **Intervals.** With one repeat, a cell's 95 % interval comes from its bootstrap replicates
  (synthetic records resampled, ``evaluation.bootstrap`` times), each replicate normalised like
  the point value: the point score ± ``t_{0.975, B-1}`` x the replicates' SD (clipped to [0, 1])
  below 100 replicates, the 2.5-97.5 % percentiles from 100 on
  (:mod:`synllm.aggregate.uncertainty`).
- **Repeats.** Scores are computed per repeat; tables show the mean over repeats and, when
  there is more than one, the half-width of the 95 % t-interval
  ``t_{0.975, n-1} * s / sqrt(n)``.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
from scipy import stats

from synllm.aggregate.load import KEY
from synllm.errors import SynllmError

CONST_TOL = 1e-12
SCORES = ["quality", "privacy", "harmonic", "utility", "clinical", "gfi"]


# --------------------------------------------------------------------------- helpers
def mean_ci(values) -> tuple[float, float, int]:
    """Mean, 95 % t-interval half-width and count of the finite ``values``.

    The half-width is NaN for fewer than two values (no interval from one repeat).
    """
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    n = len(v)
    if n == 0:
        return math.nan, math.nan, 0
    mean = float(v.mean())
    if n < 2:
        return mean, math.nan, n
    half = float(stats.t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return mean, half, n


def harmonic(q, p):
    """Element-wise 2QP / (Q + P); 0 where Q + P == 0, NaN where Q or P is NaN."""
    q = np.asarray(q, dtype=float)
    p = np.asarray(p, dtype=float)
    s = q + p
    with np.errstate(invalid="ignore", divide="ignore"):
        h = np.where(s == 0, 0.0, 2 * q * p / np.where(s == 0, 1.0, s))
    return np.where(np.isnan(q) | np.isnan(p), np.nan, h)


def minmax(values: pd.Series) -> pd.Series:
    """Min-max scale finite values to [0, 1]; a constant series -> 1.0; NaN stays NaN."""
    lo, hi = values.min(), values.max()
    if not np.isfinite(lo):
        return values * np.nan
    if hi - lo <= CONST_TOL * max(1.0, abs(hi)):
        return values.where(values.isna(), 1.0)
    return (values - lo) / (hi - lo)


# --------------------------------------------------------------------------- cell scores
def normalise(
    metrics: pd.DataFrame,
    mode: str = "run",
    anchors: pd.DataFrame | None = None,
    by: tuple[str, ...] = (),
) -> pd.DataFrame:
    """Add ``norm`` (in [0, 1], 1 = best) to the long metrics frame (see module doc).

    ``metrics`` has ``KEY`` + ``name, direction, value`` (NaN for failed values); for
    ``mode="anchored"`` also ``score_group`` and the declared ``range_lo`` / ``range_hi`` when
    present. ``by``: extra columns that split the run's pool (bootstrap replicates).
    ``anchors`` (anchored only): :func:`anchor_table` of the point estimates; default: taken
    from ``metrics`` itself.
    """
    if mode not in NORMALISATIONS:
        raise SynllmError(
            f"scores.normalisation must be one of {list(NORMALISATIONS)}, got {mode!r}"
        )
    out = metrics.copy()
    out["norm"] = np.nan
    if out.empty:
        return out
    if mode == "anchored":
        return _anchored(out, anchor_table(metrics) if anchors is None else anchors)
    keys = ["dataset", "name", *by]
    scaled = out.groupby(keys, sort=False)["value"].transform(minmax)
    lower = out["direction"] == "lower"
    lo = out.groupby(keys, sort=False)["value"].transform("min")
    hi = out.groupby(keys, sort=False)["value"].transform("max")
    const = (hi - lo) <= CONST_TOL * np.maximum(1.0, hi.abs())
    out["norm"] = np.where(lower & ~const, 1.0 - scaled, scaled)
    return out


# --------------------------------------------------------------------------- anchored scores
NORMALISATIONS = ("run", "anchored")
ANCHOR_BEST = "holdout"
"""Baseline model (registry slug) whose metrics score 1 under anchored normalisation."""
ANCHOR_WORST = {"privacy": "train_copy"}
"""Score group -> baseline that scores 0; every other group (quality, utility, clinical and
reported-only metrics) uses :data:`ANCHOR_WORST_DEFAULT`. Independent uniform noise is the
least private table there is, so privacy needs its own worst: verbatim train rows."""
ANCHOR_WORST_DEFAULT = "uniform"
ANCHOR_MODELS = (ANCHOR_BEST, "train_copy", ANCHOR_WORST_DEFAULT)


def worst_anchor(score_group) -> str:
    """Registry slug of the baseline that scores 0 for a metric of ``score_group``."""
    if not isinstance(score_group, str):
        return ANCHOR_WORST_DEFAULT
    return ANCHOR_WORST.get(score_group, ANCHOR_WORST_DEFAULT)


def anchor_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per ``dataset, name``: the anchors' values ``best`` and ``worst`` (means over their ok
    cells, prompt ``none``) and ``anchored`` (False when the two do not differ in the metric's
    direction, then the metric is left out of anchored scores for that dataset).

    A missing anchor value falls back to the end of the metric's declared ``range`` (best:
    the good end, worst: the bad end) when that end is finite. Anchors that do not differ in
    the metric's direction by more than :data:`ANCHOR_MIN_GAP` of a bounded range are replaced
    by both range ends; an unbounded metric with such anchors is left out (``anchored`` False).
    """
    cols = ["dataset", "name", "best", "worst", "anchored"]
    if metrics.empty:
        return pd.DataFrame(columns=cols)
    m = metrics[metrics["prompt"] == "none"]
    mean = m[m["value"].notna()].groupby(["dataset", "name", "model"])["value"].mean()
    decl = metrics.drop_duplicates(["dataset", "name"]).set_index(["dataset", "name"])
    rows = []
    for (ds, name), d in decl.iterrows():
        group = d.get("score_group") if "score_group" in d else None
        lower = d["direction"] == "lower"
        lo, hi = d.get("range_lo", -math.inf), d.get("range_hi", math.inf)
        good_end, bad_end = (lo, hi) if lower else (hi, lo)
        best = mean.get((ds, name, ANCHOR_BEST), math.nan)
        worst = mean.get((ds, name, worst_anchor(group)), math.nan)
        if not np.isfinite(best) and np.isfinite(good_end):
            best = float(good_end)
        if not np.isfinite(worst) and np.isfinite(bad_end):
            worst = float(bad_end)
        if not _usable(best, worst, lower, lo, hi) and np.isfinite(lo) and np.isfinite(hi):
            best, worst = float(good_end), float(bad_end)
        usable = _usable(best, worst, lower, lo, hi)
        rows.append({"dataset": ds, "name": name, "best": best, "worst": worst, "anchored": usable})
    return pd.DataFrame(rows, columns=cols)


ANCHOR_MIN_GAP = 0.01
"""Anchors closer than this share of a bounded metric's declared range are noise, not a scale
(e.g. the attack AUC of 20 copied rows among 80,000 train rows is 0.5 like the holdout's)."""


def _usable(best: float, worst: float, lower: bool, lo: float, hi: float) -> bool:
    gap = (worst - best) if lower else (best - worst)
    need = CONST_TOL * max(1.0, abs(best))
    if np.isfinite(lo) and np.isfinite(hi):
        need = max(need, ANCHOR_MIN_GAP * (hi - lo))
    return bool(np.isfinite(gap) and gap > need)


def _anchored(out: pd.DataFrame, anchors: pd.DataFrame) -> pd.DataFrame:
    a = out[["dataset", "name"]].merge(anchors, on=["dataset", "name"], how="left")
    usable = a["anchored"].fillna(False).astype(bool).to_numpy()
    best, worst = a["best"].to_numpy(dtype=float), a["worst"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = (out["value"].to_numpy(dtype=float) - worst) / (best - worst)
    out["norm"] = np.where(usable, np.clip(x, 0.0, 1.0), np.nan)
    return out


def cell_scores(
    cells: pd.DataFrame,
    metrics: pd.DataFrame,
    util_cells: pd.DataFrame | None = None,
    mode: str = "run",
) -> pd.DataFrame:
    """One row per cell: ``KEY, status, quality, privacy, harmonic, utility, clinical, gfi``
    plus ``n_quality`` / ``n_privacy`` / ``n_utility`` / ``n_clinical`` (values that entered).

    ``metrics`` must carry ``norm`` (from :func:`normalise`); ``util_cells`` is
    :func:`utility_per_cell` (``KEY`` + ``tstr_accuracy`` ... ``trts_auc``). Failed cells get
    NaN scores and GFI = 0. ``mode``: normalisation of the utility scores (see :func:`normalise`).
    """
    m = metrics
    fam = m["family"].str.lower()
    parts = {
        "quality": m[m["score_group"] == "quality"],
        "privacy": m[m["score_group"] == "privacy"],
        "clinical": m[fam.str.startswith("clinical")],
    }
    if util_cells is not None and len(util_cells):
        cols = [c for c in util_cells.columns if c not in KEY]
        long = util_cells.melt(id_vars=KEY, value_vars=cols, var_name="name", value_name="value")
        parts["utility"] = normalise(
            long.assign(direction="higher", score_group="utility", range_lo=0.0, range_hi=1.0), mode
        )
    else:
        parts["utility"] = pd.DataFrame(columns=KEY + ["norm"])
    out = cells[KEY + ["status"]].copy()
    for name, sub in parts.items():
        g = sub.groupby(KEY)["norm"]
        agg = pd.DataFrame({name: g.mean(), f"n_{name}": g.count()}).reset_index()
        out = (
            out.merge(agg, on=KEY, how="left")
            if len(agg)
            else out.assign(**{name: np.nan, f"n_{name}": 0})
        )
        out[f"n_{name}"] = out[f"n_{name}"].fillna(0).astype(int)
    failed = out["status"] != "ok"
    for name in parts:
        out.loc[failed, name] = np.nan
    out["harmonic"] = harmonic(out["quality"], out["privacy"])
    comps = out[["quality", "privacy", "utility", "clinical"]]
    out["gfi"] = comps.mean(axis=1, skipna=True)
    out.loc[failed, "gfi"] = 0.0
    return out


PROMPTLESS_KINDS = ("peer", "external")
"""``generator_kind`` (raw meta) of prompt-``none`` models that are competitors, not baselines."""
COMPETITOR_KINDS = ("LLM", "peer", "external")
"""Kinds ranked side by side (Tables IV order, V, VI); baselines are references only."""


def model_kinds(cells: pd.DataFrame, meta: pd.DataFrame | None = None) -> dict[str, str]:
    """``model -> kind``: ``"LLM"`` when a cell of the model has a prompt; a model whose cells
    all have prompt ``none`` takes the ``generator_kind`` of its raw meta when that is ``"peer"``
    (a tabular synthesizer) or ``"external"`` (a table made elsewhere), else ``"baseline"``."""
    given: dict[str, str] = {}
    if meta is not None and len(meta) and "generator_kind" in meta.columns:
        known = meta.dropna(subset=["generator_kind"])
        given = known.groupby("model")["generator_kind"].first().to_dict()
    kinds = {}
    for model, sub in cells.groupby("model"):
        if not (sub["prompt"] == "none").all():
            kinds[model] = "LLM"
        else:
            kind = str(given.get(model))
            kinds[model] = kind if kind in PROMPTLESS_KINDS else "baseline"
    return kinds


def summarise_cells(scores: pd.DataFrame) -> pd.DataFrame:
    """Aggregate repeats: one row per ``dataset, model, prompt`` with ``n_reps, n_ok, status``
    (``ok`` all repeats ok, ``partial`` some, ``failed`` none) and ``<score>_mean`` /
    ``<score>_ci95`` for every score in :data:`SCORES` (over ok repeats; GFI over all)."""
    rows = []
    for (ds, model, prompt), sub in scores.groupby(["dataset", "model", "prompt"], sort=False):
        n_ok = int((sub["status"] == "ok").sum())
        row = {
            "dataset": ds,
            "model": model,
            "prompt": prompt,
            "n_reps": len(sub),
            "n_ok": n_ok,
            "status": "ok" if n_ok == len(sub) else ("failed" if n_ok == 0 else "partial"),
        }
        for s in SCORES:
            mean, half, _ = mean_ci(sub[s].to_numpy())
            row[f"{s}_mean"], row[f"{s}_ci95"] = mean, half
        rows.append(row)
    cols = ["dataset", "model", "prompt", "n_reps", "n_ok", "status"]
    cols += [f"{s}_{k}" for s in SCORES for k in ("mean", "ci95")]
    return pd.DataFrame(rows, columns=cols)


# --------------------------------------------------------------------------- ML utility
UTIL_SCHEMES = ("tstr", "trts")
UTIL_MEASURES = ("accuracy", "f1", "auc")
REFERENCE = "reference"
_SCHEME_ALIASES = {"tstr": "tstr", "trts": "trts", "reference": REFERENCE, "trtr": REFERENCE}
_MEASURE_ALIASES = {
    "accuracy": "accuracy",
    "acc": "accuracy",
    "macro_f1": "f1",
    "f1_macro": "f1",
    "f1": "f1",
    "macrof1": "f1",
    "auc": "auc",
    "roc_auc": "auc",
    "auroc": "auc",
    "rocauc": "auc",
    "auc_roc": "auc",
}
_CLASSIFIER_ALIASES = {
    "xgboost": "xgboost",
    "xgb": "xgboost",
    "random_forest": "random_forest",
    "randomforest": "random_forest",
    "rf": "random_forest",
    "decision_tree": "decision_tree",
    "decisiontree": "decision_tree",
    "dt": "decision_tree",
}
_SKIP_TOKENS = {
    "pr",
    "pr_auc",
    "prauc",
    "average_precision",
    "importance",
    "importances",
    "confusion",
    "curve",
    "std",
    "ci",
    "n",
    "support",
    "recall",
    "precision",
}


def parse_utility_key(key: str) -> tuple[str, str, str] | None:
    """Read ``(scheme, classifier, measure)`` from a metric name or a flattened JSON path.

    ``scheme`` is ``tstr``, ``trts`` or ``reference`` (real -> real, also spelled ``trtr``).
    Tokens are split on ``. / - _`` and whitespace; joined pairs (``macro_f1``, ``roc_auc``,
    ``random_forest``) are recognised too. Returns None when the key is not a TSTR/TRTS
    accuracy / macro-F1 / ROC-AUC score (e.g. PR-AUC, importances, confusion matrices).
    ``classifier`` is ``"all"`` when the key names none (an already averaged score).
    """
    toks = [t for t in re.split(r"[._/\-\s]+", key.lower()) if t]
    grams = toks + [a + "_" + b for a, b in zip(toks, toks[1:])]
    if any(g in _SKIP_TOKENS for g in grams):
        return None
    scheme = next((_SCHEME_ALIASES[t] for t in toks if t in _SCHEME_ALIASES), None)
    measure = next((_MEASURE_ALIASES[g] for g in reversed(grams) if g in _MEASURE_ALIASES), None)
    clf = next((_CLASSIFIER_ALIASES[g] for g in grams if g in _CLASSIFIER_ALIASES), "all")
    if scheme is None or measure is None:
        return None
    return scheme, clf, measure


def _flatten(obj, prefix: str = "") -> list[tuple[str, float]]:
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool) and math.isfinite(obj):
        out.append((prefix, float(obj)))
    return out


def utility_long(metrics: pd.DataFrame, raw: list[dict]) -> pd.DataFrame:
    """TSTR / TRTS scores per cell: ``KEY, scheme, classifier, measure, value``.

    Taken from metric entries of family ``utility`` when a cell has any that parse, else from
    the cell's nested ``utility`` block. Failed cells contribute nothing.
    """
    rows = []
    um = metrics[(metrics["family"].str.lower() == "utility") & metrics["value"].notna()]
    from_entries = set()
    for r in um.itertuples(index=False):
        parsed = parse_utility_key(r.name)
        if parsed:
            rows.append((r.dataset, r.model, r.prompt, r.rep, *parsed, r.value))
            from_entries.add((r.dataset, r.model, r.prompt, r.rep))
    for data in raw:
        key = (str(data["dataset"]), str(data["model"]), str(data["prompt"]), int(data["rep"]))
        if key in from_entries or data.get("status") != "ok":
            continue
        for path, value in _flatten(data.get("utility") or {}):
            parsed = parse_utility_key(path)
            if parsed:
                rows.append((*key, *parsed, value))
    df = pd.DataFrame(rows, columns=KEY + ["scheme", "classifier", "measure", "value"])
    return df.drop_duplicates(KEY + ["scheme", "classifier", "measure"], keep="first")


def utility_per_cell(
    util: pd.DataFrame, classifier: str = "mean", scheme_set=UTIL_SCHEMES
) -> pd.DataFrame:
    """Wide per-cell utility: ``KEY`` + ``<scheme>_<measure>`` for the schemes in ``scheme_set``.

    ``classifier="mean"``: the mean over the per-classifier scores present (decision tree,
    random forest, XGBoost); a cell that only reports an already averaged score (classifier
    ``all``) uses that. Otherwise only the named classifier's scores.
    """
    u = util[util["scheme"].isin(scheme_set)]
    if classifier == "mean":
        per_clf = u[u["classifier"] != "all"]
        have = set(map(tuple, per_clf[KEY + ["scheme", "measure"]].to_numpy().tolist()))
        mask = [
            (c != "all") or (tuple(k) not in have)
            for c, k in zip(u["classifier"], u[KEY + ["scheme", "measure"]].to_numpy().tolist())
        ]
        u = u[mask]
    else:
        u = u[u["classifier"] == classifier]
    cols = [f"{s}_{m}" for s in scheme_set for m in UTIL_MEASURES]
    if u.empty:
        return pd.DataFrame(columns=KEY + cols)
    u = u.assign(col=u["scheme"] + "_" + u["measure"])
    wide = u.groupby(KEY + ["col"])["value"].mean().unstack("col").reindex(columns=cols)
    return wide.reset_index()


def utility_by_model(per_cell: pd.DataFrame) -> pd.DataFrame:
    """Table V numbers: one row per ``dataset, model`` with ``<scheme>_<measure>_mean/_ci95``.

    ``per_cell`` from :func:`utility_per_cell`: mean over prompts per repeat, then mean and
    95 % t-interval over repeats; ``n_cells`` counts the cells with a utility score.
    """
    if per_cell.empty:
        return pd.DataFrame(columns=["dataset", "model", "n_cells"])
    cols = [c for c in per_cell.columns if c not in KEY]
    n_cells = per_cell.groupby(["dataset", "model"]).size()
    per_rep = per_cell.groupby(["dataset", "model", "rep"])[cols].mean()
    rows = []
    for (ds, model), sub in per_rep.groupby(level=["dataset", "model"], sort=False):
        row = {"dataset": ds, "model": model, "n_cells": int(n_cells[(ds, model)])}
        for col in cols:
            row[f"{col}_mean"], row[f"{col}_ci95"], _ = mean_ci(sub[col].to_numpy())
        rows.append(row)
    return pd.DataFrame(rows)


def reference_utility(util: pd.DataFrame, classifier: str = "mean") -> pd.DataFrame:
    """Real -> real reference per dataset: ``dataset`` + ``<measure>`` (mean over cells)."""
    ref = utility_per_cell(util, classifier, scheme_set=(REFERENCE,))
    if ref.empty:
        return pd.DataFrame(columns=["dataset"] + list(UTIL_MEASURES))
    ref = ref.groupby("dataset")[[f"{REFERENCE}_{m}" for m in UTIL_MEASURES]].mean()
    return ref.rename(columns=lambda c: c.split("_", 1)[1]).reset_index()


# --------------------------------------------------------------------------- efficiency
def efficiency_table(
    scores: pd.DataFrame,
    meta: pd.DataFrame,
    kinds: dict[str, str],
    validation: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Table VI numbers, one row per model, ranked by Efficiency (descending, 1 = best).

    Columns: ``model, kind, n_cells, n_ok, mean_valid, mean_duration_s, gfi, norm_speed,
    efficiency, rank`` (``mean_valid``: mean valid records per cell from the validation reports).
    Durations are ``wall_seconds`` of the cells' raw meta (cells of this run only); a peer's
    cell adds the ``train_seconds`` of the model it samples (train + sample), reported apart
    as ``mean_train_s``. NormSpeed is min-max scaled over the ranked models: LLMs, peers and
    external tables (:data:`COMPETITOR_KINDS`) with a duration and at least one ok cell.
    Baselines (references) and models without any valid cell are listed with their duration
    and GFI but get no NormSpeed / Efficiency / rank.
    """
    cols = [c for c in ("wall_seconds", "train_seconds") if c in meta.columns]
    dur = (
        scores[KEY].merge(meta[KEY + cols], on=KEY, how="left") if len(meta) else scores[KEY].copy()
    )
    for c in ("wall_seconds", "train_seconds"):
        if c not in dur.columns:
            dur[c] = np.nan
    dur["duration"] = dur["wall_seconds"] + dur["train_seconds"].fillna(0.0)
    if validation is not None and len(validation):
        val = scores[KEY].merge(validation[KEY + ["valid"]], on=KEY, how="left")
    else:
        val = scores[KEY].assign(valid=np.nan)
    rows = []
    for model, sub in scores.groupby("model", sort=False):
        d = dur[dur["model"] == model]["duration"]
        tr = dur[dur["model"] == model]["train_seconds"]
        v = val[val["model"] == model]["valid"]
        rows.append(
            {
                "model": model,
                "kind": kinds.get(model, "LLM"),
                "n_cells": len(sub),
                "n_ok": int((sub["status"] == "ok").sum()),
                "mean_valid": float(v.mean()) if v.notna().any() else math.nan,
                "mean_duration_s": float(d.mean()) if d.notna().any() else math.nan,
                "mean_train_s": float(tr.mean()) if tr.notna().any() else math.nan,
                "gfi": float(sub["gfi"].mean()),
            }
        )
    t = pd.DataFrame(
        rows,
        columns=[
            "model",
            "kind",
            "n_cells",
            "n_ok",
            "mean_valid",
            "mean_duration_s",
            "mean_train_s",
            "gfi",
        ],
    )
    ranked = t["kind"].isin(COMPETITOR_KINDS) & t["mean_duration_s"].notna() & (t["n_ok"] > 0)
    speed = 1.0 / t.loc[ranked, "mean_duration_s"].clip(lower=1e-9)
    t["norm_speed"] = np.nan
    t.loc[ranked, "norm_speed"] = minmax(speed)
    t["efficiency"] = (t["norm_speed"] + t["gfi"]) / 2
    t = t.sort_values(
        ["efficiency", "gfi", "model"], ascending=[False, False, True], na_position="last"
    )
    t["rank"] = pd.array([pd.NA] * len(t), dtype="Int64")
    ok = t["efficiency"].notna()
    t.loc[ok, "rank"] = np.arange(1, ok.sum() + 1)
    return t.reset_index(drop=True)
