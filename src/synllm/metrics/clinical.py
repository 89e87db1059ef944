"""Clinical consistency: do the card's clinical relations and rules hold in the synthetic data?

For each relation in ``card.relations`` the same value is computed on real train and on the
synthetic table:

- ``mean_difference``: mean(feature | by == groups[0]) - mean(feature | by == groups[1])
  (default groups [1, 0]); its deviation is ``|d_syn - d_real| / sd_real(feature)`` (ddof=1),
  i.e. in real standard deviations of the feature;
- ``correlation``: Spearman rho(feature, by) on pairwise-complete rows; its deviation is
  ``|rho_syn - rho_real|``.

``clinical_consistency`` (lower is better, feeds Quality) is the mean deviation over the
relations defined on both tables (a relation is undefined when a group is empty or a column
is constant; those are named in the note). ``clinical_sign_agreement`` is the share of
defined relations whose synthetic value has the card's ``expected`` sign.
``rule_violation_rate`` is the share of synthetic rows that break at least one
``card.rules`` entry (``if`` true and ``then`` false; rows where either is missing do not
count); the validator may already have rejected such rows, the rate is reported anyway.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from synllm.cards import DatasetCard, Relation, Rule
from synllm.metrics.base import Result, declare, failed, ok, once

declare(
    "clinical_consistency",
    "clinical",
    "quality",
    "lower",
    (0, None),
    "Mean scaled deviation of the card's clinical relations, synthetic vs real",
)
declare(
    "clinical_sign_agreement",
    "clinical",
    None,
    "higher",
    (0, 1),
    "Share of clinical relations whose synthetic value has the expected sign",
)
declare(
    "rule_violation_rate",
    "clinical",
    None,
    "lower",
    (0, 1),
    "Share of synthetic rows breaking at least one clinical rule of the card",
)


def group_mask(s: pd.Series, value) -> pd.Series:
    """Rows where column ``s`` equals the group ``value`` (compared as strings)."""
    return s.astype("string").eq(str(value)).fillna(False).astype(bool)


def relation_value(df: pd.DataFrame, rel: Relation) -> float:
    """The relation's value on one table; raises ValueError when undefined."""
    if rel.kind == "mean_difference":
        g1, g0 = rel.groups if rel.groups is not None else (1, 0)
        x = pd.to_numeric(df[rel.feature], errors="coerce").astype("float64")
        a = x[group_mask(df[rel.by], g1)].dropna()
        b = x[group_mask(df[rel.by], g0)].dropna()
        if a.empty or b.empty:
            empty = g1 if a.empty else g0
            raise ValueError(f"no rows with {rel.by} == {empty!r} and {rel.feature} present")
        return float(a.mean() - b.mean())
    x = pd.to_numeric(df[rel.feature], errors="coerce").astype("float64")
    y = pd.to_numeric(df[rel.by], errors="coerce").astype("float64")
    keep = x.notna() & y.notna()
    if keep.sum() < 3 or x[keep].nunique() < 2 or y[keep].nunique() < 2:
        raise ValueError(f"Spearman rho({rel.feature}, {rel.by}) undefined (constant or < 3 rows)")
    return float(stats.spearmanr(x[keep], y[keep]).statistic)


def relation_deviation(
    real_value: float,
    syn_value: float,
    rel: Relation,
    real: pd.DataFrame,
    memo: dict | None = None,
) -> float:
    """Scaled deviation: mean differences in real SDs of the feature, correlations absolute."""
    if rel.kind == "mean_difference":
        sd = once(
            memo,
            ("sd", rel.feature),
            lambda: float(
                pd.to_numeric(real[rel.feature], errors="coerce").astype("float64").std(ddof=1)
            ),
        )
        if not sd > 0:
            raise ValueError(f"real {rel.feature} has zero standard deviation")
        return abs(syn_value - real_value) / sd
    return abs(syn_value - real_value)


def rule_violations(df: pd.DataFrame, rule: Rule) -> np.ndarray:
    """Boolean array (n,): rows where ``if`` holds and ``then`` does not (missing -> False)."""
    if df.empty:
        return np.zeros(0, dtype=bool)
    cond = pd.Series(df.eval(rule.if_), index=df.index).astype("boolean").fillna(False)
    then = pd.Series(df.eval(rule.then), index=df.index).astype("boolean").fillna(True)
    return (cond & ~then).to_numpy(dtype=bool)


def evaluate_clinical(
    real: pd.DataFrame, syn: pd.DataFrame, card: DatasetCard, reference: dict | None = None
) -> tuple[list[Result], dict]:
    """Clinical-consistency results and a detail dict (relations, rules).

    ``reference``: a dict kept by a caller that scores several tables against the same
    ``real`` (the bootstrap); the real side (relation values, SDs, rule rates) is computed
    once into it, with the values of a call without it."""
    rels: list[dict] = []
    devs: list[float] = []
    signs: list[float] = []
    undefined: list[str] = []
    for i, rel in enumerate(card.relations):
        row: dict = {
            "id": rel.id,
            "kind": rel.kind,
            "feature": rel.feature,
            "by": rel.by,
            "expected": rel.expected,
            "real": None,
            "synthetic": None,
            "deviation": None,
            "sign_ok": None,
            "status": "ok",
            "reason": None,
        }
        try:
            row["real"] = once(
                reference, ("relation", i), lambda rel=rel: relation_value(real, rel)
            )
            row["synthetic"] = relation_value(syn, rel)
            row["deviation"] = relation_deviation(
                row["real"], row["synthetic"], rel, real, reference
            )
        except Exception as err:  # noqa: BLE001 - recorded per relation
            row["status"], row["reason"] = "failed", f"{type(err).__name__}: {err}"
            undefined.append(rel.id)
        else:
            want = 1.0 if rel.expected == "positive" else -1.0
            row["sign_ok"] = bool(np.sign(row["synthetic"]) == want)
            devs.append(row["deviation"])
            signs.append(float(row["sign_ok"]))
        rels.append(row)

    note = f"undefined relation(s): {undefined}" if undefined else None
    results: list[Result] = []
    if not card.relations:
        results.append(failed("clinical_consistency", "the card declares no relations"))
        results.append(failed("clinical_sign_agreement", "the card declares no relations"))
    elif not devs:
        results.append(failed("clinical_consistency", f"every relation undefined: {undefined}"))
        results.append(failed("clinical_sign_agreement", f"every relation undefined: {undefined}"))
    else:
        results.append(ok("clinical_consistency", float(np.mean(devs)), note))
        results.append(ok("clinical_sign_agreement", float(np.mean(signs)), note))

    rules: list[dict] = []
    any_bad = np.zeros(len(syn), dtype=bool)
    rule_error = None
    for i, rule in enumerate(card.rules):
        try:
            bad = rule_violations(syn, rule)
            real_rate = once(
                reference,
                ("rule", i),
                lambda rule=rule: float(rule_violations(real, rule).mean()) if len(real) else None,
            )
        except Exception as err:  # noqa: BLE001 - a broken rule expression fails the metric
            rule_error = f"rule {rule.id!r}: {type(err).__name__}: {err}"
            rules.append({"id": rule.id, "status": "failed", "reason": rule_error})
            continue
        any_bad |= bad
        rules.append(
            {
                "id": rule.id,
                "violations": int(bad.sum()),
                "rate": float(bad.mean()) if len(bad) else None,
                "real_rate": real_rate,
                "status": "ok",
            }
        )
    if rule_error:
        results.append(failed("rule_violation_rate", rule_error))
    elif not card.rules:
        results.append(ok("rule_violation_rate", 0.0, "the card declares no rules"))
    elif len(syn) == 0:
        results.append(failed("rule_violation_rate", "synthetic table is empty"))
    else:
        results.append(ok("rule_violation_rate", float(any_bad.mean())))
    return results, {"relations": rels, "rules": rules}
