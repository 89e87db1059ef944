"""Lin et al. generation strategies: condition lists on the real train splits + rendering."""

from __future__ import annotations

import math

import pytest

from synllm.errors import ConfigError
from synllm.generate.base import allocate
from synllm.profile import profile_table
from synllm.prompts import render_prompt
from synllm.strategies import condition_mask, strategy_conditions

TEMPLATES = "resources/prompts"  # the tests run from the repo root (conftest.py)


@pytest.fixture(scope="module")
def train_split(dataset, split):
    card, train, _ = split(dataset)
    return card, train


def test_conditional_shares_are_train_class_proportions(train_split):
    card, train = train_split
    conds = strategy_conditions(card, train, "conditional")
    assert math.isclose(sum(c["share"] for c in conds), 1.0, abs_tol=1e-12)
    expected = train[card.target].value_counts(normalize=True)
    assert len(conds) == len(expected)
    for c in conds:
        assert list(c["fixed"]) == [card.target]
        mask = condition_mask(train, c)
        assert mask.sum() > 0
        assert math.isclose(c["share"], mask.mean(), rel_tol=1e-12)
        assert f"{card.target} = " in c["instruction"]
    if card.name == "diabetes":
        by_value = {c["fixed"]["diabetes"]: c for c in conds}
        assert set(by_value) == {0, 1} and isinstance(next(iter(by_value)), int)
        assert abs(by_value[1]["share"] - 0.085) < 0.002  # 8.5 % prevalence
        assert by_value[1]["instruction"] == "All records in this batch have diabetes = 1 (Yes)."


def test_group_conditions_are_uniform_over_real_groups(train_split):
    card, train = train_split
    conds = strategy_conditions(card, train, "group")
    shares = [c["share"] for c in conds]
    assert math.isclose(sum(shares), 1.0, abs_tol=1e-12)
    assert max(shares) - min(shares) < 1e-12
    for c in conds:
        assert list(c["fixed"]) == card.group_columns
        assert condition_mask(train, c).sum() >= 0.01 * len(train)
    groups = {tuple(c["fixed"].values()) for c in conds}
    # the near-empty "Other" gender (diabetes: ~14 train rows; stroke: <= 1) is left out
    assert groups == ({("F",), ("M",)} if card.name == "cirrhosis" else {("Female",), ("Male",)})
    # uniform record counts per group for an LLM cell of 100 records
    counts = allocate(100, shares)
    assert sum(counts) == 100 and max(counts) - min(counts) <= 1


def test_single_prompt_styles_have_no_conditions(train_split):
    card, train = train_split
    assert strategy_conditions(card, train, "naive") == []
    assert strategy_conditions(card, train, "schema") == []
    with pytest.raises(ConfigError, match="not a generation strategy"):
        strategy_conditions(card, train, "SEEDEx")


@pytest.mark.parametrize("style", ["naive", "schema", "conditional", "group"])
def test_templates_render_with_conditions(style, train_split):
    card, train = train_split
    doc = render_prompt(card, profile_table(train, card), train, style, 20, 3, TEMPLATES)
    user = doc["user"]
    assert "Produce 20" in user
    if style == "naive":
        assert len(doc["example_rows"]) == 5 and "schema" not in user and "Features" not in user
        assert user.splitlines()[0] == ", ".join(card.feature_names)
    else:
        assert all(name in user for name in card.feature_names)
        assert '"additionalProperties":false' in user
        for cat in card.columns[card.group_columns[0]].categories:
            assert cat in user
    if style in ("schema", "conditional", "group"):
        assert all(r.if_ in user for r in card.rules)
    assert bool(doc["conditions"]) == (style in ("conditional", "group"))
    if style == "conditional":
        assert user.index(card.target) < user.index("Features:")
