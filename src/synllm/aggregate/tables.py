"""Build the paper's tables (IV, V, VI), the privacy and fairness tables and the score
definitions from scored cells.

Each builder returns ``(frame, layout)``: a machine-readable DataFrame written as CSV
(numbers, NaN for missing, explicit status columns) and a :class:`~synllm.aggregate.render.Layout`
written as Markdown and LaTeX (formatted strings, "–" for failed or missing cells).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from synllm import BASELINE_PROMPT, EXTRA_PROMPT_STYLES, PROMPT_STYLES
from synllm.aggregate.load import KEY as KEY_COLS
from synllm.aggregate.render import DASH, Layout, fmt
from synllm.aggregate.scores import UTIL_MEASURES, UTIL_SCHEMES, mean_ci, parse_utility_key
from synllm.aggregate.uncertainty import bracket, half_width
from synllm.attacks import ATTACKS, FIELDS, table_fields

SCORE_LABELS = {"quality": "Q", "privacy": "P", "harmonic": "H"}
MEASURE_LABELS = {"accuracy": "Acc", "f1": "F1", "auc": "AUC"}
NONE_GROUP = "reference (none)"
BOOT_NOTE = (
    "With one repeat, ± is half the width of the 95% bootstrap interval over the cell's "
    "synthetic records (every replicate normalised like the point value; point ± t x SD of "
    "the replicates below 100 replicates, percentile ends from 100 on); the CSV gives "
    "value [low, high]."
)


def prompt_order(prompts) -> list[str]:
    """Paper prompts first (paper order), then Lin et al. strategies, then others, ``none`` last."""
    prompts = set(prompts)
    known = [p for p in PROMPT_STYLES + EXTRA_PROMPT_STYLES if p in prompts]
    other = sorted(p for p in prompts if p not in known and p != BASELINE_PROMPT)
    return known + other + ([BASELINE_PROMPT] if BASELINE_PROMPT in prompts else [])


def display_model(model: str, kind: str) -> str:
    """LLMs by name; every other kind (baseline, peer, external) says so in brackets."""
    return model if kind in ("LLM", "reference") else f"{model} ({kind})"


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
def table4(
    summary: pd.DataFrame,
    kinds: dict[str, str],
    paper_names: dict[str, str],
    normalisation: str = "run",
) -> tuple[pd.DataFrame, Layout]:
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
    # bootstrap interval columns exist only when some cell has replicates, so a run without
    # them writes exactly the table it always did
    boot = "quality_interval" in summary and (summary["quality_interval"] == "bootstrap").any()
    partial = False
    for i, (ds, model) in enumerate(keys):
        if i == 0 or keys[i - 1][0] != ds:
            breaks.append(i)
        kind = kinds.get(model, "LLM")
        expected = set(llm_prompts) if kind == "LLM" else {BASELINE_PROMPT}
        crow = {
            "dataset": ds,
            "model": model,
            "paper_name": paper_names.get(model, ""),
            "kind": kind,
        }
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
                if boot:
                    lo = float(rec[f"{s}_low"]) if present else math.nan
                    hi = float(rec[f"{s}_high"]) if present else math.nan
                    crow[f"{p}_{s}_low"], crow[f"{p}_{s}_high"] = lo, hi
                    crow[f"{p}_{s}_ci"] = bracket(mean, lo, hi)
                    if present and rec[f"{s}_interval"] == "bootstrap":
                        ci = half_width(lo, hi)
                if status == "":
                    row.append("")
                else:
                    row.append(fmt(mean, ci))
            partial |= status == "partial"
        csv_rows.append(crow)
        rows.append(row)
    groups = [
        (p if p != BASELINE_PROMPT else NONE_GROUP, list(SCORE_LABELS.values())) for p in prompts
    ]
    how = (
        "metrics min-max normalised within each dataset across all cells of the run, 1 = best"
        if normalisation == "run"
        else "metrics anchored per dataset: the real holdout baseline scores 1, the worst reference "
        "(uniform noise for quality, verbatim train rows for privacy) 0, clipped to [0, 1]"
    )
    notes = [
        f"Q = Quality, P = Privacy, H = Harmonic = 2QP/(Q+P); {how} "
        "(definitions in score_definitions.md).",
        f"{DASH} = failed cell (no valid records or metrics failed) or cell missing from the run; "
        "blank = not part of that model's grid.",
        "(baseline) rows are reference generators that take no prompt; their scores are under "
        f"'{NONE_GROUP}', like those of (peer) rows (tabular synthesizers trained on the train "
        "split, ranked with the LLMs) and (external) rows (tables made elsewhere).",
    ]
    if multi_rep:
        notes.append("Values are means over repeats ± half-width of the 95% t-interval.")
    if boot:
        notes.append(BOOT_NOTE)
    if partial:
        notes.append("Cells where some repeats failed show the mean over the successful repeats.")
    layout = Layout(
        index=["Dataset", "Model"],
        groups=groups,
        rows=rows,
        caption=(
            "Table IV. Normalised Quality, Privacy and Harmonic scores per dataset, model and "
            "prompt (higher is better)."
        ),
        label="tab:quality_privacy",
        notes=notes,
        breaks=breaks,
    )
    cols = ["dataset", "model", "paper_name", "kind"]
    extra = ("", "_ci95", "_low", "_high", "_ci") if boot else ("", "_ci95")
    for p in prompts:
        cols += [f"{p}_status", f"{p}_n_reps"] + [
            f"{p}_{s}{k}" for s in SCORE_LABELS for k in extra
        ]
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
    frame_cols = ["dataset", "model", "paper_name", "kind", "n_cells"] + [
        f"{c}_{k}" for c in value_cols for k in ("mean", "ci95")
    ]
    if util.empty:
        frame = pd.DataFrame(columns=frame_cols)
    else:
        frame = util.copy()
        for c in frame_cols:
            if c not in frame:
                frame[c] = np.nan
        frame["paper_name"] = frame["model"].map(lambda m: paper_names.get(m, ""))
        frame["kind"] = frame["model"].map(lambda m: kinds.get(m, "LLM"))
        frame = frame.assign(_b=frame["kind"] == "baseline").sort_values(
            ["dataset", "_b", "model"]
        )[frame_cols]
    if reference is not None and len(reference):
        ref_rows = []
        for r in reference.itertuples(index=False):
            row = {c: np.nan for c in frame_cols}
            row.update(
                {
                    "dataset": r.dataset,
                    "model": REFERENCE_ROW,
                    "paper_name": "",
                    "kind": "reference",
                    "n_cells": np.nan,
                }
            )
            for m in UTIL_MEASURES:
                row[f"tstr_{m}_mean"] = getattr(r, m)
            ref_rows.append(row)
        frame = pd.concat([frame, pd.DataFrame(ref_rows, columns=frame_cols)], ignore_index=True)
        order = frame["kind"].map(
            {"LLM": 0, "peer": 0, "external": 0, "baseline": 1, "reference": 2}
        )
        frame = (
            frame.assign(_o=order)
            .sort_values(["dataset", "_o", "model"], kind="stable")
            .drop(columns="_o")
        )
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
        "TSTR = train on synthetic, test on real holdout; TRTS = train on real, test on "
        f"synthetic. Scores: {clf_text}, "
        "then mean over prompts; ± = 95% t-interval over repeats when there are several.",
        "F1 is macro-averaged; AUC is ROC-AUC.",
    ]
    if (frame["kind"] == "reference").any():
        notes.append(
            f"'{REFERENCE_ROW}': trained on real train, tested on real holdout (TRTR), shown under TSTR "
            "as the ceiling a synthetic table can reach."
        )
    if frame.empty:
        notes.append("No utility scores were found in the metrics files.")
    layout = Layout(
        index=["Dataset", "Model"],
        groups=[
            ("TSTR", [MEASURE_LABELS[m] for m in UTIL_MEASURES]),
            ("TRTS", [MEASURE_LABELS[m] for m in UTIL_MEASURES]),
        ],
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
        train = "" if not math.isfinite(r.mean_train_s) else f"{r.mean_train_s:.2f}"
        rows.append(
            [
                rank,
                display_model(r.model, r.kind),
                r.kind,
                dur,
                train,
                fmt(r.gfi, digits=3),
                fmt(r.norm_speed, digits=3),
                fmt(r.efficiency, digits=3),
                f"{r.n_ok}/{r.n_cells}",
                DASH if not math.isfinite(r.mean_valid) else f"{r.mean_valid:.1f}",
            ]
        )
    notes = [
        "Efficiency = (NormSpeed + GFI) / 2, higher is better; rank 1 = most efficient.",
        "NormSpeed = min-max normalised 1 / mean duration (wall_seconds of the raw meta, "
        "mean over all cells of the model) across the ranked models: 1 = fastest, 0 = slowest.",
        "Kind: LLM (prompted), peer (tabular synthesizer: duration = training of its fitted model, "
        "shown under Train (s), + sampling the cell), external (a table made elsewhere); LLMs, "
        "peers and external tables are ranked together.",
        "GFI = mean over the model's cells of mean(Quality, Privacy, Utility, Clinical consistency), "
        "each normalised to [0, 1] with 1 = best; a failed cell counts as 0.",
        "Baselines and models without any valid cell are shown for reference and not ranked; "
        "ok cells = cells with valid records / all cells; "
        "Valid records = mean valid records per cell (validation reports).",
    ]
    layout = Layout(
        index=["Rank", "Model", "Kind"],
        groups=[
            (
                "",
                [
                    "Mean duration (s)",
                    "Train (s)",
                    "GFI",
                    "NormSpeed",
                    "Efficiency",
                    "ok cells",
                    "Valid records",
                ],
            )
        ],
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
        return pd.DataFrame(
            columns=[
                "score",
                "metric",
                "family",
                "direction",
                "range_lo",
                "range_hi",
                "datasets",
                "n_values",
                "constant_in",
            ]
        )
    fam = metrics["family"].str.lower()
    parsed = metrics["name"].map(parse_utility_key)
    members = {
        "quality": metrics["score_group"] == "quality",
        "privacy": metrics["score_group"] == "privacy",
        "utility": (fam == "utility")
        & parsed.map(lambda t: t is not None and t[0] in UTIL_SCHEMES),
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
            rows.append(
                {
                    "score": score,
                    "metric": name,
                    "family": g["family"].iloc[0],
                    "direction": g["direction"].iloc[0],
                    "range_lo": g["range_lo"].iloc[0],
                    "range_hi": g["range_hi"].iloc[0],
                    "datasets": ";".join(sorted(g["dataset"].unique())),
                    "n_values": int(g["value"].notna().sum()),
                    "constant_in": ";".join(sorted(const)),
                }
            )
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
        "Table V uses "
        + (
            "the mean over the classifiers present"
            if classifier == "mean"
            else f"the {classifier} scores"
        )
        + " for TSTR / TRTS accuracy, macro-F1 and ROC-AUC."
    )
    lines.append("")
    for score in ("quality", "privacy", "utility", "clinical"):
        sub = defs[defs["score"] == score]
        lines += [f"## {score.capitalize()} ({len(sub)} metrics)", ""]
        if sub.empty:
            lines += ["(none declared in the metrics files)", ""]
            continue
        lines += [
            "| metric | family | direction | range | datasets | ok values | constant in |",
            "|---|---|---|---|---|---:|---|",
        ]
        for r in sub.itertuples(index=False):
            rng = f"[{r.range_lo:g}, {r.range_hi:g}]"
            lines.append(
                f"| {r.metric} | {r.family} | {r.direction} | {rng} | {r.datasets} | {r.n_values} | {r.constant_in} |"
            )
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- privacy
PRIVACY_LABELS = {
    "nn_ratio": "NN ratio",
    "identifiability": "Identifiability",
    "dcr_median": "DCR median",
    "dcr_p5": "DCR p5",
    "nndr_mean": "NNDR",
    "mia_auc": "MIA AUC",
    "mia_advantage": "MIA advantage",
    "mia_tpr_at_1pct_fpr": "MIA TPR@1%",
    "mia_tpr_at_0_1pct_fpr": "MIA TPR@0.1%",
    "prompt_copy_rate": "Prompt copies",
    "prompt_copy_chance": "Prompt copies (chance)",
    "train_copy_rate": "Train copies",
    "train_copy_chance": "Train copies (chance)",
    "holdout_match_rate": "Holdout matches",
    "holdout_match_chance": "Holdout matches (chance)",
    "seed_mia_auc": "Seed MIA AUC",
    "seed_mia_tpr_at_1pct_fpr": "Seed TPR@1%",
    "seed_mia_tpr_at_0_1pct_fpr": "Seed TPR@0.1%",
    "dcr_closer_to_train": "Closer to train",
    "dcr_overfitting_protection": "DCR overfit prot.",
    "disclosure_protection": "Disclosure prot.",
    "disclosure_risk": "Disclosure risk",
    "inference_success": "Inference success",
    "inference_success_control": "Inference success (control)",
    "inference_risk": "Inference risk",
}
# seed-row attack sizes per cell, from the metrics files' privacy block (not metrics)
SEED_COUNTS = ("seed_mia_members", "seed_mia_non_members")
HOLDOUT_ROW = "real holdout (reference)"
# Anonymeter's risks per cell (metrics files' privacy.anonymeter block; not metrics, no score)
ANONYMETER_COLUMNS = [f"anonymeter_{a}_{f}" for a in ATTACKS for f in FIELDS]
ANONYMETER_LABELS = {
    "singling_out": "Anonym. singling out",
    "linkability": "Anonym. linkability",
    "inference": "Anonym. inference",
}


def _cell_rows(summary: pd.DataFrame, kinds: dict[str, str]) -> list[tuple[str, str, str]]:
    """(dataset, model, prompt) in Table IV's order: rows of :func:`_row_order`, prompts in
    :func:`prompt_order`."""
    if summary.empty:
        return []
    present = set(map(tuple, summary[["dataset", "model", "prompt"]].to_numpy().tolist()))
    order = prompt_order(summary["prompt"].unique())
    return [
        (ds, m, p) for ds, m in _row_order(summary, kinds) for p in order if (ds, m, p) in present
    ]


CELL_COLUMNS = ["dataset", "model", "paper_name", "kind", "prompt", "status"]
"""The leading CSV columns of the per-cell tables (privacy, fairness, intervals)."""


def _cell_head(
    key: tuple[str, str, str], kinds: dict[str, str], paper_names: dict[str, str], status
) -> tuple[dict, list]:
    """The leading :data:`CELL_COLUMNS` of a per-cell table's CSV row and the Dataset /
    Model / Prompt cells of its rendered row."""
    ds, model, prompt = key
    kind = kinds.get(model, "LLM")
    csv_row = dict(zip(CELL_COLUMNS, (ds, model, paper_names.get(model, ""), kind, prompt, status)))
    return csv_row, [ds, display_model(model, kind), prompt]


def _breaks(keys: list[tuple]) -> list[int]:
    return [i for i, k in enumerate(keys) if i == 0 or keys[i - 1][0] != k[0]]


def table_privacy(
    metrics: pd.DataFrame,
    raw: list[dict],
    summary: pd.DataFrame,
    kinds: dict[str, str],
    paper_names: dict[str, str],
) -> tuple[pd.DataFrame, Layout]:
    """Raw privacy metrics per dataset x model x prompt (mean ± 95 % CI over repeats).

    Columns are the metrics of family ``privacy`` in the order the metrics files list them
    (labels from :data:`PRIVACY_LABELS`, else the metric name); direction from their
    declarations. Failed cells and failed values show "–". Per dataset, a last row gives the
    distance of real holdout rows to their closest train record (``holdout_dcr_median`` /
    ``holdout_dcr_p5`` of the metrics files' ``privacy`` block, mean over ok cells): what a
    generator that never saw train reaches.
    """
    priv = metrics[metrics["family"].str.lower() == "privacy"] if len(metrics) else metrics
    names = list(dict.fromkeys(priv["name"])) if len(priv) else []
    direction = (
        priv.drop_duplicates("name").set_index("name")["direction"].to_dict() if len(priv) else {}
    )
    keys = _cell_rows(summary, kinds)
    stat = summary.set_index(["dataset", "model", "prompt"]) if len(summary) else None
    by_cell = {k: g for k, g in priv.groupby(["dataset", "model", "prompt"])} if len(priv) else {}
    ref = {}
    for data in raw:
        block = data.get("privacy") or {}
        if data.get("status") == "ok" and isinstance(block, dict):
            for field, name in (("holdout_dcr_median", "dcr_median"), ("holdout_dcr_p5", "dcr_p5")):
                v = block.get(field)
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    ref.setdefault(str(data["dataset"]), {}).setdefault(name, []).append(float(v))
    counts: dict[tuple, dict[str, list[float]]] = {}
    for data in raw:
        block = data.get("privacy") or {}
        if data.get("status") == "ok" and isinstance(block, dict):
            key = (str(data.get("dataset")), str(data.get("model")), str(data.get("prompt")))
            for field in SEED_COUNTS:
                v = block.get(field)
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    counts.setdefault(key, {}).setdefault(field, []).append(float(v))
    anon: dict[tuple, dict[str, list[float]]] = {}
    for data in raw:
        block = data.get("privacy") or {}
        if data.get("status") == "ok" and isinstance(block, dict):
            key = (str(data.get("dataset")), str(data.get("model")), str(data.get("prompt")))
            for field, v in table_fields(block.get("anonymeter")).items():
                anon.setdefault(key, {}).setdefault(field, []).append(v)
    anon_cols = [f for f in ANONYMETER_COLUMNS if any(f in got for got in anon.values())]
    csv_rows, rows, row_keys = [], [], []
    for ds in sorted({k[0] for k in keys}):
        for key in [k for k in keys if k[0] == ds]:
            rec = stat.loc[key]
            crow, row = _cell_head(key, kinds, paper_names, rec["status"])
            crow["n_reps"] = int(rec["n_reps"])
            sub = by_cell.get(key)
            for n in names:
                vals = (
                    sub[sub["name"] == n]["value"].to_numpy() if sub is not None else np.array([])
                )
                mean, ci, _ = mean_ci(vals)
                crow[f"{n}_mean"], crow[f"{n}_ci95"] = mean, ci
                row.append(fmt(mean, ci, digits=3))
            got = counts.get(key, {})
            for field in SEED_COUNTS:
                crow[field] = float(np.mean(got[field])) if field in got else math.nan
            row.append(
                f"{crow[SEED_COUNTS[0]]:.0f}/{crow[SEED_COUNTS[1]]:.0f}"
                if all(f in got for f in SEED_COUNTS)
                else DASH
            )
            got = anon.get(key, {})
            for field in anon_cols:
                crow[field] = float(np.mean(got[field])) if field in got else math.nan
            for attack in ATTACKS if anon_cols else ():
                risk, lo, hi = (f"anonymeter_{attack}_{f}" for f in FIELDS)
                row.append(
                    f"{crow[risk]:.3f} [{crow[lo]:.2f}, {crow[hi]:.2f}]"
                    if all(f in got for f in (risk, lo, hi))
                    else DASH
                )
            csv_rows.append(crow)
            rows.append(row)
            row_keys.append(key)
        if ds in ref:
            crow = {
                "dataset": ds,
                "model": HOLDOUT_ROW,
                "paper_name": "",
                "kind": "reference",
                "prompt": "",
                "status": "ok",
                "n_reps": np.nan,
            }
            row = [ds, HOLDOUT_ROW, ""]
            for n in names:
                vals = ref[ds].get(n)
                mean = float(np.mean(vals)) if vals else math.nan
                crow[f"{n}_mean"], crow[f"{n}_ci95"] = mean, math.nan
                row.append(fmt(mean, digits=3) if vals else "")
            crow.update({field: math.nan for field in (*SEED_COUNTS, *anon_cols)})
            row.append("")
            row += [""] * (len(ATTACKS) if anon_cols else 0)
            csv_rows.append(crow)
            rows.append(row)
            row_keys.append((ds, HOLDOUT_ROW, ""))
    higher = [PRIVACY_LABELS.get(n, n) for n in names if direction.get(n) == "higher"]
    lower = [PRIVACY_LABELS.get(n, n) for n in names if direction.get(n) == "lower"]
    notes = [
        f"Raw values (not normalised). Safer = higher: {', '.join(higher) or 'none'}; "
        f"safer = lower: {', '.join(lower) or 'none'}.",
        "Distances are Euclidean on train-standardised numerics and one-hot categoricals to the full train "
        "split; DCR = distance to the closest train record; NN ratio = mean synthetic-to-train over mean "
        "train-to-train nearest-neighbour distance; NNDR = closest / second-closest distance.",
        "MIA = distance-based membership-inference attack (train members vs holdout non-members): AUC 0.5 and "
        "advantage 0 mean no membership leak; TPR@1% / TPR@0.1% = its true-positive rate at a false-positive "
        "rate below 1% / 0.1% (Carlini et al. 2022).",
        "Prompt / train copies = share of records equal to a real row shown in the prompt / to any train row; "
        "holdout matches = equal to a holdout row (never shown); each '(chance)' column is what real rows reach "
        "through the data's own duplicates (holdout rows vs prompt rows / train; train rows vs holdout).",
        "Seed MIA = membership attack on the real rows shown in the prompt (members) vs unseen holdout rows "
        "(non-members), 'Seed m/nm' their counts (\"Risk in context\", arXiv 2507.17066); – when the prompt "
        "showed no real rows, or when a prompted cell was scored without its prompt (prompt copies, seed MIA "
        'and inference then read "not measured", never 0).',
        "Closer to train / DCR overfit prot. = SDMetrics DCROverfittingProtection (share of records closer to "
        "train than to an equal-size holdout sample, 0.5 = no overfitting); Disclosure prot. / risk = SDMetrics "
        "DisclosureProtection (CAP) for the dataset card's quasi-identifiers and sensitive column, against a "
        "uniform guess of the sensitive value.",
        "Inference success = share of the sensitive values an attacker who knows a patient's quasi-identifiers "
        "reads off the synthetic records sharing them (zero-CAP), on the real rows the generator saw (the prompt's "
        "real rows, else a train sample); '(control)' = the same on unseen holdout rows, what the population "
        "gives away; Inference risk = (success - control) / (1 - control), 0 at or below the control "
        "(Anonymeter's inference risk).",
        f"{DASH} = failed cell (no valid records or metrics failed) or value not computable.",
    ]
    if anon_cols:
        notes.append(
            "Anonymeter singling-out / linkability / inference = risk [95% interval] of its three "
            "attacks on the train patients with the holdout as control (0 = no more than on unseen "
            "patients; lower is safer; risk and bounds averaged over repeats); not in Privacy."
        )
    if any(k[1] == HOLDOUT_ROW for k in row_keys):
        notes.append(
            f"'{HOLDOUT_ROW}': distances of real holdout rows to their closest train record, the "
            "level of a generator that never saw the train rows."
        )
    if len(summary) and summary["n_reps"].max() > 1:
        notes.append("Values are means over repeats ± half-width of the 95% t-interval.")
    if not names:
        notes.append("No privacy metrics were found in the metrics files.")
    layout = Layout(
        index=["Dataset", "Model", "Prompt"],
        groups=[
            (
                "",
                [PRIVACY_LABELS.get(n, n) for n in names]
                + ["Seed m/nm"]
                + ([ANONYMETER_LABELS[a] for a in ATTACKS] if anon_cols else []),
            )
        ],
        rows=rows,
        caption="Privacy per dataset, model and prompt: distance to the closest record and membership inference.",
        label="tab:privacy",
        notes=notes,
        breaks=_breaks(row_keys),
    )
    cols = CELL_COLUMNS + ["n_reps"]
    cols += [f"{n}_{k}" for n in names for k in ("mean", "ci95")] + list(SEED_COUNTS) + anon_cols
    return pd.DataFrame(csv_rows, columns=cols), layout


# --------------------------------------------------------------------------- fairness
def _group_order(groups) -> list[str]:
    from synllm.metrics.fairness import group_sort_key

    return sorted(dict.fromkeys(map(str, groups)), key=group_sort_key)


def _first(values) -> str:
    v = [str(x) for x in values if isinstance(x, str) and x]
    return v[0] if v else ""


def table_fairness(
    fair: pd.DataFrame,
    summary: pd.DataFrame,
    kinds: dict[str, str],
    paper_names: dict[str, str],
    failed_cells: set[tuple] | None = None,
) -> tuple[pd.DataFrame, Layout]:
    """Per-group KL and TSTR AUC per dataset x model x prompt x grouping, with the gaps.

    ``fair`` from :func:`synllm.aggregate.load.load_fairness`. Values of failed cells
    (``failed_cells``: ``KEY`` tuples whose metrics status is failed) are dropped, like in
    Table IV. Per group: mean over repeats; gap = max - min over the groups of the grouping,
    per repeat (needs two groups with a value), then mean ± 95 % CI over repeats.

    CSV: one row per dataset, model, prompt, group_by, group with ``n_real, n_synthetic,
    kl_mean, kl_mean_ci95, auc, auc_ci95, worst_feature`` and the grouping's ``kl_gap,
    kl_gap_ci95, auc_gap, auc_gap_ci95``, ``status`` and ``reason``.
    """
    fair = fair.copy()
    if failed_cells and len(fair):
        bad = fair[KEY_COLS].apply(tuple, axis=1).isin(failed_cells)
        fair.loc[bad, ["kl_mean", "auc", "worst_feature"]] = np.nan
        for col in ("kl_reason", "auc_reason"):
            fair[col] = fair[col].astype(object)
            fair.loc[bad, col] = [
                f"failed cell; {r}" if isinstance(r, str) and r else "failed cell"
                for r in fair.loc[bad, col]
            ]
    keys = _cell_rows(summary, kinds)
    stat = summary.set_index(["dataset", "model", "prompt"]) if len(summary) else None
    by_cell = {k: g for k, g in fair.groupby(["dataset", "model", "prompt"])} if len(fair) else {}
    csv_rows, rows, row_keys = [], [], []
    for key in keys:
        base, head = _cell_head(key, kinds, paper_names, stat.loc[key]["status"])
        sub = by_cell.get(key)
        if sub is None or sub.empty:
            csv_rows.append(
                {**base, "group_by": "", "group": "", "reason": "no fairness rows for this cell"}
            )
            rows.append(head + [DASH] * 7)
            row_keys.append(key)
            continue
        for grouping in list(dict.fromkeys(sub["group_by"])):
            g = sub[sub["group_by"] == grouping]
            groups = _group_order(g["group"])
            gaps = {}
            for col in ("kl_mean", "auc"):
                per_rep = []
                for _, r in g.groupby("rep"):
                    v = r[col].dropna()
                    per_rep.append(float(v.max() - v.min()) if len(v) >= 2 else math.nan)
                gaps[col] = mean_ci(per_rep)[:2]
            cells = {"n": [], "kl_mean": [], "auc": []}
            for grp in groups:
                r = g[g["group"] == grp]
                kl, kl_ci, _ = mean_ci(r["kl_mean"].to_numpy(dtype=float))
                auc, auc_ci, _ = mean_ci(r["auc"].to_numpy(dtype=float))
                n_syn = float(r["n_synthetic"].mean())
                worst = r["worst_feature"].dropna()
                csv_rows.append(
                    {
                        **base,
                        "group_by": grouping,
                        "group": grp,
                        "n_reps": int(r["rep"].nunique()),
                        "n_real": float(r["n_real"].mean()),
                        "n_synthetic": n_syn,
                        "n_holdout": float(r["n_holdout"].mean()),
                        "kl_mean": kl,
                        "kl_mean_ci95": kl_ci,
                        "auc": auc,
                        "auc_ci95": auc_ci,
                        "worst_feature": worst.mode().iloc[0] if len(worst) else "",
                        "kl_gap": gaps["kl_mean"][0],
                        "kl_gap_ci95": gaps["kl_mean"][1],
                        "auc_gap": gaps["auc"][0],
                        "auc_gap_ci95": gaps["auc"][1],
                        "reason": _first(list(r["kl_reason"]) + list(r["auc_reason"])),
                    }
                )
                cells["n"].append(f"{n_syn:.0f}" if math.isfinite(n_syn) else DASH)
                cells["kl_mean"].append(fmt(kl, digits=3))
                cells["auc"].append(fmt(auc))
            rows.append(
                head
                + [
                    grouping,
                    " / ".join(groups),
                    " / ".join(cells["n"]),
                    " / ".join(cells["kl_mean"]),
                    fmt(*gaps["kl_mean"], digits=3),
                    " / ".join(cells["auc"]),
                    fmt(*gaps["auc"]),
                ]
            )
            row_keys.append(key)
    notes = [
        "Per group (listed in the Groups column, values in the same order): KL = mean over features of "
        "KL(real train rows of the group || synthetic rows of the group), 10 real-decile bins for numerics, "
        "smoothed counts, nats, lower is better; AUC = ROC AUC on the real holdout rows of the group of "
        "XGBoost trained on the whole synthetic table (TSTR), higher is better.",
        "Gap = max - min over the groups of a grouping (lower is fairer); needs two groups with a value. "
        "Groupings: the dataset card's group columns and age bands (<40, 40-60, ≥60 years).",
        "Groups with fewer than 5 real train rows are left out; a group with fewer than 5 synthetic rows has "
        "no KL. Small-sample KL is biased upwards: compare cells with similar n synthetic.",
        f"{DASH} = failed cell, value not computable (e.g. one target class in the group), or no fairness "
        "output for the cell; reasons per group are in the CSV and in fairness/<cell>.csv.",
    ]
    if len(summary) and summary["n_reps"].max() > 1:
        notes.append(
            "Values are means over repeats; gaps are means ± half-width of the 95% t-interval."
        )
    layout = Layout(
        index=["Dataset", "Model", "Prompt", "Group by", "Groups"],
        groups=[("", ["n synthetic"]), ("KL", ["per group", "gap"]), ("AUC", ["per group", "gap"])],
        rows=rows,
        caption="Fairness per dataset, model, prompt and demographic grouping: per-group KL divergence and "
        "TSTR AUC, and the gap between groups.",
        label="tab:fairness",
        notes=notes,
        breaks=_breaks(row_keys),
    )
    cols = CELL_COLUMNS + [
        "group_by",
        "group",
        "n_reps",
        "n_real",
        "n_synthetic",
        "n_holdout",
        "kl_mean",
        "kl_mean_ci95",
        "auc",
        "auc_ci95",
        "worst_feature",
        "kl_gap",
        "kl_gap_ci95",
        "auc_gap",
        "auc_gap_ci95",
        "reason",
    ]
    return pd.DataFrame(csv_rows, columns=cols), layout


# --------------------------------------------------------------------------- intervals
INTERVAL_LABELS = {
    "quality": "Quality",
    "privacy": "Privacy",
    "harmonic": "Harmonic",
    "tstr_auc": "TSTR AUC",
}


def table_intervals(
    summary: pd.DataFrame, kinds: dict[str, str], paper_names: dict[str, str]
) -> tuple[pd.DataFrame, Layout]:
    """Quality, Privacy, Harmonic and TSTR AUC per dataset x model x prompt with their 95 %
    intervals (bootstrap over synthetic records with one repeat, t-interval over repeats).

    CSV: ``<score>`` (value), ``<score>_low``, ``<score>_high``, ``<score>_ci`` (``value [low,
    high]``) and ``<score>_interval`` (``bootstrap``, ``repeats`` or empty); Markdown / LaTeX:
    ``value ± half-width``.
    """
    from synllm.aggregate.uncertainty import INTERVAL_SCORES

    keys = _cell_rows(summary, kinds)
    stat = summary.set_index(["dataset", "model", "prompt"]) if len(summary) else None
    csv_rows, rows = [], []
    for key in keys:
        rec = stat.loc[key]
        crow, row = _cell_head(key, kinds, paper_names, rec["status"])
        crow["n_reps"] = int(rec["n_reps"])
        for s in INTERVAL_SCORES:
            v = float(rec.get(f"{s}_mean", math.nan))
            lo, hi = float(rec.get(f"{s}_low", math.nan)), float(rec.get(f"{s}_high", math.nan))
            crow.update(
                {
                    s: v,
                    f"{s}_low": lo,
                    f"{s}_high": hi,
                    f"{s}_ci": bracket(v, lo, hi),
                    f"{s}_interval": rec.get(f"{s}_interval", "") or "",
                }
            )
            row.append(fmt(v, half_width(lo, hi)))
        csv_rows.append(crow)
        rows.append(row)
    notes = [
        "Quality, Privacy and Harmonic as in Table IV; TSTR AUC = ROC-AUC on the real holdout of the "
        "utility classifiers trained on the synthetic table (mean over classifiers), raw.",
        "One repeat: ± is half the width of the 95% interval over bootstrap replicates of the cell's "
        "synthetic records (evaluation.bootstrap), each normalised with the run's normalisation like "
        "the point value: point ± t x SD of the replicates below 100 replicates, the 2.5-97.5% "
        "percentiles from 100 on (clipped to [0, 1]). Several repeats: the 95% t-interval over repeats.",
        f"{DASH} = failed cell or no value; a value without ± has no interval (bootstrap off, or a "
        "metric that failed in the replicates).",
    ]
    layout = Layout(
        index=["Dataset", "Model", "Prompt"],
        groups=[("", [INTERVAL_LABELS[s] for s in INTERVAL_SCORES])],
        rows=rows,
        caption="Scores with 95% intervals per dataset, model and prompt.",
        label="tab:intervals",
        notes=notes,
        breaks=_breaks(keys),
    )
    cols = CELL_COLUMNS + ["n_reps"]
    cols += [f"{s}{k}" for s in INTERVAL_SCORES for k in ("", "_low", "_high", "_ci", "_interval")]
    return pd.DataFrame(csv_rows, columns=cols), layout


# --------------------------------------------------------------------------- ranking
def table_ranking(
    rank: pd.DataFrame, res: dict, kinds: dict[str, str], paper_names: dict[str, str]
) -> tuple[pd.DataFrame, Layout]:
    """Friedman / Nemenyi ranking of the LLMs (:mod:`synllm.aggregate.ranking`): the LLM-only
    view; every generator ranked together is the leaderboard (:mod:`synllm.aggregate.leaderboard`)."""
    frame = rank.copy()
    frame.insert(1, "paper_name", frame["model"].map(lambda m: paper_names.get(m, "") if m else ""))
    see = "Every generator (LLM x prompt, peers, baselines) ranked together: tables/leaderboard."
    if not res["ok"]:
        rows = [[DASH, res["reason"], "", "", "", ""]]
        notes = [res["reason"] + ".", see]
    else:
        rows = []
        for i, r in enumerate(frame.itertuples(index=False), start=1):
            p = DASH if not math.isfinite(r.nemenyi_p_vs_best) else f"{r.nemenyi_p_vs_best:.3f}"
            rows.append([str(i), r.model, f"{r.mean_rank:.2f}", fmt(r.harmonic_mean), p, r.vs_best])
        notes = [
            f"Friedman test over {res['n']} (dataset, prompt) blocks and {res['k']} LLMs on the "
            f"Harmonic score: chi2 = {res['chi2']:.2f}, p = {res['p']:.3g}.",
            "Rank 1 = highest Harmonic in a block (ties share the mean rank); a failed or missing cell "
            "counts as Harmonic 0. Baselines take no prompt and are not ranked.",
            f"p vs best = Nemenyi post-hoc p-value against the best-ranked model (scikit-posthocs); "
            f"'not significant' = not distinguishable from the best at alpha 0.05 (critical difference "
            f"of mean ranks {res['cd']:.2f}).",
            see,
        ]
    layout = Layout(
        index=["Rank", "Model"],
        groups=[("", ["Mean rank", "Mean Harmonic", "p vs best", "vs best"])],
        rows=rows,
        caption="LLM ranking: Friedman test and Nemenyi post-hoc comparison with the best LLM.",
        label="tab:ranking",
        notes=notes,
    )
    return frame, layout
