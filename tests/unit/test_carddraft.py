"""``synllm card draft`` on real tables: GBSG2, ACTG 175 and NCCTG lung as shipped by the PyPI
package lifelines, and the three shipped datasets, whose drafts are compared with their
hand-written cards."""

import hashlib

import pandas as pd
import pytest

from synllm.carddraft import (
    TODO,
    draft_card,
    id_like,
    missing_tokens,
    plausible_range,
    synonyms,
)
from synllm.cards import load_card
from synllm.cli import main
from synllm.errors import ConfigError, DataError
from synllm.split import load_table


@pytest.fixture(scope="module")
def gbsg2(public_table):
    path = public_table("gbsg2.csv")
    return path, draft_card(path, "cens")


@pytest.fixture(scope="module")
def actg175(public_table):
    path = public_table("ACTG175.csv")
    return path, draft_card(path, "cens")


def test_gbsg2_types_categories_and_task(gbsg2):
    _, draft = gbsg2
    card = draft.card
    types = {c: s["type"] for c, s in card["columns"].items()}
    assert types == {
        "horTh": "categorical",
        "age": "int",
        "menostat": "categorical",
        "tsize": "int",
        "tgrade": "categorical",
        "pnodes": "int",
        "progrec": "int",
        "estrec": "int",
        "time": "int",
        "cens": "binary",
    }
    cols = card["columns"]
    assert cols["horTh"]["categories"] == ["no", "yes"]  # the file's spelling
    assert cols["menostat"]["categories"] == ["Post", "Pre"]
    assert cols["tgrade"]["categories"] == ["I", "II", "III"]
    assert cols["horTh"]["synonyms"]["Y"] == "yes" and cols["horTh"]["synonyms"]["0"] == "no"
    assert card["task"] == "binary" and card["target"] == "cens"
    assert card["name"] == "gbsg2" and card["file"] == "gbsg2.csv"
    assert card["id_columns"] == [] and card["missing_tokens"] == [""]
    assert card["privacy"] == {"quasi_identifiers": ["age"], "sensitive": "cens"}
    assert card["group_columns"] == []  # GBSG2 is women only: no sex column to suggest
    assert cols["age"]["unit"] == "years"
    assert not any(s.get("nullable") for s in cols.values())
    assert card["rules"] == [] and card["relations"] == []


def test_gbsg2_ranges_cover_the_data_with_a_margin(gbsg2):
    path, draft = gbsg2
    df = pd.read_csv(path)
    for col, spec in draft.card["columns"].items():
        if "range" not in spec:
            continue
        lo, hi = spec["range"]
        vmin, vmax = df[col].min(), df[col].max()
        span = vmax - vmin
        # at least the observed range, at most 10 % of the span plus one rounding step
        # (at most a tenth of the span) beyond it on either side, and never below 0
        assert lo <= vmin and hi >= vmax, col
        assert lo >= max(0, vmin - 0.2 * span) and hi <= vmax + 0.2 * span, col
    assert draft.card["columns"]["age"]["range"] == [15, 90]  # ages 21-80: 5.9 margin, step 5


def test_gbsg2_sha256_rows_and_the_card_loads_its_table(gbsg2, tmp_path):
    path, draft = gbsg2
    assert draft.card["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert draft.card["rows"] == 686
    out = tmp_path / "gbsg2.yaml"
    assert main(["card", "draft", str(path), "--target", "cens", "--out", str(out)]) == 0
    card = load_card(out)
    table = load_table(card, path.parent)
    assert len(table) == 686 and list(table.columns) == list(draft.card["columns"])
    assert str(table["age"].dtype) == "Int64" and table["horTh"].isin(["no", "yes"]).all()


def test_definitions_and_provenance_are_marked_placeholders(gbsg2):
    card = gbsg2[1].card
    assert all(s["definition"].startswith(f"{TODO}: ") for s in card["columns"].values())
    assert card["title"].startswith(TODO) and card["description"].startswith(TODO)
    assert all(v.startswith(TODO) for v in card["provenance"].values())


def test_cli_says_on_one_line_what_to_check(public_table, tmp_path, capsys):
    path = public_table("gbsg2.csv")
    assert main(["card", "draft", str(path), "--target", "cens", "--cards-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(str(tmp_path / "gbsg2.yaml"))
    assert "686 rows, 10 columns (6 int, 1 binary, 3 categorical)" in lines[0]
    check = lines[1]
    assert check.startswith("still to check: TODO placeholders")
    for item in ("10 definitions", "ranges of 6 numeric", "no group column", "quasi-identifiers"):
        assert item in check
    text = (tmp_path / "gbsg2.yaml").read_text()
    assert check.removeprefix("still to check: ") in text.splitlines()[1]  # also in the card
    assert "categories: [I, II, III]" in text and "rules: []" in text


def test_an_existing_card_is_kept_without_force(public_table, tmp_path, capsys):
    path = public_table("gbsg2.csv")
    out = tmp_path / "gbsg2.yaml"
    out.write_text("hand-written\n")
    assert main(["card", "draft", str(path), "--target", "cens", "--out", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert out.read_text() == "hand-written\n"
    assert main(["card", "draft", str(path), "--target", "cens", "--out", str(out), "--force"]) == 0
    assert load_card(out).rows == 686


def test_check_config_warns_of_placeholders_a_draft_still_has(public_table, tmp_path, capsys):
    import yaml

    from synllm.cards import placeholders
    from synllm.config import REPO_ROOT, check_config

    path = public_table("gbsg2.csv")
    assert main(["card", "draft", str(path), "--target", "cens", "--cards-dir", str(tmp_path)]) == 0
    card = load_card(tmp_path / "gbsg2.yaml")
    todo = placeholders(card)
    assert "title" in todo and "columns.age.definition" in todo
    assert placeholders(load_card(REPO_ROOT / "resources/datasets/stroke.yaml")) == []
    capsys.readouterr()
    config = yaml.safe_load((REPO_ROOT / "config/config.yaml").read_text())
    check_config({**config, "datasets": ["gbsg2"], "cards_dir": str(tmp_path)})
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"synllm: warning: dataset card 'gbsg2' still has {len(todo)} TODO")


def test_actg175_ids_missing_tokens_groups(actg175):
    path, draft = actg175
    card = draft.card
    # an R row index (empty header) and the patient number are dropped on load
    assert card["id_columns"] == ["Unnamed: 0", "pidnum"]
    assert card["missing_tokens"] == ["NA", ""]
    cols = card["columns"]
    assert cols["cd496"]["nullable"] is True and cols["cd496"]["type"] == "int"
    assert cols["wtkg"]["type"] == "float" and cols["wtkg"]["decimals"] >= 4
    assert cols["race"]["type"] == "binary" and cols["strat"]["range"] == [1, 3]  # a 1-3 code
    assert card["group_columns"] == ["race", "gender"]
    assert card["privacy"]["quasi_identifiers"] == ["age", "wtkg", "race", "gender"]
    table = load_table(load_card_dict(card), path.parent)
    assert table["cd496"].isna().sum() == 797


def load_card_dict(card: dict):
    from synllm.cards import DatasetCard

    return DatasetCard.model_validate(card)


@pytest.mark.parametrize(
    "file,target",
    [("ACTG175.csv", "pidnum"), ("ACTG175.csv", "Unnamed: 0")],
)
def test_identifier_target_is_refused_with_one_line(public_table, file, target, tmp_path, capsys):
    path = public_table(file)
    with pytest.raises(ConfigError, match="looks like an identifier"):
        draft_card(path, target)
    assert (
        main(["card", "draft", str(path), "--target", target, "--out", str(tmp_path / "c.yaml")])
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--target {target!r} looks like an identifier" in err


def test_a_whole_number_class_code_target_becomes_categories(public_table):
    path = public_table("ACTG175.csv")
    draft = draft_card(path, "arms")  # treatment arm 0-3
    assert draft.card["columns"]["arms"]["type"] == "categorical"
    assert draft.card["columns"]["arms"]["categories"] == ["0", "1", "2", "3"]
    assert draft.card["task"] == "multiclass"
    assert "the target's codes ['0', '1', '2', '3'] are categories" in draft.check_line()
    table = load_table(load_card_dict(draft.card), path.parent)
    assert set(table["arms"]) == {"0", "1", "2", "3"}


def test_continuous_or_unknown_target_is_refused(public_table):
    path = public_table("gbsg2.csv")
    with pytest.raises(ConfigError, match="'time' is a continuous int column"):
        draft_card(path, "time")
    with pytest.raises(ConfigError, match="'status' is not a column"):
        draft_card(path, "status")
    with pytest.raises(ConfigError, match="'zprior' has a single value"):  # always 1 in ACTG 175
        draft_card(public_table("ACTG175.csv"), "zprior")


def test_a_column_name_that_is_no_identifier_is_named(public_table):
    with pytest.raises(DataError, match="column name 'ph.ecog' is not an identifier"):
        draft_card(public_table("lung.csv"), "status")


# -- the three shipped datasets: drafts close to the hand-written cards ------------------------


@pytest.fixture(scope="module")
def drafted(dataset, card, data_dir):
    hand = card(dataset)
    return hand, draft_card(data_dir / hand.file, hand.target)


def test_draft_matches_the_hand_written_card(drafted):
    hand, draft = drafted
    card = load_card_dict(draft.card)
    assert (card.name, card.file) == (hand.name, hand.file)
    assert (card.sha256, card.rows) == (hand.sha256, hand.rows)
    assert card.missing_tokens == hand.missing_tokens
    assert card.id_columns == hand.id_columns
    assert card.task == hand.task and card.group_columns == hand.group_columns
    assert card.privacy.quasi_identifiers == hand.privacy.quasi_identifiers
    assert card.privacy.sensitive == hand.privacy.sensitive
    assert list(card.columns) == list(hand.columns)
    for name, h in hand.columns.items():
        d = card.columns[name]
        if h.type == "float" and h.decimals == 0:
            # lab values the file writes as whole numbers (cirrhosis Cholesterol, Copper, ...)
            assert d.type in ("int", "float"), name
        else:
            assert d.type == h.type, name
        assert set(d.categories or []) == set(h.categories or []), name
        assert d.nullable == h.nullable, name
        if h.type == "float" and h.decimals:
            assert d.decimals == h.decimals, name
        for alias, canon in h.synonyms.items():
            if alias in d.synonyms:
                assert d.synonyms[alias] == canon, (name, alias)


def test_identifier_of_a_shipped_dataset_is_refused(data_dir, card):
    for name in ("stroke", "cirrhosis"):
        hand = card(name)
        with pytest.raises(ConfigError, match="looks like an identifier"):
            draft_card(data_dir / hand.file, hand.id_columns[0])


# -- the pieces, against hand-computed values -------------------------------------------------


def test_plausible_range_hand_computed():
    # ages 21-80 (more than 10 values): span 59 -> margin 5.9, step 5 -> [15.1, 85.9] -> [15, 90]
    ages = pd.Series([21.0, 80.0] + [float(a) for a in range(30, 70, 3)])
    assert plausible_range(ages, integer=True) == [15, 90]
    # span 2 -> margin 0.2, step 0.2: [0.3, 2.7] -> [0.2, 2.8]
    assert plausible_range(pd.Series([0.5, 2.5]), integer=False) == [0.2, 2.8]
    # a whole-number code with few levels keeps its observed range
    assert plausible_range(pd.Series([1.0, 2.0, 4.0]), integer=True) == [1, 4]
    # no negative value: never below 0; within [0, 1]: never above 1
    assert plausible_range(pd.Series([0.05, 0.97]), integer=False) == [0, 1]
    assert plausible_range(pd.Series([-3.0, 7.0]), integer=False) == [-4, 8]


def test_synonyms_hand_computed():
    assert synonyms(["Self-employed", "Govt_job", "Private"]) == {
        "Govt job": "Govt_job",
        "Govt-job": "Govt_job",
        "Self employed": "Self-employed",
        "Self_employed": "Self-employed",
    }
    assert synonyms(["N", "Y"]) == {
        "0": "N",
        "1": "Y",
        "False": "N",
        "No": "N",
        "True": "Y",
        "Yes": "Y",
    }
    assert synonyms(["F", "M"]) == {"Female": "F", "Male": "M", "Man": "M", "Woman": "F"}
    # a spelling that could mean two categories is left out
    assert synonyms(["a b", "a_b"]) == {}


def test_missing_tokens_only_where_they_mean_missing():
    df = pd.DataFrame(
        {
            "bmi": ["21.5", "N/A", "30.1", ""],
            "lab": ["1", "-", "2", "3"],
            "smoker": ["None", "current", "former", "None"],  # a category, not missing
            "stage": ["I", "?", "II", "III"],
        }
    )
    assert missing_tokens(df) == ["N/A", "?", "-", ""]


@pytest.mark.parametrize(
    "name,expected",
    [
        ("id", True),
        ("ID", True),
        ("patient_id", True),
        ("PatientID", True),
        ("pidnum", True),
        ("Unnamed: 0", True),
        ("acid", False),
        ("thyroid", False),
        ("num", False),
        ("Status", False),
    ],
)
def test_id_like_names(name, expected):
    assert id_like(name, pd.Series(["1", "1"]), 2) is expected


def test_id_like_values():
    n = 30
    counter = pd.Series([str(i) for i in range(1, n + 1)])
    assert id_like("row", counter, n)  # unique whole numbers in increasing order
    assert id_like("code", pd.Series([f"P{i:03d}" for i in range(n)]), n)  # unique text
    unique_float = pd.Series([f"{i * 1.37:.2f}" for i in range(n)]).sample(frac=1, random_state=0)
    assert not id_like("glucose", unique_float, n)  # a measurement
    assert not id_like("age", pd.Series([str(i % 7) for i in range(n)]), n)
