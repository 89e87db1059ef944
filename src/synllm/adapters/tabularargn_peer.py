"""TabularARGN (PyPI ``mostlyai-engine``) as a peer; run by the ``tabularargn`` environment.

Imports mostlyai-engine, torch, pandas and pyarrow only (no synllm: this file is run by
another environment's Python). Two commands, files in and out:

- ``train --train T.parquet --meta M.json --out-model model.pkl --out-facts facts.json``:
  fits ARGN from scratch (no download) on the rows of ``T`` (the synllm side writes the
  train split, subsampled to the budget, and nothing else); ``M`` holds the column kinds
  (``numeric`` / ``categorical``) from the card and the budget (``epochs``, ``batch_size``,
  ``max_train_seconds``, ``threads``, ``device``, ``seed``). The model file is a pickle of the
  engine's workspace (relative path -> bytes), so one file carries the fitted model.
- ``sample --model model.pkl --meta M.json --n N --seed S --out records.csv``: N records,
  reproducible from S; rare categories the engine protects are replaced by sampled frequent
  ones (``rare_category_replacement_method="sample"``), never by a placeholder token.
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _setup(meta: dict, seed: int):
    # torchvision comes with mostlyai-engine but only as a CUDA build on PyPI, which fails to
    # load beside the CPU torch (operator torchvision::nms does not exist) when transformers
    # probes it; tabular ARGN never uses it, so it is hidden from the import system
    sys.modules.setdefault("torchvision", None)
    import torch
    from mostlyai import engine

    torch.set_num_threads(max(1, int(meta.get("threads", 1))))
    engine.set_random_state(seed)
    return engine


def _encoding_types(columns: dict[str, str]) -> dict[str, str]:
    return {
        c: "TABULAR_NUMERIC_AUTO" if kind == "numeric" else "TABULAR_CATEGORICAL"
        for c, kind in columns.items()
    }


def _frame(df: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    out = {}
    for c, kind in columns.items():
        s = df[c]
        if kind == "numeric":
            out[c] = pd.to_numeric(s, errors="coerce").astype("float64")
        else:
            out[c] = s.astype("string")
    return pd.DataFrame(out)


def _epochs_run(ws: Path) -> int | None:
    """Epochs the engine ran, from its progress log (ModelStore/model-progress CSV)."""
    for f in sorted((ws / "ModelStore").rglob("progress-messages.csv")):
        prog = pd.read_csv(f)
        if "epoch" in prog.columns and len(prog):
            return int(round(float(prog["epoch"].max())))
    return None


def train(a, meta: dict) -> None:
    seed = int(meta["seed"])
    engine = _setup(meta, seed)
    columns = meta["columns"]
    df = _frame(pd.read_parquet(a.train), columns)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="argn-") as tmp:
        ws = Path(tmp) / "ws"
        engine.split(
            tgt_data=df,
            model_type="TABULAR",
            tgt_encoding_types=_encoding_types(columns),
            workspace_dir=ws,
        )
        engine.analyze(workspace_dir=ws)
        engine.encode(workspace_dir=ws)
        max_s = meta.get("max_train_seconds")
        engine.train(
            max_epochs=float(meta["epochs"]),
            max_training_time=None if max_s is None else float(max_s) / 60.0,  # minutes
            batch_size=meta.get("batch_size"),
            device=meta.get("device", "cpu"),
            workspace_dir=ws,
        )
        seconds = time.perf_counter() - t0
        files = {
            str(p.relative_to(ws)): p.read_bytes()
            for p in sorted(ws.rglob("*"))
            # the fitted model only: the engine's copies of the train rows stay behind
            if p.is_file() and not {"tgt-data", "encoded-data", "SyntheticData"} & set(p.parts)
        }
        epochs = _epochs_run(ws)
    with open(a.out_model, "wb") as fh:
        pickle.dump({"tool": "mostlyai-engine", "workspace": files}, fh)
    facts = {
        "train_seconds": round(seconds, 3),
        "epochs_run": epochs,
        "stopped_by_time": bool(
            meta.get("max_train_seconds") is not None
            and epochs is not None
            and epochs < int(meta["epochs"])
        ),
        "batch_size": meta.get("batch_size"),
        "train_rows": len(df),
        "peak_rss_mb": _peak_rss_mb(),
        "inputs": [a.train],
        "versions": {"mostlyai-engine": engine.__version__},
    }
    Path(a.out_facts).write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")


def sample(a, meta: dict) -> None:
    engine = _setup(meta, int(a.seed))
    with open(a.model, "rb") as fh:
        files = pickle.load(fh)["workspace"]
    with tempfile.TemporaryDirectory(prefix="argn-") as tmp:
        ws = Path(tmp) / "ws"
        for rel, data in files.items():
            (ws / rel).parent.mkdir(parents=True, exist_ok=True)
            (ws / rel).write_bytes(data)
        engine.generate(
            sample_size=int(a.n),
            device=meta.get("device", "cpu"),
            rare_category_replacement_method="sample",
            workspace_dir=ws,
        )
        parts = sorted((ws / "SyntheticData").glob("*.parquet"))
        df = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    df[list(meta["columns"])].to_csv(a.out, index=False)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    for name in ("--train", "--meta", "--out-model", "--out-facts"):
        t.add_argument(name, required=True)
    s = sub.add_parser("sample")
    for name in ("--model", "--meta", "--n", "--seed", "--out"):
        s.add_argument(name, required=True)
    a = p.parse_args(argv)
    meta = json.loads(Path(a.meta).read_text(encoding="utf-8"))
    (train if a.command == "train" else sample)(a, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
