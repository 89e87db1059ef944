"""Render one prompt style for one dataset from Jinja templates (``resources/prompts``).

Paper styles (Ilaty et al.):

- ``SEEDEx``: header + up to ``n_seed_rows`` seed rows sampled (seeded) from train, "repeat the
  format exactly, produce k rows";
- ``FEATDESC``: header + per-feature definitions with ranges + the record JSON schema;
- ``STATGUIDE``: FEATDESC + means/stds/ranges/frequencies + strong correlations (profile);
- ``CLINRULE``: header + the card's clinical rules and relations + the schema, no real rows.

Every style shares ``system.j2`` (newline-delimited JSON, no commentary, exact record count,
no PHI). Extra styles (``naive``, ``schema``, ``conditional``, ``group``; Lin et al.) use the
same template context plus ``conditions`` from :func:`synllm.strategies.strategy_conditions`.

Template context: ``card`` (DatasetCard), ``profile`` (dict from ``synllm profile``),
``columns`` (names in card order), ``k`` (records per batch), ``seed_rows`` (list of dicts),
``schema_json`` (record JSON schema, compact), ``conditions`` (list, may be empty) and
``fmt(column, value)`` (value printed with the column's decimals); the filter ``record``
prints a row as one JSON object in card column order.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import jinja2
import pandas as pd

from synllm import EXTRA_PROMPT_STYLES, PROMPT_STYLES
from synllm.cards import DatasetCard, load_card
from synllm.errors import ConfigError
from synllm.split import read_split, to_records

STYLES_WITH_ROWS = {"SEEDEx", "naive"}


def _env(templates: str | Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["record"] = lambda row: json.dumps(row, ensure_ascii=False)
    return env


def _formatter(card: DatasetCard):
    def fmt(column: str, value) -> str:
        if value is None:
            return "n/a"
        spec = card.columns[column]
        if spec.type in ("int", "binary"):
            return f"{value:.0f}" if abs(value - round(value)) < 1e-9 else f"{value:.1f}"
        d = spec.decimals if spec.decimals is not None else 2
        return f"{value:.{d}f}"

    return fmt


def seed_rows(train: pd.DataFrame, card: DatasetCard, n: int, seed: int) -> list[dict]:
    """``n`` rows sampled without replacement from train (seeded), as JSON-ready dicts."""
    n = min(n, len(train))
    return to_records(train.sample(n=n, random_state=seed), card)


def render_prompt(
    card: DatasetCard,
    profile: dict,
    train: pd.DataFrame,
    style: str,
    k: int,
    seed: int,
    templates: str | Path,
    n_seed_rows: int = 5,
    replayed: bool = False,
) -> dict:
    """Render ``style`` and return the prompt JSON document (see docs/architecture.md).

    ``example_rows_real`` in the document is True when ``example_rows`` are real train rows
    that the generator is shown. ``replayed=True`` (``backend_override: replay``) makes it
    False: the replayed outputs answered the authors' prompts, whose examples were written by
    hand, so our sampled rows were never shown to any model.
    """
    if style not in PROMPT_STYLES + EXTRA_PROMPT_STYLES:
        raise ConfigError(
            f"prompts: unknown prompt style {style!r} (known: {', '.join(PROMPT_STYLES + EXTRA_PROMPT_STYLES)})"
        )
    if k < 1:
        raise ConfigError(f"generation.batch_size must be >= 1, got {k}")
    rows = seed_rows(train, card, n_seed_rows, seed) if style in STYLES_WITH_ROWS else []
    conditions: list[dict] = []
    if style in EXTRA_PROMPT_STYLES:
        from synllm.strategies import strategy_conditions

        conditions = strategy_conditions(card, train, style)
    schema = card.record_json_schema()
    env = _env(templates)
    ctx = dict(
        card=card,
        profile=profile,
        columns=card.feature_names,
        k=k,
        seed_rows=rows,
        schema_json=json.dumps(schema, separators=(",", ":")),
        conditions=conditions,
        fmt=_formatter(card),
    )
    try:
        system = env.get_template("system.j2").render(**ctx).strip()
        user = env.get_template(f"{style}.j2").render(**ctx).strip()
    except jinja2.TemplateNotFound as err:
        raise ConfigError(f"prompt template {err.name!r} not found in {templates}") from None
    digest = hashlib.sha256((system + "\n\n" + user).encode()).hexdigest()
    return {
        "dataset": card.name,
        "style": style,
        "system": system,
        "user": user,
        "batch_records": k,
        "columns": card.feature_names,
        "example_rows": rows,
        "example_rows_real": bool(rows) and not replayed,
        "record_schema": schema,
        "conditions": conditions,
        "seed": seed,
        "sha256": digest,
    }


def as_text(doc: dict) -> str:
    """Human-readable rendering of a prompt document."""
    parts = [f"### system\n{doc['system']}", f"### user\n{doc['user']}"]
    for c in doc.get("conditions") or []:
        parts.append(f"### condition (share {c.get('share', 0):.3f})\n{c.get('instruction', '')}")
    return "\n\n".join(parts) + "\n"


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="synllm prompt", description=__doc__.splitlines()[0])
    p.add_argument("--card", required=True)
    p.add_argument("--profile", required=True)
    p.add_argument("--train", required=True)
    p.add_argument("--style", required=True)
    p.add_argument("--batch-records", type=int, default=20)
    p.add_argument("--n-seed-rows", type=int, default=5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--templates", required=True)
    p.add_argument(
        "--replayed",
        action="store_true",
        help="generators replay the authors' outputs: example rows were never shown",
    )
    p.add_argument("--out-json", required=True)
    p.add_argument("--out-txt", required=True)
    a = p.parse_args(argv)
    card = load_card(a.card)
    profile = json.loads(Path(a.profile).read_text())
    train = read_split(a.train, card)
    doc = render_prompt(
        card,
        profile,
        train,
        a.style,
        a.batch_records,
        a.seed,
        a.templates,
        a.n_seed_rows,
        a.replayed,
    )
    for out, text in ((a.out_json, json.dumps(doc, indent=2) + "\n"), (a.out_txt, as_text(doc))):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text)
    print(
        f"{card.name}/{a.style}: {len(doc['user'])} chars, {len(doc['example_rows'])} example rows"
    )
    return 0
