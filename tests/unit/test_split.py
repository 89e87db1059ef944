"""Loader, checksums, quirks and split on the real tables."""

import gzip
import hashlib
import io

import pandas as pd
import pytest

from synllm.cards import find_card, load_card
from synllm.errors import ConfigError, DataError
from synllm.split import find_file, load_table, split_table

SHARED_FILES = {
    "diabetes": "diabetes_prediction_dataset.csv",
    "stroke": "healthcare-dataset-stroke-data.csv",
    "cirrhosis": "cirrhosis.csv",
}


def test_shipped_file_matches_shared_copy_and_card(dataset, shared_dir, root):
    card = find_card(dataset, root / "resources" / "datasets")
    shipped = gzip.decompress((root / "resources" / "data" / card.file).read_bytes())
    original = (shared_dir / "datasets" / SHARED_FILES[dataset]).read_bytes()
    assert shipped == original
    assert hashlib.sha256(shipped).hexdigest() == card.sha256
    readme = (shared_dir / "datasets" / "README.md").read_text()
    assert card.sha256 in readme


def test_loads_from_shared_dir_with_original_names(dataset, shared_dir, real):
    card, shipped = real(dataset)
    from_shared = load_table(card, shared_dir / "datasets")
    pd.testing.assert_frame_equal(from_shared, shipped)
    assert list(shipped.columns) == card.feature_names
    assert len(shipped) == card.rows


def test_diabetes_quirks(real, root):
    card, df = real("diabetes")
    assert len(df) == 100_000
    assert int(df["diabetes"].sum()) == 8_500
    assert "No Info" in set(df["smoking_history"])
    assert df["age"].min() < 2 and (df["age"] % 1 != 0).any()
    assert (
        int(
            pd.read_csv(root.parent / "shared/datasets/diabetes_prediction_dataset.csv")
            .duplicated()
            .sum()
        )
        == 3854
    )
    assert int(df.duplicated().sum()) == 3854  # duplicates are real and kept


def test_stroke_quirks(real):
    card, df = real("stroke")
    assert len(df) == 5_110
    assert "id" not in df.columns
    assert int(df["bmi"].isna().sum()) == 201
    assert int(df["stroke"].sum()) == 249
    assert (df["gender"] == "Other").sum() == 1
    assert str(df["hypertension"].dtype) == "Int64"


def test_cirrhosis_quirks(real):
    card, df = real("cirrhosis")
    assert len(df) == 418
    assert "ID" not in df.columns and "N_Days" == df.columns[0]  # BOM stripped from the header
    assert df["Age"].between(9_000, 30_000).all()  # days, not years
    assert int(df["Drug"].isna().sum()) == 106
    assert int(df["Stage"].isna().sum()) == 6
    assert set(df["Status"]) == {"C", "CL", "D"}


def test_checksum_mismatch_is_one_clear_line(tmp_path, root):
    card = find_card("cirrhosis", root / "resources" / "datasets")
    text = gzip.decompress((root / "resources/data/cirrhosis.csv.gz").read_bytes()).replace(
        b"14.5", b"14.6"
    )
    (tmp_path / "cirrhosis.csv").write_bytes(text)
    with pytest.raises(DataError) as err:
        load_table(card, tmp_path)
    assert "sha256" in str(err.value) and "\n" not in str(err.value)
    # an edited copy loads when verification is switched off
    assert len(load_table(card, tmp_path, verify=False)) == 418


def _cirrhosis_bytes(root) -> bytes:
    return gzip.decompress((root / "resources/data/cirrhosis.csv.gz").read_bytes())


def _one_line_error(card, data_dir, verify=True) -> str:
    with pytest.raises(DataError) as err:
        load_table(card, data_dir, verify=verify)
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_truncated_gzip_is_one_line_naming_the_file(tmp_path, root):
    card = find_card("cirrhosis", root / "resources" / "datasets")
    whole = (root / "resources/data/cirrhosis.csv.gz").read_bytes()
    (tmp_path / "cirrhosis.csv.gz").write_bytes(whole[: len(whole) // 2])
    msg = _one_line_error(card, tmp_path)
    assert "cirrhosis.csv.gz" in msg and "truncated" in msg


def test_gz_name_without_gzip_data_is_one_line(tmp_path, root):
    card = find_card("cirrhosis", root / "resources" / "datasets")
    (tmp_path / "cirrhosis.csv.gz").write_bytes(_cirrhosis_bytes(root))
    msg = _one_line_error(card, tmp_path)
    assert "cirrhosis.csv.gz" in msg and "not gzip" in msg


def test_empty_file_is_one_line(tmp_path, root):
    card = find_card("cirrhosis", root / "resources" / "datasets")
    (tmp_path / "cirrhosis.csv").write_bytes(b"")
    msg = _one_line_error(card, tmp_path)
    assert "cirrhosis.csv" in msg and "empty" in msg


def test_header_without_rows_is_one_line(tmp_path, root):
    card = find_card("cirrhosis", root / "resources" / "datasets")
    (tmp_path / "cirrhosis.csv").write_bytes(_cirrhosis_bytes(root).splitlines(keepends=True)[0])
    msg = _one_line_error(card, tmp_path, verify=False)
    assert "no rows" in msg


def test_wrong_encoding_is_one_line_with_the_fix(tmp_path, root):
    card = find_card("cirrhosis", root / "resources" / "datasets")
    latin1 = (
        _cirrhosis_bytes(root).decode("utf-8-sig").replace("Placebo", "Placébo").encode("latin-1")
    )
    (tmp_path / "cirrhosis.csv").write_bytes(latin1)
    msg = _one_line_error(card, tmp_path, verify=False)
    assert "cirrhosis.csv" in msg and "UTF-8" in msg and "iconv" in msg


def test_missing_column_names_the_column_and_file(tmp_path, root):
    card = find_card("cirrhosis", root / "resources" / "datasets")
    df = pd.read_csv(io.BytesIO(_cirrhosis_bytes(root)), encoding="utf-8-sig").drop(
        columns=["Bilirubin"]
    )
    df.to_csv(tmp_path / "cirrhosis.csv", index=False)
    msg = _one_line_error(card, tmp_path, verify=False)
    assert "Bilirubin" in msg and "cirrhosis.csv" in msg


def test_split_cli_on_truncated_gzip_exits_2_with_one_line(tmp_path, capsys, root):
    from synllm.cli import main

    whole = (root / "resources/data/cirrhosis.csv.gz").read_bytes()
    (tmp_path / "cirrhosis.csv.gz").write_bytes(whole[:-40])
    out = tmp_path / "out"
    rc = main(
        [
            "split",
            "--card",
            str(root / "resources/datasets/cirrhosis.yaml"),
            "--data-dir",
            str(tmp_path),
            "--holdout-fraction",
            "0.2",
            "--reference-fraction",
            "0.1",
            "--seed",
            "1",
            "--train",
            str(out / "t.parquet"),
            "--holdout",
            str(out / "h.parquet"),
            "--reference",
            str(out / "r.parquet"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "truncated" in err
    assert "Traceback" not in err


def test_missing_file_names_what_was_looked_for(tmp_path, root):
    card = find_card("stroke", root / "resources" / "datasets")
    with pytest.raises(DataError, match="stroke.csv.gz"):
        find_file(card, tmp_path)


def test_unknown_dataset_lists_known_cards(root):
    with pytest.raises(ConfigError, match="unknown dataset 'diabetis'"):
        find_card("diabetis", root / "resources" / "datasets")


def test_new_dataset_described_by_a_card(tmp_path):
    """A user's own table with its own card loads like the shipped ones."""
    csv = "pid,sex,sbp,event\n1,f,120,0\n2,m,140,1\n3,f,NA,0\n4,m,150,1\n5,f,118,0\n6,m,135,1\n"
    (tmp_path / "toy.csv").write_text(csv)
    digest = hashlib.sha256(csv.encode()).hexdigest()
    card_text = f"""
name: toy
title: Toy cohort
description: six patients
file: toy.csv
sha256: {digest}
rows: 6
provenance: {{source: made up for a test}}
id_columns: [pid]
target: event
task: binary
columns:
  sex: {{type: categorical, definition: sex, categories: [f, m]}}
  sbp: {{type: int, definition: systolic blood pressure, unit: mmHg, range: [60, 250], nullable: true}}
  event: {{type: binary, definition: outcome}}
"""
    (tmp_path / "toy.yaml").write_text(card_text)
    card = load_card(tmp_path / "toy.yaml")
    df = load_table(card, tmp_path)
    assert list(df.columns) == ["sex", "sbp", "event"]
    assert int(df["sbp"].isna().sum()) == 1


def _toy_card(tmp_path, sbp_aliases: str):
    (tmp_path / "toy.yaml").write_text(
        f"""
name: toy
title: Toy cohort
description: three columns
file: toy.csv
sha256: "{"0" * 64}"
rows: 1
provenance: {{source: made up for a test}}
target: event
task: binary
columns:
  sex: {{type: categorical, definition: sex, categories: [f, m], aliases: [gender]}}
  sbp: {{type: int, definition: systolic pressure, range: [60, 250], aliases: {sbp_aliases}}}
  event: {{type: binary, definition: outcome}}
"""
    )
    return load_card(tmp_path / "toy.yaml")


def test_new_dataset_column_aliases_come_from_its_card(tmp_path):
    """A model's own names for the columns are declared in the card, not in the parser."""
    from synllm.validate import validate_text

    card = _toy_card(tmp_path, "[systolic blood pressure, SBP (mmHg)]")
    text = '{"Gender": "m", "Systolic Blood Pressure": 131, "event": 1}\n'
    out, rep = validate_text(text, card)
    assert rep["valid"] == 1 and out.iloc[0].tolist() == ["m", 131, 1]


def test_alias_naming_two_columns_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"alias 'Sex' of column 'sbp' also names 'sex'"):
        _toy_card(tmp_path, "[Sex]")


def test_bad_card_names_the_field(tmp_path, root):
    text = (
        (root / "resources/datasets/stroke.yaml")
        .read_text()
        .replace("type: float", "type: real", 1)
    )
    (tmp_path / "stroke.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"field 'columns\.age\.type'"):
        load_card(tmp_path / "stroke.yaml")


def test_split_sizes_and_stratification(dataset, real):
    card, df = real(dataset)
    train, holdout = split_table(df, card, 0.2, seed=7)
    assert len(train) + len(holdout) == len(df)
    assert abs(len(holdout) - 0.2 * len(df)) <= 1
    full = df[card.target].value_counts(normalize=True)
    for part in (train, holdout):
        share = part[card.target].value_counts(normalize=True)
        for cls, p in full.items():
            # stratified: class shares agree up to one record's worth
            assert abs(share[cls] - p) <= 1.0 / len(part) + 1e-9
    again, _ = split_table(df, card, 0.2, seed=7)
    pd.testing.assert_frame_equal(train, again)
    other, _ = split_table(df, card, 0.2, seed=8)
    assert not train.equals(other)


def test_three_way_split_is_disjoint_and_stratified(dataset, real):
    card, df = real(dataset)
    train, holdout, reference = split_table(df, card, 0.2, seed=3, reference_fraction=0.1)
    assert len(train) + len(holdout) + len(reference) == len(df)
    assert abs(len(reference) - 0.1 * len(df)) <= 1
    assert abs(len(holdout) - 0.2 * len(df)) <= 2
    # disjoint as multisets of rows: together they are exactly the full table
    together = pd.concat([train, holdout, reference]).astype(str)

    def key(f):
        return f.astype(str).apply("|".join, axis=1).sort_values().reset_index(drop=True)

    pd.testing.assert_series_equal(key(together), key(df))
    p = df[card.target].value_counts(normalize=True)
    for part in (holdout, reference):
        share = part[card.target].value_counts(normalize=True)
        for cls in p.index:
            assert abs(share.get(cls, 0) - p[cls]) <= 1.0 / len(part) + 1e-9


def test_card_schema_file_in_sync(root):
    from synllm.cards import export_schema

    assert (root / "workflow/schemas/dataset_card.schema.json").read_text() == export_schema()


def test_real_data_passes_its_own_clinical_rules(dataset, real):
    card, df = real(dataset)
    for rule in card.rules:
        cond = df.eval(rule.if_).fillna(False).astype(bool)
        then = df.eval(rule.then).fillna(True).astype(bool)
        assert not (cond & ~then).any(), rule.id
