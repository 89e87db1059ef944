"""Figures (matplotlib, Agg backend, PNG) with fixed names Snakemake can declare.

- ``harmonic_heatmap_{dataset}.png``: model x prompt Harmonic (failed/missing cells grey, "–");
- ``leaderboard.png``: every entry of the leaderboard, Harmonic with intervals and mean rank;
- ``quality_vs_privacy.png``: one panel per dataset, one named point per model x prompt;
- ``efficiency.png``: Efficiency per ranked model (Table VI);
- ``distributions_{dataset}_best.png`` / ``_worst.png``: per-feature real (train) vs synthetic
  distributions of the cell (one repeat) with the highest / lowest Harmonic.

Every figure is always written; when there is nothing to draw it says why.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from synllm.aggregate.render import display_entry  # noqa: E402
from synllm.aggregate.tables import NONE_GROUP, prompt_order  # noqa: E402

DPI = 120


def _message(path: Path, title: str, text: str) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=11)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def harmonic_heatmap(
    summary: pd.DataFrame, dataset: str, kinds: dict[str, str], path: Path
) -> Path:
    """Heatmap of mean Harmonic, rows = models (best first), columns = prompts."""
    sub = summary[summary["dataset"] == dataset]
    if sub.empty:
        return _message(path, f"Harmonic score: {dataset}", "no cells for this dataset")
    prompts = prompt_order(sub["prompt"].unique())
    grid = sub.pivot_table(
        index="model", columns="prompt", values="harmonic_mean", aggfunc="mean", dropna=False
    )
    grid = grid.reindex(columns=prompts)
    order = grid.fillna(0).mean(axis=1).sort_values(ascending=False).index
    order = [m for m in order if kinds.get(m) != "baseline"] + [
        m for m in order if kinds.get(m) == "baseline"
    ]
    grid = grid.reindex(index=order)
    vals = grid.to_numpy(dtype=float)
    present = {(m, p) for m, p in zip(sub["model"], sub["prompt"])}
    fig, ax = plt.subplots(figsize=(1.2 * len(prompts) + 3, 0.38 * len(order) + 1.6))
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#d0d0d0")
    im = ax.imshow(np.ma.masked_invalid(vals), cmap=cmap, vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(
        range(len(prompts)),
        [NONE_GROUP if p == "none" else p for p in prompts],
        rotation=30,
        ha="right",
    )
    ax.set_yticks(
        range(len(order)), [f"{m} (baseline)" if kinds.get(m) == "baseline" else m for m in order]
    )
    for i in range(vals.shape[0]):
        for j in range(vals.shape[1]):
            v = vals[i, j]
            if (order[i], prompts[j]) not in present:  # not in this model's grid: blank
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, color="white"))
                continue
            txt = "–" if math.isnan(v) else f"{v:.2f}"
            ax.text(
                j,
                i,
                txt,
                ha="center",
                va="center",
                fontsize=8,
                color="white" if not math.isnan(v) and v < 0.5 else "black",
            )
    fig.colorbar(im, ax=ax, label="Harmonic (higher is better)")
    ax.set_title(f"Harmonic score, {dataset} (grey – = failed cell, blank = not in the grid)")
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


KIND_MARKERS = {"LLM": "o", "peer": "s", "external": "D", "baseline": "^"}
"""Marker per generator kind in every figure; other kinds get ``P``."""


def _generator_colours(models: list[str], kinds: dict[str, str]) -> dict[str, tuple]:
    """One colour per generator: LLMs from tab10 / tab20, the others from Dark2."""
    llm = [m for m in models if kinds.get(m) == "LLM"]
    other = [m for m in models if kinds.get(m) != "LLM"]
    pal = matplotlib.colormaps["tab10" if len(llm) <= 10 else "tab20"]
    dark = matplotlib.colormaps["Dark2"]
    out = {m: pal(i % pal.N) for i, m in enumerate(llm)}
    out.update({m: dark(i % dark.N) for i, m in enumerate(other)})
    return out


def _iso_harmonic(ax) -> None:
    q = np.linspace(0.01, 1, 200)
    for h in (0.25, 0.5, 0.75):
        pp = h * q / (2 * q - h)
        m = (pp > 0) & (pp <= 1) & (2 * q > h)
        ax.plot(q[m], pp[m], color="grey", lw=0.6, ls=":")
        if m.any():
            ax.annotate(f"H={h}", (q[m][-1], pp[m][-1]), fontsize=7, color="grey")


LABEL_POINTS = 24
"""A panel with at most this many points writes each point's name beside it."""


def quality_vs_privacy(summary: pd.DataFrame, kinds: dict[str, str], path: Path) -> Path:
    """Mean Quality vs Privacy, one panel per dataset, one point per model x prompt: marker =
    generator kind, colour = generator (legend), and beside each point its prompt (LLMs) or
    its name (every other kind) when the panel has few points."""
    ok = summary.dropna(subset=["quality_mean", "privacy_mean"])
    if ok.empty:
        return _message(path, "Quality vs privacy", "no valid cell in this run")
    datasets = sorted(ok["dataset"].unique())
    models = sorted(ok["model"].unique(), key=lambda m: (kinds.get(m) != "LLM", m))
    colours = _generator_colours(models, kinds)
    ncol = min(3, len(datasets))
    nrow = math.ceil(len(datasets) / ncol)
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(4.6 * ncol + 2.4, 4.4 * nrow), squeeze=False, sharex=True
    )
    for ax, ds in zip(axes.flat, datasets):
        sub = ok[ok["dataset"] == ds]
        label = len(sub) <= LABEL_POINTS
        for r in sub.itertuples(index=False):
            kind = kinds.get(r.model, "LLM")
            ax.scatter(
                r.quality_mean,
                r.privacy_mean,
                color=colours[r.model],
                marker=KIND_MARKERS.get(kind, "P"),
                s=55 if kind != "LLM" else 40,
                alpha=0.85,
                edgecolor="black",
                linewidth=0.4,
                zorder=3,
            )
            if label or kind != "LLM":
                text = r.prompt if kind == "LLM" else r.model
                ax.annotate(
                    text,
                    (r.quality_mean, r.privacy_mean),
                    xytext=(4, 3),
                    textcoords="offset points",
                    fontsize=7,
                    color="black" if kind != "LLM" else "dimgrey",
                )
        _iso_harmonic(ax)
        ax.set_xlim(-0.02, 1.1)
        ax.set_ylim(-0.02, 1.05)
        ax.set_title(ds)
        ax.set_xlabel("Quality (normalised, higher is better)")
        ax.set_ylabel("Privacy (normalised, higher is better)")
    for ax in list(axes.flat)[len(datasets) :]:
        ax.axis("off")
    handles = [
        Line2D(
            [],
            [],
            ls="",
            marker=KIND_MARKERS.get(kinds.get(m, "LLM"), "P"),
            color=colours[m],
            markeredgecolor="black",
            markeredgewidth=0.4,
            label=m if kinds.get(m, "LLM") == "LLM" else f"{m} ({kinds.get(m)})",
        )
        for m in models
    ]
    fig.legend(handles=handles, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(
        "Quality vs privacy per generator (mean over repeats; LLM points named by prompt; "
        "dotted: iso-Harmonic)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def leaderboard(board: dict, path: Path, paper_names: dict[str, str] | None = None) -> Path:
    """The leaderboard at a glance: entries best first; left, Harmonic with its 95 % interval
    per dataset (marker = kind, colour = dataset, x = failed cell); right, mean rank over the
    blocks with the Nemenyi critical difference."""
    ov, per = board["overall"], board["datasets"]
    title = "Leaderboard"
    if ov.empty:
        return _message(path, title, "no entry in this run")
    names = [f"{r.rank}. {display_entry(r.entry, r.kind, paper_names)}" for r in ov.itertuples()]
    entries = list(ov["entry"])
    y = {e: i for i, e in enumerate(entries)}
    datasets = sorted(per["dataset"].unique())
    colours = matplotlib.colormaps["tab10"]
    fig, (ax, axr) = plt.subplots(
        1,
        2,
        figsize=(11, 1.2 + 0.42 * len(entries)),
        sharey=True,
        gridspec_kw={"width_ratios": [2.2, 1]},
    )
    step = 0.6 / max(1, len(datasets))
    for di, ds in enumerate(datasets):
        sub = per[per["dataset"] == ds]
        off = (di - (len(datasets) - 1) / 2) * step
        for r in sub.itertuples(index=False):
            yy = y[r.entry] + off
            kind = r.kind
            if not np.isfinite(r.harmonic):
                ax.scatter(0, yy, marker="x", color=colours(di % 10), s=30, zorder=3)
                continue
            if np.isfinite(r.harmonic_low) and np.isfinite(r.harmonic_high):
                ax.plot([r.harmonic_low, r.harmonic_high], [yy, yy], color=colours(di % 10), lw=1.2)
            ax.scatter(
                r.harmonic,
                yy,
                marker=KIND_MARKERS.get(kind, "P"),
                color=colours(di % 10),
                edgecolor="black",
                linewidth=0.4,
                s=36,
                zorder=3,
            )
    for di, ds in enumerate(datasets):
        ax.plot([], [], color=colours(di % 10), marker="o", label=ds)
    for kind in [k for k in KIND_MARKERS if k in set(ov["kind"])]:
        ax.scatter([], [], marker=KIND_MARKERS[kind], color="grey", label=kind)
    ax.legend(fontsize=7, loc="lower right", ncol=2)
    ax.set_yticks(range(len(entries)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(-0.03, 1.03)
    ax.set_xlabel("Harmonic with 95 % interval, per dataset (x = failed cell)")
    ax.grid(axis="x", color="0.9")
    axr.barh(range(len(entries)), ov["mean_rank"], color="0.6")
    for i, v in enumerate(ov["mean_rank"]):
        axr.annotate(
            f"{v:.2f}", (v, i), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7
        )
    k = len(entries)
    axr.set_xlim(0, k + 0.9)
    axr.set_xlabel("Mean rank over blocks (1 = best)")
    test = board["test"]
    n = len(board["values"])
    if test["ok"]:
        cd = test["cd"]
        axr.plot([1, 1 + cd], [-0.9, -0.9], color="black", lw=2, clip_on=False)
        axr.annotate(
            f"CD {cd:.2f}",
            (1 + cd, -0.9),
            xytext=(3, -3),
            textcoords="offset points",
            fontsize=7,
            annotation_clip=False,
        )
        p = test["p"]
        sub = (f"Friedman p = {p:.3g}" if np.isfinite(p) else "Friedman: no variation of ranks") + (
            "" if board["significance"]["possible"] else "; too few blocks for significance"
        )
    else:
        sub = test["reason"]
    fig.suptitle(
        f"{title}: {k} entries, {len(datasets)} dataset(s), {n} (dataset, repeat) blocks; {sub}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def efficiency_bars(eff: pd.DataFrame, path: Path) -> Path:
    """Horizontal bars of Efficiency (stacked halves: NormSpeed/2 and GFI/2) per ranked model."""
    r = eff[eff["efficiency"].notna()]
    if r.empty:
        return _message(path, "Efficiency", "no ranked model (no valid durations)")
    r = r.iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(r) + 1.5))
    y = np.arange(len(r))
    ax.barh(y, r["norm_speed"] / 2, color="#4c72b0", label="NormSpeed / 2")
    ax.barh(y, r["gfi"] / 2, left=r["norm_speed"] / 2, color="#55a868", label="GFI / 2")
    for yi, v in zip(y, r["efficiency"]):
        ax.text(v + 0.01, yi, f"{v:.3f}", va="center", fontsize=8)
    ax.set_yticks(y, r["model"])
    ax.set_xlim(0, 1.08)
    ax.set_xlabel("Efficiency = (NormSpeed + GFI) / 2 (higher is better)")
    ax.set_title("Efficiency ranking")
    ax.legend(fontsize=8, loc="lower right")
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def distributions(
    card,
    real: pd.DataFrame,
    synth: pd.DataFrame,
    title: str,
    path: Path,
    max_real: int = 20000,
    seed: int = 0,
) -> Path:
    """Per-feature overlay: numeric -> density histograms on shared bins; categorical /
    binary -> category proportions side by side. ``real`` is subsampled to ``max_real`` rows."""
    if len(real) > max_real:
        real = real.sample(max_real, random_state=seed)
    cols = card.feature_names
    ncol = 4
    nrow = math.ceil(len(cols) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.5 * nrow), squeeze=False)
    for ax, col in zip(axes.flat, cols):
        spec = card.columns[col]
        r = real[col].dropna() if col in real else pd.Series(dtype=float)
        s = synth[col].dropna() if col in synth else pd.Series(dtype=float)
        if spec.is_numeric:
            r = pd.to_numeric(r, errors="coerce").dropna().astype(float)
            s = pd.to_numeric(s, errors="coerce").dropna().astype(float)
            both = pd.concat([r, s])
            if both.empty:
                ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
            else:
                lo, hi = float(both.min()), float(both.max())
                bins = np.linspace(lo, hi if hi > lo else lo + 1, 31)
                ax.hist(r, bins=bins, density=True, alpha=0.5, color="#4c72b0", label="real")
                if len(s):
                    ax.hist(
                        s, bins=bins, density=True, alpha=0.5, color="#dd8452", label="synthetic"
                    )
        else:
            cats = list(spec.categories) if spec.type == "categorical" else [0, 1]
            rs = r.astype(str) if spec.type == "categorical" else pd.to_numeric(r, errors="coerce")
            ss = s.astype(str) if spec.type == "categorical" else pd.to_numeric(s, errors="coerce")
            rp = rs.value_counts(normalize=True).reindex(cats, fill_value=0)
            sp = ss.value_counts(normalize=True).reindex(cats, fill_value=0) if len(ss) else rp * 0
            x = np.arange(len(cats))
            ax.bar(x - 0.2, rp.to_numpy(), width=0.4, color="#4c72b0", label="real")
            ax.bar(x + 0.2, sp.to_numpy(), width=0.4, color="#dd8452", label="synthetic")
            ax.set_xticks(x, [str(c) for c in cats], rotation=30, ha="right", fontsize=7)
        ax.set_title(col, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(cols) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path
