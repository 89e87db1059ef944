"""Benchmark: evaluate one diabetes cell (80k-row train split, 1,000 synthetic rows) end to end
through ``synllm evaluate``, measuring wall time and peak RSS with ``/usr/bin/time -v``.

    PYTHONPATH=src python benchmarks/evaluate_cell.py [--n-synthetic 1000] [--settings JSON]

The train/holdout split (80/20, seed 42) and the synthetic table (1,000 holdout rows,
seeded) are written to a temporary directory first; only the ``synllm evaluate`` process is
timed. Defaults of the evaluator apply (distance_sample 5000 train rows for the
train->train / holdout->train baselines, synthetic->train distances against the full train,
mia_sample 2000, three utility models on the full train). Target: < 30 s and < 2 GB peak RSS
on 2 cores. Prints one JSON line with the numbers and the per-family seconds.

``--compare REV`` (e.g. f2ebdc5) times the same cell side by side, alternating, with the
code of git revision REV (``git archive``) and with this tree's code reading the real-data
fits of ``synllm real-fits`` (computed once, timed apart: it is paid once per dataset, not
per cell), both without bootstrap replicates (REV has none), and checks that every metric
both compute agrees to 1e-9; a third side times this tree's default (20 bootstrap
replicates). ``--out`` writes the JSON.
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


def timed(cmd: list[str], env: dict) -> dict:
    """Run ``cmd`` under ``/usr/bin/time -v``: wall and CPU seconds, peak RSS."""
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(proc.stdout + proc.stderr)
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", proc.stderr)
    h, m, s = (float(x) if x else 0.0 for x in wall.groups())
    cpu = sum(
        float(re.search(rf"{k} time \(seconds\): ([\d.]+)", proc.stderr).group(1))
        for k in ("User", "System")
    )
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return {
        "wall_s": round(h * 3600 + m * 60 + s, 2),
        "cpu_s": round(cpu, 2),
        "peak_rss_mb": round(rss_kb / 1024, 1),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-synthetic", type=int, default=1000)
    ap.add_argument("--settings", default="{}")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--compare", default=None, help="git revision to time side by side")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=None)
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
        card_path = ROOT / "resources" / "datasets" / "diabetes.yaml"
        common = [
            "--train",
            str(d / "train.parquet"),
            "--holdout",
            str(d / "holdout.parquet"),
            "--seed",
            str(a.seed),
        ]

        def evaluate(
            label: str, src: Path, extra: list[str], settings: str = a.settings
        ) -> tuple[dict, dict]:
            card = src.parent / "resources" / "datasets" / "diabetes.yaml"  # REV's own card
            out = d / "metrics" / label / "holdout-sample" / "none" / "r1.json"
            cmd = [
                sys.executable,
                "-m",
                "synllm",
                "evaluate",
                "--card",
                str(card),
                *common,
                "--synthetic",
                str(d / "r1.csv"),
                "--validation",
                str(d / "r1.report.json"),
                "--out",
                str(out),
                "--settings",
                settings,
                *extra,
            ]
            row = timed(cmd, dict(os.environ, PYTHONPATH=str(src)))
            return row, json.loads(out.read_text())

        if not a.compare:
            row, doc = evaluate("this", ROOT / "src", [])
            result = {
                "n_train": len(train),
                "n_synthetic": a.n_synthetic,
                "cores": os.cpu_count(),
                **row,
                "evaluate_seconds": doc["seconds"],
                "status": doc["status"],
                "metrics_ok": sum(x["status"] == "ok" for x in doc["metrics"]),
                "metrics": len(doc["metrics"]),
            }
            print(json.dumps(result))
            return 0

        old_src = d / "old"
        old_src.mkdir()
        tar = subprocess.run(
            ["git", "-C", str(ROOT), "archive", a.compare, "src", "resources/datasets"],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(old_src)], input=tar, check=True)
        fits = d / "real_fits.pkl"
        fit_row = timed(
            [sys.executable, "-m", "synllm", "real-fits", "--card", str(card_path), *common]
            + ["--settings", a.settings]
            + ["--out", str(fits)],
            dict(os.environ, PYTHONPATH=str(ROOT / "src")),
        )
        # the old code has no bootstrap replicates: the side by side compares the same metrics
        # (bootstrap 0); a third side times this code's default, replicates included
        point_only = json.dumps({"bootstrap": 0, **json.loads(a.settings)})
        rows, docs = [], {}
        for r in range(a.repeats):
            for label, src, extra, settings in (
                ("old", old_src / "src", [], a.settings),
                ("cached", ROOT / "src", ["--real-fits", str(fits)], point_only),
                ("cached_bootstrap", ROOT / "src", ["--real-fits", str(fits)], a.settings),
            ):
                row, docs[label] = evaluate(label, src, extra, settings)
                rows.append(
                    {"side": label, "repeat": r, **row, "evaluate_seconds": docs[label]["seconds"]}
                )
                print(json.dumps(rows[-1]), flush=True)
    old = {m["name"]: m["value"] for m in docs["old"]["metrics"]}
    new = {m["name"]: m["value"] for m in docs["cached"]["metrics"]}
    diff = max(
        (abs(old[k] - new[k]) for k in old if old[k] is not None and new.get(k) is not None),
        default=0.0,
    )
    same = all((old[k] is None) == (new.get(k) is None) for k in old)
    mean = {
        side: sum(x["wall_s"] for x in rows if x["side"] == side) / a.repeats
        for side in ("old", "cached", "cached_bootstrap")
    }
    result = {
        "n_train": len(train),
        "n_synthetic": a.n_synthetic,
        "cores": os.cpu_count(),
        "compare": a.compare,
        "repeats": a.repeats,
        "runs": rows,
        "real_fits_once": fit_row,
        "old_wall_s": round(mean["old"], 2),
        "cached_wall_s": round(mean["cached"], 2),
        "speedup": round(mean["old"] / mean["cached"], 2),
        "cached_bootstrap_wall_s": round(mean["cached_bootstrap"], 2),
        "bootstrap_replicates": docs["cached_bootstrap"]["bootstrap"]["B"],
        "metrics_compared": sum(k in new for k in old),
        "metrics_only_new": sorted(set(new) - set(old)),
        "metrics_same_status": same,
        "max_abs_metric_diff": diff,
        "utility_real_fits": docs["cached"]["utility"].get("real_fits"),
    }
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}))
    if a.out:
        Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
