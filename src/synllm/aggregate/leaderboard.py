"""The leaderboard: every generator of the run ranked together.

An **entry** is what a user would pick: an LLM with one prompt style (``model/prompt``), or a
generator that takes no prompt (a baseline, a peer, an external table: ``model``). Its kind
comes from :func:`synllm.aggregate.scores.model_kinds`, i.e. from the registry backend that
wrote the cell's meta, so a new peer needs no change here.

A **block** is one (dataset, repeat) of the run: every entry has at most one cell in it. The
value of an entry in a block is the cell's Harmonic score. Within a block the highest Harmonic
gets rank 1 (ties share the mean rank); a failed cell, or no cell at all, ranks last in that
block (every such entry shares the last places) and the leaderboard says so in its note.

Over the blocks: mean rank; ``scipy.stats.friedmanchisquare`` on the ranked values and the
Nemenyi post-hoc (``scikit_posthocs.posthoc_nemenyi_friedman``) through
:func:`synllm.aggregate.ranking.friedman_nemenyi`, the critical difference of mean ranks, and
how strong a test the run's blocks allow (:func:`significance`): with few blocks even an entry
first in every block and one last in every block may not differ significantly, and the table
says so instead of hiding the test.

**Win rate** against a baseline (SDGym's comparison with its baselines): over the blocks where
the baseline has a valid cell, the share in which the entry's Harmonic is higher; a tie counts
half, a failed or missing entry cell loses. ``n`` is that number of blocks.

Per dataset the leaderboard carries Quality, Privacy, Harmonic and TSTR AUC with their 95 %
intervals (the summary's ``<score>_low`` / ``_high``: bootstrap over the cell's synthetic
records with one repeat, t-interval over repeats otherwise; :mod:`synllm.aggregate.uncertainty`)
and the entry's rank within that dataset (mean over its repeats).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from synllm import BASELINE_PROMPT
from synllm.aggregate.ranking import ALPHA, friedman_nemenyi
from synllm.aggregate.render import DASH, Layout, display_entry, fmt, to_rst  # noqa: F401
from synllm.aggregate.uncertainty import INTERVAL_SCORES, bracket

FAILED = -1.0
"""Stand-in Harmonic of a failed or missing cell for ranking: below every valid score (0-1)."""

KIND_ORDER = ("LLM", "peer", "external", "baseline")
BLOCK_KEY = ["dataset", "rep"]
SCORE_LABELS = {
    "quality": "Quality",
    "privacy": "Privacy",
    "harmonic": "Harmonic",
    "tstr_auc": "TSTR AUC",
}


def entry_name(model: str, prompt: str) -> str:
    """``model/prompt`` for a prompted model, ``model`` for one that takes no prompt."""
    return model if prompt == BASELINE_PROMPT else f"{model}/{prompt}"


def entries(cell: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """One row per entry of the run: ``entry, model, prompt, kind`` (kind order, then name)."""
    pairs = cell[["model", "prompt"]].drop_duplicates()
    rows = [
        {
            "entry": entry_name(m, p),
            "model": m,
            "prompt": p,
            "kind": kinds.get(m, "baseline" if p == BASELINE_PROMPT else "LLM"),
        }
        for m, p in pairs.itertuples(index=False)
    ]
    out = pd.DataFrame(rows, columns=["entry", "model", "prompt", "kind"])
    order = {k: i for i, k in enumerate(KIND_ORDER)}
    out["_k"] = out["kind"].map(lambda k: order.get(k, len(order)))
    return out.sort_values(["_k", "entry"]).drop(columns="_k").reset_index(drop=True)


def block_values(cell: pd.DataFrame, ents: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Harmonic per block (rows, ``(dataset, rep)``) and entry (columns), NaN unless the cell is
    ok with a finite Harmonic; and the cell status per block and entry: ``ok``, ``failed`` or
    ``missing`` (the entry has no cell in that block)."""
    c = cell.assign(entry=[entry_name(m, p) for m, p in zip(cell["model"], cell["prompt"])])
    blocks = pd.MultiIndex.from_frame(
        c[BLOCK_KEY].drop_duplicates().sort_values(BLOCK_KEY).reset_index(drop=True)
    )
    ok = (c["status"] == "ok") & np.isfinite(c["harmonic"].astype(float))
    val = c.assign(v=np.where(ok, c["harmonic"].astype(float), np.nan))
    values = val.pivot_table(
        index=BLOCK_KEY, columns="entry", values="v", aggfunc="first", dropna=False
    )
    values = values.reindex(index=blocks, columns=list(ents["entry"]))
    status = pd.DataFrame("missing", index=blocks, columns=list(ents["entry"]))
    for r in c.assign(ok=ok).itertuples(index=False):
        status.loc[(r.dataset, r.rep), r.entry] = "ok" if r.ok else "failed"
    return values.astype(float), status


def block_ranks(values: pd.DataFrame) -> pd.DataFrame:
    """Rank per block, 1 = highest Harmonic, ties averaged; NaN (failed / missing) ranks last."""
    filled = values.fillna(FAILED)
    r = np.vstack([stats.rankdata(-row) for row in filled.to_numpy()]) if len(filled) else []
    return pd.DataFrame(r, index=values.index, columns=values.columns, dtype=float)


def win_rates(values: pd.DataFrame, status: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """``wins`` (ties half) and ``n`` per entry against ``baseline``, over the blocks where the
    baseline's cell is valid; ``wins``/``n`` NaN for the baseline itself or when ``n`` is 0."""
    have = status[baseline] == "ok"
    ref = values.loc[have, baseline]
    rows = {}
    for e in values.columns:
        if e == baseline:
            rows[e] = (math.nan, 0)
            continue
        v = values.loc[have, e]
        wins = float((v > ref).sum() + 0.5 * (v == ref).sum())
        rows[e] = (wins, int(have.sum()))
    return pd.DataFrame.from_dict(rows, orient="index", columns=["wins", "n"])


def significance(k: int, n: int, alpha: float = ALPHA) -> dict:
    """How strong a Nemenyi test ``n`` blocks allow for ``k`` entries.

    ``max_gap``: the largest possible difference of mean ranks (``k - 1``: first in every block
    vs last in every block); ``min_p``: its Nemenyi p-value, the smallest any pair can reach
    (same formula as ``scikit_posthocs.posthoc_nemenyi_friedman``); ``possible``: whether any
    pair can be significant at ``alpha``; ``text``: one plain sentence for the table.
    """
    from synllm.aggregate.ranking import critical_difference

    if k < 2 or n < 1:
        return {"max_gap": math.nan, "min_p": math.nan, "possible": False, "text": ""}
    gap = float(k - 1)
    q = gap / math.sqrt(k * (k + 1) / (6.0 * n))
    min_p = float(stats.studentized_range.sf(q * math.sqrt(2.0), k, np.inf))
    cd = critical_difference(k, n, alpha)
    if min_p >= alpha:
        text = (
            f"Too few blocks for significance: with {n} block(s) and {k} entries even an entry "
            f"first in every block and one last in every block are {gap:.0f} mean ranks apart, "
            f"less than the critical difference {cd:.2f}, so no difference can be significant "
            f"(smallest possible Nemenyi p = {min_p:.3f}). The ranks describe this run only; "
            "add datasets or repeats for a test."
        )
    else:
        text = (
            f"Few blocks: with {n} block(s) and {k} entries two entries differ significantly "
            f"only when their mean ranks are at least {cd:.2f} apart (the largest possible gap "
            f"is {gap:.0f}); entries closer than that cannot be told apart here."
        )
        if n < 10:
            text += (
                " The Friedman p-value is a chi-square approximation, rough below about 10 "
                "blocks; add datasets or repeats for a sharper test."
            )
    return {"max_gap": gap, "min_p": min_p, "possible": min_p < alpha, "text": text}


def _note(status: pd.Series) -> str:
    n = len(status)
    parts = []
    for what, label in (("failed", "failed"), ("missing", "no cell")):
        c = int((status == what).sum())
        if c:
            parts.append(f"{label} in {c} of {n} block(s), ranked last there")
    return "; ".join(parts)


OVERALL_COLUMNS = [
    "scope",
    "dataset",
    "rank",
    "entry",
    "model",
    "prompt",
    "kind",
    "mean_rank",
    "n_blocks",
    "n_failed",
    "n_missing",
    "harmonic_mean",
    "nemenyi_p_vs_best",
    "vs_best",
]


def build(
    cell: pd.DataFrame, summary: pd.DataFrame, kinds: dict[str, str], alpha: float = ALPHA
) -> dict:
    """The leaderboard of a run.

    ``cell``: one row per cell and repeat (``dataset, model, prompt, rep, status, harmonic``);
    ``summary``: one row per dataset x model x prompt with ``<score>_mean`` and, when the run
    has intervals, ``<score>_low`` / ``<score>_high`` (:func:`uncertainty.summary_intervals`).

    Returns ``{"overall", "datasets", "test", "significance", "baselines", "values",
    "status", "ranks"}``: ``overall`` one row per entry (best mean rank first) with mean rank,
    failed / missing block counts, mean Harmonic over its valid blocks, Nemenyi p against the
    best entry, ``vs_best`` and ``win_vs_<baseline>`` / ``n_vs_<baseline>``; ``datasets`` one
    row per dataset and entry with its rank in that dataset and the four scores with intervals;
    ``test`` the :func:`friedman_nemenyi` result on the blocks x entries matrix.
    """
    ents = entries(cell, kinds)
    values, status = block_values(cell, ents)
    ranks = block_ranks(values)
    filled = values.fillna(FAILED)
    test = friedman_nemenyi(filled, alpha, treatments="entries", blocks="(dataset, repeat) blocks")
    k, n = values.shape[1], values.shape[0]
    sig = significance(k, n, alpha)
    baselines = list(ents.loc[ents["kind"] == "baseline", "entry"])
    wins = {b: win_rates(values, status, b) for b in baselines}

    mean_rank = ranks.mean(axis=0)
    h_mean = values.mean(axis=0, skipna=True)
    order = sorted(
        ents["entry"],
        key=lambda e: (mean_rank[e], -(h_mean[e] if np.isfinite(h_mean[e]) else -1.0), e),
    )
    best = order[0] if order else None
    info = ents.set_index("entry")
    rows = []
    for i, e in enumerate(order, start=1):
        p = math.nan
        vs = ""
        if test["ok"]:
            p = math.nan if e == best else float(test["pvalues"].loc[e, best])
            vs = "best" if e == best else ("significant" if p < alpha else "not significant")
        row = {
            "scope": "overall",
            "dataset": "",
            "rank": i,
            "entry": e,
            "model": info.loc[e, "model"],
            "prompt": info.loc[e, "prompt"],
            "kind": info.loc[e, "kind"],
            "mean_rank": float(mean_rank[e]),
            "n_blocks": n,
            "n_failed": int((status[e] == "failed").sum()),
            "n_missing": int((status[e] == "missing").sum()),
            "harmonic_mean": float(h_mean[e]),
            "nemenyi_p_vs_best": p,
            "vs_best": vs,
        }
        for b in baselines:
            w, nb = wins[b].loc[e, "wins"], int(wins[b].loc[e, "n"])
            row[f"win_vs_{b}"] = w / nb if nb and np.isfinite(w) else math.nan
            row[f"wins_vs_{b}"] = w
            row[f"n_vs_{b}"] = nb
        row.update(
            friedman_chi2=test.get("chi2", math.nan),
            friedman_p=test.get("p", math.nan),
            critical_difference=test.get("cd", math.nan),
            n_entries=k,
            significance=sig["text"] if test["ok"] else test["reason"],
            note=_note(status[e]),
        )
        rows.append(row)
    win_cols = [f"{w}_vs_{b}" for b in baselines for w in ("win", "wins", "n")]
    overall = pd.DataFrame(
        rows,
        columns=OVERALL_COLUMNS
        + win_cols
        + [
            "friedman_chi2",
            "friedman_p",
            "critical_difference",
            "n_entries",
            "significance",
            "note",
        ],
    )
    datasets = _per_dataset(summary, ents, ranks, status, order)
    return {
        "overall": overall,
        "datasets": datasets,
        "test": test,
        "significance": sig,
        "baselines": baselines,
        "values": values,
        "status": status,
        "ranks": ranks,
    }


def _per_dataset(
    summary: pd.DataFrame,
    ents: pd.DataFrame,
    ranks: pd.DataFrame,
    status: pd.DataFrame,
    order: list[str],
) -> pd.DataFrame:
    stat = summary.set_index(["dataset", "model", "prompt"]) if len(summary) else None
    info = ents.set_index("entry")
    pos = {e: i for i, e in enumerate(order)}
    rows = []
    for ds in sorted(ranks.index.get_level_values("dataset").unique()):
        r = ranks.xs(ds, level="dataset").mean(axis=0)
        st = status.xs(ds, level="dataset")
        for e in sorted(order, key=lambda e: (r[e], pos[e])):
            model, prompt = info.loc[e, "model"], info.loc[e, "prompt"]
            row = {
                "scope": "dataset",
                "dataset": ds,
                "entry": e,
                "model": model,
                "prompt": prompt,
                "kind": info.loc[e, "kind"],
                "rank_in_dataset": float(r[e]),
                "n_reps": len(st),
                "n_failed": int((st[e] == "failed").sum()),
                "n_missing": int((st[e] == "missing").sum()),
            }
            rec = (
                stat.loc[(ds, model, prompt)]
                if stat is not None and (ds, model, prompt) in stat.index
                else None
            )
            for s in INTERVAL_SCORES:
                v = lo = hi = math.nan
                if rec is not None:
                    v = float(rec.get(f"{s}_mean", math.nan))
                    # scores live in [0, 1]; a t-interval over few repeats can reach past them
                    lo = float(np.clip(rec.get(f"{s}_low", math.nan), 0.0, 1.0))
                    hi = float(np.clip(rec.get(f"{s}_high", math.nan), 0.0, 1.0))
                row.update({s: v, f"{s}_low": lo, f"{s}_high": hi, f"{s}_ci": bracket(v, lo, hi)})
            row["note"] = _note(st[e])
            rows.append(row)
    cols = ["scope", "dataset", "entry", "model", "prompt", "kind", "rank_in_dataset", "n_reps"]
    cols += ["n_failed", "n_missing"]
    cols += [f"{s}{x}" for s in INTERVAL_SCORES for x in ("", "_low", "_high", "_ci")]
    return pd.DataFrame(rows, columns=cols + ["note"])


# --------------------------------------------------------------------------- display
def _wins_cell(wins: float, n: int) -> str:
    if not n or not np.isfinite(wins):
        return DASH
    w = f"{wins:.1f}".removesuffix(".0")
    return f"{w}/{n}"


def layouts(board: dict, paper_names: dict[str, str] | None = None) -> list[Layout]:
    """Two display tables: the overall ranking, then the per-dataset scores."""
    ov, test, sig = board["overall"], board["test"], board["significance"]
    bases = board["baselines"]
    rows = []
    for r in ov.itertuples(index=False):
        rec = r._asdict()
        p = rec["nemenyi_p_vs_best"]
        row = [
            str(rec["rank"]),
            display_entry(rec["entry"], rec["kind"], paper_names),
            f"{rec['mean_rank']:.2f}",
            fmt(rec["harmonic_mean"]),
            DASH if not math.isfinite(p) else f"{p:.3f}",
            rec["vs_best"] or DASH,
        ]
        row += [_wins_cell(rec[f"wins_vs_{b}"], rec[f"n_vs_{b}"]) for b in bases]
        row.append(rec["note"] or "")
        rows.append(row)
    n, k = len(board["values"]), len(ov)
    notes = []
    if test["ok"]:
        chi = test["chi2"]
        notes.append(
            f"Friedman test over {n} (dataset, repeat) blocks and {k} entries on Harmonic: "
            + (
                f"chi2 = {chi:.2f}, p = {test['p']:.3g}; "
                if math.isfinite(chi)
                else "no variation of ranks; "
            )
            + f"Nemenyi critical difference of mean ranks {test['cd']:.2f} (alpha {ALPHA})."
        )
        notes.append(sig["text"])
    else:
        notes.append(test["reason"] + ".")
    notes += [
        "Rank 1 = highest Harmonic in a block (ties share the mean rank); a failed cell or an "
        "entry with no cell in a block ranks last in that block (Note column). Harmonic = mean "
        "over the entry's valid blocks.",
        "p vs best = Nemenyi post-hoc p-value against the best entry (scikit-posthocs); 'not "
        "significant' = not distinguishable from the best at alpha 0.05.",
    ]
    if bases:
        notes.append(
            "Win rate vs a baseline = blocks where the entry's Harmonic is higher / blocks where "
            "the baseline has a valid cell (a tie counts half, a failed entry cell loses)."
        )
    overall = Layout(
        index=["Rank", "Entry"],
        groups=[
            g
            for g in (
                ("", ["Mean rank", "Harmonic", "p vs best", "vs best"]),
                ("Wins vs", list(bases)),
                ("", ["Note"]),
            )
            if g[1]
        ],
        rows=rows,
        caption=f"Leaderboard: {k} generator entries ranked over {n} (dataset, repeat) blocks "
        "by Harmonic.",
        label="tab:leaderboard",
        notes=notes,
    )
    ds = board["datasets"]
    drows, keys = [], []
    for r in ds.itertuples(index=False):
        rec = r._asdict()
        row = [
            rec["dataset"],
            f"{rec['rank_in_dataset']:.1f}".removesuffix(".0"),
            display_entry(rec["entry"], rec["kind"], paper_names),
        ]
        row += [rec[f"{s}_ci"] or DASH for s in INTERVAL_SCORES]
        row.append(rec["note"] or "")
        drows.append(row)
        keys.append(rec["dataset"])
    per = Layout(
        index=["Dataset", "Rank", "Entry"],
        groups=[("", [SCORE_LABELS[s] for s in INTERVAL_SCORES] + ["Note"])],
        rows=drows,
        caption="Leaderboard per dataset: scores with 95% intervals, value [low, high].",
        label="tab:leaderboard-datasets",
        notes=[
            "Rank within the dataset (mean over its repeats). Quality, Privacy and Harmonic as in "
            "Table IV, TSTR AUC as in Table V (raw). Interval: one repeat, the 95% bootstrap "
            "interval over the cell's synthetic records; several repeats, the t-interval over "
            f"repeats (clipped to [0, 1]); none when bootstrap is off. {DASH} = failed cell.",
        ],
        breaks=[i for i in range(1, len(keys)) if keys[i] != keys[i - 1]],
    )
    return [overall, per]


def frame(board: dict) -> pd.DataFrame:
    """The CSV: the overall rows (``scope = overall``), then the per-dataset rows."""
    return pd.concat([board["overall"], board["datasets"]], ignore_index=True, sort=False)


# --------------------------------------------------------------------------- report page
REPORT_STYLE = (
    ".prose.max-w-lg{max-width:min(72rem,100%)}.prose table{font-size:0.8rem}"
    ".h-screen.overflow-auto.items-center{align-items:flex-start}"
)
"""Snakemake's report template gives the landing text a 32rem column, too narrow for the
leaderboard, and centres its content vertically, which cuts the top of a page taller than the
window; the landing page overrides both."""


def run_facts(cell: pd.DataFrame, kinds: dict[str, str]) -> str:
    """One sentence on what the run was: datasets, repeats, entries by kind, valid records."""
    ents = entries(cell, kinds)
    ds = sorted(cell["dataset"].unique())
    reps = int(cell["rep"].nunique())
    by_kind = ents["kind"].value_counts()
    kinds_txt = ", ".join(f"{by_kind[k]} {k}" for k in KIND_ORDER if k in by_kind)
    llms = sorted(ents.loc[ents["kind"] == "LLM", "model"].unique())
    ok = cell.loc[cell["status"] == "ok", "n_synthetic"].dropna()
    recs = (
        f"valid records per cell {int(ok.min())}-{int(ok.max())} (median {ok.median():g})"
        if len(ok)
        else "no valid cell"
    )
    n_failed = int((cell["status"] != "ok").sum())
    return (
        f"{len(ds)} dataset(s) ({', '.join(ds)}) x {reps} repeat(s); {len(ents)} entries "
        f"({kinds_txt}; LLMs: {', '.join(llms) or 'none'}); {len(cell)} cells, "
        f"{n_failed} failed; {recs}."
    )


def report_rst(parts: list[Layout], figures: list[tuple[str, str]], facts: str) -> str:
    """The landing-page fragment of the Snakemake report (``.. include::``-d by
    ``workflow/report/workflow.rst``): the run's facts, the overall leaderboard, the figures
    (embedded as data URIs, so the report stays one file) and the per-dataset table.

    ``figures``: ``(png path, caption)``; a path that does not exist is left out.
    """
    import base64
    import html
    from pathlib import Path

    out = [".. raw:: html", "", f"   <style>{REPORT_STYLE}</style>", ""]
    out += [f"**Cells:** {facts}", ""]
    out += [to_rst(parts[0]), ""]
    for path, caption in figures:
        p = Path(path)
        if not p.is_file():
            continue
        # docutils refuses lines over 10,000 characters; browsers drop the line breaks of a
        # URL and the white space of base64 data
        data = base64.b64encode(p.read_bytes()).decode("ascii")
        out += [".. raw:: html", "", f'   <figure><img alt="{html.escape(p.name)}"']
        out += ['   style="width:100%" src="data:image/png;base64,']
        out += [f"   {data[i : i + 76]}" for i in range(0, len(data), 76)]
        out += [f'   "/><figcaption>{html.escape(caption)}</figcaption></figure>', ""]
    out += [to_rst(p) for p in parts[1:]]
    return "\n".join(out) + "\n"
