"""Significance of the model ranking: Friedman test and Nemenyi post-hoc, with a
critical-difference diagram. The test and the diagram serve both rankings: the leaderboard of
every generator entry (:mod:`synllm.aggregate.leaderboard`, whose diagram is
``figures/critical_difference.png``) and this module's LLM-only view, ``table_ranking``.

Blocks are the (dataset, prompt) pairs of the run's LLM prompts, treatments the LLMs (baselines
take no prompt, so they have no block of their own and are not ranked). The value of a model
in a block is its Harmonic score (mean over repeats); a failed or missing cell counts as 0, the
worst Harmonic, as in Table IV's row order. Within a block the best Harmonic gets rank 1 (ties
share the mean rank). ``scipy.stats.friedmanchisquare`` tests whether the mean ranks differ;
``scikit_posthocs.posthoc_nemenyi_friedman`` gives the pairwise p-values, and a model whose
p-value against the best-ranked model is at least ``alpha`` (0.05) is *not significantly
different from the best*. The critical difference (Demsar 2006) is
``q_alpha * sqrt(k (k + 1) / (6 N))`` with ``q_alpha`` the studentized-range quantile over
sqrt(2) (``scipy.stats.studentized_range``), for ``k`` models and ``N`` blocks.

scikit-posthocs was chosen over autorank (both install without changing any pin): it gives the
Nemenyi p-value matrix and the diagram as separate calls on our own rank matrix, while autorank
picks its test itself (normality and variance checks, then ANOVA or Friedman) and reports
through its own result object.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from synllm import BASELINE_PROMPT

ALPHA = 0.05
MIN_MODELS = 3
MIN_BLOCKS = 2
COLUMNS = [
    "model",
    "mean_rank",
    "harmonic_mean",
    "n_blocks",
    "nemenyi_p_vs_best",
    "vs_best",
    "friedman_chi2",
    "friedman_p",
    "critical_difference",
    "n_models",
    "note",
]


def block_matrix(summary: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """Harmonic per (dataset, prompt) block (rows) and LLM (columns); failed / missing = 0."""
    llm = summary[
        summary["model"].map(lambda m: kinds.get(m, "LLM") != "baseline")
        & (summary["prompt"] != BASELINE_PROMPT)
    ]
    if llm.empty:
        return pd.DataFrame()
    wide = llm.pivot_table(
        index=["dataset", "prompt"],
        columns="model",
        values="harmonic_mean",
        aggfunc="mean",
        dropna=False,
    )
    blocks = llm[["dataset", "prompt"]].drop_duplicates()
    wide = wide.reindex(pd.MultiIndex.from_frame(blocks)).sort_index()
    return wide.reindex(columns=sorted(llm["model"].unique())).fillna(0.0)


def mean_ranks(matrix: pd.DataFrame) -> pd.Series:
    """Mean rank per model, rank 1 = highest value in a block (ties averaged)."""
    ranks = matrix.apply(
        lambda row: pd.Series(stats.rankdata(-row.to_numpy()), index=row.index), axis=1
    )
    return ranks.mean(axis=0)


def critical_difference(k: int, n: int, alpha: float = ALPHA) -> float:
    """Nemenyi critical difference of mean ranks for ``k`` models over ``n`` blocks."""
    q = stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2)
    return float(q * math.sqrt(k * (k + 1) / (6.0 * n)))


def friedman_nemenyi(
    matrix: pd.DataFrame,
    alpha: float = ALPHA,
    treatments: str = "LLM(s)",
    blocks: str = "(dataset, prompt) block(s)",
) -> dict:
    """The test on a blocks x treatments matrix (higher is better): ``{"ok", "reason", "chi2",
    "p", "ranks", "pvalues", "cd", "best"}`` (``ok`` False with a one-line ``reason`` when it
    cannot run). ``treatments`` / ``blocks`` name them in that reason. ``chi2`` and ``p`` are
    NaN when every block ranks the treatments alike (the statistic's tie correction is 0)."""
    k, n = (matrix.shape[1], matrix.shape[0]) if not matrix.empty else (0, 0)
    if k < MIN_MODELS:
        return {
            "ok": False,
            "reason": f"Friedman test not run: {k} {treatments} in the run, it needs at "
            f"least {MIN_MODELS}",
            "k": k,
            "n": n,
        }
    if n < MIN_BLOCKS:
        return {
            "ok": False,
            "reason": f"Friedman test not run: {n} {blocks}, it needs at least {MIN_BLOCKS}",
            "k": k,
            "n": n,
        }
    import scikit_posthocs as sp

    with np.errstate(invalid="ignore", divide="ignore"):
        chi2, p = stats.friedmanchisquare(*[matrix[c].to_numpy() for c in matrix.columns])
    ranks = mean_ranks(matrix)
    pvals = sp.posthoc_nemenyi_friedman(matrix.reset_index(drop=True))
    best = ranks.idxmin()
    return {
        "ok": True,
        "reason": None,
        "chi2": float(chi2),
        "p": float(p),
        "ranks": ranks,
        "pvalues": pvals,
        "cd": critical_difference(k, n, alpha),
        "best": best,
        "k": k,
        "n": n,
    }


def ranking_table(
    summary: pd.DataFrame, kinds: dict[str, str], alpha: float = ALPHA
) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """One row per LLM, best mean rank first; ``vs_best`` is ``best``, ``significant``
    (Nemenyi p < alpha) or ``not significant``. When the test cannot run, a single row
    whose ``note`` says why. Returns (table, test result, block matrix)."""
    matrix = block_matrix(summary, kinds) if len(summary) else pd.DataFrame()
    res = friedman_nemenyi(matrix, alpha)
    if not res["ok"]:
        row = {c: math.nan for c in COLUMNS}
        row.update(model="", vs_best="", n_models=res["k"], n_blocks=res["n"], note=res["reason"])
        return pd.DataFrame([row], columns=COLUMNS), res, matrix
    rows = []
    for model, r in res["ranks"].sort_values(kind="stable").items():
        p = float(res["pvalues"].loc[model, res["best"]]) if model != res["best"] else math.nan
        rows.append(
            {
                "model": model,
                "mean_rank": float(r),
                "harmonic_mean": float(matrix[model].mean()),
                "n_blocks": int(matrix.shape[0]),
                "nemenyi_p_vs_best": p,
                "vs_best": "best"
                if model == res["best"]
                else ("significant" if p < alpha else "not significant"),
                "friedman_chi2": res["chi2"],
                "friedman_p": res["p"],
                "critical_difference": res["cd"],
                "n_models": res["k"],
                "note": "",
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS), res, matrix


def cd_figure(
    res: dict,
    path: Path,
    title: str = "Critical-difference diagram",
    blocks: str = "(dataset, prompt) blocks",
    names: dict[str, str] | None = None,
    note: str = "",
) -> Path:
    """scikit-posthocs' critical-difference diagram, or a figure saying why there is none.

    ``names``: display label per treatment; ``note``: a line added under the title (e.g. that
    the blocks are too few for any difference to be significant)."""
    from synllm.aggregate import figures

    if not res["ok"]:
        return figures._message(path, title, res["reason"])
    import matplotlib.pyplot as plt
    import scikit_posthocs as sp

    ranks, pvals = res["ranks"], res["pvalues"]
    if names:
        ranks = ranks.rename(index=names)
        pvals = pvals.rename(index=names, columns=names)
    fig, ax = plt.subplots(figsize=(9, 2.0 + 0.3 * res["k"]))
    sp.critical_difference_diagram(ranks, pvals, ax=ax, alpha=ALPHA, cd=res["cd"])
    p = f"Friedman p = {res['p']:.3g}" if np.isfinite(res["p"]) else "no variation of ranks"
    fig.suptitle(
        f"{title}\nmean rank of Harmonic over {res['n']} {blocks}, {p}; bars join "
        f"entries that do not differ (Nemenyi, alpha {ALPHA})" + (f"\n{note}" if note else ""),
        fontsize=9,
        y=1.02,
    )
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
