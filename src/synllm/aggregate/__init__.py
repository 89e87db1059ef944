"""The aggregate step: every cell's metrics -> Tables IV-VI, figures, the paper comparison.

The step's CLI is :mod:`synllm.aggregate.cli`; this module declares the files it writes, so the
Snakemake rule, the CLI and the tests read one list (:func:`outputs`). Paths are relative to
the results folder:

``tables/``
  ``table4_quality_privacy``, ``table5_ml_utility``, ``table6_efficiency``, ``table_privacy``
  (raw privacy metrics per cell), ``table_fairness`` (per-group KL / TSTR AUC and gaps),
  ``table_intervals`` (Quality, Privacy, Harmonic, TSTR AUC with 95 % intervals per cell),
  ``table_ranking`` (Friedman / Nemenyi ranking of the LLMs over (dataset, prompt) blocks, the
  LLM-only view), ``leaderboard`` (every generator entry ranked together over (dataset, repeat)
  blocks with win rates against the baselines, :mod:`synllm.aggregate.leaderboard`), each
  ``.csv``, ``.md``, ``.tex``; ``score_definitions.{csv,md}``, ``paper_comparison.{csv,md}``,
  ``leaderboard_report.rst`` (the leaderboard for the report's landing page); undeclared companions:
  ``cell_scores.csv`` (one row per cell and repeat), ``scores_summary.csv`` (per dataset x model
  x prompt).
``figures/``
  ``leaderboard.png``, ``quality_vs_privacy.png``, ``efficiency.png``, ``critical_difference.png``
  (of the leaderboard) and per dataset
  ``harmonic_heatmap_{dataset}.png``, ``distributions_{dataset}_best.png``, ``_worst.png``.

Under ``evaluation.protocol: paper`` the step reproduces the published Table IV instead
(:mod:`synllm.aggregate.reproduction`): ``paper_reproduction``, ``paper_divergence`` (``.csv``,
``.md``), their summary and scores, ``paper_comparison`` and two figures.

Imports nothing heavy: the workflow reads :func:`outputs` when it parses its rules.
"""

from __future__ import annotations

TABLES = (
    "table4_quality_privacy",
    "table5_ml_utility",
    "table6_efficiency",
    "table_privacy",
    "table_fairness",
    "table_intervals",
    "table_ranking",
    "leaderboard",
)
"""Tables written as ``.csv``, ``.md`` and ``.tex`` (project protocol)."""

PAPER_TABLES = ("paper_reproduction", "paper_divergence")
"""Tables written as ``.csv`` and ``.md`` (paper protocol)."""


def outputs(datasets: list[str], protocol: str = "project") -> dict[str, list[str]]:
    """Declared outputs of ``synllm aggregate``: ``{"tables", "extra", "figures"}``, each a
    list of paths relative to the results folder, in a stable order."""
    if protocol == "paper":
        return {
            "tables": [f"tables/{n}.{e}" for n in PAPER_TABLES for e in ("csv", "md")],
            "extra": [
                "tables/paper_reproduction_summary.csv",
                "tables/paper_reproduction_summary.md",
                "tables/paper_protocol_scores.csv",
                "tables/paper_comparison.csv",
                "tables/paper_comparison.md",
            ],
            "figures": ["figures/paper_reproduction.png", "figures/paper_divergence.png"],
        }
    return {
        "tables": [f"tables/{n}.{e}" for n in TABLES for e in ("csv", "md", "tex")],
        "extra": [
            "tables/score_definitions.csv",
            "tables/score_definitions.md",
            "tables/paper_comparison.csv",
            "tables/paper_comparison.md",
            "tables/leaderboard_report.rst",
        ],
        "figures": [
            "figures/leaderboard.png",
            "figures/quality_vs_privacy.png",
            "figures/efficiency.png",
            "figures/critical_difference.png",
        ]
        + [
            f"figures/{kind}_{d}{suffix}.png"
            for d in datasets
            for kind, suffix in (
                ("harmonic_heatmap", ""),
                ("distributions", "_best"),
                ("distributions", "_worst"),
            )
        ],
    }
