"""Peer generators: tabular synthesizers people already use, as grid "models" (prompt ``none``).

Two steps, so one fitted model serves every cell that samples from it:

- ``synllm train-peer`` (rule ``train_peer``, one job per dataset x generator x rep) fits the
  synthesizer on the **train split only** and writes ``model.pkl`` plus ``train.json``
  (train seconds, epochs run, peak memory, rows used, budget);
- ``synllm generate`` with backend ``peer`` loads that file (``--peer-model``), samples the
  cell's records with the cell's seed and returns them as CSV text (header in card column
  order), so the validator and every metric treat them exactly like a model's output.

Wired synthesizers (registry field ``peer``): ``ctgan`` and ``tvae`` from SDV (PyPI ``sdv``,
extra ``peers``), with SDV metadata built from the dataset card; ``great`` (PyPI ``be-great``,
extra ``peers``: :mod:`synllm.generate.great`) on a base model folder; and the environment peers
of :data:`ENV_ADAPTERS` (``tabularargn``, ``realtabformer``), whose pins clash with ours: they train and sample
in the pinned environment their registry entry names (``env``, :mod:`synllm.envs`), through
an adapter that gets the budget's train rows as its only data file and returns a CSV
(docs/peers.md).

Budgets come from the registry (``train`` for CPU, ``train_gpu`` with config
``peers.budget: gpu``): ``epochs``, ``batch_size``, ``max_train_seconds`` (training stops
after the epoch that crosses it; ``epochs_run`` records how many ran) and ``max_train_rows``
(a seeded subsample of the train split, for CPU-sized runs on the 80k-row diabetes table).
"""

from __future__ import annotations

import argparse
import csv
import importlib
import importlib.util
import io
import json
import logging
import pickle
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synllm.cards import DatasetCard, load_card
from synllm.errors import ConfigError, DataError
from synllm.generate.base import (
    BackendStats,
    GenerationContext,
    GenerationSettings,
    peak_rss_mb,
    seed_all,
)
from synllm.generate.great import GreatModel, fit_great, sample_great
from synllm.split import read_split, to_card_dtypes, to_records

log = logging.getLogger("synllm.peers")

PEER_EXTRA = 'pip install -e ".[peers]"'
PEER_PACKAGES: dict[str, str] = {"ctgan": "sdv", "tvae": "sdv", "great": "be-great"}
"""Peer kind -> the PyPI package it needs (import name = package name with ``_``)."""

ENV_ADAPTERS: dict[str, str] = {
    "tabularargn": "tabularargn_peer",
    "realtabformer": "realtabformer_peer",
}
"""Peer kind -> its adapter (``synllm/adapters/<name>.py``), run in the pinned environment the
registry entry names (``env``; docs/peers.md): these peers' pins clash with ours."""


def require(kind: str) -> None:
    """ConfigError in one line naming the package and the extra when it is not installed
    (an environment peer's environment is checked where it is used: synllm.envs)."""
    if kind in ENV_ADAPTERS:
        return
    if kind not in PEER_PACKAGES:
        known = sorted([*PEER_PACKAGES, *ENV_ADAPTERS])
        raise ConfigError(f"models: unknown peer {kind!r} (known: {known})")
    package = PEER_PACKAGES[kind]
    if importlib.util.find_spec(package.replace("-", "_")) is None:
        raise ConfigError(
            f"peer {kind!r} needs the package {package!r}, which is not installed ({PEER_EXTRA})"
        )


# -- card -> SDV ------------------------------------------------------------------------


def sdv_metadata_dict(card: DatasetCard) -> dict:
    """SDV single-table metadata (spec V1) of the card's columns.

    Binary columns are categorical for SDV (two modes, not a continuous 0-1 range); numeric
    columns are numerical (SDV 2 learns their rounding from the data; ints are rounded again
    by :func:`synllm.split.to_card_dtypes`).
    """
    columns: dict[str, dict] = {}
    for name, col in card.columns.items():
        sdtype = "numerical" if col.is_numeric else "categorical"
        columns[name] = {"sdtype": sdtype}
    return {
        "METADATA_SPEC_VERSION": "V1",
        "tables": {card.name: {"columns": columns}},
    }


def to_sdv_frame(train: pd.DataFrame, card: DatasetCard) -> pd.DataFrame:
    """Card-typed train frame as SDV takes it: numerics float64 (NaN), binaries as strings."""
    out = {}
    for name, col in card.columns.items():
        s = train[name]
        if col.type == "binary":
            out[name] = (
                s.astype("Int64")
                .astype(object)
                .where(s.notna(), np.nan)
                .map(lambda v: v if pd.isna(v) else str(int(v)))
            )
        elif col.is_numeric:
            out[name] = pd.to_numeric(s, errors="coerce").astype("float64")
        else:
            out[name] = s.astype(object).where(s.notna(), np.nan)
    return pd.DataFrame(out)


# -- training ---------------------------------------------------------------------------


@contextmanager
def epoch_budget(max_seconds: float | None, counter: dict) -> Iterator[None]:
    """Stop CTGAN/TVAE training after the epoch that crosses ``max_seconds``.

    The ctgan package drives its epoch loop through the module-level ``tqdm``; replacing it
    for the duration of ``fit`` is the only hook it offers (no callbacks). ``counter["epochs"]``
    counts the epochs that ran.
    """
    import ctgan.synthesizers.ctgan as ctgan_mod
    import ctgan.synthesizers.tvae as tvae_mod

    t0 = time.perf_counter()

    class _Budgeted:
        def __init__(self, iterable, *args, **kwargs) -> None:
            self.iterable = iterable

        def set_description(self, *args, **kwargs) -> None:
            pass

        def __iter__(self):
            for item in self.iterable:
                yield item
                counter["epochs"] += 1
                if max_seconds is not None and time.perf_counter() - t0 >= max_seconds:
                    counter["stopped_by_time"] = True
                    return

    saved = (ctgan_mod.tqdm, tvae_mod.tqdm)
    ctgan_mod.tqdm = tvae_mod.tqdm = _Budgeted
    try:
        yield
    finally:
        ctgan_mod.tqdm, tvae_mod.tqdm = saved


def subsample(train: pd.DataFrame, max_rows: int | None, seed: int) -> pd.DataFrame:
    """At most ``max_rows`` train rows (seeded, without replacement), else the whole split."""
    if max_rows is None or len(train) <= max_rows:
        return train.reset_index(drop=True)
    return train.sample(n=max_rows, random_state=seed).reset_index(drop=True)


def fit_peer(
    kind: str,
    card: DatasetCard,
    train: pd.DataFrame,
    seed: int,
    epochs: int,
    batch_size: int,
    max_train_seconds: float | None = None,
    use_gpu: bool = False,
) -> tuple[Any, dict]:
    """Fit one synthesizer on ``train`` (card-typed rows); returns (model, facts)."""
    require(kind)
    from sdv.metadata import Metadata
    from sdv.single_table import CTGANSynthesizer, TVAESynthesizer

    if len(train) == 0:
        raise DataError(f"dataset {card.name!r}: train split is empty")
    metadata = Metadata.load_from_dict(sdv_metadata_dict(card))
    # CTGAN needs batch_size to be a multiple of pac (10); both models need >= 2 rows/batch
    size = max(2, min(batch_size, len(train)))
    if kind == "ctgan":
        size = max(10, size - size % 10)
        synth = CTGANSynthesizer(
            metadata, epochs=epochs, batch_size=size, enable_gpu=use_gpu, verbose=False
        )
    else:
        synth = TVAESynthesizer(
            metadata, epochs=epochs, batch_size=size, enable_gpu=use_gpu, verbose=False
        )
    seed_all(seed)
    counter = {"epochs": 0, "stopped_by_time": False}
    t0 = time.perf_counter()
    with epoch_budget(max_train_seconds, counter):
        synth.fit({card.name: to_sdv_frame(train, card)})  # SDV 2: table name -> frame
    facts = {
        "train_seconds": round(time.perf_counter() - t0, 3),
        "epochs_run": counter["epochs"],
        "stopped_by_time": counter["stopped_by_time"],
        "batch_size": size,
        "train_rows": len(train),
    }
    return synth, facts


def sample_peer(model: Any, card: DatasetCard, n: int, seed: int) -> pd.DataFrame:
    """``n`` card-typed records from a fitted synthesizer, reproducible from ``seed``."""
    seed_all(seed)
    # SDV otherwise reseeds every sample() call with one fixed seed: same rows in every rep
    model.reset_sampling()
    model._set_random_state(int(seed) % 2**32)
    tables = model.sample(num_rows=n)  # SDV 2: table name -> frame
    return to_card_dtypes(next(iter(tables.values())), card)


def to_csv_text(df: pd.DataFrame, card: DatasetCard) -> str:
    """CSV with a header in card column order; missing values are empty fields."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(card.feature_names)
    for rec in to_records(df, card):
        writer.writerow(["" if v is None else v for v in rec.values()])
    return buf.getvalue()


def save_model(model: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump(model, fh)


def load_model(path: Path) -> Any:
    if not Path(path).is_file():
        raise ConfigError(f"peer model not found: {path} (run rule train_peer first)")
    with open(path, "rb") as fh:
        return pickle.load(fh)


# -- generate backend -------------------------------------------------------------------


class PeerBackend:
    """Backend ``peer``: ``load`` reads the fitted model, ``generate`` returns one CSV chunk."""

    name = "peer"
    batched = False

    def __init__(self) -> None:
        self.stats = BackendStats(device="cpu", quantization="none", constrained=False)
        self.model: Any = None
        self.card: DatasetCard | None = None
        self.records_written: int | None = None
        self.spec: Any = None

    def load(self, spec, settings: GenerationSettings, context: GenerationContext) -> None:
        require(spec.peer)
        self.spec = spec
        if spec.peer not in ENV_ADAPTERS:
            import torch

            torch.set_num_threads(spec.threads)
        if context.peer_model is None:
            raise ConfigError(f"generate: model {spec.slug!r} (backend peer) needs --peer-model")
        self.card = context.card
        self.model = load_model(context.peer_model)
        info_path = Path(context.peer_model).with_name("train.json")
        info = json.loads(info_path.read_text()) if info_path.is_file() else {}
        self.stats.extra.update({"peer": spec.peer, "model_file": str(context.peer_model)})
        for key in ("train_seconds", "epochs_run", "train_rows", "stopped_by_time", "budget"):
            if key in info:
                self.stats.extra[key] = info[key]
        if "peak_rss_mb" in info:
            self.stats.extra["train_peak_rss_mb"] = info["peak_rss_mb"]
        self.stats.device = info.get("device", "cpu")

    def count_tokens(self, text: str) -> int:
        return 0

    def generate(
        self,
        system: str,
        user: str,
        n_records: int,
        seed: int,
        settings: GenerationSettings,
        schema: dict | None,
    ) -> list[str]:
        assert self.card is not None
        t0 = time.perf_counter()
        if isinstance(self.model, EnvModel):
            df = sample_in_env(self.spec, self.card, self.model, n_records, seed)
        elif isinstance(self.model, GreatModel):
            df, tried = sample_great(self.model, self.card, n_records, seed, self.stats.device)
            self.stats.extra["sequences_sampled"] = tried
        else:
            df = sample_peer(self.model, self.card, n_records, seed)
        self.stats.extra["sample_seconds"] = round(time.perf_counter() - t0, 3)
        self.records_written = len(df)
        return [to_csv_text(df, self.card)]


def create() -> PeerBackend:
    """Entry point used by :func:`synllm.generate.base.get_backend`."""
    return PeerBackend()


# -- synllm train-peer ------------------------------------------------------------------


def train(
    spec,
    card: DatasetCard,
    train_path: Path,
    seed: int,
    budget_name: str = "cpu",
    base_model: str | None = None,
) -> tuple[Any, dict]:
    """Fit ``spec``'s synthesizer on the train split at ``train_path``; returns (model, info).
    ``base_model``: GReaT's base model folder (default: the registry's ``base_model``)."""
    if spec.backend != "peer":
        raise ConfigError(f"train-peer: model {spec.slug!r} is not a peer (backend {spec.backend})")
    require(spec.peer)
    budget = spec.budget(budget_name)
    rows = subsample(read_split(train_path, card), budget.max_train_rows, seed)
    if spec.peer in ENV_ADAPTERS:
        return train_in_env(spec, card, rows, seed, budget_name, train_path)
    import torch

    use_gpu = budget_name == "gpu" and torch.cuda.is_available()
    if spec.peer == "great":
        base = base_model or spec.base_model
        model, facts = fit_great(spec, card, rows, seed, budget, base, use_gpu)
    else:
        model, facts = fit_peer(
            spec.peer,
            card,
            rows,
            seed,
            budget.epochs,
            budget.batch_size,
            budget.max_train_seconds,
            use_gpu,
        )
    info = {
        "model": spec.slug,
        "peer": spec.peer,
        "dataset": card.name,
        "seed": seed,
        "train_file": str(train_path),
        "budget_name": budget_name,
        "budget": budget.model_dump(),
        "device": "cuda" if use_gpu else "cpu",
        **facts,
        "peak_rss_mb": peak_rss_mb(),
    }
    return model, info


# -- peers in an environment of their own ---------------------------------------------------


def env_meta(spec, card: DatasetCard, budget_name: str = "cpu", seed: int = 0) -> dict:
    """What an environment peer's adapter knows: column kinds from the card, the budget,
    threads and device. No file names and no rows: the rows come as the train file only."""
    if not spec.env:
        raise ConfigError(f"models: peer {spec.slug!r} ({spec.peer}) needs 'env' (envs/<env>.txt)")
    budget = spec.budget(budget_name)
    use_gpu = budget_name == "gpu"
    return {
        "dataset": card.name,
        "columns": {
            name: "numeric" if col.is_numeric else "categorical"
            for name, col in card.columns.items()
        },
        "target": card.target,
        "seed": int(seed),
        "epochs": budget.epochs,
        "batch_size": budget.batch_size,
        "max_train_seconds": budget.max_train_seconds,
        "threads": spec.threads,
        "device": "cuda" if use_gpu else "cpu",
    }


def train_in_env(
    spec, card: DatasetCard, rows: pd.DataFrame, seed: int, budget_name: str, train_path: Path
) -> tuple[Any, dict]:
    """Fit an environment peer: ``rows`` (the budget's subsample of the train split) go to
    the adapter as the only data file; returns (model file bytes, info)."""
    from synllm.envs import python_for, run_adapter

    if len(rows) == 0:
        raise DataError(f"dataset {card.name!r}: train split is empty")
    python = python_for(spec.env)
    meta = env_meta(spec, card, budget_name, seed)
    with tempfile.TemporaryDirectory(prefix="synllm-peer-") as tmp:
        d = Path(tmp)
        rows.to_parquet(d / "train.parquet", index=False)
        (d / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        args = ["train", "--train", str(d / "train.parquet"), "--meta", str(d / "meta.json")]
        args += ["--out-model", str(d / "model.pkl"), "--out-facts", str(d / "facts.json")]
        run_adapter(python, ENV_ADAPTERS[spec.peer], args, spec.env)
        facts = json.loads((d / "facts.json").read_text(encoding="utf-8"))
        model = EnvModel((d / "model.pkl").read_bytes())
    # the adapter saw one data file, the one written above
    facts["adapter_inputs"] = [Path(f).name for f in facts.pop("inputs", [])]
    info = {
        "model": spec.slug,
        "peer": spec.peer,
        "env": spec.env,
        "dataset": card.name,
        "seed": seed,
        "train_file": str(train_path),
        "budget_name": budget_name,
        "budget": spec.budget(budget_name).model_dump(),
        "device": meta["device"],
        **facts,
    }
    return model, info


class EnvModel:
    """An environment peer's fitted model: the adapter's model file, kept as bytes (pickled
    into ``model.pkl`` like an SDV model; only the adapter reads what is inside)."""

    def __init__(self, data: bytes) -> None:
        self.data = data


def sample_in_env(spec, card: DatasetCard, model: EnvModel, n: int, seed: int) -> pd.DataFrame:
    """``n`` card-typed records from an environment peer, reproducible from ``seed``."""
    from synllm.envs import python_for, run_adapter

    python = python_for(spec.env)
    meta = env_meta(spec, card, "cpu", seed)
    with tempfile.TemporaryDirectory(prefix="synllm-peer-") as tmp:
        d = Path(tmp)
        (d / "model.pkl").write_bytes(model.data)
        (d / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        args = ["sample", "--model", str(d / "model.pkl"), "--meta", str(d / "meta.json")]
        args += ["--n", str(n), "--seed", str(seed), "--out", str(d / "records.csv")]
        run_adapter(python, ENV_ADAPTERS[spec.peer], args, spec.env)
        df = pd.read_csv(d / "records.csv", dtype=str, keep_default_na=False, na_values=[""])
    return to_card_dtypes(df, card)


def cli_train(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="synllm train-peer", description="fit one peer synthesizer on a train split"
    )
    p.add_argument("--model", required=True, help="registry slug (backend peer)")
    p.add_argument("--registry", required=True)
    p.add_argument("--card", required=True)
    p.add_argument("--train", required=True, help="train split parquet (the only rows read)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budget", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--base-model", default=None, help="great: base model folder")
    p.add_argument("--out-model", required=True, help="fitted model (pickle)")
    p.add_argument("--out-info", required=True, help="train.json: seconds, epochs, memory")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from synllm.registry import load_registry

    spec = load_registry(a.registry).get(a.model)
    card = load_card(a.card)
    if spec.peer not in ENV_ADAPTERS:
        import torch

        torch.set_num_threads(max(1, a.threads))
    model, info = train(spec, card, Path(a.train), a.seed, a.budget, a.base_model)
    save_model(model, Path(a.out_model))
    Path(a.out_info).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out_info).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    log.info(
        "%s on %s: %d rows, %s epochs in %.1f s",
        spec.slug,
        card.name,
        info["train_rows"],
        info["epochs_run"],
        info["train_seconds"],
    )
    return 0
