"""GReaT (Borisov et al. 2023, PyPI ``be-great``) as a peer: a language model fine-tuned on the
train rows written as text ("age is 61, bmi is 27.3, ..."), sampled back into rows.

GReaT installs beside our pins (extra ``peers``), so it runs in this environment. Its base
model is a model folder: the registry entry's ``base_model``, for the embedded SmolLM2 the
folder rule ``base_lm`` converts once from the GGUF (:mod:`synllm.generate.base_lm`).

- training (``synllm train-peer``) fine-tunes the base model on the budget's rows only, with
  the budget's ``finetuning`` (``full``, the package's default, or ``lora``), epochs, batch
  size and learning rate, seeded through the Trainer (``seed``, ``data_seed``);
  ``max_train_seconds`` stops it after the optimizer step that crosses it. The model file
  holds what ``GReaT.save`` writes (the LoRA adapter, or the full weights) and the base
  folder it applies to.
- sampling is GReaT's own (start tokens from the conditional column's train distribution,
  ``generate`` at temperature 0.7, its text -> row parser), in batches until the cell has its
  records or ``MAX_SEQUENCES_PER_RECORD`` x n sequences were tried: a row GReaT cannot parse
  (a column missing, a number that is not one) is dropped, as its own sampler does, and a
  barely trained model returns fewer rows instead of looping for ever.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synllm.cards import DatasetCard
from synllm.errors import ConfigError, DataError
from synllm.generate.base import seed_all
from synllm.split import to_card_dtypes

log = logging.getLogger("synllm.great")

TEMPERATURE = 0.7
"""GReaT's default sampling temperature (and the paper grid's)."""
SAMPLE_BATCH = 32
MAX_SEQUENCES_PER_RECORD = 5


class GreatModel:
    """A fitted GReaT: the files ``GReaT.save`` wrote (relative path -> bytes), the base model
    folder they apply to, and the longest sampled row it allows (tokens)."""

    def __init__(self, files: dict[str, bytes], base_model: str, max_length: int) -> None:
        self.files = files
        self.base_model = base_model
        self.max_length = max_length


def great_frame(train: pd.DataFrame, card: DatasetCard) -> pd.DataFrame:
    """Card-typed rows as GReaT writes them: ints as ``45`` (nullable Int64, not ``45.0``),
    floats as floats, categories as strings; missing values stay missing (``None``)."""
    typed = to_card_dtypes(train[card.feature_names], card)
    for name, col in card.columns.items():
        if col.type == "categorical":
            typed[name] = typed[name].map(lambda v: v if pd.isna(v) else str(v))
    return typed


@contextmanager
def step_budget(max_seconds: float | None, counter: dict) -> Iterator[None]:
    """Stop GReaT's Trainer after the optimizer step that crosses ``max_seconds``.

    ``GReaT.fit`` builds its Trainer and callbacks itself; its progress callback class
    (module attribute ``ChugProgressCallback``) is the one hook it offers, so it is replaced
    by a subclass for the duration of ``fit``. ``counter`` gets the steps and epochs run.
    """
    import be_great.great as great_mod

    base = great_mod.ChugProgressCallback
    t0 = time.perf_counter()

    class _Budgeted(base):  # type: ignore[misc, valid-type]
        def on_step_end(self, args, state, control, **kwargs):
            super().on_step_end(args, state, control, **kwargs)
            counter["steps"] = state.global_step
            counter["epoch"] = float(state.epoch or 0.0)
            if max_seconds is not None and time.perf_counter() - t0 >= max_seconds:
                counter["stopped_by_time"] = True
                control.should_training_stop = True
            return control

    great_mod.ChugProgressCallback = _Budgeted
    try:
        yield
    finally:
        great_mod.ChugProgressCallback = base


def row_tokens(great: Any, df: pd.DataFrame) -> int:
    """Tokens of the longest train row in GReaT's text form (the sampling length's basis)."""
    texts = [
        ", ".join(f"{c} is {'None' if pd.isna(v) else v}" for c, v in row.items())
        for _, row in df.iterrows()
    ]
    return max(len(ids) for ids in great.tokenizer(texts)["input_ids"])


def fit_great(
    spec, card: DatasetCard, train: pd.DataFrame, seed: int, budget, base_model: str, use_gpu: bool
) -> tuple[GreatModel, dict]:
    """Fine-tune GReaT on ``train`` (the budget's rows of the train split)."""
    from be_great import GReaT

    if len(train) == 0:
        raise DataError(f"dataset {card.name!r}: train split is empty")
    if not Path(base_model, "config.json").is_file():
        raise ConfigError(
            f"models: {spec.slug!r}: base model folder {base_model!r} not found "
            "(rule base_lm builds it from a registry model's GGUF)"
        )
    df = great_frame(train, card)
    kwargs: dict[str, Any] = {
        "seed": int(seed),
        "data_seed": int(seed),
        "save_strategy": "no",
        "logging_strategy": "no",
        "dataloader_num_workers": 0,
        "use_cpu": not use_gpu,
    }
    if budget.learning_rate is not None:
        kwargs["learning_rate"] = budget.learning_rate
    with tempfile.TemporaryDirectory(prefix="synllm-great-") as tmp:
        # GReaT() adds the LoRA matrices, drawn from torch's generator, before its Trainer
        # seeds anything: unseeded, two trainings of the same seed differ
        seed_all(seed)
        great = GReaT(
            llm=base_model,
            experiment_dir=str(Path(tmp) / "trainer"),
            epochs=budget.epochs,
            batch_size=budget.batch_size,
            efficient_finetuning="lora" if budget.finetuning == "lora" else "",
            **kwargs,
        )
        counter = {"steps": 0, "epoch": 0.0, "stopped_by_time": False}
        t0 = time.perf_counter()
        with step_budget(budget.max_train_seconds, counter):
            great.fit(df, conditional_col=card.target)
        seconds = time.perf_counter() - t0
        # GReaT.save writes its attributes as JSON: the start column's value counts have
        # numpy keys for an integer column (the text prompt only needs their strings)
        dist = great.conditional_col_dist
        if isinstance(dist, dict):
            great.conditional_col_dist = {str(k): float(v) for k, v in dist.items()}
        great.save(str(Path(tmp) / "model"))
        saved = Path(tmp) / "model"
        files = {str(p.relative_to(saved)): p.read_bytes() for p in saved.rglob("*") if p.is_file()}
    max_length = int(math.ceil(row_tokens(great, df) * 1.25)) + 8
    facts = {
        "train_seconds": round(seconds, 3),
        "epochs_run": int(math.ceil(counter["epoch"])),
        "steps_run": int(counter["steps"]),
        "stopped_by_time": bool(counter["stopped_by_time"]),
        "batch_size": budget.batch_size,
        "train_rows": len(df),
        "finetuning": budget.finetuning,
        "base_model": base_model,
        "max_length": max_length,
        "model_file_mb": round(sum(len(b) for b in files.values()) / 1e6, 1),
    }
    return GreatModel(files, base_model, max_length), facts


def load_great(model: GreatModel, tmp: Path) -> Any:
    """The fitted GReaT, its weights read from ``model`` and its base from the folder it names."""
    from be_great import GReaT

    if not Path(model.base_model, "config.json").is_file():
        raise ConfigError(
            f"GReaT base model folder {model.base_model!r} not found (rule base_lm builds it)"
        )
    for rel, data in model.files.items():
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_bytes(data)
    config = json.loads((tmp / "config.json").read_text(encoding="utf-8"))
    config["llm"] = model.base_model
    (tmp / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return GReaT.load_from_dir(str(tmp))


def sample_great(
    model: GreatModel, card: DatasetCard, n: int, seed: int, device: str = "cpu"
) -> tuple[pd.DataFrame, int]:
    """Up to ``n`` card-typed rows and the number of sequences sampled for them."""
    import torch
    from be_great.great_utils import _convert_text_to_tabular_data, _convert_tokens_to_text

    with tempfile.TemporaryDirectory(prefix="synllm-great-") as tmp:
        great = load_great(model, Path(tmp))
    great.model.eval()
    great._resolve_device(device)
    seed_all(seed)
    start = great._get_start_sampler("", None)
    frames: list[pd.DataFrame] = []
    found = tried = 0
    while found < n and tried < MAX_SEQUENCES_PER_RECORD * n:
        k = min(SAMPLE_BATCH, MAX_SEQUENCES_PER_RECORD * n - tried)
        ids = torch.tensor(start.get_start_tokens(k)).to(great.device)
        with torch.no_grad():
            tokens = great.model.generate(
                input_ids=ids,
                attention_mask=(ids != great.tokenizer.pad_token_id).long(),
                max_length=model.max_length,
                do_sample=True,
                temperature=TEMPERATURE,
                pad_token_id=great.tokenizer.pad_token_id,
            )
        tried += k
        df = _convert_text_to_tabular_data(
            _convert_tokens_to_text(tokens, great.tokenizer), great.columns
        )
        df = df[~(df == "placeholder").any(axis=1)]
        for col in great.num_cols:  # GReaT's own check: a numeric column holds a number or None
            num = pd.to_numeric(df[col], errors="coerce")
            df = df[num.notna() | df[col].isna()]
        frames.append(df)
        found += len(df)
    out = pd.concat(frames, ignore_index=True).head(n) if frames else pd.DataFrame()
    out = out.reindex(columns=card.feature_names).replace({"nan": np.nan, "<NA>": np.nan})
    return to_card_dtypes(out, card), tried
