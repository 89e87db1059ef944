"""Compare the reproduced Table IV with the published one (Spearman rank correlation).

Model names: our slugs map to the paper's names through the registry's ``paper_name``
(``config/models.yaml``) and, for slugs the registry lacks, ``<paper_dir>/model_names.csv``.

The paper's Table IV has an ambiguous row-to-dataset mapping (``<paper_dir>/README.md``);
``table4_uncertain_rows.csv`` lists those rows. Every correlation is reported twice:
``paper_rows = as_printed`` (all rows; duplicated dataset x model x prompt rows averaged) and
``paper_rows = certain`` (uncertain rows left out).
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
            raise SynllmError(f"model registry {registry} is not valid YAML: {err}".replace("\n", " "))
        models = reg.get("models", reg) if isinstance(reg, dict) else {}
        if isinstance(models, dict):
            for slug, spec in models.items():
                if isinstance(spec, dict) and spec.get("paper_name"):
                    names[str(slug)] = str(spec["paper_name"])
    return names


def load_paper_table4(paper_dir: str | Path) -> pd.DataFrame:
    """The published Table IV: ``row, dataset (lower case), model, prompt, quality, privacy,
    harmonic, uncertain`` (bool, from ``table4_uncertain_rows.csv`` if present)."""
    f = Path(paper_dir) / "table4_quality_privacy_harmonic.csv"
    if not f.is_file():
        raise SynllmError(f"paper table not found: {f} (copy it from the paper material into --paper-dir)")
    df = pd.read_csv(f)
    need = {"row", "dataset", "model", "prompt", "quality", "privacy", "harmonic"}
    if not need <= set(df.columns):
        raise SynllmError(f"{f}: needs columns {sorted(need)}")
    df["dataset"] = df["dataset"].str.strip().str.lower()
    unc = Path(paper_dir) / "table4_uncertain_rows.csv"
    rows = set(pd.read_csv(unc)["row"].astype(int)) if unc.is_file() else set()
    df["uncertain"] = df["row"].astype(int).isin(rows)
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


def compare_harmonic(ours: pd.DataFrame, paper: pd.DataFrame, paper_names: dict[str, str]) -> pd.DataFrame:
    """Spearman correlations of Harmonic scores, ours vs the paper's.

    ``ours``: ``dataset, model, prompt, harmonic_mean`` (NaN for failed cells). For every
    dataset and paper-row variant: one row per prompt both tables have (models correlated on
    that prompt's Harmonic) and one row ``prompt = "mean"`` (Harmonic averaged over the
    prompts with a value, per model). Columns: ``dataset, prompt, paper_rows, n, rho, p,
    models``; fewer than 3 common models -> rho and p NaN.
    """
    o = ours[ours["model"].isin(paper_names)].copy()
    o["paper_model"] = o["model"].map(paper_names)
    rows = []
    for variant in ("as_printed", "certain"):
        pv = paper if variant == "as_printed" else paper[~paper["uncertain"]]
        pv = pv.groupby(["dataset", "model", "prompt"], as_index=False)["harmonic"].mean()
        for ds in sorted(o["dataset"].unique()):
            od = o[o["dataset"] == ds]
            pd_ = pv[pv["dataset"] == ds]
            common_prompts = [p for p in od["prompt"].unique() if p in set(pd_["prompt"])]
            for prompt in sorted(common_prompts, key=lambda p: list(pd_["prompt"].unique()).index(p)):
                a = od[od["prompt"] == prompt].groupby("paper_model")["harmonic_mean"].mean()
                b = pd_[pd_["prompt"] == prompt].set_index("model")["harmonic"]
                rows.append({"dataset": ds, "prompt": prompt, "paper_rows": variant, **spearman(a, b)})
            a = od[od["prompt"].isin(common_prompts)].groupby("paper_model")["harmonic_mean"].mean()
            b = pd_.groupby("model")["harmonic"].mean()
            rows.append({"dataset": ds, "prompt": "mean", "paper_rows": variant, **spearman(a, b)})
    return pd.DataFrame(rows, columns=["dataset", "prompt", "paper_rows", "n", "rho", "p", "models"])


def comparison_markdown(cmp: pd.DataFrame) -> str:
    """``paper_comparison.md``: the correlations, "n/a" where fewer than 3 common models."""
    lines = [
        "**Spearman rank correlation between our Harmonic scores and the SynLLM paper's Table IV**",
        "",
        "| Dataset | Prompt | Paper rows | n | rho | p | Models |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for r in cmp.itertuples(index=False):
        rho = "n/a" if not math.isfinite(r.rho) else f"{r.rho:.2f}"
        p = "n/a" if not math.isfinite(r.p) else f"{r.p:.3g}"
        lines.append(f"| {r.dataset} | {r.prompt} | {r.paper_rows} | {r.n} | {rho} | {p} | {r.models.replace(';', ', ')} |")
    if cmp.empty:
        lines.append("| – | – | – | 0 | n/a | n/a | (no model of this run is in the paper's Table IV) |")
    lines += [
        "",
        "- n = models present in both tables with a finite Harmonic (failed cells and '–' paper "
        "cells are left out); rho/p are n/a when n < 3 or one side is constant.",
        "- prompt 'mean' correlates each model's Harmonic averaged over the prompts both tables have.",
        "- paper_rows 'certain' leaves out the paper rows whose dataset assignment is uncertain "
        "(rows 30-31 and 40-44, see resources/paper/README.md); 'as_printed' keeps them and averages "
        "models listed twice under one dataset.",
        "- Our scores are normalised within our run; the paper normalised within its own grid, so "
        "only the rank order is comparable, not the values.",
    ]
    return "\n".join(lines) + "\n"
