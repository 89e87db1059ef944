"""A table no one here wrote a card for, end to end: ``synllm card draft`` writes the card of
GBSG2 (German Breast Cancer Study Group 2, 686 patients, as shipped by the PyPI package
lifelines), and the default grid's steps (split, profile, prompt, generate, validate,
evaluate, aggregate) run on it with the embedded model and the holdout baseline, the card's
placeholders and empty rules untouched."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from synllm.cards import load_card

MODELS = ["smollm2-135m", "holdout"]
PROMPTS = ["SEEDEx", "CLINRULE"]  # CLINRULE with the draft's empty rules


@pytest.fixture(scope="module")
def drafted_run(tmp_path_factory, public_table, run_snakemake, root):
    data = public_table("gbsg2.csv")
    work = tmp_path_factory.mktemp("card_draft")
    cards = work / "cards"
    draft = subprocess.run(
        [sys.executable, "-m", "synllm", "card", "draft", str(data), "--target", "cens"]
        + ["--cards-dir", str(cards)],
        capture_output=True,
        text=True,
        cwd=root,
    )
    assert draft.returncode == 0, draft.stderr
    config = {
        "seed": 3,
        "data_dir": str(data.parent),
        "cards_dir": str(cards),
        "datasets": ["gbsg2"],
        "models": MODELS,
        "prompts": PROMPTS,
        "n_records": 4,
        "generation": {"batch_size": 4, "max_attempts": 2},
        "evaluation": {
            "distance_sample": 200,
            "mia_sample": 100,
            "utility_models": ["decision_tree"],
            "bootstrap": 0,
        },
    }
    proc = run_snakemake(work, config)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return work, draft.stdout


@pytest.mark.slow
def test_the_drafted_card_validates_and_says_what_to_check(drafted_run):
    work, stdout = drafted_run
    lines = stdout.splitlines()
    assert len(lines) == 2 and lines[1].startswith("still to check: TODO placeholders")
    card = load_card(work / "cards" / "gbsg2.yaml")
    assert card.rows == 686 and card.target == "cens" and card.task == "binary"


@pytest.mark.slow
def test_every_step_ran_on_the_drafted_card(drafted_run):
    work, _ = drafted_run
    res = work / "results"
    train = pd.read_parquet(res / "data/gbsg2/train.parquet")
    holdout = pd.read_parquet(res / "data/gbsg2/holdout.parquet")
    assert len(train) + len(holdout) <= 686 and len(train) > len(holdout) > 0
    assert json.loads((res / "profile/gbsg2.json").read_text())
    cells = [("smollm2-135m", p) for p in PROMPTS] + [("holdout", "none")]
    for model, prompt in cells:
        if prompt != "none":
            assert (res / f"prompts/gbsg2/{prompt}.txt").stat().st_size > 0
        report = json.loads((res / f"validation/gbsg2/{model}/{prompt}/r1.json").read_text())
        synth = pd.read_csv(res / f"synthetic/gbsg2/{model}/{prompt}/r1.csv")
        assert report["valid"] == len(synth)
        metrics = json.loads((res / f"metrics/gbsg2/{model}/{prompt}/r1.json").read_text())
        assert metrics["status"] in ("ok", "failed")
    assert "Clinical rules" not in (res / "prompts/gbsg2/CLINRULE.txt").read_text()
    # the holdout baseline draws real rows: it must score, whatever the small model managed
    holdout_metrics = json.loads((res / "metrics/gbsg2/holdout/none/r1.json").read_text())
    assert holdout_metrics["status"] == "ok"
    table4 = pd.read_csv(res / "tables/table4_quality_privacy.csv")
    assert set(table4["dataset"]) == {"gbsg2"}
    assert {"smollm2-135m", "holdout"} <= set(table4["model"])
    assert (res / "figures/harmonic_heatmap_gbsg2.png").stat().st_size > 1000
