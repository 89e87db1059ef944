"""Anchored normalisation on a replayed grid through the real Snakefile: a model's anchored
scores do not depend on who else is in the run (the normalisation itself:
tests/unit/aggregate/test_uncertainty.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from synllm.aggregate.cli import aggregate

REPLAY_MODELS = ["llama-3-8b", "qwen2-7b-instruct", "zephyr-7b-beta"]


@pytest.mark.slow
def test_anchored_scores_ignore_who_else_is_in_the_run(
    tmp_path, shared_dir, root, cards_dir, run_snakemake
):
    """Replay subset (the authors' outputs, cirrhosis, two prompts) through the Snakefile with
    anchored normalisation; aggregating without one model leaves the others' anchored scores
    and intervals unchanged, while under ``run`` normalisation they move."""
    cfg = yaml.safe_load((root / "config" / "replay.yaml").read_text())
    cfg.update(
        datasets=["cirrhosis"],
        models=REPLAY_MODELS,
        prompts=["SEEDEx", "CLINRULE"],
        scores={"normalisation": "anchored"},
        evaluation={
            "distance_sample": 500,
            "mia_sample": 200,
            "bootstrap": 4,
            "utility_models": ["decision_tree"],
        },
    )
    cfg["generation"]["replay_dir"] = str(shared_dir / "fixtures" / "raw_llm_outputs")
    for key in ("data_dir", "cards_dir", "model_registry", "prompts_dir"):
        cfg[key] = str(root / cfg[key])
    proc = run_snakemake(tmp_path, cfg)
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = tmp_path / "results"
    tables = pd.read_csv(res / "tables" / "table_intervals.csv")
    assert {"holdout", "uniform", "train_copy"} <= set(tables["model"])
    every = sorted((res / "metrics").glob("cirrhosis/*/*/r1.json"))
    without = [p for p in every if p.parts[-3] != "zephyr-7b-beta"]
    assert len(every) == len(without) + 2

    def run(paths, mode):
        out = aggregate(
            paths,
            [],
            [],
            cards_dir,
            tmp_path / mode / str(len(paths)),
            tmp_path / "f",
            make_figures=False,
            normalisation=mode,
        )
        s = out["summary"].set_index(["model", "prompt"])
        return s[
            [
                f"{x}_{k}"
                for x in ("quality", "privacy", "harmonic")
                for k in ("mean", "low", "high")
            ]
        ]

    full, part = run(every, "anchored"), run(without, "anchored")
    common = part.index
    assert part.notna().all().all() or part["quality_mean"].notna().any()
    pd.testing.assert_frame_equal(full.loc[common], part.loc[common])
    assert (full.loc[common, "quality_mean"] < 1).any()
    # the run normalisation is not like this: the same removal moves other models' scores
    rfull, rpart = run(every, "run"), run(without, "run")
    assert not np.allclose(rfull.loc[common, "quality_mean"], rpart.loc[common, "quality_mean"])
