"""Sweeps (feature count, sample size): variant names, mutual-information ranking on the real
diabetes table, derived cards, config errors, and a tiny sweep through the real Snakefile."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.feature_selection import mutual_info_classif

from synllm.cards import find_card, load_card
from synllm.config import check_config, n_records
from synllm.errors import ConfigError
from synllm.registry import load_registry
from synllm.split import split_table
from synllm.sweeps import Variant, parse_variant, sweep_cells, sweep_points, variant_name
from synllm.sweeps.card import rank_features, restrict_card, variant_card
from tests.conftest import ROOT, load_real

CARDS = ROOT / "resources" / "datasets"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]


def base_config(**over):
    c = {
        "datasets": ["diabetes"],
        "models": ["smollm2-135m", "holdout"],
        "prompts": ["SEEDEx"],
        "n_records": 20,
    }
    c.update(over)
    return c


@pytest.fixture(scope="module")
def diabetes_train():
    card, df = load_real("diabetes")
    train, _ = split_table(df, card, 0.2, seed=42)
    return card, train


# --------------------------------------------------------------------------- names
def test_variant_names_round_trip():
    assert variant_name("diabetes", "features", 5) == "diabetes~f5"
    assert parse_variant("diabetes~f5") == Variant("diabetes", "features", 5)
    assert parse_variant("stroke~n40") == Variant("stroke", "sample_size", 40)
    assert parse_variant("diabetes") is None


@pytest.mark.parametrize(
    "name", ["diabetes~x5", "diabetes~f", "diabetes~f0", "~f5", "dia betes~f5", "diabetes~f5~n3"]
)
def test_bad_variant_names_are_one_line_config_errors(name):
    with pytest.raises(ConfigError) as err:
        parse_variant(name, field="--variant")
    msg = str(err.value)
    assert msg.startswith(f"--variant {name!r}") and "\n" not in msg


def test_n_records_of_variants():
    c = check_config(base_config(n_records={"diabetes": 12}))
    assert n_records(c, "diabetes~n40") == 40
    assert n_records(c, "diabetes~f3") == 12


# --------------------------------------------------------------------------- MI ranking
def test_mi_ranking_matches_sklearn_and_keeps_the_target(diabetes_train):
    card, train = diabetes_train
    ranking = rank_features(card, train, seed=42)
    features = [c for c in card.columns if c != "diabetes"]
    assert sorted(c for c, _ in ranking) == sorted(features)  # every feature, never the target
    # direct sklearn computation: categoricals as codes, binaries as 0/1, both discrete
    X = pd.DataFrame(
        {
            c: (
                pd.Categorical(train[c], categories=card.columns[c].categories).codes
                if card.columns[c].type == "categorical"
                else train[c].astype(float)
            )
            for c in features
        }
    )
    discrete = [card.columns[c].type in ("categorical", "binary") for c in features]
    mi = mutual_info_classif(
        X.to_numpy(dtype=float),
        train["diabetes"].astype(int).to_numpy(),
        discrete_features=np.array(discrete),
        random_state=42,
    )
    expected = dict(zip(features, mi))
    for c, v in ranking:
        assert v == pytest.approx(expected[c], rel=1e-12)
    assert [v for _, v in ranking] == sorted((v for _, v in ranking), reverse=True)
    # HbA1c and glucose are the diagnostic markers of this table
    assert {c for c, _ in ranking[:2]} == {"HbA1c_level", "blood_glucose_level"}
    # seeded: the same seed gives the same numbers
    assert rank_features(card, train, seed=42) == ranking


def test_feature_variant_card_validates_and_drops_rules_on_removed_columns(
    diabetes_train, tmp_path
):
    card, train = diabetes_train
    derived, ranking = variant_card(card, Variant("diabetes", "features", 2), train, seed=42)
    assert derived.name == "diabetes~f2"
    assert list(derived.columns) == ["HbA1c_level", "blood_glucose_level", "diabetes"]  # card order
    assert derived.target == "diabetes"
    assert derived.group_columns == []  # gender dropped
    # rules on HbA1c/glucose/diabetes stay; relations on age/bmi/hypertension go
    assert [r.id for r in derived.rules] == [r.id for r in card.rules]
    assert [r.id for r in derived.relations] == ["hba1c_by_diabetes", "glucose_by_diabetes"]
    assert "top 2 of 8 features" in derived.provenance.notes
    # a rule naming a dropped column is removed
    small = restrict_card(card, ["blood_glucose_level"], "diabetes~f1")
    assert [r.id for r in small.rules] == ["glucose_implies_diabetes"]
    assert [r.id for r in small.relations] == ["glucose_by_diabetes"]
    # the derived card round-trips through YAML like a shipped card
    from synllm.sweeps.card import write_card

    write_card(derived, tmp_path / "diabetes~f2.yaml")
    again = load_card(tmp_path / "diabetes~f2.yaml")
    assert again == derived
    assert again.columns["diabetes"].labels == {0: "No", 1: "Yes"}


def test_sample_size_variant_card_keeps_everything():
    card = find_card("diabetes", CARDS)
    derived, ranking = variant_card(card, Variant("diabetes", "sample_size", 40), None, seed=1)
    assert ranking is None and derived.name == "diabetes~n40"
    assert derived.columns == card.columns and derived.rules == card.rules


def test_too_many_features_for_a_variant_is_a_config_error(diabetes_train):
    card, train = diabetes_train
    with pytest.raises(ConfigError, match=r"has only 8 features"):
        variant_card(card, Variant("diabetes", "features", 8), train, seed=1)


# --------------------------------------------------------------------------- config
def test_sweep_points_map_full_values_to_the_base_dataset():
    c = check_config(base_config(sweeps={"features": [2, 10, "all"], "sample_sizes": [20, 40]}))
    pts = sweep_points(c, CARDS)
    assert [(p.dataset, p.value, p.label) for p in pts["features"]] == [
        ("diabetes~f2", 2, "2"),
        ("diabetes", 8, "all"),
    ]
    assert [(p.dataset, p.value) for p in pts["sample_size"]] == [
        ("diabetes", 20),
        ("diabetes~n40", 40),
    ]
    cells = sweep_cells(c, load_registry(ROOT / "config" / "models.yaml"), pts["features"])
    assert {(x.dataset, x.model, x.prompt) for x in cells} == {
        (d, m, p)
        for d in ("diabetes~f2", "diabetes")
        for m, p in (("smollm2-135m", "SEEDEx"), ("holdout", "none"))
    }
    assert sweep_points(check_config(base_config()), CARDS) == {}


@pytest.mark.parametrize(
    "sweeps, expected",
    [
        ({"features": [0]}, "config field 'sweeps.features[0]'"),
        ({"features": ["most"]}, "config field 'sweeps.features[0]'"),
        ({"sample_sizes": [10, -1]}, "config field 'sweeps.sample_sizes[1]'"),
        (
            {"models": ["gpt-5"], "features": [2]},
            "config field 'sweeps.models[0]': unknown model 'gpt-5'",
        ),
        ({"axes": [1]}, "config: unknown key(s) ['axes'] in 'sweeps'"),
    ],
)
def test_bad_sweep_config_is_one_line_naming_the_field(sweeps, expected):
    with pytest.raises(ConfigError) as err:
        check_config(base_config(sweeps=sweeps))
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_sweeps_with_replay_are_refused():
    with pytest.raises(
        ConfigError, match="config field 'sweeps': not available with generation.backend_override"
    ):
        check_config(
            base_config(
                sweeps={"features": [2]},
                generation={"backend_override": "replay", "replay_dir": "x"},
            )
        )


@pytest.mark.parametrize("name", ["sweep_features", "sweep_samples"])
def test_shipped_sweep_configs_dry_run(tmp_path, name):
    proc = subprocess.run(
        SNAKEMAKE
        + [
            "--directory",
            str(tmp_path),
            "--configfile",
            str(ROOT / "config" / f"{name}.yaml"),
            "-n",
            "--cores",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "rule sweep_card:" in out and "rule sweep_plots:" in out
    assert "smollm2-135m" in out  # the embedded model is part of the sweep
    axis = "features" if name == "sweep_features" else "sample_size"
    assert f"results/figures/sweep_{axis}_cirrhosis.png" in out
    # Tables IV-VI stay base-only: the aggregate job lists no variant cell
    agg = out.split("rule aggregate:", 1)[1].split("\n\n", 1)[0]
    assert "metrics/cirrhosis/" in agg and "~" not in agg


# --------------------------------------------------------------------------- end to end
TINY = {
    "seed": 7,
    "datasets": ["stroke"],
    "models": ["marginals"],
    "prompts": ["SEEDEx"],
    "n_records": 30,
    "evaluation": {"distance_sample": 500, "mia_sample": 200, "utility_models": ["decision_tree"]},
    "sweeps": {"features": [3, "all"], "sample_sizes": [30, 60]},
}


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    work = tmp_path_factory.mktemp("sweep")
    cfg = work / "config.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    # only the sweep outputs: the aggregate tables are covered by test_workflow_e2e
    targets = ["results/tables/sweep_features.csv", "results/tables/sweep_sample_size.csv"]
    proc = subprocess.run(
        SNAKEMAKE + ["--directory", str(work), "--configfile", str(cfg), "--cores", "2", *targets],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return work / "results"


@pytest.mark.slow
def test_tiny_sweep_writes_plots_and_tables(tiny_sweep):
    res = tiny_sweep
    for axis in ("features", "sample_size"):
        assert (res / "figures" / f"sweep_{axis}_stroke.png").stat().st_size > 10_000
    feats = pd.read_csv(res / "tables" / "sweep_features.csv")
    assert list(feats["variant"]) == ["stroke~f3", "stroke"] and list(feats["label"]) == [
        "3",
        "all",
    ]
    assert list(feats["value"]) == [3, 10]
    assert feats["features"].iloc[0].split() == list(
        load_card(res / "cards" / "stroke~f3.yaml").columns
    )
    assert feats[["quality", "harmonic", "tstr_auc", "tstr_f1"]].notna().all().all()
    sizes = pd.read_csv(res / "tables" / "sweep_sample_size.csv")
    assert list(sizes["value"]) == [30, 60] and list(sizes["variant"]) == ["stroke", "stroke~n60"]
    # the ~n60 cell really asked for 60 records, the variant split keeps the base rows
    import json

    meta = json.loads((res / "raw/stroke~n60/marginals/none/r1.meta.json").read_text())
    assert meta["n_records_requested"] == 60
    base = pd.read_parquet(res / "data/stroke/train.parquet")
    f3 = pd.read_parquet(res / "data/stroke~f3/train.parquet")
    pd.testing.assert_frame_equal(f3, base[list(f3.columns)])
    assert "stroke" in f3.columns and len(f3.columns) == 4
    listed = (res / "tables" / "sweep_sample_size.inputs.txt").read_text().split()
    assert sorted(Path(p).parts[-4] for p in listed) == ["stroke", "stroke~n60"]
