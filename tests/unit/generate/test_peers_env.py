"""Peers in an environment of their own (synllm.generate.peers ENV_ADAPTERS, synllm.envs):
the registry's ``env``, the one-line missing-environment error, and (slow) training and
sampling through the CLI on a small real subset in the built environment."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from synllm import envs
from synllm.cli import main
from synllm.generate import peers
from synllm.registry import load_registry
from synllm.validate import validate_text

ENV_KINDS = tuple(peers.ENV_ADAPTERS)
TINY = {"epochs": 2, "batch_size": 64, "max_train_rows": 150, "max_train_seconds": 30}


def registry(tmp_path: Path) -> Path:
    models = {
        k: {"backend": "peer", "peer": k, "env": k, "train": TINY, "threads": 2} for k in ENV_KINDS
    }
    path = tmp_path / "models.yaml"
    path.write_text(json.dumps({"models": models}))
    return path


def test_shipped_environment_peers_name_their_environment(root):
    reg = load_registry(root / "config" / "models.yaml")
    for kind in ENV_KINDS:
        spec = reg.get(kind)
        assert spec.peer == kind and spec.env == kind
        assert (root / "envs" / f"{kind}.txt").is_file()
        assert peers.env_meta(spec, _card(root, "stroke"))["columns"]["stroke"] == "categorical"


def _card(root, name):
    from synllm.cards import load_card

    return load_card(root / "resources" / "datasets" / f"{name}.yaml")


def _train_argv(kind, reg, d, model, info, seed=3):
    return [
        "train-peer",
        "--model",
        kind,
        "--registry",
        str(reg),
        "--card",
        "resources/datasets/cirrhosis.yaml",
        "--train",
        str(d / "train.parquet"),
        "--seed",
        str(seed),
        "--threads",
        "2",
        "--out-model",
        str(model),
        "--out-info",
        str(info),
    ]


@pytest.mark.parametrize("kind", ENV_KINDS)
def test_a_missing_environment_stops_training_with_one_line(
    kind, cirrhosis_split, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("SYNLLM_ENVS_DIR", str(tmp_path / "none"))
    _, _, _, d = cirrhosis_split
    model, info = tmp_path / "model.pkl", tmp_path / "train.json"
    assert main(_train_argv(kind, registry(tmp_path), d, model, info)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"environment {kind!r} is not built" in err and f"synllm envs build {kind}" in err
    assert not model.exists() and not info.exists()


def _generate(kind, reg, d, model, out, seed):
    raw, meta = out.with_suffix(".txt"), out.with_suffix(".meta.json")
    argv = ["generate", "--model", kind, "--registry", str(reg)]
    argv += ["--card", "resources/datasets/cirrhosis.yaml", "--train", str(d / "train.parquet")]
    argv += ["--holdout", str(d / "holdout.parquet"), "--n-records", "25", "--seed", str(seed)]
    argv += ["--peer-model", str(model), "--out-raw", str(raw), "--out-meta", str(meta)]
    assert main(argv) == 0
    return raw.read_text(), json.loads(meta.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("kind", ENV_KINDS)
def test_an_environment_peer_trains_on_train_rows_only_and_samples_valid_seeded_records(
    kind, cirrhosis_split, tmp_path, monkeypatch, row_set
):
    envs.build(kind, envs.requirements_file(kind))
    card, train, holdout, d = cirrhosis_split
    seen: list[pd.DataFrame] = []
    real_run = envs.run_adapter

    def spy(python, adapter, args, name):
        # every data file handed to the adapter, read before it runs
        for flag, path in zip(args, args[1:]):
            if flag == "--train":
                seen.append(pd.read_parquet(path))
            assert flag not in ("--holdout", "--control"), args
        assert str(d / "holdout.parquet") not in args
        return real_run(python, adapter, args, name)

    monkeypatch.setattr(envs, "run_adapter", spy)
    reg = registry(tmp_path)
    model, info = tmp_path / "model.pkl", tmp_path / "train.json"
    assert main(_train_argv(kind, reg, d, model, info)) == 0
    facts = json.loads(info.read_text())
    assert facts["train_rows"] == TINY["max_train_rows"] and facts["adapter_inputs"] == [
        "train.parquet"
    ]
    assert facts["train_seconds"] > 0 and facts["peak_rss_mb"] > 0 and facts["env"] == kind
    # the rows the adapter got are train rows (ids kept by the split), none of the holdout's
    assert len(seen) == 1 and len(seen[0]) == TINY["max_train_rows"]
    key = list(card.columns)
    got = row_set(seen[0], key)
    assert got <= row_set(train, key) and not got & row_set(holdout, key)

    text, meta = _generate(kind, reg, d, model, tmp_path / "a", seed=11)
    again, _ = _generate(kind, reg, d, model, tmp_path / "b", seed=11)
    other, _ = _generate(kind, reg, d, model, tmp_path / "c", seed=12)
    assert text == again and text != other
    assert meta["generator_kind"] == "peer" and meta["sample_seconds"] > 0
    assert meta["train_seconds"] == facts["train_seconds"]
    records, report = validate_text(text, card, train=train)
    assert report["parsed"] == 25 and report["valid"] >= 20, report
    assert list(records.columns)[: len(card.columns)] == key
    shutil.rmtree(tmp_path / "none", ignore_errors=True)
