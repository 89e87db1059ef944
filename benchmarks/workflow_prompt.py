"""A rendered prompt for the benchmarks: the workflow's split -> profile -> prompt steps."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def render_prompt(work: Path, dataset: str, style: str, n: int) -> Path:
    """split -> profile -> prompt with the project's CLIs (as the workflow does, seed 42) into
    ``work/<dataset>``; returns the prompt JSON."""
    card = ROOT / "resources" / "datasets" / f"{dataset}.yaml"
    py = [sys.executable, "-m", "synllm"]
    w = work / dataset
    w.mkdir(parents=True, exist_ok=True)
    steps = [
        [
            "split",
            "--card",
            card,
            "--data-dir",
            ROOT / "resources/data",
            "--seed",
            "42",
            "--holdout-fraction",
            "0.2",
            "--reference-fraction",
            "0.1",
            "--reference",
            w / "reference.parquet",
            "--train",
            w / "train.parquet",
            "--holdout",
            w / "holdout.parquet",
        ],
        ["profile", "--card", card, "--train", w / "train.parquet", "--out", w / "profile.json"],
        [
            "prompt",
            "--card",
            card,
            "--profile",
            w / "profile.json",
            "--train",
            w / "train.parquet",
            "--style",
            style,
            "--batch-records",
            str(n),
            "--n-seed-rows",
            "5",
            "--seed",
            "42",
            "--templates",
            ROOT / "resources/prompts",
            "--out-json",
            w / "prompt.json",
            "--out-txt",
            w / "prompt.txt",
        ],
    ]
    for step in steps:
        subprocess.run(py + [str(s) for s in step], check=True, cwd=ROOT, capture_output=True)
    return w / "prompt.json"
