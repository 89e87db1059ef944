"""Workflow configuration: schema validation with one-line errors, and the grid.

``check_config`` validates a config dict against ``workflow/schemas/config.schema.yaml``
(JSON Schema; defaults filled in), then checks that every dataset has a card and every model
is in the registry. Any problem raises :class:`~synllm.errors.ConfigError` whose single line
names the field, e.g. ``config field 'prompts[1]': 'FOO' is not one of [...]``.

``grid`` expands datasets x models x prompts x repeats into cells; generators that take no
prompt (baselines, peers, external tables) get the single prompt value ``none``.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import jsonschema
import yaml

from synllm.cards import find_card, placeholders
from synllm.errors import ConfigError
from synllm.names import BASELINE_PROMPT, Cell, n_records  # noqa: F401 - re-exported
from synllm.sweeps import check_sweeps, sweep_cells, sweep_points

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
PATH_KEYS = ("data_dir", "cards_dir", "model_registry", "prompts_dir")


def _field(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<top level>"


def _with_defaults(validator_cls):
    validate_props = validator_cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if "default" in sub and prop not in instance:
                    instance[prop] = copy.deepcopy(sub["default"])
        yield from validate_props(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_cls, {"properties": set_defaults})


def resolve_path(value: str, base: Path | None = None) -> Path:
    """A relative config path: the working directory first, then the repository root."""
    p = Path(value)
    if p.is_absolute() or p.exists():
        return p
    alt = (base or REPO_ROOT) / p
    return alt if alt.exists() else p


def validate_schema(config: dict, schema_path: Path = SCHEMA_PATH) -> dict:
    """Validate in place (defaults filled in); ConfigError names the first bad field."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    cls = _with_defaults(jsonschema.validators.validator_for(schema))
    validator = cls(schema)
    errors = list(validator.iter_errors(config))
    if errors:
        err = jsonschema.exceptions.best_match(errors)
        if err.validator == "additionalProperties":
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            where = _field(err.absolute_path)
            raise ConfigError(
                f"config: unknown key(s) {extra}"
                + (f" in '{where}'" if err.absolute_path else "")
                + f" (allowed: {sorted(err.schema.get('properties', {}))})"
            )
        if err.validator == "required":
            raise ConfigError(f"config: {err.message}")
        msg = err.message.replace("\n", " ")
        if len(msg) > 300:
            msg = msg[:300] + "..."
        raise ConfigError(f"config field '{_field(err.absolute_path)}': {msg}")
    return config


def block_schema(block: str, schema_path: Path = SCHEMA_PATH) -> dict:
    """The JSON Schema of one top-level config block (e.g. ``evaluation``)."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    return schema["properties"][block]


def validate_block(values: dict, block: str, src: str) -> None:
    """Check a step's settings against the config schema's ``block``; ConfigError names the
    first bad field (``src: field 'x': message``)."""
    sub = block_schema(block)
    validator = jsonschema.validators.validator_for(sub)(sub)
    err = jsonschema.exceptions.best_match(validator.iter_errors(values))
    if err is not None:
        where = _field(err.absolute_path) if err.absolute_path else "<settings>"
        raise ConfigError(f"{src}: field '{where}': {err.message}")


def _strip(err: Exception, key: str) -> str:
    msg = str(err)
    return msg[len(key) + 2 :] if msg.startswith(f"{key}: ") else msg


def check_config(config: dict, base: Path | None = None) -> dict:
    """Schema + datasets + models. Returns the config with defaults filled in."""
    from synllm.registry import load_registry

    validate_schema(config)
    cards_dir = resolve_path(config["cards_dir"], base)
    for i, name in enumerate(config["datasets"]):
        try:
            card = find_card(name, cards_dir)
        except ConfigError as err:
            raise ConfigError(f"config field 'datasets[{i}]': {_strip(err, 'datasets')}") from None
        todo = placeholders(card)
        if todo:
            # a drafted card runs, but its placeholder texts reach the prompts verbatim
            print(
                f"synllm: warning: dataset card {name!r} still has {len(todo)} TODO "
                f"placeholder(s) ({todo[0]}{', ...' if len(todo) > 1 else ''}), which the "
                f"prompts will show: fill them in ({cards_dir / (name + '.yaml')})",
                file=sys.stderr,
            )
    registry = load_registry(resolve_path(config["model_registry"], base))
    for i, slug in enumerate(config["models"]):
        try:
            registry.get(slug)
        except ConfigError as err:
            raise ConfigError(f"config field 'models[{i}]': {_strip(err, 'models')}") from None
    for slug in run_models(config)[len(config["models"]) :]:
        try:
            registry.get(slug)
        except ConfigError:
            raise ConfigError(
                f"config field 'scores.normalisation': anchored needs the baseline "
                f"{slug!r} in the model registry"
            ) from None
    gen = config["generation"]
    if gen.get("backend_override") == "replay" and not gen.get("replay_dir"):
        raise ConfigError(
            "config field 'generation.replay_dir': required when backend_override is replay"
        )
    n = config["n_records"]
    if isinstance(n, dict):
        missing = [d for d in config["datasets"] if d not in n]
        if missing:
            raise ConfigError(f"config field 'n_records': no value for dataset(s) {missing}")
    check_sweeps(config, registry)
    return config


def run_models(config: dict) -> list[str]:
    """The run's models; ``scores.normalisation: anchored`` appends the anchor baselines
    (:data:`synllm.aggregate.scores.ANCHOR_MODELS`) that the config does not list."""
    models = list(config["models"])
    if (config.get("scores") or {}).get("normalisation") == "anchored":
        from synllm.aggregate.scores import ANCHOR_MODELS

        models += [m for m in ANCHOR_MODELS if m not in models]
    return models


def grid(config: dict, registry) -> list[Cell]:
    """All cells of the run, in a stable order."""
    cells = []
    for d in config["datasets"]:
        for m in run_models(config):
            takes_prompt = registry.get(m).takes_prompt
            prompts = config["prompts"] if takes_prompt else [BASELINE_PROMPT]
            for p in prompts:
                for r in range(1, int(config["repeats"]) + 1):
                    cells.append(Cell(d, m, p, r))
    return cells


def cli(argv: list[str]) -> int:
    from synllm.registry import load_registry

    p = argparse.ArgumentParser(prog="synllm check-config", description=__doc__.splitlines()[0])
    p.add_argument("configfile", nargs="+", help="config YAML (later files override earlier ones)")
    a = p.parse_args(argv)
    config: dict = {}
    for f in a.configfile:
        if not Path(f).is_file():
            raise ConfigError(f"config file not found: {f}")
        config.update(yaml.safe_load(Path(f).read_text()) or {})
    check_config(config)
    cells = grid(config, load_registry(resolve_path(config["model_registry"])))
    print(
        f"config ok: {len(cells)} cells ({len(config['datasets'])} datasets, {len(config['models'])} models, "
        f"{len(config['prompts'])} prompts, {config['repeats']} repeats)"
    )
    registry = load_registry(resolve_path(config["model_registry"]))
    for axis, points in sweep_points(config, resolve_path(config["cards_dir"])).items():
        extra = {c for c in sweep_cells(config, registry, points)} - set(cells)
        values = ", ".join(f"{p.base}:{p.label}" for p in points)
        print(f"sweep {axis}: {len(points)} points ({values}), {len(extra)} extra cells")
    return 0
