"""Leak metrics: copy rates by hand, TPR at low FPR against Carlini et al.'s formula, the
seed-row attack on planted copies, and the SDMetrics checks against SDMetrics run directly."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_curve

from synllm.cards import load_card
from synllm.errors import ConfigError
from synllm.evaluate import parse_settings
from synllm.metrics import leaks as L
from synllm.metrics import privacy as P
from synllm.split import to_records

SETTINGS = parse_settings(json.dumps({"mia_sample": 2000, "sdmetrics_sample": 500}))


def test_copy_rates_by_hand(real):
    card, df = real("stroke")
    train, holdout = df.iloc[:100].copy(), df.iloc[100:150].copy()
    holdout.iloc[0] = train.iloc[7]  # one holdout row duplicates a train row
    shown = train.iloc[[3, 4]].reset_index(drop=True)
    syn = pd.concat([train.iloc[[3, 3, 9]], holdout.iloc[[5]], df.iloc[[400]]], ignore_index=True)
    r = L.copy_rates(train, holdout, syn, shown, card)
    assert r["prompt_copy_rate"] == 2 / 5  # the two copies of train row 3
    assert r["train_copy_rate"] == 3 / 5  # + train row 9
    assert r["holdout_match_rate"] == 1 / 5
    assert r["train_copy_chance"] == 1 / 50  # holdout row 0 equals train row 7
    assert r["holdout_match_chance"] == 1 / 100
    assert r["prompt_copy_chance"] == 0.0
    assert L.copy_rates(train, holdout, syn, shown.iloc[:0], card)["prompt_copy_rate"] == 0.0


def test_train_copy_chance_counts_real_duplicates_diabetes(split):
    """diabetes has 3,854 duplicated rows: fresh real rows match train well above zero."""
    card, train, holdout = split("diabetes")
    r = L.copy_rates(train, holdout, holdout.iloc[:10], train.iloc[:0], card)
    expected = holdout.merge(train.drop_duplicates(), how="left", indicator=True)["_merge"]
    assert r["train_copy_chance"] == pytest.approx((expected == "both").mean(), abs=1e-12)
    assert 0.01 < r["train_copy_chance"] < 0.2


def test_tpr_at_fpr_matches_carlini_formula_and_hand_example():
    rng = np.random.default_rng(0)
    dm, dn = rng.exponential(1.0, 300), rng.exponential(1.3, 2000)
    y = np.r_[np.ones(300), np.zeros(2000)]
    fpr, tpr, _ = roc_curve(y, -np.r_[dm, dn])
    for a in (0.01, 0.001):
        carlini = tpr[np.where(fpr < a)[0][-1]]  # LiRA's plot.py
        assert P.tpr_at_fpr(dm, dn, a) == pytest.approx(carlini, abs=1e-12)
    # 2 of 4 members at distance 0, no non-member closer than 0.5: TPR 0.5 at zero FP
    assert P.tpr_at_fpr(np.array([0, 0, 1, 2.0]), np.linspace(0.5, 3, 200), 0.001) == 0.5
    # a tie between a member and a non-member at the top is not below 0.1 % FPR
    assert P.tpr_at_fpr(np.array([0.0, 1.0]), np.r_[0.0, np.ones(99) * 5], 0.001) == 0.0


def test_prompt_rows_only_when_real(split):
    card, train, _ = split("stroke")
    rows = to_records(train.iloc[:3], card)
    got = L.prompt_rows({"example_rows": rows, "example_rows_real": True}, card)
    assert len(got) == 3 and (P.row_hashes(got, card) == P.row_hashes(train.iloc[:3], card)).all()
    assert len(L.prompt_rows({"example_rows": rows, "example_rows_real": False}, card)) == 0
    assert len(L.prompt_rows({"example_rows": rows}, card)) == 0
    assert len(L.prompt_rows(None, card)) == 0


def _by(results):
    return {r.metric.name: r for r in results}


def test_seed_row_attack_flags_copied_seed_rows(split):
    card, train, holdout = split("stroke")
    # fresh rows come from a reference part, never from the non-members' holdout
    holdout, reference = holdout.iloc[:700], holdout.iloc[700:]
    shown = train.sample(5, random_state=1).reset_index(drop=True)
    fresh = reference.sample(200, random_state=2)
    leak = pd.concat([fresh, shown], ignore_index=True)
    res, det = L.evaluate_leaks(train, holdout, leak, card, SETTINGS, 3, shown)
    by = _by(res)
    assert det["seed_mia_members"] == 5 and det["seed_mia_members_copied"] == 5
    assert (
        by["seed_mia_tpr_at_1pct_fpr"].value == 1.0
        and by["seed_mia_tpr_at_0_1pct_fpr"].value == 1.0
    )
    assert by["seed_mia_auc"].value == 1.0 and by["prompt_copy_rate"].value == pytest.approx(
        5 / 205
    )
    non = holdout[~np.isin(P.row_hashes(holdout, card), P.row_hashes(shown, card))]
    assert det["seed_mia_non_members"] == len(non) == 700
    res2, det2 = L.evaluate_leaks(train, holdout, fresh, card, SETTINGS, 3, shown)
    by2 = _by(res2)
    assert det2["seed_mia_members_copied"] == 0 and by2["prompt_copy_rate"].value == 0.0
    assert by2["seed_mia_tpr_at_1pct_fpr"].value <= 0.2


def test_no_real_rows_shown_fails_the_seed_attack_with_its_reason(split):
    card, train, holdout = split("stroke")
    res, det = L.evaluate_leaks(train, holdout, holdout.iloc[:50], card, SETTINGS, 3, None)
    by = _by(res)
    assert by["seed_mia_auc"].status == "failed" and "no real rows" in by["seed_mia_auc"].reason
    assert by["prompt_copy_rate"].value == 0.0 and "no real rows" in by["prompt_copy_rate"].note
    assert det["prompt_rows_shown"] == 0
    assert [r.metric.name for r in res] == list(L.NAMES)


def test_dcr_overfitting_matches_sdmetrics_and_planted_copies(split):
    from sdmetrics.single_table import DCROverfittingProtection

    card, train, holdout = split("stroke")
    syn = holdout.sample(300, random_state=5).reset_index(drop=True)
    got = L.dcr_overfitting(train, holdout, syn, card, 400, seed=11)
    tr = train.iloc[P.sample_rows(len(train), 400, 11)]
    ho = holdout.iloc[P.sample_rows(len(holdout), 400, 12)]
    ref = DCROverfittingProtection.compute_breakdown(
        L._as_sdv(tr, card), L._as_sdv(syn, card), L._as_sdv(ho, card), L.sdv_metadata(card), None
    )
    assert got["score"] == pytest.approx(ref["score"], abs=1e-12)
    assert got["closer_to_train"] == pytest.approx(
        ref["synthetic_data_percentages"]["closer_to_training"], abs=1e-12
    )
    # copies of the sampled train rows are all closer to train: share 1, protection 0
    copies = L.dcr_overfitting(train, holdout, tr.reset_index(drop=True), card, 400, seed=11)
    assert copies["closer_to_train"] == 1.0 and copies["score"] == 0.0


def test_disclosure_matches_sdmetrics_and_copies_raise_the_risk(split):
    from sdmetrics.single_table import DisclosureProtection

    card, train, holdout = split("stroke")
    syn = holdout.sample(300, random_state=5).reset_index(drop=True)
    qi, sens = ["gender", "age", "bmi"], "stroke"
    real = L._as_sdv(train.iloc[P.sample_rows(len(train), 300, 4)], card)[qi + [sens]]
    for bins, cont in ((None, None), (10, ["age", "bmi"])):
        got = L.disclosure(train, syn, card, 300, seed=4, bins=bins)
        ref = DisclosureProtection.compute_breakdown(
            real, L._as_sdv(syn, card)[qi + [sens]], qi, [sens], continuous_column_names=cont
        )
        assert got["score"] == pytest.approx(ref["score"], abs=1e-12)
        assert got["quasi_identifiers"] == qi and got["sensitive"] == sens
    copy = L.disclosure(train, train.iloc[P.sample_rows(len(train), 300, 4)], card, 300, seed=4)
    assert copy["score"] == 0.0  # exact quasi-identifiers of copied rows give the target away
    # no synthetic row shares a real row's quasi-identifiers: the attack never applies
    far = syn.assign(age=0.5, bmi=99.0)
    none = L.disclosure(train, far, card, 300, seed=4)
    assert none["score"] == 1.0 and "no synthetic row" in none["note"]
    assert np.isnan(none["cap_protection"])


def test_card_privacy_block_is_checked(tmp_path):
    raw = yaml.safe_load(Path("resources/datasets/stroke.yaml").read_text())
    raw["privacy"] = {"quasi_identifiers": ["age", "weight"], "sensitive": "stroke"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="unknown column 'weight'"):
        load_card(tmp_path / "c.yaml")
    raw["privacy"] = {"quasi_identifiers": ["age", "stroke"], "sensitive": "stroke"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="sensitive"):
        load_card(tmp_path / "c.yaml")
    for name in ("diabetes", "stroke", "cirrhosis"):
        assert load_card(Path(f"resources/datasets/{name}.yaml")).privacy is not None


def test_feature_sweep_card_keeps_the_remaining_quasi_identifiers():
    from synllm.sweeps.card import restrict_card

    card = load_card(Path("resources/datasets/stroke.yaml"))
    two = restrict_card(card, ["age", "gender", "hypertension"], "stroke~f3")
    assert two.privacy.quasi_identifiers == ["gender", "age"] and two.privacy.sensitive == "stroke"
    assert restrict_card(card, ["hypertension"], "stroke~f1").privacy is None


def _planted(card, train, holdout, seed=1):
    """The three planted tables of issue #30 from a real split: 40 verbatim copies of 5 prompt
    rows, up to 200 rows with 5 % train copies, as many fresh rows; fresh rows from one half of
    the holdout, the other half is the metric's holdout (the attacker's control)."""
    half = len(holdout) // 2
    control, fresh_pool = holdout.iloc[:half], holdout.iloc[half:]
    n = min(200, len(fresh_pool) // 20 * 20)
    shown = train.sample(5, random_state=seed).reset_index(drop=True)
    rest = train[~np.isin(P.row_hashes(train, card), P.row_hashes(shown, card))]
    tables = {
        "copies": pd.concat([shown] * 8, ignore_index=True),
        "train5": pd.concat(
            [
                rest.sample(n // 20, random_state=seed + 1),
                fresh_pool.sample(n - n // 20, random_state=seed + 2),
            ],
            ignore_index=True,
        ),
        "fresh": fresh_pool.sample(n, random_state=seed + 3).reset_index(drop=True),
    }
    return control, shown, tables


def test_inference_risk_orders_planted_stroke_tables(split):
    """Issue #30's tables on stroke (sensitive ``stroke``, 95 % zeros): copies of the prompt's
    rows disclose them (risk 1); 5 % train copies and fresh rows disclose no more about the
    prompt's patients than about unseen holdout patients (0), where SDMetrics' score against a
    uniform guess puts the copies at no higher a risk than the fresh rows."""
    card, train, holdout = split("stroke")
    control, shown, tables = _planted(card, train, holdout)
    got = {k: L.inference(train, control, t, shown, card, 500, seed=7) for k, t in tables.items()}
    r = {k: v["risk"] for k, v in got.items()}
    assert r["copies"] > 0.8 and r["copies"] > r["train5"] >= r["fresh"], got
    assert r["fresh"] < 0.05 and r["train5"] < 0.05, got
    # the majority class alone: the attack succeeds on many control rows too
    assert got["copies"]["success"] == 1.0 and got["copies"]["n_members"] == 5
    assert got["copies"]["members"] == "prompt rows"
    sdm = {k: 1 - L.disclosure(train, t, card, 500, seed=6)["score"] for k, t in tables.items()}
    assert sdm["copies"] <= sdm["fresh"], sdm
    # without real rows in the prompt the members are a train sample: copies of train rows
    # disclose the copied patients, fresh rows no more than the control
    none = shown.iloc[:0]
    t = L.inference(train, control, train.sample(400, random_state=3), none, card, 500, seed=7)
    f = L.inference(train, control, tables["fresh"], none, card, 500, seed=7)
    assert t["members"] == "train sample" and t["risk"] > f["risk"] and f["risk"] < 0.05, (t, f)


@pytest.mark.parametrize("name", ["stroke", "diabetes", "cirrhosis"])
def test_inference_risk_separates_copies_from_fresh_rows_over_prompt_draws(split, name):
    """Ten prompt draws per dataset: copies of the prompt rows at risk 1 on every draw, fresh
    rows near 0 on average; one draw moves in steps of 1/5 (5 prompt rows), so a fresh table
    reaches 0.2-0.35 where prompt patients happen to share quasi-identifiers and sensitive value
    with a fresh row (diabetes: its imputed BMI 27.32 ties many rows)."""
    card, train, holdout = split(name)
    risk: dict[str, list[float]] = {"copies": [], "train5": [], "fresh": []}
    for seed in range(10, 110, 10):
        control, shown, tables = _planted(card, train, holdout, seed=seed)
        for k, t in tables.items():
            risk[k].append(L.inference(train, control, t, shown, card, 1000, seed=7)["risk"])
    assert min(risk["copies"]) == 1.0 > max(risk["fresh"] + risk["train5"]), risk
    assert np.mean(risk["fresh"]) < 0.1 and np.mean(risk["train5"]) < 0.1, risk


def test_inference_success_is_sdmetrics_zero_cap(split):
    from sdmetrics.single_table import DisclosureProtection
    from sdmetrics.single_table.privacy.cap import CategoricalZeroCAP

    card, train, holdout = split("stroke")
    control, shown, tables = _planted(card, train, holdout)
    qi, sens = ["gender", "age", "bmi"], "stroke"
    syn = pd.concat([tables["train5"], shown], ignore_index=True)
    got = L.inference(train, control, syn, shown, card, 300, seed=7)
    members = L._as_sdv(shown, card)[qi + [sens]]
    pool = control[~np.isin(P.row_hashes(control, card), P.row_hashes(shown, card))]
    ctrl = L._as_sdv(pool.iloc[P.sample_rows(len(pool), 300, 8)], card)[qi + [sens]]
    sy = L._as_sdv(syn, card)[qi + [sens]]

    def zero_cap(real):  # SDMetrics' own null handling: missing values as one category
        r, s = DisclosureProtection._discretize_and_fillna(real, sy, qi, [sens], None, 10)
        return 1.0 - CategoricalZeroCAP._compute(r, s, key_fields=qi, sensitive_fields=[sens])

    assert got["success"] == pytest.approx(zero_cap(members), abs=1e-12)
    assert got["control_success"] == pytest.approx(zero_cap(ctrl), abs=1e-12)
    c = got["control_success"]
    assert got["risk"] == pytest.approx(max(0.0, (got["success"] - c) / (1 - c)), abs=1e-12)
    assert got["n_control"] == 300 and got["n_members"] == 5


def test_prompted_cell_without_its_prompt_is_not_measured(split):
    card, train, holdout = split("stroke")
    shown = train.sample(5, random_state=1).reset_index(drop=True)
    copies = pd.concat([shown] * 8, ignore_index=True)
    why = "not measured: no --prompt-json given"
    res, det = L.evaluate_leaks(train, holdout, copies, card, SETTINGS, 3, None, why)
    by = _by(res)
    for n in L.PROMPT_NAMES:
        assert by[n].status == "failed" and by[n].value is None and by[n].reason == why, n
    assert by["train_copy_rate"].value == 1.0  # what needs no prompt is still measured
    assert det["prompt_rows_shown"] is None
    assert [r.metric.name for r in res] == list(L.NAMES)
