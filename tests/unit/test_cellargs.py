"""per_cell_args: one namespace per cell, one-line errors on mismatched counts."""

import argparse

import pytest

from synllm.cellargs import per_cell_args
from synllm.errors import ConfigError


def _ns(**kw):
    return argparse.Namespace(card="c.yaml", **kw)


def test_splits_per_cell_and_keeps_shared_args():
    cells = per_cell_args(
        _ns(raw=["a", "b"], prompt=None, out=["x", "y"]), ("raw", "prompt", "out"), "validate"
    )
    assert [(c.raw, c.prompt, c.out, c.card) for c in cells] == [
        ("a", None, "x", "c.yaml"),
        ("b", None, "y", "c.yaml"),
    ]


def test_count_mismatch_names_the_flags():
    with pytest.raises(ConfigError) as e:
        per_cell_args(_ns(out=["x", "y"], out_fairness=["f"]), ("out", "out_fairness"), "evaluate")
    msg = str(e.value)
    assert "\n" not in msg
    assert msg == "evaluate: 2 --out files but --out-fairness 1: give one value per cell"
