"""synllm: benchmark LLMs as generators of synthetic clinical tabular data.

The package holds one module per workflow step (``data``, ``profile``, ``prompts``,
``generate``, ``validate``, ``metrics``, ``aggregate``); each exposes a small CLI that
the Snakemake rules call through ``synllm <step>``.
"""

__version__ = "0.1.0"

PROMPT_STYLES = ("SEEDEx", "FEATDESC", "STATGUIDE", "CLINRULE")
"""The paper's four prompt styles, in the paper's order (prompt1..prompt4)."""

EXTRA_PROMPT_STYLES = ("naive", "schema", "conditional", "group")
"""Generation strategies of Lin et al., usable as extra prompt styles."""

BASELINE_PROMPT = "none"
"""Prompt wildcard value for generators that take no prompt (baselines)."""
