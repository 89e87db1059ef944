"""Paper-protocol scores, the reproduction of Table IV and the divergence attribution.

Input: the metrics JSONs of a run with ``evaluation.protocol: paper`` (one per cell, written
by ``synllm evaluate --protocol paper``). Scores follow the authors (``synllm.protocol``):

- every metric is min-max normalised over **all evaluated rows of the dataset** (every model
  of the run, printed or not); a metric whose range is below 1e-8 gives 0.5 to every row;
  lower-is-better metrics are flipped (1 - x);
- Quality / Privacy = mean of the normalised metrics of their group (missing values skipped);
  rows without both are dropped;
- ``mean_qp`` = (Q + P) / 2 is what Table IV prints as "Harmonic"; ``harmonic`` = 2QP / (Q + P).

Privacy is seeded: each cell carries its privacy metrics under K seeds; seed k of every cell
forms normalisation pool k, so the K runs give K Privacy values per cell (min / median / max).

Outputs: ``paper_reproduction.{csv,md}`` (one row per printed cell), its summary and figure,
``paper_divergence.{csv,md}`` with a step chart (Spearman of the per-model mean of the printed
"Harmonic" against ours after each switch of :data:`synllm.protocol.DIVERGENCE_STEPS`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from synllm.aggregate.paper import spearman
from synllm.errors import DataError
from synllm.protocol import DIVERGENCE_STEPS

CONST_RANGE = 1e-8
PROMPT_NAMES = ("SEEDEx", "FEATDESC", "STATGUIDE", "CLINRULE")
DATASET_TITLES = {"diabetes": "Diabetes", "stroke": "Stroke", "cirrhosis": "Cirrhosis"}


# --------------------------------------------------------------------------- scores
def normalise_paper(values: pd.Series, direction: str) -> pd.Series:
    """The authors' min-max: range < 1e-8 -> 0.5 for every row; lower-is-better flipped."""
    v = pd.to_numeric(values, errors="coerce")
    lo, hi = v.min(), v.max()
    if np.isfinite(lo) and hi - lo < CONST_RANGE:
        return pd.Series(0.5, index=v.index)
    x = (v - lo) / (hi - lo)
    return 1 - x if direction == "lower" else x


def normalise_project(values: pd.Series, direction: str) -> pd.Series:
    """The project's min-max (``synllm.aggregate.scores``): a constant metric gives 1.0."""
    v = pd.to_numeric(values, errors="coerce")
    lo, hi = v.min(), v.max()
    if not np.isfinite(lo):
        return v * np.nan
    if hi - lo <= 1e-12 * max(1.0, abs(hi)):
        return v.where(v.isna(), 1.0)
    x = (v - lo) / (hi - lo)
    return 1 - x if direction == "lower" else x


def combined(q, p, how: str):
    """``mean``: (Q + P) / 2; ``harmonic``: 2QP / (Q + P) (0 where Q + P = 0)."""
    q, p = np.asarray(q, dtype=float), np.asarray(p, dtype=float)
    if how == "mean":
        return (q + p) / 2
    s = q + p
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s == 0, 0.0, 2 * q * p / np.where(s == 0, 1.0, s))


def score_frame(rows: pd.DataFrame, decl: dict[str, dict], pool: str = "dataset") -> pd.DataFrame:
    """Quality / Privacy / mean_qp / harmonic per row of ``rows``.

    ``rows``: ``dataset, model, prompt`` + one column per metric (NaN = no value); ``decl``:
    ``metric -> {"score_group", "direction"}``. ``pool="dataset"``: the authors' rule
    (:func:`normalise_paper`); ``"run"``: the project's (:func:`normalise_project`).
    Rows are normalised per dataset over all given rows.
    """
    norm = normalise_paper if pool == "dataset" else normalise_project
    out = rows[["dataset", "model", "prompt"]].copy()
    q_cols, p_cols = [], []
    parts = {}
    for name, d in decl.items():
        if name not in rows.columns:
            continue
        col = rows.groupby("dataset", group_keys=False)[name].apply(
            lambda s, d=d: norm(s, d["direction"]) if s.notna().any() else s * np.nan
        )
        parts[f"norm_{name}"] = col
        (q_cols if d["score_group"] == "quality" else p_cols).append(f"norm_{name}")
    normed = pd.DataFrame(parts, index=rows.index)
    # a metric absent from a dataset (NaN in all of its rows) is skipped by the means
    out["quality"] = normed[q_cols].mean(axis=1, skipna=True) if q_cols else np.nan
    out["privacy"] = normed[p_cols].mean(axis=1, skipna=True) if p_cols else np.nan
    out["mean_qp"] = combined(out["quality"], out["privacy"], "mean")
    out["harmonic"] = combined(out["quality"], out["privacy"], "harmonic")
    return out


# --------------------------------------------------------------------------- loading
def load_cells(paths: list[str | Path]) -> list[dict]:
    """Metrics JSONs of a paper-protocol run (others are an error: wrong protocol)."""
    docs = []
    for p in paths:
        try:
            d = json.loads(Path(p).read_text())
        except (OSError, ValueError) as err:
            raise DataError(f"metrics file {p} cannot be read: {err}") from None
        if d.get("protocol") != "paper":
            raise DataError(f"metrics file {p} was not written under evaluation.protocol: paper")
        docs.append(d)
    return docs


def _decl(docs: list[dict], key: str = "metrics") -> dict[str, dict]:
    out: dict[str, dict] = {}
    for d in docs:
        for m in d.get(key) or []:
            if m.get("score_group") in ("quality", "privacy"):
                out.setdefault(
                    m["name"], {"score_group": m["score_group"], "direction": m["direction"]}
                )
    return out


def metric_rows(
    docs: list[dict], variant: str | None = None, seed_index: int | None = None
) -> tuple[pd.DataFrame, dict[str, dict]]:
    """One row per cell with a table: ``dataset, model, prompt`` + metric values.

    ``variant`` None: the paper protocol (``metrics``); else ``variants[variant]``.
    ``seed_index``: use that seed's privacy values instead of their median.
    """
    rows, decl = [], {}
    for d in docs:
        src = d if variant is None else (d.get("variants") or {}).get(variant)
        if not src or src.get("status") != "ok":
            continue
        row = {"dataset": d["dataset"], "model": d["model"], "prompt": d["prompt"]}
        for m in src["metrics"]:
            if m.get("score_group") not in ("quality", "privacy"):
                continue
            decl.setdefault(
                m["name"], {"score_group": m["score_group"], "direction": m["direction"]}
            )
            v = m.get("value")
            row[m["name"]] = math.nan if v is None else float(v)
        if seed_index is not None:
            for name, vals in (src.get("privacy_seeds") or {}).items():
                if seed_index < len(vals) and vals[seed_index] is not None:
                    row[name] = float(vals[seed_index])
        rows.append(row)
    return pd.DataFrame(rows), decl


def n_seeds(docs: list[dict]) -> int:
    return max((len(v) for d in docs for v in (d.get("privacy_seeds") or {}).values()), default=0)


# --------------------------------------------------------------------------- paper table
def load_printed(paper_dir: str | Path) -> pd.DataFrame:
    """Table IV with the resolved row mapping (the CSV's dataset column)."""
    f = Path(paper_dir) / "table4_quality_privacy_harmonic.csv"
    if not f.is_file():
        raise DataError(f"paper table not found: {f}")
    df = pd.read_csv(f)
    df["dataset"] = df["dataset"].str.strip().str.lower()
    return df


def at_printed_precision(printed: float, ours: float) -> bool:
    """Our value printed with two decimals (as the paper's table was) equals the printed one."""
    if not (np.isfinite(printed) and np.isfinite(ours)):
        return False
    return abs(float(f"{ours:.2f}") - printed) < 1e-9


REPRODUCTION_COLUMNS = [
    "dataset",
    "model",
    "prompt",
    "quality_paper",
    "quality_ours",
    "privacy_paper",
    "privacy_ours_min",
    "privacy_ours_median",
    "privacy_ours_max",
    "mean_qp_paper",
    "mean_qp_ours",
    "status",
]
"""The columns of ``paper_reproduction.md``; the CSV adds :data:`REPRODUCTION_CSV_ONLY`."""
REPRODUCTION_CSV_ONLY = ["harmonic_ours", "quality_match", "privacy_in_range", "mean_qp_in_range"]


def reproduction(docs: list[dict], paper: pd.DataFrame, names: dict[str, str]) -> pd.DataFrame:
    """One row per printed cell: the published and our values, and a ``status``.

    ``names``: our model slug -> the paper's name. Privacy: min / median / max over the K
    seeded runs (each run normalises its own seed's values over the whole dataset pool).
    """
    base, decl = metric_rows(docs)
    sc = score_frame(base, decl)
    k = n_seeds(docs)
    seeded = []
    for i in range(k):
        rows, d = metric_rows(docs, seed_index=i)
        s = score_frame(rows, d)
        seeded.append(s.assign(seed=i))
    seeded_df = pd.concat(seeded) if seeded else sc.assign(seed=0)
    priv = seeded_df.groupby(["dataset", "model", "prompt"])["privacy"].agg(
        privacy_ours_min="min", privacy_ours_median="median", privacy_ours_max="max"
    )
    qp = seeded_df.groupby(["dataset", "model", "prompt"])["mean_qp"].agg(
        mean_qp_ours_min="min", mean_qp_ours_max="max"
    )
    sc = sc.merge(priv.reset_index(), on=["dataset", "model", "prompt"], how="left")
    sc = sc.merge(qp.reset_index(), on=["dataset", "model", "prompt"], how="left")
    sc["paper_model"] = sc["model"].map(names)
    statuses = {(d["dataset"], names.get(d["model"]), d["prompt"]): d.get("status") for d in docs}
    rows = []
    for r in paper.itertuples(index=False):
        hit = sc[
            (sc["dataset"] == r.dataset)
            & (sc["paper_model"] == r.model)
            & (sc["prompt"] == r.prompt)
        ]
        h = hit.iloc[0] if len(hit) else None
        ours = h if h is not None else pd.Series(dtype=float)  # no table here: NaN throughout
        printed_dash = not np.isfinite(r.quality)
        cell_status = statuses.get((r.dataset, r.model, r.prompt))
        row = {
            "dataset": r.dataset,
            "model": r.model,
            "prompt": r.prompt,
            "quality_paper": r.quality,
            "quality_ours": ours.get("quality", math.nan),
            "privacy_paper": r.privacy,
            "privacy_ours_min": ours.get("privacy_ours_min", math.nan),
            "privacy_ours_median": ours.get("privacy_ours_median", math.nan),
            "privacy_ours_max": ours.get("privacy_ours_max", math.nan),
            "mean_qp_paper": r.harmonic,
            "mean_qp_ours": ours.get("mean_qp", math.nan),
            "harmonic_ours": ours.get("harmonic", math.nan),
        }
        if printed_dash:
            row["status"] = (
                "dash_reproduced"
                if h is None and cell_status in ("short", None)
                else "dash_not_reproduced"
            )
        elif h is None:
            row["status"] = "missing_ours"
        else:
            q_ok = at_printed_precision(r.quality, row["quality_ours"])
            p_in = row["privacy_ours_min"] - 0.005 <= r.privacy <= row["privacy_ours_max"] + 0.005
            h_in = h["mean_qp_ours_min"] - 0.005 <= r.harmonic <= h["mean_qp_ours_max"] + 0.005
            row["quality_match"] = q_ok
            row["privacy_in_range"] = p_in
            row["mean_qp_in_range"] = h_in
            row["status"] = ("quality_match" if q_ok else "quality_differs") + (
                "+privacy_in_range" if p_in else "+privacy_outside"
            )
        rows.append(row)
    return pd.DataFrame(rows).reindex(columns=REPRODUCTION_COLUMNS + REPRODUCTION_CSV_ONLY)


def _flags(s: pd.Series) -> pd.Series:
    return s.astype("boolean").fillna(False).astype(bool)


def _count(s: pd.Series) -> int:
    return int(_flags(s).sum())


def reproduction_summary(rep: pd.DataFrame) -> pd.DataFrame:
    """Per dataset: printed cells, matches per column, "–" cells reproduced."""
    rows = []
    for ds in [d for d in DATASET_TITLES if d in set(rep["dataset"])]:
        sub = rep[rep["dataset"] == ds]
        val = sub[sub["quality_paper"].notna()]
        dash = sub[sub["quality_paper"].isna()]
        rows.append(
            {
                "dataset": ds,
                "printed_cells": len(val),
                "quality_match": _count(val["quality_match"]),
                "privacy_in_seed_range": _count(val["privacy_in_range"]),
                "mean_qp_in_seed_range": _count(val["mean_qp_in_range"]),
                "privacy_median_match": int(
                    sum(
                        at_printed_precision(a, b)
                        for a, b in zip(val["privacy_paper"], val["privacy_ours_median"])
                    )
                ),
                "mean_qp_match": int(
                    sum(
                        at_printed_precision(a, b)
                        for a, b in zip(val["mean_qp_paper"], val["mean_qp_ours"])
                    )
                ),
                "dash_cells": len(dash),
                "dash_reproduced": int((dash["status"] == "dash_reproduced").sum()),
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- divergence
def divergence(
    docs: list[dict],
    paper: pd.DataFrame,
    names: dict[str, str],
    printed_models: set[tuple[str, str]] | None = None,
) -> pd.DataFrame:
    """Spearman (per dataset, per-model mean over prompts) of ours vs the printed "Harmonic"
    after each cumulative step of :data:`DIVERGENCE_STEPS`; also Quality alone."""
    out = []
    pv = paper[paper["quality"].notna()]
    for label, _change in DIVERGENCE_STEPS:
        variant = None if label == "0_paper" else _variant_source(label)
        rows, decl = metric_rows(docs, variant)
        if rows.empty:
            continue
        rows["paper_model"] = rows["model"].map(names)
        pool = "run" if _reached(label, "5_run_normalisation") else "dataset"
        how = "harmonic" if _reached(label, "6_true_harmonic") else "mean"
        if pool == "run":
            # the run = the cells a replay of the printed table holds (its models per dataset)
            shown = printed_models or set(zip(pv["dataset"], pv["model"]))
            keep = [(d, m) in shown for d, m in zip(rows["dataset"], rows["paper_model"])]
            rows = rows[keep].reset_index(drop=True)
        sc = score_frame(rows, decl, pool)
        sc["paper_model"] = rows["paper_model"].to_numpy()
        sc["combined"] = combined(sc["quality"], sc["privacy"], how)
        for ds in [d for d in DATASET_TITLES if d in set(sc["dataset"])]:
            s = sc[(sc["dataset"] == ds) & sc["paper_model"].notna()]
            p = pv[pv["dataset"] == ds]
            both = s.merge(
                p,
                left_on=["paper_model", "prompt"],
                right_on=["model", "prompt"],
                suffixes=("", "_paper"),
            )
            # rounded: models with identical tables tie exactly, whatever the summation order
            ours = both.groupby("paper_model")["combined"].mean().round(10)
            theirs = both.groupby("paper_model")["harmonic_paper"].mean().round(10)
            r = spearman(ours, theirs)
            q = spearman(
                both.groupby("paper_model")["quality"].mean().round(10),
                both.groupby("paper_model")["quality_paper"].mean().round(10),
            )
            out.append(
                {
                    "step": label,
                    "dataset": ds,
                    "combined": how,
                    "n_models": r["n"],
                    "spearman_harmonic": r["rho"],
                    "spearman_quality": q["rho"],
                    "n_cells": len(both),
                }
            )
    return pd.DataFrame(out)


_ORDER = [s for s, _ in DIVERGENCE_STEPS]


def _reached(label: str, step: str) -> bool:
    return _ORDER.index(label) >= _ORDER.index(step)


def _variant_source(label: str) -> str:
    """Steps 5 and 6 change only the aggregation: they reuse step 4's metric values."""
    return (
        label if _ORDER.index(label) <= _ORDER.index("4_project_metrics") else "4_project_metrics"
    )


# --------------------------------------------------------------------------- outputs
def _fmt(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        return "–" if not np.isfinite(v) else f"{v:.3f}"
    return str(v)


def markdown(frame: pd.DataFrame, title: str, notes: list[str]) -> str:
    lines = [
        f"**{title}**",
        "",
        "| " + " | ".join(frame.columns) + " |",
        "|" + "---|" * len(frame.columns),
    ]
    for r in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v) for v in r) + " |")
    return "\n".join(lines + [""] + [f"- {n}" for n in notes]) + "\n"


def reproduction_figure(rep: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dss = [d for d in DATASET_TITLES if d in set(rep["dataset"])]
    fig, axes = plt.subplots(
        2, max(1, len(dss)), figsize=(4.2 * max(1, len(dss)), 8), squeeze=False
    )
    for j, ds in enumerate(dss):
        sub = rep[(rep["dataset"] == ds) & rep["quality_paper"].notna()]
        ax = axes[0, j]
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
        ok = _flags(sub["quality_match"])
        ax.scatter(sub["quality_paper"][ok], sub["quality_ours"][ok], s=14, label="match")
        ax.scatter(
            sub["quality_paper"][~ok],
            sub["quality_ours"][~ok],
            s=14,
            marker="x",
            color="C3",
            label="differs",
        )
        ax.set_title(f"{DATASET_TITLES[ds]}: Quality ({int(ok.sum())}/{len(sub)} match)")
        ax.set_xlabel("printed")
        ax.set_ylabel("recomputed")
        ax.legend(fontsize=7)
        ax = axes[1, j]
        order = np.argsort(sub["privacy_paper"].to_numpy())
        x = np.arange(len(sub))
        lo = sub["privacy_ours_min"].to_numpy()[order]
        hi = sub["privacy_ours_max"].to_numpy()[order]
        ax.vlines(x, lo, hi, color="C0", lw=2, label="ours, K seeds [min, max]")
        ax.scatter(
            x, sub["privacy_paper"].to_numpy()[order], s=10, color="k", zorder=3, label="printed"
        )
        inside = _count(sub["privacy_in_range"]) / len(sub) if len(sub) else 0
        ax.set_title(f"{DATASET_TITLES[ds]}: Privacy ({inside:.0%} inside)")
        ax.set_xlabel("printed cells (sorted by printed Privacy)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def divergence_figure(div: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    steps = [s for s, _ in DIVERGENCE_STEPS]
    for ds in [d for d in DATASET_TITLES if d in set(div["dataset"])]:
        sub = div[div["dataset"] == ds].set_index("step").reindex(steps)
        ax.step(
            range(len(steps)),
            sub["spearman_harmonic"],
            where="mid",
            marker="o",
            label=DATASET_TITLES[ds],
        )
    ax.set_xticks(range(len(steps)))
    ax.set_xticklabels(
        [s.split("_", 1)[1].replace("_", " ") for s in steps], rotation=20, ha="right", fontsize=8
    )
    ax.set_ylabel("Spearman vs printed 'Harmonic'\n(model means)")
    ax.set_ylim(-1, 1.05)
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_title("From the authors' protocol to the project's, one choice at a time")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(
    metrics_paths: list[Path],
    out_dir: str | Path,
    figures_dir: str | Path,
    paper_dir: str | Path,
    names: dict[str, str],
    make_figures: bool = True,
) -> dict[str, pd.DataFrame]:
    """Every paper-protocol output (see module doc); returns the frames."""
    from synllm.aggregate.paper import compare_harmonic, comparison_markdown

    out_dir, figures_dir = Path(out_dir), Path(figures_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures_dir.mkdir(parents=True, exist_ok=True)
    docs = load_cells(metrics_paths)
    paper = load_printed(paper_dir)
    rep = reproduction(docs, paper, names)
    rep.to_csv(out_dir / "paper_reproduction.csv", index=False)
    k = n_seeds(docs)
    (out_dir / "paper_reproduction.md").write_text(
        markdown(
            rep[REPRODUCTION_COLUMNS],
            "Table IV recomputed from the authors' raw outputs under their protocol",
            [
                f"Privacy: min / median / max over K = {k} seeded runs (the authors' sampling was "
                "unseeded); mean_qp = (Q + P) / 2, the column the paper prints as 'Harmonic'.",
                "Quality 'match' = equal at the printed precision (two decimals).",
                "Stroke: the authors evaluated stroke inputs that differ from the published raw "
                "outputs (PROTOCOL.md); its Quality cannot match.",
            ],
        )
    )
    summ = reproduction_summary(rep)
    summ.to_csv(out_dir / "paper_reproduction_summary.csv", index=False)
    (out_dir / "paper_reproduction_summary.md").write_text(
        markdown(
            summ,
            "Matches at the printed precision, per dataset",
            [
                "privacy_in_seed_range / mean_qp_in_seed_range: the printed value lies within "
                "[min, max] of the K seeded runs (+-0.005, the printed rounding).",
                "dash_reproduced: printed '–' cells that also have no 100-row table here.",
            ],
        )
    )
    base_rows, decl = metric_rows(docs)
    scores = score_frame(base_rows, decl) if len(base_rows) else pd.DataFrame()
    scores.to_csv(out_dir / "paper_protocol_scores.csv", index=False)
    div = divergence(docs, paper, names)
    div.to_csv(out_dir / "paper_divergence.csv", index=False)
    (out_dir / "paper_divergence.md").write_text(
        markdown(
            div,
            "What each choice changes: Spearman of the model ranking vs the printed table",
            [
                "Steps are cumulative: each switches one more choice from the authors' to the "
                "project's (synllm.protocol.DIVERGENCE_STEPS).",
                "spearman_harmonic: per-model mean over the printed prompts of ours ((Q + P) / 2, "
                "from step 6 the true harmonic mean) vs the printed 'Harmonic'; spearman_quality: "
                "the same for Quality.",
                "Privacy: the median over seeds (step 0) or the first seed (steps 1-6).",
            ],
        )
    )
    # like with like: the printed "Harmonic" is (Q + P) / 2
    ours = scores.rename(columns={"mean_qp": "harmonic_mean"}) if len(scores) else scores
    cmp = (
        compare_harmonic(ours, paper, names)
        if len(ours)
        else pd.DataFrame(columns=["dataset", "prompt", "n", "rho", "p", "models"])
    )
    cmp.to_csv(out_dir / "paper_comparison.csv", index=False, na_rep="n/a")
    (out_dir / "paper_comparison.md").write_text(
        comparison_markdown(
            cmp, "(Q + P) / 2 under the authors' protocol (evaluation.protocol: paper)"
        )
    )
    if make_figures:
        reproduction_figure(rep, figures_dir / "paper_reproduction.png")
        divergence_figure(div, figures_dir / "paper_divergence.png")
    return {
        "reproduction": rep,
        "summary": summ,
        "divergence": div,
        "scores": scores,
        "comparison": cmp,
    }
