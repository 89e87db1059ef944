"""Generation step: run one model (or baseline, or replay) on one prompt.

``synllm generate`` is :func:`synllm.generate.cli.cli`; backends live in sibling modules and
are imported lazily through :data:`synllm.generate.base.BACKENDS`.
"""
