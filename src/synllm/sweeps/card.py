"""``synllm sweep-card``: the card and split of one sweep variant.

``<dataset>~f<k>`` keeps the ``k`` features with the highest mutual information with the
target (``sklearn`` ``mutual_info_classif`` on the base train split, seeded) plus the target;
``<dataset>~n<N>`` keeps everything. Rules, relations and group columns that name a dropped
column are removed from the derived card.
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from synllm.errors import ConfigError, SynllmError
from synllm.names import Variant, parse_variant

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _encode(card, frame: pd.DataFrame, features: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Feature matrix for mutual information: categoricals -> codes in card order (missing -1),
    binaries -> 0/1 (missing -1), both discrete; numerics -> float, missing -> median."""
    cols, discrete = [], []
    for c in features:
        spec = card.columns[c]
        s = frame[c]
        if spec.type == "categorical":
            cols.append(pd.Categorical(s, categories=spec.categories).codes.astype(float))
            discrete.append(True)
        elif spec.type == "binary":
            cols.append(pd.to_numeric(s, errors="coerce").astype(float).fillna(-1).to_numpy())
            discrete.append(True)
        else:
            v = pd.to_numeric(s, errors="coerce").astype(float)
            med = v.median()
            cols.append(v.fillna(0.0 if math.isnan(med) else med).to_numpy())
            discrete.append(False)
    return np.column_stack(cols), np.asarray(discrete, dtype=bool)


def rank_features(card, train: pd.DataFrame, seed: int) -> list[tuple[str, float]]:
    """Features (all columns but the target) by mutual information with the target on ``train``,
    highest first (ties: card order). ``sklearn.feature_selection.mutual_info_classif`` with
    ``random_state=seed``, categoricals and binaries as discrete features."""
    from sklearn.feature_selection import mutual_info_classif

    features = [c for c in card.columns if c != card.target]
    rows = train[train[card.target].notna()]
    if rows.empty:
        raise SynllmError(f"dataset {card.name!r}: the train split has no rows with a target value")
    X, discrete = _encode(card, rows, features)
    y_spec = card.columns[card.target]
    if y_spec.type == "categorical":
        y = pd.Categorical(rows[card.target], categories=y_spec.categories).codes
    else:
        y = pd.to_numeric(rows[card.target]).astype(int).to_numpy()
    mi = mutual_info_classif(X, y, discrete_features=discrete, random_state=seed)
    order = sorted(range(len(features)), key=lambda i: (-mi[i], i))
    return [(features[i], float(mi[i])) for i in order]


def restrict_card(card, keep: list[str], name: str, note: str | None = None):
    """A copy of ``card`` named ``name`` with only the columns in ``keep`` (card order; the
    target is always kept). Rules whose ``if``/``then`` name a dropped column, relations on a
    dropped column, dropped group columns and dropped quasi-identifiers are removed."""
    from synllm.cards import DatasetCard

    unknown = [c for c in keep if c not in card.columns]
    if unknown:
        raise ConfigError(f"dataset card {card.name!r}: unknown column(s) {unknown}")
    kept = [c for c in card.columns if c in set(keep) | {card.target}]
    dropped = set(card.columns) - set(kept)
    raw = card.model_dump(by_alias=True, mode="json", exclude_none=True)
    raw["name"] = name
    raw["columns"] = {c: raw["columns"][c] for c in kept}
    raw["group_columns"] = [g for g in raw.get("group_columns", []) if g in kept]
    raw["rules"] = [
        r
        for r in raw.get("rules", [])
        if not (set(_IDENT.findall(r["if"] + " " + r["then"])) & dropped)
    ]
    raw["relations"] = [
        r for r in raw.get("relations", []) if r["feature"] in kept and r["by"] in kept
    ]
    priv = raw.pop("privacy", None)
    if priv and priv["sensitive"] in kept:
        qi = [c for c in priv["quasi_identifiers"] if c in kept]
        if qi:  # no quasi-identifier left: the disclosure metric fails with its reason
            raw["privacy"] = {"quasi_identifiers": qi, "sensitive": priv["sensitive"]}
    if note:
        prov = raw["provenance"]
        prov["notes"] = (prov.get("notes", "").strip() + " " + note).strip()
    return DatasetCard.model_validate(raw)


def variant_card(card, variant: Variant, train: pd.DataFrame | None, seed: int):
    """(derived card, feature ranking or None) for ``variant`` of the base ``card``."""
    if variant.base != card.name:
        raise ConfigError(f"variant {variant.name!r} is not a variant of the card {card.name!r}")
    if variant.axis == "sample_size":
        note = f"Sweep variant of {card.name!r}: {variant.value} records requested per cell."
        return restrict_card(card, list(card.columns), variant.name, note), None
    ranking = rank_features(card, train, seed)
    if variant.value >= len(ranking):
        raise ConfigError(
            f"dataset {variant.name!r}: {card.name!r} has only {len(ranking)} features; "
            f"a variant needs fewer (the full table is the base dataset)"
        )
    keep = [c for c, _ in ranking[: variant.value]]
    listed = ", ".join(f"{c} {v:.4f}" for c, v in ranking[: variant.value])
    note = (
        f"Sweep variant of {card.name!r}: top {variant.value} of {len(ranking)} features by mutual "
        f"information with {card.target!r} on the train split (seed {seed}): {listed}."
    )
    return restrict_card(card, keep, variant.name, note), ranking


def write_card(card, path: str | Path) -> None:
    raw = card.model_dump(by_alias=True, mode="json", exclude_none=True)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))


def cli(argv: list[str]) -> int:
    """``synllm sweep-card``: derived card + split of one variant dataset."""
    from synllm.cards import load_card
    from synllm.split import read_split

    p = argparse.ArgumentParser(
        prog="synllm sweep-card",
        description="write the card and split of one sweep variant dataset",
    )
    p.add_argument("--card", required=True, help="card of the base dataset")
    p.add_argument(
        "--variant", required=True, help="variant name, e.g. diabetes~f5 or diabetes~n40"
    )
    p.add_argument(
        "--seed", type=int, required=True, help="seed of the mutual information estimate"
    )
    p.add_argument("--train", required=True, help="base train split (parquet)")
    p.add_argument("--holdout", required=True, help="base holdout split (parquet)")
    p.add_argument("--reference", required=True, help="base reference split (parquet)")
    p.add_argument("--out-card", required=True)
    p.add_argument("--out-train", required=True)
    p.add_argument("--out-holdout", required=True)
    p.add_argument("--out-reference", required=True)
    a = p.parse_args(argv)
    variant = parse_variant(a.variant, field="--variant")
    if variant is None:
        raise ConfigError(
            f"--variant {a.variant!r}: not a sweep variant name (expected <dataset>~f<k> or ~n<N>)"
        )
    card = load_card(a.card)
    train = read_split(a.train, card) if variant.axis == "features" else None
    derived, ranking = variant_card(card, variant, train, a.seed)
    write_card(derived, a.out_card)
    cols = list(derived.columns)
    for src, dst in (
        (a.train, a.out_train),
        (a.holdout, a.out_holdout),
        (a.reference, a.out_reference),
    ):
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        pd.read_parquet(src, columns=cols).to_parquet(dst, index=False)
    if ranking:
        print(f"{card.name}: features by mutual information with {card.target!r} (seed {a.seed}):")
        for c, v in ranking:
            print(f"  {'*' if c in derived.columns else ' '} {c:<28} {v:.5f}")
    print(
        f"{derived.name}: {len(cols)} columns ({len(derived.rules)} rules, {len(derived.relations)} relations kept)"
    )
    return 0
