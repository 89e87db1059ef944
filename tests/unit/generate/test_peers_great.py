"""GReaT as a peer (synllm.generate.great, rule base_lm): the registry entry, the base model
folder, the one-line errors, and (slow) fine-tuning the embedded SmolLM2 on a small real
subset and sampling valid, seeded records from it."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pandas as pd
import pytest

from synllm.cli import main
from synllm.generate.base_lm import base_model_folder
from synllm.generate.great import great_frame
from synllm.registry import load_registry
from synllm.validate import validate_text

TINY = {
    "epochs": 1,
    "batch_size": 4,
    "max_train_rows": 240,
    "max_train_seconds": 240,
    "finetuning": "lora",
    "learning_rate": 0.003,
}


def registry(tmp_path: Path, base: str = "smollm2-135m", train: dict | None = None) -> Path:
    shipped = load_registry(Path("config/models.yaml")).get("smollm2-135m")
    models = {
        "smollm2-135m": shipped.model_dump(exclude={"slug"}, exclude_none=True),
        "great": {
            "backend": "peer",
            "peer": "great",
            "base_model": base,
            "train": train or TINY,
            "threads": 2,
        },
    }
    path = tmp_path / "models.yaml"
    path.write_text(json.dumps({"models": models}))
    return path


def test_the_shipped_great_fine_tunes_the_embedded_model_with_lora_on_cpu(root):
    reg = load_registry(root / "config" / "models.yaml")
    spec = reg.get("great")
    assert spec.peer == "great" and spec.base_model == "smollm2-135m" and spec.env is None
    assert spec.budget("cpu").finetuning == "lora" and spec.budget("gpu").finetuning == "full"
    assert base_model_folder(spec, reg) == "results/base_lm/smollm2-135m"
    other = spec.model_copy(update={"base_model": "models/my-llama"})
    assert base_model_folder(other, reg) == "models/my-llama"


def test_great_without_a_base_model_is_a_registry_error(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text(
        json.dumps({"models": {"g": {"backend": "peer", "peer": "great", "train": TINY}}})
    )
    with pytest.raises(Exception, match="base_model"):
        load_registry(path)


def test_great_rows_keep_integers_as_integers(real):
    card, table = real("stroke")
    df = great_frame(table.head(50), card)
    assert str(df["hypertension"].dtype) == "Int64" and df["bmi"].dtype == "float64"
    assert all(isinstance(v, str) for v in df["gender"].dropna())


def _train_argv(reg, d, base, model, info, seed=3):
    argv = ["train-peer", "--model", "great", "--registry", str(reg)]
    argv += ["--card", "resources/datasets/stroke.yaml", "--train", str(d / "train.parquet")]
    argv += ["--seed", str(seed), "--threads", "2", "--base-model", str(base)]
    return argv + ["--out-model", str(model), "--out-info", str(info)]


def test_a_missing_base_model_folder_stops_training_with_one_line(stroke_split, tmp_path, capsys):
    pytest.importorskip("be_great")
    _, _, _, d = stroke_split
    model, info = tmp_path / "model.pkl", tmp_path / "train.json"
    argv = _train_argv(registry(tmp_path), d, tmp_path / "nowhere", model, info)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "base model folder" in err and "rule base_lm" in err
    assert not model.exists() and not info.exists()


def _generate(reg, d, model, out, seed):
    raw, meta = out.with_suffix(".txt"), out.with_suffix(".meta.json")
    argv = ["generate", "--model", "great", "--registry", str(reg)]
    argv += ["--card", "resources/datasets/stroke.yaml", "--train", str(d / "train.parquet")]
    argv += ["--holdout", str(d / "holdout.parquet"), "--n-records", "20", "--seed", str(seed)]
    argv += ["--peer-model", str(model), "--out-raw", str(raw), "--out-meta", str(meta)]
    assert main(argv) == 0
    return raw.read_text(), json.loads(meta.read_text())


@pytest.mark.slow
def test_great_fine_tunes_on_train_rows_only_and_samples_valid_seeded_records(
    stroke_split, tmp_path, monkeypatch, row_set
):
    pytest.importorskip("be_great")
    import be_great

    card, train, holdout, d = stroke_split
    reg = registry(tmp_path)
    base = tmp_path / "base"
    argv = ["base-lm", "--model", "smollm2-135m", "--registry", str(reg), "--out", str(base)]
    assert main(argv) == 0
    assert (base / "config.json").is_file() and (base / "model.safetensors").is_file()

    seen: list[pd.DataFrame] = []
    real_fit = be_great.GReaT.fit

    def spy(self, data, *args, **kwargs):
        seen.append(data.copy())
        return real_fit(self, data, *args, **kwargs)

    monkeypatch.setattr(be_great.GReaT, "fit", spy)
    model, info = tmp_path / "model.pkl", tmp_path / "train.json"
    assert main(_train_argv(reg, d, base, model, info)) == 0
    facts = json.loads(info.read_text())
    assert facts["train_rows"] == TINY["max_train_rows"] and facts["finetuning"] == "lora"
    assert facts["steps_run"] > 0 and facts["train_seconds"] > 0 and facts["peak_rss_mb"] > 0
    assert facts["model_file_mb"] < 20  # a LoRA adapter, not the base model's weights
    # GReaT saw the budget's train rows and nothing of the holdout
    key = list(card.columns)
    assert len(seen) == 1 and len(seen[0]) == TINY["max_train_rows"]
    got = row_set(seen[0], key)
    assert got <= row_set(train, key) and not got & row_set(holdout, key)

    text, meta = _generate(reg, d, model, tmp_path / "a", seed=11)
    again, _ = _generate(reg, d, model, tmp_path / "b", seed=11)
    other, _ = _generate(reg, d, model, tmp_path / "c", seed=12)
    assert text == again and text != other
    assert meta["generator_kind"] == "peer" and meta["sample_seconds"] > 0
    assert meta["train_seconds"] == facts["train_seconds"]
    records, report = validate_text(text, card, train=train)
    assert report["parsed"] >= 10 and report["valid"] >= 5, report
    assert list(records.columns)[: len(card.columns)] == key


@pytest.mark.slow
def test_the_same_seed_trains_the_same_lora_weights(stroke_split, tmp_path):
    """GReaT() draws its LoRA matrices from torch's generator before its Trainer seeds it; a
    budget without a time cap, so the step count cannot depend on the machine's load."""
    pytest.importorskip("be_great")
    _, _, _, d = stroke_split
    budget = {"epochs": 1, "batch_size": 4, "max_train_rows": 24, "finetuning": "lora"}
    reg = registry(tmp_path, train=budget)
    base = tmp_path / "base"
    argv = ["base-lm", "--model", "smollm2-135m", "--registry", str(reg), "--out", str(base)]
    assert main(argv) == 0
    weights = []
    for i in (1, 2):
        model, info = tmp_path / f"model{i}.pkl", tmp_path / f"train{i}.json"
        assert main(_train_argv(reg, d, base, model, info)) == 0
        assert json.loads(info.read_text())["steps_run"] == 6
        with open(model, "rb") as fh:
            weights.append(pickle.load(fh).files["lora_adapter/adapter_model.safetensors"])
    assert weights[0] == weights[1]
