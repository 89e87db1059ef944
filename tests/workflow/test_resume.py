"""Resume after an interruption, and the workstation GPU limit, on the real workflow.

A tiny grid (one dataset, two baselines: no LLM, seconds per step) runs
1. uninterrupted in one directory (the reference), with its generate jobs tagged as GPU jobs
   (`--set-resources generate:gpu=1`, as the registry tags GPU models) under
   `--resources gpu=1`: the job log shows one generate job at a time, CPU jobs beside it;
2. in a second directory, interrupted with SIGINT as soon as the first cell's metrics are done,
   then rerun: finished cells are not recomputed (same mtimes, no jobs for them in the rerun)
   and the tables equal the reference's (timing columns aside).
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

MODELS = ("holdout", "marginals")  # the baseline_grid fixture's (tests/workflow/conftest.py)
CELLS = [f"cirrhosis/{m}/none/r1" for m in MODELS]
CELL_FILES = (
    "raw/{c}.txt",
    "raw/{c}.meta.json",
    "synthetic/{c}.csv",
    "validation/{c}.json",
    "metrics/{c}.json",
)
# table columns that hold wall-clock timings (differ between any two runs)
TIMING_COLUMNS = {
    "mean_duration_s",
    "norm_speed",
    "efficiency",
    "rank",
    "wall_seconds",
    "load_seconds",
    "tokens_per_second",
    "peak_rss_mb",
}


@pytest.fixture(scope="module")
def setup_dir(baseline_grid, root):
    """``setup_dir(work)``: the tiny grid written into ``work``; the snakemake command for it."""

    def setup(work: Path) -> list[str]:
        baseline_grid(work, seed=5)
        return [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(root / "Snakefile"),
            "--directory",
            str(work),
            "--configfile",
            str(work / "config.yaml"),
        ]

    return setup


def jobs_run(log: str) -> list[tuple[str, dict]]:
    """(rule, wildcards) of every job a snakemake log started."""
    out = []
    for m in re.finditer(r"^(?:local)?rule (\w+):\n((?:    .*\n)+)", log, re.M):
        wc = re.search(r"^    wildcards: (.*)$", m.group(2), re.M)
        out.append(
            (m.group(1), dict(kv.split("=", 1) for kv in wc.group(1).split(", ")) if wc else {})
        )
    return out


def finished_cells(log: str) -> list[str]:
    """Cells whose evaluate job the snakemake log reports as finished (registered complete)."""
    done = set(re.findall(r"^Finished jobid: (\d+) ", log, re.M))
    out = []
    for m in re.finditer(r"^(?:local)?rule evaluate:\n((?:    .*\n)+)", log, re.M):
        jobid = re.search(r"^    jobid: (\d+)$", m.group(1), re.M).group(1)
        wc = dict(
            kv.split("=", 1)
            for kv in re.search(r"^    wildcards: (.*)$", m.group(1), re.M).group(1).split(", ")
        )
        if jobid in done:
            out.append(f"{wc['dataset']}/{wc['model']}/{wc['prompt']}/r{wc['rep']}")
    return out


def running_sets(log: str) -> list[list[str]]:
    """The rules of the running jobs after each start/finish event of a snakemake log."""
    running: dict[str, str] = {}
    states = []
    for m in re.finditer(
        r"^(?:local)?rule (\w+):\n(?:    .*\n)*?    jobid: (\d+)$|^Finished jobid: (\d+) ",
        log,
        re.M,
    ):
        if m.group(1):
            running[m.group(2)] = m.group(1)
        else:
            running.pop(m.group(3), None)
        states.append(list(running.values()))
    return states


def read_table(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path)
    return df.drop(columns=[c for c in df.columns if c in TIMING_COLUMNS])


def metrics_without_timing(path: Path) -> dict:
    data = json.loads(path.read_text())
    data.pop("seconds", None)
    if isinstance(data.get("bootstrap"), dict):  # the replicates' wall time
        data["bootstrap"].pop("seconds", None)
    return data


@pytest.fixture(scope="module")
def reference(tmp_path_factory, setup_dir):
    work = tmp_path_factory.mktemp("reference")
    cmd = setup_dir(work) + [
        "--cores",
        "2",
        "--resources",
        "gpu=1",
        "--set-resources",
        "generate:gpu=1",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=work)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return work, proc.stdout + proc.stderr


def test_gpu_jobs_run_one_at_a_time_beside_cpu_jobs(reference):
    _, log = reference
    concurrent = running_sets(log)
    assert concurrent, log[-3000:]
    assert max(s.count("generate") for s in concurrent) == 1, concurrent
    # after the first GPU job, its validate (CPU) starts together with the second GPU job
    assert any("generate" in s and len(s) > 1 for s in concurrent), concurrent
    gens = [wc for rule, wc in jobs_run(log) if rule == "generate"]
    assert len(gens) == 2
    assert "gpu=1" in log


def test_interrupted_run_resumes_without_recomputing(reference, tmp_path, setup_dir):
    ref_dir, _ = reference
    cmd = setup_dir(tmp_path)
    res = tmp_path / "results"
    first_log = tmp_path / "first.log"
    with first_log.open("w") as fh:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            cmd + ["--cores", "1"], stdout=fh, stderr=subprocess.STDOUT, cwd=tmp_path, env=env
        )
        deadline = time.time() + 900
        while time.time() < deadline and proc.poll() is None:
            # the first evaluate job registered as finished (log unbuffered: PYTHONUNBUFFERED)
            if "(Rule: evaluate)" in first_log.read_text():
                break
            time.sleep(0.05)
        assert proc.poll() is None, (
            "the run ended before it could be interrupted:\n" + first_log.read_text()[-3000:]
        )
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=300)
    assert proc.returncode != 0
    assert not (res / "tables" / "table4_quality_privacy.csv").exists()

    # a metrics file written by a job that SIGINT caught before Snakemake registered it is
    # incomplete and rightly redone: "finished" is what the log reports as finished
    finished = finished_cells(first_log.read_text())
    assert all((res / f"metrics/{c}.json").is_file() for c in finished)
    # Snakemake lets a job that is running at SIGINT finish, so on a fast machine every cell
    # may be done; the tables (aggregate) are not, and the rerun must not redo any cell
    assert len(finished) >= 1, finished
    mtimes = {
        f: (res / f).stat().st_mtime_ns
        for c in finished
        for f in (p.format(c=c) for p in CELL_FILES)
    }

    rerun = subprocess.run(
        cmd + ["--cores", "2"], capture_output=True, text=True, timeout=900, cwd=tmp_path
    )
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-5000:]
    # finished cells: no job in the rerun, files untouched
    for rule, wc in jobs_run(rerun.stdout + rerun.stderr):
        if rule in ("generate", "validate", "evaluate"):
            assert f"cirrhosis/{wc['model']}/none/r1" not in finished, (rule, wc)
    assert {f: (res / f).stat().st_mtime_ns for f in mtimes} == mtimes
    # the rerun finished the rest
    assert all((res / f"metrics/{c}.json").is_file() for c in CELLS)

    # same results as the uninterrupted run (timings aside)
    for c in CELLS:
        assert metrics_without_timing(res / f"metrics/{c}.json") == metrics_without_timing(
            ref_dir / "results" / f"metrics/{c}.json"
        ), c
        assert (res / f"synthetic/{c}.csv").read_bytes() == (
            ref_dir / "results" / f"synthetic/{c}.csv"
        ).read_bytes()
    for name in ("table4_quality_privacy", "table5_ml_utility", "table6_efficiency"):
        ours, ref = (
            read_table(res / "tables" / f"{name}.csv"),
            read_table(ref_dir / "results" / "tables" / f"{name}.csv"),
        )
        pd.testing.assert_frame_equal(ours, ref, obj=name)
    for name in ("table4_quality_privacy", "table5_ml_utility"):
        assert (res / "tables" / f"{name}.csv").read_bytes() == (
            ref_dir / "results" / "tables" / f"{name}.csv"
        ).read_bytes()
