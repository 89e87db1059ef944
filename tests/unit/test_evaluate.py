"""``synllm evaluate`` end to end: JSON contract, declarations, failure cells, typed reader."""

import json

import numpy as np
import pandas as pd
import pytest

from synllm.cli import main
from synllm.errors import ConfigError, DataError
from synllm.evaluate import DEFAULT_SETTINGS, metric_names, parse_settings
from synllm.metrics import REGISTRY, read_synthetic
from synllm.split import to_records

FAST = json.dumps({"xgb_n_estimators": 100, "distance_sample": 1000, "mia_sample": 1000})


@pytest.fixture(scope="module")
def stroke_cell(tmp_path_factory, split):
    card, train, holdout = split("stroke")
    d = tmp_path_factory.mktemp("cell")
    train.to_parquet(d / "train.parquet", index=False)
    holdout.to_parquet(d / "holdout.parquet", index=False)
    (d / "rep.json").write_text(
        json.dumps({"status": "ok", "candidate_lines": 400, "parsed": 380, "valid": 300})
    )
    rows = to_records(train.sample(5, random_state=1), card)
    (d / "prompt.json").write_text(json.dumps({"example_rows": rows, "example_rows_real": True}))
    return card, train, holdout, d


def _run(d, syn_csv, out, settings=FAST, *extra):
    argv = [
        "evaluate",
        "--card",
        "resources/datasets/stroke.yaml",
        "--synthetic",
        str(syn_csv),
        "--train",
        str(d / "train.parquet"),
        "--holdout",
        str(d / "holdout.parquet"),
        "--validation",
        str(d / "rep.json"),
        "--seed",
        "3",
        "--settings",
        settings,
        "--out",
        str(out),
        *extra,
    ]
    assert main(argv) == 0
    return json.loads(out.read_text())


def test_declarations_are_complete_and_consistent():
    assert len(REGISTRY) > 40
    for m in REGISTRY.values():
        assert m.direction in ("higher", "lower")
        assert m.score_group in ("quality", "privacy", None)
        assert m.family in ("fidelity", "correlation", "clinical", "privacy", "utility")
        lo, hi = m.range
        assert lo is None or hi is None or lo < hi
        assert m.description
    quality = {n for n, m in REGISTRY.items() if m.score_group == "quality"}
    privacy = {n for n, m in REGISTRY.items() if m.score_group == "privacy"}
    assert privacy == {
        "nn_ratio",
        "identifiability",
        "dcr_median",
        "mia_auc",
        "prompt_copy_rate",
        "train_copy_rate",
    }
    assert {"ks_mean", "corr_frobenius", "clinical_consistency", "tstr_auc_mean"} <= quality


def test_end_to_end_json_contract(stroke_cell, tmp_path):
    card, train, holdout, d = stroke_cell
    syn = holdout.sample(500, random_state=0)
    syn.to_csv(tmp_path / "r1.csv", index=False)
    out = tmp_path / "metrics" / "stroke" / "qwen2-7b-instruct" / "SEEDEx" / "r1.json"
    doc = _run(d, tmp_path / "r1.csv", out, FAST, "--prompt-json", str(d / "prompt.json"))
    assert doc["privacy"]["seed_mia_members"] == 5
    assert (doc["dataset"], doc["model"], doc["prompt"], doc["rep"]) == (
        "stroke",
        "qwen2-7b-instruct",
        "SEEDEx",
        1,
    )
    assert doc["status"] == "ok" and doc["reason"] is None and doc["n_synthetic"] == 500
    assert doc["n_train"] == len(train)
    names = [m["name"] for m in doc["metrics"]]
    assert names == metric_names(parse_settings(FAST))
    for m in doc["metrics"]:
        decl = REGISTRY[m["name"]]
        assert (m["family"], m["score_group"], m["direction"], tuple(m["range"])) == (
            decl.family,
            decl.score_group,
            decl.direction,
            decl.range,
        )
        assert m["status"] == "ok", (m["name"], m["reason"])
        assert isinstance(m["value"], float)
    assert set(doc["per_column"]) == set(card.columns)
    assert set(doc["utility"]["models"]) == {"decision_tree", "random_forest", "xgboost"}
    assert doc["validation"]["valid"] == 300
    assert doc["privacy"]["n_train"] == len(train)


def test_empty_table_is_a_failed_cell(stroke_cell, tmp_path):
    card, train, holdout, d = stroke_cell
    (tmp_path / "r2.csv").write_text(",".join(card.columns) + "\n")
    doc = _run(d, tmp_path / "r2.csv", tmp_path / "m" / "r2.json")
    assert doc["status"] == "failed" and "no rows" in doc["reason"]
    assert doc["metrics"] and all(
        m["status"] == "failed" and m["value"] is None for m in doc["metrics"]
    )
    (tmp_path / "r3.csv").write_text("")  # zero bytes
    doc = _run(d, tmp_path / "r3.csv", tmp_path / "m" / "r3.json")
    assert doc["status"] == "failed"


def test_one_class_table_is_scored_with_a_warning(stroke_cell, tmp_path):
    card, train, holdout, d = stroke_cell
    holdout[holdout.stroke == 0].iloc[:150].to_csv(tmp_path / "r4.csv", index=False)
    doc = _run(d, tmp_path / "r4.csv", tmp_path / "m" / "r4.json")
    assert doc["status"] == "ok" and doc["reason"] is None
    assert len(doc["warnings"]) == 1 and "1 class(es) ['0']" in doc["warnings"][0]
    by = {m["name"]: m for m in doc["metrics"]}
    assert by["ks_mean"]["status"] == "ok" and by["mia_auc"]["status"] == "ok"
    # no prompt JSON for a prompted cell: what needs the prompt's rows is not measured
    assert by["prompt_copy_rate"]["value"] is None and by["seed_mia_auc"]["status"] == "failed"
    assert by["prompt_copy_rate"]["reason"].startswith("not measured")
    assert by["tstr_auc_mean"]["value"] == 0.5  # constant predictor: chance level
    assert (
        by["trts_xgboost_auc"]["status"] == "failed"
        and "single class" in by["trts_xgboost_auc"]["reason"]
    )


def test_prompt_copies_without_the_prompt_are_not_measured_never_zero(stroke_cell, tmp_path):
    """Issue #30: 40 verbatim copies of the prompt's 5 real rows, scored by hand without
    ``--prompt-json``: prompt copies, seed-row and inference attacks read "not measured" with
    the validation report's count, not 0; with the prompt they are measured; a baseline cell
    (prompt ``none``) showed no rows, so its 0 is measured."""
    card, train, holdout, d = stroke_cell
    shown = json.loads((d / "prompt.json").read_text())["example_rows"]
    pd.DataFrame(shown * 8).to_csv(tmp_path / "copies.csv", index=False)
    rep = tmp_path / "rep.json"
    rep.write_text(json.dumps({"status": "ok", "valid": 40, "prompt_copies": 40}))
    flags = ("--validation", str(rep), "--model", "m", "--prompt", "SEEDEx", "--rep", "1")
    names = ("prompt_copy_rate", "seed_mia_auc", "inference_risk", "inference_success")

    lean = json.dumps({"utility_models": ["decision_tree"], "bootstrap": 0, "distance_sample": 500})

    def run(out, *extra):
        doc = _run(d, tmp_path / "copies.csv", tmp_path / out, lean, *flags, *extra)
        return {m["name"]: m for m in doc["metrics"]}, doc

    by, doc = run("hand.json")
    for n in names:
        assert by[n]["value"] is None and by[n]["status"] == "failed", by[n]
        assert by[n]["reason"] == (
            "not measured: no --prompt-json given (the validation report counts 40 prompt copies)"
        )
    assert by["train_copy_rate"]["value"] == 1.0
    assert doc["privacy"]["prompt_rows_shown"] is None

    by, _ = run("prompt.json", "--prompt-json", str(d / "prompt.json"))
    assert by["prompt_copy_rate"]["value"] == 1.0 and by["inference_risk"]["value"] == 1.0
    assert by["seed_mia_tpr_at_1pct_fpr"]["value"] == 1.0

    by, _ = run("base.json", "--prompt", "none")
    assert (
        by["prompt_copy_rate"]["value"] == 0.0 and "no real rows" in by["prompt_copy_rate"]["note"]
    )
    assert by["inference_risk"]["status"] == "ok"  # members: a train sample


def test_read_synthetic_types_and_errors(tmp_path, real):
    card, df = real("cirrhosis")
    df.iloc[:20].to_csv(tmp_path / "s.csv", index=False)
    syn = read_synthetic(tmp_path / "s.csv", card)
    assert syn.dtypes["Stage"] == "Int64" and syn.dtypes["Bilirubin"] == "float64"
    assert (
        syn.dtypes["Drug"] is np.dtype(object)
        and syn["Drug"].isna().sum() == df["Drug"].iloc[:20].isna().sum()
    )
    pd.testing.assert_frame_equal(syn, df.iloc[:20].reset_index(drop=True))
    df.iloc[:5].drop(columns=["Sex"]).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match=r"bad.csv.*Sex"):
        read_synthetic(tmp_path / "bad.csv", card)
    (tmp_path / "txt.csv").write_text(
        ",".join(card.columns) + "\n" + ",".join(["x"] * len(card.columns)) + "\n"
    )
    with pytest.raises(DataError, match="txt.csv.*N_Days"):
        read_synthetic(tmp_path / "txt.csv", card)


def test_settings_errors_name_the_field(tmp_path):
    assert parse_settings(None) == DEFAULT_SETTINGS
    with pytest.raises(ConfigError, match="unknown key"):
        parse_settings('{"distance_samples": 10}')
    with pytest.raises(ConfigError, match="utility_models"):
        parse_settings('{"utility_models": ["svm"]}')
    with pytest.raises(ConfigError, match="distance_sample"):
        parse_settings('{"distance_sample": 0}')
    f = tmp_path / "s.json"
    f.write_text('{"utility_models": ["decision_tree"]}')
    s = parse_settings(str(f))
    assert s["utility_models"] == ["decision_tree"]
    assert not any("random_forest" in n for n in metric_names(s))


def test_cli_user_errors_exit_2(stroke_cell, tmp_path, capsys):
    _, _, _, d = stroke_cell
    argv = [
        "evaluate",
        "--card",
        "resources/datasets/stroke.yaml",
        "--synthetic",
        str(tmp_path / "nope.csv"),
        "--train",
        str(d / "train.parquet"),
        "--holdout",
        str(d / "holdout.parquet"),
        "--validation",
        str(d / "rep.json"),
        "--out",
        str(tmp_path / "o.json"),
    ]
    assert main(argv) == 2
    assert "nope.csv" in capsys.readouterr().err


def test_settings_and_config_schema_agree():
    """One statement of the evaluation settings: every key the CLI knows is a key of the
    config schema's `evaluation` block and back, with the same default where the schema
    declares one; the schema's limits are what the CLI enforces."""
    from synllm.config import block_schema

    props = block_schema("evaluation")["properties"]
    assert set(props) == set(DEFAULT_SETTINGS)
    for key, spec in props.items():
        if "default" in spec:
            assert spec["default"] == DEFAULT_SETTINGS[key], key
    for key, spec in props.items():
        if "minimum" in spec and spec.get("type") == "integer":
            with pytest.raises(ConfigError, match=f"field '{key}'"):
                parse_settings(json.dumps({key: spec["minimum"] - 1}))
            assert parse_settings(json.dumps({key: spec["minimum"]}))[key] == spec["minimum"]


def _untimed(doc) -> str:
    """A metrics document without its timings (they differ between runs, nothing else may)."""

    def strip(d):
        if isinstance(d, dict):
            return {k: strip(v) for k, v in d.items() if k != "seconds"}
        return [strip(v) for v in d] if isinstance(d, list) else d

    return json.dumps(strip(doc), sort_keys=True, default=str)


def test_a_jobs_shared_memo_gives_every_cell_the_values_of_a_fresh_call(split):
    """The CLI evaluates a job's cells with one memo of the real side (fidelity, clinical,
    privacy, the bootstrap reference): every cell's document, replicates included, equals
    that of a call without it."""
    from synllm.evaluate import evaluate

    card, train, holdout = split("cirrhosis")
    settings = parse_settings(
        json.dumps({**json.loads(FAST), "bootstrap": 3, "utility_models": ["decision_tree"]})
    )

    memo: dict = {}
    for rs in (1, 2):
        syn = holdout.sample(30, random_state=rs, replace=True).reset_index(drop=True)
        shared = evaluate(card, syn, train, holdout, 42, settings, memo=memo)
        fresh = evaluate(card, syn, train, holdout, 42, settings)
        assert shared["bootstrap"]["B"] == 3
        assert _untimed(shared) == _untimed(fresh)
    assert {"train", "privacy"} <= set(memo)


def test_the_real_fits_memo_starts_a_job_with_the_values_of_a_fresh_call(split):
    """``synllm real-fits`` fills the job memo once per dataset (by scoring a stand-in
    table) and pickles it; a job starting from it gives every cell the document and the
    fairness table of a call without it, and a job with another seed or other settings
    starts from an empty memo."""
    import pickle

    from synllm.evaluate import compute_real_fits, evaluate, job_memo
    from synllm.metrics import fairness

    card, train, holdout = split("cirrhosis")
    settings = parse_settings(
        json.dumps({**json.loads(FAST), "bootstrap": 3, "utility_models": ["decision_tree"]})
    )
    fits = pickle.loads(pickle.dumps(compute_real_fits(card, train, holdout, 42, settings)))
    memo = job_memo(fits, 42, settings)
    assert {"train", "privacy", "fairness", ("bootstrap reference", 42, 1000)} <= set(memo)
    assert job_memo(fits, 43, settings) == {}
    assert job_memo(fits, 42, {**settings, "bins": 30}) == {}
    assert job_memo(None, 42, settings) == {}

    for rs in (1, 2):
        syn = holdout.sample(30, random_state=rs, replace=True).reset_index(drop=True)
        warm = evaluate(card, syn, train, holdout, 42, settings, real_fits=fits, memo=memo)
        fresh = evaluate(card, syn, train, holdout, 42, settings, real_fits=fits)
        assert _untimed(warm) == _untimed(fresh)
        got = fairness.evaluate_fairness(card, syn, train, holdout, 42, memo=memo["fairness"])
        ref = fairness.evaluate_fairness(card, syn, train, holdout, 42)
        pd.testing.assert_frame_equal(got[1], ref[1], check_exact=True)
