"""``synllm sweep-plots``: Quality, Harmonic and TSTR utility against a sweep axis.

Reads the metrics JSONs of one axis' cells and writes ``<tables>/sweep_<axis>.csv`` and
``<figures>/sweep_<axis>_<dataset>.png``; scores as in :mod:`synllm.aggregate.scores`, with
one normalisation pool per base dataset and axis.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd

from synllm.errors import SynllmError
from synllm.sweeps import SweepPoint, parse_points

_AXIS_LABEL = {
    "features": "features kept (by mutual information with the target)",
    "sample_size": "records requested per cell",
}


SWEEP_SCORES = [
    "quality",
    "privacy",
    "harmonic",
    "clinical",
    "tstr_auc",
    "tstr_f1",
    "tstr_accuracy",
]
CSV_COLUMNS = (
    [
        "dataset",
        "axis",
        "value",
        "label",
        "variant",
        "model",
        "kind",
        "n_cells",
        "n_ok",
        "n_synthetic_mean",
    ]
    + SWEEP_SCORES
    + ["features"]
)


def sweep_table(
    axis: str,
    points: list[SweepPoint],
    metrics_paths: list[Path],
    cards: dict[str, list[str]] | None = None,
) -> pd.DataFrame:
    """One row per base dataset x axis value x model: scores averaged over prompts and repeats
    (failed cells count in ``n_cells`` only). See the module doc for the normalisation."""
    from synllm.aggregate import scores
    from synllm.aggregate.load import KEY, load_metrics

    by_ds = {p.dataset: p for p in points}
    cells, metrics, raw = load_metrics(metrics_paths)
    stray = sorted(set(cells["dataset"]) - set(by_ds))
    if stray:
        raise SynllmError(
            f"sweep-plots: metrics of dataset(s) {stray} are not points of the {axis} axis"
        )
    # one normalisation pool per base dataset: every axis value together
    norm = scores.normalise(metrics.assign(dataset=metrics["dataset"].map(lambda d: by_ds[d].base)))
    norm["dataset"] = metrics["dataset"].to_numpy()
    util = scores.utility_per_cell(scores.utility_long(metrics, raw))
    cell = scores.cell_scores(cells, norm, None)
    cell = cell.merge(
        util[KEY + [c for c in ("tstr_auc", "tstr_f1", "tstr_accuracy") if c in util]],
        on=KEY,
        how="left",
    )
    cell = cell.merge(cells[KEY + ["n_synthetic"]], on=KEY, how="left")
    for c in SWEEP_SCORES:
        if c not in cell:
            cell[c] = np.nan
    kinds = scores.model_kinds(cells) if len(cells) else {}
    rows = []
    for p in points:
        sub = cell[cell["dataset"] == p.dataset]
        for model, msub in sub.groupby("model", sort=False):
            ok = msub[msub["status"] == "ok"]
            row = {
                "dataset": p.base,
                "axis": axis,
                "value": p.value,
                "label": p.label,
                "variant": p.dataset,
                "model": model,
                "kind": kinds.get(model, "LLM"),
                "n_cells": len(msub),
                "n_ok": len(ok),
                "n_synthetic_mean": float(msub["n_synthetic"].mean()),
                "features": " ".join((cards or {}).get(p.dataset, [])),
            }
            for c in SWEEP_SCORES:
                v = ok[c].dropna()
                row[c] = float(v.mean()) if len(v) else math.nan
            rows.append(row)
    return pd.DataFrame(rows, columns=CSV_COLUMNS)


def _message(path: Path, title: str, text: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


PANELS = [
    ("quality", "Quality (normalised, 1 = best)"),
    ("harmonic", "Harmonic (Quality, Privacy)"),
    ("tstr_auc", "TSTR ROC-AUC"),
    ("tstr_f1", "TSTR macro-F1"),
]


def sweep_figure(
    table: pd.DataFrame, axis: str, dataset: str, points: list[SweepPoint], path: str | Path
) -> Path:
    """2 x 2 panels of :data:`PANELS` vs the axis for one base dataset, one line per model
    (baselines dashed); ticks at the axis values ("all" marks the full table)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    title = f"{dataset}: sweep over {axis.replace('_', ' ')}"
    sub = table[table["dataset"] == dataset]
    if sub.empty or sub[[c for c, _ in PANELS]].isna().all().all():
        return _message(
            path,
            title,
            "no cell of this sweep has a score" if len(sub) else "no cells for this dataset",
        )
    pts = sorted((p for p in points if p.base == dataset), key=lambda p: p.value)
    ticks = [p.value for p in pts]
    labels = [f"{p.value}\n(all)" if p.label == "all" else p.label for p in pts]
    log = axis == "sample_size" and min(ticks) > 0 and max(ticks) / min(ticks) >= 10
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    models = list(
        dict.fromkeys(sub.sort_values(["kind", "model"], ascending=[False, True])["model"])
    )
    for ax, (col, ylabel) in zip(axes.flat, PANELS):
        for i, m in enumerate(models):
            ms = sub[sub["model"] == m].sort_values("value")
            kind = ms["kind"].iloc[0]
            ax.plot(
                ms["value"],
                ms[col],
                marker="o",
                linestyle="--" if kind == "baseline" else "-",
                color=f"C{i % 10}",
                label=f"{m} (baseline)" if kind == "baseline" else m,
            )
        ax.set_ylabel(ylabel)
        if log:
            ax.set_xscale("log")
        ax.set_xticks(ticks, labels)
        ax.minorticks_off()
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel(_AXIS_LABEL[axis])
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(4, len(names)), frameon=False)
    fig.suptitle(title + " (mean over prompts and repeats; gaps = no valid cell)")
    fig.tight_layout(rect=(0, 0.07, 1, 0.96))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def cli(argv: list[str]) -> int:
    """``synllm sweep-plots``: sweep table (CSV) and one figure per base dataset."""
    from synllm.aggregate.load import gather_paths
    from synllm.cards import load_card

    p = argparse.ArgumentParser(
        prog="synllm sweep-plots",
        description="quality and utility vs a sweep axis: CSV + one PNG per dataset",
    )
    p.add_argument(
        "--points", required=True, help="JSON: axis and its points (written by the workflow)"
    )
    p.add_argument(
        "--metrics-list", action="append", default=[], help="file listing metrics JSON paths"
    )
    p.add_argument("--metrics", nargs="*", default=[], help="metrics JSON paths given directly")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--figures-dir", required=True, help="writes sweep_<axis>_<dataset>.png here")
    a = p.parse_args(argv)
    axis, points, card_paths = parse_points(a.points)
    paths = gather_paths(a.metrics_list, a.metrics)
    if not paths:
        raise SynllmError("sweep-plots: no metrics files given (--metrics-list / --metrics)")
    cards = {ds: list(load_card(path).columns) for ds, path in card_paths.items()}
    table = sweep_table(axis, points, paths, cards)
    Path(a.out_csv).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(a.out_csv, index=False)
    for ds in dict.fromkeys(p.base for p in points):
        sweep_figure(table, axis, ds, points, Path(a.figures_dir) / f"sweep_{axis}_{ds}.png")
    print(
        f"sweep-plots: {axis}: {len(paths)} cells, {len(table)} rows -> {a.out_csv}, {a.figures_dir}"
    )
    return 0
