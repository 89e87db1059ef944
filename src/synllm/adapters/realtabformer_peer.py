"""REaLTabFormer (PyPI ``realtabformer``) as a peer; run by the ``realtabformer`` environment.

Imports realtabformer, transformers, torch, pandas and pyarrow only (no synllm: this file is
run by another environment's Python). Same two commands and files as the other environment
peers (``tabularargn_peer.py``):

- ``train --train T.parquet --meta M.json --out-model model.pkl --out-facts facts.json``:
  a GPT-2 trained from scratch on the rows of ``T`` (no download; realtabformer's
  ``n_critic=0``: plain training, without its bootstrap-based overfitting critic). On CPU a
  small GPT-2 (2 layers, width 128) keeps a training to minutes; on GPU realtabformer's
  default (6 layers, width 768). ``epochs`` and ``batch_size`` from the budget; there is no
  time limit (``max_train_seconds`` is not used). The model file is a pickle of the saved
  model folder (relative path -> bytes).
- ``sample --model model.pkl --meta M.json --n N --seed S --out records.csv``.
"""

from __future__ import annotations

import argparse
import json
import pickle
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _seed(seed: int, threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, threads))
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _frame(df: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    out = {}
    for c, kind in columns.items():
        s = df[c]
        if kind == "numeric":
            out[c] = pd.to_numeric(s, errors="coerce").astype("float64")
        else:
            out[c] = s.astype(object).where(s.notna(), None)
    return pd.DataFrame(out)


def train(a, meta: dict) -> None:
    from realtabformer import REaLTabFormer
    from transformers import GPT2Config

    seed = int(meta["seed"])
    _seed(seed, int(meta.get("threads", 1)))
    df = _frame(pd.read_parquet(a.train), meta["columns"])
    device = meta.get("device", "cpu")
    config = GPT2Config(n_layer=2, n_embd=128, n_head=4) if device == "cpu" else None
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rtf-") as tmp:
        d = Path(tmp)
        rtf = REaLTabFormer(
            model_type="tabular",
            tabular_config=config,
            epochs=int(meta["epochs"]),
            batch_size=int(meta["batch_size"]),
            random_state=seed,
            checkpoints_dir=str(d / "checkpoints"),
            samples_save_dir=str(d / "samples"),
            full_save_dir=str(d / "full"),
            report_to="none",
            use_cpu=device == "cpu",
        )
        rtf.fit(df, n_critic=0, device=device)
        seconds = time.perf_counter() - t0
        # save() writes its attributes as JSON and converts only two of its Path attributes
        for key in ("full_save_dir",):
            if isinstance(getattr(rtf, key, None), Path):
                setattr(rtf, key, getattr(rtf, key).as_posix())
        rtf.save(d / "model")
        (saved,) = [p for p in (d / "model").iterdir() if p.is_dir()]
        files = {str(p.relative_to(saved)): p.read_bytes() for p in saved.rglob("*") if p.is_file()}
    with open(a.out_model, "wb") as fh:
        pickle.dump({"tool": "realtabformer", "model_dir": files}, fh)
    facts = {
        "train_seconds": round(seconds, 3),
        "epochs_run": int(meta["epochs"]),
        "stopped_by_time": False,
        "batch_size": int(meta["batch_size"]),
        "train_rows": len(df),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "inputs": [a.train],
        "versions": {"realtabformer": _version("realtabformer")},
    }
    Path(a.out_facts).write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")


def sample(a, meta: dict) -> None:
    from realtabformer import REaLTabFormer

    with open(a.model, "rb") as fh:
        files = pickle.load(fh)["model_dir"]
    with tempfile.TemporaryDirectory(prefix="rtf-") as tmp:
        d = Path(tmp) / "model"
        for rel, data in files.items():
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            (d / rel).write_bytes(data)
        rtf = REaLTabFormer.load_from_dir(d)
        _seed(int(a.seed), int(meta.get("threads", 1)))
        df = rtf.sample(n_samples=int(a.n), gen_batch=64, device=meta.get("device", "cpu"))
    df = df.reset_index(drop=True).head(int(a.n))
    df[list(meta["columns"])].to_csv(a.out, index=False)


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


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
