"""End to end: the real Snakefile on a tiny config, embedded model + baselines.

Runs generate -> validate -> evaluate -> aggregate for real (no stubs) and checks that every
table and figure of the aggregate step exists and that cells show up in Table IV.
"""

import json

import pandas as pd
import pytest

TINY = {
    "seed": 7,
    "datasets": ["cirrhosis", "stroke"],
    "models": ["smollm2-135m", "holdout", "marginals"],
    "prompts": ["SEEDEx", "CLINRULE"],
    "repeats": 1,
    "n_records": {"cirrhosis": 4, "stroke": 6},
    "generation": {"batch_size": 6, "max_attempts": 2},
    # 3 bootstrap replicates give the baselines' intervals as well as the default 20 would
    "evaluation": {"distance_sample": 500, "mia_sample": 200, "bootstrap": 3},
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, run_snakemake):
    work = tmp_path_factory.mktemp("e2e")
    proc = run_snakemake(work, TINY)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return work


@pytest.mark.slow
def test_all_tables_and_figures_exist(tiny_run):
    res = tiny_run / "results"
    for name in (
        "table4_quality_privacy",
        "table5_ml_utility",
        "table6_efficiency",
        "table_privacy",
        "table_fairness",
        "table_intervals",
        "table_ranking",
    ):
        for ext in ("csv", "md", "tex"):
            f = res / "tables" / f"{name}.{ext}"
            assert f.is_file() and f.stat().st_size > 0, f
    for d in TINY["datasets"]:
        assert (res / "figures" / f"harmonic_heatmap_{d}.png").stat().st_size > 1000
        for which in ("best", "worst"):
            assert (res / "figures" / f"distributions_{d}_{which}.png").is_file()
    assert (res / "figures" / "quality_vs_privacy.png").is_file()
    assert (res / "figures" / "efficiency.png").is_file()
    assert (res / "figures" / "critical_difference.png").is_file()
    # one LLM: the ranking says why it has no test; the baselines get bootstrap intervals
    assert "Friedman test not run" in (res / "tables" / "table_ranking.md").read_text()
    iv = pd.read_csv(res / "tables" / "table_intervals.csv")
    assert (iv.loc[iv["model"] == "holdout", "quality_interval"] == "bootstrap").all()


@pytest.mark.slow
def test_every_cell_has_raw_meta_validation_and_metrics(tiny_run):
    res = tiny_run / "results"
    cells = [(d, "smollm2-135m", p) for d in TINY["datasets"] for p in TINY["prompts"]]
    cells += [(d, m, "none") for d in TINY["datasets"] for m in ("holdout", "marginals")]
    for d, m, p in cells:
        meta = json.loads((res / f"raw/{d}/{m}/{p}/r1.meta.json").read_text())
        assert meta["model"] == m
        report = json.loads((res / f"validation/{d}/{m}/{p}/r1.json").read_text())
        synth = pd.read_csv(res / f"synthetic/{d}/{m}/{p}/r1.csv")
        assert report["valid"] == len(synth)
        metrics = json.loads((res / f"metrics/{d}/{m}/{p}/r1.json").read_text())
        assert metrics["status"] in ("ok", "failed")
        assert (res / f"fairness/{d}/{m}/{p}/r1.csv").is_file()
    # the embedded model really generated text with the constrained decoder
    raw = (res / "raw/stroke/smollm2-135m/SEEDEx/r1.txt").read_text()
    assert raw.count("{") >= TINY["n_records"]["stroke"]


@pytest.mark.slow
def test_rerun_is_a_no_op(tiny_run, run_snakemake):
    proc = run_snakemake(tiny_run, TINY, "-n")
    assert proc.returncode == 0
    assert "Nothing to be done" in proc.stdout + proc.stderr
