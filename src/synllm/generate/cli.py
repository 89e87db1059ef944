"""``synllm generate``: run one model on one rendered prompt (or, for rule
``generate_model``, several prompts with one model load), write raw text + meta JSON per cell.

The model is looked up in the registry; its backend is imported lazily; the run loop is
:mod:`synllm.generate.run`. A resume folder keeps finished cells of an interrupted job. The meta
JSON has the fields listed in docs/architecture.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from pathlib import Path

from pydantic import ValidationError

from synllm.cards import load_card
from synllm.errors import ConfigError
from synllm.generate.base import (
    GenerationContext,
    GenerationSettings,
)
from synllm.generate.run import batch_size_for_attempt, generate_cells, prompt_sha256
from synllm.registry import ModelSpec, load_registry

log = logging.getLogger("synllm.generate")


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
        # strict: JSON types as the config schema states them (no "1" for 1, no 1 for true)
        return GenerationSettings.model_validate(raw, strict=True)
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


def resume_key(meta: dict, settings: GenerationSettings) -> str:
    """What a finished cell in the resume folder must match to be reused."""
    keep = {
        k: meta.get(k) for k in ("model", "dataset", "prompt_sha256", "seed", "n_records_requested")
    }
    keep["settings"] = settings.model_dump(mode="json")
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()


def _resumed(
    resume: Path | None,
    name: str,
    spec: ModelSpec,
    context: GenerationContext,
    n_records: int,
    seed: int,
    settings: GenerationSettings,
) -> tuple[str, dict] | None:
    """(raw text, meta) of a cell finished by an earlier, interrupted job, when it matches."""
    if resume is None:
        return None
    raw, meta_path = resume / f"{name}.txt", resume / f"{name}.meta.json"
    if not (raw.is_file() and meta_path.is_file()):
        return None
    meta = json.loads(meta_path.read_text())
    probe = {
        "model": spec.slug,
        "dataset": context.card.name,
        "seed": seed,
        "prompt_sha256": prompt_sha256(context.prompt),
        "n_records_requested": n_records,
    }
    if meta.get("resume_key") != resume_key(probe, settings):
        return None
    return raw.read_text(encoding="utf-8"), {**meta, "resumed": True}


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="synllm generate", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="registry slug")
    p.add_argument("--registry", required=True, help="config/models.yaml")
    p.add_argument("--prompt", nargs="+", help="prompt JSON, one per cell (absent for baselines)")
    p.add_argument("--card", required=True, help="dataset card YAML")
    p.add_argument("--train", help="train split parquet")
    p.add_argument("--holdout", help="holdout split parquet")
    p.add_argument("--n-records", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--settings", help="the config's generation section: JSON text or file")
    p.add_argument("--peer-model", help="fitted model of a peer generator (rule train_peer)")
    p.add_argument("--out-raw", required=True, nargs="+", help="raw text, one per cell")
    p.add_argument("--out-meta", required=True, nargs="+", help="meta JSON, one per cell")
    p.add_argument(
        "--resume-dir",
        help="several cells: each finished cell is also kept here and reused by a rerun",
    )
    p.add_argument(
        "--attempt",
        type=int,
        default=1,
        help="Snakemake retry attempt: batch_size is halved on each retry (e.g. after CUDA OOM)",
    )
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if a.n_records < 1:
        raise ConfigError(f"generate: --n-records must be >= 1, got {a.n_records}")
    n_cells = len(a.out_raw)
    if (
        len(a.out_meta) != n_cells
        or (a.prompt and len(a.prompt) != n_cells)
        or (not a.prompt and n_cells != 1)
    ):
        raise ConfigError("generate: give one --prompt (LLMs), --out-raw and --out-meta per cell")
    spec = load_registry(a.registry).get(a.model)
    settings = parse_settings(a.settings)
    if a.attempt > 1:
        smaller = batch_size_for_attempt(settings.batch_size, a.attempt)
        log.info("attempt %d: batch_size %d -> %d", a.attempt, settings.batch_size, smaller)
        settings = settings.model_copy(update={"batch_size": smaller})
    card = load_card(a.card)
    contexts = []
    for path in a.prompt or [None]:
        prompt = load_prompt(path) if path else None
        contexts.append(
            GenerationContext(
                card=card,
                train_path=Path(a.train) if a.train else None,
                holdout_path=Path(a.holdout) if a.holdout else None,
                prompt=prompt,
                prompt_style="none" if prompt is None else (prompt.get("style") or Path(path).stem),
                prompt_path=Path(path) if path else None,
                peer_model=Path(a.peer_model) if a.peer_model else None,
            )
        )
    resume = Path(a.resume_dir) if a.resume_dir else None
    names = [c.prompt_style or f"cell{k}" for k, c in enumerate(contexts)]
    todo = []
    for k, context in enumerate(contexts):
        done = _resumed(resume, names[k], spec, context, a.n_records, a.seed, settings)
        if done is not None:
            log.info("%s: cell %s kept from %s", spec.slug, context.prompt_style, resume)
            _write(a.out_raw[k], a.out_meta[k], *done)
        else:
            todo.append(k)
    if not todo:
        return 0
    results = generate_cells(
        spec, settings, [contexts[k] for k in todo], a.n_records, a.seed, a.attempt
    )
    for k, result in zip(todo, results):
        meta = result.meta
        if resume is not None:
            meta["resume_key"] = resume_key(meta, settings)
            _write(resume / f"{names[k]}.txt", resume / f"{names[k]}.meta.json", result.text, meta)
        _write(a.out_raw[k], a.out_meta[k], result.text, meta)
        log.info(
            "%s: %s records found, %d output tokens in %.1f s",
            spec.slug,
            meta["records_found"],
            meta["output_tokens"],
            meta["wall_seconds"],
        )
    return 0


def _write(raw: str | Path, meta_path: str | Path, text: str, meta: dict) -> None:
    for out, body in ((raw, text), (meta_path, json.dumps(meta, indent=2) + "\n")):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(body, encoding="utf-8")
