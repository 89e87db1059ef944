"""Metrics beyond the paper (Lin et al.): per-group fairness and membership inference.

Kept apart from :mod:`synllm.metrics` so the evaluate step can wire them in explicitly.
"""
