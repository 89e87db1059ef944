"""The leaderboard through the Snakefile: peers (CTGAN, TVAE) and baselines of a tiny grid in one
ranking with their win rates against the copula, and the Snakemake report opening on it (the
leaderboard itself on hand-made tables: tests/unit/aggregate/test_leaderboard.py). With
Chromium installed, the report's first page as a browser renders it (scripts/report_screenshot.sh).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pandas as pd
import pytest

PEERS = {
    "seed": 3,
    "datasets": ["cirrhosis"],
    "models": ["ctgan", "tvae", "copula"],  # three entries: the fewest the Friedman test takes
    "prompts": ["SEEDEx"],
    "repeats": 2,  # two (dataset, repeat) blocks: the Friedman test runs
    "n_records": 10,
    "evaluation": {"distance_sample": 500, "mia_sample": 200, "bootstrap": 3},
}


@pytest.fixture(scope="module")
def peers_run(tmp_path_factory, run_snakemake, snakemake):
    work = tmp_path_factory.mktemp("leaderboard")
    proc = run_snakemake(work, PEERS)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rep = snakemake(work, "--configfile", str(work / "config.yaml"), "--report", "report.html")
    assert rep.returncode == 0, rep.stderr[-4000:]
    return work


def test_peers_and_baselines_in_one_leaderboard(peers_run):
    res = peers_run / "results"
    board = pd.read_csv(res / "tables" / "leaderboard.csv")
    ov = board[board["scope"] == "overall"].set_index("entry")
    assert set(ov.index) == {"ctgan", "tvae", "copula"}
    # kinds come from the registry backend written into each cell's meta
    assert ov.loc["ctgan", "kind"] == "peer" and ov.loc["tvae", "kind"] == "peer"
    assert ov.loc["copula", "kind"] == "baseline"
    for peer in ("ctgan", "tvae"):
        assert ov.loc[peer, "n_vs_copula"] == 2
        assert 0 <= ov.loc[peer, "win_vs_copula"] <= 1
    assert (ov["n_blocks"] == 2).all() and sorted(ov["rank"]) == [1, 2, 3]
    assert ov["friedman_p"].notna().all()
    # 3 entries over 2 blocks: no difference can be significant, and the table says so
    assert ov["significance"].str.startswith("Too few blocks").all()
    md = (res / "tables" / "leaderboard.md").read_text()
    assert "Too few blocks for significance" in md and "ctgan (peer)" in md
    assert "| Wins vs copula |" in md
    per = board[board["scope"] == "dataset"]
    assert len(per) == 3 and per["harmonic_ci"].str.contains(r"\[").all()
    assert (per["harmonic_low"] >= 0).all() and (per["harmonic_high"] <= 1).all()
    assert (res / "figures" / "leaderboard.png").stat().st_size > 10_000
    assert (res / "figures" / "critical_difference.png").stat().st_size > 10_000


def _landing_html(report: str) -> str:
    """The report's workflow description, the HTML its landing page shows."""
    m = re.search(r"var workflow_desc = (\".*?\");\n", report, re.S)
    assert m, "no workflow description in the report"
    return json.loads(m.group(1))


def test_report_opens_on_the_leaderboard(peers_run):
    report = (peers_run / "report.html").read_text()
    landing = _landing_html(report)
    assert landing.index("Leaderboard") < landing.index("How the grid works")
    assert "ctgan (peer)" in landing and "Wins vs copula" in landing
    assert landing.count("data:image/png;base64,") == 2  # leaderboard, quality vs privacy
    # what the run was, from its configuration
    assert "datasets cirrhosis" in landing and "models ctgan, tvae, copula" in landing
    assert "10 records" in landing and "2 repeat(s)" in landing


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Chromium not installed")
def test_report_first_page_in_chromium(peers_run, root, tmp_path):
    png = tmp_path / "report.png"
    proc = subprocess.run(
        ["bash", str(root / "scripts" / "report_screenshot.sh"), str(peers_run / "report.html")]
        + [str(png)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert png.stat().st_size > 20_000
    # the rendered page (after the report's scripts ran) holds the leaderboard table
    dom = png.with_suffix(".dom.html").read_text()
    assert "Wins vs copula" in dom and "ctgan (peer)" in dom
