"""Generation step: run one model (or baseline, or replay) on one prompt.

``synllm generate`` is :func:`synllm.generate.cli.cli`; the run loop (mini-batches, retries,
several cells per model load) is :mod:`synllm.generate.run`; the decode grammars of
constrained decoding are :mod:`synllm.generate.grammar`; backends live in sibling modules and
are imported lazily through :data:`synllm.generate.base.BACKENDS`.
"""
