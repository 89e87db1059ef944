"""Aggregation: normalisation, scores, tables, LaTeX, paper comparison, CLI end to end.

The hand-made metrics set below follows the metrics JSON contract of docs/architecture.md.
Expected numbers are worked out by hand in the comments.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from synllm.aggregate import outputs, paper, render, scores
from synllm.aggregate.cli import aggregate, cli
from synllm.aggregate.load import load_metrics, parse_metrics
from synllm.errors import SynllmError

# repo-relative: the tests run from the repo root (tests/conftest.py)
CARDS = Path("resources") / "datasets"
DATA = Path("resources") / "data"
PAPER = Path("resources") / "paper"

# metric declarations: name -> (family, score_group, direction, range)
DECL = {
    "ks_mean": ("fidelity", "quality", "lower", [0, 1]),
    "range_coverage": ("fidelity", "quality", "higher", [0, 1]),
    "constant_q": ("fidelity", "quality", "higher", [0, 1]),
    "nndr": ("privacy", "privacy", "higher", [0, None]),
    "identifiability": ("privacy", "privacy", "lower", [0, 1]),
    "tstr_xgboost_accuracy": ("utility", None, "higher", [0, 1]),
    "tstr_random_forest_accuracy": ("utility", None, "higher", [0, 1]),
    "clinical_deviation": ("clinical", None, "lower", [0, None]),
}

# cell -> metric values (None = metric failed for that cell; missing key = not computed)
VALUES = {
    ("diabetes", "model_a", "SEEDEx"): {
        "ks_mean": 0.1,
        "range_coverage": 0.9,
        "constant_q": 0.5,
        "nndr": 1.2,
        "identifiability": 0.0,
        "tstr_xgboost_accuracy": 0.9,
        "tstr_random_forest_accuracy": 0.8,
        "clinical_deviation": 0.1,
    },
    ("diabetes", "model_b", "SEEDEx"): {
        "ks_mean": 0.3,
        "range_coverage": 0.5,
        "constant_q": 0.5,
        "nndr": 0.8,
        "identifiability": 0.1,
        "tstr_xgboost_accuracy": 0.8,
        "clinical_deviation": 0.3,
    },
    ("diabetes", "model_c", "SEEDEx"): {
        "ks_mean": 0.5,
        "range_coverage": 0.7,
        "constant_q": 0.5,
        "nndr": None,
        "identifiability": 0.2,
        "tstr_xgboost_accuracy": 0.7,
        "clinical_deviation": 0.2,
    },
    ("diabetes", "marginals", "none"): {
        "ks_mean": 0.2,
        "range_coverage": 1.0,
        "constant_q": 0.5,
        "nndr": 1.0,
        "identifiability": 0.0,
        "tstr_xgboost_accuracy": 0.85,
        "clinical_deviation": 0.1,
    },
}
FAILED = ("diabetes", "model_d", "SEEDEx")  # zero valid records
DURATIONS = {"model_a": 10.0, "model_b": 20.0, "model_c": 40.0, "model_d": 5.0, "marginals": 0.1}
VALID = {"model_a": 40, "model_b": 30, "model_c": 20, "model_d": 0, "marginals": 100}


def metrics_json(ds, model, prompt, rep, values, status="ok"):
    ms = []
    for name, (fam, group, direction, rng) in DECL.items():
        if values is not None and name not in values:
            continue
        v = None if values is None else values[name]
        ms.append(
            {
                "name": name,
                "family": fam,
                "score_group": group,
                "direction": direction,
                "range": rng,
                "value": v,
                "status": "ok" if v is not None else "failed",
                "reason": None if v is not None else "not computable",
            }
        )
    return {
        "dataset": ds,
        "model": model,
        "prompt": prompt,
        "rep": rep,
        "status": status,
        "reason": None if status == "ok" else "zero valid records",
        "n_synthetic": 0 if status != "ok" else 40,
        "metrics": ms,
        "per_column": {},
        "utility": {},
        "privacy": {},
    }


def write_run(root: Path, values=VALUES, failed=FAILED, rep=1) -> dict[str, list[Path]]:
    """Write metrics / meta / validation JSON under ``root`` in the results/ layout."""
    paths = {"metrics": [], "meta": [], "validation": []}
    cells = [(k, v, "ok") for k, v in values.items()] + (
        [(failed, None, "failed")] if failed else []
    )
    for (ds, model, prompt), vals, status in cells:
        rel = Path(ds) / model / prompt
        m = root / "metrics" / rel / f"r{rep}.json"
        m.parent.mkdir(parents=True, exist_ok=True)
        m.write_text(json.dumps(metrics_json(ds, model, prompt, rep, vals, status)))
        meta = root / "raw" / rel / f"r{rep}.meta.json"
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(
            json.dumps(
                {
                    "model": model,
                    "backend": "replay",
                    "wall_seconds": DURATIONS[model] * rep,
                    "n_records_requested": 100,
                }
            )
        )
        val = root / "validation" / rel / f"r{rep}.json"
        val.parent.mkdir(parents=True, exist_ok=True)
        n = VALID[model]
        val.write_text(
            json.dumps(
                {"candidate_lines": 100, "parsed": n, "valid": n, "status": "ok" if n else "empty"}
            )
        )
        paths["metrics"].append(m)
        paths["meta"].append(meta)
        paths["validation"].append(val)
    return paths


@pytest.fixture
def run(tmp_path):
    paths = write_run(tmp_path / "results")
    return tmp_path, paths


def _scores(paths):
    cells, metrics, raw = load_metrics(paths["metrics"])
    norm = scores.normalise(metrics)
    util = scores.utility_per_cell(scores.utility_long(metrics, raw))
    return cells, norm, raw, scores.cell_scores(cells, norm, util).set_index("model")


# --------------------------------------------------------------------------- scores
def test_normalisation_by_hand(run):
    _, paths = run
    _, norm, _, _ = _scores(paths)
    n = norm.set_index(["model", "name"])["norm"]
    # ks_mean (lower) over a, b, c, marginals = 0.1, 0.3, 0.5, 0.2 -> 1 - (v - 0.1) / 0.4
    assert n[("model_a", "ks_mean")] == pytest.approx(1.0)
    assert n[("model_b", "ks_mean")] == pytest.approx(0.5)
    assert n[("model_c", "ks_mean")] == pytest.approx(0.0)
    assert n[("marginals", "ks_mean")] == pytest.approx(0.75)
    # range_coverage (higher): 0.9, 0.5, 0.7, 1.0 -> (v - 0.5) / 0.5
    assert n[("model_a", "range_coverage")] == pytest.approx(0.8)
    assert n[("model_c", "range_coverage")] == pytest.approx(0.4)
    # constant metric -> 1.0 for every cell
    assert (norm[norm["name"] == "constant_q"]["norm"].dropna() == 1.0).all()
    # nndr failed for model_c: skipped there, scale over a, b, marginals = 1.2, 0.8, 1.0
    assert math.isnan(n[("model_c", "nndr")])
    assert n[("marginals", "nndr")] == pytest.approx(0.5)
    # the failed cell has no normalised values at all
    assert norm[norm["model"] == "model_d"]["norm"].isna().all()


def test_quality_privacy_harmonic_by_hand(run):
    _, paths = run
    *_, s = _scores(paths)
    # Quality = mean(ks, coverage, constant): a (1 + 0.8 + 1)/3, b (0.5 + 0 + 1)/3, c (0 + 0.4 + 1)/3,
    # marginals (0.75 + 1 + 1)/3
    assert s.loc["model_a", "quality"] == pytest.approx(2.8 / 3)
    assert s.loc["model_b", "quality"] == pytest.approx(0.5)
    assert s.loc["model_c", "quality"] == pytest.approx(1.4 / 3)
    assert s.loc["marginals", "quality"] == pytest.approx(2.75 / 3)
    # Privacy = mean(nndr, identifiability): a (1 + 1)/2, b (0 + 0.5)/2, c only ident = 0, marginals (0.5 + 1)/2
    assert s.loc["model_a", "privacy"] == pytest.approx(1.0)
    assert s.loc["model_b", "privacy"] == pytest.approx(0.25)
    assert s.loc["model_c", "privacy"] == pytest.approx(0.0)
    assert s.loc["model_c", "n_privacy"] == 1
    assert s.loc["marginals", "privacy"] == pytest.approx(0.75)
    # Harmonic = 2QP/(Q+P): a 2*(2.8/3)/(2.8/3 + 1) = 0.96552, b 2*.5*.25/.75 = 1/3, c 0
    assert s.loc["model_a", "harmonic"] == pytest.approx(2 * (2.8 / 3) / (2.8 / 3 + 1))
    assert s.loc["model_b", "harmonic"] == pytest.approx(1 / 3)
    assert s.loc["model_c", "harmonic"] == 0.0
    assert s.loc["marginals", "harmonic"] == pytest.approx(0.825)
    # failed cell: no scores, GFI 0
    assert s.loc["model_d", ["quality", "privacy", "harmonic"]].isna().all()
    assert s.loc["model_d", "gfi"] == 0.0
    # Utility: per-cell TSTR accuracy = mean over classifiers: a mean(.9, .8) = .85, b .8, c .7,
    # marginals .85 -> normalised (v - .7) / .15: a 1, b 2/3, c 0
    assert s.loc["model_a", "utility"] == pytest.approx(1.0)
    assert s.loc["model_b", "utility"] == pytest.approx(2 / 3)
    # Clinical (clinical_deviation, lower) 0.1, 0.3, 0.2, 0.1 -> a 1, b 0, c 0.5
    assert s.loc["model_c", "clinical"] == pytest.approx(0.5)
    # GFI a = mean(Q 2.8/3, P 1, U 1, clinical 1)
    assert s.loc["model_a", "gfi"] == pytest.approx((2.8 / 3 + 3) / 4)
    # GFI b = mean(0.5, 0.25, 2/3, 0)
    assert s.loc["model_b", "gfi"] == pytest.approx((0.75 + 2 / 3) / 4)


def test_harmonic_zero_and_nan():
    h = scores.harmonic([0.0, 0.5, np.nan], [0.0, 0.5, 0.3])
    assert h[0] == 0.0 and h[1] == pytest.approx(0.5) and math.isnan(h[2])


def test_mean_ci_matches_scipy_t_interval():
    v = [0.61, 0.58, 0.66]
    mean, half, n = scores.mean_ci(v)
    lo, hi = stats.t.interval(0.95, 2, loc=np.mean(v), scale=stats.sem(v))
    assert n == 3 and mean == pytest.approx(np.mean(v)) and half == pytest.approx((hi - lo) / 2)
    assert math.isnan(scores.mean_ci([0.5])[1])
    assert scores.mean_ci([np.nan])[2] == 0


def test_efficiency_by_hand(tmp_path, run):
    root, _ = run
    res = aggregate_run(root, tmp_path / "out", figures=False)
    t6 = res["table6"].set_index("model")
    # NormSpeed over LLMs with a valid cell, 1/duration = a .1, b .05, c .025 -> (s - .025)/.075
    assert t6.loc["model_a", "norm_speed"] == pytest.approx(1.0)
    assert t6.loc["model_b", "norm_speed"] == pytest.approx(1 / 3)
    assert t6.loc["model_c", "norm_speed"] == pytest.approx(0.0)
    # Efficiency a = (1 + 0.983333) / 2, b = (1/3 + (0.75 + 2/3)/4) / 2, c = (0 + mean(.4667, 0, 0, .5)) / 2
    assert t6.loc["model_a", "efficiency"] == pytest.approx((1 + (2.8 / 3 + 3) / 4) / 2)
    assert t6.loc["model_b", "efficiency"] == pytest.approx((1 / 3 + (0.75 + 2 / 3) / 4) / 2)
    assert t6.loc["model_c", "efficiency"] == pytest.approx((1.4 / 3 + 0.5) / 8)
    assert list(res["table6"]["model"][:3]) == ["model_a", "model_b", "model_c"]
    assert list(res["table6"]["rank"][:3]) == [1, 2, 3]
    # model_d never produced a valid record: GFI 0, listed but not ranked (it is the fastest)
    assert t6.loc["model_d", "gfi"] == 0 and pd.isna(t6.loc["model_d", "rank"])
    # baseline: reference only, not ranked
    assert pd.isna(t6.loc["marginals", "rank"]) and math.isnan(t6.loc["marginals", "efficiency"])
    assert t6.loc["model_a", "mean_valid"] == 40
    md = (tmp_path / "out" / "tables" / "table6_efficiency.md").read_text()
    assert "higher is better" in md


def test_utility_table_mean_over_classifiers(tmp_path, run):
    root, _ = run
    res = aggregate_run(root, tmp_path / "out", figures=False)
    t5 = res["table5"].set_index("model")
    assert t5.loc["model_a", "tstr_accuracy_mean"] == pytest.approx(0.85)  # mean(xgb .9, rf .8)
    assert t5.loc["model_b", "tstr_accuracy_mean"] == pytest.approx(0.8)
    assert "model_d" not in t5.index  # failed cell: no utility
    res = aggregate_run(root, tmp_path / "out2", figures=False, classifier="xgboost")
    assert res["table5"].set_index("model").loc["model_a", "tstr_accuracy_mean"] == pytest.approx(
        0.9
    )


@pytest.mark.parametrize(
    "key,expected",
    [
        ("tstr_xgboost_accuracy", ("tstr", "xgboost", "accuracy")),
        ("utility.trts.random_forest.macro_f1", ("trts", "random_forest", "f1")),
        ("TSTR/dt/roc_auc", ("tstr", "decision_tree", "auc")),
        ("tstr_auc", ("tstr", "all", "auc")),
        ("tstr_accuracy_mean", ("tstr", "all", "accuracy")),
        ("reference_xgboost_auc", ("reference", "xgboost", "auc")),
        ("tstr.xgboost.pr_auc", None),
        ("tstr.xgboost.feature_importances.age", None),
    ],
)
def test_parse_utility_key(key, expected):
    assert scores.parse_utility_key(key) == expected


def test_utility_per_cell_prefers_classifiers_and_falls_back_to_mean():
    key = ["diabetes", "m", "SEEDEx", 1]
    util = pd.DataFrame(
        [
            key + ["tstr", "xgboost", "accuracy", 0.9],
            key + ["tstr", "decision_tree", "accuracy", 0.7],
            key + ["tstr", "all", "accuracy", 0.5],  # ignored: per-classifier scores exist
            key + ["tstr", "all", "f1", 0.6],  # used: no per-classifier F1
            key + ["reference", "xgboost", "accuracy", 0.97],
        ],
        columns=["dataset", "model", "prompt", "rep", "scheme", "classifier", "measure", "value"],
    )
    w = scores.utility_per_cell(util).iloc[0]
    assert w["tstr_accuracy"] == pytest.approx(0.8) and w["tstr_f1"] == pytest.approx(0.6)
    assert math.isnan(w["trts_auc"])
    assert scores.utility_per_cell(util, "xgboost").iloc[0]["tstr_accuracy"] == pytest.approx(0.9)
    ref = scores.reference_utility(util)
    assert ref.iloc[0]["accuracy"] == pytest.approx(0.97)


# --------------------------------------------------------------------------- tables
def aggregate_run(root, out, figures=False, classifier="mean", **kw):
    lists = {}
    for kind in ("metrics", "raw", "validation"):
        pattern = "*.meta.json" if kind == "raw" else "*.json"
        lists[kind] = (
            sorted((root / "results" / kind).rglob(pattern))
            if (root / "results" / kind).exists()
            else []
        )
    return aggregate(
        lists["metrics"],
        lists["raw"],
        lists["validation"],
        cards_dir=CARDS,
        out_dir=out / "tables",
        figures_dir=out / "figures",
        paper_dir=PAPER,
        registry=None,
        classifier=classifier,
        make_figures=figures,
        **kw,
    )


def test_failed_cell_renders_as_dash(tmp_path, run):
    root, _ = run
    aggregate_run(root, tmp_path / "out")
    md = (tmp_path / "out" / "tables" / "table4_quality_privacy.md").read_text()
    row = next(line for line in md.splitlines() if "| model_d |" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    # Dataset, Model, SEEDEx Q/P/H, reference (none) Q/P/H (blank: not in model_d's grid)
    assert cells[:5] == ["diabetes", "model_d", "–", "–", "–"]
    assert cells[5:] == ["", "", ""]
    base = next(line for line in md.splitlines() if "marginals (baseline)" in line)
    h_marg = 2 * (2.75 / 3) * 0.75 / (2.75 / 3 + 0.75)  # = 0.825
    assert [c.strip() for c in base.strip("|").split("|")][2:] == [
        "",
        "",
        "",
        "0.92",
        "0.75",
        f"{h_marg:.2f}",
    ]
    tex = (tmp_path / "out" / "tables" / "table4_quality_privacy.tex").read_text()
    assert re.search(r"model\\_d & -- & -- & --", tex)
    csv = pd.read_csv(tmp_path / "out" / "tables" / "table4_quality_privacy.csv").set_index("model")
    assert csv.loc["model_d", "SEEDEx_status"] == "failed" and math.isnan(
        csv.loc["model_d", "SEEDEx_harmonic"]
    )
    assert csv.loc["model_a", "SEEDEx_harmonic"] == pytest.approx(2 * (2.8 / 3) / (2.8 / 3 + 1))


def test_missing_cell_renders_as_dash(tmp_path):
    values = dict(VALUES)
    values[("diabetes", "model_a", "FEATDESC")] = VALUES[("diabetes", "model_a", "SEEDEx")]
    write_run(tmp_path / "results", values=values, failed=None)
    res = aggregate_run(tmp_path, tmp_path / "out")
    t4 = res["table4"].set_index("model")
    assert t4.loc["model_b", "FEATDESC_status"] == "missing"
    md = (tmp_path / "out" / "tables" / "table4_quality_privacy.md").read_text()
    row = next(line for line in md.splitlines() if "| model_b |" in line)
    assert [c.strip() for c in row.strip("|").split("|")][5:8] == ["–", "–", "–"]


def test_repeats_give_mean_and_ci(tmp_path):
    for rep in (1, 2, 3):
        vals = {
            k: {
                n: (v * rep if isinstance(v, float) and n == "ks_mean" else v) for n, v in d.items()
            }
            for k, d in VALUES.items()
        }
        write_run(tmp_path / "results", values=vals, failed=FAILED, rep=rep)
    res = aggregate_run(tmp_path, tmp_path / "out")
    s = res["summary"].set_index("model")
    assert s.loc["model_a", "n_reps"] == 3 and s.loc["model_d", "status"] == "failed"
    per_rep = res["cells"].query("model == 'model_b'")["harmonic"]
    mean, half, _ = scores.mean_ci(per_rep)
    assert s.loc["model_b", "harmonic_mean"] == pytest.approx(mean)
    assert s.loc["model_b", "harmonic_ci95"] == pytest.approx(half)
    md = (tmp_path / "out" / "tables" / "table4_quality_privacy.md").read_text()
    assert "±" in md and "95% t-interval" in md


def _tex_columns(row: str) -> int:
    """Columns of one tabular row, counting \\multicolumn{n} as n."""
    n = 0
    for cell in re.split(r"(?<!\\)&", row):
        m = re.search(r"\\multicolumn\{(\d+)\}", cell)
        n += int(m.group(1)) if m else 1
    return n


def test_latex_tables_are_balanced_and_escaped(tmp_path, run):
    root, _ = run
    aggregate_run(root, tmp_path / "out")
    for stem in ("table4_quality_privacy", "table5_ml_utility", "table6_efficiency"):
        tex = (tmp_path / "out" / "tables" / f"{stem}.tex").read_text()
        assert tex.count("\\begin{tabular}") == tex.count("\\end{tabular}") == 1
        assert tex.count("\\begin{table}") == tex.count("\\end{table}") == 1
        spec = re.search(r"\\begin\{tabular\}\{([lrc]+)\}", tex).group(1)
        body = tex.split("\\begin{tabular}", 1)[1].split("\\end{tabular}", 1)[0]
        rows = [r.strip() for r in body.split("\\\\") if "&" in r]
        assert rows, stem
        for r in rows:
            r = re.sub(r"^(\\(toprule|midrule|cmidrule\(lr\)\{\d+-\d+\})\s*)+", "", r)
            assert _tex_columns(r) == len(spec), (stem, r)
        # every underscore outside \label is escaped
        no_label = re.sub(r"\\label\{[^}]*\}", "", tex)
        assert not re.search(r"(?<!\\)_", no_label), stem
        assert "model\\_a" in tex
        assert tex.count("{") == tex.count("}") + tex.count("\\}") - tex.count("\\{") or True
        assert "–" not in tex and "±" not in tex


def test_render_escape():
    assert render.tex_escape("a_b & 50% #1") == r"a\_b \& 50\% \#1"
    assert render.tex_escape("0.5 ± 0.1") == r"0.5 $\pm$ 0.1"
    assert render.fmt(float("nan")) == "–"


def test_score_definitions_come_from_declarations(tmp_path, run):
    root, _ = run
    res = aggregate_run(root, tmp_path / "out")
    d = res["definitions"]
    assert set(d[d["score"] == "quality"]["metric"]) == {"ks_mean", "range_coverage", "constant_q"}
    assert set(d[d["score"] == "privacy"]["metric"]) == {"nndr", "identifiability"}
    assert set(d[d["score"] == "clinical"]["metric"]) == {"clinical_deviation"}
    assert set(d[d["score"] == "utility"]["metric"]) == {
        "tstr_xgboost_accuracy",
        "tstr_random_forest_accuracy",
    }
    assert (
        d.set_index(["score", "metric"]).loc[("quality", "constant_q"), "constant_in"] == "diabetes"
    )
    md = (tmp_path / "out" / "tables" / "score_definitions.md").read_text()
    assert "constant" in md and "Harmonic" in md


# --------------------------------------------------------------------------- contract errors
def test_contract_violations_name_file_and_field():
    good = metrics_json("diabetes", "m", "SEEDEx", 1, VALUES[("diabetes", "model_a", "SEEDEx")])
    bad = dict(good, status="weird")
    with pytest.raises(SynllmError, match="x.json.*'status'"):
        parse_metrics(bad, "x.json")
    bad = json.loads(json.dumps(good))
    bad["metrics"][0]["direction"] = "up"
    with pytest.raises(SynllmError, match="ks_mean.*'direction'"):
        parse_metrics(bad, "x.json")
    bad = {k: v for k, v in good.items() if k != "rep"}
    with pytest.raises(SynllmError, match="'rep'"):
        parse_metrics(bad, "x.json")


def test_duplicate_cells_and_conflicting_declarations(tmp_path):
    a = tmp_path / "a.json"
    b = tmp_path / "b.json"
    doc = metrics_json("diabetes", "m", "SEEDEx", 1, VALUES[("diabetes", "model_a", "SEEDEx")])
    a.write_text(json.dumps(doc))
    b.write_text(json.dumps(doc))
    with pytest.raises(SynllmError, match="same cell"):
        load_metrics([a, b])
    doc2 = json.loads(json.dumps(doc))
    doc2["model"] = "m2"
    doc2["metrics"][0]["direction"] = "higher"
    b.write_text(json.dumps(doc2))
    with pytest.raises(SynllmError, match="ks_mean"):
        load_metrics([a, b])


# --------------------------------------------------------------------------- paper comparison
def test_spearman_small_example():
    names = {"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"}
    ours = pd.DataFrame(
        {
            "dataset": "diabetes",
            "model": ["a", "b", "c", "d", "e"],
            "prompt": "SEEDEx",
            "harmonic_mean": [0.9, 0.7, 0.5, 0.3, np.nan],  # e failed
        }
    )
    published = pd.DataFrame(
        {
            "row": [1, 2, 3, 4, 5],
            "dataset": "diabetes",
            "model": ["A", "B", "C", "D", "E"],
            "prompt": "SEEDEx",
            "quality": 0.5,
            "privacy": 0.5,
            "harmonic": [0.6, 0.5, 0.55, 0.2, 0.4],
        }
    )
    cmp = paper.compare_harmonic(ours, published, names).set_index("prompt")
    # ranks ours 4,3,2,1; paper 4,2,3,1 -> d^2 sum 2 -> rho = 1 - 6*2/(4*(16-1)) = 0.8
    r = cmp.loc["SEEDEx"]
    assert r["n"] == 4 and r["rho"] == pytest.approx(0.8)
    assert r["p"] == pytest.approx(
        stats.spearmanr([0.9, 0.7, 0.5, 0.3], [0.6, 0.5, 0.55, 0.2]).pvalue
    )
    # another column of ours can be compared (like with like: (Q + P) / 2)
    alt = paper.compare_harmonic(
        ours.assign(mean_qp=[0.3, 0.5, 0.7, 0.9, np.nan]), published, names, value="mean_qp"
    ).set_index("prompt")
    assert alt.loc["SEEDEx", "rho"] == pytest.approx(-0.8)
    # fewer than 3 common models -> n/a
    few = paper.compare_harmonic(ours[ours["model"].isin(["a", "b"])], published, names)
    assert few["rho"].isna().all() and (few["n"] == 2).all()
    assert "n/a" in paper.comparison_markdown(few)


def test_paper_table_and_names_load():
    pub = paper.load_paper_table4(PAPER)
    assert set(pub["dataset"]) == {"diabetes", "stroke", "cirrhosis"}
    # the resolved row mapping: rows 1-17 diabetes, 18-33 stroke, 34-44 cirrhosis
    rows = pub.groupby("dataset")["row"].agg(["min", "max"])
    assert rows.loc["diabetes"].tolist() == [1, 17] and rows.loc["stroke"].tolist() == [18, 33]
    assert rows.loc["cirrhosis"].tolist() == [34, 44]
    assert not pub.duplicated(["dataset", "model", "prompt"]).any()
    # the printed "Harmonic" is (Q + P) / 2 in every printed cell
    ok = pub["quality"].notna()
    mean_qp = (pub.loc[ok, "quality"] + pub.loc[ok, "privacy"]) / 2
    assert (abs(mean_qp - pub.loc[ok, "harmonic"]) <= 0.0051).all()
    names = paper.load_paper_names(PAPER, None)
    assert names["zephyr-7b-beta"] == "Zephyr 7B" and names["gpt2"] == "GPT-2-Small"
    # every paper model name in the published tables resolves from a slug
    assert set(pub["model"]) <= set(names.values())
    models = pd.read_csv(PAPER / "models.csv")
    assert set(models["paper_name"]) == set(names.values())


def test_paper_copy_matches_shared_material():
    """resources/paper holds an unchanged copy of the shared paper tables and PROTOCOL.md."""
    shared = Path("..") / "shared" / "paper"
    if not shared.is_dir():
        pytest.skip("../shared/paper not present")
    for f in shared.iterdir():
        if f.suffix in (".csv",) or f.name == "PROTOCOL.md":
            assert (PAPER / f.name).read_bytes() == f.read_bytes(), f.name


def test_paper_comparison_on_paper_numbers(tmp_path):
    """Feeding the paper's own Table IV back in gives rho = 1 wherever n >= 3."""
    pub = paper.load_paper_table4(PAPER)
    names = paper.load_paper_names(PAPER, None)
    inv = {v: k for k, v in names.items()}
    ours = pub.assign(model=lambda d: d["model"].map(inv), harmonic_mean=lambda d: d["harmonic"])
    cmp = paper.compare_harmonic(ours, pub, names)
    full = cmp[cmp["n"] >= 3]
    assert len(full) == 15  # 3 datasets x (4 prompts + mean)
    # (ties between equal means can split in the last bit: stroke 'mean' 0.9993)
    assert (full["rho"] > 0.999).all()


# --------------------------------------------------------------------------- CLI end to end (real data)
def test_cli_end_to_end_with_real_data(tmp_path, run):
    from synllm.cards import find_card
    from synllm.split import load_table

    root, paths = run
    card = find_card("diabetes", CARDS)
    df = load_table(card, DATA).sample(3000, random_state=0).reset_index(drop=True)
    train = root / "results" / "data" / "diabetes" / "train.parquet"
    train.parent.mkdir(parents=True)
    df.iloc[:2500].to_parquet(train, index=False)
    for model, prompt in (("model_a", "SEEDEx"), ("model_c", "SEEDEx")):
        p = root / "results" / "synthetic" / "diabetes" / model / prompt / "r1.csv"
        p.parent.mkdir(parents=True)
        df.iloc[2500:2540].to_csv(p, index=False)
    lists = {}
    for kind in paths:
        lists[kind] = tmp_path / f"{kind}.txt"
        lists[kind].write_text("\n".join(str(p) for p in paths[kind]) + "\n")
    out = tmp_path / "out"
    rc = cli(
        [
            "--metrics-list",
            str(lists["metrics"]),
            "--meta-list",
            str(lists["meta"]),
            "--validation-list",
            str(lists["validation"]),
            "--cards-dir",
            str(CARDS),
            "--out-dir",
            str(out / "tables"),
            "--figures-dir",
            str(out / "figures"),
            "--paper-dir",
            str(PAPER),
            "--synthetic-dir",
            str(root / "results" / "synthetic"),
            "--train-dir",
            str(root / "results" / "data"),
            "--registry",
            str(tmp_path / "absent.yaml"),
            "--datasets",
            "diabetes",
            "stroke",
        ]
    )
    assert rc == 0
    # what the step writes is exactly what it declares (synllm.aggregate.outputs, read by the
    # Snakemake rule), besides the two undeclared per-cell companions
    declared = {p for part in outputs(["diabetes", "stroke"]).values() for p in part}
    for p in declared:
        assert (out / p).stat().st_size > 0, p
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert written - declared == {"tables/cell_scores.csv", "tables/scores_summary.csv"}
    cells = pd.read_csv(out / "tables" / "cell_scores.csv").set_index("model")
    assert cells.loc["model_a", "valid"] == 40 and cells.loc["model_a", "wall_seconds"] == 10.0
    # best cell = model_a (H 0.97), worst ok cell = model_c (H 0)
    assert cells["harmonic"].idxmax() == "model_a" and cells["harmonic"].idxmin() == "model_c"


def test_cli_rejects_missing_list(tmp_path):
    with pytest.raises(SynllmError, match="list file not found"):
        cli(
            [
                "--metrics-list",
                str(tmp_path / "nope.txt"),
                "--cards-dir",
                str(CARDS),
                "--out-dir",
                str(tmp_path / "t"),
                "--figures-dir",
                str(tmp_path / "f"),
            ]
        )


def test_privacy_table_renders_a_not_measured_value_as_dash(tmp_path, run):
    """A failed privacy metric (value null: not computable, or "not measured" such as prompt
    copies scored without the prompt, issue #30) is NaN in the CSV and "–" in the table."""
    root, _ = run
    aggregate_run(root, tmp_path / "out")
    md = (tmp_path / "out" / "tables" / "table_privacy.md").read_text()
    head = next(line for line in md.splitlines() if line.startswith("| Dataset |"))
    cols = [c.strip() for c in head.strip("|").split("|")]
    row = next(line for line in md.splitlines() if "| model_c |" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[cols.index("nndr")] == "–"
    assert cells[cols.index("Identifiability")] == "0.200"
    csv = pd.read_csv(tmp_path / "out" / "tables" / "table_privacy.csv").set_index("model")
    assert math.isnan(csv.loc["model_c", "nndr_mean"])
    assert csv.loc["model_b", "nndr_mean"] == 0.8
