"""Peer generators through the Snakefile (dry run): one training job per dataset x peer with
the registry's resources, reused by the sweep's cells (the peers themselves:
tests/unit/generate/test_peers.py)."""

from __future__ import annotations

import yaml

from synllm.registry import load_registry


def test_peers_grid_trains_once_per_dataset_and_reuses_the_model(
    tmp_path, root, snakemake, job_counts, job_blocks
):
    """config/peers.yaml + a sample-size sweep, GPU budget: one train_peer job per dataset x
    peer with the registry's resources; the sweep's cells sample the base dataset's model."""
    cfg = yaml.safe_load((root / "config" / "peers.yaml").read_text())
    cfg["peers"] = {"budget": "gpu"}
    cfg["sweeps"] = {"sample_sizes": [40], "models": ["ctgan", "tvae"]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(
        tmp_path,
        "-n",
        "--configfile",
        str(tmp_path / "c.yaml"),
        "--cores",
        "2",
        "--resources",
        "gpu=1",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = job_counts(proc.stdout)
    reg = load_registry(root / "config" / "models.yaml")
    peers = [m for m in cfg["models"] if reg.get(m).backend == "peer"]
    assert counts["train_peer"] == 3 * len(peers)
    # base grid + the sweep's peer cells
    assert counts["generate"] == 3 * (4 + len(peers) + 3) + 3 * 2
    # Anonymeter on every cell; each environment (anonymeter, the environment peers') built once
    envs = {reg.get(m).env for m in peers} - {None}
    assert counts["build_env"] == 1 + len(envs) and counts["anonymeter"] == counts["evaluate"]
    assert "--stamp results/envs/tabularargn.json" in proc.stdout
    # GReaT's base model converted once from the embedded GGUF, used by its three trainings
    assert counts["base_lm"] == 1
    assert proc.stdout.count("--base-model results/base_lm/smollm2-135m") == 3
    for job in job_blocks(proc.stdout, "train_peer"):
        spec = reg.get(job["wildcards"]["model"])
        assert "~" not in job["wildcards"]["dataset"]
        assert int(job["resources"]["gpu"]) == 1 and int(job["resources"]["mem_mb"]) == spec.mem_mb
        assert job["threads"] == spec.threads
    assert "--budget gpu" in proc.stdout
    assert "--peer-model results/peers/stroke/ctgan/r1/model.pkl" in proc.stdout
    variant = [
        line
        for line in proc.stdout.splitlines()
        if "--model tvae" in line and "stroke~n40" in line and "synllm generate" in line
    ]
    assert variant and all(
        "--peer-model results/peers/stroke/tvae/r1/model.pkl" in v for v in variant
    )
