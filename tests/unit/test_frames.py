"""``split.to_card_dtypes``: the one cast of a sampled frame (baselines, peers) to card dtypes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from synllm.split import DTYPES, to_card_dtypes


def test_sampled_frame_takes_the_card_dtypes(real):
    card, table = real("cirrhosis")
    # what a sampler hands back: object columns, numbers as floats or strings, None for missing
    raw = table.head(50).astype(object).where(table.head(50).notna(), None)
    first_int = next(c for c, s in card.columns.items() if s.type == "int")
    raw[first_int] = [None if v is None else float(v) + 0.4 for v in raw[first_int]]
    typed = to_card_dtypes(raw, card)
    assert list(typed.columns) == list(card.columns)
    for name, spec in card.columns.items():
        assert str(typed[name].dtype) == DTYPES[spec.type], name
    # ints are rounded, missing values stay missing
    pd.testing.assert_series_equal(typed[first_int], table.head(50)[first_int])
    for name, spec in card.columns.items():
        assert (typed[name].isna() == table.head(50)[name].isna()).all(), name
        if spec.type == "categorical":
            assert all(v is np.nan or isinstance(v, str) for v in typed[name]), name


def test_unparseable_numbers_become_missing(real):
    card, table = real("diabetes")
    raw = table.head(3).astype(object)
    num = card.numeric_columns[0]
    raw[num] = ["x", "12.5", None]
    typed = to_card_dtypes(raw, card)
    assert typed[num].isna().tolist() == [True, False, True]
