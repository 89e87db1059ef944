"""profiles/vllm: the paper grid against an OpenAI-compatible server (vLLM).

The openai backend itself is tested against the local llama-cpp-python server in
tests/unit/generate/test_openai_backend.py and tests/workflow/test_openai_grid.py, the
profile's registry in tests/unit/test_registry.py; here the example profile's config is checked
and dry-run through the real Snakefile.
"""

from __future__ import annotations

import yaml

from synllm.config import check_config


def test_vllm_config_is_the_paper_grid_and_dry_runs(tmp_path, root, snakemake):
    vllm = root / "profiles" / "vllm"
    config = check_config(yaml.safe_load((vllm / "paper_vllm.yaml").read_text()))
    paper = yaml.safe_load((root / "config" / "paper.yaml").read_text())
    for key in ("datasets", "prompts", "n_records"):
        assert config[key] == paper[key], key
    for key in ("temperature", "top_p", "batch_size", "constrained"):
        assert config["generation"][key] == paper["generation"][key], key
    proc = snakemake(tmp_path, "-n", "--workflow-profile", str(vllm))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "generate_model" not in proc.stdout and "check_models" not in proc.stdout
    assert proc.stdout.count("rule generate:") == 12
