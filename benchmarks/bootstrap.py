"""Benchmark: evaluate time the bootstrap replicates add to one default-grid cell.

    PYTHONPATH=src python benchmarks/bootstrap.py [--b 20] [--n 20] [--out benchmarks/bootstrap.json]

For each dataset: the 80/20 split (seed 42), a 20-record synthetic table (holdout rows), and
``synllm.evaluate.evaluate`` in this process with ``bootstrap`` 0 and ``--b`` (default
settings otherwise), each timed once after a warm-up call. The default grid evaluates 7 cells
per dataset (4 prompts of the embedded model + 3 baselines) on 2 cores, so its added wall time
is about ``7 * sum(added per dataset) / 2``. Prints and writes one JSON object, with the
1-minute load average next to the numbers (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from synllm.cards import find_card  # noqa: E402
from synllm.evaluate import evaluate, parse_settings  # noqa: E402
from synllm.split import load_table, split_table  # noqa: E402

CELLS_PER_DATASET = 7
CORES = 2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--b", type=int, default=20)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    rows = {}
    for ds in ("diabetes", "stroke", "cirrhosis"):
        card = find_card(ds, ROOT / "resources" / "datasets")
        train, holdout = split_table(load_table(card, ROOT / "resources" / "data"), card, 0.2, 42)
        syn = holdout.sample(a.n, random_state=1).reset_index(drop=True)
        evaluate(card, syn, train, holdout, 42, parse_settings('{"bootstrap": 0}'))  # warm-up
        secs = {}
        for b in (0, a.b):
            t = time.perf_counter()
            out = evaluate(
                card, syn, train, holdout, 42, parse_settings(json.dumps({"bootstrap": b}))
            )
            secs[b] = time.perf_counter() - t
        rows[ds] = {
            "evaluate_s": round(secs[0], 2),
            f"evaluate_b{a.b}_s": round(secs[a.b], 2),
            "added_s": round(secs[a.b] - secs[0], 2),
            "bootstrap_block_s": out["bootstrap"]["seconds"],
        }
    added = sum(r["added_s"] for r in rows.values())
    result = {
        "B": a.b,
        "n_synthetic": a.n,
        "datasets": rows,
        "default_grid_added_wall_s": round(CELLS_PER_DATASET * added / CORES, 1),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    text = json.dumps(result, indent=1)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
