"""Each rendered prompt contains what its style requires."""

import json
from pathlib import Path

import pytest

from synllm.errors import ConfigError
from synllm.profile import profile_table
from synllm.prompts import as_text, render_prompt
from synllm.split import to_records

TEMPLATES = Path("resources/prompts")  # the tests run from the repo root (conftest.py)


@pytest.fixture(scope="module")
def ctx(dataset, split):
    card, train, _ = split(dataset)
    return card, train, profile_table(train, card)


def render(ctx, style, **kw):
    card, train, prof = ctx
    return render_prompt(card, prof, train, style, kw.get("k", 20), kw.get("seed", 42), TEMPLATES)


def test_system_message_contract(ctx):
    doc = render(ctx, "FEATDESC", k=17)
    s = doc["system"]
    assert "newline-delimited JSON" in s and "exactly 17 records" in s
    assert "no commentary" in s and "protected health information" in s
    assert ", ".join(ctx[0].feature_names) in s


def test_seedex_has_seed_rows_from_train(ctx):
    card, train, _ = ctx
    doc = render(ctx, "SEEDEx")
    assert len(doc["example_rows"]) == 5
    train_rows = {json.dumps(r) for r in to_records(train, card)}
    for row in doc["example_rows"]:
        line = json.dumps(row, ensure_ascii=False)
        assert line in doc["user"]
        assert json.dumps(row) in train_rows
        assert list(row) == card.feature_names
    assert "Repeat the format exactly" in doc["user"] and "produce 20" in doc["user"]
    assert render(ctx, "SEEDEx", seed=1)["example_rows"] != doc["example_rows"]
    assert render(ctx, "SEEDEx")["user"] == doc["user"]  # seeded


def test_example_rows_real_only_for_shown_train_rows(ctx):
    card, train, prof = ctx
    assert render(ctx, "SEEDEx")["example_rows_real"] is True
    assert render(ctx, "FEATDESC")["example_rows_real"] is False  # no rows shown
    # replay: the authors' prompts (hand-written examples) were shown, not our sampled rows
    doc = render_prompt(card, prof, train, "SEEDEx", 20, 42, TEMPLATES, replayed=True)
    assert doc["example_rows_real"] is False and len(doc["example_rows"]) == 5


def test_featdesc_has_definitions_ranges_and_schema(ctx):
    card, _, _ = ctx
    doc = render(ctx, "FEATDESC")
    u = doc["user"]
    for name, col in card.columns.items():
        assert f"- {name} (" in u and col.definition in u
        for cat in col.categories or []:
            assert cat in u
    assert "Plausible range" in u
    schema_block = u.split("```json\n")[1].split("\n```")[0]
    assert json.loads(schema_block) == card.record_json_schema()
    assert doc["example_rows"] == []


def test_statguide_adds_statistics_and_correlations(ctx):
    card, _, prof = ctx
    u = render(ctx, "STATGUIDE")["user"]
    assert "Features:" in u and "```json" in u
    for name in card.numeric_columns:
        assert f"- {name}: mean " in u
    for c in prof["correlations"][:3]:
        assert f"- {c['a']} and {c['b']}: {c['rho']:+.2f}" in u
    assert f"({prof['n_rows']} records)" in u


def test_clinrule_has_rules_schema_and_no_real_row(ctx):
    card, train, _ = ctx
    doc = render(ctx, "CLINRULE")
    u = doc["user"]
    for rule in card.rules:
        assert rule.then in u
    for rel in card.relations:
        assert rel.description in u
    assert "```json" in u and doc["example_rows"] == []
    # no real record appears, not even as its sequence of values
    for row in to_records(train.head(2000), card):
        assert json.dumps(row) not in u
        assert ", ".join(str(v) for v in row.values()) not in u


def test_clinrule_without_rules_has_no_empty_headings(ctx):
    # a drafted card (synllm card draft) has no rules or relations yet
    card, train, prof = ctx
    bare = card.model_copy(update={"rules": [], "relations": []})
    u = render_prompt(bare, prof, train, "CLINRULE", 20, 42, TEMPLATES)["user"]
    assert "Clinical rules" not in u and "Clinical relations" not in u
    assert "```json" in u


def test_unknown_style_is_a_config_error(ctx):
    with pytest.raises(ConfigError, match="unknown prompt style 'FOO'"):
        render(ctx, "FOO")


def test_text_rendering_is_readable(ctx):
    doc = render(ctx, "SEEDEx")
    txt = as_text(doc)
    assert txt.startswith("### system\n") and "### user\n" in txt
