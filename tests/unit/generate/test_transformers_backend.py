"""The transformers backend's loading choices without loading a model: 4-bit NF4 on CPU
where the installed bitsandbytes can run it, the fall back to full precision where it cannot,
RoPE scaling from the registry (the backend on CPU with a real model: test_run.py,
test_batched.py; every paper model class in NF4: test_transformers_classes.py)."""

from __future__ import annotations

import sys


def test_nf4_falls_back_to_full_precision_when_bitsandbytes_is_missing(monkeypatch):
    """CUDA present (pretended) but bitsandbytes not importable: full precision + warning."""
    from synllm.generate.transformers_backend import choose_quantization

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # makes `import bitsandbytes` fail
    for cuda in (True, False):
        choice = choose_quantization("nf4", cuda=cuda)
        assert choice.config is None and choice.label == "none"
        assert any("bitsandbytes is unavailable" in w for w in choice.warnings)
    assert choose_quantization("gptq", cuda=True).label == "gptq"


def test_nf4_on_cpu_where_bitsandbytes_runs_it(monkeypatch):
    """bitsandbytes 0.50.2 (the pin) quantizes and multiplies NF4 on CPU: a real 4-bit
    config with float32 compute; CUDA keeps the paper's float16 compute."""
    import torch

    from synllm.generate import transformers_backend as tb

    monkeypatch.setattr(tb, "_BNB_CPU", [])
    assert tb.bnb_cpu_4bit_error() is None
    choice = tb.choose_quantization("nf4", cuda=False)
    assert choice.label == "nf4" and not choice.warnings
    config = choice.config
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4"
    assert config.bnb_4bit_use_double_quant and config.bnb_4bit_compute_dtype == torch.float32
    assert tb.choose_quantization("nf4", cuda=True).config.bnb_4bit_compute_dtype == torch.float16
    assert tb.choose_quantization("none", cuda=False).config is None


def test_nf4_falls_back_where_bitsandbytes_cannot_run_it_on_cpu(monkeypatch):
    """A bitsandbytes without a CPU 4-bit kernel (the probe raises, or multiplies wrong):
    full precision with a warning naming why."""
    import bitsandbytes as bnb

    from synllm.generate import transformers_backend as tb

    def no_kernel(*args, **kwargs):
        raise NotImplementedError("no 4-bit kernel for device cpu")

    monkeypatch.setattr(tb, "_BNB_CPU", [])
    monkeypatch.setattr(bnb.functional, "quantize_4bit", no_kernel)
    choice = tb.choose_quantization("nf4", cuda=False)
    assert choice.config is None and choice.label == "none"
    assert choice.warnings == [
        "nf4 requested without CUDA and the installed bitsandbytes cannot run 4-bit on CPU "
        "(NotImplementedError: no 4-bit kernel for device cpu): loading in full precision"
    ]
    monkeypatch.undo()
    monkeypatch.setattr(tb, "_BNB_CPU", [])
    monkeypatch.setattr(bnb, "matmul_4bit", lambda x, w, quant_state: 0 * x)
    assert "does not match" in tb.bnb_cpu_4bit_error()


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
