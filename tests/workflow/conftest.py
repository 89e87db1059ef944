"""The workflow tier: tests that run the repo's real Snakefile through the snakemake CLI
(dry runs included), each in a temporary ``--directory`` so nothing is written into the repo.

Every test collected here is marked ``slow``: the folder is the slow tier
(``scripts/test.sh slow``). Helpers are fixtures, not imports:

- ``snakemake(workdir, *args)``: the CLI on the Snakefile in ``workdir``;
- ``run_snakemake(workdir, config, *extra)``: write ``config`` to ``workdir/config.yaml`` and run
  it with 2 cores;
- ``job_counts(stdout)`` / ``job_blocks(stdout, rule)``: the job table / per-job facts of a dry
  run;
- ``baseline_grid(workdir, seed)``: a tiny grid with no LLM (cirrhosis, two baselines and their
  own registry) written into ``workdir``, for the resume and SLURM tests.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def snakemake(root):
    """``snakemake(workdir, *args, timeout=300, cwd=root)``: the real snakemake CLI on the repo's
    Snakefile with ``--directory workdir``."""

    def run(workdir: Path, *args: str, timeout: int = 300, cwd: Path | None = None):
        return subprocess.run(
            [sys.executable, "-m", "snakemake", "-s", str(root / "Snakefile")]
            + ["--directory", str(workdir), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd or root,
        )

    return run


@pytest.fixture(scope="session")
def run_snakemake(snakemake):
    """``run_snakemake(workdir, config, *extra)``: ``config`` written to workdir/config.yaml and
    run for real with 2 cores (``extra``: targets or more options, e.g. ``-n``)."""

    def run(workdir: Path, config: dict, *extra: str, timeout: int = 1500):
        cfg = workdir / "config.yaml"
        cfg.write_text(yaml.safe_dump(config))
        return snakemake(workdir, "--configfile", str(cfg), "--cores", "2", *extra, timeout=timeout)

    return run


def _job_counts(stdout: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: {rule: count}."""
    block = stdout.split("Job stats:", 1)[1]
    counts = {}
    for line in block.splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


def _job_blocks(stdout: str, rule: str) -> list[dict]:
    """Per-job facts of a dry run's `rule <rule>:` blocks: wildcards, threads, resources."""
    jobs = []
    for block in re.split(r"\n(?=\[[^\]]+\]\nrule )|\n(?=rule )", stdout):
        lines = block.strip().splitlines()
        head = [i for i, line in enumerate(lines) if line == f"rule {rule}:"]
        if not head:
            continue
        job = {"threads": 1, "wildcards": {}, "resources": {}}
        for line in lines[head[0] + 1 :]:
            key, _, value = line.strip().partition(": ")
            if key == "wildcards":
                job["wildcards"] = dict(kv.split("=", 1) for kv in value.split(", "))
            elif key == "threads":
                job["threads"] = int(value)
            elif key == "resources":
                job["resources"] = dict(kv.split("=", 1) for kv in value.split(", "))
        jobs.append(job)
    return jobs


@pytest.fixture(scope="session")
def job_counts():
    return _job_counts


@pytest.fixture(scope="session")
def job_blocks():
    return _job_blocks


BASELINES = {
    kind: {"backend": "baseline", "kind": kind, "mem_mb": 1000, "runtime": 10, "threads": 1}
    for kind in ("holdout", "marginals")
}


@pytest.fixture(scope="session")
def baseline_grid():
    """``baseline_grid(workdir, seed)`` -> the grid's config (dict), also written with its
    registry (models.yaml: the two baselines, 1 thread, 1 GB, 10 min) into ``workdir``: one
    dataset (cirrhosis), no LLM, seconds per step."""

    def write(workdir: Path, seed: int) -> dict:
        config = {
            "seed": seed,
            "datasets": ["cirrhosis"],
            "models": list(BASELINES),
            "prompts": ["SEEDEx"],
            "n_records": 25,
            "model_registry": "models.yaml",
            "evaluation": {
                "distance_sample": 200,
                "mia_sample": 100,
                "utility_models": ["decision_tree"],
                "bootstrap": 2,  # a bootstrap block in every metrics file, at a tenth of B = 20
            },
        }
        (workdir / "models.yaml").write_text(yaml.safe_dump({"models": BASELINES}))
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))
        return config

    return write
