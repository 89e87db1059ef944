"""Build the paper's tables (IV, V, VI) and the score definitions from scored cells.

Each builder returns ``(frame, layout)``: a machine-readable DataFrame written as CSV
(numbers, NaN for missing, explicit status columns) and a :class:`~synllm.aggregate.render.Layout`
written as Markdown and LaTeX (formatted strings, "–" for failed or missing cells).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from synllm import BASELINE_PROMPT, EXTRA_PROMPT_STYLES, PROMPT_STYLES
from synllm.aggregate.render import DASH, Layout, fmt
from synllm.aggregate.scores import UTIL_MEASURES, UTIL_SCHEMES, parse_utility_key

SCORE_LABELS = {"quality": "Q", "privacy": "P", "harmonic": "H"}
MEASURE_LABELS = {"accuracy": "Acc", "f1": "F1", "auc": "AUC"}
NONE_GROUP = "reference (none)"


def prompt_order(prompts) -> list[str]:
    """Paper prompts first (paper order), then Lin et al. strategies, then others, ``none`` last."""
    prompts = set(prompts)
    known = [p for p in PROMPT_STYLES + EXTRA_PROMPT_STYLES if p in prompts]
    other = sorted(p for p in prompts if p not in known and p != BASELINE_PROMPT)
    return known + other + ([BASELINE_PROMPT] if BASELINE_PROMPT in prompts else [])


def display_model(model: str, kind: str) -> str:
    return f"{model} (baseline)" if kind == "baseline" else model


def _row_order(summary: pd.DataFrame, kinds: dict[str, str]) -> list[tuple[str, str]]:
    """(dataset, model) rows: datasets sorted; within one, LLMs by mean Harmonic over prompts
    (descending, failed cells count as 0 for the ordering only), then baselines by name."""
    keys = []
    for ds in sorted(summary["dataset"].unique()):
        sub = summary[summary["dataset"] == ds]
        h = sub.assign(h=sub["harmonic_mean"].fillna(0)).groupby("model")["h"].mean()
        llm = sorted((m for m in h.index if kinds.get(m) != "baseline"), key=lambda m: (-h[m], m))
        base = sorted(m for m in h.index if kinds.get(m) == "baseline")
        keys += [(ds, m) for m in llm + base]
    return keys


# --------------------------------------------------------------------------- Table IV
def table4(summary: pd.DataFrame, kinds: dict[str, str], paper_names: dict[str, str]) -> tuple[pd.DataFrame, Layout]:
    """Quality / Privacy / Harmonic per dataset x model (rows) and prompt (column groups).

    LLM rows expect every non-``none`` prompt of the run: a failed or absent cell shows "–".
    Baselines (prompt ``none``) have their values in the ``reference (none)`` group; cells that
    are not part of a model's grid are blank.
    """
    prompts = prompt_order(summary["prompt"].unique()) if len(summary) else []
    llm_prompts = [p for p in prompts if p != BASELINE_PROMPT]
    idx = summary.set_index(["dataset", "model", "prompt"]) if len(summary) else None
    keys = _row_order(summary, kinds) if len(summary) else []
    csv_rows, rows, breaks = [], [], []
    multi_rep = bool(len(summary)) and summary["n_reps"].max() > 1
    partial = False
    for i, (ds, model) in enumerate(keys):
        if i == 0 or keys[i - 1][0] != ds:
            breaks.append(i)
        kind = kinds.get(model, "LLM")
        expected = {BASELINE_PROMPT} if kind == "baseline" else set(llm_prompts)
        crow = {"dataset": ds, "model": model, "paper_name": paper_names.get(model, ""), "kind": kind}
        row = [ds, display_model(model, kind)]
        for p in prompts:
            present = (ds, model, p) in idx.index
            rec = idx.loc[(ds, model, p)] if present else None
            status = rec["status"] if present else ("missing" if p in expected else "")
            crow[f"{p}_status"] = status
            crow[f"{p}_n_reps"] = int(rec["n_reps"]) if present else 0
            for s in SCORE_LABELS:
                mean = float(rec[f"{s}_mean"]) if present else math.nan
                ci = float(rec[f"{s}_ci95"]) if present else math.nan
                crow[f"{p}_{s}"] = mean
                crow[f"{p}_{s}_ci95"] = ci
                if status == "":
                    row.append("")
                else:
                    row.append(fmt(mean, ci))
            partial |= status == "partial"
        csv_rows.append(crow)
        rows.append(row)
    groups = [(p if p != BASELINE_PROMPT else NONE_GROUP, list(SCORE_LABELS.values())) for p in prompts]
    notes = [
        "Q = Quality, P = Privacy, H = Harmonic = 2QP/(Q+P); metrics min-max normalised within "
        "each dataset across all cells of the run, 1 = best (definitions in score_definitions.md).",
        f"{DASH} = failed cell (no valid records or metrics failed) or cell missing from the run; "
        "blank = not part of that model's grid.",
        "(baseline) rows are reference generators that take no prompt; their scores are under "
        f"'{NONE_GROUP}'.",
    ]
    if multi_rep:
        notes.append("Values are means over repeats ± half-width of the 95% t-interval.")
    if partial:
        notes.append("Cells where some repeats failed show the mean over the successful repeats.")
    layout = Layout(
        index=["Dataset", "Model"],
        groups=groups,
        rows=rows,
        caption="Table IV. Normalised Quality, Privacy and Harmonic scores per dataset, model and prompt (higher is better).",
        label="tab:quality_privacy",
        notes=notes,
        breaks=breaks,
    )
    cols = ["dataset", "model", "paper_name", "kind"]
    for p in prompts:
        cols += [f"{p}_status", f"{p}_n_reps"] + [f"{p}_{s}{k}" for s in SCORE_LABELS for k in ("", "_ci95")]
    return pd.DataFrame(csv_rows, columns=cols), layout


# --------------------------------------------------------------------------- Table V
REFERENCE_ROW = "real data (reference)"


def table5(
    util: pd.DataFrame,
    kinds: dict[str, str],
    paper_names: dict[str, str],
    classifier: str,
    reference: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, Layout]:
    """ML utility (TSTR and TRTS accuracy, macro-F1, ROC-AUC) per dataset x model.

    ``util`` comes from :func:`synllm.aggregate.scores.utility_by_model`; ``reference``
    (:func:`~synllm.aggregate.scores.reference_utility`) adds, per dataset, a last row with the
    real-train -> real-holdout scores under the TSTR columns (kind ``reference``).
    """
    value_cols = [f"{s}_{m}" for s in UTIL_SCHEMES for m in UTIL_MEASURES]
    frame_cols = ["dataset", "model", "paper_name", "kind", "n_cells"] + [f"{c}_{k}" for c in value_cols for k in ("mean", "ci95")]
    if util.empty:
        frame = pd.DataFrame(columns=frame_cols)
    else:
        frame = util.copy()
        for c in frame_cols:
            if c not in frame:
                frame[c] = np.nan
        frame["paper_name"] = frame["model"].map(lambda m: paper_names.get(m, ""))
        frame["kind"] = frame["model"].map(lambda m: kinds.get(m, "LLM"))
        frame = frame.assign(_b=frame["kind"] == "baseline").sort_values(["dataset", "_b", "model"])[frame_cols]
    if reference is not None and len(reference):
        ref_rows = []
        for r in reference.itertuples(index=False):
            row = {c: np.nan for c in frame_cols}
            row.update({"dataset": r.dataset, "model": REFERENCE_ROW, "paper_name": "", "kind": "reference", "n_cells": np.nan})
            for m in UTIL_MEASURES:
                row[f"tstr_{m}_mean"] = getattr(r, m)
            ref_rows.append(row)
        frame = pd.concat([frame, pd.DataFrame(ref_rows, columns=frame_cols)], ignore_index=True)
        order = frame["kind"].map({"LLM": 0, "baseline": 1, "reference": 2})
        frame = frame.assign(_o=order).sort_values(["dataset", "_o", "model"], kind="stable").drop(columns="_o")
    rows, breaks = [], []
    prev = None
    for i, r in enumerate(frame.itertuples(index=False)):
        r = r._asdict()
        if r["dataset"] != prev:
            breaks.append(i)
            prev = r["dataset"]
        vals = [fmt(r[f"{c}_mean"], r[f"{c}_ci95"]) for c in value_cols]
        if r["kind"] == "reference":
            vals = vals[: len(UTIL_MEASURES)] + [""] * (len(value_cols) - len(UTIL_MEASURES))
        rows.append([r["dataset"], display_model(r["model"], r["kind"])] + vals)
    clf_text = (
        "mean over the classifiers present (decision tree, random forest, XGBoost)"
        if classifier == "mean"
        else f"{classifier} only"
    )
    notes = [
        f"TSTR = train on synthetic, test on real holdout; TRTS = train on real, test on synthetic. Scores: {clf_text}, "
        "then mean over prompts; ± = 95% t-interval over repeats when there are several.",
        "F1 is macro-averaged; AUC is ROC-AUC.",
    ]
    if (frame["kind"] == "reference").any():
        notes.append(f"'{REFERENCE_ROW}': trained on real train, tested on real holdout (TRTR), shown under TSTR "
                     "as the ceiling a synthetic table can reach.")
    if frame.empty:
        notes.append("No utility scores were found in the metrics files.")
    layout = Layout(
        index=["Dataset", "Model"],
        groups=[("TSTR", [MEASURE_LABELS[m] for m in UTIL_MEASURES]), ("TRTS", [MEASURE_LABELS[m] for m in UTIL_MEASURES])],
        rows=rows,
        caption="Table V. ML utility averaged over prompts (higher is better).",
        label="tab:ml_utility",
        notes=notes,
        breaks=breaks,
    )
    return frame.reset_index(drop=True), layout


# --------------------------------------------------------------------------- Table VI
def table6(eff: pd.DataFrame, paper_names: dict[str, str]) -> tuple[pd.DataFrame, Layout]:
    """Efficiency ranking; ``eff`` from :func:`synllm.aggregate.scores.efficiency_table`."""
    frame = eff.copy()
    frame.insert(1, "paper_name", frame["model"].map(lambda m: paper_names.get(m, "")))
    rows = []
    for r in frame.itertuples(index=False):
        rank = DASH if pd.isna(r.rank) else str(int(r.rank))
        dur = DASH if not math.isfinite(r.mean_duration_s) else f"{r.mean_duration_s:.2f}"
        rows.append([
            rank,
            display_model(r.model, r.kind),
            dur,
            fmt(r.gfi, digits=3),
            fmt(r.norm_speed, digits=3),
            fmt(r.efficiency, digits=3),
            f"{r.n_ok}/{r.n_cells}",
            DASH if not math.isfinite(r.mean_valid) else f"{r.mean_valid:.1f}",
        ])
    notes = [
        "Efficiency = (NormSpeed + GFI) / 2, higher is better; rank 1 = most efficient.",
        "NormSpeed = min-max normalised 1 / mean generation duration (wall_seconds of the raw meta, "
        "mean over all cells of the model) across the ranked LLMs: 1 = fastest, 0 = slowest.",
        "GFI = mean over the model's cells of mean(Quality, Privacy, Utility, Clinical consistency), "
        "each normalised to [0, 1] with 1 = best; a failed cell counts as 0.",
        "Baselines and models without any valid cell are shown for reference and not ranked; ok cells = cells with valid records / all cells; "
        "Valid records = mean valid records per cell (validation reports).",
    ]
    layout = Layout(
        index=["Rank", "Model"],
        groups=[("", ["Mean duration (s)", "GFI", "NormSpeed", "Efficiency", "ok cells", "Valid records"])],
        rows=rows,
        caption="Table VI. Efficiency ranking: Efficiency = (NormSpeed + GFI) / 2, higher is better.",
        label="tab:efficiency",
        notes=notes,
    )
    return frame, layout


# --------------------------------------------------------------------------- definitions
def score_definitions(metrics: pd.DataFrame) -> pd.DataFrame:
    """Which metric enters which score, from the metrics' own declarations.

    One row per (score, metric): ``score, metric, family, direction, range_lo, range_hi,
    datasets, n_values`` (ok values over all cells) and ``constant_in`` (datasets where the
    metric was constant, hence 1.0 for every cell).
    """
    if metrics.empty:
        return pd.DataFrame(columns=["score", "metric", "family", "direction", "range_lo", "range_hi", "datasets", "n_values", "constant_in"])
    fam = metrics["family"].str.lower()
    parsed = metrics["name"].map(parse_utility_key)
    members = {
        "quality": metrics["score_group"] == "quality",
        "privacy": metrics["score_group"] == "privacy",
        "utility": (fam == "utility") & parsed.map(lambda t: t is not None and t[0] in UTIL_SCHEMES),
        "clinical": fam.str.startswith("clinical"),
    }
    rows = []
    for score, mask in members.items():
        sub = metrics[mask]
        for name, g in sub.groupby("name", sort=True):
            const = []
            for ds, gd in g.groupby("dataset"):
                v = gd["value"].dropna()
                if len(v) and v.max() - v.min() <= 1e-12 * max(1.0, abs(v.max())):
                    const.append(ds)
            rows.append({
                "score": score,
                "metric": name,
                "family": g["family"].iloc[0],
                "direction": g["direction"].iloc[0],
                "range_lo": g["range_lo"].iloc[0],
                "range_hi": g["range_hi"].iloc[0],
                "datasets": ";".join(sorted(g["dataset"].unique())),
                "n_values": int(g["value"].notna().sum()),
                "constant_in": ";".join(sorted(const)),
            })
    return pd.DataFrame(rows)


def definitions_markdown(defs: pd.DataFrame, doc: str, classifier: str) -> str:
    """``score_definitions.md``: the scoring rules (``doc``) and the member metrics per score."""
    lines = ["# Score definitions", "", doc.strip(), ""]
    lines.append(
        "The Utility section below lists the utility metrics behind the six Table V scores (TSTR / TRTS x "
        "accuracy, macro-F1, ROC-AUC); the Utility score normalises those six per-cell scores, not each "
        "metric separately."
    )
    lines.append("")
    lines.append(
        "Table V uses " + ("the mean over the classifiers present" if classifier == "mean" else f"the {classifier} scores")
        + " for TSTR / TRTS accuracy, macro-F1 and ROC-AUC."
    )
    lines.append("")
    for score in ("quality", "privacy", "utility", "clinical"):
        sub = defs[defs["score"] == score]
        lines += [f"## {score.capitalize()} ({len(sub)} metrics)", ""]
        if sub.empty:
            lines += ["(none declared in the metrics files)", ""]
            continue
        lines += ["| metric | family | direction | range | datasets | ok values | constant in |", "|---|---|---|---|---|---:|---|"]
        for r in sub.itertuples(index=False):
            rng = f"[{r.range_lo:g}, {r.range_hi:g}]"
            lines.append(f"| {r.metric} | {r.family} | {r.direction} | {rng} | {r.datasets} | {r.n_values} | {r.constant_in} |")
        lines.append("")
    return "\n".join(lines)
