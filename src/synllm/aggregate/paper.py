"""Compare the reproduced Table IV with the published one (Spearman rank correlation).

Model names: our slugs map to the paper's names through the registry's ``paper_name``
(``config/models.yaml``) and, for slugs the registry lacks, ``<paper_dir>/model_names.csv``.

The dataset of each Table IV row is resolved (rows 1-17 diabetes, 18-33 stroke, 34-44
cirrhosis; the CSV's ``dataset`` column). The printed "Harmonic" is (Q + P) / 2 (166 of 166
cells, ``<paper_dir>/PROTOCOL.md``), so it is compared with our (Q + P) / 2, like with like.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pandas as pd
import yaml
from scipy import stats

from synllm.errors import SynllmError

MIN_MODELS = 3


def load_paper_names(paper_dir: str | Path | None, registry: str | Path | None) -> dict[str, str]:
    """``slug -> paper name``: registry ``paper_name`` fields override ``model_names.csv``."""
    names: dict[str, str] = {}
    if paper_dir is not None:
        f = Path(paper_dir) / "model_names.csv"
        if f.is_file():
            df = pd.read_csv(f, dtype=str).fillna("")
            if not {"slug", "paper_name"} <= set(df.columns):
                raise SynllmError(f"{f}: needs columns slug,paper_name")
            names.update({s: n for s, n in zip(df["slug"], df["paper_name"]) if n})
    if registry is not None and Path(registry).is_file():
        try:
            reg = yaml.safe_load(Path(registry).read_text()) or {}
        except yaml.YAMLError as err:
            raise SynllmError(
                f"model registry {registry} is not valid YAML: {err}".replace("\n", " ")
            ) from None
        models = reg.get("models", reg) if isinstance(reg, dict) else {}
        if isinstance(models, dict):
            for slug, spec in models.items():
                if isinstance(spec, dict) and spec.get("paper_name"):
                    names[str(slug)] = str(spec["paper_name"])
    return names


def load_paper_table4(paper_dir: str | Path) -> pd.DataFrame:
    """The published Table IV: ``row, dataset (lower case), model, prompt, quality, privacy,
    harmonic`` ("harmonic" is the printed column, (Q + P) / 2)."""
    f = Path(paper_dir) / "table4_quality_privacy_harmonic.csv"
    if not f.is_file():
        raise SynllmError(
            f"paper table not found: {f} (copy it from the paper material into --paper-dir)"
        )
    df = pd.read_csv(f)
    need = {"row", "dataset", "model", "prompt", "quality", "privacy", "harmonic"}
    if not need <= set(df.columns):
        raise SynllmError(f"{f}: needs columns {sorted(need)}")
    df["dataset"] = df["dataset"].str.strip().str.lower()
    return df


def spearman(ours: pd.Series, theirs: pd.Series) -> dict:
    """Spearman rho and p-value over the index labels both series have (finite values).

    Returns ``n, rho, p, models``; rho and p are NaN when n < 3 or an input is constant.
    """
    both = pd.concat([ours.rename("ours"), theirs.rename("paper")], axis=1, join="inner").dropna()
    n = len(both)
    res = {"n": n, "rho": math.nan, "p": math.nan, "models": ";".join(map(str, both.index))}
    if n < MIN_MODELS or both["ours"].nunique() < 2 or both["paper"].nunique() < 2:
        return res
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = stats.spearmanr(both["ours"], both["paper"])
    res["rho"], res["p"] = float(r.statistic), float(r.pvalue)
    return res


def compare_harmonic(
    ours: pd.DataFrame,
    paper: pd.DataFrame,
    paper_names: dict[str, str],
    value: str = "harmonic_mean",
) -> pd.DataFrame:
    """Spearman correlations of our ``value`` column with the printed "Harmonic".

    ``ours``: ``dataset, model, prompt, <value>`` (NaN for failed cells); pass (Q + P) / 2 to
    compare like with like. Per dataset: one row per prompt both tables have (models
    correlated on that prompt) and one row ``prompt = "mean"`` (averaged over the prompts
    with a value, per model). Columns: ``dataset, prompt, n, rho, p, models``; fewer than 3
    common models -> rho and p NaN.
    """
    o = ours[ours["model"].isin(paper_names)].copy()
    o["paper_model"] = o["model"].map(paper_names)
    rows = []
    pv = paper.groupby(["dataset", "model", "prompt"], as_index=False)["harmonic"].mean()
    for ds in sorted(o["dataset"].unique()):
        od = o[o["dataset"] == ds]
        pd_ = pv[pv["dataset"] == ds]
        common_prompts = [p for p in od["prompt"].unique() if p in set(pd_["prompt"])]
        for prompt in sorted(common_prompts, key=lambda p: list(pd_["prompt"].unique()).index(p)):
            a = od[od["prompt"] == prompt].groupby("paper_model")[value].mean()
            b = pd_[pd_["prompt"] == prompt].set_index("model")["harmonic"]
            rows.append({"dataset": ds, "prompt": prompt, **spearman(a, b)})
        a = od[od["prompt"].isin(common_prompts)].groupby("paper_model")[value].mean()
        b = pd_.groupby("model")["harmonic"].mean()
        rows.append({"dataset": ds, "prompt": "mean", **spearman(a, b)})
    return pd.DataFrame(rows, columns=["dataset", "prompt", "n", "rho", "p", "models"])


def comparison_markdown(
    cmp: pd.DataFrame, ours: str = "our (Q + P) / 2 under this project's protocol"
) -> str:
    """``paper_comparison.md``: the correlations, "n/a" where fewer than 3 common models."""
    lines = [
        "**Spearman rank correlation between our scores and the SynLLM paper's Table IV "
        '"Harmonic"**',
        "",
        f'Ours: {ours}. The printed "Harmonic" is (Q + P) / 2 (PROTOCOL.md), so both sides '
        "are the arithmetic mean of Quality and Privacy.",
        "",
        "| Dataset | Prompt | n | rho | p | Models |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in cmp.itertuples(index=False):
        rho = "n/a" if not math.isfinite(r.rho) else f"{r.rho:.2f}"
        p = "n/a" if not math.isfinite(r.p) else f"{r.p:.3g}"
        lines.append(
            f"| {r.dataset} | {r.prompt} | {r.n} | {rho} | {p} | {r.models.replace(';', ', ')} |"
        )
    if cmp.empty:
        lines.append(
            "| – | – | 0 | n/a | n/a | (no model of this run is in the paper's Table IV) |"
        )
    lines += [
        "",
        "- n = models present in both tables with a finite value (failed cells and '–' paper "
        "cells are left out); rho/p are n/a when n < 3 or one side is constant.",
        "- prompt 'mean' correlates each model's value averaged over the prompts both tables have.",
        "- Paper rows: the resolved mapping (rows 1-17 diabetes, 18-33 stroke, 34-44 cirrhosis).",
        "- Under this project's protocol scores are normalised within our run and the paper's "
        "within its own pool, so only the rank order is comparable; "
        "`evaluation.protocol: paper` recomputes the printed values themselves.",
    ]
    return "\n".join(lines) + "\n"
