"""The generation run loop: one model, one or more cells, mini-batches, retries, meta.

LLM backends run in mini-batches of ``batch_size`` records (``conditions`` in the prompt JSON
become one sub-prompt per condition for its share of the records) and repeat over the shortfall
up to ``max_attempts`` rounds until ``n_records`` lines that look like JSON records are
collected; a backend with ``generate_many`` (transformers) decodes a round's mini-batches as
parallel rows of one call. The raw text keeps every batch, each preceded by a line
``### batch K ###`` (see :data:`synllm.generate.base.BATCH_SEPARATOR_RE`); non-batched backends
(baselines, peers, replay) write their text as-is. :func:`generate_cells` runs several cells
of one model with one load. The CLI around it is :mod:`synllm.generate.cli`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import random
import sys
import time
from collections.abc import Iterator
from typing import Any

from synllm.errors import ConfigError
from synllm.generate.base import (
    BATCH_SEPARATOR_FMT,
    OPENAI_SETTING_KEYS,
    PEER_META_KEYS,
    Backend,
    GenerationContext,
    GenerationResult,
    GenerationSettings,
    allocate,
    batch_sizes,
    count_records,
    example_record,
    get_backend,
    peak_rss_mb,
    record_json_line,
)
from synllm.registry import ModelSpec

log = logging.getLogger("synllm.generate")


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
    attempt: int = 1,
) -> tuple[list[str], dict[str, Any]]:
    """Call the backend in mini-batches until ``n_records`` records look present.

    Returns (batch texts, summary) where summary has ``batches`` (calls made), ``attempts``
    (rounds used), ``records_found`` (lines that look like JSON records, all batches),
    ``oom_splits`` and ``parallel_sequences`` (the widest call, or the most sequences a
    backend that schedules its own decoded at once). Batch k (1-based, across
    rounds and conditions, in plan order) uses seed ``seed * 1000 + k`` folded by the backend
    into per-call seeds. A backend with ``generate_many`` (transformers) gets the mini-batches
    of a round together, up to its ``parallel_width`` (halved on each Snakemake ``attempt``
    and on CUDA out-of-memory); the texts keep plan order either way.
    """
    plan = sub_prompts(prompt, n_records)
    found = [0] * len(plan)
    texts: list[str] = []
    rounds = 0
    state = {"oom_splits": 0, "jobs": 0, "width": 1}
    many = getattr(backend, "generate_many", None)
    for rounds in range(1, settings.max_attempts + 1):
        short = [(i, k - f) for i, ((_, k), f) in enumerate(zip(plan, found)) if k - f > 0]
        if not short:
            rounds -= 1
            break
        jobs = [
            (i, size) for i, missing in short for size in batch_sizes(missing, settings.batch_size)
        ]
        if many is not None:
            requests = [(prompt["system"], plan[i][0], size, 0) for i, size in jobs]
            width = batch_size_for_attempt(backend.parallel_width(settings, requests), attempt)
            if width > 1:
                state["jobs"] = len(texts)
                for i, text in _run_parallel(
                    backend, prompt, plan, jobs, seed, width, settings, schema, state
                ):
                    texts.append(text)
                    found[i] += count_records(text)
                    log.info("batch %d: %d found so far", len(texts), sum(found))
                continue
        for i, size in jobs:
            pending = [size]
            while pending:
                size = pending.pop(0)
                batch_seed = _batch_seed(seed, len(texts) + 1)
                try:
                    chunks = backend.generate(
                        prompt["system"], plan[i][0], size, batch_seed, settings, schema
                    )
                except Exception as err:  # noqa: BLE001 - only CUDA OOM is handled, rest re-raised
                    if not is_out_of_memory(err) or size == 1:
                        raise
                    free_gpu_cache()
                    pending[:0] = _halves(size)
                    state["oom_splits"] += 1
                    continue
                text = _joined(chunks)
                texts.append(text)
                found[i] += count_records(text)
                log.info(
                    "batch %d: asked %d records, %d found so far", len(texts), size, sum(found)
                )
    # a backend that schedules its own sequences (llamacpp) reports how many ran at once
    used = getattr(getattr(backend, "stats", None), "extra", {}).get("parallel_sequences_used")
    return texts, {
        "batches": len(texts),
        "attempts": rounds,
        "records_found": sum(found),
        "oom_splits": state["oom_splits"],
        "parallel_sequences": used or state["width"],
    }


def _run_parallel(
    backend: Any,
    prompt: dict,
    plan: list[tuple[str, int]],
    jobs: list[tuple[int, int]],
    seed: int,
    width: int,
    settings: GenerationSettings,
    schema: dict | None,
    state: dict,
) -> list[tuple[int, str]]:
    """Decode ``jobs`` (sub-prompt index, records) ``width`` at a time with ``generate_many``.

    Job k of the run (``state['jobs']``) gets seed ``seed * 1000 + k``, the seed the sequential
    loop gives its k-th batch. CUDA out-of-memory halves the width for the rest of the cell;
    at width 1 it splits the job's records like the sequential loop.
    """
    queue = []
    for i, size in jobs:
        state["jobs"] += 1
        queue.append((i, size, _batch_seed(seed, state["jobs"])))
    out: list[tuple[int, str]] = []
    while queue:
        chunk = queue[:width]
        try:
            results = backend.generate_many(
                [(prompt["system"], plan[i][0], size, s) for i, size, s in chunk], settings, schema
            )
        except Exception as err:  # noqa: BLE001 - only CUDA OOM is handled, rest re-raised
            if not is_out_of_memory(err) or (len(chunk) == 1 and chunk[0][1] == 1):
                raise
            free_gpu_cache()
            state["oom_splits"] += 1
            if len(chunk) > 1:
                log.warning(
                    "out of memory on %d parallel sequences: width %d -> %d",
                    len(chunk),
                    width,
                    max(1, len(chunk) // 2),
                )
                width = max(1, len(chunk) // 2)
            else:
                i, size, s = chunk[0]
                first, second = _halves(size)
                state["jobs"] += 1
                queue[:1] = [(i, first, s), (i, second, _batch_seed(seed, state["jobs"]))]
            continue
        state["width"] = max(state["width"], len(chunk))
        del queue[: len(chunk)]
        out += [(i, _joined(chunks)) for (i, _, _), chunks in zip(chunk, results)]
    return out


def _batch_seed(seed: int, k: int) -> int:
    """Seed of a cell's ``k``-th batch (1-based), in the sequential and the parallel loop."""
    return (seed * 1000 + k) % (2**31)


def _halves(size: int) -> list[int]:
    """The two batches a batch of ``size`` records is retried as after CUDA out-of-memory."""
    half = (size + 1) // 2
    log.warning(
        "out of memory on a batch of %d records: retrying as %d + %d", size, half, size - half
    )
    return [half, size - half]


def _joined(chunks: list[str]) -> str:
    """A batch's text: the chunks a backend returned, joined by newlines (their own trailing
    newlines dropped)."""
    return "\n".join(c.rstrip("\n") for c in chunks)


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
    attempt: int = 1,
) -> GenerationResult:
    """Run one grid cell and return its raw text and meta dictionary."""
    return next(generate_cells(spec, settings, [context], n_records, seed, attempt))


def generate_cells(
    spec: ModelSpec,
    settings: GenerationSettings,
    contexts: list[GenerationContext],
    n_records: int,
    seed: int,
    attempt: int = 1,
) -> Iterator[GenerationResult]:
    """Run the cells of one model (one context each) with one model load; yields each cell's
    result as soon as it is done. The first cell pays the load (``load_seconds``,
    ``model_already_loaded: false``); later cells report 0 s and ``true``, and
    ``model_load_seconds`` is the job's one load either way. Each cell is seeded as if it ran
    alone, so its text is the text of a one-cell run."""
    t0 = time.perf_counter()
    backend_name = spec.effective_backend(settings.backend_override)
    for context in contexts:
        if context.prompt is None and spec.takes_prompt and backend_name != "baseline":
            raise ConfigError(
                f"generate: --prompt is required for model {spec.slug!r} (backend {backend_name})"
            )
    extra = sorted(
        set(settings.model_extra or {})
        - (OPENAI_SETTING_KEYS if spec.backend == "openai" else set())
    )
    seed_everything(seed)
    backend = get_backend(backend_name)
    t_load = time.perf_counter()
    backend.load(spec, settings, contexts[0])
    model_load_seconds = time.perf_counter() - t_load
    loaded = backend.stats
    for k, context in enumerate(contexts):
        if k:
            t0 = time.perf_counter()
            if backend_name == "replay":  # replay's "model" is the context's file
                backend.load(spec, settings, context)
                loaded = backend.stats
        backend.stats = dataclasses.replace(
            loaded, warnings=list(loaded.warnings), extra=dict(loaded.extra)
        )
        load_seconds = model_load_seconds if k == 0 else 0.0
        yield _run_cell(
            spec,
            settings,
            context,
            n_records,
            seed,
            attempt,
            backend,
            backend_name,
            extra,
            t0,
            load_seconds,
            model_load_seconds,
            already_loaded=k > 0,
        )


def _run_cell(
    spec: ModelSpec,
    settings: GenerationSettings,
    context: GenerationContext,
    n_records: int,
    seed: int,
    attempt: int,
    backend: Backend,
    backend_name: str,
    extra: list[str],
    t0: float,
    load_seconds: float,
    model_load_seconds: float,
    already_loaded: bool,
) -> GenerationResult:
    warnings: list[str] = []
    if extra:
        warnings.append(f"unknown generation settings ignored: {extra}")
    seed_everything(seed)
    schema = (context.prompt or {}).get("record_schema") or context.card.record_json_schema()
    summary: dict[str, Any] = {"batches": 0, "attempts": 0, "records_found": None}
    tokens_per_record = None
    if backend.batched:
        tokens_per_record = settings.tokens_per_record or float(
            getattr(backend, "budget_tokens", backend.count_tokens)(
                record_json_line(example_record(context.card))
            )
        )
        run_settings = settings.model_copy(update={"tokens_per_record": tokens_per_record})
        texts, summary = run_batches(
            backend, context.prompt or {}, n_records, seed, run_settings, schema, attempt
        )
        text = join_batches(texts)
    else:
        prompt = context.prompt or {"system": "", "user": ""}
        chunks = backend.generate(
            prompt["system"], prompt["user"], n_records, seed, settings, schema
        )
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
        "model_already_loaded": already_loaded,
        "model_load_seconds": round(model_load_seconds, 3),
        "generation_seconds": round(gen_seconds, 3),
        "input_tokens": stats.input_tokens,
        "output_tokens": stats.output_tokens,
        "tokens_per_second": round(stats.output_tokens / gen_seconds, 2)
        if stats.output_tokens
        else 0.0,
        "tokens_per_record": tokens_per_record,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "batch_size": settings.batch_size,
        "oom_splits": summary.get("oom_splits", 0),
        "parallel_sequences": summary.get("parallel_sequences", 1),
        "peak_rss_mb": peak_rss_mb(),
        "peak_gpu_mb": peak_gpu_mb(),
        "constrained": stats.constrained,
        "warnings": stats.warnings + warnings,
        **({"backend_info": stats.extra} if stats.extra else {}),
    }
    if backend_name == "peer":
        # Table VI times a peer as train + sample (the model is fitted once, by train_peer)
        meta.update({k: stats.extra.get(k) for k in PEER_META_KEYS})
    for w in meta["warnings"]:
        log.warning("%s", w)
    return GenerationResult(text=text, meta=meta)
