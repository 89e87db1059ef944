"""The SLURM profile on a real scheduler: a tiny grid through `profiles/slurm` to the tables.

Needs a running single-node SLURM (scripts/slurm/install_slurm.sh, then
scripts/slurm/start_local_slurm.sh; CI runs both before pytest). When the daemons are not
up, the test starts them itself if it runs as root; otherwise it is skipped with the reason.

The grid is one dataset and two baselines (no LLM). Their generate jobs are tagged as GPU jobs
(`--set-resources generate:gpu=1`, as a GPU model's are by the registry), so the run also
shows the GPU path: the profile's partition file sends them to the `gpu` partition with
`--gpus=1`, and with one (fake) GPU on the node SLURM runs them one after the other while
CPU jobs go to the `cpu` partition. The evidence (sacct, or the job completion log when the
cluster has no accounting database) is written to `<tmp>/slurm_evidence.txt` and printed.
"""

import os
import re
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm


def _run(cmd: list[str], timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _node_ready() -> bool:
    try:
        out = _run(["sinfo", "-h", "-o", "%T"], timeout=20)
    except (subprocess.TimeoutExpired, FileNotFoundError):
        return False
    return out.returncode == 0 and bool(re.search(r"^(idle|mixed|allocated)", out.stdout, re.M))


@pytest.fixture(scope="module")
def slurm_cluster(root):
    """A SLURM cluster that accepts jobs, or a skip naming what is missing."""
    missing = [b for b in ("sbatch", "squeue", "sinfo", "scontrol") if shutil.which(b) is None]
    if missing:
        pytest.skip(
            f"SLURM client tools missing ({', '.join(missing)}): run scripts/slurm/install_slurm.sh"
        )
    if not _node_ready():
        if os.geteuid() != 0:
            pytest.skip(
                "SLURM is not running and starting it needs root: run scripts/slurm/start_local_slurm.sh"
            )
        proc = _run(["bash", str(root / "scripts" / "slurm" / "start_local_slurm.sh")], timeout=300)
        if proc.returncode != 0 or not _node_ready():
            reason = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            pytest.skip(f"local SLURM could not start: {reason}")
    partitions = _run(["sinfo", "-h", "-o", "%R %G"]).stdout.split("\n")
    names = {line.split()[0] for line in partitions if line.strip()}
    if not {"cpu", "gpu"} <= names or "gpu" not in " ".join(partitions):
        pytest.skip(
            f"SLURM partitions {sorted(names)} are not the local test cluster's (cpu, gpu with gres gpu)"
        )
    return names


def _accounting(job_ids: list[str]) -> list[dict]:
    """One dict per SLURM job (id, partition, state, tres, start, end): sacct when the cluster
    keeps accounting, else the job completion log (JobCompType=jobcomp/filetxt)."""
    fields = ["JobIDRaw", "Partition", "State", "AllocTRES", "Submit", "Start", "End"]
    out = _run(["sacct", "-X", "-P", "-n", "-j", ",".join(job_ids), f"--format={','.join(fields)}"])
    rows = []
    if out.returncode == 0 and out.stdout.strip():
        for line in out.stdout.strip().splitlines():
            jid, part, state, tres, submit, start, end = line.split("|")
            rows.append(
                {
                    "id": jid,
                    "partition": part,
                    "state": state.split()[0],
                    "tres": tres,
                    "submit": submit,
                    "start": start,
                    "end": end,
                    "source": "sacct",
                }
            )
        if {r["id"] for r in rows} == set(job_ids):
            return rows
    conf = _run(["scontrol", "show", "config"]).stdout
    loc = re.search(r"^JobCompLoc\s*=\s*(\S+)", conf, re.M)
    assert loc and Path(loc.group(1)).is_file(), "no sacct and no job completion log to check"
    rows = []
    for line in Path(loc.group(1)).read_text().splitlines():
        kv = dict(item.split("=", 1) for item in line.split() if "=" in item)
        if kv.get("JobId") in job_ids:
            rows.append(
                {
                    "id": kv["JobId"],
                    "partition": kv["Partition"],
                    "state": kv["JobState"],
                    "tres": kv.get("Tres", ""),
                    "submit": kv["SubmitTime"],
                    "start": kv["StartTime"],
                    "end": kv["EndTime"],
                    "source": "jobcomp",
                }
            )
    return rows


def test_tiny_grid_runs_to_the_tables_through_the_slurm_profile(
    slurm_cluster, tmp_path, baseline_grid, root
):
    tiny = baseline_grid(tmp_path, seed=11)
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(root / "Snakefile"),
        "--workflow-profile",
        str(root / "profiles" / "slurm"),
        "--directory",
        str(tmp_path),
        "--configfile",
        str(tmp_path / "config.yaml"),
        "--set-resources",
        "generate:gpu=1",
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--latency-wait",
        "10",
    ]
    if _run(["sacct", "-n", "-X", "-S", "now"]).returncode != 0:
        # no accounting database (jobcomp/filetxt): the plugin must ask squeue for job states
        # (the local cluster keeps finished jobs visible for MinJobAge=600 s)
        cmd += ["--slurm-status-command", "squeue"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, cwd=tmp_path)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]

    res = tmp_path / "results"
    for name in ("table4_quality_privacy", "table5_ml_utility", "table6_efficiency"):
        assert (res / "tables" / f"{name}.csv").stat().st_size > 0
    for model in tiny["models"]:
        assert (res / f"metrics/cirrhosis/{model}/none/r1.json").is_file()

    # every rule ran as a SLURM job: "Job 3 has been submitted with SLURM jobid 7 (log: .../rule_<rule>/...)"
    submitted = re.findall(r"submitted with SLURM jobid (\d+) \(log: (\S+)\)", log)
    rule_of = {jid: re.search(r"rule_([a-z_]+)", path).group(1) for jid, path in submitted}
    assert sorted(rule_of.values()) == sorted(
        [
            "split",
            "real_fits",
            "generate",
            "generate",
            "validate",
            "validate",
            "evaluate",
            "evaluate",
            "aggregate",
        ]
    ), rule_of
    for _jid, path in submitted:
        assert Path(path).is_file(), (
            path
        )  # profile keeps the SLURM logs (slurm-keep-successful-logs)

    rows = _accounting(list(rule_of))
    evidence = ["source rule jobid partition state tres submit start end"] + [
        f"{r['source']} {rule_of[r['id']]} {r['id']} {r['partition']} {r['state']} {r['tres']} "
        f"{r['submit']} {r['start']} {r['end']}"
        for r in sorted(rows, key=lambda r: int(r["id"]))
    ]
    (tmp_path / "slurm_evidence.txt").write_text("\n".join(evidence) + "\n")
    print("\n".join(evidence))
    assert {r["id"] for r in rows} == set(rule_of)
    assert all(r["state"] == "COMPLETED" for r in rows), evidence
    gpu_jobs = [r for r in rows if rule_of[r["id"]] == "generate"]
    cpu_jobs = [r for r in rows if rule_of[r["id"]] != "generate"]
    assert all(r["partition"] == "gpu" for r in gpu_jobs), evidence
    assert all(r["partition"] == "cpu" and "gres/gpu" not in r["tres"] for r in cpu_jobs), evidence
    if all(r["source"] == "sacct" for r in rows):  # the job completion log has no GRES
        assert all("gres/gpu=1" in r["tres"] for r in gpu_jobs), evidence
    # one GPU on the node: both GPU jobs were queued together, the second waited for the first
    first, second = sorted(gpu_jobs, key=lambda r: r["start"])
    t = {k: datetime.fromisoformat(second[k]) for k in ("submit", "start")}
    assert t["submit"] < datetime.fromisoformat(first["end"]) <= t["start"], evidence
