"""Embedded-model cells one after another with 2 threads vs two 1-thread cells side by side.

    .venv/bin/python benchmarks/cell_threads.py [--results results] [--repeats 2]
        [--cells cirrhosis/STATGUIDE diabetes/FEATDESC cirrhosis/SEEDEx stroke/CLINRULE]
        [--out benchmarks/cell_threads.json]

Needs the prompt and split files of a default-grid run (``results/prompts``, ``results/data``).
Every cell is ``synllm generate`` as the workflow's rule runs it (20 records, seed 42, the
config's generation settings), one process per cell; only the registry entry's ``threads``
differs (a copy of ``config/models.yaml`` in a temporary folder). Per repeat: the cells one
after another at ``threads: 2``, then at ``threads: 1`` two at a time, in the given order, a
cell starting whenever one finishes (what Snakemake does with ``--cores 2``). Prints the wall
times and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MODEL = "smollm2-135m"


def registry_with_threads(threads: int, folder: Path) -> Path:
    reg = yaml.safe_load((ROOT / "config" / "models.yaml").read_text())
    reg["models"][MODEL]["threads"] = threads
    path = folder / f"models_t{threads}.yaml"
    path.write_text(yaml.safe_dump(reg, sort_keys=False))
    return path


def run_cell(cell: str, registry: Path, results: Path, work: Path, tag: str) -> dict:
    dataset, style = cell.split("/")
    out = work / f"{tag}-{dataset}-{style}"
    data = results / "data" / dataset
    cmd = [
        str(ROOT / ".venv" / "bin" / "synllm"),
        "generate",
        "--model",
        MODEL,
        "--registry",
        str(registry),
        "--prompt",
        str(results / "prompts" / dataset / f"{style}.json"),
        "--card",
        str(ROOT / "resources" / "datasets" / f"{dataset}.yaml"),
        "--train",
        str(data / "train.parquet"),
        "--holdout",
        str(data / "holdout.parquet"),
        "--n-records",
        "20",
        "--seed",
        "42",
        "--settings",
        "{}",
        "--out-raw",
        f"{out}.txt",
        "--out-meta",
        f"{out}.json",
    ]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    meta = json.loads(Path(f"{out}.json").read_text())
    return {
        "cell": cell,
        "threads": meta["backend_info"]["threads"],
        "job_seconds": round(wall, 2),
        "generation_seconds": meta["generation_seconds"],
        "records_found": meta["records_found"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default="results")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument(
        "--cells",
        nargs="+",
        default=["cirrhosis/STATGUIDE", "diabetes/FEATDESC", "cirrhosis/SEEDEx", "stroke/CLINRULE"],
    )
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "cell_threads.json"))
    a = p.parse_args(argv)
    results = Path(a.results).resolve()
    rows = []
    with tempfile.TemporaryDirectory(prefix="cell-threads-") as tmp:
        work = Path(tmp)
        reg1, reg2 = registry_with_threads(1, work), registry_with_threads(2, work)
        for rep in range(a.repeats):
            t0 = time.perf_counter()
            cells = [run_cell(c, reg2, results, work, "t2") for c in a.cells]
            rows.append(
                {"repeat": rep, "mode": "sequential, 2 threads", "wall": 0.0, "cells": cells}
            )
            rows[-1]["wall"] = round(time.perf_counter() - t0, 2)
            t0 = time.perf_counter()
            with ThreadPoolExecutor(2) as pool:
                done = list(pool.map(lambda c: run_cell(c, reg1, results, work, "t1"), a.cells))
            rows.append(
                {
                    "repeat": rep,
                    "mode": "two at a time, 1 thread each",
                    "wall": round(time.perf_counter() - t0, 2),
                    "cells": done,
                }
            )
            for r in rows[-2:]:
                print(f"repeat {rep}  {r['mode']:<28} {r['wall']:7.1f} s", flush=True)
    result = {
        "command": "benchmarks/cell_threads.py --repeats " + str(a.repeats),
        "date": time.strftime("%Y-%m-%d"),
        "cells": a.cells,
        "runs": rows,
    }
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
