"""``synllm card draft``: a first dataset card written from the table itself.

``synllm card draft DATA.csv --target COL [--name NAME]`` reads the table as
:func:`synllm.split.load_table` will (gzip or not, UTF-8 with or without BOM, every field a
string) and writes ``<cards-dir>/<name>.yaml``, a card that passes the schema and loads its own
table. From the data it fills in:

- ``sha256`` of the uncompressed bytes, ``rows``, ``file`` (the file's name: put it in
  ``data_dir``);
- ``missing_tokens``: the empty field plus every spelling of "missing" found in a column
  (:data:`MISSING_SPELLINGS`: ``NA``, ``N/A``, ``?``, ``NULL``, ...); ``Unknown`` or ``No Info``
  stay categories, as in the shipped cards;
- per column its ``type``: numbers that are all 0/1 -> ``binary``; whole numbers -> ``int``;
  other numbers -> ``float`` (``decimals`` = the most digits after the point, at most 6); any
  other text -> ``categorical`` with the values as spelled in the file (``categories``) and
  ``synonyms`` for the usual other spellings (``Self employed`` for ``Self-employed``,
  ``Female``/``F``, ``Yes``/``Y``/``1``); ``nullable`` when a value is missing;
- ``range``: the observed [min, max] widened by :data:`MARGIN` of the span on each side and
  rounded outwards to a round step, never below 0 for a column with no negative value, never
  above 1 for a column within [0, 1]; whole-number codes with at most :data:`CODE_LEVELS`
  levels keep their observed range (a stage 1-4 is not 0-5);
- ``id_columns``: identifier-like columns (named like an id, or unique per row and either text
  or increasing whole numbers) and free-text columns (text with more than
  :data:`MAX_CATEGORIES` distinct values), both dropped on load;
- ``task`` from the target (binary: 0/1 or two categories; multiclass: more categories); a
  whole-number class code (1/2, 0-3, at most :data:`CODE_LEVELS` levels) becomes a
  categorical target with the codes as categories; an identifier-like, continuous or
  constant target, or one that is not a column, is refused with one line;
- ``group_columns`` (sex, gender, race, ethnicity) and ``privacy.quasi_identifiers`` (age,
  sex, race, BMI, height, weight, postcode) suggested from the column names, the target as
  ``privacy.sensitive``; no privacy block when no column looks like a quasi-identifier.

What the data cannot say is left as a marked placeholder (:data:`TODO`): title, description,
provenance and every column definition. Units are left out except ``years``/``days`` for an
age column. ``rules`` and ``relations`` are empty lists with a commented example: a rule is
clinical knowledge, not something to read off a sample. The command prints one line naming
what a person must still check. An existing card is never overwritten without ``--force``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from synllm.cards import TODO, DatasetCard
from synllm.errors import ConfigError, DataError
from synllm.split import decode_text, load_table, read_bytes

MISSING_SPELLINGS = (
    "NA",
    "N/A",
    "n/a",
    "na",
    "NaN",
    "nan",
    "NULL",
    "null",
    "?",
    ".",
    "-",
    "#N/A",
    "none",
    "None",
)
"""Spellings of a missing value. ``none``/``None``/``-``/``.`` count only in a column whose
other values are numbers (in a text column they may be a category: "None" smoker)."""

ALWAYS_MISSING = frozenset(MISSING_SPELLINGS) - {"none", "None", "-", "."}
MARGIN = 0.1
CODE_LEVELS = 10
MAX_CATEGORIES = 50
MAX_DECIMALS = 6

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ID_NAME = re.compile(
    r"unnamed: ?\d+|index|idx|ids?|row_?(id|num|number|no)|"
    r"(patient|subject|record|case|person|pat|sub|p)_?(id|num|number|no)|pidnum|mrn|ssn|.+_id",
    re.IGNORECASE,
)
_CAMEL_ID = re.compile(r"[a-z0-9](ID|Id)$")  # PatientID, recordId (case matters: not "acid")
_GROUP_NAME = re.compile(r"^(sex|gender|race|ethnicity|ethnic|ethnic_group)$", re.IGNORECASE)
_QI_NAME = re.compile(
    r"^(age|age_?years|sex|gender|race|ethnicity|ethnic|bmi|height|weight|wt|wtkg|ht|zip|"
    r"zipcode|zip_code|postcode|post_code|postal_code)$",
    re.IGNORECASE,
)
_AGE_NAME = re.compile(r"^age(_?years|_?days)?$", re.IGNORECASE)

# two-category families whose other spellings a model may write (case is matched blind)
_PAIRS = (
    (("yes", "no"), ("Yes", "No", "Y", "N", "True", "False", "1", "0")),
    (("y", "n"), ("Yes", "No", "Y", "N", "True", "False", "1", "0")),
    (("true", "false"), ("Yes", "No", "Y", "N", "True", "False", "1", "0")),
    (("female", "male"), ("Female", "Male", "F", "M", "Woman", "Man")),
    (("f", "m"), ("Female", "Male", "F", "M", "Woman", "Man")),
)


@dataclass
class Draft:
    """A drafted card (``card``: the YAML mapping) and what a person must still check."""

    card: dict
    checks: list[str] = field(default_factory=list)

    def check_line(self) -> str:
        """The one line printed after drafting: every item still to check, ';'-separated."""
        return "still to check: " + "; ".join(self.checks)


def read_raw_table(path: Path) -> tuple[pd.DataFrame, bytes]:
    """The table as strings (no value turned into NaN) and its uncompressed bytes."""
    raw = read_bytes(path)
    text = decode_text(raw, path)
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        msg = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise DataError(f"{path}: not a readable CSV table ({msg})") from None
    df.columns = [c.strip() for c in df.columns]
    if df.empty:
        raise DataError(f"{path}: the table has a header but no rows")
    dup = sorted({c for c in df.columns if list(df.columns).count(c) > 1})
    if dup:
        raise DataError(f"{path}: column name(s) {dup} occur more than once in the header")
    return df.apply(lambda s: s.str.strip()), raw


def _numbers(values: pd.Series) -> pd.Series | None:
    """The values as floats, or None when one of them is not a number."""
    num = pd.to_numeric(values, errors="coerce")
    return None if num.isna().any() else num.astype("float64")


def missing_tokens(df: pd.DataFrame) -> list[str]:
    """Spellings of "missing" the table uses, plus the empty field (always missing on load)."""
    found = set()
    for name in df.columns:
        s = df[name]
        present = set(s.unique()) & set(MISSING_SPELLINGS)
        if not present:
            continue
        rest = s[~s.isin(present) & (s != "")]
        numeric = len(rest) > 0 and _numbers(rest) is not None
        found |= present if numeric else present & ALWAYS_MISSING
    return sorted(found, key=MISSING_SPELLINGS.index) + [""]


def _decimals(values: pd.Series) -> int:
    """Most digits after the decimal point in the file's spelling (exponent forms: 0)."""
    frac = values.str.extract(r"\.(\d+)$", expand=False).dropna()
    return min(int(frac.str.len().max()), MAX_DECIMALS) if len(frac) else 0


def _step(span: float) -> float:
    """The largest round step (1, 2 or 5 times a power of ten) not above a tenth of ``span``."""
    tenth = span / 10
    base = 10 ** math.floor(math.log10(tenth))
    return next(m * base for m in (5, 2, 1) if m * base <= tenth)


def plausible_range(num: pd.Series, integer: bool) -> list[float]:
    """Observed [min, max] widened by :data:`MARGIN` of the span and rounded outwards."""
    lo, hi = float(num.min()), float(num.max())
    if integer and num.nunique() <= CODE_LEVELS:
        return [int(lo), int(hi)]
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    step = _step(span)
    new_lo = math.floor((lo - MARGIN * span) / step) * step
    new_hi = math.ceil((hi + MARGIN * span) / step) * step
    if lo >= 0:
        new_lo = max(new_lo, 0.0)
    if lo >= 0 and hi <= 1:
        new_hi = min(new_hi, 1.0)
    if integer:
        return [math.floor(new_lo), math.ceil(new_hi)]
    digits = max(0, -math.floor(math.log10(step)) + 1)
    return [_clean(round(new_lo, digits)), _clean(round(new_hi, digits))]


def _clean(x: float) -> float | int:
    return int(x) if float(x).is_integer() else float(x)


def synonyms(categories: list[str]) -> dict[str, str]:
    """Other spellings a model may write -> the file's category.

    Separator variants (space, ``_``, ``-``: ``Self employed``/``Self_employed`` for
    ``Self-employed``) and, for a yes/no or female/male pair, the family's other spellings
    (``Y``, ``True``, ``1``; ``F``, ``Woman``). Case-only variants are left out (the parser
    matches case-blind), and so is any spelling that could mean two categories.
    """
    taken = {c.lower() for c in categories}
    proposals: dict[str, set[str]] = {}

    def propose(alias: str, canon: str) -> None:
        if alias.lower() not in taken:
            proposals.setdefault(alias.lower(), set()).add(f"{alias}\0{canon}")

    for c in categories:
        parts = re.split(r"[ _-]+", c)
        if len(parts) > 1:
            for sep in (" ", "_", "-"):
                propose(sep.join(parts), c)
    for (a, b), family in _PAIRS:
        if {a, b} <= taken:
            canon = {c.lower(): c for c in categories}
            for i, alias in enumerate(family):
                propose(alias, canon[(a, b)[i % 2]])
    out = {}
    for options in proposals.values():
        canons = {o.split("\0")[1] for o in options}
        if len(canons) == 1:  # a spelling that could mean two categories is no synonym
            alias, canon = sorted(options)[0].split("\0")
            out[alias] = canon
    return dict(sorted(out.items()))


def id_like(name: str, values: pd.Series, n_rows: int) -> bool:
    """Whether a column identifies rows instead of describing them.

    Named like an id (``id``, ``ID``, ``patient_id``, ``PatientID``, ``pidnum``, ``Unnamed:
    0``), or unique per row with no value missing and either text or whole numbers in
    increasing order (a row counter). A unique float column is a measurement, not an id.
    """
    if _ID_NAME.fullmatch(name) or _CAMEL_ID.search(name):
        return True
    if n_rows < 20 or values.nunique() != n_rows or (values == "").any():
        return False
    num = _numbers(values)
    if num is None:
        return True
    return bool((num % 1 == 0).all() and num.is_monotonic_increasing)


def draft_column(name: str, values: pd.Series, tokens: set[str]) -> tuple[dict, str]:
    """One column's card entry from its values as strings, and a note for the check line."""
    present = values[~values.isin(tokens)]
    nullable = len(present) < len(values)
    spec: dict = {}
    if present.empty:
        raise DataError(f"column {name!r} has no values (every field is missing): drop it")
    num = _numbers(present)
    note = ""
    if num is None:
        cats = sorted(present.unique(), key=lambda c: (c.lower(), c))
        spec = {"type": "categorical", "categories": cats}
        syn = synonyms(cats)
        if syn:
            spec["synonyms"] = syn
        lowered = [c.lower() for c in cats]
        if len(set(lowered)) < len(lowered):
            note = f"{name} has categories that differ only in case"
    elif set(num.unique()) <= {0.0, 1.0} and num.nunique() == 2:
        spec = {"type": "binary"}
    else:
        integer = bool((num % 1 == 0).all())
        spec = {"type": "int" if integer else "float"}
        spec["range"] = plausible_range(num, integer)
        if not integer and not present.str.contains("[eE]").any():
            spec["decimals"] = _decimals(present)
        if _AGE_NAME.match(name):
            spec["unit"] = "years" if num.max() <= 130 else "days"
            note = f"{name} unit {spec['unit']}"
    spec["definition"] = f"{TODO}: what {name} records (unit, coding)"
    if nullable:
        spec["nullable"] = True
    order = ("type", "unit", "definition", "range", "categories", "synonyms")
    spec = {k: spec[k] for k in order if k in spec} | {
        k: v for k, v in spec.items() if k not in order
    }
    return spec, note


def dataset_name(path: Path) -> str:
    """A dataset name from the file name: lowercase letters, digits and ``_``."""
    stem = path.name
    for suffix in (".gz", ".csv", ".tsv", ".txt"):
        stem = stem.removesuffix(suffix)
    name = re.sub(r"[^a-z0-9]+", "_", stem.lower()).strip("_")
    if not name or not name[0].isalpha():
        name = f"table_{name}".rstrip("_")
    return name


def draft_card(path: str | Path, target: str, name: str | None = None) -> Draft:
    """Draft the card of the CSV at ``path`` with outcome column ``target``.

    Raises :class:`~synllm.errors.ConfigError` (one line) for a target that is not a column,
    looks like an identifier, is continuous or constant, and :class:`~synllm.errors.DataError`
    for an unreadable table or a column whose name is not an identifier.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    name = name or dataset_name(path)
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
        raise ConfigError(f"--name {name!r}: use letters, digits and _ (it names files and paths)")
    df, raw = read_raw_table(path)
    n = len(df)
    if target not in df.columns:
        raise ConfigError(
            f"--target {target!r} is not a column of {path.name} ({list(df.columns)})"
        )
    tokens = missing_tokens(df)
    token_set = set(tokens)
    checks: list[str] = []

    ids, free_text = [], []
    for col in df.columns:
        values = df[col]
        if id_like(col, values, n):
            ids.append(col)
        elif _numbers(values[~values.isin(token_set)]) is None:
            if values[~values.isin(token_set)].nunique() > MAX_CATEGORIES:
                free_text.append(col)
    if target in ids:
        raise ConfigError(
            f"--target {target!r} looks like an identifier (named like an id, or unique per row), "
            f"not an outcome; choose the outcome column"
        )
    if target in free_text:
        raise ConfigError(
            f"--target {target!r} is free text with more than {MAX_CATEGORIES} distinct values, "
            f"not an outcome; choose the outcome column"
        )
    bad = [c for c in df.columns if c not in ids + free_text and not _IDENT.match(c)]
    if bad:
        raise DataError(
            f"{path.name}: column name {bad[0]!r} is not an identifier (letters, digits, _); "
            f"rename it in the file's header (the card names columns as the file does)"
        )

    columns: dict[str, dict] = {}
    notes = []
    for col in df.columns:
        if col in ids or col in free_text:
            continue
        columns[col], note = draft_column(col, df[col], token_set)
        if note:
            notes.append(note)

    tspec = columns[target]
    if df[target][~df[target].isin(token_set)].nunique() < 2:
        raise ConfigError(f"--target {target!r} has a single value; an outcome needs two or more")
    if tspec.get("nullable"):
        notes.append(f"the target {target} has missing values")
    values = df[target][~df[target].isin(token_set)]
    if tspec["type"] == "int" and values.nunique() <= CODE_LEVELS:
        # a whole-number class code (1/2, stage 0-3): the utility metrics read a target's
        # classes from a binary column's 0/1 or a categorical column's categories
        codes = sorted(values.unique(), key=float)
        tspec = columns[target] = {
            "type": "categorical",
            "categories": codes,
            **({"nullable": True} if tspec.get("nullable") else {}),
        }
        notes.append(f"the target's codes {codes} are categories")
    if tspec["type"] == "binary":
        task = "binary"
    elif tspec["type"] == "categorical":
        task = "binary" if len(tspec["categories"]) == 2 else "multiclass"
    else:
        raise ConfigError(
            f"--target {target!r} is a continuous {tspec['type']} column; the card's task is "
            f"binary or multiclass: choose a 0/1 or categorical outcome"
        )
    tspec["definition"] = f"{TODO}: what {target} records (the target; what each value means)"
    columns[target] = {k: tspec[k] for k in ("type", "definition")} | tspec

    groups = [c for c in columns if _GROUP_NAME.match(c) and columns[c]["type"] != "float"]
    groups = [c for c in groups if c != target]
    quasi = [c for c in columns if _QI_NAME.match(c) and c != target]

    card: dict = {
        "name": name,
        "title": f"{TODO}: title of {path.name}",
        "description": f"{TODO}: {n} rows of what patients, what was measured, the outcome",
        "file": path.name,
        "sha256": hashlib.sha256(raw).hexdigest(),
        "rows": n,
        "provenance": {
            "source": f"{TODO}: publisher and name of the original dataset",
            "url": f"{TODO}: public page of the dataset",
            "license": f"{TODO}: licence",
            "citation": f"{TODO}: how to cite it",
        },
        "missing_tokens": tokens,
        "id_columns": ids + free_text,
        "target": target,
        "task": task,
        "group_columns": groups,
    }
    if quasi:
        card["privacy"] = {"quasi_identifiers": quasi, "sensitive": target}
    card["columns"] = columns
    card["rules"] = []
    card["relations"] = []

    checks.append(
        f"{TODO} placeholders (title, description, provenance, {len(columns)} definitions)"
    )
    numeric = [c for c, s in columns.items() if "range" in s]
    if numeric:
        checks.append(f"ranges of {len(numeric)} numeric columns (observed +/- {MARGIN:.0%})")
    shown = [t for t in tokens if t]
    checks.append(
        f"missing tokens {shown + ['(empty)']}" if shown else "missing = empty field only"
    )
    if ids:
        checks.append(f"id columns dropped: {ids}")
    if free_text:
        checks.append(f"free-text columns dropped: {free_text}")
    checks.append(f"group columns {groups}" if groups else "no group column found (group_columns)")
    checks.append(
        f"quasi-identifiers {quasi}" if quasi else "no quasi-identifier found (no privacy block)"
    )
    checks += notes
    checks.append("rules and relations are empty")

    try:
        DatasetCard.model_validate(card)
    except Exception as err:  # pragma: no cover - a drafting bug, not a user error
        raise DataError(f"drafted card for {path.name} does not validate: {err}") from None
    # the card must read its own table as the workflow will (dtypes, ranges, categories)
    load_table(DatasetCard.model_validate(card), path.parent)
    return Draft(card, checks)


_RULES_HELP = """\
# Record-level clinical rules (checked per generated record; pandas eval expressions), e.g.
#  - id: minors_never_married
#    description: Patients younger than 18 have never been married.
#    if: age < 18
#    then: ever_married == "No"
"""
_RELATIONS_HELP = """\
# Group-level relations (scored by the clinical-consistency metric), e.g.
#  - id: glucose_by_outcome
#    description: Patients with the outcome have a higher mean glucose
#    kind: mean_difference        # or correlation (Spearman rho of feature with by)
#    feature: glucose
#    by: outcome
#    expected: positive
"""


class _CardDumper(yaml.SafeDumper):
    """Lists in flow style (``categories: [I, II, III]``, ``range: [0, 90]``) as in the shipped
    cards; mappings in block style."""


_CardDumper.add_representer(
    list, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True)
)


def to_yaml(draft: Draft, source: str) -> str:
    """The card as YAML, with a header naming what to fill in and commented rule examples."""
    text = yaml.dump(draft.card, Dumper=_CardDumper, sort_keys=False, allow_unicode=True, width=100)
    text = re.sub(r"^rules:", _RULES_HELP + "rules:", text, count=1, flags=re.M)
    text = re.sub(r"^relations:", _RELATIONS_HELP + "relations:", text, count=1, flags=re.M)
    head = (
        f"# Drafted by `synllm card draft` from {source}. Replace every {TODO}, then check:\n"
        f"# {draft.check_line().removeprefix('still to check: ')}\n"
    )
    return head + text


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="synllm card", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="action", required=True)
    d = sub.add_parser("draft", help="write a dataset card from a CSV table")
    d.add_argument("data", help="the table (CSV, optionally .gz)")
    d.add_argument("--target", required=True, help="outcome column (binary or categorical)")
    d.add_argument("--name", help="dataset name (default: from the file name)")
    d.add_argument(
        "--cards-dir",
        default="resources/datasets",
        help="folder the card is written to as <name>.yaml (default %(default)s)",
    )
    d.add_argument("--out", help="card path (overrides --cards-dir)")
    d.add_argument("--force", action="store_true", help="overwrite an existing card")
    a = p.parse_args(argv)
    draft = draft_card(a.data, a.target, a.name)
    out = Path(a.out) if a.out else Path(a.cards_dir) / f"{draft.card['name']}.yaml"
    if out.exists() and not a.force:
        raise ConfigError(f"{out} exists; pass --force to overwrite it or --out another path")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_yaml(draft, Path(a.data).name))
    cols = draft.card["columns"]
    kinds = {k: sum(s["type"] == k for s in cols.values()) for k in ("int", "float", "binary")}
    kinds["categorical"] = sum(s["type"] == "categorical" for s in cols.values())
    print(
        f"{out}: {draft.card['rows']} rows, {len(cols)} columns "
        f"({', '.join(f'{v} {k}' for k, v in kinds.items() if v)}), target "
        f"{draft.card['target']} ({draft.card['task']}); put {draft.card['file']} in data_dir"
    )
    print(draft.check_line())
    return 0
