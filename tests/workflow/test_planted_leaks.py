"""Planted leaks end to end: the real Snakefile scores three generators built for the test.

The generators are registry models with backend ``replay`` (no ``backend_override``, so the
SEEDEx prompt JSON keeps ``example_rows_real: true``) whose "outputs" are JSON-line tables
written between two Snakemake runs, once the split and the prompt exist:

- (a) ``leak-seed``: the 5 SEEDEx seed rows repeated (120 times each);
- (b) ``leak-train5``: 5 % exact train rows + 95 % fresh rows of the reference split;
- (c) ``fresh``: fresh reference-split rows only (never train, never holdout).

Stroke with holdout 0.3 / reference 0.4 of the table, so train and holdout have 1,533 rows each
and the train-split attack uses all of them (members / non-members); 600 records per table.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from synllm.cards import find_card
from synllm.split import read_split, to_records

N = 600
MODELS = {"leak-seed": "a", "leak-train5": "b", "fresh": "c"}
# Normalisations the Privacy order is checked under: the run is made anchored (the anchor
# baselines join the grid), Table IV is kept, then aggregate alone reruns under `run`.
NORMALISATIONS = ["run", "anchored"]


def _config(work: Path, normalisation: str) -> dict:
    return {
        "scores": {"normalisation": normalisation},
        "seed": 11,
        "model_registry": str(work / "models.yaml"),
        "datasets": ["stroke"],
        "models": list(MODELS),
        "prompts": ["SEEDEx"],
        "repeats": 1,
        "n_records": N,
        "holdout_fraction": 0.3,
        "reference_fraction": 0.4,
        "generation": {"replay_dir": str(work / "replay"), "constrained": False},
        "evaluation": {
            "distance_sample": 1000,
            "mia_sample": 4000,
            "sdmetrics_sample": 1600,
            "utility_models": ["decision_tree"],
            "xgb_n_estimators": 20,
            "bootstrap": 0,  # nothing here reads intervals
        },
    }


@pytest.fixture(scope="module")
def planted(tmp_path_factory, run_snakemake, cards_dir):
    work = tmp_path_factory.mktemp("leaks")

    def _snakemake(work: Path, *targets: str, normalisation: str = "anchored") -> None:
        proc = run_snakemake(work, _config(work, normalisation), *targets)
        assert proc.returncode == 0, proc.stderr[-4000:]

    anchors = {
        k: {"backend": "baseline", "kind": k, "family": "baseline"}
        for k in ("holdout", "uniform", "train_copy")
    }
    (work / "models.yaml").write_text(
        yaml.safe_dump(
            {
                "models": {
                    m: {"backend": "replay", "replay_name": m, "family": "test"} for m in MODELS
                }
                | anchors
            }
        )
    )
    res = work / "results"
    _snakemake(work, "results/prompts/stroke/SEEDEx.json", "results/data/stroke/reference.parquet")
    card = find_card("stroke", cards_dir)
    seed_rows = json.loads((res / "prompts/stroke/SEEDEx.json").read_text())["example_rows"]
    train = read_split(res / "data/stroke/train.parquet", card)
    reference = read_split(res / "data/stroke/reference.parquet", card)
    k = N // 20
    tables = {
        "leak-seed": seed_rows * (N // len(seed_rows)),
        "leak-train5": to_records(
            pd.concat([train.sample(k, random_state=1), reference.sample(N - k, random_state=2)]),
            card,
        ),
        "fresh": to_records(reference.sample(N, random_state=3), card),
    }
    for m, rows in tables.items():
        f = work / "replay" / "stroke" / m / "prompt1.txt"
        f.parent.mkdir(parents=True)
        f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    _snakemake(work)
    tdir = res / "tables"
    (tdir / "table4_quality_privacy.csv").rename(tdir / "table4_anchored.csv")
    _snakemake(work, normalisation="run")
    metrics = {}
    for m, label in MODELS.items():
        doc = json.loads((res / f"metrics/stroke/{m}/SEEDEx/r1.json").read_text())
        assert doc["status"] == "ok" and doc["n_synthetic"] == N
        metrics[label] = {x["name"]: x["value"] for x in doc["metrics"]} | {"_doc": doc}
    return work, metrics


@pytest.mark.slow
def test_prompt_copies_are_kept_and_scored(planted):
    work, m = planted
    rep = json.loads((work / "results/validation/stroke/leak-seed/SEEDEx/r1.json").read_text())
    assert rep["example_rows_real"] is True and rep["prompt_copies"] == N and rep["valid"] == N
    assert rep["echo"]["copied_in_output"] == 0
    assert m["a"]["prompt_copy_rate"] == 1.0 and m["a"]["train_copy_rate"] == 1.0
    assert m["c"]["prompt_copy_rate"] == 0.0 and m["c"]["train_copy_rate"] == 0.0
    assert m["b"]["train_copy_rate"] == pytest.approx(0.05)
    for label in "abc":
        assert m[label]["train_copy_chance"] == m["c"]["train_copy_chance"]


@pytest.mark.slow
def test_low_fpr_train_attack_sees_five_percent_copies(planted):
    _, m = planted
    b, c = m["b"]["mia_tpr_at_0_1pct_fpr"], m["c"]["mia_tpr_at_0_1pct_fpr"]
    assert b >= 10 * c and b > 0
    assert abs(m["b"]["mia_auc"] - 0.5) < 0.05  # the AUC barely moves: the point of TPR@low FPR


@pytest.mark.slow
def test_seed_row_attack_flags_the_seed_copy_only(planted):
    _, m = planted
    assert m["a"]["seed_mia_tpr_at_1pct_fpr"] == 1.0
    assert m["c"]["seed_mia_tpr_at_1pct_fpr"] <= 0.2  # at most 1 of the 5 members
    priv = m["a"]["_doc"]["privacy"]
    assert priv["seed_mia_members"] == 5 and priv["seed_mia_non_members"] > 1000


@pytest.mark.slow
def test_sdmetrics_checks_order_train_copies_above_fresh_rows(planted):
    _, m = planted
    assert m["b"]["dcr_closer_to_train"] > m["c"]["dcr_closer_to_train"]
    assert m["b"]["disclosure_risk"] > m["c"]["disclosure_risk"]


@pytest.mark.slow
def test_inference_risk_flags_the_seed_copy_against_its_control(planted):
    _, m = planted
    risk = {k: m[k]["inference_risk"] for k in "abc"}
    assert risk["a"] > 0.8 and risk["a"] > max(risk["b"], risk["c"]), risk
    inf = m["a"]["_doc"]["privacy"]["inference"]
    assert inf["members"] == "prompt rows" and inf["n_members"] == 5


@pytest.mark.slow
@pytest.mark.parametrize("normalisation", NORMALISATIONS)
def test_privacy_score_orders_fresh_over_partial_over_seed_copy(planted, normalisation):
    work, _ = planted
    name = "table4_quality_privacy" if normalisation == "run" else "table4_anchored"
    t4 = pd.read_csv(work / f"results/tables/{name}.csv").set_index("model")
    p = {MODELS[model]: t4.loc[model, "SEEDEx_privacy"] for model in MODELS}
    assert p["c"] > p["b"] > p["a"], p
    priv = pd.read_csv(work / "results/tables/table_privacy.csv").set_index("model")
    assert priv.loc["leak-seed", "prompt_copy_rate_mean"] == 1.0
    assert priv.loc["leak-seed", "seed_mia_members"] == 5
