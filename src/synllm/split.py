"""Load a real table as its card describes it, verify it, and split it.

``load_table`` finds the card's file in ``data_dir`` (the shipped ``<name>.csv.gz`` or the
original file name, compressed or not), checks the sha256 of the uncompressed bytes, handles
the real quirks (UTF-8 BOM, CRLF, dataset-specific missing tokens, id columns) and returns a
frame with exactly the card's columns and dtypes:

- ``int`` and ``binary`` -> pandas nullable ``Int64``
- ``float`` -> ``float64``
- ``categorical`` -> ``object`` strings (missing = NaN)

``split_table`` makes the stratified train / holdout split that every later step uses:
prompts and profiles see train only, evaluation compares against holdout.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from synllm.cards import DatasetCard, load_card
from synllm.errors import DataError

DTYPES = {"int": "Int64", "binary": "Int64", "float": "float64", "categorical": "object"}


def candidate_paths(card: DatasetCard, data_dir: str | Path) -> list[Path]:
    names = [card.file]
    if card.source_file:
        names += [card.source_file, card.source_file + ".gz"]
    if card.file.endswith(".gz"):
        names.append(card.file[:-3])
    return [Path(data_dir) / n for n in dict.fromkeys(names)]


def find_file(card: DatasetCard, data_dir: str | Path) -> Path:
    paths = candidate_paths(card, data_dir)
    for p in paths:
        if p.is_file():
            return p
    raise DataError(
        f"dataset {card.name!r}: no data file in data_dir {str(data_dir)!r} "
        f"(looked for {', '.join(p.name for p in paths)})"
    )


def read_bytes(path: Path) -> bytes:
    """The uncompressed bytes of a data file; a damaged file is one DataError naming it."""
    raw = path.read_bytes()
    if path.suffix == ".gz" and raw[:2] != b"\x1f\x8b":
        raise DataError(
            f"{path}: named .gz but is not gzip data; recompress it (gzip -k) "
            f"or drop the .gz suffix"
        )
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, gzip.BadGzipFile, zlib.error) as e:
            raise DataError(
                f"{path}: damaged or truncated gzip file ({e}); copy or download it again"
            ) from None
    if not raw.strip():
        raise DataError(f"{path}: the file is empty; copy or download it again")
    return raw


def decode_text(raw: bytes, path: Path) -> str:
    """UTF-8 text (a BOM is dropped); another encoding is one DataError naming the file."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path}: not UTF-8 text (byte {e.start}: {raw[e.start : e.start + 1]!r}); "
            f"convert it, e.g. iconv -f latin1 -t utf-8"
        ) from None


def coerce_frame(df: pd.DataFrame, card: DatasetCard) -> pd.DataFrame:
    """Cast columns to the card's dtypes; raise DataError naming a column that does not fit."""
    out = {}
    for name, col in card.columns.items():
        s = df[name]
        if col.type == "categorical":
            s = s.astype("object").where(s.notna(), np.nan)
            s = s.map(lambda v: v if not isinstance(v, str) else v.strip())
        else:
            num = pd.to_numeric(s, errors="coerce")
            bad = num.isna() & s.notna()
            if bad.any():
                raise DataError(
                    f"dataset {card.name!r}: column {name!r} has non-numeric values "
                    f"such as {s[bad].iloc[0]!r}"
                )
            if col.type in ("int", "binary"):
                frac = num.dropna() % 1 != 0
                if frac.any():
                    raise DataError(
                        f"dataset {card.name!r}: column {name!r} is declared {col.type} but has "
                        f"the value {num.dropna()[frac].iloc[0]!r}"
                    )
                s = num.round().astype("Int64")
            else:
                s = num.astype("float64")
        out[name] = s
    return pd.DataFrame(out, index=df.index)


def to_card_dtypes(df: pd.DataFrame, card: DatasetCard) -> pd.DataFrame:
    """A sampled frame (a baseline's or a peer's draw) in the card's dtypes, leniently.

    Categorical -> ``object`` (missing = NaN); ``int`` / ``binary`` -> rounded ``Int64``;
    ``float`` -> ``float64``; a value that is not a number becomes missing. The real table
    goes through the strict :func:`coerce_frame` instead.
    """
    out = {}
    for name, col in card.columns.items():
        s = df[name]
        if col.type == "categorical":
            out[name] = s.astype(object).where(s.notna(), np.nan)
        else:
            num = pd.to_numeric(s, errors="coerce")
            out[name] = (
                num.astype("float64") if col.type == "float" else num.round().astype("Int64")
            )
    return pd.DataFrame(out)


def load_table(card: DatasetCard, data_dir: str | Path, verify: bool = True) -> pd.DataFrame:
    """Read, verify and type the real table of ``card`` found in ``data_dir``."""
    path = find_file(card, data_dir)
    raw = read_bytes(path)
    if verify:
        digest = hashlib.sha256(raw).hexdigest()
        if digest != card.sha256:
            raise DataError(
                f"dataset {card.name!r}: sha256 of {path} is {digest}, the card expects "
                f"{card.sha256} (wrong file, or set verify_checksums: false for edited copies)"
            )
    text = decode_text(raw, path)
    df = pd.read_csv(
        io.StringIO(text),
        na_values=card.missing_tokens,
        keep_default_na=False,
        skipinitialspace=True,
        dtype=str,
    )
    df.columns = [c.strip() for c in df.columns]
    expected = set(card.columns) | set(card.id_columns)
    missing = [c for c in list(card.columns) + card.id_columns if c not in df.columns]
    if missing:
        raise DataError(
            f"dataset {card.name!r}: {path} lacks column(s) {missing}; fix the file's header "
            f"or the card's columns"
        )
    if df.empty:
        raise DataError(f"dataset {card.name!r}: {path} has a header but no rows")
    extra = [c for c in df.columns if c not in expected]
    if extra:
        raise DataError(f"dataset {card.name!r}: {path.name} has column(s) {extra} not in the card")
    df = coerce_frame(df.drop(columns=card.id_columns), card)
    check_against_card(df, card)
    return df.reset_index(drop=True)


def check_against_card(df: pd.DataFrame, card: DatasetCard) -> None:
    """Real data must respect its own card (categories, ranges, missingness)."""
    for name, col in card.columns.items():
        s = df[name]
        if s.isna().any() and not col.nullable:
            raise DataError(
                f"dataset {card.name!r}: column {name!r} has missing values but is not nullable"
            )
        v = s.dropna()
        if col.type == "categorical":
            bad = sorted(set(v) - set(col.categories or []))
            if bad:
                raise DataError(
                    f"dataset {card.name!r}: column {name!r} has categories {bad} not in the card"
                )
        elif col.type == "binary":
            if not v.isin([0, 1]).all():
                raise DataError(
                    f"dataset {card.name!r}: binary column {name!r} has values other than 0/1"
                )
        else:
            lo, hi = col.range  # type: ignore[misc]
            if len(v) and (v.min() < lo or v.max() > hi):
                raise DataError(
                    f"dataset {card.name!r}: column {name!r} spans [{v.min()}, {v.max()}], "
                    f"outside the card's range [{lo}, {hi}]"
                )


def split_table(
    df: pd.DataFrame,
    card: DatasetCard,
    holdout_fraction: float,
    seed: int,
    reference_fraction: float = 0.0,
) -> tuple[pd.DataFrame, ...]:
    """Stratified (on the target) train / holdout split; indices are reset.

    With ``reference_fraction > 0`` a third, disjoint part is carved out first and returned
    last: real rows that neither the models (train) nor the evaluation (holdout) see, which
    the ``holdout`` baseline samples from, so its privacy and TSTR scores are not measured on
    its own rows. Fractions are of the full table.
    """
    if not 0 < holdout_fraction < 1:
        raise DataError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    if not 0 <= reference_fraction < 1 - holdout_fraction:
        raise DataError(
            f"reference_fraction must be in [0, 1 - holdout_fraction), got {reference_fraction}"
        )
    # imported here: read_split serves every validate job, which needs no scikit-learn and
    # would pay its ~2 s import per job
    from sklearn.model_selection import train_test_split

    reference = None
    rest = df
    if reference_fraction > 0:
        rest, reference = train_test_split(
            df, test_size=reference_fraction, random_state=seed, stratify=df[card.target]
        )
    train, holdout = train_test_split(
        rest,
        test_size=holdout_fraction / (1 - reference_fraction),
        random_state=seed,
        stratify=rest[card.target],
    )
    parts = [train.reset_index(drop=True), holdout.reset_index(drop=True)]
    if reference is not None:
        parts.append(reference.reset_index(drop=True))
    return tuple(parts)


def read_split(path: str | Path, card: DatasetCard) -> pd.DataFrame:
    """Read a split parquet written by ``synllm split`` with the card's dtypes."""
    df = pd.read_parquet(path)
    return df.astype({c: DTYPES[spec.type] for c, spec in card.columns.items()})


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="synllm split", description=__doc__.splitlines()[0])
    p.add_argument("--card", required=True, help="dataset card YAML")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--holdout-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--no-verify", action="store_true", help="skip the sha256 check")
    p.add_argument("--train", required=True, help="output parquet")
    p.add_argument("--holdout", required=True, help="output parquet")
    p.add_argument("--reference-fraction", type=float, default=0.0)
    p.add_argument("--reference", help="output parquet of the reference part (holdout baseline)")
    a = p.parse_args(argv)
    if (a.reference_fraction > 0) != bool(a.reference):
        raise DataError("--reference and --reference-fraction > 0 go together")
    card = load_card(a.card)
    df = load_table(card, a.data_dir, verify=not a.no_verify)
    parts = split_table(df, card, a.holdout_fraction, a.seed, a.reference_fraction)
    outs = (a.train, a.holdout, a.reference)
    for frame, out in zip(parts, outs):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(out, index=False)
    sizes = ", ".join(f"{n} {len(f)}" for n, f in zip(("train", "holdout", "reference"), parts))
    print(f"{card.name}: {len(df)} rows -> {sizes}")
    return 0


def to_records(df: pd.DataFrame, card: DatasetCard) -> list[dict]:
    """Rows as JSON-ready dicts in card column order (ints as int, missing as None).

    Floats are rounded to the column's ``decimals`` when the card gives one.
    """
    out = []
    cols = card.columns
    for row in df[list(cols)].itertuples(index=False, name=None):
        rec = {}
        for (name, spec), v in zip(cols.items(), row):
            if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
                rec[name] = None
            elif spec.type in ("int", "binary"):
                rec[name] = int(v)
            elif spec.type == "float":
                v = float(v)
                rec[name] = round(v, spec.decimals) if spec.decimals is not None else v
            else:
                rec[name] = str(v)
        out.append(rec)
    return out
