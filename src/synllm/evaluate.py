"""``synllm evaluate``: score one validated synthetic table against the real data.

Usage::

    synllm evaluate --card C --synthetic CSV --train T --holdout H --validation REP \\
        [--prompt-json J] --seed S --settings SETTINGS_JSON --out M [--out-fairness F] [--model X --prompt Y --rep N]

``--settings`` is JSON text (``'{"distance_sample": 5000}'``) or the path of a JSON file;
keys (all optional, defaults in :data:`DEFAULT_SETTINGS`):

- ``distance_sample`` (5000): train rows sampled (seeded) for the train->train and
  holdout->train nearest-neighbour baselines; synthetic rows are always compared with the
  full train split.
- ``mia_sample`` (2000): members + non-members of the membership-inference attack (half each);
  half of it is also the number of non-members of the seed-row attack.
- ``sdmetrics_sample`` (1000): seeded sample size of train and holdout (and of the synthetic
  table when larger) for SDMetrics ``DCROverfittingProtection``, of train rows for
  ``DisclosureProtection`` (their cost grows with the product of the table sizes), and of
  the members (train rows, when the prompt showed none) and holdout control rows of the
  inference attack.
- ``disclosure_bins`` (null): null = ``DisclosureProtection`` matches numeric
  quasi-identifiers on exact values; an integer = SDMetrics' equal-width bins
  (:mod:`synllm.metrics.leaks`).
- ``utility_models`` (["decision_tree", "random_forest", "xgboost"]).
- ``utility_train_max`` (null): cap on real training rows for the utility models.
- ``xgb_n_estimators`` (500): XGBoost's maximum rounds (early stopping after 100).
- ``bins`` (20) / ``mi_bins`` (10): real-quantile bins for JS/KL and for mutual information.
- ``kl_epsilon`` (1e-4): additive smoothing of the KL pmfs.
- ``top_pairs`` (5): strongest real Pearson pairs reported with their synthetic rho.
- ``n_jobs`` (1): threads for the random forest and XGBoost (match the rule's ``threads``;
  XGBoost threads busy-wait when the machine is oversubscribed).
- ``bootstrap`` (20): bootstrap replicates over the synthetic records, written to the
  ``bootstrap`` block (0 = none); ``bootstrap_reference`` (1000): train / holdout rows the
  replicates of fidelity, clinical and TSTR metrics are scored against
  (:mod:`synllm.metrics.bootstrap`).

``--out-fairness F`` also scores per-demographic-group fidelity and utility
(:mod:`synllm.metrics.fairness`): the per-group table goes to the CSV ``F`` (one row per
grouping and group), four summary metrics of family ``fairness`` (score group null) are
appended to the metrics list and a ``fairness`` detail block is added. A failed cell still
writes ``F`` (NaN values with a reason per row, or only the header).

``model``, ``prompt`` and ``rep`` come from the output path
``metrics/{dataset}/{model}/{prompt}/r{rep}.json`` unless given. Without ``--prompt-json``,
a cell whose prompt is ``none`` (baselines, trained generators) showed no real rows (prompt
copies 0, no seed-row attack); any other cell's prompt copies, seed-row attack and inference
attack are "not measured": failed with that reason (and the validation report's
``prompt_copies``), shown as "–" in the tables, never 0. The top-level ``status`` is
``failed`` (with ``reason``) when the synthetic table has no rows (every metric is then
failed). A synthetic target with a single class is a poor table, not a failed cell: every
metric is computed, train-on-synthetic utility is that of the constant predictor (chance
level, :mod:`synllm.metrics.utility`), metrics undefined on one class (TRTS AUC) fail, and
``warnings`` says so.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import pickle
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from synllm.cards import DatasetCard, load_card
from synllm.cellargs import per_cell_args
from synllm.config import validate_block
from synllm.errors import ConfigError, DataError
from synllm.metrics import bootstrap, clinical, fairness, fidelity, leaks, privacy, utility
from synllm.metrics.base import REGISTRY, failed, read_synthetic
from synllm.names import BASELINE_PROMPT
from synllm.protocol import PROTOCOLS
from synllm.split import read_split
from synllm.validate import read_prompt

DEFAULT_SETTINGS: dict = {
    "distance_sample": 5000,
    "mia_sample": 2000,
    "sdmetrics_sample": 1000,
    "disclosure_bins": None,
    "utility_models": list(utility.MODELS),
    "utility_train_max": None,
    "xgb_n_estimators": 500,
    "bins": 20,
    "mi_bins": 10,
    "kl_epsilon": 1e-4,
    "top_pairs": 5,
    "n_jobs": 1,
    "bootstrap": 20,
    "bootstrap_reference": 1000,
    "protocol": "project",
    "privacy_seeds": 20,
}


def parse_settings(text: str | None) -> dict:
    """Merge JSON text or a JSON file's content over :data:`DEFAULT_SETTINGS`."""
    out = dict(DEFAULT_SETTINGS)
    if not text:
        return out
    src = "--settings"
    if not text.lstrip().startswith("{"):
        path = Path(text)
        if not path.is_file():
            raise ConfigError(f"--settings: {text!r} is neither JSON text nor a file")
        src, text = str(path), path.read_text()
    try:
        given = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{src}: not valid JSON ({err})") from None
    if not isinstance(given, dict):
        raise ConfigError(f"{src}: must be a JSON object")
    unknown = sorted(set(given) - set(DEFAULT_SETTINGS))
    if unknown:
        raise ConfigError(f"{src}: unknown key(s) {unknown} (known: {sorted(DEFAULT_SETTINGS)})")
    out.update(given)
    # the config schema's `evaluation` block is the one statement of every limit, so the
    # workflow and this CLI cannot disagree (tests/test_evaluate.py checks keys and defaults)
    validate_block(out, "evaluation", src)
    bad = [m for m in out["utility_models"] if m not in utility.MODELS]
    if bad:
        raise ConfigError(
            f"{src}: field 'utility_models' has unknown model(s) {bad} (known: {list(utility.MODELS)})"
        )
    if out["protocol"] not in PROTOCOLS:
        raise ConfigError(
            f"{src}: field 'protocol' must be one of {list(PROTOCOLS)}, got {out['protocol']!r}"
        )
    return out


def metric_names(settings: dict) -> list[str]:
    """Names of every metric an evaluation with these settings reports, registry order."""
    skip = {m for m in utility.MODELS if m not in settings["utility_models"]}
    return [
        n
        for n in REGISTRY
        if not any(n.startswith(f"{d}_{m}_") for d in utility.DIRECTIONS for m in skip)
    ]


def cell_from_path(out: str | Path) -> dict:
    """``{model, prompt, rep}`` from ``.../{model}/{prompt}/r{rep}.json`` (None when absent)."""
    p = Path(out)
    m = re.fullmatch(r"r(\d+)\.json", p.name)
    parts = p.parts
    return {
        "model": parts[-3] if len(parts) >= 3 else None,
        "prompt": parts[-2] if len(parts) >= 2 else None,
        "rep": int(m.group(1)) if m else None,
    }


def clean(obj):
    """JSON-safe copy: numpy scalars -> Python, NaN/inf -> None."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return clean(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


REAL_FITS_VERSION = 1
"""Bumped when the cached real-data fits change shape (an old file is then ignored)."""


def split_fingerprint(*paths: str | Path) -> str:
    """sha256 over the bytes of the split files the real fits were computed from."""
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()


STAND_IN_ROWS = 500
"""Holdout rows of the stand-in table that fills the real-fits memo (enough that most
demographic groups reach fairness' minimum; a group it misses is filled by its first cell)."""


def compute_real_fits(
    card: DatasetCard, train: pd.DataFrame, holdout: pd.DataFrame, seed: int, settings: dict
) -> dict:
    """The real-data parts of :func:`evaluate` shared by every cell of a dataset and seed:
    utility models trained on real train + their holdout scores, privacy real->real
    distances, and the evaluate job's ``memo`` of the real side (see :func:`job_memo`).
    Cached per dataset by ``synllm real-fits`` (rule ``real_fits``)."""
    memo: dict = {}
    fits = {
        "version": REAL_FITS_VERSION,
        "dataset": card.name,
        "utility": utility.real_fits(train, holdout, card, settings, seed),
        "privacy": privacy.real_cache(
            train, holdout, card, settings, seed, memo.setdefault("privacy", {})
        ),
    }
    # The memo is filled the way an evaluate job fills it: by scoring a table against these
    # splits (a seeded sample of holdout rows; its own values are dropped). Every key is a
    # piece of the real side named with the settings it depends on, so the job's cells get
    # the values of a fresh call; one replicate is enough to fill the bootstrap reference.
    stand_in = holdout.iloc[privacy.sample_rows(len(holdout), STAND_IN_ROWS, seed + 13)]
    stand_in = stand_in.reset_index(drop=True)
    one = dict(settings, bootstrap=min(1, int(settings.get("bootstrap", 0))))
    evaluate(card, stand_in, train, holdout, seed, one, real_fits=fits, memo=memo)
    fairness.evaluate_fairness(
        card, stand_in, train, holdout, seed, memo=memo.setdefault("fairness", {})
    )
    fits["memo"] = {"seed": seed, "settings": settings, "memo": memo}
    return fits


def job_memo(fits: dict | None, seed: int, settings: dict) -> dict:
    """The memo an evaluate job starts from: the real-fits file's (computed once per
    dataset) when it was made with this seed and these settings, else an empty one."""
    saved = (fits or {}).get("memo") or {}
    if saved.get("seed") == seed and saved.get("settings") == settings:
        return saved["memo"]
    return {}


def load_real_fits(path: str | Path, fingerprint: str) -> tuple[dict | None, str | None]:
    """(cache, None) or (None, why it is not used) for a file written by ``synllm real-fits``."""
    path = Path(path)
    if not path.is_file():
        return None, f"real-fits file not found: {path}"
    with path.open("rb") as fh:  # written by cli_real_fits of this workflow, never downloaded
        cache = pickle.load(fh)
    if not isinstance(cache, dict) or cache.get("version") != REAL_FITS_VERSION:
        return None, f"real-fits file {path} has another format version: fitting here"
    if cache.get("fingerprint") != fingerprint:
        return None, f"real-fits file {path} was computed from other splits: fitting here"
    return cache, None


@contextmanager
def _timed(seconds: dict[str, float], step: str) -> Iterator[None]:
    """``seconds[step]`` = wall seconds of the ``with`` body."""
    t = time.perf_counter()
    yield
    seconds[step] = time.perf_counter() - t


def evaluate(
    card: DatasetCard,
    syn: pd.DataFrame,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    seed: int,
    settings: dict | None = None,
    shown: pd.DataFrame | None = None,
    real_fits: dict | None = None,
    memo: dict | None = None,
    unmeasured: str | None = None,
) -> dict:
    """All metrics of one synthetic table (typed frames) as the metrics-JSON dict (no cell ids).

    ``shown``: the real rows the prompt showed the generator (:func:`leaks.prompt_rows`;
    None = no prompt or none shown).
    ``unmeasured``: why the prompt's rows are unknown (a prompted cell scored without its
    prompt JSON): the metrics that need them fail with this reason instead of reading 0.
    ``real_fits``: :func:`compute_real_fits` of the same splits; each part is reused only
    where its seed and settings match, so the metrics are those of a run without it.
    ``memo``: a dict kept by a caller that evaluates several tables against the same
    ``train``, ``holdout`` and card (the CLI: one per job); the real side of fidelity,
    clinical, privacy and the bootstrap reference is computed on the first call into it
    (keyed by the settings and seed it depends on), with the values of a call without it."""
    settings = parse_settings(None) if settings is None else settings
    memo = {} if memo is None else memo
    names = metric_names(settings)
    out: dict = {
        "dataset": card.name,
        "status": "ok",
        "reason": None,
        "n_synthetic": int(len(syn)),
        "n_train": int(len(train)),
        "n_holdout": int(len(holdout)),
        "seed": seed,
        "settings": settings,
        "warnings": [],
    }
    if len(syn) == 0:
        reason = "synthetic table has no rows"
        out.update(
            status="failed",
            reason=reason,
            metrics=[failed(n, reason).to_dict() for n in names],
            per_column={},
            correlation={},
            clinical={},
            privacy={},
            utility={},
            seconds={},
        )
        return out
    classes = syn[card.target].dropna().astype("string").unique()
    if len(classes) < 2:
        out["warnings"].append(
            f"synthetic target {card.target!r} has {len(classes)} class(es) "
            f"{sorted(map(str, classes))}: train-on-synthetic utility is the constant predictor "
            "(chance level), train-on-real-test-on-synthetic AUC is undefined"
        )

    seconds: dict[str, float] = {}
    results = []
    with _timed(seconds, "fidelity"):
        res, out["per_column"], out["correlation"] = fidelity.evaluate_fidelity(
            train, syn, card, settings, memo.setdefault("train", {})
        )
        results += res
    with _timed(seconds, "clinical"):
        res, out["clinical"] = clinical.evaluate_clinical(
            train, syn, card, memo.setdefault("train", {})
        )
        results += res
    with _timed(seconds, "privacy"):
        res, out["privacy"] = privacy.evaluate_privacy(
            train,
            holdout,
            syn,
            card,
            settings,
            seed,
            cache=(real_fits or {}).get("privacy"),
            memo=memo.setdefault("privacy", {}),
        )
        results += res
    with _timed(seconds, "leaks"):
        res, more = leaks.evaluate_leaks(
            train, holdout, syn, card, settings, seed, shown, unmeasured
        )
        out["privacy"].update(more)
        results += res
    with _timed(seconds, "utility"):
        res, out["utility"] = utility.evaluate_utility(
            train, holdout, syn, card, settings, seed, cache=(real_fits or {}).get("utility")
        )
        results += res

    by_name = {r.metric.name: r for r in results}
    missing = [n for n in names if n not in by_name]
    if missing:  # a programming error, not a user error
        raise RuntimeError(f"metrics declared but not computed: {missing}")
    out["metrics"] = [by_name[n].to_dict() for n in names]
    out["bootstrap"] = bootstrap.replicates(card, syn, train, holdout, seed, settings, out, memo)
    seconds["bootstrap"] = out["bootstrap"]["seconds"]
    out["seconds"] = {k: round(v, 3) for k, v in seconds.items()}
    return out


def read_validation(path: str | Path) -> dict:
    """The validation report (a JSON object); DataError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"validation report not found: {path}")
    try:
        rep = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"validation report {path}: not valid JSON ({err})") from None
    if not isinstance(rep, dict):
        raise DataError(f"validation report {path}: must be a JSON object")
    return rep


def _cell_ids(a) -> dict:
    """``{model, prompt, rep}`` of the cell: from the ``--out`` path unless given as flags."""
    cell = cell_from_path(a.out)
    given = (("model", a.model), ("prompt", a.prompt), ("rep", a.rep))
    cell.update({k: v for k, v in given if v is not None})
    return cell


def _read_splits(a, card: DatasetCard) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``--train`` and ``--holdout`` splits, typed; DataError naming a missing one."""
    for what, path in (("train", a.train), ("holdout", a.holdout)):
        if not Path(path).is_file():
            raise DataError(f"{what} split not found: {path}")
    return read_split(a.train, card), read_split(a.holdout, card)


def _write_cell(a, doc: dict, fairness_frame: pd.DataFrame | None) -> Path:
    """The metrics JSON ``--out`` and, when given, the fairness CSV ``--out-fairness``."""
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fairness_frame is not None:
        fpath = Path(a.out_fairness)
        fpath.parent.mkdir(parents=True, exist_ok=True)
        fairness_frame.to_csv(fpath, index=False)
    out.write_text(json.dumps(clean(doc), indent=1, allow_nan=False) + "\n")
    return out


def _paper_cli(a, card: DatasetCard, train, holdout, settings: dict) -> int:
    """``evaluation.protocol: paper`` (:mod:`synllm.metrics.paper`)."""
    from synllm.validate import read_raw

    for flag, value in (("--raw", a.raw), ("--real-table", a.real_table)):
        if value is None or not Path(value).is_file():
            raise DataError(f"protocol paper: {flag} file not found: {value}")
    try:
        syn = pd.read_csv(a.synthetic)
    except pd.errors.EmptyDataError:
        syn = None
    real = pd.read_csv(a.real_table)
    doc = evaluate_paper_cell(
        card, syn, read_raw(a.raw), real, train, holdout, a.seed, settings, age_cap=a.age_cap
    )
    cell = _cell_ids(a)
    doc = {"dataset": card.name, **cell, **doc}
    doc["validation"] = {
        k: v
        for k, v in read_validation(a.validation).items()
        if k in ("status", "kept", "run_batches", "example_copies")
    }
    # the fairness CSV is a declared output of the rule; the paper protocol scores no groups
    no_groups = pd.DataFrame(columns=["dataset", "model", "prompt", "rep", "group_by", "group"])
    out = _write_cell(a, doc, no_groups if a.out_fairness else None)
    print(
        f"{card.name} {cell['model']}/{cell['prompt']}/r{cell['rep']}: paper protocol, "
        f"{doc['status']} -> {out}"
    )
    return 0


# --------------------------------------------------------------------------- paper protocol
def typed_table(table: pd.DataFrame, card) -> pd.DataFrame:
    """The authors' table typed by the card (rows the card's coercion rejects dropped), for
    the project's metrics."""
    from synllm.validate import coerce_records, typed_output

    recs = [
        {k: ("" if pd.isna(v) else str(v)) for k, v in row.items() if k in card.columns}
        for row in table.to_dict(orient="records")
    ]
    frame, reason, _ = coerce_records(recs, card)
    return typed_output(frame[reason == ""], card)


def evaluate_paper_cell(
    card,
    syn: pd.DataFrame | None,
    raw_text: str,
    real_full: pd.DataFrame,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    seed: int,
    settings: dict,
    age_cap: bool = False,
    divergence: bool = True,
) -> dict:
    """The metrics-JSON body of one cell under the paper protocol.

    ``syn``: the validated authors' table (None or empty: a "–" cell). ``metrics``: the paper
    metrics (privacy = median over the K seeds, all K values in ``privacy_seeds``);
    ``variants``: the cumulative divergence steps 1-4 of :data:`synllm.protocol.DIVERGENCE_STEPS`
    (steps 5-6 change only the aggregation).
    """
    from synllm.metrics.paper import PAPER, STEP4_TRAIN_ROWS, cell_metrics, clean, paper_results
    from synllm.protocol import divergence_protocols, paper_table

    ds = card.name
    k = int(settings.get("privacy_seeds", 20))
    seeds = tuple(seed + i for i in range(k))
    doc: dict = {
        "dataset": ds,
        "protocol": "paper",
        "seed": seed,
        "privacy_seeds_used": list(seeds),
        "settings": settings,
        "warnings": [],
    }
    if syn is None or len(syn) == 0:
        doc.update(
            status="short",
            reason="the cell never reached 100 rows ('–' in Table IV)",
            n_synthetic=0,
            metrics=[],
            privacy_seeds={},
            variants={},
        )
        return doc
    main = cell_metrics(ds, syn, real_full, PAPER, seeds)
    doc.update(
        status="ok",
        reason=None,
        n_synthetic=int(len(syn)),
        metrics=paper_results(main["values"]),
        privacy_seeds=main["privacy_seeds"],
    )
    variants: dict = {}
    if divergence:
        steps = {p.name: p for p in divergence_protocols()}
        cell = paper_table(ds, raw_text, steps["1_no_example_rows"], age_cap=age_cap)
        t1 = cell.table
        full_clean = clean(real_full, ds) if t1 is not None else None
        for label in ("1_no_example_rows", "2_full_real", "3_raw_wasserstein"):
            if t1 is None:
                variants[label] = {"status": "short", "metrics": []}
                continue
            res = cell_metrics(ds, t1, real_full, steps[label], (seed,), real_clean=full_clean)
            variants[label] = {
                "status": "ok",
                "n_synthetic": int(len(t1)),
                "metrics": paper_results(res["values"]),
            }
        label = "4_project_metrics"
        typed = typed_table(t1, card) if t1 is not None else None
        if typed is None or len(typed) == 0:
            variants[label] = {"status": "short", "metrics": []}
        else:
            if len(train) > STEP4_TRAIN_ROWS:  # cost: the project's metrics scan the split
                train = train.sample(STEP4_TRAIN_ROWS, random_state=seed)
            proj = evaluate(card, typed, train, holdout, seed, {**settings, "protocol": "project"})
            variants[label] = {
                "status": proj["status"],
                "n_synthetic": int(len(typed)),
                "metrics": [
                    m for m in proj["metrics"] if m.get("score_group") in ("quality", "privacy")
                ],
            }
    doc["variants"] = variants
    return doc


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="synllm evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--card", required=True, help="dataset card YAML")
    p.add_argument("--synthetic", required=True, nargs="+", help="validated synthetic CSV")
    p.add_argument("--train", required=True, help="train split parquet")
    p.add_argument("--holdout", required=True, help="holdout split parquet")
    p.add_argument("--validation", required=True, nargs="+", help="validation report JSON")
    p.add_argument(
        "--prompt-json",
        default=None,
        nargs="+",
        help="prompt JSON of the cell (its real example rows are the seed-row members); "
        "without it a prompted cell's prompt copies are not measured",
    )
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--settings", default=None, help="JSON text or JSON file (see module doc)")
    p.add_argument("--out", required=True, nargs="+", help="metrics JSON to write")
    p.add_argument(
        "--out-fairness",
        default=None,
        nargs="+",
        help="also score per-group fairness; per-group table CSV to write (see module doc)",
    )
    p.add_argument(
        "--real-fits",
        default=None,
        help="file of `synllm real-fits` for these splits, seed and settings",
    )
    p.add_argument(
        "--anonymeter",
        default=None,
        nargs="+",
        help="`synllm anonymeter` JSON of the cell, kept as privacy.anonymeter (not scored)",
    )
    p.add_argument("--model", default=None)
    p.add_argument("--prompt", default=None)
    p.add_argument("--rep", type=int, default=None)
    p.add_argument(
        "--raw",
        default=None,
        nargs="+",
        help="protocol paper: the raw output (re-parsed for the divergence steps)",
    )
    p.add_argument(
        "--real-table",
        default=None,
        help="protocol paper: the full real table file (the authors sampled from it)",
    )
    p.add_argument(
        "--age-cap",
        action="store_true",
        help="protocol paper: the cell's outputs came from the authors' capped generator",
    )
    a = p.parse_args(argv)
    cells = per_cell_args(a, CELL_ARGS, "evaluate")

    settings = parse_settings(a.settings)
    card = load_card(a.card)
    train, holdout = _read_splits(a, card)
    if settings["protocol"] == "paper":
        for c in cells:
            _paper_cli(c, card, train, holdout, settings)
        return 0
    fits = None
    if a.real_fits:
        fits = load_real_fits(a.real_fits, split_fingerprint(a.train, a.holdout))
    # the real side of the metrics, shared by this job's cells
    memo = job_memo(fits[0] if fits else None, a.seed, settings)
    for c in cells:
        _project_cli(c, card, train, holdout, settings, fits, memo)
    return 0


# the arguments that name one cell's files (--out first: it counts the cells)
CELL_ARGS = ("out", "synthetic", "validation", "prompt_json", "out_fairness", "raw", "anonymeter")


def _project_cli(a, card: DatasetCard, train, holdout, settings: dict, fits, memo) -> None:
    """One cell under the project's protocol."""
    syn = read_synthetic(a.synthetic, card)
    report = read_validation(a.validation)
    shown = leaks.prompt_rows(read_prompt(a.prompt_json), card) if a.prompt_json else None
    cell = _cell_ids(a)
    unmeasured = None
    if shown is None and cell["prompt"] != BASELINE_PROMPT:
        # a prompted cell (or one whose prompt the path does not name) scored without its
        # prompt: which real rows it showed is unknown, so their copies are not measured
        copies = report.get("prompt_copies")
        unmeasured = "not measured: no --prompt-json given" + (
            f" (the validation report counts {copies} prompt copies)"
            if isinstance(copies, int) and not isinstance(copies, bool)
            else ""
        )

    t0 = time.perf_counter()
    cache, why = fits if fits is not None else (None, None)
    result = evaluate(card, syn, train, holdout, a.seed, settings, shown, cache, memo, unmeasured)
    if why:
        result["warnings"].append(why)
    doc = {"dataset": card.name, **cell, **result}
    doc["validation"] = {
        k: report.get(k) for k in ("status", "candidate_lines", "parsed", "valid", "prompt_copies")
    }
    if a.anonymeter:
        # reported beside the privacy metrics, outside the Privacy score (docs/privacy.md)
        doc.setdefault("privacy", {})["anonymeter"] = json.loads(
            Path(a.anonymeter).read_text(encoding="utf-8")
        )
    fair_frame = None
    if a.out_fairness:
        t = time.perf_counter()
        fair_res, fair_frame, doc["fairness"] = fairness.evaluate_fairness(
            card,
            syn,
            train,
            holdout,
            a.seed,
            cell={"dataset": card.name, **cell},
            memo=memo.setdefault("fairness", {}),
        )
        doc["metrics"] += [r.to_dict() for r in fair_res]
        doc["seconds"]["fairness"] = round(time.perf_counter() - t, 3)
    doc["seconds"]["total"] = round(time.perf_counter() - t0, 3)

    out = _write_cell(a, doc, fair_frame)
    n_ok = sum(m["status"] == "ok" for m in doc["metrics"])
    print(
        f"{card.name} {cell['model']}/{cell['prompt']}/r{cell['rep']}: {doc['status']}"
        f"{' (' + doc['reason'] + ')' if doc['reason'] else ''}, {n_ok}/{len(doc['metrics'])} "
        f"metrics ok, {doc['seconds']['total']:.1f}s -> {out}"
    )


def cli_real_fits(argv: list[str]) -> int:
    """``synllm real-fits``: the real-data fits of one dataset split, for ``evaluate --real-fits``."""
    p = argparse.ArgumentParser(prog="synllm real-fits", description=cli_real_fits.__doc__)
    p.add_argument("--card", required=True)
    p.add_argument("--train", required=True)
    p.add_argument("--holdout", required=True)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--settings", default=None, help="the config's evaluation section (JSON)")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    settings = parse_settings(a.settings)
    card = load_card(a.card)
    train, holdout = _read_splits(a, card)
    t0 = time.perf_counter()
    cache = compute_real_fits(card, train, holdout, a.seed, settings)
    cache["fingerprint"] = split_fingerprint(a.train, a.holdout)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as fh:
        pickle.dump(cache, fh, protocol=pickle.HIGHEST_PROTOCOL)
    print(f"{card.name}: real-data fits in {time.perf_counter() - t0:.1f}s -> {out}")
    return 0
