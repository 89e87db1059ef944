"""Generation strategies of Lin et al. as extra prompt styles: the per-condition sub-prompts.

Styles ``naive`` and ``schema`` are single prompts (no conditions). ``conditional`` and
``group`` split a cell into sub-prompts, each carrying a condition the generate step appends
to the user prompt and runs for ``share x n_records`` records
(:func:`synllm.generate.base.allocate` rounds the shares):

- ``conditional``: the anchor (the card's target) is sampled first, then the record is
  generated given it: one condition per target class present in train, ``fixed`` =
  ``{target: class}``, ``share`` = the class proportion in train (so the synthetic table
  keeps the real prevalence).
- ``group``: a demographic group is sampled first and the whole record generated given it:
  one condition per combination of the card's ``group_columns`` values (groups with fewer
  than 5 train rows or under 1 % of train are left out), uniform shares, as in Lin et al.

A condition is ``{"instruction": str, "fixed": {column: value}, "share": float}`` with JSON
values (int for binary/int columns, str for categoricals); shares sum to 1.
"""

from __future__ import annotations

import pandas as pd

from synllm.cards import DatasetCard
from synllm.errors import ConfigError, DataError

STRATEGY_STYLES = ("naive", "schema", "conditional", "group")


def _json_value(card: DatasetCard, column: str, value):
    """A train value as it appears in a JSON record (int for int/binary columns)."""
    return str(value) if card.columns[column].type == "categorical" else int(value)


def _describe(card: DatasetCard, column: str, value) -> str:
    """``diabetes = 1 (Yes)`` / ``Status = "D"``: the value as records write it, plus its label."""
    spec = card.columns[column]
    if spec.type == "categorical":
        return f'{column} = "{value}"'
    label = (spec.labels or {}).get(int(value))
    return f"{column} = {value}" + (f" ({label})" if label else "")


def conditional_conditions(card: DatasetCard, train: pd.DataFrame) -> list[dict]:
    """One condition per target class in train (sorted), share = its proportion."""
    target = card.target
    counts = train[target].dropna().value_counts()
    if counts.empty:
        raise DataError(f"dataset {card.name!r}: target {target!r} has no values in train")
    counts = counts.sort_index()
    total = int(counts.sum())
    out = []
    for value, count in counts.items():
        v = _json_value(card, target, value)
        out.append(
            {
                "instruction": f"All records in this batch have {_describe(card, target, v)}.",
                "fixed": {target: v},
                "share": count / total,
            }
        )
    return out


def group_conditions(
    card: DatasetCard, train: pd.DataFrame, min_count: int = 5, min_share: float = 0.01
) -> list[dict]:
    """Uniform conditions over the groups of ``card.group_columns`` present in train.

    Groups are the combinations of the group columns' values (missing excluded) with at least
    ``min_count`` train rows and at least ``min_share`` of them, in sorted order; each gets
    share 1/G. The thresholds keep near-empty groups (diabetes gender "Other": 18 of 100,000
    rows) from taking a third of the synthetic table.
    """
    cols = list(card.group_columns)
    if not cols:
        raise ConfigError(
            f"dataset card {card.name!r}: field 'group_columns' is empty; style 'group' needs it"
        )
    sizes = train[cols].dropna().value_counts()
    sizes = sizes[(sizes >= min_count) & (sizes >= min_share * len(train))]
    if sizes.empty:
        raise DataError(
            f"dataset {card.name!r}: no group of {cols} has at least {min_count} train rows "
            f"and {min_share:.0%} of them"
        )
    keys = sorted(sizes.index, key=lambda k: tuple(str(x) for x in k))
    share = 1.0 / len(keys)
    out = []
    for key in keys:
        fixed = {c: _json_value(card, c, v) for c, v in zip(cols, key)}
        desc = " and ".join(_describe(card, c, v) for c, v in fixed.items())
        out.append(
            {
                "instruction": f"All records in this batch are patients with {desc}.",
                "fixed": fixed,
                "share": share,
            }
        )
    return out


def strategy_conditions(
    card: DatasetCard,
    train: pd.DataFrame,
    style: str,
    min_group_count: int = 5,
    min_group_share: float = 0.01,
) -> list[dict]:
    """Conditions for a Lin et al. style (``[]`` for ``naive`` and ``schema``)."""
    if style in ("naive", "schema"):
        return []
    if style == "conditional":
        return conditional_conditions(card, train)
    if style == "group":
        return group_conditions(card, train, min_group_count, min_group_share)
    raise ConfigError(
        f"prompts: style {style!r} is not a generation strategy (known: {', '.join(STRATEGY_STYLES)})"
    )


def condition_mask(df: pd.DataFrame, condition: dict) -> pd.Series:
    """Rows of ``df`` satisfying ``condition['fixed']`` (boolean Series aligned to df)."""
    mask = pd.Series(True, index=df.index)
    for col, value in condition["fixed"].items():
        s = df[col]
        mask &= (s.astype(str) == str(value)) & s.notna()
    return mask
