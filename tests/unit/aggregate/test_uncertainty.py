"""Uncertainty and comparability of the scores: intervals from bootstrap replicates, the
Friedman / Nemenyi ranking, anchored normalisation (the replicates themselves:
tests/unit/metrics/test_bootstrap.py; the anchor baselines: tests/unit/generate/test_baselines.py;
anchored scores of a replayed grid through the Snakefile: tests/workflow/test_anchored_scores.py).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from synllm.aggregate import ranking, scores, uncertainty
from synllm.aggregate.cli import aggregate
from synllm.aggregate.load import KEY, load_metrics
from synllm.errors import ConfigError, SynllmError


# --------------------------------------------------------------------------- anchored normalisation
def _frame(rows):
    """Long metrics frame from (model, prompt, name, group, direction, value, lo, hi)."""
    out = []
    for model, prompt, name, group, direction, value, lo, hi in rows:
        out.append(
            {
                "dataset": "d",
                "model": model,
                "prompt": prompt,
                "rep": 1,
                "name": name,
                "family": "fidelity" if group != "privacy" else "privacy",
                "score_group": group,
                "direction": direction,
                "range_lo": lo,
                "range_hi": hi,
                "value": value,
            }
        )
    return pd.DataFrame(out)


def test_anchored_normalisation_by_hand():
    inf = math.inf
    rows = []
    # quality metric, lower is better: holdout 0.1, uniform 0.5 -> (0.5 - v) / 0.4
    for model, prompt, v in (
        ("holdout", "none", 0.1),
        ("uniform", "none", 0.5),
        ("train_copy", "none", 0.0),
        ("m", "SEEDEx", 0.2),
        ("n", "SEEDEx", 0.7),
        ("o", "SEEDEx", 0.05),
    ):
        rows.append((model, prompt, "ks", "quality", "lower", v, 0, 1))
    # privacy metric, higher is better: holdout 1.0, train_copy 0.0 (uniform 3.0 is ignored)
    for model, prompt, v in (
        ("holdout", "none", 1.0),
        ("uniform", "none", 3.0),
        ("train_copy", "none", 0.0),
        ("m", "SEEDEx", 0.25),
        ("n", "SEEDEx", 2.0),
        ("o", "SEEDEx", math.nan),
    ):
        rows.append((model, prompt, "nn", "privacy", "higher", v, 0, inf))
    # privacy metric whose anchors failed: falls back to the declared range [0, 1] (lower)
    for model, prompt, v in (("holdout", "none", math.nan), ("m", "SEEDEx", 0.3)):
        rows.append((model, prompt, "copy_rate", "privacy", "lower", v, 0, 1))
    # anchors that do not differ (by 1 % of the range): a bounded metric takes its range ends,
    # an unbounded one is left out
    for model, prompt, v in (
        ("holdout", "none", 0.502),
        ("uniform", "none", 0.5),
        ("m", "SEEDEx", 0.1),
    ):
        rows.append((model, prompt, "flat", "quality", "higher", v, 0, 1))
        rows.append((model, prompt, "flat_unbounded", "quality", "higher", min(v, 0.5), 0, inf))
    norm = scores.normalise(_frame(rows), "anchored").set_index(["model", "name"])["norm"]
    assert norm[("m", "ks")] == pytest.approx(0.75)
    assert norm[("n", "ks")] == 0.0  # worse than the worst reference: clipped
    assert norm[("o", "ks")] == 1.0  # better than the holdout: clipped
    assert norm[("holdout", "ks")] == 1.0 and norm[("uniform", "ks")] == 0.0
    assert norm[("m", "nn")] == pytest.approx(0.25)
    assert norm[("n", "nn")] == 1.0 and norm[("train_copy", "nn")] == 0.0
    assert math.isnan(norm[("o", "nn")])
    assert norm[("m", "copy_rate")] == pytest.approx(0.7)
    assert norm[("m", "flat")] == pytest.approx(0.1)
    assert math.isnan(norm[("m", "flat_unbounded")])
    with pytest.raises(SynllmError, match="normalisation"):
        scores.normalise(_frame(rows), "minmax")


def test_anchored_aggregate_needs_the_anchor_cells(tmp_path, cards_dir):
    p = tmp_path / "m.json"
    p.write_text(json.dumps(_metrics_json("a", {"q1": 0.1, "p1": 1.0, "tstr_auc_mean": 0.7})))
    with pytest.raises(SynllmError, match="anchor baseline"):
        aggregate(
            [p],
            [],
            [],
            cards_dir,
            tmp_path / "t",
            tmp_path / "f",
            make_figures=False,
            normalisation="anchored",
        )


def test_anchored_config_adds_anchor_baselines(root, registry):
    from synllm.config import check_config, grid

    cfg = yaml.safe_load((root / "config" / "config.yaml").read_text())
    cfg["scores"] = {"normalisation": "anchored"}
    check_config(cfg)
    cells = grid(cfg, registry)
    models = {c.model for c in cells}
    assert {"holdout", "uniform", "train_copy"} <= models
    cfg2 = yaml.safe_load((root / "config" / "config.yaml").read_text())
    check_config(cfg2)
    assert {c.model for c in grid(cfg2, registry)} == {
        "smollm2-135m",
        "holdout",
        "marginals",
        "copula",
    }
    cfg2["scores"] = {"normalisation": "best"}
    with pytest.raises(ConfigError, match="scores.normalisation"):
        check_config(cfg2)


# --------------------------------------------------------------------------- bootstrap (aggregate)
DECL = {
    "q1": ("fidelity", "quality", "lower", [0, 1]),
    "p1": ("privacy", "privacy", "higher", [0, None]),
    "tstr_auc_mean": ("utility", "quality", "higher", [0, 1]),
}


def _metrics_json(model, vals, reps=None):
    ms = [
        {
            "name": n,
            "family": f,
            "score_group": g,
            "direction": d,
            "range": r,
            "value": vals[n],
            "status": "ok",
        }
        for n, (f, g, d, r) in DECL.items()
    ]
    doc = {
        "dataset": "d",
        "model": model,
        "prompt": "SEEDEx",
        "rep": 1,
        "status": "ok",
        "n_synthetic": 20,
        "metrics": ms,
    }
    if reps is not None:
        doc["bootstrap"] = {"B": len(next(iter(reps.values()))), "values": reps, "fixed": []}
    return doc


def test_replicates_are_normalised_like_the_point(tmp_path):
    # three cells; replicate b of the run = every cell's replicate b, min-max pooled per replicate
    docs = {
        "a": _metrics_json(
            "a",
            {"q1": 0.1, "p1": 2.0, "tstr_auc_mean": 0.8},
            {"q1": [0.1, 0.3], "p1": [2.0, 1.0], "tstr_auc_mean": [0.8, 0.9]},
        ),
        "b": _metrics_json(
            "b",
            {"q1": 0.3, "p1": 1.0, "tstr_auc_mean": 0.6},
            {"q1": [0.3, 0.1], "p1": [1.0, 2.0], "tstr_auc_mean": [0.6, 0.6]},
        ),
        "c": _metrics_json("c", {"q1": 0.5, "p1": 0.0, "tstr_auc_mean": 0.5}),  # no replicates
    }
    paths = []
    for m, doc in docs.items():
        p = tmp_path / f"{m}.json"
        p.write_text(json.dumps(doc))
        paths.append(p)
    cells, metrics, raw = load_metrics(paths)
    reps = uncertainty.replicate_long(raw)
    rs = uncertainty.replicate_scores(metrics, reps, cells).set_index(["model", "replicate"])
    assert set(rs.index.get_level_values("model")) == {"a", "b"}
    # replicate 1: q1 = a 0.3, b 0.1, c 0.5 (point) -> lower-better min-max: a 0.5, b 1, c 0
    # tstr_auc_mean (quality, higher): a 0.9, b 0.6, c 0.5 -> a 1, b 0.25
    assert rs.loc[("a", 1), "quality"] == pytest.approx((0.5 + 1.0) / 2)
    assert rs.loc[("b", 1), "quality"] == pytest.approx((1.0 + 0.25) / 2)
    # p1 (higher): a 1.0, b 2.0, c 0.0 -> a 0.5, b 1
    assert rs.loc[("a", 1), "privacy"] == pytest.approx(0.5)
    assert rs.loc[("a", 1), "tstr_auc"] == pytest.approx(0.9)
    # replicate 0 holds every cell's point values -> the point scores
    norm = scores.normalise(metrics)
    point = scores.cell_scores(cells, norm).set_index("model")
    for m in ("a", "b"):
        for s in ("quality", "privacy", "harmonic"):
            assert rs.loc[(m, 0), s] == pytest.approx(point.loc[m, s])
    # percentile ends without a point estimate (or from 100 replicates on)
    iv = uncertainty.cell_intervals(rs.reset_index()).set_index("model")
    assert iv.loc["a", "n_boot"] == 2 and iv.loc["a", "boot_method"] == "percentile"
    lo, hi = np.percentile(rs.xs("a", level="model")["quality"], [2.5, 97.5])
    assert iv.loc["a", "quality_low"] == pytest.approx(lo)
    assert iv.loc["a", "quality_high"] == pytest.approx(hi)
    # below 100 replicates: point +- t_{0.975, B-1} * SD, clipped to [0, 1]
    pt = point.reset_index()[KEY + ["quality", "privacy", "harmonic"]].assign(tstr_auc=np.nan)
    iv = uncertainty.cell_intervals(rs.reset_index(), pt).set_index("model")
    q = rs.xs("a", level="model")["quality"]
    half = stats.t.ppf(0.975, 1) * q.std(ddof=1)
    assert iv.loc["a", "boot_method"] == "t"
    assert iv.loc["a", "quality_low"] == pytest.approx(max(0, point.loc["a", "quality"] - half))
    assert iv.loc["a", "quality_high"] == pytest.approx(min(1, point.loc["a", "quality"] + half))
    assert uncertainty.bracket(0.5, 0.25, 0.75) == "0.50 [0.25, 0.75]"


def test_interval_columns_in_tables(tmp_path, cards_dir):
    rng = np.random.default_rng(1)
    paths = []
    for m in ("a", "b"):
        reps = {n: list(np.round(rng.uniform(0.2, 0.8, 10), 4)) for n in DECL}
        doc = _metrics_json(m, {n: float(np.mean(v)) for n, v in reps.items()}, reps)
        p = tmp_path / "metrics" / "d" / m / "SEEDEx" / "r1.json"
        p.parent.mkdir(parents=True)
        p.write_text(json.dumps(doc))
        paths.append(p)
    res = aggregate(paths, [], [], cards_dir, tmp_path / "t", tmp_path / "f", make_figures=False)
    t4 = pd.read_csv(tmp_path / "t" / "table4_quality_privacy.csv")
    for s in ("quality", "privacy", "harmonic"):
        assert {f"SEEDEx_{s}", f"SEEDEx_{s}_low", f"SEEDEx_{s}_high", f"SEEDEx_{s}_ci"} <= set(
            t4.columns
        )
    r = t4.iloc[0]
    assert (
        r["SEEDEx_quality_ci"] == f"{r['SEEDEx_quality']:.2f} [{r['SEEDEx_quality_low']:.2f}, "
        f"{r['SEEDEx_quality_high']:.2f}]"
    )
    md = (tmp_path / "t" / "table4_quality_privacy.md").read_text()
    half = (r["SEEDEx_quality_high"] - r["SEEDEx_quality_low"]) / 2
    assert f"{r['SEEDEx_quality']:.2f} ± {half:.2f}" in md
    ti = res["intervals"].set_index("model")
    assert (ti["tstr_auc_interval"] == "bootstrap").all()
    # the same metrics without replicates: the value columns are those of the run with them,
    # and Table IV has exactly its old columns
    for p in paths:
        doc = json.loads(p.read_text())
        doc.pop("bootstrap")
        p.write_text(json.dumps(doc))
    aggregate(paths, [], [], cards_dir, tmp_path / "t0", tmp_path / "f", make_figures=False)
    t40 = pd.read_csv(tmp_path / "t0" / "table4_quality_privacy.csv")
    assert not any(c.endswith(("_low", "_high", "_ci")) for c in t40.columns)
    pd.testing.assert_frame_equal(t40, t4[t40.columns])
    assert "±" not in (tmp_path / "t0" / "table4_quality_privacy.md").read_text()
    assert "±" in (tmp_path / "t" / "table_intervals.md").read_text()
    assert "$\\pm$" in (tmp_path / "t" / "table_intervals.tex").read_text()


# --------------------------------------------------------------------------- ranking
def _summary(matrix: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (ds, prompt), row in matrix.iterrows():
        for model, h in row.items():
            rows.append({"dataset": ds, "model": model, "prompt": prompt, "harmonic_mean": h})
    return pd.DataFrame(rows)


def test_friedman_nemenyi_match_the_packages(tmp_path):
    import scikit_posthocs as sp

    rng = np.random.default_rng(4)
    blocks = pd.MultiIndex.from_product(
        [["diabetes", "stroke", "cirrhosis"], ["SEEDEx", "FEATDESC", "STATGUIDE", "CLINRULE"]],
        names=["dataset", "prompt"],
    )
    skill = {"m1": 0.7, "m2": 0.65, "m3": 0.4, "m4": 0.3, "m5": 0.1}
    matrix = pd.DataFrame(
        {m: np.clip(s + rng.normal(0, 0.1, len(blocks)), 0, 1) for m, s in skill.items()},
        index=blocks,
    )
    summary = _summary(matrix)
    summary.loc[(summary["model"] == "m5") & (summary["prompt"] == "CLINRULE"), "harmonic_mean"] = (
        np.nan
    )
    expect = matrix.copy()
    expect.loc[(slice(None), "CLINRULE"), "m5"] = 0.0  # a failed cell counts as Harmonic 0
    table, res, used = ranking.ranking_table(summary, {m: "LLM" for m in skill})
    chi2, p = stats.friedmanchisquare(*[expect[m].to_numpy() for m in sorted(skill)])
    assert res["chi2"] == pytest.approx(chi2) and res["p"] == pytest.approx(p)
    ranks = expect.rank(axis=1, ascending=False).mean()
    t = table.set_index("model")
    for m in skill:
        assert t.loc[m, "mean_rank"] == pytest.approx(ranks[m])
    direct = sp.posthoc_nemenyi_friedman(expect[sorted(skill)].reset_index(drop=True))
    best = ranks.idxmin()
    assert t.loc[best, "vs_best"] == "best"
    for m in skill:
        if m != best:
            assert t.loc[m, "nemenyi_p_vs_best"] == pytest.approx(direct.loc[m, best])
            want = "significant" if direct.loc[m, best] < 0.05 else "not significant"
            assert t.loc[m, "vs_best"] == want
    assert t.loc["m5", "vs_best"] == "significant"
    # Demsar's critical difference: q_0.05 for k = 5 is 2.728 (his Table 5)
    assert res["cd"] == pytest.approx(2.728 * math.sqrt(5 * 6 / (6 * 12)), rel=1e-3)
    assert ranking.cd_figure(res, tmp_path / "cd.png").stat().st_size > 1000


def test_ranking_on_a_small_grid_says_why(tmp_path):
    summary = pd.DataFrame(
        {
            "dataset": ["d"] * 3,
            "model": ["smollm2-135m", "holdout", "marginals"],
            "prompt": ["SEEDEx", "none", "none"],
            "harmonic_mean": [0.4, 0.9, 0.6],
        }
    )
    kinds = {"smollm2-135m": "LLM", "holdout": "baseline", "marginals": "baseline"}
    table, res, _ = ranking.ranking_table(summary, kinds)
    assert not res["ok"] and len(table) == 1
    assert (
        table.iloc[0]["note"] == "Friedman test not run: 1 LLM(s) in the run, it needs at least 3"
    )
    assert ranking.cd_figure(res, tmp_path / "cd.png").is_file()
