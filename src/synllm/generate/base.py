"""Shared interface of the generate backends.

A backend turns a (system, user) prompt into raw text for a requested number of records.
``synllm.generate.cli`` drives it:

1. ``backend = get_backend(spec.backend)`` (lazy import: a CPU machine never imports
   bitsandbytes or CUDA code unless the transformers backend is used),
2. ``backend.load(spec, settings, context)`` once (timed as ``load_seconds``),
3. ``backend.generate(system, user, n_records, seed, settings, schema)`` per mini-batch,
   returning a list of text chunks (one per model call; the CLI joins batches with
   :data:`BATCH_SEPARATOR` lines),
4. ``backend.stats`` (a :class:`BackendStats`) supplies tokens, device, quantization actually
   used and warnings for the meta file.

Backends with ``batched = False`` (baselines, replay) are called once with the full
``n_records``; their output is written as-is.

Each backend module exposes ``create() -> Backend``.
"""

from __future__ import annotations

import importlib
import json
import math
import resource
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from synllm.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from synllm.cards import DatasetCard
    from synllm.registry import ModelSpec

BATCH_SEPARATOR_FMT = "### batch {index} ###"
"""A line of this form separates mini-batches in the raw text (index starts at 1)."""

BATCH_SEPARATOR_RE = r"^### batch \d+ ###$"
"""Regex (for ``re.MULTILINE``) matching a separator line; the validator ignores such lines."""

BACKENDS: dict[str, str] = {
    "transformers": "synllm.generate.transformers_backend",
    "llamacpp": "synllm.generate.llamacpp",
    "replay": "synllm.generate.replay",
    "baseline": "synllm.generate.baselines",
    "openai": "synllm.generate.openai_backend",
    "peer": "synllm.generate.peers",
}
"""Backend name -> module (imported only when that backend is used)."""

PEER_META_KEYS = (
    "train_seconds",
    "sample_seconds",
    "epochs_run",
    "train_peak_rss_mb",
    "train_rows",
)
"""Peer facts copied to the top level of the raw meta (Table VI reads them)."""


def seed_all(seed: int) -> None:
    """Seed Python's, numpy's and torch's generators (the in-process peers' training and
    sampling)."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def peak_rss_mb() -> float:
    """Peak resident memory of this process (MB, from getrusage)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / (1024 * 1024) if sys.platform == "darwin" else kb / 1024, 1)


class GenerationSettings(BaseModel):
    """The config's ``generation`` section (unknown keys are kept in ``model_extra``)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    temperature: float = Field(0.7, ge=0, le=2, description="Sampling temperature (paper: 0.7).")
    top_p: float = Field(0.9, gt=0, le=1, description="Nucleus sampling mass (paper: 0.9).")
    batch_size: int = Field(20, ge=1, description="Records requested per model call (paper: 20).")
    max_attempts: int = Field(
        3, ge=1, description="Rounds over the shortfall before giving up on n_records."
    )
    constrained: Literal["auto"] | bool = Field(
        "auto", description="JSON-schema constrained decoding: auto (embedded models), on, off."
    )
    backend_override: Literal["replay"] | None = Field(
        None, description="replay: read the authors' outputs instead of running any model."
    )
    replay_dir: str | None = Field(None, description="Root of <dataset>/<replay_name>/promptN.txt.")
    max_new_tokens: int | None = Field(
        None, ge=1, description="Fixed token budget per call (default: derived from records)."
    )
    tokens_per_record: float | None = Field(
        None, gt=0, description="Tokens per record (default: measured on an example record)."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="transformers: where to run (auto = CUDA when present)."
    )
    fieldwise: bool = Field(
        True,
        description="llamacpp constrained: keys evaluated as forced text, only values sampled.",
    )
    lazy_grammar: bool = Field(
        True,
        description="llamacpp: grammar checked on the sampled token first, full mask only on rejection.",
    )
    load_once: bool = Field(
        True,
        description="transformers: one generate job per (dataset, model, repeat) runs every "
        "prompt's cell with one model load (false = one job and one load per cell).",
    )
    parallel_sequences: int | None = Field(
        None,
        ge=1,
        description="llamacpp: records (field-wise) or mini-batches (unconstrained) decoded as "
        "parallel sequences of one llama.cpp batch (default: a measured constant; 1 = one "
        "sequence at a time).",
    )
    max_parallel_sequences: int | None = Field(
        None,
        ge=1,
        description="transformers: mini-batches decoded together in one generate call "
        "(default: sized from free GPU memory on CUDA, a measured constant on CPU).",
    )


OPENAI_SETTING_KEYS = frozenset(
    {
        "requests_per_minute",
        "max_retries",
        "backoff_base_s",
        "backoff_max_s",
        "request_timeout_s",
        "cost_per_1k_input_tokens",
        "cost_per_1k_output_tokens",
        "response_format",
    }
)
"""Options of the openai backend passed through the settings extras (see openai_backend)."""


@dataclass
class GenerationContext:
    """What a backend may need beyond the prompt: dataset card, splits, prompt, paths.

    ``prompt`` is the prompt JSON (None for baselines); ``prompt_style`` its style
    (``SEEDEx`` ... or ``none``); ``train_path``/``holdout_path`` are split parquets;
    ``peer_model`` is the fitted model a peer samples from (rule ``train_peer``).
    """

    card: DatasetCard
    train_path: Path | None = None
    holdout_path: Path | None = None
    prompt: dict | None = None
    prompt_style: str | None = None
    prompt_path: Path | None = None
    peer_model: Path | None = None


@dataclass
class BackendStats:
    """Counters and facts a backend reports for the meta file."""

    device: str = "cpu"
    quantization: str = "none"
    constrained: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0
    generated: bool = True
    """False when no model ran (replay, missing replay file)."""
    warnings: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class GenerationResult:
    """Raw text of one grid cell plus its meta dictionary (see docs/architecture.md)."""

    text: str
    meta: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    """What ``synllm.generate.cli`` needs from a backend."""

    name: str
    batched: bool
    stats: BackendStats

    def load(
        self, spec: ModelSpec, settings: GenerationSettings, context: GenerationContext
    ) -> None:
        """Load the model (or data) once; may add warnings to ``stats``."""

    def generate(
        self,
        system: str,
        user: str,
        n_records: int,
        seed: int,
        settings: GenerationSettings,
        schema: dict | None,
    ) -> list[str]:
        """Generate text for ``n_records`` records; returns the raw text chunks of each call."""

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` under this model's tokenizer (a rough estimate is fine)."""


def get_backend(name: str) -> Backend:
    """Import the backend module for ``name`` and return ``module.create()``."""
    if name not in BACKENDS:
        raise ConfigError(f"models: unknown backend {name!r} (known: {sorted(BACKENDS)})")
    try:
        module = importlib.import_module(BACKENDS[name])
    except ModuleNotFoundError as err:
        raise ConfigError(
            f"models: backend {name!r} is unavailable ({err.name} is not installed)"
        ) from None
    return module.create()


# -- record budget arithmetic ------------------------------------------------------------


def batch_sizes(n_records: int, batch_size: int) -> list[int]:
    """Split ``n_records`` into mini-batches of at most ``batch_size`` (e.g. 45, 20 -> 20,20,5)."""
    if n_records <= 0:
        return []
    full, rest = divmod(n_records, batch_size)
    return [batch_size] * full + ([rest] if rest else [])


def token_budget(
    n_records: int, tokens_per_record: float, factor: float = 1.3, slack: int = 32
) -> int:
    """max_new_tokens for a call asking ``n_records``: ceil(n * tokens_per_record * factor) + slack."""
    return int(math.ceil(n_records * tokens_per_record * factor)) + slack


def example_record(card: DatasetCard) -> dict[str, Any]:
    """A typical-looking record of ``card`` (first category, range mid-point) for token sizing."""
    rec: dict[str, Any] = {}
    for name, col in card.columns.items():
        if col.type == "categorical":
            rec[name] = max(col.categories or [""], key=len)
        elif col.type == "binary":
            rec[name] = 0
        else:
            lo, hi = col.range  # type: ignore[misc]
            mid = (lo + hi) / 2
            if col.type == "int":
                rec[name] = int(round(mid))
            else:
                rec[name] = round(mid + 0.123456, col.decimals if col.decimals is not None else 2)
    return rec


def record_json_line(record: dict[str, Any]) -> str:
    """One NDJSON line, the format every prompt asks for (``json.dumps`` defaults)."""
    return json.dumps(record)


def looks_like_record(line: str) -> bool:
    """Cheap check used to count progress: a line holding a JSON object that parses."""
    s = line.strip().rstrip(",")
    start, end = s.find("{"), s.rfind("}")
    if start < 0 or end <= start:
        return False
    try:
        return isinstance(json.loads(s[start : end + 1]), dict)
    except ValueError:
        return False


def count_records(text: str) -> int:
    """Number of lines of ``text`` that :func:`looks_like_record`."""
    return sum(looks_like_record(line) for line in text.splitlines())


def allocate(n_records: int, shares: list[float]) -> list[int]:
    """Largest-remainder split of ``n_records`` by ``shares`` (normalised); sums to n_records."""
    if not shares:
        return []
    total = sum(shares)
    if total <= 0:
        raise ConfigError("prompt: field 'conditions.share' must sum to a positive number")
    raw = [n_records * s / total for s in shares]
    out = [int(math.floor(r)) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - out[i]), i))
    for i in order[: n_records - sum(out)]:
        out[i] += 1
    return out


def call_seed(seed: int, call_index: int) -> int:
    """Seed of the ``call_index``-th model call of a run seeded ``seed`` (32-bit, deterministic)."""
    import numpy as np

    return int(np.random.SeedSequence([int(seed), int(call_index)]).generate_state(1)[0])


def resolve_constrained(setting: Literal["auto"] | bool, backend: str, spec: ModelSpec) -> bool:
    """auto -> on for embedded GGUF models (llamacpp or gguf_package), off for paper models."""
    if setting == "auto":
        return backend == "llamacpp" or bool(spec.gguf_package)
    return bool(setting)
