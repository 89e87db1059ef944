"""Metric declarations, the registry, result records and the typed synthetic-table reader.

Every metric the evaluator can emit is declared once here or by its family module through
:func:`declare`: name, family, ``score_group`` (``"quality"``, ``"privacy"`` or ``None`` =
reported only), ``direction`` (``"higher"`` or ``"lower"`` is better) and ``range``
(``[lo, hi]``, ``None`` for an unbounded end). The metrics JSON repeats these fields next to
each value, so aggregation never keeps its own list of metric names.

A :class:`Result` is one computed value, or a failure with its reason (``status="failed"``,
``value=None``): a metric that cannot be computed is recorded, never dropped or swallowed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from synllm.cards import DatasetCard
from synllm.errors import DataError, SynllmError
from synllm.split import coerce_frame

Family = Literal["fidelity", "correlation", "clinical", "privacy", "utility"]
ScoreGroup = Literal["quality", "privacy"] | None
Direction = Literal["higher", "lower"]


@dataclass(frozen=True)
class Metric:
    """Declaration of one metric (no value)."""

    name: str
    family: Family
    score_group: ScoreGroup
    direction: Direction
    range: tuple[float | None, float | None]
    description: str


REGISTRY: dict[str, Metric] = {}
"""All declared metrics by name, in declaration order."""


def declare(
    name: str,
    family: Family,
    score_group: ScoreGroup,
    direction: Direction,
    range: tuple[float | None, float | None],
    description: str,
) -> Metric:
    """Declare a metric (idempotent for an identical declaration) and return it."""
    m = Metric(name, family, score_group, direction, tuple(range), description)
    old = REGISTRY.get(name)
    if old is not None and old != m:
        raise ValueError(f"metric {name!r} declared twice with different fields")
    REGISTRY[name] = m
    return m


def declarations(score_group: str | None = "any") -> list[Metric]:
    """Declared metrics, optionally only those of one ``score_group``."""
    return [m for m in REGISTRY.values() if score_group == "any" or m.score_group == score_group]


@dataclass
class Result:
    """One metric value (or failure) with its declaration."""

    metric: Metric
    value: float | None
    status: Literal["ok", "failed"] = "ok"
    reason: str | None = None
    note: str | None = None

    def to_dict(self) -> dict:
        m = self.metric
        return {
            "name": m.name,
            "family": m.family,
            "score_group": m.score_group,
            "direction": m.direction,
            "range": list(m.range),
            "value": self.value,
            "status": self.status,
            "reason": self.reason,
            "note": self.note,
        }


def ok(name: str, value: float, note: str | None = None) -> Result:
    """A computed value; a non-finite value becomes a failure naming it."""
    m = REGISTRY[name]
    v = float(value)
    if not math.isfinite(v):
        return Result(m, None, "failed", f"value is {v}", note)
    return Result(m, v, "ok", None, note)


def failed(name: str, reason: str) -> Result:
    """A metric that could not be computed, with a one-line reason."""
    return Result(REGISTRY[name], None, "failed", " ".join(str(reason).split()))


def guarded(name: str, fn: Callable[[], float | tuple[float, str | None]]) -> Result:
    """Run ``fn`` and record its value, or its exception as the failure reason.

    ``fn`` returns a value or ``(value, note)``. Exceptions are not swallowed: the result
    carries ``"<ExceptionType>: <message>"`` as its reason and the metrics JSON shows it.
    """
    try:
        out = fn()
    except Exception as err:  # noqa: BLE001 - recorded as the metric's failure reason
        return failed(name, f"{type(err).__name__}: {err}")
    if isinstance(out, tuple):
        return ok(name, out[0], out[1])
    return ok(name, out)


def mean_of(name: str, values: dict[str, float | None], what: str = "columns") -> Result:
    """Mean over the finite per-column values; failed when there are none.

    Columns whose value could not be computed are named in the note.
    """
    good = {k: v for k, v in values.items() if v is not None and np.isfinite(v)}
    bad = sorted(set(values) - set(good))
    if not values:
        return failed(name, f"no {what} to score")
    if not good:
        return failed(name, f"undefined for every one of {len(values)} {what}")
    note = f"undefined for {bad}" if bad else None
    return ok(name, float(np.mean(list(good.values()))), note)


# -- typed synthetic table --------------------------------------------------------------
NA_VALUES = ["", "nan", "NaN", "NA", "N/A", "null", "None"]


def once(memo: dict | None, key, fn: Callable):
    """``fn()``, computed on the first call for ``key`` and replayed (value or the same
    exception) on later ones; ``memo`` None computes every time.

    An evaluate job scores several tables, and the bootstrap many resamples, against one
    fixed real table: that table's side of every metric goes through this, one dict per
    real table (:func:`synllm.evaluate.evaluate`'s ``memo``)."""
    if memo is None:
        return fn()
    if key not in memo:
        try:
            memo[key] = (fn(), None)
        except Exception as err:  # noqa: BLE001 - replayed to the caller below
            memo[key] = (None, err)
    value, err = memo[key]
    if err is not None:
        raise err
    return value


def read_synthetic(path: str | Path, card: DatasetCard) -> pd.DataFrame:
    """Read a validated synthetic CSV with the card's dtypes.

    int/binary -> ``Int64``, float -> ``float64``, categorical -> ``object`` strings
    (missing = NaN). Columns are put in card order; extra columns are dropped. A file with
    no bytes or only a header gives an empty frame with those dtypes. Raises
    :class:`~synllm.errors.DataError` naming the file when a card column is missing or a
    value does not fit its type.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"synthetic table not found: {path}")
    tokens = list(dict.fromkeys(NA_VALUES + list(card.missing_tokens)))
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=tokens)
    except pd.errors.EmptyDataError:
        raw = pd.DataFrame({c: pd.Series(dtype=str) for c in card.columns})
    missing = [c for c in card.columns if c not in raw.columns]
    if missing:
        raise DataError(f"synthetic table {path}: lacks column(s) {missing} of card {card.name!r}")
    try:
        return coerce_frame(raw[list(card.columns)], card).reset_index(drop=True)
    except SynllmError as err:
        raise DataError(f"synthetic table {path}: {err}") from None
