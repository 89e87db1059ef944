"""The validator on the authors' real raw outputs (../shared/fixtures/raw_llm_outputs).

1. Every one of the 266 files validates without an exception, and the per-file counts equal
   the committed table tests/data/fixture_validation_counts.csv (regenerate on purpose with
   ``scripts/update_fixture_counts.py`` and review the diff: lost records show up there).
2. Spot checks on named files whose counts were established by reading the files by hand
   (the parser's spot checks on printed tables: test_parsing.py).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from synllm.cards import find_card
from synllm.validate import read_raw, validate_text

# repo-relative: the tests run from the repo root (tests/conftest.py)
FIX = Path("..") / "shared" / "fixtures" / "raw_llm_outputs"
CARDS = Path("resources") / "datasets"
COUNTS = Path("tests") / "data" / "fixture_validation_counts.csv"


def _script():
    spec = importlib.util.spec_from_file_location(
        "update_fixture_counts", Path("scripts") / "update_fixture_counts.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


@pytest.fixture(scope="module")
def counts(shared_dir):
    return _script().fixture_counts(FIX, CARDS)


def validate_fixture(dataset: str, model: str, prompt: str, **kw):
    card = find_card(dataset, CARDS)
    return validate_text(read_raw(FIX / dataset / model / f"{prompt}.txt"), card, **kw)


def test_all_fixture_files_validate_and_match_committed_counts(counts):
    assert len(counts) == 266
    assert set(counts["dataset"]) == {"diabetes", "stroke", "cirrhosis"}
    committed = pd.read_csv(COUNTS)
    assert list(committed.columns) == list(counts.columns)
    merged = committed.merge(
        counts, on=["dataset", "model", "prompt"], suffixes=("_committed", "_now")
    )
    assert len(merged) == len(committed) == len(counts)
    diffs = []
    for col in counts.columns[3:]:
        bad = merged[merged[f"{col}_committed"] != merged[f"{col}_now"]]
        for _, r in bad.iterrows():
            diffs.append(
                f"{r.dataset}/{r.model}/{r.prompt}: {col} {r[f'{col}_committed']} -> {r[f'{col}_now']}"
            )
    assert not diffs, (
        "fixture counts changed (run scripts/update_fixture_counts.py if intended):\n"
        + "\n".join(diffs[:40])
    )


def test_fixture_accounting_is_consistent(counts):
    rej = [c for c in counts.columns if c.startswith("rejected_") and c != "rejected_parse_error"]
    assert (counts["candidate_lines"] == counts["parsed"] + counts["rejected_parse_error"]).all()
    assert (
        counts["parsed"]
        == counts["valid"] + counts["echo_copied_in_output"] + counts[rej].sum(axis=1)
    ).all()
    assert ((counts["valid"] == 0) == (counts["status"] == "empty")).all()
    # the corpus holds real records: most files give some, a few give none
    assert counts["valid"].sum() > 15000 and (counts["valid"] > 0).sum() > 200


def test_spot_csv_base_model_continuation():
    """diabetes/lmsys_vicuna-13b-v1.5/prompt1: the prompt (system line, 9 feature lines and 6
    example CSV rows) is printed 16 times; there is no assistant marker. The model continued
    the example list with its own rows before the prompt restarts. Rows with 8 commas that
    are not one of the 6 examples (grep by hand): lines 21, 68, 92, 93, 115, 116, 182, 250 ->
    8 generated records, all well-formed, in range and clinically consistent (HbA1c > 6.6
    only with diabetes = 1; glucose <= 200). Echo: 16 blocks x 6 example rows = 96."""
    out, rep = validate_fixture("diabetes", "lmsys_vicuna-13b-v1.5", "prompt1")
    assert rep["candidate_lines"] == 8 and rep["parsed"] == 8 and rep["valid"] == 8
    assert rep["echo"]["in_prompt"] == 96 and rep["echo"]["copied_in_output"] == 0
    assert rep["format_detected"] == "csv"
    assert out.iloc[0].tolist() == ["Female", 29.9, 1, 0, "never", 24.6, 5.7, 130, 0]
    assert out.iloc[-1].tolist() == ["Female", 52.9, 1, 0, "never", 28.1, 6.3, 160, 0]


def test_spot_key_value_blocks_with_echoed_examples():
    """diabetes/meta-llama_Llama-2-13b-chat-hf/prompt3 (by hand):
    - CSV rows outside the examples: line 110 Female,43.9,1,1,former,33.33,7.3,155,1 (valid),
      225 Female,43.9,1,0,never,32.8,6.8,170,0 (HbA1c 6.8 > 6.6 but diabetes 0: clinical rule),
      540 Female,42.8,0,1,former,31.73,6.5,120,1 (valid), 1113 Female,40.0,0,0,current,28.5,5.8,120,0 (valid).
    - One answer lists 'Patient 1..6' as 'Gender: Female / Age: 45.2 / ...' blocks: patients 2,
      3, 5 and 6 equal example rows 2, 3, 4 and 6 after coercion (Former -> former, No Info) ->
      4 echo copies; patient 4 (HbA1c 6.8, diabetes 0) breaks the HbA1c rule; patient 1 has
      hypertension 0 where example 1 has 1, so it is a new, valid record.
    Total: 10 candidates, 4 echo copies, 2 clinical rejections, 4 valid."""
    out, rep = validate_fixture("diabetes", "meta-llama_Llama-2-13b-chat-hf", "prompt3")
    assert rep["candidate_lines"] == 10 and rep["valid"] == 4
    assert rep["echo"]["copied_in_output"] == 4
    assert (
        rep["rejected"]["clinical_rule"] == 2
        and rep["rule_violations"]["hba1c_implies_diabetes"] == 2
    )
    assert rep["formats"] == {"csv": 4, "key_value": 6}
    assert sorted(out["HbA1c_level"].tolist()) == [5.8, 6.2, 6.5, 7.3]
    _, flagged = validate_fixture(
        "diabetes", "meta-llama_Llama-2-13b-chat-hf", "prompt3", clinical_rules="flag"
    )
    assert flagged["valid"] == 6 and flagged["flagged_clinical"] == 2


def test_spot_echoed_prompt_only_garbage():
    """cirrhosis/stabilityai_StableBeluga-7B/prompt1: the file is the prompt 34 times and
    nothing else (every non-blank line occurs exactly 34 times, by `sort | uniq -c`), with 3
    example rows per prompt ('1, 400, D, D-penicillamine, ...'). Zero generated records; the
    102 echoed example rows must not be counted as generated."""
    out, rep = validate_fixture("cirrhosis", "stabilityai_StableBeluga-7B", "prompt1")
    assert rep["candidate_lines"] == 0 and rep["valid"] == 0 and rep["status"] == "empty"
    assert rep["echoed_examples_removed"] == 102 and len(out) == 0
    assert list(out.columns) == list(find_card("cirrhosis", CARDS).columns)


def test_spot_chat_markers_inline_assistant():
    """stroke/openchat_openchat_3.5/prompt1: 'GPT4 System: ... Human: ... Assistant: <row>' with
    the first generated row on the marker line. The 4 example rows ('Male, 67.0, 0, 1, Yes,
    Private, ...') sit in the Human turn and never become candidates; the first generated row
    'Female, 74.0, 1, 0, Yes, Self-employed, Urban, 149.48, 31.3, formerly smoked, 0' is."""
    out, rep = validate_fixture("stroke", "openchat_openchat_3.5", "prompt1")
    assert out.iloc[0].tolist() == [
        "Female",
        74.0,
        1,
        0,
        "Yes",
        "Self-employed",
        "Urban",
        149.48,
        31.3,
        "formerly smoked",
        0,
    ]
    assert rep["echo"]["copied_in_output"] == 0 and rep["echo"]["in_prompt"] > 0
    ex = ["Male", 67.0, 0, 1, "Yes", "Private", "Urban", 228.69, 36.6, "formerly smoked", 1]
    assert not (out.astype(object).apply(lambda r: r.tolist() == ex, axis=1)).any()
    # 'Self_employed' (a synonym) is read as Self-employed
    assert (
        "Self_employed" not in set(out["work_type"])
        and (out["work_type"] == "Self-employed").sum() > 5
    )
