"""Fairness and privacy reach the grid: ``synllm evaluate --out-fairness`` on real baseline
cells of stroke, then ``synllm aggregate`` builds table_fairness and table_privacy.

Cells (results/ layout under a tmp dir, stroke split as the workflow makes it):
holdout/none (500 real reference rows), marginals/none (500 rows, independent columns),
one_class/SEEDEx (150 holdout rows without stroke) and empty/SEEDEx (header only).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synllm.aggregate.cli import aggregate
from synllm.aggregate.load import load_fairness
from synllm.cli import main
from synllm.errors import SynllmError
from synllm.generate.baselines import sample_holdout, sample_marginals
from synllm.metrics.fairness import CSV_COLUMNS, METRICS, fairness_gaps

CARDS = Path("resources/datasets")
SETTINGS = json.dumps(
    {
        "xgb_n_estimators": 50,
        "distance_sample": 500,
        "mia_sample": 400,
        "utility_models": ["decision_tree"],
    }
)
CELLS = [("holdout", "none"), ("marginals", "none"), ("one_class", "SEEDEx"), ("empty", "SEEDEx")]


@pytest.fixture(scope="module")
def grid(tmp_path_factory, split):
    card, train, holdout, reference = split("stroke", reference_fraction=0.1)
    res = tmp_path_factory.mktemp("fair") / "results"
    (res / "data" / "stroke").mkdir(parents=True)
    train.to_parquet(res / "data/stroke/train.parquet", index=False)
    holdout.to_parquet(res / "data/stroke/holdout.parquet", index=False)
    tables = {
        "holdout": sample_holdout(reference, 500, 42),
        "marginals": sample_marginals(train, card, 500, 42),
        "one_class": holdout[holdout["stroke"] == 0].iloc[:150],
        "empty": holdout.iloc[:0],
    }
    paths: dict[str, list[Path]] = {"metrics": [], "meta": [], "validation": [], "fairness": []}
    for model, prompt in CELLS:
        rel = Path("stroke") / model / prompt
        for sub in ("synthetic", "validation", "raw", "metrics", "fairness"):
            (res / sub / rel).mkdir(parents=True)
        syn = res / "synthetic" / rel / "r1.csv"
        tables[model].to_csv(syn, index=False)
        n = len(tables[model])
        val = res / "validation" / rel / "r1.json"
        val.write_text(
            json.dumps(
                {"candidate_lines": n, "parsed": n, "valid": n, "status": "ok" if n else "empty"}
            )
        )
        meta = res / "raw" / rel / "r1.meta.json"
        meta.write_text(json.dumps({"model": model, "backend": "baseline", "wall_seconds": 1.0}))
        out, fair = res / "metrics" / rel / "r1.json", res / "fairness" / rel / "r1.csv"
        assert (
            main(
                [
                    "evaluate",
                    "--card",
                    str(CARDS / "stroke.yaml"),
                    "--synthetic",
                    str(syn),
                    "--train",
                    str(res / "data/stroke/train.parquet"),
                    "--holdout",
                    str(res / "data/stroke/holdout.parquet"),
                    "--validation",
                    str(val),
                    "--seed",
                    "42",
                    "--settings",
                    SETTINGS,
                    "--out",
                    str(out),
                    "--out-fairness",
                    str(fair),
                ]
            )
            == 0
        )
        for kind, p in (("metrics", out), ("meta", meta), ("validation", val), ("fairness", fair)):
            paths[kind].append(p)
    return res, paths


def _fair(res, model, prompt="none"):
    return pd.read_csv(res / "fairness" / "stroke" / model / prompt / "r1.csv")


def _metrics(res, model, prompt="none"):
    doc = json.loads((res / "metrics" / "stroke" / model / prompt / "r1.json").read_text())
    return doc, {m["name"]: m for m in doc["metrics"] if m["family"] == "fairness"}


# --------------------------------------------------------------------------- evaluate step
def test_fairness_csv_of_real_baseline_cells(grid):
    res, _ = grid
    hold, marg = _fair(res, "holdout"), _fair(res, "marginals")
    for f in (hold, marg):
        assert list(f.columns) == CSV_COLUMNS
        assert (f.dataset == "stroke").all() and (f.rep == 1).all()
        # gender 'Other' (1 row in the whole table) is below 5 train rows and left out
        assert list(zip(f.group_by, f.group)) == [
            ("gender", "Female"),
            ("gender", "Male"),
            ("age_band", "<40"),
            ("age_band", "40-60"),
            ("age_band", ">=60"),
        ]
        assert f.kl_mean.notna().all() and f.auc.between(0, 1).all() and f.kl_reason.isna().all()
        assert (
            f[f.group_by == "age_band"].n_synthetic.sum() == 500
        )  # every synthetic row has an age band
    assert (hold.model == "holdout").all() and (marg.model == "marginals").all()
    # marginals break the ties between age and the other features; real rows keep them.
    # Measured over 5 seeds: age_band KL gap holdout 0.004-0.005, marginals 0.026-0.049;
    # worst group KL holdout 0.012-0.013, marginals 0.086-0.096.
    gap = {
        n: f[f.group_by == "age_band"].kl_mean.pipe(lambda s: s.max() - s.min())
        for n, f in (("holdout", hold), ("marginals", marg))
    }
    assert gap["marginals"] > 3 * gap["holdout"]
    assert marg.kl_mean.max() > 0.05 > 0.02 > hold.kl_mean.max()


def test_fairness_summary_metrics_in_the_metrics_json(grid):
    res, _ = grid
    for model in ("holdout", "marginals"):
        doc, fm = _metrics(res, model)
        assert list(fm) == list(METRICS)
        for name, m in fm.items():
            assert (m["family"], m["score_group"], m["direction"]) == (
                "fairness",
                None,
                METRICS[name].direction,
            )
            assert m["status"] == "ok" and m["note"], (model, name, m)
        f = _fair(res, model)
        gaps = f.groupby("group_by").kl_mean.agg(lambda s: s.max() - s.min())
        assert fm["fairness_kl_gap"]["value"] == pytest.approx(gaps.max())
        assert fm["fairness_kl_max"]["value"] == pytest.approx(f.kl_mean.max())
        assert fm["fairness_auc_min"]["value"] == pytest.approx(f.auc.min())
        assert fm["fairness_auc_gap"]["value"] == pytest.approx(
            f.groupby("group_by").auc.agg(lambda s: s.max() - s.min()).max()
        )
        assert set(doc["fairness"]["groupings"]) == {"gender", "age_band"}
        assert doc["seconds"]["fairness"] >= 0
    assert (
        _metrics(res, "marginals")[1]["fairness_kl_gap"]["value"]
        > _metrics(res, "holdout")[1]["fairness_kl_gap"]["value"]
    )


def test_empty_and_one_class_cells_record_reasons(grid):
    res, _ = grid
    doc, fm = _metrics(res, "empty", "SEEDEx")
    assert doc["status"] == "failed"
    assert all(
        m["status"] == "failed" and m["value"] is None and "no rows" in m["reason"]
        for m in fm.values()
    )
    f = _fair(res, "empty", "SEEDEx")
    assert len(f) == 5 and f.kl_mean.isna().all() and f.auc.isna().all()
    assert (f.kl_reason == "no synthetic rows in this group").all()
    assert f.auc_reason.str.contains("no rows with a target value").all()

    doc, fm = _metrics(res, "one_class", "SEEDEx")
    assert doc["status"] == "ok" and "1 class" in doc["warnings"][0]
    f = _fair(res, "one_class", "SEEDEx")
    assert f.kl_mean.notna().all()  # KL needs no classes
    assert f.auc.isna().all() and f.auc_reason.str.contains("single target class").all()
    assert fm["fairness_kl_gap"]["status"] == "ok"
    assert (
        fm["fairness_auc_gap"]["status"] == "failed"
        and "single target class" in fm["fairness_auc_gap"]["reason"]
    )


def test_too_few_synthetic_rows_per_group(split):
    from synllm.metrics.fairness import evaluate_fairness

    card, train, holdout = split("stroke")
    syn = pd.concat(
        [train[train.gender == "Female"].iloc[:30], train[train.gender == "Male"].iloc[:3]]
    )
    results, frame, _ = evaluate_fairness(card, syn, train, holdout, seed=0)
    male = frame.set_index(["group_by", "group"]).loc[("gender", "Male")]
    assert math.isnan(male.kl_mean) and "only 3 synthetic row(s)" in male.kl_reason
    by = {r.metric.name: r for r in results}
    # gender has one group with a KL left; the gap comes from the age bands
    assert by["fairness_kl_gap"].status == "ok" and by["fairness_kl_gap"].note.startswith(
        "age_band"
    )
    one = frame[frame.group_by == "gender"].assign(group_by="gender")
    from synllm.metrics.fairness import summary_results

    gap = {r.metric.name: r for r in summary_results(one)}["fairness_kl_gap"]
    assert gap.status == "failed" and "fewer than 2 groups" in gap.reason


def test_gaps_need_two_groups():
    t = pd.DataFrame(
        {
            "grouping": ["a", "a", "b", "b"],
            "group": ["x", "y", "u", "v"],
            "metric": "kl_mean",
            "value": [0.1, 0.4, 0.2, np.nan],
        }
    )
    g = fairness_gaps(t)
    assert g.to_dict("records") == [
        {"grouping": "a", "metric": "kl_mean", "gap": pytest.approx(0.3)}
    ]


# --------------------------------------------------------------------------- aggregate
@pytest.fixture(scope="module")
def tables(grid, tmp_path_factory):
    res, paths = grid
    out = tmp_path_factory.mktemp("agg")
    frames = aggregate(
        paths["metrics"],
        paths["meta"],
        paths["validation"],
        cards_dir=CARDS,
        out_dir=out / "tables",
        figures_dir=out / "figures",
        registry=None,
        make_figures=False,
        fairness_paths=paths["fairness"],
    )
    return out / "tables", frames


def _md_rows(md: str, needle: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in md.splitlines()
        if needle in line
    ]


def _tex_check(tex: str) -> int:
    """Every tabular row has as many cells as the column spec; returns the number of columns."""
    spec = re.search(r"\\begin\{tabular\}\{([lrc]+)\}", tex).group(1)
    body = tex.split("\\begin{tabular}", 1)[1].split("\\end{tabular}", 1)[0]
    rows = [r.strip() for r in body.split("\\\\") if "&" in r]
    assert rows
    for r in rows:
        r = re.sub(r"^(\\(toprule|midrule|cmidrule\(lr\)\{\d+-\d+\})\s*)+", "", r)
        n = 0
        for cell in re.split(r"(?<!\\)&", r):
            m = re.search(r"\\multicolumn\{(\d+)\}", cell)
            n += int(m.group(1)) if m else 1
        assert n == len(spec), r
    assert "–" not in tex and "<" not in tex.split("\\begin{tabular}", 1)[1]
    return len(spec)


def test_privacy_table(grid, tables):
    res, _ = grid
    out, frames = tables
    md = (out / "table_privacy.md").read_text()
    head = _md_rows(md, "| Dataset |")[0]
    assert head[:10] == [
        "Dataset",
        "Model",
        "Prompt",
        "NN ratio",
        "Identifiability",
        "DCR median",
        "DCR p5",
        "NNDR",
        "MIA AUC",
        "MIA advantage",
    ]
    # the leak columns follow (#14), then the seed-row attack's member / non-member counts
    for label in (
        "MIA TPR@1%",
        "Prompt copies",
        "Train copies",
        "Holdout matches",
        "Seed MIA AUC",
        "Closer to train",
        "Disclosure risk",
    ):
        assert label in head
    assert head[-1] == "Seed m/nm"
    empty = _md_rows(md, "| empty |")[0]
    assert empty[:3] == ["stroke", "empty", "SEEDEx"] and empty[3:] == ["–"] * (len(head) - 3)
    one = _md_rows(md, "| one_class |")[0]  # one target class: a poor table, still scored
    assert one[:3] == ["stroke", "one_class", "SEEDEx"] and "–" not in one[3:10]
    doc = json.loads((res / "metrics/stroke/marginals/none/r1.json").read_text())
    by = {m["name"]: m["value"] for m in doc["metrics"]}
    marg = _md_rows(md, "marginals (baseline)")[0]
    assert marg[3:10] == [
        f"{by[n]:.3f}"
        for n in (
            "nn_ratio",
            "identifiability",
            "dcr_median",
            "dcr_p5",
            "nndr_mean",
            "mia_auc",
            "mia_advantage",
        )
    ]
    ref = _md_rows(md, "real holdout (reference)")[0]
    assert ref[5] == f"{doc['privacy']['holdout_dcr_median']:.3f}" and ref[3] == ""
    csv = pd.read_csv(out / "table_privacy.csv").set_index("model")
    assert csv.loc["marginals", "mia_auc_mean"] == pytest.approx(by["mia_auc"])
    assert csv.loc["empty", "status"] == "failed" and math.isnan(csv.loc["empty", "mia_auc_mean"])
    assert _tex_check((out / "table_privacy.tex").read_text()) == len(head)


def test_fairness_table(grid, tables):
    res, _ = grid
    out, frames = tables
    md = (out / "table_fairness.md").read_text()
    head = _md_rows(md, "| Dataset |")[0]
    assert head == [
        "Dataset",
        "Model",
        "Prompt",
        "Group by",
        "Groups",
        "n synthetic",
        "KL per group",
        "KL gap",
        "AUC per group",
        "AUC gap",
    ]
    marg = {r[3]: r for r in _md_rows(md, "marginals (baseline)")}
    assert set(marg) == {"gender", "age_band"}
    assert marg["age_band"][4] == "<40 / 40-60 / >=60"
    f = _fair(res, "marginals")
    age = f[f.group_by == "age_band"]
    assert marg["age_band"][6] == " / ".join(f"{v:.3f}" for v in age.kl_mean)
    assert marg["age_band"][7] == f"{age.kl_mean.max() - age.kl_mean.min():.3f}"
    assert marg["age_band"][5] == " / ".join(str(n) for n in age.n_synthetic)
    # a failed cell: every value is a dash
    for row in _md_rows(md, "| empty |"):
        assert set(f"{row[6]} / {row[8]}".split(" / ")) == {"–"}
        assert row[7] == row[9] == "–"
    # one target class: KL per group, no per-group AUC (no classifier to score)
    for row in _md_rows(md, "| one_class |"):
        assert "–" not in row[6].split(" / ") and row[7] != "–"
        assert set(row[8].split(" / ")) == {"–"} and row[9] == "–"
    csv = pd.read_csv(out / "table_fairness.csv")
    m = csv[(csv.model == "marginals") & (csv.group_by == "age_band")].set_index("group")
    assert m.loc["<40", "kl_mean"] == pytest.approx(age.set_index("group").loc["<40", "kl_mean"])
    assert m.kl_gap.nunique() == 1 and m.kl_gap.iloc[0] == pytest.approx(
        age.kl_mean.max() - age.kl_mean.min()
    )
    h = csv[(csv.model == "holdout") & (csv.group_by == "age_band")]
    assert m.kl_gap.iloc[0] > h.kl_gap.iloc[0]
    assert (csv[csv.model == "empty"].status == "failed").all()
    tex = (out / "table_fairness.tex").read_text()
    assert _tex_check(tex) == 10
    assert r"\textless{}40 / 40-60 / \textgreater{}=60" in tex


def test_fairness_table_without_fairness_files(grid, tmp_path):
    _, paths = grid
    aggregate(
        paths["metrics"],
        paths["meta"],
        paths["validation"],
        cards_dir=CARDS,
        out_dir=tmp_path,
        figures_dir=tmp_path / "f",
        registry=None,
        make_figures=False,
    )
    md = (tmp_path / "table_fairness.md").read_text()
    row = _md_rows(md, "marginals (baseline)")[0]
    assert row[3:] == ["–"] * 7


def test_load_fairness_errors(grid, tmp_path):
    res, paths = grid
    bad = tmp_path / "stroke" / "holdout" / "none" / "fair.csv"
    bad.parent.mkdir(parents=True)
    bad.write_text(paths["fairness"][0].read_text())
    with pytest.raises(SynllmError, match="cell identity"):
        load_fairness([bad])
    wrong = tmp_path / "stroke" / "marginals" / "none" / "r1.csv"
    wrong.parent.mkdir(parents=True)
    wrong.write_text(paths["fairness"][0].read_text())  # holdout's rows under marginals' path
    with pytest.raises(SynllmError, match="disagrees with the path"):
        load_fairness([wrong])
    cols = tmp_path / "stroke" / "x" / "none" / "r1.csv"
    cols.parent.mkdir(parents=True)
    cols.write_text("group_by,group\ngender,Female\n")
    with pytest.raises(SynllmError, match="missing column"):
        load_fairness([cols])
    header = tmp_path / "stroke" / "y" / "none" / "r1.csv"
    header.parent.mkdir(parents=True)
    header.write_text(",".join(CSV_COLUMNS) + "\n")
    assert load_fairness([header]).empty
    with pytest.raises(SynllmError, match="not found"):
        load_fairness([tmp_path / "nope" / "a" / "b" / "r1.csv"])
