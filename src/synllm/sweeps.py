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

``synllm sweep-plots`` reads the metrics JSONs of one axis and writes
``<tables>/sweep_<axis>.csv`` and ``<figures>/sweep_<axis>_<dataset>.png`` (Quality, Harmonic,
TSTR ROC-AUC and TSTR macro-F1 vs the axis, one line per model). Scores are those of
:mod:`synllm.aggregate.scores`, with one difference: metrics are min-max normalised over all
cells of one base dataset *and axis* (every axis value together), so Quality and Harmonic are
comparable along the axis. TSTR scores are the raw values (mean over the utility classifiers).
"""

from __future__ import annotations

import argparse
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from synllm.errors import ConfigError, SynllmError

SEP = "~"
AXES = {"features": "f", "sample_size": "n"}
"""Axis name (used in output file names) -> letter in variant names."""
_LETTER = {v: k for k, v in AXES.items()}
_AXIS_CONFIG = {"features": "features", "sample_size": "sample_sizes"}
_AXIS_LABEL = {"features": "features kept (by mutual information with the target)",
               "sample_size": "records requested per cell"}
_BASE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# --------------------------------------------------------------------------- names
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
            f"{field} {name!r}: not a sweep variant name (expected <dataset>~f<features> or <dataset>~n<records>)"
        )
    value = int(m.group(2))
    if value < 1:
        raise ConfigError(f"{field} {name!r}: the sweep value must be at least 1")
    return Variant(base, _LETTER[m.group(1)], value)


def base_dataset(name: str) -> str:
    v = parse_variant(name)
    return v.base if v else name


# --------------------------------------------------------------------------- config
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
        raise ConfigError("config field 'sweeps': not available with generation.backend_override: replay "
                          "(replayed outputs do not depend on the features or the sample size)")
    for i, slug in enumerate(sw.get("models") or []):
        try:
            registry.get(slug)
        except ConfigError as err:
            msg = str(err)
            raise ConfigError(f"config field 'sweeps.models[{i}]': {msg.split(': ', 1)[-1]}") from None


def sweep_points(config: dict, cards_dir) -> dict[str, list[SweepPoint]]:
    """``{axis: [points]}`` for the axes the config sweeps (empty dict: no sweep).

    Points are ordered by base dataset (config order), then value; values that map to the same
    dataset are merged (``10`` and ``all`` on a table with 8 features are one point).
    """
    from synllm.cards import find_card
    from synllm.config import n_records

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
                        p = SweepPoint(base, axis, int(v), str(int(v)), variant_name(base, axis, int(v)))
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
    from synllm import BASELINE_PROMPT
    from synllm.config import Cell

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


# --------------------------------------------------------------------------- features
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
    dropped column and dropped group columns are removed."""
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
    raw["rules"] = [r for r in raw.get("rules", [])
                    if not (set(_IDENT.findall(r["if"] + " " + r["then"])) & dropped)]
    raw["relations"] = [r for r in raw.get("relations", []) if r["feature"] in kept and r["by"] in kept]
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
    note = (f"Sweep variant of {card.name!r}: top {variant.value} of {len(ranking)} features by mutual "
            f"information with {card.target!r} on the train split (seed {seed}): {listed}.")
    return restrict_card(card, keep, variant.name, note), ranking


def write_card(card, path: str | Path) -> None:
    raw = card.model_dump(by_alias=True, mode="json", exclude_none=True)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))


def cli_card(argv: list[str]) -> int:
    """``synllm sweep-card``: derived card + split of one variant dataset."""
    from synllm.cards import load_card
    from synllm.data import read_split

    p = argparse.ArgumentParser(prog="synllm sweep-card",
                                description="write the card and split of one sweep variant dataset")
    p.add_argument("--card", required=True, help="card of the base dataset")
    p.add_argument("--variant", required=True, help="variant name, e.g. diabetes~f5 or diabetes~n40")
    p.add_argument("--seed", type=int, required=True, help="seed of the mutual information estimate")
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
        raise ConfigError(f"--variant {a.variant!r}: not a sweep variant name (expected <dataset>~f<k> or ~n<N>)")
    card = load_card(a.card)
    train = read_split(a.train, card) if variant.axis == "features" else None
    derived, ranking = variant_card(card, variant, train, a.seed)
    write_card(derived, a.out_card)
    cols = list(derived.columns)
    for src, dst in ((a.train, a.out_train), (a.holdout, a.out_holdout), (a.reference, a.out_reference)):
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        pd.read_parquet(src, columns=cols).to_parquet(dst, index=False)
    if ranking:
        print(f"{card.name}: features by mutual information with {card.target!r} (seed {a.seed}):")
        for c, v in ranking:
            print(f"  {'*' if c in derived.columns else ' '} {c:<28} {v:.5f}")
    print(f"{derived.name}: {len(cols)} columns ({len(derived.rules)} rules, {len(derived.relations)} relations kept)")
    return 0


# --------------------------------------------------------------------------- tables and plots
SWEEP_SCORES = ["quality", "privacy", "harmonic", "clinical", "tstr_auc", "tstr_f1", "tstr_accuracy"]
CSV_COLUMNS = ["dataset", "axis", "value", "label", "variant", "model", "kind", "n_cells", "n_ok",
               "n_synthetic_mean"] + SWEEP_SCORES + ["features"]


def sweep_table(axis: str, points: list[SweepPoint], metrics_paths: list[Path],
                cards: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """One row per base dataset x axis value x model: scores averaged over prompts and repeats
    (failed cells count in ``n_cells`` only). See the module doc for the normalisation."""
    from synllm.aggregate import scores
    from synllm.aggregate.load import KEY, load_metrics

    by_ds = {p.dataset: p for p in points}
    cells, metrics, raw = load_metrics(metrics_paths)
    stray = sorted(set(cells["dataset"]) - set(by_ds))
    if stray:
        raise SynllmError(f"sweep-plots: metrics of dataset(s) {stray} are not points of the {axis} axis")
    # one normalisation pool per base dataset: every axis value together
    norm = scores.normalise(metrics.assign(dataset=metrics["dataset"].map(lambda d: by_ds[d].base)))
    norm["dataset"] = metrics["dataset"].to_numpy()
    util = scores.utility_per_cell(scores.utility_long(metrics, raw))
    cell = scores.cell_scores(cells, norm, None)
    cell = cell.merge(util[KEY + [c for c in ("tstr_auc", "tstr_f1", "tstr_accuracy") if c in util]], on=KEY, how="left")
    cell = cell.merge(cells[KEY + ["n_synthetic"]], on=KEY, how="left")
    for c in SWEEP_SCORES:
        if c not in cell:
            cell[c] = np.nan
    kinds = scores.model_kinds(cells) if len(cells) else {}
    rows = []
    for p in points:
        sub = cell[cell["dataset"] == p.dataset]
        for model, msub in sub.groupby("model", sort=False):
            ok = msub[msub["status"] == "ok"]
            row = {"dataset": p.base, "axis": axis, "value": p.value, "label": p.label, "variant": p.dataset,
                   "model": model, "kind": kinds.get(model, "LLM"), "n_cells": len(msub), "n_ok": len(ok),
                   "n_synthetic_mean": float(msub["n_synthetic"].mean()),
                   "features": " ".join((cards or {}).get(p.dataset, []))}
            for c in SWEEP_SCORES:
                v = ok[c].dropna()
                row[c] = float(v.mean()) if len(v) else math.nan
            rows.append(row)
    return pd.DataFrame(rows, columns=CSV_COLUMNS)


def _message(path: Path, title: str, text: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


PANELS = [("quality", "Quality (normalised, 1 = best)"), ("harmonic", "Harmonic (Quality, Privacy)"),
          ("tstr_auc", "TSTR ROC-AUC"), ("tstr_f1", "TSTR macro-F1")]


def sweep_figure(table: pd.DataFrame, axis: str, dataset: str, points: list[SweepPoint], path: str | Path) -> Path:
    """2 x 2 panels of :data:`PANELS` vs the axis for one base dataset, one line per model
    (baselines dashed); ticks at the axis values ("all" marks the full table)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    title = f"{dataset}: sweep over {axis.replace('_', ' ')}"
    sub = table[table["dataset"] == dataset]
    if sub.empty or sub[[c for c, _ in PANELS]].isna().all().all():
        return _message(path, title, "no cell of this sweep has a score" if len(sub) else "no cells for this dataset")
    pts = sorted((p for p in points if p.base == dataset), key=lambda p: p.value)
    ticks = [p.value for p in pts]
    labels = [f"{p.value}\n(all)" if p.label == "all" else p.label for p in pts]
    log = axis == "sample_size" and min(ticks) > 0 and max(ticks) / min(ticks) >= 10
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    models = list(dict.fromkeys(sub.sort_values(["kind", "model"], ascending=[False, True])["model"]))
    for ax, (col, ylabel) in zip(axes.flat, PANELS):
        for i, m in enumerate(models):
            ms = sub[sub["model"] == m].sort_values("value")
            kind = ms["kind"].iloc[0]
            ax.plot(ms["value"], ms[col], marker="o", linestyle="--" if kind == "baseline" else "-",
                    color=f"C{i % 10}", label=f"{m} (baseline)" if kind == "baseline" else m)
        ax.set_ylabel(ylabel)
        if log:
            ax.set_xscale("log")
        ax.set_xticks(ticks, labels)
        ax.minorticks_off()
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel(_AXIS_LABEL[axis])
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(4, len(names)), frameon=False)
    fig.suptitle(title + " (mean over prompts and repeats; gaps = no valid cell)")
    fig.tight_layout(rect=(0, 0.07, 1, 0.96))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def parse_points(text: str) -> tuple[str, list[SweepPoint], dict[str, list[str]]]:
    """``--points`` JSON: ``{"axis": ..., "points": [{base, value, label, dataset, card}]}``."""
    try:
        doc = json.loads(text)
        axis = doc["axis"]
        pts = [SweepPoint(p["base"], axis, int(p["value"]), str(p["label"]), p["dataset"]) for p in doc["points"]]
        cards = {p["dataset"]: p["card"] for p in doc["points"] if p.get("card")}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"--points: not a sweep points JSON object ({err})") from None
    if axis not in AXES:
        raise ConfigError(f"--points: field 'axis' is {axis!r}, expected one of {list(AXES)}")
    return axis, pts, cards


def points_json(axis: str, points: list[SweepPoint], card_paths: dict[str, str]) -> str:
    return json.dumps({"axis": axis, "points": [
        {"base": p.base, "value": p.value, "label": p.label, "dataset": p.dataset, "card": card_paths.get(p.dataset)}
        for p in points]}, sort_keys=True)


def cli_plots(argv: list[str]) -> int:
    """``synllm sweep-plots``: sweep table (CSV) and one figure per base dataset."""
    from synllm.aggregate.load import gather_paths
    from synllm.cards import load_card

    p = argparse.ArgumentParser(prog="synllm sweep-plots",
                                description="quality and utility vs a sweep axis: CSV + one PNG per dataset")
    p.add_argument("--points", required=True, help="JSON: axis and its points (written by the workflow)")
    p.add_argument("--metrics-list", action="append", default=[], help="file listing metrics JSON paths")
    p.add_argument("--metrics", nargs="*", default=[], help="metrics JSON paths given directly")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--figures-dir", required=True, help="writes sweep_<axis>_<dataset>.png here")
    a = p.parse_args(argv)
    axis, points, card_paths = parse_points(a.points)
    paths = gather_paths(a.metrics_list, a.metrics)
    if not paths:
        raise SynllmError("sweep-plots: no metrics files given (--metrics-list / --metrics)")
    cards = {ds: list(load_card(path).columns) for ds, path in card_paths.items()}
    table = sweep_table(axis, points, paths, cards)
    Path(a.out_csv).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(a.out_csv, index=False)
    for ds in dict.fromkeys(p.base for p in points):
        sweep_figure(table, axis, ds, points, Path(a.figures_dir) / f"sweep_{axis}_{ds}.png")
    print(f"sweep-plots: {axis}: {len(paths)} cells, {len(table)} rows -> {a.out_csv}, {a.figures_dir}")
    return 0
