"""The leaderboard on hand-made score tables: ranks, Friedman statistic and Nemenyi p-values
against scipy / scikit-posthocs, win rates counted by hand, failed and missing cells ranked
last, the significance sentence, the written files (through the Snakefile:
tests/workflow/test_leaderboard_grid.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scikit_posthocs as sp
from scipy import stats

from synllm.aggregate import leaderboard, render
from synllm.aggregate.ranking import critical_difference

KINDS = {
    "llm": "LLM",
    "ctgan": "peer",
    "copula": "baseline",
    "marginals": "baseline",
    "holdout": "baseline",
}
ENTRIES = {  # entry -> (model, prompt)
    "llm/SEEDEx": ("llm", "SEEDEx"),
    "llm/CLINRULE": ("llm", "CLINRULE"),
    "ctgan": ("ctgan", "none"),
    "copula": ("copula", "none"),
    "marginals": ("marginals", "none"),
    "holdout": ("holdout", "none"),
}


def _cells(values: dict[str, list[float]], blocks: list[tuple[str, int]]) -> pd.DataFrame:
    """Cell frame from Harmonic per entry and block (NaN = failed cell, None = no cell)."""
    rows = []
    for entry, hs in values.items():
        model, prompt = ENTRIES[entry]
        for (ds, rep), h in zip(blocks, hs):
            if h is None:
                continue
            ok = not math.isnan(h)
            rows.append(
                {
                    "dataset": ds,
                    "model": model,
                    "prompt": prompt,
                    "rep": rep,
                    "status": "ok" if ok else "failed",
                    "harmonic": h,
                    "n_synthetic": 20 if ok else 0,
                }
            )
    return pd.DataFrame(rows)


def _summary(cell: pd.DataFrame) -> pd.DataFrame:
    g = cell.groupby(["dataset", "model", "prompt"], as_index=False)["harmonic"].mean()
    out = g.rename(columns={"harmonic": "harmonic_mean"})
    for s in ("quality", "privacy", "tstr_auc"):
        out[f"{s}_mean"] = np.where(out["harmonic_mean"].notna(), 0.5, np.nan)
    out["harmonic_low"] = out["harmonic_mean"] - 0.1
    out["harmonic_high"] = out["harmonic_mean"] + 0.1
    return out


BLOCKS = [(d, r) for d in ("cirrhosis", "diabetes", "stroke") for r in (1, 2)]
RNG = np.random.default_rng(7)
SKILL = {
    "llm/SEEDEx": 0.45,
    "llm/CLINRULE": 0.4,
    "ctgan": 0.55,
    "copula": 0.7,
    "marginals": 0.6,
    "holdout": 0.5,
}
VALUES = {e: list(np.clip(s + RNG.normal(0, 0.12, len(BLOCKS)), 0, 1)) for e, s in SKILL.items()}


def test_ranks_friedman_and_nemenyi_match_the_packages():
    values = {e: list(v) for e, v in VALUES.items()}
    values["llm/CLINRULE"][2] = math.nan  # failed cell in block (diabetes, 1)
    board = leaderboard.build(_cells(values, BLOCKS), _summary(_cells(values, BLOCKS)), KINDS)
    expect = pd.DataFrame(values, index=pd.MultiIndex.from_tuples(BLOCKS)).fillna(-1.0)
    # ranks: 1 = highest Harmonic in a block, as scipy's rankdata of the negated values
    want = np.vstack([stats.rankdata(-row) for row in expect.to_numpy()])
    got = board["ranks"][list(expect.columns)].to_numpy()
    np.testing.assert_allclose(got, want)
    assert board["ranks"].loc[("diabetes", 1), "llm/CLINRULE"] == 6  # the failed cell is last
    ov = board["overall"].set_index("entry")
    for e in expect.columns:
        assert ov.loc[e, "mean_rank"] == pytest.approx(
            want[:, list(expect.columns).index(e)].mean()
        )
    assert list(board["overall"]["mean_rank"]) == sorted(board["overall"]["mean_rank"])
    chi2, p = stats.friedmanchisquare(*[expect[e].to_numpy() for e in expect.columns])
    assert ov["friedman_chi2"].iloc[0] == pytest.approx(chi2)
    assert ov["friedman_p"].iloc[0] == pytest.approx(p)
    nem = sp.posthoc_nemenyi_friedman(expect.reset_index(drop=True))
    best = board["overall"]["entry"].iloc[0]
    assert ov.loc[best, "vs_best"] == "best"
    for e in expect.columns:
        if e != best:
            assert ov.loc[e, "nemenyi_p_vs_best"] == pytest.approx(nem.loc[e, best])
            want_vs = "significant" if nem.loc[e, best] < 0.05 else "not significant"
            assert ov.loc[e, "vs_best"] == want_vs
    assert ov["critical_difference"].iloc[0] == pytest.approx(critical_difference(6, 6))
    assert ov.loc["llm/CLINRULE", "note"] == "failed in 1 of 6 block(s), ranked last there"
    assert ov.loc["ctgan", "kind"] == "peer" and ov.loc["copula", "kind"] == "baseline"
    # Harmonic column: mean over the valid blocks only
    assert ov.loc["llm/CLINRULE", "harmonic_mean"] == pytest.approx(
        np.mean([v for v in values["llm/CLINRULE"] if not math.isnan(v)])
    )


def test_win_rates_counted_by_hand():
    blocks = [("a", 1), ("b", 1), ("c", 1), ("d", 1)]
    values = {
        "llm/SEEDEx": [0.5, 0.4, math.nan, 0.6],  # vs copula: win, tie, failed, loss
        "ctgan": [0.2, 0.9, 0.3, None],  # vs copula: loss, win, win, no cell
        "copula": [0.3, 0.4, 0.2, 0.7],
        "marginals": [0.6, math.nan, 0.1, 0.1],  # the baseline failed in block b
    }
    board = leaderboard.build(_cells(values, blocks), _summary(_cells(values, blocks)), KINDS)
    ov = board["overall"].set_index("entry")
    assert board["baselines"] == ["copula", "marginals"]
    assert (ov.loc["llm/SEEDEx", "wins_vs_copula"], ov.loc["llm/SEEDEx", "n_vs_copula"]) == (1.5, 4)
    assert ov.loc["llm/SEEDEx", "win_vs_copula"] == pytest.approx(1.5 / 4)
    assert (ov.loc["ctgan", "wins_vs_copula"], ov.loc["ctgan", "n_vs_copula"]) == (2.0, 4)
    # marginals is valid in a, c, d: SEEDEx loses a, fails c, wins d; ctgan loses a, wins c,
    # has no cell in d; copula loses a, wins c and d
    assert (ov.loc["llm/SEEDEx", "wins_vs_marginals"], ov.loc["llm/SEEDEx", "n_vs_marginals"]) == (
        1.0,
        3,
    )
    assert ov.loc["ctgan", "wins_vs_marginals"] == 1.0
    assert ov.loc["copula", "wins_vs_marginals"] == 2.0
    assert ov.loc["marginals", "wins_vs_copula"] == 1.0  # a; its failed block b loses
    assert math.isnan(ov.loc["copula", "win_vs_copula"]) and ov.loc["copula", "n_vs_copula"] == 0
    assert ov.loc["ctgan", "note"] == "no cell in 1 of 4 block(s), ranked last there"
    md = render.to_markdown(leaderboard.layouts(board)[0])
    assert "| Wins vs copula | Wins vs marginals |" in md
    row = next(line for line in md.splitlines() if "| llm SEEDEx |" in line)
    assert "| 1.5/4 | 1/3 |" in row


def test_failed_and_missing_cells_rank_last_and_say_so():
    blocks = [("a", 1), ("b", 1)]
    values = {
        "llm/SEEDEx": [math.nan, 0.0],  # failed in a; Harmonic 0 is valid in b
        "ctgan": [None, math.nan],  # no cell in a, failed in b
        "copula": [0.2, 0.3],
    }
    board = leaderboard.build(_cells(values, blocks), _summary(_cells(values, blocks)), KINDS)
    r = board["ranks"]
    assert list(r.loc[("a", 1), ["copula", "llm/SEEDEx", "ctgan"]]) == [1.0, 2.5, 2.5]
    assert list(r.loc[("b", 1), ["copula", "llm/SEEDEx", "ctgan"]]) == [1.0, 2.0, 3.0]
    assert list(board["status"].loc[("a", 1)]) == ["failed", "missing", "ok"]
    ov = board["overall"].set_index("entry")
    assert list(board["overall"]["entry"]) == ["copula", "llm/SEEDEx", "ctgan"]
    assert ov.loc["ctgan", "note"] == (
        "failed in 1 of 2 block(s), ranked last there; no cell in 1 of 2 block(s), ranked "
        "last there"
    )
    per = board["datasets"].set_index(["dataset", "entry"])
    assert per.loc[("a", "llm/SEEDEx"), "note"] == "failed in 1 of 1 block(s), ranked last there"
    assert per.loc[("a", "copula"), "rank_in_dataset"] == 1.0
    md = render.to_markdown(leaderboard.layouts(board)[1])
    assert "| a | 2.5 | llm SEEDEx | – | – | – | – | failed in 1 of 1 block(s)" in md


def test_significance_says_when_blocks_are_too_few():
    # a matrix where one entry is first and another last in every block reaches the
    # smallest Nemenyi p-value there is: the one significance() reports
    for k, n in ((3, 2), (7, 3), (9, 3), (5, 20)):
        m = pd.DataFrame(np.tile(np.arange(k, 0, -1.0), (n, 1)))
        p = sp.posthoc_nemenyi_friedman(m).loc[0, k - 1]
        sig = leaderboard.significance(k, n)
        assert sig["min_p"] == pytest.approx(p)
        assert sig["possible"] == (p < 0.05)
    too_few = leaderboard.significance(3, 2)
    assert not too_few["possible"] and too_few["text"].startswith("Too few blocks")
    assert "no difference can be significant" in too_few["text"]
    default = leaderboard.significance(7, 3)  # the default grid: 7 entries, 3 datasets
    assert default["possible"] and default["text"].startswith("Few blocks")
    assert f"{critical_difference(7, 3):.2f}" in default["text"]
    assert "rough below about 10" in default["text"]
    assert "rough" not in leaderboard.significance(5, 20)["text"]


def test_too_few_blocks_and_entries_are_said_in_the_table(tmp_path):
    from synllm.aggregate import figures
    from synllm.aggregate.ranking import cd_figure

    blocks = [("a", 1), ("b", 1)]
    values = {"llm/SEEDEx": [0.1, 0.2], "ctgan": [0.3, 0.1], "copula": [0.5, 0.6]}
    board = leaderboard.build(_cells(values, blocks), _summary(_cells(values, blocks)), KINDS)
    assert board["test"]["ok"] and not board["significance"]["possible"]
    md = render.to_markdown(leaderboard.layouts(board)[0])
    assert "Too few blocks for significance" in md
    assert board["overall"]["significance"].str.startswith("Too few blocks").all()
    one = leaderboard.build(_cells(values, blocks[:1]), _summary(_cells(values, blocks[:1])), KINDS)
    assert not one["test"]["ok"]
    assert one["test"]["reason"] == (
        "Friedman test not run: 1 (dataset, repeat) blocks, it needs at least 2"
    )
    assert "Friedman test not run" in render.to_markdown(leaderboard.layouts(one)[0])
    # the figures draw what there is, or say why
    assert figures.leaderboard(board, tmp_path / "lb.png").stat().st_size > 1000
    assert figures.leaderboard(one, tmp_path / "lb1.png").stat().st_size > 1000
    assert cd_figure(board["test"], tmp_path / "cd.png").stat().st_size > 1000


def test_entries_and_display_names():
    cell = _cells({"llm/SEEDEx": [0.1], "ctgan": [0.2], "copula": [0.3]}, [("a", 1)])
    ents = leaderboard.entries(cell, KINDS)
    assert list(ents["entry"]) == ["llm/SEEDEx", "ctgan", "copula"]  # LLM, peer, baseline
    # a kind not in the run's kinds falls back by prompt: prompted -> LLM, none -> baseline
    assert list(leaderboard.entries(cell, {})["kind"]) == ["LLM", "baseline", "baseline"]
    assert leaderboard.display_entry("llm/SEEDEx", "LLM", {"llm": "LLaMA 3"}) == "LLaMA 3 SEEDEx"
    assert leaderboard.display_entry("ctgan", "peer") == "ctgan (peer)"


def test_report_page_embeds_the_figures_and_is_valid_rst(tmp_path):
    from docutils.core import publish_parts

    from synllm.aggregate import figures

    values = {e: VALUES[e] for e in ("llm/SEEDEx", "ctgan", "copula", "holdout")}
    cell = _cells(values, BLOCKS)
    board = leaderboard.build(cell, _summary(cell), KINDS)
    png = figures.leaderboard(board, tmp_path / "leaderboard.png")
    facts = leaderboard.run_facts(cell, KINDS)
    assert facts.startswith("3 dataset(s) (cirrhosis, diabetes, stroke) x 2 repeat(s); 4 entries")
    text = leaderboard.report_rst(
        leaderboard.layouts(board), [(png, "The figure."), (tmp_path / "absent.png", "x")], facts
    )
    assert text.count("data:image/png;base64,") == 1
    html = publish_parts(text, writer="html", settings_overrides={"report_level": 2})["body"]
    assert "system-message" not in html  # docutils reports no error or warning
    assert html.count("<table") == 2 and "ctgan (peer)" in html
    assert "<figcaption>The figure.</figcaption>" in html
