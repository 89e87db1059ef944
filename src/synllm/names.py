"""Shared names of the grid: prompt styles, cells, sweep variant names, records per cell.

A leaf module: it imports nothing from the package but :mod:`synllm.errors` (itself a leaf),
so every step -- and ``config`` and ``sweeps``, which both need these names -- can import it
without an import cycle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from synllm.errors import ConfigError

PROMPT_STYLES = ("SEEDEx", "FEATDESC", "STATGUIDE", "CLINRULE")
"""The paper's four prompt styles, in the paper's order (prompt1..prompt4)."""

EXTRA_PROMPT_STYLES = ("naive", "schema", "conditional", "group")
"""Generation strategies of Lin et al., usable as extra prompt styles."""

BASELINE_PROMPT = "none"
"""Prompt wildcard value for generators that take no prompt (baselines)."""


@dataclass(frozen=True)
class Cell:
    """One grid cell: dataset x model x prompt x repeat."""

    dataset: str
    model: str
    prompt: str
    rep: int

    @property
    def path(self) -> str:
        return f"{self.dataset}/{self.model}/{self.prompt}/r{self.rep}"


# --------------------------------------------------------------------------- sweep variants
SEP = "~"
AXES = {"features": "f", "sample_size": "n"}
"""Axis name (used in output file names) -> letter in variant names."""
_LETTER = {v: k for k, v in AXES.items()}
_BASE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class Variant:
    base: str
    axis: str  # "features" | "sample_size"
    value: int

    @property
    def name(self) -> str:
        return variant_name(self.base, self.axis, self.value)


def variant_name(base: str, axis: str, value: int) -> str:
    if axis not in AXES:
        raise ConfigError(f"sweep axis {axis!r} is not one of {list(AXES)}")
    return f"{base}{SEP}{AXES[axis]}{int(value)}"


def parse_variant(name: str, field: str = "dataset") -> Variant | None:
    """``diabetes~f5`` -> Variant; a plain dataset name -> None; a malformed one -> ConfigError."""
    if SEP not in name:
        return None
    base, _, tail = name.partition(SEP)
    m = re.fullmatch(r"([a-z])(\d+)", tail)
    if not _BASE_NAME.match(base) or not m or m.group(1) not in _LETTER:
        raise ConfigError(
            f"{field} {name!r}: not a sweep variant name "
            f"(expected <dataset>~f<features> or <dataset>~n<records>)"
        )
    value = int(m.group(2))
    if value < 1:
        raise ConfigError(f"{field} {name!r}: the sweep value must be at least 1")
    return Variant(base, _LETTER[m.group(1)], value)


def base_dataset(name: str) -> str:
    """The base dataset of a variant name; a plain dataset name is its own base."""
    v = parse_variant(name)
    return v.base if v else name


def n_records(config: dict, dataset: str) -> int:
    """Records per cell of ``dataset``; a sample-size sweep variant (``<dataset>~n<N>``) gets N,
    a feature variant the value of its base dataset."""
    variant = parse_variant(dataset)
    if variant is not None:
        if variant.axis == "sample_size":
            return variant.value
        dataset = variant.base
    n = config["n_records"]
    return int(n[dataset]) if isinstance(n, dict) else int(n)


def cell_seed(seed: int, rep: int | str) -> int:
    """The seed of repeat ``rep`` (1-based) of a run seeded with ``seed``: one seed per
    repeat, so the same config gives the same tables and repeats differ."""
    return int(seed) + 1000 * (int(rep) - 1)
