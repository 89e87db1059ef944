"""Shared test setup: run from the repo root, never reach a model hub."""

import functools
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
os.chdir(ROOT)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

DATASETS = ("diabetes", "stroke", "cirrhosis")


@functools.cache
def load_real(name: str):
    """(card, full typed table) of a shipped dataset, loaded once per session."""
    from synllm.cards import find_card
    from synllm.split import load_table

    card = find_card(name, ROOT / "resources" / "datasets")
    return card, load_table(card, ROOT / "resources" / "data")


@pytest.fixture(scope="session")
def real():
    return load_real


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(
            "../shared is missing: tests need the shared datasets and fixtures beside the repo"
        )
    return SHARED
