"""Replay backend: re-use the SynLLM authors' raw generations instead of running a model.

Reads ``<replay_dir>/<dataset>/<replay_name>/prompt<N>.txt`` where N = 1..4 for SEEDEx,
FEATDESC, STATGUIDE, CLINRULE. No model runs (meta: ``generated: false``, zero tokens). A
missing file, a model without ``replay_name`` or a non-paper prompt style gives empty text and
the warning ``no replay output: ...``; the validator then reports zero records.

Bring your own table: a registry entry with ``backend: replay`` takes no prompt (cells with
prompt ``none``; without ``replay_name``) and reads ``<replay_dir>/<dataset>/<slug>.csv``, a synthetic
table made by any generator (CSV with a header of card column names), which then goes through
the same validator, metrics and tables as every other cell (kind ``external``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synllm import BASELINE_PROMPT, PROMPT_STYLES
from synllm.errors import ConfigError
from synllm.generate.base import BackendStats, GenerationContext, GenerationSettings


def replay_path(replay_dir: str | Path, dataset: str, replay_name: str, style: str) -> Path | None:
    """File holding the authors' output for one cell (``<name>.csv`` for prompt ``none``: a
    table made elsewhere), or None for a non-paper prompt style."""
    if style == BASELINE_PROMPT:
        return Path(replay_dir) / dataset / f"{replay_name}.csv"
    if style not in PROMPT_STYLES:
        return None
    return Path(replay_dir) / dataset / replay_name / f"prompt{PROMPT_STYLES.index(style) + 1}.txt"


class ReplayBackend:
    """Reads fixture text; see module docstring."""

    name = "replay"
    batched = False

    def __init__(self) -> None:
        self.stats = BackendStats(device="none", quantization="none", generated=False)
        self.text: str | None = None
        self.source: str | None = None

    def load(self, spec: Any, settings: GenerationSettings, context: GenerationContext) -> None:
        # one backend replays every prompt cell of a per-model job: nothing of the last cell's
        # file (text, source, warnings) may reach this one, e.g. when this prompt has no file
        self.__init__()
        if not settings.replay_dir:
            raise ConfigError(
                "generation: field 'replay_dir' is required with backend_override: replay"
            )
        if not Path(settings.replay_dir).is_dir():
            raise ConfigError(
                f"generation: field 'replay_dir': directory {settings.replay_dir!r} not found"
            )
        style = context.prompt_style or (context.prompt or {}).get("style") or "none"
        name = spec.replay_name or (spec.slug if style == BASELINE_PROMPT else None)
        if not name:
            self.stats.warnings.append(f"no replay output: model {spec.slug!r} has no replay_name")
            return
        path = replay_path(settings.replay_dir, context.card.name, name, style)
        if path is None:
            self.stats.warnings.append(
                f"no replay output: prompt style {style!r} is not a paper prompt"
            )
            return
        if not path.is_file():
            self.stats.warnings.append(f"no replay output: {path} does not exist")
            return
        self.text = path.read_text(encoding="utf-8", errors="replace")
        self.source = str(path)
        self.stats.extra["replay_file"] = self.source

    def count_tokens(self, text: str) -> int:
        """Whitespace-separated words (no tokenizer is loaded in replay)."""
        return len(text.split())

    def generate(
        self,
        system: str,
        user: str,
        n_records: int,
        seed: int,
        settings: GenerationSettings,
        schema: dict | None,
    ) -> list[str]:
        return [self.text] if self.text is not None else []


def create() -> ReplayBackend:
    return ReplayBackend()
