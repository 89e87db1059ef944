"""The paper protocol (``evaluation.protocol: paper``) on the authors' real raw outputs.

Line rules, example-row copies, run selection, the authors' metric quirks, the 0.5
normalisation rule and both "Harmonic" variants; the reproduction of the printed Quality
(diabetes and cirrhosis) from the raw files. Facts: ``resources/paper/PROTOCOL.md``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synllm.aggregate.reproduction import (
    at_printed_precision,
    combined,
    load_printed,
    normalise_paper,
    normalise_project,
    score_frame,
)
from synllm.errors import ConfigError
from synllm.metrics.paper import PAPER_METRICS, cell_metrics, wasserstein
from synllm.protocol import (
    PAPER,
    Protocol,
    age_capped,
    divergence_protocols,
    get_protocol,
    paper_table,
    parse_batch,
    select_run,
    split_batches,
)

# repo-relative: the tests run from the repo root (tests/conftest.py)
FIX = Path("..") / "shared" / "fixtures" / "raw_llm_outputs"
DATA = Path("resources") / "data"
PAPER_DIR = Path("resources") / "paper"


def raw(dataset: str, model: str, prompt: int) -> str:
    return (FIX / dataset / model / f"prompt{prompt}.txt").read_text(errors="replace")


def record_lines(dataset: str, text: str, n_fields: int) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.count(",") == n_fields - 1]


# --------------------------------------------------------------------------- line rules
def test_diabetes_line_rules_on_a_real_batch():
    batch = split_batches("diabetes", raw("diabetes", "HuggingFaceH4_zephyr-7b-beta", 1))[0]
    rows = parse_batch("diabetes", batch)
    # 6 example rows of the echoed prompt + the generated rows; the truncated last line
    # ("Female, 35.8, 0, 0, never, 24.0, 5.8, ") has 9 fields with an empty one: kept, as the
    # authors' comma count kept it (its glucose and diabetes become NaN later)
    assert len(rows) == len(record_lines("diabetes", batch, 9))
    assert rows[0] == ["Female", "45.2", "1", "0", "never", "28.5", "6.2", "140", "0"]
    line = "Female, 72.4, 0, 1, never, 31.2, 6.4, 195, 0"
    assert parse_batch("diabetes", line) == parse_batch("diabetes", "12. " + line)
    assert parse_batch("diabetes", "12, " + line) == []  # "12," is a field for diabetes
    assert parse_batch("diabetes", line.rsplit(",", 1)[0]) == []  # 8 fields
    assert parse_batch("diabetes", "Other, 72.4, 0, 1, never, 31.2, 6.4, 195, 0") == []
    # an unknown smoking value is relabelled, the row kept; yes/no -> 1/0
    got = parse_batch("diabetes", "male, 50, yes, no, sometimes, 30, 6, 150, yes")[0]
    assert got == ["Male", "50", "1", "0", "unknown", "30", "6", "150", "1"]


def test_stroke_line_rules():
    batch = split_batches("stroke", raw("stroke", "HuggingFaceH4_zephyr-7b-beta", 1))[0]
    rows = parse_batch("stroke", batch)
    assert len(rows) >= 4 and all(len(r) == 11 for r in rows)
    line = "Male, 67, 0, 1, Yes, Private, Urban, 228.69, 36.6, formerly smoked, 1"
    assert parse_batch("stroke", "3. " + line)[0][4:7] == ["Yes", "Private", "Urban"]
    assert parse_batch("stroke", line.replace("formerly smoked", "never"))[0][9] == "unknown"
    assert parse_batch("stroke", line.replace("Urban", "City")) == []
    assert parse_batch("stroke", line.replace("Private", "Farmer")) == []


def test_cirrhosis_line_rules_and_the_batch_failure():
    text = raw("cirrhosis", "HuggingFaceH4_zephyr-7b-beta", 1)
    batch = split_batches("cirrhosis", text)[0]
    rows = parse_batch("cirrhosis", batch)
    assert len(rows) >= 3 and all(len(r) == 19 for r in rows)  # the ID (20th field) dropped
    line = (
        "1, 400, D, D-penicillamine, 21464, F, Y, Y, Y, Y, 14.5, 261.0, 2.60, 156.0, "
        "1718.0, 137.95, 172.0, 190.0, 12.2, 4.0"
    )
    one = parse_batch("cirrhosis", line)[0]
    assert one[0] == "400.0" and one[3] == "21464" and one[-1] == "4.0"
    assert parse_batch("cirrhosis", "7, " + line) == [one]  # "7," stripped for cirrhosis
    assert parse_batch("cirrhosis", line, age_cap=True)[0][3] == "100"
    # Yi 6B CLINRULE: every batch holds a line with more than 20 fields -> nothing parses,
    # the printed "–" cell
    yi = raw("cirrhosis", "01-ai_Yi-6B-Chat", 4)
    batches = split_batches("cirrhosis", yi)
    assert len(batches) > 50 and all(parse_batch("cirrhosis", b) == [] for b in batches)
    wide = [ln for ln in batches[0].splitlines() if ln.count(",") > 19 and not ln.startswith("ID")]
    assert wide
    # one such line in an otherwise good batch makes the whole batch yield nothing
    assert parse_batch("cirrhosis", batch + "\n" + wide[0]) == []
    assert paper_table("cirrhosis", yi).table is None


def test_age_cap_is_per_model_directory():
    assert age_capped("cirrhosis", "meta-llama_Llama-2-13b-hf")
    assert not age_capped("cirrhosis", "HuggingFaceH4_zephyr-7b-beta")
    assert not age_capped("diabetes", "meta-llama_Llama-2-13b-hf")


# --------------------------------------------------------------------------- cells
def test_example_row_copies_are_counted():
    text = raw("diabetes", "HuggingFaceH4_zephyr-7b-beta", 1)
    cell = paper_table("diabetes", text)
    assert cell.table is not None and len(cell.table) == 100
    assert len(cell.example_rows) == 6  # the SEEDEx prompt's rows, echoed with every batch
    assert cell.example_copies >= 6 * 3  # at least one echo per batch of the kept rows
    no_ex = paper_table("diabetes", text, Protocol(count_example_rows=False))
    ex = set(cell.example_rows)
    assert not any(tuple(r) in ex for r in no_ex.table.astype(str).to_numpy().tolist())
    # GPT-2 small: a third of its kept rows are example copies; without them the cell keeps
    # the fewer rows it has (the project's rule), not the authors' "first 100"
    gpt2 = paper_table("diabetes", raw("diabetes", "gpt2", 1))
    assert gpt2.example_copies >= 30
    rest = paper_table("diabetes", raw("diabetes", "gpt2", 1), Protocol(count_example_rows=False))
    assert 0 < len(rest.table) < 100 and rest.example_copies == 0


def test_run_selection_rule():
    assert select_run([26, 26, 26, 26]) == (0, 4)
    assert select_run([26, 26, 26, 26, 26, 26, 26, 26]) == (4, 8)  # last complete run
    assert select_run([30, 0, 30, 30, 30]) == (0, 5)  # a failed batch counts 0 rows
    # a rerun that stopped early: the window ending at the last non-empty batch whose earlier
    # batches held fewer than 100 rows
    assert select_run([50, 50, 30, 30, 0]) == (1, 4)
    assert select_run([20, 20]) == (0, 2)  # never reached 100: the "–" cell
    assert select_run([]) == (0, 0)


def test_run_selection_on_a_constructed_append_only_file():
    """Two runs appended to one file (the authors reran cells): the last one is published."""
    a = raw("diabetes", "HuggingFaceH4_zephyr-7b-beta", 1)
    b = raw("diabetes", "HuggingFaceH4_zephyr-7b-beta", 2)
    cell_b = paper_table("diabetes", b)
    both = paper_table("diabetes", a + b)
    assert both.n_batches == len(split_batches("diabetes", a)) + len(split_batches("diabetes", b))
    assert both.run[0] == len(split_batches("diabetes", a))
    pd.testing.assert_frame_equal(both.table, cell_b.table)
    # a third run that crashed after one batch does not replace the complete one
    crashed = split_batches("diabetes", a)[0]
    partial = paper_table("diabetes", a + b + crashed)
    assert partial.table is not None and len(partial.table) == 100


# --------------------------------------------------------------------------- metrics
def test_per_sample_minmax_wasserstein_ignores_location_and_scale():
    x = pd.Series(np.random.default_rng(0).normal(50, 10, 200))
    assert wasserstein(x, x * 3 + 100, "per_sample_minmax") == pytest.approx(0, abs=1e-9)
    assert wasserstein(x, x + 100, "raw") == pytest.approx(100)
    assert wasserstein(x, pd.Series([5.0] * 10), "per_sample_minmax") == 0.0


def test_cell_metrics_on_real_data_follow_the_declarations():
    real = pd.read_csv(DATA / "diabetes.csv.gz")
    cell = paper_table("diabetes", raw("diabetes", "HuggingFaceH4_zephyr-7b-beta", 1))
    a = cell_metrics("diabetes", cell.table, real, PAPER, seeds=(1, 2, 3))
    b = cell_metrics("diabetes", cell.table, real, PAPER, seeds=(1, 2, 3))
    assert a == b  # seeded
    assert set(a["values"]) <= set(PAPER_METRICS)
    assert len(a["privacy_seeds"]["paper_nn_ratio"]) == 3
    assert a["values"]["paper_identifiability"] == 0.0
    # the HbA1c term is the raw synthetic gap (diabetic - non-diabetic)
    t = cell.table.dropna()
    gap = t[t["diabetes"] == 1]["HbA1c_level"].mean() - t[t["diabetes"] == 0]["HbA1c_level"].mean()
    assert a["values"]["paper_hba1c_gap"] == pytest.approx(gap)


# --------------------------------------------------------------------------- scores
def test_normalisation_and_the_constant_rule():
    s = pd.Series([1.0, 2.0, 3.0, np.nan])
    assert normalise_paper(s, "higher").tolist()[:3] == [0.0, 0.5, 1.0]
    assert normalise_paper(s, "lower").tolist()[:3] == [1.0, 0.5, 0.0]
    # range below 1e-8: 0.5 for every row (identifiability is always 0 in the paper)
    assert normalise_paper(pd.Series([0.0, 0.0, 0.0]), "lower").tolist() == [0.5] * 3
    assert normalise_paper(pd.Series([1.0, 1.0 + 1e-9]), "higher").tolist() == [0.5, 0.5]
    assert normalise_project(pd.Series([0.0, 0.0]), "lower").tolist() == [1.0, 1.0]


def test_scores_and_both_harmonic_variants():
    rows = pd.DataFrame(
        {
            "dataset": "d",
            "model": ["a", "b", "c"],
            "prompt": "SEEDEx",
            "q1": [1.0, 2.0, 3.0],  # lower is better -> 1, 0.5, 0
            "p1": [0.0, 5.0, 10.0],  # higher is better -> 0, 0.5, 1
            "p2": [7.0, 7.0, 7.0],  # constant -> 0.5
        }
    )
    decl = {
        "q1": {"score_group": "quality", "direction": "lower"},
        "p1": {"score_group": "privacy", "direction": "higher"},
        "p2": {"score_group": "privacy", "direction": "lower"},
    }
    sc = score_frame(rows, decl)
    assert sc["quality"].tolist() == [1.0, 0.5, 0.0]
    assert sc["privacy"].tolist() == [0.25, 0.5, 0.75]
    assert sc["mean_qp"].tolist() == [0.625, 0.5, 0.375]
    assert sc["harmonic"].tolist() == pytest.approx([2 * 0.25 / 1.25, 0.5, 0.0])
    assert combined([0.0], [0.0], "harmonic")[0] == 0.0
    assert combined([0.6], [0.2], "mean")[0] == pytest.approx(0.4)


def test_printed_precision():
    assert at_printed_precision(0.59, 0.5912)
    assert not at_printed_precision(0.59, 0.5849)
    assert not at_printed_precision(math.nan, 0.5)


def test_protocol_choices_and_divergence_steps():
    assert get_protocol("project") is None and get_protocol("paper") == PAPER
    with pytest.raises(ConfigError, match="protocol"):
        get_protocol("authors")
    with pytest.raises(ConfigError, match="wasserstein"):
        Protocol(wasserstein="scaled")
    steps = divergence_protocols()
    assert steps[0] == PAPER.__class__(name="0_paper")
    last = steps[-1]
    assert (
        last.count_example_rows,
        last.real_rows,
        last.wasserstein,
        last.metric_set,
        last.pool,
        last.combined,
    ) == (False, "full", "raw", "project", "run", "harmonic")
    # cumulative: each step differs from the previous one in exactly one choice
    fields = ("count_example_rows", "real_rows", "wasserstein", "metric_set", "pool", "combined")
    for a, b in zip(steps, steps[1:]):
        assert sum(getattr(a, f) != getattr(b, f) for f in fields) == 1


# --------------------------------------------------------------------------- reproduction
@pytest.mark.parametrize("dataset,need", [("diabetes", 65), ("cirrhosis", 39)])
def test_printed_quality_is_reproduced_from_the_raw_outputs(dataset, need):
    """Every model directory of the corpus enters the normalisation pool, as for the authors."""
    real = pd.read_csv(DATA / f"{dataset}.csv.gz")
    rows, short = [], []
    for mdir in sorted((FIX / dataset).iterdir()):
        for i, prompt in enumerate(("SEEDEx", "FEATDESC", "STATGUIDE", "CLINRULE")):
            f = mdir / f"prompt{i + 1}.txt"
            if not f.is_file():
                continue
            cell = paper_table(
                dataset, f.read_text(errors="replace"), age_cap=age_capped(dataset, mdir.name)
            )
            if cell.table is None:
                short.append((mdir.name, prompt))
                continue
            m = cell_metrics(dataset, cell.table, real, PAPER, seeds=(0,))
            rows.append({"dataset": dataset, "model": mdir.name, "prompt": prompt, **m["values"]})
    assert len(rows) == {"diabetes": 89, "cirrhosis": 77}[dataset]  # the authors' cell sets
    decl = {
        k: {"score_group": v.score_group, "direction": v.direction}
        for k, v in PAPER_METRICS.items()
    }
    sc = score_frame(pd.DataFrame(rows), decl)
    names = {
        "HuggingFaceH4_zephyr-7b-beta": "Zephyr 7B",
        "gpt2": "GPT-2-Small",
        "TheBloke_openchat_3.5-GPTQ": "OpenChat 3.5 GPTQ",
        "openchat_openchat_3.5": "OpenChat 3.5",
        "NousResearch_Nous-Hermes-2-Yi-34B": "Nous Hermes Yi 34B",
        "openai-community_gpt2-large": "GPT-2-Large",
        "openai-community_gpt2-medium": "GPT-2-Medium",
        "mistralai_Mistral-7B-Instruct-v0.2": "Mistral 7B",
        "Qwen_Qwen2-7B-Instruct": "Qwen2 7B",
        "internlm_internlm2_5-7b-chat": "InternLM2.5 7B",
        "01-ai_Yi-6B-Chat": "Yi 6B",
        "meta-llama_Llama-2-13b-hf": "LLaMA 2 13B",
        "meta-llama_Llama-2-13b-chat-hf": "LLaMA 2 13B Chat",
        "meta-llama_Llama-3.1-8b-Instruct": "LLaMA 3.1 8B",
        "mosaicml_mpt-7b-instruct": "Mosaic MPT 7B",
        "google_gemma-7b-it": "Gemma 7B",
        "NousResearch_Nous-Hermes-2-Mistral-7B-DPO": "Nous Hermes Mistral 7B",
        "stabilityai_StableBeluga-7B": "StableBeluga 7B",
    }
    sc["paper_model"] = sc["model"].map(names)
    printed = load_printed(PAPER_DIR)
    printed = printed[printed["dataset"] == dataset]
    both = printed.merge(
        sc,
        left_on=["model", "prompt"],
        right_on=["paper_model", "prompt"],
        how="left",
        suffixes=("_paper", ""),
    )
    shown = both[both["quality_paper"].notna()]
    hits = sum(at_printed_precision(a, b) for a, b in zip(shown["quality_paper"], shown["quality"]))
    assert hits >= need
    # every printed "–" is a cell that never reached 100 rows
    dashes = both[both["quality_paper"].isna()]
    assert (
        dashes["quality"].isna().all() and len(dashes) == {"diabetes": 3, "cirrhosis": 4}[dataset]
    )
