"""Validator unit tests: typed output, coercion, checks, echo removal, report and CLI contract
(the formats the parser reads and the prompt / generated split: test_parsing.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synllm.cards import find_card
from synllm.cli import main as synllm_main
from synllm.errors import SynllmError
from synllm.validate import coerce_records, validate_file, validate_text

CARDS = Path("resources/datasets")
DIAB_COLS = "gender,age,hypertension,heart_disease,smoking_history,bmi,HbA1c_level,blood_glucose_level,diabetes"


def run(text, card, **kw):
    return validate_text(text, card, **kw)


# ------------------------------------------------------------------------------ typed output, echoed examples
def test_plain_csv_rows(card):
    diabetes = card("diabetes")
    out, rep = run(
        "Female,45.2,1,0,never,28.5,6.2,140,0\nMale, 62.7, 1, 1, former, 32.1, 7.1, 185, 1\n",
        diabetes,
    )
    assert rep["valid"] == 2 and rep["format_detected"] == "csv"
    assert list(out.columns) == DIAB_COLS.split(",")
    assert out.loc[1, "smoking_history"] == "former" and out.loc[1, "blood_glucose_level"] == 185
    assert str(out["blood_glucose_level"].dtype) == "Int64" and str(out["bmi"].dtype) == "float64"


def test_prompt_json_example_rows_removed(card):
    diabetes = card("diabetes")
    prompt = {
        "system": "You generate data.",
        "user": "Write diabetes records as CSV rows please.",
        "example_rows": [
            {
                "gender": "Female",
                "age": 54.0,
                "hypertension": 0,
                "heart_disease": 0,
                "smoking_history": "never",
                "bmi": 27.32,
                "HbA1c_level": 6.6,
                "blood_glucose_level": 80,
                "diabetes": 0,
            }
        ],
    }
    text = (
        "Write diabetes records as CSV rows please.\n"
        "female, 54, No, No, never, 27.32, 6.6, 80, 0\nMale,50,0,0,never,27,5.5,130,0"
    )
    out, rep = run(text, diabetes, prompt=prompt)
    assert (
        rep["valid"] == 1
        and rep["echo"]["copied_in_output"] == 1
        and out.loc[0, "gender"] == "Male"
    )


def test_copies_of_real_example_rows_are_kept_and_counted(card):
    """SEEDEx shows real train rows (``example_rows_real``): a generated copy of one is a leak,
    kept in the table and counted; the echoed prompt text itself still yields no candidate."""
    diabetes = card("diabetes")
    row = {
        "gender": "Female",
        "age": 54.0,
        "hypertension": 0,
        "heart_disease": 0,
        "smoking_history": "never",
        "bmi": 27.32,
        "HbA1c_level": 6.6,
        "blood_glucose_level": 80,
        "diabetes": 0,
    }
    user = "Write diabetes records as CSV rows please.\nFemale,54.0,0,0,never,27.32,6.6,80,0"
    prompt = {
        "system": "You generate data.",
        "user": user,
        "example_rows": [row],
        "example_rows_real": True,
    }
    text = (
        user + "\nfemale, 54, No, No, never, 27.32, 6.6, 80, 0\nMale,50,0,0,never,27,5.5,130,0\n"
        "Female,54.0,0,0,never,27.32,6.6,80,0\n"
    )
    out, rep = run(text, diabetes, prompt=prompt)
    assert (
        rep["candidate_lines"] == 3 and rep["echo"]["copied_in_output"] == 0
    )  # echo: no candidate
    assert rep["valid"] == 3 and rep["prompt_copies"] == 2 and rep["prompt_copy_rows"] == [0, 2]
    assert rep["example_rows_real"] is True and rep["within_duplicates"] == 1
    assert out.loc[0].tolist() == list(row.values())
    # the same rows not marked real (replayed authors' prompts, hand-written): dropped as echo
    out, rep = run(text, diabetes, prompt={**prompt, "example_rows_real": False})
    assert rep["valid"] == 1 and rep["echo"]["copied_in_output"] == 2 and rep["prompt_copies"] == 0
    # hand-written examples of an echoed prompt that are not in the JSON are dropped too
    extra = "Male,62.7,1,1,former,32.1,7.1,185,1"
    text2 = "<|user|>\n" + user + "\n" + extra + "\n</s>\n<|assistant|>\n" + extra + "\n" + text
    out, rep = run(text2, diabetes, prompt=prompt)
    assert rep["echo"]["in_prompt"] == 1 and rep["echo"]["copied_in_output"] == 1
    assert rep["valid"] == 3 and rep["prompt_copies"] == 2


# ------------------------------------------------------------------------------ coercion
def test_synonyms_case_and_binaries(card):
    stroke = card("stroke")
    recs = [
        {
            "gender": "male",
            "age": "45",
            "hypertension": "Yes",
            "heart_disease": "False",
            "ever_married": "Married",
            "work_type": "Self employed",
            "Residence_type": "URBAN",
            "avg_glucose_level": "101.5 mg/dL",
            "bmi": "28.1",
            "smoking_status": "formerly_smoked",
            "stroke": "1.0",
        },
        {
            "gender": "F",
            "age": "12",
            "hypertension": "0",
            "heart_disease": "True",
            "ever_married": "0",
            "work_type": "child",
            "Residence_type": "Rural",
            "avg_glucose_level": "80",
            "bmi": "N/A",
            "smoking_status": "never",
            "stroke": "no",
        },
    ]
    frame, reason, _ = coerce_records(recs, stroke)
    assert list(reason) == ["", ""]
    assert frame["gender"].tolist() == ["Male", "Female"]
    assert frame["hypertension"].tolist() == [1, 0] and frame["heart_disease"].tolist() == [0, 1]
    assert frame["ever_married"].tolist() == ["Yes", "No"]
    assert frame["work_type"].tolist() == ["Self-employed", "children"]
    assert frame["smoking_status"].tolist() == ["formerly smoked", "never smoked"]
    assert frame["avg_glucose_level"].tolist() == [101.5, 80.0] and np.isnan(frame["bmi"][1])
    assert frame["stroke"].tolist() == [1, 0]


def _diab(**kw):
    base = dict(
        gender="Female",
        age="40",
        hypertension="0",
        heart_disease="0",
        smoking_history="never",
        bmi="25",
        HbA1c_level="5.0",
        blood_glucose_level="100",
        diabetes="0",
    )
    base.update(kw)
    return {k: v for k, v in base.items() if v is not None}


def test_rejection_reasons(card):
    diabetes = card("diabetes")
    recs = [
        _diab(),
        _diab(age="150"),  # range
        _diab(blood_glucose_level="140.5"),  # int column with a fraction: type
        _diab(hypertension="maybe"),  # binary not understood: type
        _diab(smoking_history="sometimes"),  # category
        _diab(bmi="N/A"),  # missing in a non-nullable column
        _diab(bmi=None),  # absent field
        _diab(gender="Other", age="0.5"),  # 'Other' is a real category; fractional age is fine
    ]
    _, reason, detail = coerce_records(recs, diabetes)
    assert list(reason) == [
        "",
        "range",
        "type",
        "type",
        "category",
        "missing_field",
        "missing_field",
        "",
    ]
    assert "age='150'" in detail[1]


def test_nullable_missing_becomes_empty_cell(tmp_path, card):
    cirrhosis = card("cirrhosis")
    row = "1, 400, D, , 21464, F, NA, Y, Y, Y, 14.5, NA, 2.60, 156.0, 1718.0, 137.95, 172.0, 190.0, 12.2, 4"
    raw = tmp_path / "r.txt"
    raw.write_text(row + "\n")
    rep = validate_file(cirrhosis, raw, tmp_path / "o.csv", tmp_path / "o.json")
    assert rep["valid"] == 1
    line = (tmp_path / "o.csv").read_text().splitlines()[1]
    assert line.startswith("400,D,,21464,F,,Y,Y,Y,14.5,,2.6,") and line.endswith(",4")
    # Status is not nullable: an NA there is a missing field
    _, rep2 = run(row.replace(" D, ,", " NA, ,"), cirrhosis)
    assert rep2["rejected"]["missing_field"] == 1


def test_clinical_rules_reject_vs_flag(card):
    diabetes = card("diabetes")
    text = "Female,40,0,0,never,25,7.5,120,0\nMale,50,0,0,never,27,7.5,130,1\nMale,52,0,0,never,27,5.0,250,0\n"
    out, rep = run(text, diabetes, clinical_rules="reject")
    assert rep["valid"] == 1 and rep["rejected"]["clinical_rule"] == 2
    assert rep["rule_violations"] == {
        "hba1c_implies_diabetes": 1,
        "glucose_implies_diabetes": 1,
        "diabetes_needs_elevated_marker": 0,
    }
    out, rep = run(text, diabetes, clinical_rules="flag")
    assert rep["valid"] == 3 and rep["rejected"]["clinical_rule"] == 0
    assert rep["flagged_clinical"] == 2 and rep["flagged_clinical_rows"] == [0, 2]


def test_stroke_rule_with_strings(card):
    stroke = card("stroke")
    text = "Male,10,0,0,Yes,children,Urban,90,18,Unknown,0\nMale,10,0,0,No,children,Urban,90,18,Unknown,0\n"
    _, rep = run(text, stroke)
    assert rep["valid"] == 1 and rep["rule_violations"]["minors_never_married"] == 1


def test_duplicates_kept_and_counted_train_flagged(real, card):
    diabetes = card("diabetes")
    _, table = real("diabetes")
    train = table.iloc[:500]
    r = train.iloc[3]
    copy = ",".join(str(v) for v in r.tolist())
    text = "Male,50,0,0,never,27,5.5,130,0\nMale,50,0,0,never,27,5.5,130,0\n" + copy + "\n"
    out, rep = run(text, diabetes, train=train)
    assert (
        rep["valid"] == 3
        and rep["within_duplicates"] == 1
        and rep["within_duplicates_policy"] == "keep"
    )
    assert rep["train_duplicates"] >= 1 and 2 in rep["train_duplicate_rows"]
    out, rep = run(text, diabetes, duplicates="reject")
    assert rep["valid"] == 2 and rep["rejected"]["duplicate"] == 1 and rep["within_duplicates"] == 0
    # a job validates its cells with one memo of the train keys: same reports, keys once
    memo: dict = {}
    for t in (text, copy + "\n" + text):
        assert run(t, diabetes, train=train, memo=memo)[1] == run(t, diabetes, train=train)[1]
    assert len(memo["train keys"]) == len(train.drop_duplicates())


def test_n_records_keeps_first(card):
    diabetes = card("diabetes")
    text = "\n".join(f"Male,{a},0,0,never,27,5.5,130,0" for a in range(20, 30))
    out, rep = run(text, diabetes, n_records=4)
    assert out["age"].tolist() == [20.0, 21.0, 22.0, 23.0] and rep["dropped_over_n_records"] == 6


def test_accounting_identity(card):
    diabetes = card("diabetes")
    text = (
        "Female,45.2,1,0,never,28.5,6.2,140,0\nFemale,45.2,1,0,never\nMale,999,0,0,never,27,5.5,130,0\n"
        "Male,40,0,0,never,27,8.0,130,0\nfoo, bar, 1, baz\n"
    )
    _, rep = run(text, diabetes)
    rej = rep["rejected"]
    assert rep["candidate_lines"] == rej["parse_error"] + rep["parsed"]
    assert (
        rep["parsed"]
        == rep["valid"]
        + rep["echo"]["copied_in_output"]
        + sum(v for k, v in rej.items() if k != "parse_error")
        + rep["dropped_over_n_records"]
    )
    assert all(len(v) <= 3 for v in rep["examples"].values())


# ------------------------------------------------------------------------------ empty, garbage, CLI
@pytest.mark.parametrize(
    "text",
    [
        "",
        "I'm sorry, I cannot generate patient data.",
        "\x00\x01{{{[[[",
        "a,b\n" * 50,
        '{"gender": "Female", "age": ',
        "| | |\n|---|---|\n",
    ],
)
def test_garbage_is_a_result_not_a_crash(text, card):
    diabetes = card("diabetes")
    out, rep = run(text, diabetes)
    assert (
        rep["status"] == "empty" and rep["valid"] == 0 and list(out.columns) == DIAB_COLS.split(",")
    )


def test_cli_writes_csv_and_report(tmp_path, capsys):
    raw = tmp_path / "raw.txt"
    raw.write_text("<|assistant|>\nFemale,30,0,0,never,22,5.0,100,0\nnonsense line\n")
    csv, rep = tmp_path / "s" / "r1.csv", tmp_path / "v" / "r1.json"
    code = synllm_main(
        [
            "validate",
            "--card",
            str(CARDS / "diabetes.yaml"),
            "--raw",
            str(raw),
            "--out-csv",
            str(csv),
            "--out-report",
            str(rep),
            "--clinical-rules",
            "flag",
            "--n-records",
            "5",
        ]
    )
    assert code == 0
    df = pd.read_csv(csv)
    assert list(df.columns) == DIAB_COLS.split(",") and len(df) == 1
    report = json.loads(rep.read_text())
    for key in (
        "candidate_lines",
        "parsed",
        "valid",
        "rejected",
        "examples",
        "echoed_examples_removed",
        "train_duplicates",
        "within_duplicates",
        "flagged_clinical",
        "status",
        "format_detected",
    ):
        assert key in report
    assert set(report["rejected"]) == {
        "parse_error",
        "missing_field",
        "type",
        "range",
        "category",
        "clinical_rule",
        "duplicate",
    }


def test_cli_empty_output_has_header(tmp_path):
    raw = tmp_path / "raw.txt"
    raw.write_text("As an AI language model I cannot do that.")
    csv, rep = tmp_path / "r1.csv", tmp_path / "r1.json"
    assert (
        synllm_main(
            [
                "validate",
                "--card",
                str(CARDS / "stroke.yaml"),
                "--raw",
                str(raw),
                "--out-csv",
                str(csv),
                "--out-report",
                str(rep),
            ]
        )
        == 0
    )
    assert (
        csv.read_text().strip().split(",")[0] == "gender" and len(csv.read_text().splitlines()) == 1
    )
    assert json.loads(rep.read_text())["status"] == "empty"


def test_cli_user_errors_exit_2(tmp_path, capsys):
    args = [
        "validate",
        "--card",
        str(CARDS / "diabetes.yaml"),
        "--out-csv",
        str(tmp_path / "a.csv"),
        "--out-report",
        str(tmp_path / "a.json"),
    ]
    assert synllm_main(args + ["--raw", str(tmp_path / "missing.txt")]) == 2
    assert "raw output not found" in capsys.readouterr().err
    raw = tmp_path / "raw.txt"
    raw.write_text("x")
    bad = tmp_path / "p.json"
    bad.write_text("{not json")
    assert synllm_main(args + ["--raw", str(raw), "--prompt", str(bad)]) == 2
    assert (
        synllm_main(
            [
                "validate",
                "--card",
                str(tmp_path / "nope.yaml"),
                "--raw",
                str(raw),
                "--out-csv",
                "a",
                "--out-report",
                "b",
            ]
        )
        == 2
    )
    with pytest.raises(SynllmError):
        validate_text("x", find_card("diabetes", CARDS), clinical_rules="maybe")
