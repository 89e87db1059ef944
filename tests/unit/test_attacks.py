"""synllm.attacks: the card's metadata for Anonymeter, the table fields, a missing
environment, and (slow) the attacks on planted tables in the built environment."""

from __future__ import annotations

import json

import pytest

from synllm import attacks, envs
from synllm.cli import main


def test_card_meta_names_kinds_quasi_identifiers_and_sensitive(card):
    meta = attacks.card_meta(card("stroke"), n_attacks=300, seed=7)
    assert meta["quasi_identifiers"] == ["gender", "age", "bmi"] and meta["sensitive"] == "stroke"
    assert meta["columns"]["age"] == "numeric" and meta["columns"]["gender"] == "categorical"
    assert meta["columns"]["stroke"] == "categorical"  # binary: two classes, not a range
    assert (meta["n_attacks"], meta["seed"]) == (300, 7)


def test_table_fields_flattens_an_ok_block_only():
    block = {"status": "ok", "singling_out": {"risk": 0.4, "ci_low": 0.3, "ci_high": 0.5}}
    assert attacks.table_fields(block) == {
        "anonymeter_singling_out_risk": 0.4,
        "anonymeter_singling_out_ci_low": 0.3,
        "anonymeter_singling_out_ci_high": 0.5,
    }
    assert attacks.table_fields({"status": "skipped"}) == {}
    assert attacks.table_fields(None) == {}


def _cell_files(tmp_path, card, train, holdout, syn):
    paths = {k: tmp_path / f"{k}.parquet" for k in ("train", "holdout")}
    train.to_parquet(paths["train"])
    holdout.to_parquet(paths["holdout"])
    paths["synthetic"] = tmp_path / "synthetic.csv"
    syn[list(card.columns)].to_csv(paths["synthetic"], index=False)
    return paths


def test_a_missing_environment_is_one_line_naming_the_build_command(
    tmp_path, monkeypatch, capsys, split, cards_dir
):
    monkeypatch.setenv("SYNLLM_ENVS_DIR", str(tmp_path / "none"))
    card, train, holdout = split("stroke")
    p = _cell_files(tmp_path, card, train, holdout, train.head(20))
    argv = ["anonymeter", "--card", str(cards_dir / "stroke.yaml"), "--out", str(tmp_path / "o")]
    argv += [f"--{k}={v}" for k, v in p.items()]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "environment 'anonymeter' is not built" in err
    assert "synllm envs build anonymeter" in err
    assert not (tmp_path / "o").exists()


def test_a_table_without_records_is_skipped_without_the_environment(tmp_path, monkeypatch, split):
    monkeypatch.setenv("SYNLLM_ENVS_DIR", str(tmp_path / "none"))
    card, train, holdout = split("stroke")
    p = _cell_files(tmp_path, card, train, holdout, train.head(0))
    doc = attacks.run(card, p["synthetic"], p["train"], p["holdout"], seed=1, n_attacks=50)
    assert doc["status"] == "skipped" and attacks.table_fields(doc) == {}


@pytest.fixture(scope="module")
def anonymeter_env():
    """The pinned environment, built here when it is not (pip's cache makes that ~1 min)."""
    return envs.build("anonymeter", envs.requirements_file("anonymeter"))


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["diabetes", "stroke", "cirrhosis"])
def test_copied_train_rows_carry_a_clearly_higher_risk_than_fresh_rows(
    anonymeter_env, dataset, split, tmp_path
):
    """Anonymeter's own check, on each dataset: the attacked patients (``ori``, n train rows)
    published verbatim vs n real patients no generator saw; the control is n other unseen
    patients (a 50/50 split, so cirrhosis has enough of them)."""
    card, train, holdout = split(dataset, holdout_fraction=0.5)
    n = min(400, len(train), len(holdout) // 2)
    ori = train.sample(n, random_state=1)
    control, fresh = holdout.iloc[:n], holdout.iloc[n : 2 * n]
    risks = {}
    for name, syn in {"copies": ori.sample(frac=1, random_state=2), "fresh": fresh}.items():
        d = tmp_path / name
        d.mkdir()
        p = _cell_files(d, card, ori, control, syn)
        doc = attacks.run(card, p["synthetic"], p["train"], p["holdout"], seed=3, n_attacks=n)
        assert doc["status"] == "ok", doc
        # the adapter read the three files it was given and nothing else
        assert doc["inputs"] == {
            "ori": str(p["train"]),
            "control": str(p["holdout"]),
            "synthetic": str(p["synthetic"]),
        }
        risks[name] = {a: round(doc[a]["risk"], 3) for a in attacks.ATTACKS}
        for a in attacks.ATTACKS:
            assert 0 <= doc[a]["ci_low"] <= doc[a]["risk"] <= doc[a]["ci_high"] <= 1
    print(dataset, n, json.dumps(risks))
    assert risks["copies"]["linkability"] > risks["fresh"]["linkability"] + 0.3
    assert risks["copies"]["singling_out"] > risks["fresh"]["singling_out"] + 0.1
    assert risks["fresh"]["linkability"] < 0.1
