"""Schema + statistics of a train split, as JSON (the paper's profiling step).

- numeric columns (int/float): mean, std (ddof=1, as pandas), min, max, quantiles
  (default 5/25/50/75/95 %), missing count;
- categorical and binary columns: probability mass over observed values, with categories of
  frequency (count) below ``min_category_count`` merged into ``"Other"``;
- Pearson correlations between numeric and binary columns whose |rho| exceeds
  ``corr_threshold``, strongest first.

Everything is computed on the train split only; the holdout is never shown to a model.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd

from synllm.cards import DatasetCard, load_card
from synllm.split import read_split

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _num(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def category_pmf(s: pd.Series, min_count: int = 5) -> dict[str, float]:
    """Share of each observed value (missing excluded); rare values merged into "Other".

    Keys are strings (binary 0/1 become "0"/"1"), sorted by decreasing share.
    """
    counts = s.dropna().astype(str).value_counts()
    rare = counts[counts < min_count]
    kept = counts[counts >= min_count].copy()
    if len(rare):
        kept["Other"] = kept.get("Other", 0) + int(rare.sum())
    total = kept.sum()
    if total == 0:
        return {}
    kept = kept.sort_values(ascending=False, kind="stable")
    return {str(k): float(v) / float(total) for k, v in kept.items()}


def strong_correlations(
    df: pd.DataFrame, columns: list[str], threshold: float = 0.15
) -> list[dict]:
    """Pearson correlations with |rho| > threshold among ``columns``, strongest first."""
    if len(columns) < 2:
        return []
    corr = df[columns].astype("float64").corr(method="pearson")
    out = []
    for i, a in enumerate(columns):
        for b in columns[i + 1 :]:
            rho = corr.loc[a, b]
            if pd.notna(rho) and abs(rho) > threshold:
                out.append({"a": a, "b": b, "rho": float(rho)})
    return sorted(out, key=lambda d: -abs(d["rho"]))


def profile_table(
    train: pd.DataFrame,
    card: DatasetCard,
    min_category_count: int = 5,
    corr_threshold: float = 0.15,
    quantiles: tuple[float, ...] = QUANTILES,
) -> dict:
    cols: dict[str, dict] = {}
    for name, spec in card.columns.items():
        s = train[name]
        entry: dict = {
            "type": spec.type,
            "unit": spec.unit,
            "definition": spec.definition,
            "range": list(spec.range) if spec.range else None,
            "missing": int(s.isna().sum()),
        }
        if spec.is_numeric:
            x = s.astype("float64")
            entry.update(
                mean=_num(x.mean()),
                std=_num(x.std()),
                min=_num(x.min()),
                max=_num(x.max()),
                quantiles={f"{q:g}": _num(x.quantile(q)) for q in quantiles},
            )
        else:
            entry["pmf"] = category_pmf(s, min_category_count)
            if spec.type == "categorical":
                entry["categories"] = list(spec.categories or [])
            else:
                entry["labels"] = {str(k): v for k, v in (spec.labels or {}).items()}
        cols[name] = entry
    corr_cols = [c for c, spec in card.columns.items() if spec.type in ("int", "float", "binary")]
    return {
        "dataset": card.name,
        "n_rows": int(len(train)),
        "target": card.target,
        "min_category_count": min_category_count,
        "corr_threshold": corr_threshold,
        "columns": cols,
        "correlations": strong_correlations(train, corr_cols, corr_threshold),
    }


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="synllm profile", description=__doc__.splitlines()[0])
    p.add_argument("--card", required=True)
    p.add_argument("--train", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--min-category-count", type=int, default=5)
    p.add_argument("--corr-threshold", type=float, default=0.15)
    a = p.parse_args(argv)
    card = load_card(a.card)
    prof = profile_table(read_split(a.train, card), card, a.min_category_count, a.corr_threshold)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(prof, indent=2) + "\n")
    print(
        f"{card.name}: profiled {prof['n_rows']} rows, {len(prof['correlations'])} strong correlations"
    )
    return 0
