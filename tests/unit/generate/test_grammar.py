"""Decode grammars of the embedded model (synllm.generate.grammar): GBNF that llama.cpp
parses, integer ranges, the field plan of fieldwise decoding."""

from __future__ import annotations

import json
import re

import pytest

from synllm.cards import load_card
from synllm.errors import ConfigError


def test_field_plan_pieces_join_to_a_record_and_grammars_parse(cards_dir):
    from llama_cpp import LlamaGrammar

    from synllm.generate.grammar import field_plan

    card = load_card(cards_dir / "cirrhosis.yaml")
    plan = field_plan(card.record_json_schema())
    assert [f for f, _, _ in plan[:2]] == ['{"N_Days": ', ' "Status": ']
    values = {"N_Days": "400,", "Status": '"D",', "Drug": "null,"}
    for forced, gbnf, rx in plan:
        LlamaGrammar.from_string(gbnf, verbose=False)
        name = json.loads(forced.strip("{ ").rstrip(": "))
        if name in values:
            assert rx.fullmatch(values[name]), name
    assert plan[-1][2].fullmatch("4}") and not plan[-1][2].fullmatch("4,")
    assert not plan[1][2].fullmatch('"D"') and not plan[1][2].fullmatch('"X",')
    record = "".join(
        f + ("null" if i < len(plan) - 1 else "1") + ("," if i < len(plan) - 1 else "}")
        for i, (f, _, _) in enumerate(plan)
    )
    assert list(json.loads(record)) == list(card.columns)


def test_int_range_grammar_matches_exactly_the_range():
    from synllm.generate.grammar import int_range_gbnf

    for lo, hi in [(0, 0), (0, 9), (5, 15), (80, 300), (3650, 36525), (1, 10000), (199, 201)]:
        gbnf = int_range_gbnf(lo, hi)
        rx = re.compile("^(?:" + gbnf.replace(" ", "").replace("(", "").replace(")", "") + ")$")
        wrong = [n for n in range(0, 2 * hi + 20) if bool(rx.match(str(n))) != (lo <= n <= hi)]
        assert not wrong, (lo, hi, wrong[:5])
    assert not re.match(r"^(?:{})$".format(int_range_gbnf(80, 300).replace(" ", "")[1:-1]), "080")
    with pytest.raises(ConfigError, match="range"):
        int_range_gbnf(5, 1)


def test_record_grammar_parses_in_llama_cpp(cards_dir):
    from llama_cpp import LlamaGrammar

    from synllm.generate.grammar import record_gbnf

    for name in ("diabetes", "stroke", "cirrhosis"):
        text = record_gbnf(load_card(cards_dir / f"{name}.yaml").record_json_schema())
        assert text.startswith("root ::=")
        LlamaGrammar.from_string(text, verbose=False)  # raises on a malformed grammar


def test_grammar_schema_keeps_enums_of_nullable_columns(cards_dir):
    from synllm.generate.grammar import grammar_schema

    card = load_card(cards_dir / "cirrhosis.yaml")
    schema = grammar_schema(card.record_json_schema())
    assert schema["properties"]["Drug"] == {"enum": ["D-penicillamine", "Placebo", None]}
    chol = schema["properties"]["Cholesterol"]["anyOf"]
    assert {"type": "null"} in chol and any(s.get("type") == "number" for s in chol)
    assert isinstance(schema["properties"]["Age"]["minimum"], int)
