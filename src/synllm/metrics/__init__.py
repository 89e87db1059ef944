"""Evaluation of one synthetic table: fidelity, correlation, clinical consistency, privacy and
ML utility (``synllm evaluate``).

Each family module declares its metrics in :data:`synllm.metrics.base.REGISTRY` with
``family``, ``score_group``, ``direction`` and ``range``; the metrics JSON carries those
fields next to each value, and aggregation normalises from them.

Score groups (aggregation averages the normalised, direction-aligned values per dataset):

- **quality**: ``ks_mean``, ``wasserstein_mean``, ``jsd_mean``, ``kl_mean``, ``ad_mean``,
  ``range_coverage_mean``, ``chi2_pvalue_mean``, ``category_preservation_mean``,
  ``mi_diff_mean`` (fidelity); ``corr_frobenius`` (correlation); ``clinical_consistency``
  (clinical); ``tstr_f1_mean``, ``tstr_auc_mean`` (utility, train synthetic / test real).
- **privacy**: ``nn_ratio``, ``identifiability``, ``dcr_median``, ``mia_auc``,
  ``prompt_copy_rate``, ``train_copy_rate`` (:mod:`synllm.metrics.leaks`).
- reported only (``score_group`` None): per-model utility, TRTS and real->real reference
  scores, chi-square statistic, sdmetrics column-shape and correlation similarity, clinical
  sign agreement and rule-violation rate, DCR 5th percentile, NNDR, MIA advantage and TPR at
  low FPR, copy chance rates, holdout match rate, the seed-row attack, SDMetrics DCR overfitting
  and disclosure protection, and the inference attack against a holdout control.
"""

from synllm.metrics import clinical, fidelity, leaks, privacy, utility  # noqa: F401 - declarations
from synllm.metrics.base import REGISTRY, Metric, Result, declarations, read_synthetic

__all__ = ["REGISTRY", "Metric", "Result", "declarations", "read_synthetic"]
