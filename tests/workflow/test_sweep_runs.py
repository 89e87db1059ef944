"""Sweeps through the real Snakefile: the shipped sweep configs (dry run) and a tiny sweep of
both axes to its plots and tables (names, cards and config: tests/unit/sweeps/test_sweeps.py)."""

import json
from pathlib import Path

import pandas as pd
import pytest

from synllm.cards import load_card


@pytest.mark.parametrize("name", ["sweep_features", "sweep_samples"])
def test_shipped_sweep_configs_dry_run(tmp_path, name, root, snakemake):
    proc = snakemake(
        tmp_path, "--configfile", str(root / "config" / f"{name}.yaml"), "-n", "--cores", "1"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "rule sweep_card:" in out and "rule sweep_plots:" in out
    assert "smollm2-135m" in out  # the embedded model is part of the sweep
    axis = "features" if name == "sweep_features" else "sample_size"
    assert f"results/figures/sweep_{axis}_cirrhosis.png" in out
    # Tables IV-VI stay base-only: the aggregate job lists no variant cell
    agg = out.split("rule aggregate:", 1)[1].split("\n\n", 1)[0]
    assert "metrics/cirrhosis/" in agg and "~" not in agg


# --------------------------------------------------------------------------- end to end
TINY = {
    "seed": 7,
    "datasets": ["stroke"],
    "models": ["marginals"],
    "prompts": ["SEEDEx"],
    "n_records": 30,
    "evaluation": {
        "distance_sample": 500,
        "mia_sample": 200,
        "utility_models": ["decision_tree"],
        "bootstrap": 0,  # the sweep tables and plots hold point values only
    },
    "sweeps": {"features": [3, "all"], "sample_sizes": [30, 60]},
}


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory, run_snakemake):
    work = tmp_path_factory.mktemp("sweep")
    # only the sweep outputs: the aggregate tables are covered by test_e2e.py
    targets = ["results/tables/sweep_features.csv", "results/tables/sweep_sample_size.csv"]
    proc = run_snakemake(work, TINY, *targets, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return work / "results"


@pytest.mark.slow
def test_tiny_sweep_writes_plots_and_tables(tiny_sweep):
    res = tiny_sweep
    for axis in ("features", "sample_size"):
        assert (res / "figures" / f"sweep_{axis}_stroke.png").stat().st_size > 10_000
    feats = pd.read_csv(res / "tables" / "sweep_features.csv")
    assert list(feats["variant"]) == ["stroke~f3", "stroke"] and list(feats["label"]) == [
        "3",
        "all",
    ]
    assert list(feats["value"]) == [3, 10]
    assert feats["features"].iloc[0].split() == list(
        load_card(res / "cards" / "stroke~f3.yaml").columns
    )
    assert feats[["quality", "harmonic", "tstr_auc", "tstr_f1"]].notna().all().all()
    sizes = pd.read_csv(res / "tables" / "sweep_sample_size.csv")
    assert list(sizes["value"]) == [30, 60] and list(sizes["variant"]) == ["stroke", "stroke~n60"]
    # the ~n60 cell really asked for 60 records, the variant split keeps the base rows
    meta = json.loads((res / "raw/stroke~n60/marginals/none/r1.meta.json").read_text())
    assert meta["n_records_requested"] == 60
    base = pd.read_parquet(res / "data/stroke/train.parquet")
    f3 = pd.read_parquet(res / "data/stroke~f3/train.parquet")
    pd.testing.assert_frame_equal(f3, base[list(f3.columns)])
    assert "stroke" in f3.columns and len(f3.columns) == 4
    listed = (res / "tables" / "sweep_sample_size.inputs.txt").read_text().split()
    assert sorted(Path(p).parts[-4] for p in listed) == ["stroke", "stroke~n60"]
