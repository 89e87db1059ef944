"""Dataset cards: the single description of a real table that every step reads.

A card (``resources/datasets/<name>.yaml``) names the file and its sha256, provenance, id
columns, the target, and for each column its type, unit, definition, plausible range,
allowed categories and spelling synonyms; plus record-level clinical ``rules`` (checked by
the validator) and group-level ``relations`` (scored by the clinical-consistency metric).

Cards are validated by the pydantic model below; ``workflow/schemas/dataset_card.schema.json``
is exported from it (``python -m synllm.cards --schema``) and a test keeps the two in sync.
"""

from __future__ import annotations

import json
import re
import sys
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from synllm.errors import ConfigError

ColumnType = Literal["int", "float", "categorical", "binary"]
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Provenance(_Strict):
    source: str = Field(description="Where the table comes from (publisher, dataset name).")
    url: str | None = Field(None, description="Public page of the original dataset.")
    license: str | None = None
    citation: str | None = None
    notes: str | None = Field(None, description="Quirks of the file kept on purpose.")


_PAREN = re.compile(r"\([^)]*\)|\[[^\]]*\]")


def norm_key(key: str) -> str:
    """Normalise a field name: drop parenthesised units, keep lowercase letters and digits."""
    return re.sub(r"[^a-z0-9]", "", _PAREN.sub("", key).lower())


class Column(_Strict):
    type: ColumnType = Field(description="int/float numeric, categorical strings, or 0/1 binary.")
    definition: str = Field(description="Natural-language definition used in prompts.")
    unit: str | None = Field(None, description="Unit of measurement, if any.")
    range: tuple[float, float] | None = Field(
        None, description="Plausible [min, max]; values outside are rejected by the validator."
    )
    categories: list[str] | None = Field(
        None, description="Allowed values of a categorical column, in the real data's spelling."
    )
    synonyms: dict[str, str] = Field(
        default_factory=dict,
        description="Alternative spellings -> canonical category (matching is also case-blind).",
    )
    aliases: list[str] = Field(
        default_factory=list,
        description=(
            "Other names a model may give this column (e.g. 'body mass index' for bmi); the "
            "parser matches them case-, space- and punctuation-blind, as it matches the name."
        ),
    )
    labels: dict[int, str] | None = Field(
        None, description="Binary only: meaning of 0 and 1, e.g. {0: No, 1: Yes}."
    )
    nullable: bool = Field(False, description="Whether the real data has missing values here.")
    decimals: int | None = Field(None, ge=0, description="Precision used when printing values.")

    @model_validator(mode="after")
    def _check(self) -> Column:
        if self.type in ("int", "float") and self.range is None:
            raise ValueError("numeric columns need a plausible 'range'")
        if self.range is not None and self.range[0] > self.range[1]:
            raise ValueError(f"range {list(self.range)} has min > max")
        if self.type == "categorical" and not self.categories:
            raise ValueError("categorical columns need 'categories'")
        if self.type != "categorical" and self.categories:
            raise ValueError("'categories' only applies to categorical columns")
        if self.type != "binary" and self.labels:
            raise ValueError("'labels' only applies to binary columns")
        for alias, canon in self.synonyms.items():
            if self.type == "categorical" and canon not in (self.categories or []):
                raise ValueError(f"synonym {alias!r} maps to unknown category {canon!r}")
        return self

    @property
    def is_numeric(self) -> bool:
        return self.type in ("int", "float")


class Rule(_Strict):
    """Record-level rule: every record with ``if`` true must have ``then`` true.

    Both are pandas ``DataFrame.eval`` expressions over the card's column names.
    """

    id: str
    description: str
    if_: str = Field(alias="if", description="Condition (pandas eval expression).")
    then: str = Field(description="Consequence that must hold when the condition does.")


class Relation(_Strict):
    """Group-level clinical relation scored by the clinical-consistency metric.

    ``mean_difference``: mean(feature | by == groups[0]) - mean(feature | by == groups[1]);
    ``correlation``: Spearman rho(feature, by). ``expected`` gives the sign in real medicine.
    """

    id: str
    description: str
    kind: Literal["mean_difference", "correlation"]
    feature: str
    by: str
    groups: tuple[str | int, str | int] | None = Field(
        None, description="mean_difference only: the two groups compared (default [1, 0])."
    )
    expected: Literal["positive", "negative"]


class PrivacySpec(_Strict):
    quasi_identifiers: list[str] = Field(
        min_length=1,
        description="Columns an attacker may already know about a patient (e.g. age, gender, "
        "BMI); the keys of the SDMetrics DisclosureProtection attack.",
    )
    sensitive: str = Field(description="Column the attacker wants to infer from them.")


class DatasetCard(_Strict):
    name: str = Field(description="Short name used in paths and configs.")
    title: str
    description: str
    file: str = Field(description="File name inside data_dir (the project ships <name>.csv.gz).")
    source_file: str | None = Field(
        None, description="Original file name; also looked up in data_dir."
    )
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the uncompressed CSV.")
    rows: int = Field(gt=0, description="Expected row count of the full table.")
    provenance: Provenance
    missing_tokens: list[str] = Field(default_factory=lambda: ["", "NA", "N/A"])
    id_columns: list[str] = Field(default_factory=list, description="Dropped on load.")
    target: str = Field(description="Outcome column for ML utility and stratification.")
    task: Literal["binary", "multiclass"]
    group_columns: list[str] = Field(
        default_factory=list, description="Demographic columns for group-based/fairness work."
    )
    columns: dict[str, Column]
    rules: list[Rule] = Field(default_factory=list)
    relations: list[Relation] = Field(default_factory=list)
    privacy: PrivacySpec | None = Field(
        None, description="Quasi-identifiers and sensitive column for disclosure-risk metrics."
    )

    @model_validator(mode="after")
    def _check(self) -> DatasetCard:
        for col in self.columns:
            if not _IDENT.match(col):
                raise ValueError(f"column name {col!r} is not an identifier")
        if self.target not in self.columns:
            raise ValueError(f"target {self.target!r} is not a column")
        for col in self.id_columns:
            if col in self.columns:
                raise ValueError(f"id column {col!r} must not be listed under columns")
        for g in self.group_columns:
            if g not in self.columns:
                raise ValueError(f"group column {g!r} is not a column")
        if self.privacy is not None:
            for c in self.privacy.quasi_identifiers + [self.privacy.sensitive]:
                if c not in self.columns:
                    raise ValueError(f"privacy names unknown column {c!r}")
            if self.privacy.sensitive in self.privacy.quasi_identifiers:
                raise ValueError("privacy.sensitive must not be one of the quasi_identifiers")
        for rel in self.relations:
            for c in (rel.feature, rel.by):
                if c not in self.columns:
                    raise ValueError(f"relation {rel.id!r} names unknown column {c!r}")
        named: dict[str, str] = {norm_key(c): c for c in self.columns}
        for col, spec in self.columns.items():
            for alias in spec.aliases:
                other = named.setdefault(norm_key(alias), col)
                if other != col:
                    raise ValueError(f"alias {alias!r} of column {col!r} also names {other!r}")
        return self

    # -- convenience ---------------------------------------------------------------
    @property
    def feature_names(self) -> list[str]:
        """Columns in card order (the order of the generated records)."""
        return list(self.columns)

    @cached_property
    def numeric_columns(self) -> list[str]:
        return [c for c, spec in self.columns.items() if spec.is_numeric]

    @cached_property
    def categorical_columns(self) -> list[str]:
        """Categorical and binary columns."""
        return [c for c, spec in self.columns.items() if not spec.is_numeric]

    def record_json_schema(self) -> dict:
        """JSON Schema of one generated record (used in prompts and constrained decoding).

        Numeric ranges are stated as minimum/maximum; grammar-based decoders may ignore them,
        the validator enforces them.
        """
        props: dict[str, dict] = {}
        for name, col in self.columns.items():
            if col.type == "categorical":
                prop: dict = {"type": "string", "enum": list(col.categories or [])}
            elif col.type == "binary":
                prop = {"type": "integer", "enum": [0, 1]}
            else:
                lo, hi = col.range  # type: ignore[misc]
                if col.type == "int":
                    prop = {"type": "integer", "minimum": int(lo), "maximum": int(hi)}
                else:
                    prop = {"type": "number", "minimum": lo, "maximum": hi}
            if col.nullable:
                prop["type"] = [prop["type"], "null"]
                if "enum" in prop:
                    prop["enum"] = prop["enum"] + [None]
            props[name] = prop
        return {
            "type": "object",
            "properties": props,
            "required": list(self.columns),
            "additionalProperties": False,
        }


def load_card(path: str | Path) -> DatasetCard:
    """Read and validate a card; errors name the file and the offending field."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"dataset card not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(
            f"dataset card {path} is not valid YAML: {err}".replace("\n", " ")
        ) from None
    try:
        return DatasetCard.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "<card>"
        raise ConfigError(f"dataset card {path}: field '{loc}': {first['msg']}") from None


TODO = "TODO"
"""Prefix of every value a person must still write in a drafted card (``synllm card draft``)."""


def placeholders(card: DatasetCard) -> list[str]:
    """Fields of ``card`` whose text still starts with :data:`TODO`, as dotted paths."""
    found: list[str] = []

    def walk(value, path: str) -> None:
        if isinstance(value, str):
            if value.startswith(TODO):
                found.append(path)
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}.{key}" if path else str(key))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{path}[{i}]")

    walk(card.model_dump(), "")
    return found


def find_card(name: str, cards_dir: str | Path) -> DatasetCard:
    """Load the card for dataset ``name`` from ``cards_dir``."""
    path = Path(cards_dir) / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in Path(cards_dir).glob("*.yaml"))
        raise ConfigError(f"datasets: unknown dataset {name!r} (cards in {cards_dir}: {known})")
    card = load_card(path)
    if card.name != name:
        raise ConfigError(f"dataset card {path}: field 'name' is {card.name!r}, expected {name!r}")
    return card


def export_schema() -> str:
    return json.dumps(DatasetCard.model_json_schema(by_alias=True), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # pragma: no cover - developer utility
    if sys.argv[1:] == ["--schema"]:
        sys.stdout.write(export_schema())
    else:
        for p in sys.argv[1:]:
            print(p, "ok", load_card(p).name)
