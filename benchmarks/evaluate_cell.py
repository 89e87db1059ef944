"""Benchmark: evaluate one diabetes cell (80k-row train split, 1,000 synthetic rows) end to end
through ``synllm evaluate``, measuring wall time and peak RSS with ``/usr/bin/time -v``.

    PYTHONPATH=src python benchmarks/evaluate_cell.py [--n-synthetic 1000] [--settings JSON]

The train/holdout split (80/20, seed 42) and the synthetic table (1,000 holdout rows,
seeded) are written to a temporary directory first; only the ``synllm evaluate`` process is
timed. Defaults of the evaluator apply (distance_sample 5000 train rows for the
train->train / holdout->train baselines, synthetic->train distances against the full train,
mia_sample 2000, three utility models on the full train). Target: < 30 s and < 2 GB peak RSS
on 2 cores. Prints one JSON line with the numbers and the per-family seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from synllm.cards import find_card  # noqa: E402
from synllm.split import load_table, split_table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-synthetic", type=int, default=1000)
    ap.add_argument("--settings", default="{}")
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args(argv)

    card = find_card("diabetes", ROOT / "resources" / "datasets")
    df = load_table(card, ROOT / "resources" / "data")
    train, holdout = split_table(df, card, 0.2, a.seed)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        train.to_parquet(d / "train.parquet", index=False)
        holdout.to_parquet(d / "holdout.parquet", index=False)
        syn = holdout.sample(a.n_synthetic, random_state=a.seed)
        syn.to_csv(d / "r1.csv", index=False)
        (d / "r1.report.json").write_text(json.dumps({"status": "ok", "valid": len(syn)}))
        out = d / "metrics" / "diabetes" / "holdout-sample" / "none" / "r1.json"
        cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "synllm", "evaluate",
               "--card", str(ROOT / "resources" / "datasets" / "diabetes.yaml"),
               "--synthetic", str(d / "r1.csv"), "--train", str(d / "train.parquet"),
               "--holdout", str(d / "holdout.parquet"), "--validation", str(d / "r1.report.json"),
               "--seed", str(a.seed), "--settings", a.settings, "--out", str(out)]
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            print(proc.stdout, proc.stderr, file=sys.stderr)
            return proc.returncode
        wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", proc.stderr)
        h, m, s = (float(x) if x else 0.0 for x in wall.groups())
        cpu = sum(float(re.search(rf"{k} time \(seconds\): ([\d.]+)", proc.stderr).group(1))
                  for k in ("User", "System"))
        rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
        doc = json.loads(out.read_text())
    result = {
        "n_train": len(train), "n_synthetic": a.n_synthetic, "cores": os.cpu_count(),
        "wall_s": round(h * 3600 + m * 60 + s, 2), "cpu_s": round(cpu, 2),
        "peak_rss_mb": round(rss_kb / 1024, 1), "load_avg_1min": round(os.getloadavg()[0], 2),
        "evaluate_seconds": doc["seconds"], "status": doc["status"],
        "metrics_ok": sum(x["status"] == "ok" for x in doc["metrics"]), "metrics": len(doc["metrics"]),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
