"""One statement of each step's settings: the settings model and the config schema's block agree.

``generation``: the pydantic :class:`~synllm.generate.base.GenerationSettings` (what ``synllm
generate --settings`` accepts) and ``workflow/schemas/config.schema.yaml``'s ``generation``
block (what Snakemake and ``synllm check-config`` accept) must name the same keys with the same
types, defaults, bounds and enums, so a value one accepts the other cannot reject. (The
``evaluation`` block is the CLI's own check, ``config.validate_block``: tests/test_evaluate.py.)
The schema stays hand-written: Snakemake validates against the file, and pydantic's export
(``anyOf`` branches, titles, a default for every key) would change the config's error messages
and the generate rules' ``--settings`` params.
"""

from __future__ import annotations

import json

import pytest

from synllm.config import block_schema, validate_block
from synllm.errors import ConfigError
from synllm.generate.base import OPENAI_SETTING_KEYS, GenerationSettings
from synllm.generate.cli import parse_settings

BOUNDS = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")


def facts(spec: dict) -> dict:
    """Types, enum values and bounds a JSON Schema property allows, whatever its layout
    (``type`` lists, ``anyOf`` / ``oneOf`` branches, ``const`` / ``enum``)."""
    out: dict = {"types": set(), "values": set(), "bounds": {}}
    for branch in spec.get("anyOf") or spec.get("oneOf") or [spec]:
        if "const" in branch or "enum" in branch:  # the values carry the type
            out["values"] |= {json.dumps(v) for v in branch.get("enum", [branch.get("const")])}
        else:
            t = branch.get("type", [])
            out["types"] |= set([t] if isinstance(t, str) else t)
        out["bounds"].update({k: branch[k] for k in BOUNDS if k in branch})
    t = spec.get("type", []) if "anyOf" in spec or "oneOf" in spec else []
    out["types"] |= set([t] if isinstance(t, str) else t)
    return out


SCHEMA = block_schema("generation")["properties"]
MODEL = GenerationSettings.model_json_schema()["properties"]


def test_same_keys():
    """Every model field is a schema key; the schema's other keys are the openai options the
    model passes through as extras."""
    assert set(MODEL) <= set(SCHEMA)
    assert set(SCHEMA) - set(MODEL) == set(OPENAI_SETTING_KEYS)


@pytest.mark.parametrize("key", sorted(MODEL))
def test_same_types_bounds_enums_and_defaults(key):
    assert facts(SCHEMA[key]) == facts(MODEL[key]), key
    if "default" in SCHEMA[key]:  # without one the config passes nothing: the model's applies
        assert SCHEMA[key]["default"] == MODEL[key]["default"], key


def _probes(key: str) -> list:
    """Values at and just beyond each bound of ``key``, and one of each other JSON type."""
    f = facts(MODEL[key])
    step = 1 if "integer" in f["types"] else 0.001
    vals = []
    for v in f["bounds"].values():
        vals += [v, v - step, v + step]
    return vals + [0, 1, 2.5, "auto", "x", True, None]


@pytest.mark.parametrize("key", sorted(MODEL))
def test_cli_and_workflow_accept_the_same_values(key):
    for value in _probes(key):
        try:
            validate_block({key: value}, "generation", "config")
            schema_ok = True
        except ConfigError:
            schema_ok = False
        try:
            parse_settings(json.dumps({key: value}))
            model_ok = True
        except ConfigError:
            model_ok = False
        assert schema_ok == model_ok, (key, value, schema_ok, model_ok)
