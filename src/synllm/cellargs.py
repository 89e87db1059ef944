"""Arguments given once per cell: the validate and evaluate CLIs run the prompt cells of one
(dataset, model, repeat) in one process (rules ``validate_model``, ``evaluate_model``), each
cell's files given in the same order (``--out A B ..``)."""

from __future__ import annotations

import argparse

from synllm.errors import ConfigError


def per_cell_args(
    a: argparse.Namespace, names: tuple[str, ...], step: str
) -> list[argparse.Namespace]:
    """One namespace per cell: ``names[0]`` counts the cells, every other name in ``names``
    must be absent or give one value per cell (ConfigError naming the counts otherwise)."""
    first = names[0]
    n = len(getattr(a, first))
    counts = {k: len(getattr(a, k)) for k in names if getattr(a, k) is not None}
    bad = {k: v for k, v in counts.items() if v != n}
    if bad:
        given = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in bad.items())
        flag = first.replace("_", "-")
        raise ConfigError(f"{step}: {n} --{flag} files but {given}: give one value per cell")
    return [
        argparse.Namespace(
            **{
                **vars(a),
                **{k: None if getattr(a, k) is None else getattr(a, k)[i] for k in names},
            }
        )
        for i in range(n)
    ]
