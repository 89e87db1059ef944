"""Sweeps: feature count and sample size as axes of the grid.

A config section ``sweeps: {features: [5, 10, all], sample_sizes: [20, 40]}`` expands every
dataset of the run into *variant* datasets, named ``<dataset>~f<k>`` (the ``k`` features with
the highest mutual information with the target on the train split, plus the target) and
``<dataset>~n<N>`` (``N`` records requested per cell). ``~`` never occurs in a card name
(``[A-Za-z0-9_-]+``), so a variant name is unambiguous, safe in paths and in Snakemake
wildcards. An axis value that equals the base dataset (``all``, ``k >=`` the number of
features, or ``N`` = the run's ``n_records``) is the base dataset itself, so those cells are
shared with the main grid.

A variant has its own derived card (``results/cards/<variant>.yaml``, written by
``synllm sweep-card``: columns restricted, ``rules`` / ``relations`` / ``group_columns`` that
name a dropped column removed) and its own split (the base split's rows, columns restricted),
so profile, prompt, generate, validate and evaluate run on it unchanged.

The package: this module holds the grid side (points, cells, the points JSON);
:mod:`synllm.sweeps.card` the ``sweep-card`` step (feature ranking, derived cards and splits);
:mod:`synllm.sweeps.plots` the ``sweep-plots`` step. ``synllm sweep-plots`` reads the
metrics JSONs of one axis and writes
``<tables>/sweep_<axis>.csv`` and ``<figures>/sweep_<axis>_<dataset>.png`` (Quality, Harmonic,
TSTR ROC-AUC and TSTR macro-F1 vs the axis, one line per model). Scores are those of
:mod:`synllm.aggregate.scores`, with one difference: metrics are min-max normalised over all
cells of one base dataset *and axis* (every axis value together), so Quality and Harmonic are
comparable along the axis. TSTR scores are the raw values (mean over the utility classifiers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from synllm.errors import ConfigError
from synllm.names import (  # noqa: F401 - re-exported: the sweep names live in the leaf module
    AXES,
    BASELINE_PROMPT,
    SEP,
    Cell,
    Variant,
    base_dataset,
    n_records,
    parse_variant,
    variant_name,
)

_AXIS_CONFIG = {"features": "features", "sample_size": "sample_sizes"}


@dataclass(frozen=True)
class SweepPoint:
    """One value of one axis for one base dataset; ``dataset`` is the variant (or base) name."""

    base: str
    axis: str
    value: int
    label: str
    dataset: str


def check_sweeps(config: dict, registry) -> None:
    """Checks the schema cannot make (called by :func:`synllm.config.check_config`)."""
    sw = config.get("sweeps") or {}
    if not (sw.get("features") or sw.get("sample_sizes")):
        return
    if (config.get("generation") or {}).get("backend_override") == "replay":
        raise ConfigError(
            "config field 'sweeps': not available with generation.backend_override: replay "
            "(replayed outputs do not depend on the features or the sample size)"
        )
    for i, slug in enumerate(sw.get("models") or []):
        try:
            registry.get(slug)
        except ConfigError as err:
            msg = str(err)
            raise ConfigError(
                f"config field 'sweeps.models[{i}]': {msg.split(': ', 1)[-1]}"
            ) from None


def sweep_points(config: dict, cards_dir) -> dict[str, list[SweepPoint]]:
    """``{axis: [points]}`` for the axes the config sweeps (empty dict: no sweep).

    Points are ordered by base dataset (config order), then value; values that map to the same
    dataset are merged (``10`` and ``all`` on a table with 8 features are one point).
    """
    from synllm.cards import find_card

    sw = config.get("sweeps") or {}
    out: dict[str, list[SweepPoint]] = {}
    for axis, key in _AXIS_CONFIG.items():
        values = sw.get(key) or []
        if not values:
            continue
        points = []
        for base in config["datasets"]:
            by_dataset: dict[str, SweepPoint] = {}
            if axis == "features":
                n_feat = len(find_card(base, cards_dir).columns) - 1
                for v in values:
                    if v == "all" or int(v) >= n_feat:
                        p = SweepPoint(base, axis, n_feat, "all", base)
                    else:
                        p = SweepPoint(
                            base, axis, int(v), str(int(v)), variant_name(base, axis, int(v))
                        )
                    by_dataset[p.dataset] = p if p.label == "all" else by_dataset.get(p.dataset, p)
            else:
                n0 = n_records(config, base)
                for v in values:
                    name = base if int(v) == n0 else variant_name(base, axis, int(v))
                    by_dataset[name] = SweepPoint(base, axis, int(v), str(int(v)), name)
            points += sorted(by_dataset.values(), key=lambda p: p.value)
        out[axis] = points
    return out


def sweep_models(config: dict) -> list[str]:
    return list((config.get("sweeps") or {}).get("models") or config["models"])


def sweep_prompts(config: dict) -> list[str]:
    return list((config.get("sweeps") or {}).get("prompts") or config["prompts"])


def sweep_cells(config: dict, registry, points: list[SweepPoint]):
    """Cells of one axis: every point x sweep model x prompt (``none`` for baselines) x repeat."""
    cells = []
    for p in points:
        for m in sweep_models(config):
            prompts = sweep_prompts(config) if registry.get(m).takes_prompt else [BASELINE_PROMPT]
            for pr in prompts:
                for r in range(1, int(config["repeats"]) + 1):
                    cells.append(Cell(p.dataset, m, pr, r))
    return cells


def variant_datasets(points: dict[str, list[SweepPoint]]) -> list[str]:
    """Names of the variant datasets (not the base ones) of all axes, sorted."""
    return sorted({p.dataset for ps in points.values() for p in ps if p.dataset != p.base})


def parse_points(text: str) -> tuple[str, list[SweepPoint], dict[str, list[str]]]:
    """``--points`` JSON: ``{"axis": ..., "points": [{base, value, label, dataset, card}]}``."""
    try:
        doc = json.loads(text)
        axis = doc["axis"]
        pts = [
            SweepPoint(p["base"], axis, int(p["value"]), str(p["label"]), p["dataset"])
            for p in doc["points"]
        ]
        cards = {p["dataset"]: p["card"] for p in doc["points"] if p.get("card")}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"--points: not a sweep points JSON object ({err})") from None
    if axis not in AXES:
        raise ConfigError(f"--points: field 'axis' is {axis!r}, expected one of {list(AXES)}")
    return axis, pts, cards


def points_json(axis: str, points: list[SweepPoint], card_paths: dict[str, str]) -> str:
    return json.dumps(
        {
            "axis": axis,
            "points": [
                {
                    "base": p.base,
                    "value": p.value,
                    "label": p.label,
                    "dataset": p.dataset,
                    "card": card_paths.get(p.dataset),
                }
                for p in points
            ],
        },
        sort_keys=True,
    )
