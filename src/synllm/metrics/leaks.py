"""Leaks a prompted generator can make: copies of real rows, membership of its seed rows, two
SDMetrics privacy checks and an attribute-inference attack against a holdout control.

A prompted model only ever sees the rows of its prompt (SEEDEx: ``n_seed_rows`` real train
rows), so the train-split attack of :mod:`synllm.metrics.privacy` (members = random train
rows) answers "no leak" by construction. These metrics look where a prompted model can leak.

Exact copies (rows compared on every card column, missing == missing, by
:func:`synllm.metrics.privacy.row_hashes`), each with its chance rate: the value that fresh
real rows reach through the data's own duplicate rows (diabetes has 3,854 duplicated rows):

- ``prompt_copy_rate``: share of synthetic rows equal to a real row shown in the prompt (0 when
  the prompt showed no real rows); chance ``prompt_copy_chance`` = share of real holdout rows
  equal to a prompt row.
- ``train_copy_rate``: share of synthetic rows equal to any train row (the same quantity as
  ``identifiability``, kept under its own name as the copy count of issue #14); chance
  ``train_copy_chance`` = share of real holdout rows equal to a train row.
- ``holdout_match_rate``: share of synthetic rows equal to a holdout row, which no generator
  saw; chance ``holdout_match_chance`` = share of train rows equal to a holdout row.

Seed-row membership attack (the in-context generation benchmark "Risk in context", arXiv
2507.17066): members = the distinct real rows shown in the prompt, non-members = a seeded sample of up to
``mia_sample / 2`` holdout rows (never shown to any generator) minus rows equal to a member;
score = minus the distance to the closest synthetic record (the encoding of
:class:`~synllm.metrics.privacy.MixedEncoder`, fitted on train). ``seed_mia_auc`` and the TPR
at FPR below 1 % / 0.1 % (:func:`~synllm.metrics.privacy.tpr_at_fpr`); the member and
non-member counts are in the ``privacy`` detail block. Fails (with its reason) when the
prompt showed no real rows.

SDMetrics (0.32) definitions, computed here with numpy / pandas group counts (importing
sdmetrics pulls in torch, and its pandas cross joins and per-row CAP loop cost seconds per
cell, see ``synllm.metrics.fidelity`` for the same choice); the tests check every value against
SDMetrics run directly on the same samples:

- ``DCROverfittingProtection``: ``dcr_closer_to_train`` = share of synthetic rows closer to
  train than to holdout (0.5 = no overfitting; ties count as closer to holdout), and its score
  ``dcr_overfitting_protection`` = min(2 (1 - share), 1). Train and holdout are sampled
  (seeded) to the same size, ``sdmetrics_sample`` rows each, so the two references are
  comparable; the synthetic table too when it is larger.
- ``DisclosureProtection`` (CAP attack): an attacker who knows a real train row's
  quasi-identifiers (dataset card ``privacy.quasi_identifiers``) guesses its sensitive column
  (card ``privacy.sensitive``) from the synthetic rows sharing those values.
  ``disclosure_protection`` is SDMetrics' score (1 = the attacker does no better than a
  uniform guess of the sensitive value), ``disclosure_risk`` = 1 - score. Numeric
  quasi-identifiers are matched on their exact values by default (setting ``disclosure_bins: null``): the attacker
  knows a patient's recorded age and BMI, and a copied record then gives its sensitive value
  away. With SDMetrics' own default of 10 equal-width bins the attack reads population-level
  associations and does not see a 5 % share of copied rows (measured on stroke: risk 0.836 with
  copies vs 0.838 without). When no synthetic row shares any real row's quasi-identifier values
  the CAP attack never applies (SDMetrics returns NaN): protection 1, risk 0, with a note.
  Real rows: a seeded sample of ``sdmetrics_sample`` train rows.

  The score compares the attack with a uniform guess (1 - 1 / #values of the sensitive
  column), so on an imbalanced sensitive column it reads the majority class as disclosure: on
  stroke (95 % zeros) copies of the prompt's rows and fresh rows score alike (issue #30).

Attribute inference against a control (:func:`inference`, Anonymeter's inference risk with
SDMetrics' zero-CAP attack): members = the distinct real rows the prompt showed, else a seeded
sample of ``sdmetrics_sample`` train rows; control = as many holdout rows (minus rows equal to
a member). ``inference_success`` / ``inference_success_control``: the attack's mean belief in
the true sensitive value on members / control (0 where no synthetic row shares the row's
quasi-identifiers); ``inference_risk`` = (success - control) / (1 - control), clipped to
[0, 1]. The control is what the table gives away about anyone from the population, so fresh
rows score near 0 and copies of the members near 1 on all three datasets (tests); with 5
prompt rows the risk moves in steps of about 0.2.

Without the prompt (a prompted cell scored without ``--prompt-json``) the metrics that need
its rows (:data:`PROMPT_NAMES`) fail as "not measured", never 0.

Score group: ``prompt_copy_rate`` and ``train_copy_rate`` enter Privacy (lower is better);
everything else here is reported only (the inference risk: see docs/privacy.md).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from synllm.cards import DatasetCard
from synllm.metrics.base import Result, declare, failed, ok
from synllm.metrics.privacy import (
    LOW_FPRS,
    MixedEncoder,
    mia,
    nn_distances,
    row_hashes,
    sample_rows,
    tpr_at_fpr,
)
from synllm.split import coerce_frame

declare(
    "prompt_copy_rate",
    "privacy",
    "privacy",
    "lower",
    (0, 1),
    "Share of synthetic rows equal to a real row shown in the prompt",
)
declare(
    "prompt_copy_chance",
    "privacy",
    None,
    "lower",
    (0, 1),
    "Chance level of prompt_copy_rate: share of real holdout rows equal to a prompt row",
)
declare(
    "train_copy_rate",
    "privacy",
    "privacy",
    "lower",
    (0, 1),
    "Share of synthetic rows equal to any train row",
)
declare(
    "train_copy_chance",
    "privacy",
    None,
    "lower",
    (0, 1),
    "Chance level of train_copy_rate: share of real holdout rows equal to a train row",
)
declare(
    "holdout_match_rate",
    "privacy",
    None,
    "lower",
    (0, 1),
    "Share of synthetic rows equal to a holdout row (a row no generator saw)",
)
declare(
    "holdout_match_chance",
    "privacy",
    None,
    "lower",
    (0, 1),
    "Chance level of holdout_match_rate: share of train rows equal to a holdout row",
)
declare(
    "seed_mia_auc",
    "privacy",
    None,
    "lower",
    (0, 1),
    "AUC of the seed-row membership attack (prompt rows vs unseen holdout rows)",
)
declare(
    "seed_mia_tpr_at_1pct_fpr",
    "privacy",
    None,
    "lower",
    (0, 1),
    "TPR of the seed-row membership attack at FPR < 1%",
)
declare(
    "seed_mia_tpr_at_0_1pct_fpr",
    "privacy",
    None,
    "lower",
    (0, 1),
    "TPR of the seed-row membership attack at FPR < 0.1%",
)
declare(
    "dcr_closer_to_train",
    "privacy",
    None,
    "lower",
    (0, 1),
    "SDMetrics DCROverfittingProtection: share of synthetic rows closer to train than holdout",
)
declare(
    "dcr_overfitting_protection",
    "privacy",
    None,
    "higher",
    (0, 1),
    "SDMetrics DCROverfittingProtection score",
)
declare(
    "disclosure_protection",
    "privacy",
    None,
    "higher",
    (0, 1),
    "SDMetrics DisclosureProtection (CAP) score for the card's quasi-identifiers",
)
declare("disclosure_risk", "privacy", None, "lower", (0, 1), "1 - disclosure_protection")
declare(
    "inference_success",
    "privacy",
    None,
    "lower",
    (0, 1),
    "Quasi-identifier attack's success on the real rows the generator saw (zero-CAP)",
)
declare(
    "inference_success_control",
    "privacy",
    None,
    "lower",
    (0, 1),
    "The same attack's success on holdout rows (the control: what the population gives away)",
)
declare(
    "inference_risk",
    "privacy",
    None,
    "lower",
    (0, 1),
    "Success above the control's, as a share of what the control leaves: "
    "(success - control) / (1 - control), 0 at or below the control",
)

COPY_NAMES = (
    "prompt_copy_rate",
    "prompt_copy_chance",
    "train_copy_rate",
    "train_copy_chance",
    "holdout_match_rate",
    "holdout_match_chance",
)
SEED_NAMES = ("seed_mia_auc",) + tuple(f"seed_mia_tpr_at_{k}_fpr" for k in LOW_FPRS)
SDM_NAMES = (
    "dcr_closer_to_train",
    "dcr_overfitting_protection",
    "disclosure_protection",
    "disclosure_risk",
)
INFERENCE_NAMES = ("inference_success", "inference_success_control", "inference_risk")
NAMES = COPY_NAMES + SEED_NAMES + SDM_NAMES + INFERENCE_NAMES
PROMPT_NAMES = ("prompt_copy_rate", "prompt_copy_chance") + SEED_NAMES + INFERENCE_NAMES
"""The metrics that need the prompt's real rows (fail as not measured without the prompt)."""


def prompt_rows(prompt: dict | None, card: DatasetCard) -> pd.DataFrame:
    """Typed real rows the prompt showed the generator (empty unless ``example_rows_real``)."""
    rows = (prompt or {}).get("example_rows") or []
    if (prompt or {}).get("example_rows_real") is not True or not rows:
        return coerce_frame(pd.DataFrame({c: [] for c in card.columns}, dtype=object), card)
    frame = pd.DataFrame([{c: r.get(c) for c in card.columns} for r in rows], dtype=object)
    return coerce_frame(frame, card).reset_index(drop=True)


def copy_rates(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    syn: pd.DataFrame,
    shown: pd.DataFrame,
    card: DatasetCard,
) -> dict[str, float]:
    """The six copy rates and chance rates of the module doc (``syn`` non-empty)."""
    h_syn, h_train = row_hashes(syn, card), row_hashes(train, card)
    h_hold = row_hashes(holdout, card)
    h_shown = row_hashes(shown, card) if len(shown) else np.array([], dtype=np.uint64)

    def share(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.isin(a, b).mean()) if len(a) else float("nan")

    return {
        "prompt_copy_rate": share(h_syn, h_shown),
        "prompt_copy_chance": share(h_hold, h_shown),
        "train_copy_rate": share(h_syn, h_train),
        "train_copy_chance": share(h_hold, h_train),
        "holdout_match_rate": share(h_syn, h_hold),
        "holdout_match_chance": share(h_train, h_hold),
    }


def seed_row_attack(
    enc: MixedEncoder,
    holdout: pd.DataFrame,
    syn: pd.DataFrame,
    shown: pd.DataFrame,
    card: DatasetCard,
    n_non_members: int,
    seed: int,
) -> tuple[dict[str, float], dict]:
    """Seed-row membership attack: (values by metric name, detail with the counts)."""
    h_shown = row_hashes(shown, card)
    _, first = np.unique(h_shown, return_index=True)
    members = shown.iloc[np.sort(first)]
    pool = holdout[~np.isin(row_hashes(holdout, card), h_shown)]
    non = pool.iloc[sample_rows(len(pool), n_non_members, seed)]
    if len(members) == 0 or len(non) == 0:
        raise ValueError("no members or no non-members for the seed-row attack")
    x_syn = enc.transform(syn)
    dm = nn_distances(x_syn, enc.transform(members), k=1)[:, 0]
    dn = nn_distances(x_syn, enc.transform(non), k=1)[:, 0]
    values = {"seed_mia_auc": mia(dm, dn)[0]}
    values.update({f"seed_mia_tpr_at_{k}_fpr": tpr_at_fpr(dm, dn, a) for k, a in LOW_FPRS.items()})
    detail = {
        "seed_mia_members": int(len(members)),
        "seed_mia_non_members": int(len(non)),
        "seed_mia_non_members_excluded": int(len(holdout) - len(pool)),
        "seed_mia_member_dcr_max": float(dm.max()),
        "seed_mia_members_copied": int((dm == 0).sum()),
    }
    return values, detail


def sdv_metadata(card: DatasetCard) -> dict:
    """SDMetrics single-table metadata from the card (numerics numerical, the rest categorical)."""
    return {
        "columns": {
            c: {"sdtype": "numerical" if spec.is_numeric else "categorical"}
            for c, spec in card.columns.items()
        }
    }


def _as_sdv(df: pd.DataFrame, card: DatasetCard) -> pd.DataFrame:
    """Plain dtypes SDMetrics handles: float64 numerics, object categoricals/binaries."""
    out = {}
    for c, spec in card.columns.items():
        if spec.is_numeric:
            out[c] = df[c].astype("float64")
        else:
            s = df[c].astype("string")
            out[c] = s.astype(object).where(s.notna(), np.nan)
    return pd.DataFrame(out).reset_index(drop=True)


def sdm_dcr(
    data: pd.DataFrame, reference: pd.DataFrame, card: DatasetCard, chunk: int = 256
) -> np.ndarray:
    """SDMetrics' ``calculate_dcr``: per ``data`` row the smallest mean over columns of
    |difference| / reference range (capped at 1; range 0 -> 0/1 for equal/different) for
    numerics, 0/1 mismatch for categoricals; one missing side -> 1, both missing -> 0."""
    d, r = _as_sdv(data, card), _as_sdv(reference, card)
    cols = list(card.columns)
    out = np.empty(len(d))
    for lo in range(0, len(d), chunk):
        part = d.iloc[lo : lo + chunk]
        total = np.zeros((len(part), len(r)))
        for c in cols:
            a, b = part[c].to_numpy(), r[c].to_numpy()
            if card.columns[c].is_numeric:
                a, b = a.astype(float)[:, None], b.astype(float)[None, :]
                rng = np.nanmax(b) - np.nanmin(b) if np.isfinite(b).any() else np.nan
                diff = np.abs(b - a)
                diff = (diff > 0).astype(float) if rng == 0 else np.minimum(diff / rng, 1.0)
                na_a, na_b = np.isnan(a), np.isnan(b)
            else:
                na_a = pd.isna(a)[:, None]
                na_b = pd.isna(b)[None, :]
                diff = (a[:, None] != b[None, :]).astype(float)
            diff = np.where(na_a ^ na_b, 1.0, diff)
            total += np.where(na_a & na_b, 0.0, diff)
        out[lo : lo + chunk] = (total / len(cols)).min(axis=1)
    return out


def dcr_overfitting(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    syn: pd.DataFrame,
    card: DatasetCard,
    n: int,
    seed: int,
) -> dict:
    """SDMetrics ``DCROverfittingProtection`` on seeded equal-size samples of train and holdout.

    Computed here with :func:`sdm_dcr` (numpy) instead of importing sdmetrics, whose import
    pulls in torch and whose pandas cross joins cost seconds per cell; the tests check both
    values against ``DCROverfittingProtection.compute_breakdown`` on the same samples.
    """
    k = min(n, len(train), len(holdout))
    tr = train.iloc[sample_rows(len(train), k, seed)]
    ho = holdout.iloc[sample_rows(len(holdout), k, seed + 1)]
    sy = syn.iloc[sample_rows(len(syn), n, seed + 2)]
    closer = float((sdm_dcr(sy, tr, card) < sdm_dcr(sy, ho, card)).mean())
    return {
        "score": min((1.0 - closer) * 2, 1.0),
        "closer_to_train": closer,
        "n_reference": int(k),
        "n_synthetic": int(len(sy)),
    }


_NULL = "__NULL_VALUE__"


def _cap_keys(real: pd.DataFrame, syn: pd.DataFrame, qi: list[str], bins: int | None):
    """SDMetrics' ``_discretize_and_fillna``: numeric quasi-identifiers in ``bins`` equal-width
    bins of the real range (outer edges open) when ``bins`` is set; missing -> own category."""
    real, syn = real.copy(), syn.copy()
    if bins is not None:
        labels = [str(x) for x in range(bins)]
        for c in qi:
            if pd.api.types.is_numeric_dtype(real[c]):
                r, edges = pd.cut(
                    pd.to_numeric(real[c].to_numpy()), bins, labels=labels, retbins=True
                )
                edges[0], edges[-1] = -np.inf, np.inf
                real[c] = r.to_numpy()
                syn[c] = pd.cut(pd.to_numeric(syn[c].to_numpy()), edges, labels=labels).to_numpy()
    for df in (real, syn):
        for c in df.columns:  # text keys: equal floats have equal repr, and merges stay typed
            df[c] = df[c].astype(object).where(df[c].notna(), _NULL).astype(str)
    return real, syn


def disclosure(
    train: pd.DataFrame,
    syn: pd.DataFrame,
    card: DatasetCard,
    n: int,
    seed: int,
    bins: int | None = None,
) -> dict:
    """SDMetrics ``DisclosureProtection`` (CAP) for the card's privacy block; ``bins`` = None
    matches numeric quasi-identifiers exactly, else SDMetrics' equal-width bins.

    CAP: for each real row whose quasi-identifiers occur in the synthetic table, the share of
    those synthetic rows that carry the real row's sensitive value; protection = 1 - mean
    share over such rows, score = min(protection / (1 - 1 / #sensitive values), 1). Computed
    with group counts here (SDMetrics loops over real rows in Python); the tests check it
    against ``DisclosureProtection.compute_breakdown``.
    """
    spec = card.privacy
    if spec is None:
        raise ValueError(f"dataset card {card.name!r} declares no privacy.quasi_identifiers")
    qi, sens = list(spec.quasi_identifiers), spec.sensitive
    real = _as_sdv(train.iloc[sample_rows(len(train), n, seed)], card)[qi + [sens]]
    r, sy = _cap_keys(real, _as_sdv(syn, card)[qi + [sens]], qi, bins)
    per_key = sy.groupby(qi, sort=False).size().rename("n_key").reset_index()
    per_val = sy.groupby(qi + [sens], sort=False).size().rename("n_val").reset_index()
    hit = r.merge(per_key, on=qi, how="inner").merge(per_val, on=qi + [sens], how="left")
    cap = 1.0 - float((hit["n_val"].fillna(0) / hit["n_key"]).mean()) if len(hit) else np.nan
    baseline = 1.0 - 1.0 / r[sens].nunique(dropna=False)
    score, note = (min(cap / baseline, 1.0) if baseline else np.nan), None
    if not np.isfinite(cap):
        score, note = 1.0, "no synthetic row shares a real row's quasi-identifier values"
    return {
        "score": float(score),
        "cap_protection": float(cap),
        "baseline_protection": float(baseline),
        "note": note,
        "n_matched": int(len(hit)),
        "quasi_identifiers": qi,
        "sensitive": sens,
        "bins": bins,
        "n_real": int(len(real)),
    }


def zero_cap_success(
    targets: pd.DataFrame, syn: pd.DataFrame, qi: list[str], sens: str
) -> np.ndarray:
    """Per target row (keys of :func:`_cap_keys`): the share of synthetic rows with its
    quasi-identifiers that carry its sensitive value, 0 when no synthetic row has them: the
    attacker's belief in SDMetrics' ``CategoricalZeroCAP`` (mean = 1 - its score)."""
    per_key = syn.groupby(qi, sort=False).size().rename("n_key").reset_index()
    per_val = syn.groupby(qi + [sens], sort=False).size().rename("n_val").reset_index()
    hit = (
        targets[qi + [sens]]
        .reset_index(drop=True)
        .merge(per_key, on=qi, how="left")
        .merge(per_val, on=qi + [sens], how="left")
    )
    return (hit["n_val"].fillna(0) / hit["n_key"]).fillna(0.0).to_numpy()


def inference(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    syn: pd.DataFrame,
    shown: pd.DataFrame,
    card: DatasetCard,
    n: int,
    seed: int,
    bins: int | None = None,
) -> dict:
    """Attribute inference against a control (Anonymeter's inference risk, the zero-CAP attack).

    An attacker who knows a real patient's quasi-identifiers guesses the sensitive value from
    the synthetic rows sharing them (belief = their share with the patient's value, 0 when
    none shares them: :func:`zero_cap_success`). Members are the real rows the generator saw:
    the distinct rows the prompt showed, else a seeded sample of ``n`` train rows. The
    control is a seeded sample of ``n`` holdout rows (never shown to any generator) minus rows
    equal to a member: the same attack's success on them is what the table gives away about
    anyone from this population (majority class, population-level associations, chance
    matches). Risk = (success - control) / (1 - control), clipped to [0, 1] (Anonymeter's
    normalisation), NaN when the control already reaches 1.
    """
    spec = card.privacy
    if spec is None:
        raise ValueError(f"dataset card {card.name!r} declares no privacy.quasi_identifiers")
    qi, sens = list(spec.quasi_identifiers), spec.sensitive
    if len(shown):
        h = row_hashes(shown, card)
        _, first = np.unique(h, return_index=True)
        members, who = shown.iloc[np.sort(first)], "prompt rows"
    else:
        members, who = train.iloc[sample_rows(len(train), n, seed)], "train sample"
    pool = holdout[~np.isin(row_hashes(holdout, card), row_hashes(members, card))]
    control = pool.iloc[sample_rows(len(pool), n, seed + 1)]
    if len(members) == 0 or len(control) == 0:
        raise ValueError("no members or no control rows for the inference attack")
    # one key frame for both sides: binned quasi-identifiers share the same edges
    both = _as_sdv(pd.concat([members, control], ignore_index=True), card)[qi + [sens]]
    keys, sy = _cap_keys(both, _as_sdv(syn, card)[qi + [sens]], qi, bins)
    belief = zero_cap_success(keys, sy, qi, sens)
    success, control_success = (
        float(belief[: len(members)].mean()),
        float(belief[len(members) :].mean()),
    )
    risk = (
        float(np.clip((success - control_success) / (1.0 - control_success), 0.0, 1.0))
        if control_success < 1.0
        else float("nan")
    )
    return {
        "success": success,
        "control_success": control_success,
        "risk": risk,
        "members": who,
        "n_members": int(len(members)),
        "n_control": int(len(control)),
        "quasi_identifiers": qi,
        "sensitive": sens,
        "bins": bins,
    }


def evaluate_leaks(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    syn: pd.DataFrame,
    card: DatasetCard,
    settings: dict,
    seed: int,
    shown: pd.DataFrame | None = None,
    unmeasured: str | None = None,
) -> tuple[list[Result], dict]:
    """Results of every metric in :data:`NAMES` (in that order) and a detail dict for the
    ``privacy`` block.

    ``shown``: typed real rows the prompt showed (:func:`prompt_rows`); None = none.
    ``unmeasured``: why the prompt's rows are unknown (a prompted cell scored without its
    prompt); the metrics of :data:`PROMPT_NAMES` then fail with it ("not measured"), never 0.
    """
    if len(syn) == 0:
        return [failed(n, "synthetic table is empty") for n in NAMES], {}
    if shown is None:
        shown = prompt_rows(None, card)
    detail: dict = {"prompt_rows_shown": None if unmeasured else int(len(shown))}
    results: list[Result] = []
    try:
        rates = copy_rates(train, holdout, syn, shown, card)
    except Exception as err:  # noqa: BLE001 - recorded per metric
        results += [failed(n, f"{type(err).__name__}: {err}") for n in COPY_NAMES]
    else:
        none_shown = "the prompt showed no real rows" if len(shown) == 0 else None
        for n in COPY_NAMES:
            if unmeasured and n in PROMPT_NAMES:
                results.append(failed(n, unmeasured))
            else:
                results.append(ok(n, rates[n], none_shown if n.startswith("prompt_") else None))

    if unmeasured:
        results += [failed(n, unmeasured) for n in SEED_NAMES]
    elif len(shown) == 0:
        results += [failed(n, "the prompt showed no real rows (no members)") for n in SEED_NAMES]
    else:
        try:
            enc = MixedEncoder(card).fit(train)
            values, more = seed_row_attack(
                enc, holdout, syn, shown, card, int(settings["mia_sample"]) // 2, seed + 4
            )
        except Exception as err:  # noqa: BLE001 - recorded per metric
            results += [failed(n, f"{type(err).__name__}: {err}") for n in SEED_NAMES]
        else:
            detail.update(more)
            results += [ok(n, values[n]) for n in SEED_NAMES]

    n_sdm = int(settings["sdmetrics_sample"])
    try:
        dcr = dcr_overfitting(train, holdout, syn, card, n_sdm, seed + 5)
    except Exception as err:  # noqa: BLE001 - recorded per metric
        reason = f"{type(err).__name__}: {err}"
        results += [
            failed("dcr_closer_to_train", reason),
            failed("dcr_overfitting_protection", reason),
        ]
    else:
        detail["dcr_overfitting"] = dcr
        results += [
            ok("dcr_closer_to_train", dcr["closer_to_train"]),
            ok("dcr_overfitting_protection", dcr["score"]),
        ]
    try:
        disc = disclosure(train, syn, card, n_sdm, seed + 6, settings.get("disclosure_bins"))
    except Exception as err:  # noqa: BLE001 - recorded per metric
        reason = f"{type(err).__name__}: {err}"
        results += [failed("disclosure_protection", reason), failed("disclosure_risk", reason)]
    else:
        detail["disclosure"] = disc
        results += [
            ok("disclosure_protection", disc["score"], disc["note"]),
            ok("disclosure_risk", 1.0 - disc["score"], disc["note"]),
        ]
    if unmeasured:
        return results + [failed(n, unmeasured) for n in INFERENCE_NAMES], detail
    try:
        inf = inference(
            train, holdout, syn, shown, card, n_sdm, seed + 7, settings.get("disclosure_bins")
        )
    except Exception as err:  # noqa: BLE001 - recorded per metric
        results += [failed(n, f"{type(err).__name__}: {err}") for n in INFERENCE_NAMES]
    else:
        detail["inference"] = inf
        note = f"members: {inf['n_members']} {inf['members']}, control: {inf['n_control']} holdout rows"
        results += [
            ok("inference_success", inf["success"], note),
            ok("inference_success_control", inf["control_success"], note),
            ok("inference_risk", inf["risk"], note),
        ]
    return results, detail
