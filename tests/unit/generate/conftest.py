"""Fixtures of the generation tests.

- ``prompt_file(dataset, style, batch_records)``: a real prompt JSON rendered with the project's
  own ``split`` / ``profile`` / ``prompt`` CLIs (split seed 1, holdout 0.2, reference 0.1; 5 seed
  rows), made once per session and arguments;
- ``cuda_oom``: an exception class named like torch's CUDA out-of-memory error, which the run
  loop answers by splitting the batch;
- ``stroke_split`` / ``cirrhosis_split``: (card, train, holdout, folder with train.parquet and
  holdout.parquet) of the real default split, once per test module (the peer tests);
- ``row_set(df, columns)``: a table's rows as a set of string tuples (which rows a generator
  was given, against train and holdout).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def prompt_file(tmp_path_factory, root, cards_dir):
    base = tmp_path_factory.mktemp("prompts")
    made: dict[tuple, Path] = {}

    def cli(*args) -> None:
        proc = subprocess.run(
            [sys.executable, "-m", "synllm", *map(str, args)],
            capture_output=True,
            text=True,
            cwd=root,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]

    def render(dataset: str, style: str, batch_records: int = 3) -> Path:
        key = (dataset, style, batch_records)
        if key in made:
            return made[key]
        out, card = base / dataset, cards_dir / f"{dataset}.yaml"
        if not (out / "profile.json").is_file():
            out.mkdir(exist_ok=True)
            cli(
                "split", "--card", card, "--data-dir", "resources/data", "--seed", "1",
                "--holdout-fraction", "0.2", "--reference-fraction", "0.1",
                "--reference", out / "reference.parquet", "--train", out / "train.parquet",
                "--holdout", out / "holdout.parquet",
            )  # fmt: skip
            cli(
                "profile", "--card", card, "--train", out / "train.parquet",
                "--out", out / "profile.json",
            )  # fmt: skip
        stem = out / f"{style}_b{batch_records}"
        cli(
            "prompt", "--card", card, "--profile", out / "profile.json",
            "--train", out / "train.parquet", "--style", style,
            "--batch-records", batch_records, "--n-seed-rows", 5, "--seed", 1,
            "--templates", "resources/prompts",
            "--out-json", f"{stem}.json", "--out-txt", f"{stem}.txt",
        )  # fmt: skip
        made[key] = Path(f"{stem}.json")
        return made[key]

    return render


@pytest.fixture(scope="session")
def cuda_oom():
    class OutOfMemoryError(RuntimeError):
        pass

    return OutOfMemoryError


def _split_files(split, tmp_path_factory, name: str):
    card, train, holdout = split(name)
    d = tmp_path_factory.mktemp(name)
    train.to_parquet(d / "train.parquet", index=False)
    holdout.to_parquet(d / "holdout.parquet", index=False)
    return card, train, holdout, d


@pytest.fixture(scope="module")
def stroke_split(split, tmp_path_factory):
    """Stroke (int, float, binary, categorical, missing bmi) as split files."""
    return _split_files(split, tmp_path_factory, "stroke")


@pytest.fixture(scope="module")
def cirrhosis_split(split, tmp_path_factory):
    """Cirrhosis (ints, floats, categoricals, many missing values) as split files."""
    return _split_files(split, tmp_path_factory, "cirrhosis")


@pytest.fixture
def row_set():
    def rows(df, columns) -> set:
        return set(map(tuple, df[list(columns)].astype("string").fillna("").to_numpy()))

    return rows
