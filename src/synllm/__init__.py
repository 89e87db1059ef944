"""synllm: benchmark LLMs as generators of synthetic clinical tabular data.

The package holds one module per workflow step (``data``, ``profile``, ``prompts``,
``generate``, ``validate``, ``metrics``, ``aggregate``); each exposes a small CLI that
the Snakemake rules call through ``synllm <step>``.
"""

__version__ = "0.1.0"

from synllm.names import BASELINE_PROMPT, EXTRA_PROMPT_STYLES, PROMPT_STYLES  # noqa: E402,F401
