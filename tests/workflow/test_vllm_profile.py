"""profiles/vllm: the paper grid against an OpenAI-compatible server (vLLM).

The openai backend itself is tested against the local llama-cpp-python server in
tests/test_openai_backend.py; here the example profile's config and registry are checked and
dry-run through the real Snakefile.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from synllm.config import check_config
from synllm.registry import load_registry

ROOT = Path(__file__).resolve().parents[1]
VLLM = ROOT / "profiles" / "vllm"


def test_vllm_registry_serves_the_papers_weights():
    vllm = load_registry(VLLM / "models.yaml")
    paper = load_registry(ROOT / "config" / "models.yaml")
    by_name = {
        paper.get(s).paper_name: paper.get(s) for s in paper.slugs() if paper.get(s).paper_name
    }
    for slug in vllm.slugs():
        spec = vllm.get(slug)
        assert spec.backend == "openai" and spec.base_url_env == "SYNLLM_OPENAI_BASE_URL"
        assert spec.api_model == by_name[spec.paper_name].hf_id == spec.hf_id


def test_vllm_config_is_the_paper_grid_and_dry_runs(tmp_path):
    config = check_config(yaml.safe_load((VLLM / "paper_vllm.yaml").read_text()))
    paper = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    for key in ("datasets", "prompts", "n_records"):
        assert config[key] == paper[key], key
    for key in ("temperature", "top_p", "batch_size", "constrained"):
        assert config["generation"][key] == paper["generation"][key], key
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(ROOT / "Snakefile"),
            "--directory",
            str(tmp_path),
            "-n",
            "--workflow-profile",
            str(VLLM),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "generate_model" not in proc.stdout and "check_models" not in proc.stdout
    assert proc.stdout.count("rule generate:") == 12
