"""Sweeps (feature count, sample size): variant names, mutual-information ranking on the real
diabetes table, derived cards and config errors (the shipped sweep configs and a tiny sweep
through the real Snakefile: tests/workflow/test_sweep_runs.py)."""

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_selection import mutual_info_classif

from synllm.cards import find_card, load_card
from synllm.config import check_config, n_records
from synllm.errors import ConfigError
from synllm.sweeps import Variant, parse_variant, sweep_cells, sweep_points, variant_name
from synllm.sweeps.card import rank_features, restrict_card, variant_card


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
def diabetes_train(split):
    card, train, _ = split("diabetes")
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


def test_sample_size_variant_card_keeps_everything(cards_dir):
    card = find_card("diabetes", cards_dir)
    derived, ranking = variant_card(card, Variant("diabetes", "sample_size", 40), None, seed=1)
    assert ranking is None and derived.name == "diabetes~n40"
    assert derived.columns == card.columns and derived.rules == card.rules


def test_too_many_features_for_a_variant_is_a_config_error(diabetes_train):
    card, train = diabetes_train
    with pytest.raises(ConfigError, match=r"has only 8 features"):
        variant_card(card, Variant("diabetes", "features", 8), train, seed=1)


# --------------------------------------------------------------------------- config
def test_sweep_points_map_full_values_to_the_base_dataset(cards_dir, registry):
    c = check_config(base_config(sweeps={"features": [2, 10, "all"], "sample_sizes": [20, 40]}))
    pts = sweep_points(c, cards_dir)
    assert [(p.dataset, p.value, p.label) for p in pts["features"]] == [
        ("diabetes~f2", 2, "2"),
        ("diabetes", 8, "all"),
    ]
    assert [(p.dataset, p.value) for p in pts["sample_size"]] == [
        ("diabetes", 20),
        ("diabetes~n40", 40),
    ]
    cells = sweep_cells(c, registry, pts["features"])
    assert {(x.dataset, x.model, x.prompt) for x in cells} == {
        (d, m, p)
        for d in ("diabetes~f2", "diabetes")
        for m, p in (("smollm2-135m", "SEEDEx"), ("holdout", "none"))
    }
    assert sweep_points(check_config(base_config()), cards_dir) == {}


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
