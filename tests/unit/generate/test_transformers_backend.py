"""The transformers backend's loading choices without loading a model: 4-bit quantisation
falls back to full precision, RoPE scaling from the registry (the backend on CPU with a real
model: test_run.py, test_batched.py)."""

from __future__ import annotations

import sys


def test_nf4_falls_back_to_full_precision_when_bitsandbytes_is_missing(monkeypatch):
    """CUDA present (pretended) but bitsandbytes not importable: full precision + warning."""
    from synllm.generate.transformers_backend import choose_quantization

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # makes `import bitsandbytes` fail
    choice = choose_quantization("nf4", cuda=True)
    assert choice.config is None and choice.label == "none"
    assert any("bitsandbytes is unavailable" in w for w in choice.warnings)
    assert choose_quantization("gptq", cuda=True).label == "gptq"


def test_quantized_load_failure_retries_in_full_precision():
    """A loader that rejects quantization_config (e.g. an incompatible architecture)."""
    from synllm.generate.transformers_backend import QuantChoice, load_with_fallback

    calls = []

    def loader(**kwargs):
        calls.append(sorted(kwargs))
        if "quantization_config" in kwargs:
            raise ValueError("this architecture does not support 4-bit loading")
        return "model"

    model, choice = load_with_fallback(loader, {"x": 1}, QuantChoice(object(), "nf4"))
    assert model == "model" and choice.label == "none"
    assert calls == [["quantization_config", "x"], ["x"]]
    assert "4-bit nf4 load failed (ValueError" in choice.warnings[-1]


def test_rope_scaling_from_the_registry_reaches_the_model_config(registry):
    from transformers import LlamaConfig

    from synllm.generate.transformers_backend import apply_rope_scaling

    spec = registry.get("llama-2-13b")
    config = LlamaConfig(rope_theta=12345.0)
    apply_rope_scaling(config, spec.rope_scaling)
    assert config.rope_scaling["rope_type"] == "dynamic" and config.rope_scaling["factor"] == 2.0
    # the checkpoint's rope_theta stays (transformers 5's rope_scaling setter dropped it)
    assert config.rope_parameters["rope_theta"] == 12345.0
