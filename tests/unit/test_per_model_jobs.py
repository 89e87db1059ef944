"""Per-model jobs (rules generate_model, validate_model, evaluate_model): which models get
them, and that a job over several cells writes what one job per cell writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synllm.cards import load_card
from synllm.cli import main as synllm_main
from synllm.generate import run as gen
from synllm.generate.base import GenerationContext, GenerationSettings

STYLES = ("SEEDEx", "FEATDESC", "STATGUIDE", "CLINRULE")


@pytest.fixture(scope="module")
def corpus(shared_dir) -> Path:
    return shared_dir / "fixtures" / "raw_llm_outputs"


def test_which_models_run_one_job_per_model(registry):
    gpt2, smol, holdout = (registry.get(s) for s in ("gpt2", "smollm2-135m", "holdout"))
    assert gpt2.backend == "transformers" and gpt2.one_job_per_model()
    assert not gpt2.one_job_per_model(load_once=False)  # one load per cell asked for
    assert gpt2.one_job_per_model("replay", load_once=False)  # replayed: no load at all
    assert not smol.one_job_per_model()  # llama.cpp keeps one job per cell
    assert smol.one_job_per_model("replay")
    assert not holdout.one_job_per_model() and not holdout.one_job_per_model("replay")


def test_replay_cells_of_one_job_equal_one_job_per_cell(registry, cards_dir, corpus):
    """The authors ran no CLINRULE prompt for gpt2 on cirrhosis: in a per-model job that cell
    must stay empty, not inherit the text of the cell before it."""
    spec = registry.get("gpt2")
    card = load_card(cards_dir / "cirrhosis.yaml")
    settings = GenerationSettings(backend_override="replay", replay_dir=str(corpus))
    contexts = [
        GenerationContext(
            card=card, prompt={"system": "s", "user": "u", "style": s}, prompt_style=s
        )
        for s in STYLES
    ]
    together = list(gen.generate_cells(spec, settings, contexts, 100, 1))
    alone = [gen.generate(spec, settings, c, 100, 1) for c in contexts]
    assert [r.text for r in together] == [r.text for r in alone]
    assert [r.meta["warnings"] for r in together] == [r.meta["warnings"] for r in alone]
    missing = [s for s, r in zip(STYLES, alone, strict=True) if r.text == ""]
    assert missing, "the corpus should hold a prompt without output for this model"


def test_validate_several_cells_equals_one_call_each(tmp_path, cards_dir, corpus):
    card = cards_dir / "stroke.yaml"
    raws = sorted((corpus / "stroke").glob("*/prompt2.txt"))[:3]
    for i, raw in enumerate(raws):
        synllm_main(
            ["validate", "--card", str(card), "--raw", str(raw)]
            + [
                "--out-csv",
                str(tmp_path / f"a{i}.csv"),
                "--out-report",
                str(tmp_path / f"a{i}.json"),
            ]
        )
    synllm_main(
        ["validate", "--card", str(card), "--raw", *map(str, raws), "--out-csv"]
        + [str(tmp_path / f"b{i}.csv") for i in range(3)]
        + ["--out-report"]
        + [str(tmp_path / f"b{i}.json") for i in range(3)]
    )
    for i in range(3):
        assert (tmp_path / f"a{i}.csv").read_bytes() == (tmp_path / f"b{i}.csv").read_bytes()
        a, b = (json.loads((tmp_path / f"{x}{i}.json").read_text()) for x in "ab")
        assert a == b


def test_one_value_per_cell_or_a_one_line_error(capsys, cards_dir, corpus):
    card = str(cards_dir / "stroke.yaml")
    raw = str(next((corpus / "stroke").glob("*/prompt2.txt")))
    assert (
        synllm_main(
            ["validate", "--card", card, "--raw", raw, raw, "--out-csv", "x.csv"]
            + ["--out-report", "x.json", "y.json"]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "one value per cell" in err
    assert (
        synllm_main(
            ["evaluate", "--card", card, "--synthetic", "a.csv", "--train", "t", "--holdout"]
            + ["h", "--validation", "a.json", "--out", "a.json", "b.json"]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "give one value per cell" in err
