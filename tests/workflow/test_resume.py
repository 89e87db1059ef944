"""Resume after an interruption, and the workstation GPU limit, on the real workflow.

A tiny grid (one dataset, two baselines: no LLM, seconds per step) runs
1. uninterrupted in one directory (the reference), with its generate jobs tagged as GPU jobs
   (`--set-resources generate:gpu=1`, as the registry tags GPU models) under
   `--resources gpu=1`: the job log shows one generate job at a time, CPU jobs beside it;
2. in a second directory, interrupted at a known point, then rerun. The run's Python
   processes import a ``sitecustomize`` written by the test (PYTHONPATH; nothing in the
   package knows of it) that holds the marginals cell's evaluate job: it marks that it
   started and waits, never running the real step. Once that job is held and the holdout cell's evaluate job is
   registered finished (nothing else can run: the tables need both cells), the test sends
   SIGINT to the run's process group, as Ctrl-C in a terminal does; the held job dies with it.
   The rerun (no wrapper) must redo that evaluate job and nothing else of either cell (same
   mtimes), and the tables equal the reference's (timing columns aside). No step of it
   depends on how fast the machine is.
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
DONE, HELD = CELLS  # the cell finished before the interruption / the one it interrupts
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


def hold_evaluate(site_dir: Path, cell: str, started: Path) -> dict:
    """An environment whose Python processes first import a ``sitecustomize`` (PYTHONPATH)
    that holds ``cell``'s ``synllm evaluate`` job: touches ``started``, then waits (it gives up
    after 10 minutes with an error, never running the real step); every other process runs
    as usual."""
    site_dir.mkdir()
    (site_dir / "sitecustomize.py").write_text(
        "import sys, time\n"
        f"if sys.argv[1:2] == ['evaluate'] and any(a.endswith({f'/metrics/{cell}.json'!r})"
        " for a in sys.argv):\n"
        f"    open({str(started)!r}, 'w').close()\n"
        "    for _ in range(6000):\n"
        "        time.sleep(0.1)\n"
        "    sys.exit('held evaluate job never interrupted')\n"
    )
    path = os.pathsep.join(filter(None, [str(site_dir), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def test_interrupted_run_resumes_without_recomputing(reference, tmp_path, setup_dir):
    ref_dir, _ = reference
    work = tmp_path / "work"
    work.mkdir()
    cmd = setup_dir(work)
    res = work / "results"
    first_log = tmp_path / "first.log"
    started = tmp_path / "held.started"
    env = {**hold_evaluate(tmp_path / "site", HELD, started), "PYTHONUNBUFFERED": "1"}
    with first_log.open("w") as fh:
        # own session: SIGINT goes to Snakemake and its jobs, as Ctrl-C in a terminal does;
        # its default action restored (a shell ignores SIGINT in the jobs it starts in the
        # background, and the jobs would inherit that)
        proc = subprocess.Popen(
            cmd + ["--cores", "2"],
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=work,
            env=env,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            deadline = time.time() + 600
            while time.time() < deadline and proc.poll() is None:
                if started.exists() and finished_cells(first_log.read_text()) == [DONE]:
                    break
                time.sleep(0.1)
            assert proc.poll() is None, (
                "the run ended before it could be interrupted:\n" + first_log.read_text()[-3000:]
            )
            assert started.exists() and finished_cells(first_log.read_text()) == [DONE], (
                first_log.read_text()[-3000:]
            )
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    log = first_log.read_text()
    assert proc.returncode != 0, log[-3000:]
    assert not (res / "tables" / "table4_quality_privacy.csv").exists()
    # the finished cell is complete; the held one stopped before writing its metrics
    assert finished_cells(log) == [DONE]
    assert all((res / p.format(c=DONE)).is_file() for p in CELL_FILES)
    assert not (res / f"metrics/{HELD}.json").exists()
    # the held cell's earlier steps were done (its generate and validate jobs finished)
    kept = CELL_FILES[:-1]
    assert all((res / p.format(c=HELD)).is_file() for p in kept)
    mtimes = {
        f: (res / f).stat().st_mtime_ns
        for f in [p.format(c=DONE) for p in CELL_FILES] + [p.format(c=HELD) for p in kept]
    }

    rerun = subprocess.run(
        cmd + ["--cores", "2"], capture_output=True, text=True, timeout=900, cwd=work
    )
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-5000:]
    # the interrupted evaluate job is the only cell job of the rerun; finished files untouched
    cell_jobs = [
        (rule, f"{wc['dataset']}/{wc['model']}/{wc['prompt']}/r{wc['rep']}")
        for rule, wc in jobs_run(rerun.stdout + rerun.stderr)
        if rule in ("generate", "validate", "evaluate")
    ]
    assert cell_jobs == [("evaluate", HELD)], cell_jobs
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
