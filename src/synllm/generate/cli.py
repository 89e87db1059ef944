"""``synllm generate``: run one model on one rendered prompt, write raw text + meta JSON.

The model is looked up in the registry; its backend is imported lazily. LLM backends run in
mini-batches of ``batch_size`` records (``conditions`` in the prompt JSON become one
sub-prompt per condition for its share of the records) and repeat over the shortfall up to
``max_attempts`` rounds until ``n_records`` lines that look like JSON records are collected.
The raw text keeps every batch, each preceded by a line ``### batch K ###`` (see
:data:`synllm.generate.base.BATCH_SEPARATOR_RE`); non-batched backends (baselines, replay)
write their text as-is. The meta JSON has the fields listed in docs/architecture.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from synllm.cards import load_card
from synllm.errors import ConfigError
from synllm.generate.base import (
    BATCH_SEPARATOR_FMT,
    Backend,
    GenerationContext,
    GenerationResult,
    OPENAI_SETTING_KEYS,
    GenerationSettings,
    allocate,
    batch_sizes,
    count_records,
    example_record,
    get_backend,
    record_json_line,
)
from synllm.registry import ModelSpec, load_registry

log = logging.getLogger("synllm.generate")

LLM_BACKENDS = ("transformers", "llamacpp", "openai")
"""Backends replaced by replay when ``backend_override: replay`` is set."""


def parse_settings(value: str | None) -> GenerationSettings:
    """Settings from a JSON string or a JSON file path (None -> defaults)."""
    if not value:
        return GenerationSettings()
    path = Path(value)
    text = path.read_text() if not value.lstrip().startswith("{") and path.is_file() else value
    try:
        raw = json.loads(text)
    except ValueError as err:
        raise ConfigError(f"generation: --settings is not valid JSON ({err})") from None
    if not isinstance(raw, dict):
        raise ConfigError("generation: --settings must be a JSON object")
    try:
        return GenerationSettings.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"generation: field '{loc}': {first['msg']}") from None


def load_prompt(path: str | Path) -> dict:
    """Prompt JSON written by ``synllm prompt``; needs ``system`` and ``user``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"prompt file not found: {path}")
    try:
        prompt = json.loads(path.read_text())
    except ValueError as err:
        raise ConfigError(f"prompt file {path} is not valid JSON ({err})") from None
    for key in ("system", "user"):
        if not isinstance(prompt.get(key), str):
            raise ConfigError(f"prompt file {path}: field {key!r} must be a string")
    return prompt


def prompt_sha256(prompt: dict | None) -> str | None:
    """The prompt's own ``sha256`` field, else sha256 of system + user (UTF-8)."""
    if prompt is None:
        return None
    if prompt.get("sha256"):
        return str(prompt["sha256"])
    return hashlib.sha256((prompt["system"] + prompt["user"]).encode("utf-8")).hexdigest()


def sub_prompts(prompt: dict, n_records: int) -> list[tuple[str, int]]:
    """(user text, records) per condition (``user + "\\n" + instruction``), or the prompt alone."""
    conditions = prompt.get("conditions") or []
    if not conditions:
        return [(prompt["user"], n_records)]
    counts = allocate(n_records, [float(c.get("share", 1.0)) for c in conditions])
    return [
        (prompt["user"] + "\n" + str(c.get("instruction", "")), k)
        for c, k in zip(conditions, counts)
    ]


def run_batches(
    backend: Backend,
    prompt: dict,
    n_records: int,
    seed: int,
    settings: GenerationSettings,
    schema: dict | None,
) -> tuple[list[str], dict[str, Any]]:
    """Call the backend in mini-batches until ``n_records`` records look present.

    Returns (batch texts, summary) where summary has ``batches`` (calls made), ``attempts``
    (rounds used) and ``records_found`` (lines that look like JSON records, all batches).
    Batch k (1-based, across rounds and conditions) uses seed ``seed * 1000 + k`` folded by
    the backend into per-call seeds.
    """
    plan = sub_prompts(prompt, n_records)
    found = [0] * len(plan)
    texts: list[str] = []
    rounds = 0
    oom_splits = 0
    for rounds in range(1, settings.max_attempts + 1):
        short = [(i, k - f) for i, ((_, k), f) in enumerate(zip(plan, found)) if k - f > 0]
        if not short:
            rounds -= 1
            break
        for i, missing in short:
            pending = list(batch_sizes(missing, settings.batch_size))
            while pending:
                size = pending.pop(0)
                batch_seed = (seed * 1000 + len(texts) + 1) % (2**31)
                try:
                    chunks = backend.generate(prompt["system"], plan[i][0], size, batch_seed, settings, schema)
                except Exception as err:  # noqa: BLE001 - only CUDA OOM is handled, rest re-raised
                    if not is_out_of_memory(err) or size == 1:
                        raise
                    free_gpu_cache()
                    half = (size + 1) // 2
                    log.warning("out of memory on a batch of %d records: retrying as %d + %d", size, half, size - half)
                    pending[:0] = [half, size - half]
                    oom_splits += 1
                    continue
                text = "\n".join(c.rstrip("\n") for c in chunks)
                texts.append(text)
                found[i] += count_records(text)
                log.info("batch %d: asked %d records, %d found so far", len(texts), size, sum(found))
    return texts, {
        "batches": len(texts),
        "attempts": rounds,
        "records_found": sum(found),
        "oom_splits": oom_splits,
    }


def is_out_of_memory(err: BaseException) -> bool:
    """True for torch.cuda.OutOfMemoryError (checked by name: torch may not be imported)."""
    return type(err).__name__ == "OutOfMemoryError" or "CUDA out of memory" in str(err)


def free_gpu_cache() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def batch_size_for_attempt(batch_size: int, attempt: int) -> int:
    """Snakemake retry ``attempt`` (1-based): the batch halves on every retry (>= 1)."""
    return max(1, batch_size >> max(attempt - 1, 0))


def join_batches(texts: list[str]) -> str:
    """Raw file text: each batch preceded by its separator line."""
    parts = []
    for k, text in enumerate(texts, start=1):
        parts.append(BATCH_SEPARATOR_FMT.format(index=k))
        parts.append(text)
    return "\n".join(parts) + ("\n" if parts else "")


def peak_rss_mb() -> float:
    """Peak resident memory of this process (MB, from getrusage)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / (1024 * 1024) if sys.platform == "darwin" else kb / 1024, 1)


def peak_gpu_mb() -> float | None:
    """torch.cuda.max_memory_allocated in MB, or None without CUDA (torch only if imported)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and (if already imported) torch."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)


def generator_kind(spec: ModelSpec, backend_name: str) -> str:
    """``LLM``, ``baseline``, ``peer`` or ``external`` (a ``backend: replay`` registry entry:
    a table made elsewhere); aggregation ranks every kind but ``baseline`` side by side."""
    if backend_name in ("baseline", "peer"):
        return backend_name
    if spec.backend == "replay":
        return "external"
    return "LLM"


def generate(
    spec: ModelSpec,
    settings: GenerationSettings,
    context: GenerationContext,
    n_records: int,
    seed: int,
) -> GenerationResult:
    """Run one grid cell and return its raw text and meta dictionary."""
    t0 = time.perf_counter()
    backend_name = spec.backend
    warnings: list[str] = []
    if settings.backend_override == "replay" and spec.backend in LLM_BACKENDS:
        backend_name = "replay"
    if context.prompt is None and spec.takes_prompt and backend_name != "baseline":
        raise ConfigError(f"generate: --prompt is required for model {spec.slug!r} (backend {backend_name})")
    extra = sorted(set(settings.model_extra or {}) - (OPENAI_SETTING_KEYS if spec.backend == "openai" else set()))
    if extra:
        warnings.append(f"unknown generation settings ignored: {extra}")
    seed_everything(seed)
    backend = get_backend(backend_name)
    t_load = time.perf_counter()
    backend.load(spec, settings, context)
    load_seconds = time.perf_counter() - t_load
    seed_everything(seed)
    schema = (context.prompt or {}).get("record_schema") or context.card.record_json_schema()
    summary: dict[str, Any] = {"batches": 0, "attempts": 0, "records_found": None}
    tokens_per_record = None
    if backend.batched:
        tokens_per_record = settings.tokens_per_record or float(
            getattr(backend, "budget_tokens", backend.count_tokens)(record_json_line(example_record(context.card)))
        )
        run_settings = settings.model_copy(update={"tokens_per_record": tokens_per_record})
        texts, summary = run_batches(backend, context.prompt or {}, n_records, seed, run_settings, schema)
        text = join_batches(texts)
    else:
        prompt = context.prompt or {"system": "", "user": ""}
        chunks = backend.generate(prompt["system"], prompt["user"], n_records, seed, settings, schema)
        text = "\n".join(chunks)
        if text and not text.endswith("\n"):
            text += "\n"
        # table-writing backends (peers: CSV) know their row count; JSON lines are counted
        written = getattr(backend, "records_written", None)
        found_now = written if written is not None else count_records(text)
        summary = {"batches": 1 if chunks else 0, "attempts": 1, "records_found": found_now}
    wall = time.perf_counter() - t0
    stats = backend.stats
    gen_seconds = max(wall - load_seconds, 1e-9)
    found = summary["records_found"]
    if backend_name != "replay" and found is not None and found < n_records and stats.generated:
        warnings.append(
            f"only {found} of {n_records} requested records look like JSON lines "
            f"after {summary['attempts']} attempt(s)"
        )
    meta = {
        "model": spec.slug,
        "backend": backend_name,
        "generator_kind": generator_kind(spec, backend_name),
        "hf_id": spec.hf_id,
        "quantization": stats.quantization,
        "device": stats.device,
        "seed": seed,
        "dataset": context.card.name,
        "prompt_style": context.prompt_style,
        "prompt_sha256": prompt_sha256(context.prompt),
        "n_records_requested": n_records,
        "records_found": found,
        "batches": summary["batches"],
        "attempts": summary["attempts"],
        "generated": stats.generated,
        "wall_seconds": round(wall, 3),
        "load_seconds": round(load_seconds, 3),
        "generation_seconds": round(gen_seconds, 3),
        "input_tokens": stats.input_tokens,
        "output_tokens": stats.output_tokens,
        "tokens_per_second": round(stats.output_tokens / gen_seconds, 2) if stats.output_tokens else 0.0,
        "tokens_per_record": tokens_per_record,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "batch_size": settings.batch_size,
        "oom_splits": summary.get("oom_splits", 0),
        "peak_rss_mb": peak_rss_mb(),
        "peak_gpu_mb": peak_gpu_mb(),
        "constrained": stats.constrained,
        "warnings": stats.warnings + warnings,
        **({"backend_info": stats.extra} if stats.extra else {}),
    }
    if backend_name == "peer":
        from synllm.generate.peers import META_KEYS

        # Table VI times a peer as train + sample (the model is fitted once, by train_peer)
        meta.update({k: stats.extra.get(k) for k in META_KEYS})
    for w in meta["warnings"]:
        log.warning("%s", w)
    return GenerationResult(text=text, meta=meta)


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="synllm generate", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="registry slug")
    p.add_argument("--registry", required=True, help="config/models.yaml")
    p.add_argument("--prompt", help="prompt JSON (absent for baselines)")
    p.add_argument("--card", required=True, help="dataset card YAML")
    p.add_argument("--train", help="train split parquet")
    p.add_argument("--holdout", help="holdout split parquet")
    p.add_argument("--n-records", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--settings", help="the config's generation section: JSON text or file")
    p.add_argument("--peer-model", help="fitted model of a peer generator (rule train_peer)")
    p.add_argument("--out-raw", required=True)
    p.add_argument("--out-meta", required=True)
    p.add_argument(
        "--attempt", type=int, default=1,
        help="Snakemake retry attempt: batch_size is halved on each retry (e.g. after CUDA OOM)",
    )
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if a.n_records < 1:
        raise ConfigError(f"generate: --n-records must be >= 1, got {a.n_records}")
    spec = load_registry(a.registry).get(a.model)
    settings = parse_settings(a.settings)
    if a.attempt > 1:
        smaller = batch_size_for_attempt(settings.batch_size, a.attempt)
        log.info("attempt %d: batch_size %d -> %d", a.attempt, settings.batch_size, smaller)
        settings = settings.model_copy(update={"batch_size": smaller})
    card = load_card(a.card)
    prompt = load_prompt(a.prompt) if a.prompt else None
    style = "none" if prompt is None else (prompt.get("style") or Path(a.prompt).stem)
    context = GenerationContext(
        card=card,
        train_path=Path(a.train) if a.train else None,
        holdout_path=Path(a.holdout) if a.holdout else None,
        prompt=prompt,
        prompt_style=style,
        prompt_path=Path(a.prompt) if a.prompt else None,
        peer_model=Path(a.peer_model) if a.peer_model else None,
    )
    result = generate(spec, settings, context, a.n_records, a.seed)
    for out, body in ((a.out_raw, result.text), (a.out_meta, json.dumps(result.meta, indent=2) + "\n")):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(body, encoding="utf-8")
    log.info(
        "%s: %s records found, %d output tokens in %.1f s",
        spec.slug, result.meta["records_found"], result.meta["output_tokens"], result.meta["wall_seconds"],
    )
    return 0
