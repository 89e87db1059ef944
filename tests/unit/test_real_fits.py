"""The real-data fits cache (``synllm real-fits``): evaluate with and without it, same metrics.

Real tables (stroke, cirrhosis); the synthetic tables are seeded samples of the holdout, a
one-class table and a table with a category level the real train lacks (its encoder differs,
so the cache must be refused and the models fitted in the cell).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pandas as pd
import pytest

from synllm import evaluate as mcli

SETTINGS = {
    **mcli.DEFAULT_SETTINGS,
    "xgb_n_estimators": 50,
    "distance_sample": 500,
    "mia_sample": 400,
    "bootstrap": 0,  # the replicates use no real-data fit: not what these tests compare
}


def _same(a: dict, b: dict) -> None:
    va = {m["name"]: m for m in a["metrics"]}
    vb = {m["name"]: m for m in b["metrics"]}
    assert list(va) == list(vb)
    for name, m in va.items():
        n = vb[name]
        assert m["status"] == n["status"], name
        if m["value"] is None or n["value"] is None:
            assert m["value"] is n["value"], name
        else:
            assert math.isclose(m["value"], n["value"], rel_tol=0, abs_tol=1e-9), name


@pytest.mark.slow
@pytest.mark.parametrize("name", ["stroke", "cirrhosis"])
def test_cached_real_fits_give_the_same_metrics(split, name):
    card, train, holdout = split(name)
    cache = mcli.compute_real_fits(card, train, holdout, 42, SETTINGS)
    sample = holdout.sample(min(300, len(holdout)), random_state=1).reset_index(drop=True)
    one_class = sample[
        sample[card.target].astype("string") == sample[card.target].astype("string").mode()[0]
    ].reset_index(drop=True)
    for syn, used in ((sample, "cached"), (one_class, "cached")):
        plain = mcli.evaluate(card, syn, train, holdout, 42, SETTINGS)
        cached = mcli.evaluate(card, syn, train, holdout, 42, SETTINGS, real_fits=cache)
        _same(plain, cached)
        assert cached["utility"]["real_fits"] == used
        assert cached["privacy"]["real_baselines"] == "cached"
        assert plain["utility"]["real_fits"] == "fitted"


@pytest.mark.slow
def test_a_new_category_level_refuses_the_cache_and_still_matches(split):
    card, train, holdout = split("stroke")
    cache = mcli.compute_real_fits(card, train, holdout, 42, SETTINGS)
    cat = next(c for c, s in card.columns.items() if s.type == "categorical" and c != card.target)
    syn = holdout.sample(200, random_state=2).reset_index(drop=True)
    syn[cat] = syn[cat].astype("object")
    syn.loc[:9, cat] = pd.NA  # "<NA>" becomes a one-hot level the real train alone lacks
    assert train[cat].notna().all()
    plain = mcli.evaluate(card, syn, train, holdout, 42, SETTINGS)
    cached = mcli.evaluate(card, syn, train, holdout, 42, SETTINGS, real_fits=cache)
    _same(plain, cached)
    assert cached["utility"]["real_fits"] == "fitted"


@pytest.mark.slow
def test_other_seed_or_settings_refuse_the_cache(split):
    card, train, holdout = split("cirrhosis")
    cache = mcli.compute_real_fits(card, train, holdout, 42, SETTINGS)
    syn = holdout.sample(50, random_state=3).reset_index(drop=True)
    other = mcli.evaluate(card, syn, train, holdout, 43, SETTINGS, real_fits=cache)
    assert other["utility"]["real_fits"] == "fitted"
    assert other["privacy"]["real_baselines"] == "computed"
    _same(other, mcli.evaluate(card, syn, train, holdout, 43, SETTINGS))
    fewer = {**SETTINGS, "utility_models": ["decision_tree"]}
    assert (
        mcli.evaluate(card, syn, train, holdout, 42, fewer, real_fits=cache)["utility"]["real_fits"]
        == "fitted"
    )


@pytest.mark.slow
def test_cli_real_fits_file_and_fingerprint(split, tmp_path, root):
    card, train, holdout = split("cirrhosis")
    train.to_parquet(tmp_path / "train.parquet", index=False)
    holdout.to_parquet(tmp_path / "holdout.parquet", index=False)
    holdout.sample(60, random_state=4).to_csv(tmp_path / "syn.csv", index=False)
    (tmp_path / "rep.json").write_text(json.dumps({"status": "ok", "valid": 60}))
    py = [sys.executable, "-m", "synllm"]
    common = [
        "--card",
        str(root / "resources/datasets/cirrhosis.yaml"),
        "--train",
        str(tmp_path / "train.parquet"),
        "--holdout",
        str(tmp_path / "holdout.parquet"),
        "--seed",
        "42",
        "--settings",
        json.dumps({"xgb_n_estimators": 50, "bootstrap": 0}),
    ]
    fits = tmp_path / "real_fits" / "cirrhosis" / "r1.pkl"
    proc = subprocess.run(
        py + ["real-fits", *common, "--out", str(fits)], capture_output=True, text=True, cwd=root
    )
    assert proc.returncode == 0, proc.stderr[-2000:]

    def evaluate(label: str, *extra: str) -> dict:
        out = tmp_path / "metrics" / label / "m" / "p" / "r1.json"
        cell = [
            "--synthetic",
            str(tmp_path / "syn.csv"),
            "--validation",
            str(tmp_path / "rep.json"),
        ]
        proc = subprocess.run(
            py + ["evaluate", *common, *cell, "--out", str(out), *extra],
            capture_output=True,
            text=True,
            cwd=root,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(out.read_text())

    outs = {"plain": evaluate("plain"), "cached": evaluate("cached", "--real-fits", str(fits))}
    _same(outs["plain"], outs["cached"])
    assert outs["cached"]["utility"]["real_fits"] == "cached"
    # another split: the file is refused with a warning, the cell fits its own models
    holdout.iloc[:-1].to_parquet(tmp_path / "holdout.parquet", index=False)
    doc = evaluate("other", "--real-fits", str(fits))
    assert doc["utility"]["real_fits"] == "fitted"
    assert any("other splits" in w for w in doc["warnings"])
