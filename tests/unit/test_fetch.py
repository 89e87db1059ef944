"""``synllm fetch-models`` on a local fake Hugging Face cache: no network anywhere.

The cache folder is built by hand in the hub layout (``models--org--name/refs/main`` and
``snapshots/<commit>/...``); the Hub client's download functions are replaced by ones that
fail the test (offline) or raise the Hub's own GatedRepoError / RepositoryNotFoundError.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from synllm import fetch
from synllm.errors import ConfigError

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _fake_model(cache: Path, hf_id: str, files: dict[str, str]) -> None:
    repo = cache / ("models--" + hf_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    snap = repo / "snapshots" / COMMIT
    snap.mkdir(parents=True)
    for name, body in files.items():
        (snap / name).write_text(body)


@pytest.fixture()
def cache(tmp_path):
    c = tmp_path / "hub"
    _fake_model(
        c,
        "openai-community/gpt2",
        {"config.json": "{}", "model.safetensors": "w", "tokenizer.json": "{}"},
    )
    # an interrupted download: the index names two shards, one is there
    index = {
        "weight_map": {
            "a": "model-00001-of-00002.safetensors",
            "b": "model-00002-of-00002.safetensors",
        }
    }
    _fake_model(
        c,
        "openai-community/gpt2-medium",
        {
            "config.json": "{}",
            "model.safetensors.index.json": json.dumps(index),
            "model-00001-of-00002.safetensors": "w",
        },
    )
    return c


@pytest.fixture()
def no_network(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the network was touched")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", refuse)
    return refuse


def test_offline_check_reports_present_and_missing(cache, registry, monkeypatch, no_network):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    models = [
        "gpt2",
        "gpt2-medium",
        "llama-2-7b-chat",
        "smollm2-135m",
        "smollm2-135m-hf",
        "holdout",
    ]
    got = {s.slug: s for s in fetch.fetch_models(models, registry, str(cache))}
    # the embedded GGUF models and baselines never need the Hub
    assert set(got) == {"gpt2", "gpt2-medium", "llama-2-7b-chat"}
    assert got["gpt2"].status == "present"
    assert got["gpt2-medium"].status == "missing"  # a shard is absent: not loadable
    assert got["llama-2-7b-chat"].status == "missing"
    assert "fetch-models" in got["llama-2-7b-chat"].detail
    assert fetch.missing_files(
        cache / "models--openai-community--gpt2-medium" / "snapshots" / COMMIT
    ) == ["model-00002-of-00002.safetensors"]


def test_gated_and_unknown_models_give_one_line_with_the_fix(cache, registry, monkeypatch):
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def hub_error(cls, message):
        # the Hub client's own exception class, without an HTTP response object
        err = cls.__new__(cls)
        Exception.__init__(err, message)
        return err

    def list_files(self, repo_id, *a, **k):
        if repo_id.startswith("meta-llama/"):
            raise hub_error(GatedRepoError, "Access to model is restricted")
        raise hub_error(RepositoryNotFoundError, "Repository Not Found")

    monkeypatch.setattr(HfApi, "list_repo_files", list_files)
    monkeypatch.setattr(
        socket.socket, "connect", lambda *a, **k: (_ for _ in ()).throw(AssertionError)
    )
    got = {
        s.slug: s
        for s in fetch.fetch_models(
            ["gpt2", "llama-2-7b-chat", "mpt-7b-instruct"], registry, str(cache)
        )
    }
    assert got["gpt2"].status == "present"
    gated = got["llama-2-7b-chat"]
    assert gated.status == "gated" and "HF_TOKEN" in gated.detail
    assert "https://huggingface.co/meta-llama/Llama-2-7b-chat-hf" in gated.detail
    assert got["mpt-7b-instruct"].status == "not_found" and "hf_id" in got["mpt-7b-instruct"].detail
    assert "\n" not in gated.line()


def test_download_patterns_prefer_safetensors():
    assert "*.bin" not in fetch.download_patterns(
        ["config.json", "model.safetensors", "pytorch_model.bin"]
    )
    assert "*.bin" in fetch.download_patterns(["config.json", "pytorch_model.bin"])


def test_cli_exits_2_with_one_line_naming_the_model(cache, tmp_path, root):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("models: [gpt2, llama-3-8b]\n")
    env = {
        "PATH": "",
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(cache),
        "PYTHONPATH": str(root / "src"),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "synllm",
            "fetch-models",
            "--configfile",
            str(cfg),
            "--out",
            str(tmp_path / "report.txt"),
        ],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "llama-3-8b" in proc.stderr and "meta-llama/Meta-Llama-3-8B" in proc.stderr
    assert "fetch-models" in proc.stderr
    report = (tmp_path / "report.txt").read_text()
    assert report.startswith("present") and "missing" in report
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "synllm",
            "fetch-models",
            "--models",
            "gpt2",
            "--registry",
            "config/models.yaml",
            "--check",
        ],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
    )
    assert ok.returncode == 0 and ok.stdout.startswith("present")


def test_no_models_is_an_error():
    with pytest.raises(SystemExit):
        fetch.cli(["--bogus"])
    with pytest.raises(ConfigError, match="--configfile or --models"):
        fetch.cli([])
