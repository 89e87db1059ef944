"""Anonymeter through the Snakefile: the environment is built (or reused) by rule build_env,
one anonymeter job per cell takes its stamp, and table_privacy shows the three risks beside
the privacy metrics while the Privacy score stays what it was (synllm.attacks)."""

from __future__ import annotations

import json

import pandas as pd
import yaml


def test_anonymeter_cells_reach_table_privacy_outside_the_privacy_score(
    tmp_path, baseline_grid, snakemake
):
    config = baseline_grid(tmp_path, seed=5)
    config["anonymeter"] = {"enabled": True, "n_attacks": 50}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    cfg = str(tmp_path / "config.yaml")
    proc = snakemake(tmp_path, "--configfile", cfg, "--cores", "2", timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = tmp_path / "results"
    stamp = json.loads((res / "envs" / "anonymeter.json").read_text())
    assert stamp["name"] == "anonymeter" and "results" not in stamp["path"]
    cells = sorted((res / "anonymeter").rglob("*.json"))
    assert len(cells) == len(config["models"])
    privacy = pd.read_csv(res / "tables" / "table_privacy.csv")
    cols = [f"anonymeter_{a}_risk" for a in ("singling_out", "linkability", "inference")]
    rows = privacy[privacy["kind"] != "reference"]
    assert rows[cols].notna().all().all() and ((rows[cols] >= 0) & (rows[cols] <= 1)).all().all()
    for f in cells:
        doc = json.loads(f.read_text())
        metrics = json.loads((res / "metrics" / f.relative_to(res / "anonymeter")).read_text())
        assert metrics["privacy"]["anonymeter"] == doc
        assert not any(m["name"].startswith("anonymeter") for m in metrics["metrics"])
    defs = pd.read_csv(res / "tables" / "score_definitions.csv")
    assert len(defs[defs["score"] == "privacy"]) and not defs["metric"].str.contains("anonym").any()
