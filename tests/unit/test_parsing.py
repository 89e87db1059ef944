"""The parser (synllm.parsing): record candidates in any format from raw LLM text, echoed
prompts told apart from generated text.

Format and segmentation checks through the validator's report on hand-made text, spot checks
on the authors' raw outputs (../shared/fixtures/raw_llm_outputs), and :func:`parse_text`,
:func:`segment` and :class:`KeyMap` directly on real lines of that corpus. Typing, checks and
echo/leak accounting of the candidates: test_validate.py, test_validate_fixtures.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from synllm.parsing import ID_KEY, KeyMap, norm_category, parse_text, segment
from synllm.validate import validate_text


def lines(text: str, first: int, last: int) -> str:
    """Lines ``first``..``last`` (1-based, inclusive) of a raw output."""
    return "\n".join(text.splitlines()[first - 1 : last])


# ------------------------------------------------------------------------------ formats
def test_header_in_other_order_and_row_numbers(card):
    diabetes = card("diabetes")
    text = (
        "diabetes, gender, age, hypertension, heart_disease, smoking_history, bmi, HbA1c_level, blood_glucose_level\n"
        "0, Female, 30, 0, 0, never, 22.0, 5.0, 100\n"
        "1. 1, Male, 60, 1, 0, former, 31.0, 7.5, 210\n"
    )
    out, rep = validate_text(text, diabetes)
    assert rep["valid"] == 2
    assert out["diabetes"].tolist() == [0, 1] and out["gender"].tolist() == ["Female", "Male"]
    # leading row number (ncols + 1 fields, first an integer) is dropped
    out2, rep2 = validate_text(
        "1,Male,50,0,0,never,25,5.5,120,0\n2,Female,40,0,0,current,24,5.1,110,0", diabetes
    )
    assert rep2["valid"] == 2 and out2["age"].tolist() == [50.0, 40.0]


def test_ndjson_array_and_truncated_json(card):
    diabetes = card("diabetes")
    rec = {
        "gender": "Female",
        "age": 41,
        "hypertension": 0,
        "heart_disease": 0,
        "smoking_history": "never",
        "bmi": 24.1,
        "HbA1c_level": 5.2,
        "blood_glucose_level": 99,
        "diabetes": 0,
    }
    nd = "\n".join(json.dumps(dict(rec, age=a)) for a in (41, 42))
    arr = "```json\n" + json.dumps([dict(rec, age=43), dict(rec, age=44)], indent=2) + "\n```"
    trunc = json.dumps(dict(rec, age=45))[:60]
    out, rep = validate_text(nd + "\n" + arr + "\n" + trunc, diabetes)
    assert out["age"].tolist() == [41.0, 42.0, 43.0, 44.0]
    assert rep["format_detected"] == "json"
    assert rep["rejected"]["parse_error"] == 1 and rep["candidate_lines"] == 5


def test_key_value_blocks_markdown_units_human_keys(card):
    diabetes = card("diabetes")
    text = (
        "Here are the records:\n\n**Patient 1**\n"
        "- **Gender**: female\n- **Age**: 54 years\n- **Hypertension**: Yes\n- **Heart Disease**: No\n"
        "- **Smoking History**: Never smoked\n- **BMI**: 31.2 kg/m²\n- **HbA1c Level**: 7.1%\n"
        "- **Blood Glucose Level**: 180 mg/dL\n- **Diabetes**: Yes\n\n"
        "Gender: Male, Age: 33, Hypertension: No, Heart Disease: No, Smoking History: current, "
        "BMI: 22.5, HbA1c_level: 5.0, Blood Glucose Level: 90, Diabetes: No\n"
    )
    out, rep = validate_text(text, diabetes)
    assert rep["valid"] == 2 and rep["format_detected"] == "key_value"
    r = out.iloc[0]
    assert (
        r.gender,
        r.age,
        r.hypertension,
        r.smoking_history,
        r.HbA1c_level,
        r.blood_glucose_level,
        r.diabetes,
    ) == ("Female", 54.0, 1, "never", 7.1, 180, 1)
    assert out.iloc[1]["gender"] == "Male" and out.iloc[1]["diabetes"] == 0


def test_markdown_table(card):
    stroke = card("stroke")
    text = (
        "| Gender | Age | Hypertension | Heart Disease | Ever Married | Work Type | Residence Type "
        "| Avg Glucose Level | BMI | Smoking Status | Stroke |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
        "| Male | 67 | 0 | 1 | Yes | Private | Urban | 228.69 | 36.6 | formerly smoked | 1 |\n"
        "| female | 8 | 0 | 0 | No | Children | rural | 90.1 | N/A | Unknown | 0 |\n"
    )
    out, rep = validate_text(text, stroke)
    assert rep["valid"] == 2 and rep["format_detected"] == "markdown_table"
    assert out["work_type"].tolist() == ["Private", "children"]
    assert out["Residence_type"].tolist() == ["Urban", "Rural"]
    assert np.isnan(out.loc[1, "bmi"]) and out.loc[1, "smoking_status"] == "Unknown"


def test_chat_tokens_and_echoed_prompt_dropped(card):
    diabetes = card("diabetes")
    prompt_rows = "Female,45.2,1,0,never,28.5,6.2,140,0\nMale,62.7,1,1,former,32.1,7.1,185,1\n"
    text = (
        "<|system|>\nYou are a generator.</s>\n<|user|>\nGenerate records like these:\n"
        + prompt_rows
        + "</s>\n<|assistant|>\nFemale,30.0,0,0,never,22.0,5.0,100,0\n"
        "Male,62.7,1,1,former,32.1,7.1,185,1\n"  # a copy of an example: removed as echo
    )
    out, rep = validate_text(text, diabetes)
    assert rep["valid"] == 1 and out.loc[0, "age"] == 30.0
    assert rep["candidate_lines"] == 2  # the two example rows of the prompt are no candidates
    assert rep["echo"] == {"in_prompt": 2, "copied_in_output": 1, "prompt_candidates": 2}
    assert rep["echoed_examples_removed"] == 3


def test_inst_and_role_lines(card):
    diabetes = card("diabetes")
    text = "[INST] Make data. Example: Female,45.2,1,0,never,28.5,6.2,140,0 [/INST] Male,50,0,0,never,27,5.5,130,0"
    out, rep = validate_text(text, diabetes)
    assert rep["valid"] == 1 and out.loc[0, "gender"] == "Male"
    text2 = (
        "system\nBe useful.\nuser\nexample Female,45.2,1,0,never,28.5,6.2,140,0\n"
        "assistant\nMale,50,0,0,never,27,5.5,130,0\n"
    )
    assert validate_text(text2, diabetes)[1]["valid"] == 1


def test_base_model_echo_uses_common_prefix(card):
    """No assistant marker: the prompt repeated per batch is the common prefix of the blocks."""
    diabetes = card("diabetes")
    prompt = (
        "You are a synthetic medical data generator for diabetes.\n"
        "Examples:\nFemale,45.2,1,0,never,28.5,6.2,140,0\n"
    )
    text = (
        prompt
        + "Male,50,0,0,never,27,5.5,130,0\n"
        + prompt
        + "Female,61,1,0,former,30,6.0,150,0\nFemale,45.2,1,0,never,28.5,6.2,140,0\n"
    )
    out, rep = validate_text(text, diabetes)
    assert (
        rep["valid"] == 2 and rep["echo"]["in_prompt"] == 2 and rep["echo"]["copied_in_output"] == 1
    )


# ------------------------------------------------------------------------------ the authors' raw outputs
def test_spot_printed_pandas_table(raw_output, card):
    """stroke/google_gemma-7b-it/prompt3, lines 80-86 (by hand): a pandas ``print(df)`` table,
    whitespace-aligned, index first, with multi-word categories ('formerly smoked') and an
    elided '...' row:
        0   Male  62.0  0  1  Yes  Private  Urban  183.45  32.2  formerly smoked  0
        1  Female  24.0  0  0  Yes  Self-employed  Rural  126.87  26.8  never smoked  0
        ...  ...  (not a record)
        99  Male  72.0  0  0  Yes  Private  Urban  189.23  38.1  formerly smoked  0
    The rows are records of format ``text_table``; the '...' row is none."""
    out, rep = validate_text(raw_output("stroke", "google_gemma-7b-it", "prompt3"), card("stroke"))
    assert rep["format_detected"] == "text_table" and rep["formats"]["text_table"] >= 40
    rows = [r for r in out.astype(object).values.tolist()]
    assert [
        "Male",
        62.0,
        0,
        1,
        "Yes",
        "Private",
        "Urban",
        183.45,
        32.2,
        "formerly smoked",
        0,
    ] in rows
    assert [
        "Female",
        24.0,
        0,
        0,
        "Yes",
        "Self-employed",
        "Rural",
        126.87,
        26.8,
        "never smoked",
        0,
    ] in rows
    assert [
        "Male",
        72.0,
        0,
        0,
        "Yes",
        "Private",
        "Urban",
        189.23,
        38.1,
        "formerly smoked",
        0,
    ] in rows


def test_spot_printed_table_misaligned_rows_are_parse_errors(raw_output, card):
    """cirrhosis/google_gemma-7b-it/prompt2, lines 910-913: the header has 20 columns (ID ..
    Stage), each row the index plus 21 values ('... 12.2  4.0  1': one value too many). A
    row that cannot be lined up with its header is a parse error, not a shifted record."""
    text = raw_output("cirrhosis", "google_gemma-7b-it", "prompt2")
    rows = [c for c in parse_text(text, card("cirrhosis")) if c.kind == "text_table"]
    assert len(rows) == 4 and all(c.fields is None for c in rows)
    assert "do not line up with the 20 header columns" in rows[0].error


# ------------------------------------------------------------------------------ parse_text, segment
def test_key_value_block_of_a_chat_model(raw_output, card):
    """diabetes/meta-llama_Llama-2-13b-chat-hf/prompt3, lines 231-240: a 'Patient 1:' title and
    one 'Key: value' line per column, keys capitalised: one kv candidate in card order, the
    values as written; the title line is no candidate."""
    text = lines(raw_output("diabetes", "meta-llama_Llama-2-13b-chat-hf", "prompt3"), 231, 240)
    assert text.startswith("Patient 1:\nGender: Female\nAge: 45.2")
    (c,) = parse_text(text, card("diabetes"))
    assert c.kind == "kv" and not c.in_prompt and c.error is None
    assert c.fields == {
        "gender": "Female",
        "age": "45.2",
        "hypertension": "0",
        "heart_disease": "0",
        "smoking_history": "Never",
        "bmi": "28.5",
        "HbA1c_level": "6.2",
        "blood_glucose_level": "140",
        "diabetes": "0",
    }


def test_pretty_printed_json_in_a_code_fence(raw_output, card):
    """diabetes/01-ai_Yi-6B-Chat/prompt1, lines 147-159: one record as an indented JSON object
    between ``` fences: one json candidate, every value as its text."""
    text = lines(raw_output("diabetes", "01-ai_Yi-6B-Chat", "prompt1"), 147, 159)
    assert text.startswith("```\n{") and text.endswith("}\n```")
    (c,) = parse_text(text, card("diabetes"))
    assert c.kind == "json" and not c.truncated and c.error is None
    assert c.fields == dict(
        zip(
            card("diabetes").feature_names,
            ["female", "45.2", "1", "0", "never", "28.5", "6.2", "140", "1"],
        )
    )


def test_chat_transcript_splits_into_prompt_and_generated_pieces(raw_output, card):
    """cirrhosis/Qwen_Qwen2-7B-Instruct/prompt1, lines 1-22: 'system' / 'user' role lines with
    the format line and 3 example rows (ID first), then 'Assistant: Here are additional ...'
    and a markdown table. The examples are prompt candidates (ID dropped: 19 card columns),
    the table rows generated ones."""
    text = lines(raw_output("cirrhosis", "Qwen_Qwen2-7B-Instruct", "prompt1"), 1, 22)
    pieces = segment(text)
    assert [p for _, p in pieces] == [True, False]
    assert "Here are some example records:" in pieces[0][0]
    assert pieces[1][0].startswith("Here are additional synthetic patient records")
    cands = parse_text(text, card("cirrhosis"))
    prompt = [c for c in cands if c.in_prompt]
    assert [c.kind for c in prompt] == ["csv"] * 3
    assert [c.fields["N_Days"] for c in prompt] == ["400", "4500", "1012"]
    assert all(len(c.fields) == 19 and ID_KEY not in c.fields for c in prompt)
    generated = [c for c in cands if not c.in_prompt]
    assert [c.kind for c in generated] == ["table"] * 4


def test_markdown_table_rows_follow_their_header(raw_output, card):
    """cirrhosis/Qwen_Qwen2-7B-Instruct/prompt1, lines 17-22: a markdown table whose header
    starts with ID. A row of all 20 values is read by its header (the ID left out)."""
    text = lines(raw_output("cirrhosis", "Qwen_Qwen2-7B-Instruct", "prompt1"), 17, 22)
    cirrhosis = card("cirrhosis")
    rows = parse_text(text, cirrhosis)
    assert len(rows) == 4 and {c.kind for c in rows} == {"table"}
    # line 20: | 5 | 1800 | C | D-penicillamine | 19347 | M | N | Y | Y | N | 1.2 | ... | 3.0 |
    assert rows[1].fields == dict(
        zip(
            cirrhosis.feature_names,
            "1800 C D-penicillamine 19347 M N Y Y N 1.2 308.0 4.00 50.0 7167.0 110.0 85.0 "
            "225.0 11.2 3.0".split(),
        )
    )


def test_key_map_resolves_the_names_models_write(card):
    """Column names as the corpus writes them (case, spaces for underscores, markdown bold,
    'level' left out) map to card columns; id-like keys to ID_KEY; anything else to None."""
    km = KeyMap(card("diabetes"))
    assert km.resolve("Blood Glucose Level") == km.resolve("Blood_glucose_level")
    assert km.resolve("Blood_glucose_level") == "blood_glucose_level"
    assert km.resolve("**BMI**") == "bmi" and km.resolve("Smoking History") == "smoking_history"
    assert km.resolve("HbA1c") == km.resolve("hba1c level") == "HbA1c_level"
    assert km.resolve("Patient ID") == km.resolve("ID") == ID_KEY
    assert km.resolve("weight") is None
    assert km.min_fields == 5  # half of 9 columns, rounded up


@pytest.mark.parametrize(
    "written, category",
    [
        ("Self_employed", "Self-employed"),
        ("self employed", "Self-employed"),
        ("Formerly-Smoked", "formerly smoked"),
    ],
)
def test_category_spellings_normalise_alike(written, category):
    """stroke/openchat_openchat_3.5/prompt1 writes 'Self_employed' for the card's
    'Self-employed': separators and case do not matter."""
    assert norm_category(written) == norm_category(category)
