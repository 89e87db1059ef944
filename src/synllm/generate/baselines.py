"""Non-LLM reference generators, run as grid "models" (backend ``baseline``, prompt ``none``).

Each baseline produces a synthetic table of ``n_records`` rows from the real splits and writes
it as NDJSON raw text (one JSON object per line, card column order, missing -> ``null``) so
the validator and every metric treat it exactly like a model's output:

- ``holdout``: real holdout rows sampled without replacement (all of them when there are fewer
  than ``n_records``). The upper reference: what a perfect generator that never saw the
  training rows would score.
- ``marginals``: every column sampled independently from the train split's empirical marginal
  (missing values included). Perfect marginals, no dependence between columns: the lower
  reference for correlation/ML-utility metrics.
- ``copula``: a Gaussian copula on the train split with empirical margins (own code on
  numpy/scipy, see :func:`fit_copula`). Keeps marginals and the (rank) correlation structure.
- ``uniform``: every column drawn independently and uniformly over the card's plausible range
  (numerics; integers for ``int``) or its categories (categoricals; 0/1 for binaries), no
  missing values. Knows nothing of the data: the worst reference of quality and utility for
  ``scores.normalisation: anchored``.
- ``train_copy``: real train rows sampled without replacement. A table of verbatim copies: the
  worst reference of privacy for ``scores.normalisation: anchored``.

Design decision (copula): the ``copulas`` package (installed as an sdmetrics dependency) was
not used: it needs all-numeric frames without missing values and fits parametric margins
(slow distribution search, no exact inversion). The distributional transform below handles
ties, categoricals and missingness in one pass, inverts exactly through the empirical
quantiles and fits the 80k-row diabetes train split in well under a second.

The pure functions (:func:`sample_holdout`, :func:`sample_marginals`, :func:`fit_copula`,
:func:`sample_copula`, :func:`to_ndjson`) take data frames typed as
:func:`synllm.split.read_split` returns them; :func:`create` gives the generate backend.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

from synllm.cards import DatasetCard
from synllm.errors import ConfigError, DataError
from synllm.generate.base import BackendStats, GenerationContext, GenerationSettings
from synllm.split import read_split, to_card_dtypes, to_records

KINDS = ("holdout", "marginals", "copula", "uniform", "train_copy")
_HERMITE_ORDER = 40  # terms of Mehler's expansion used to de-attenuate correlations
_EPS = 1e-9  # keeps normal scores finite: u is clipped to [_EPS, 1 - _EPS]


# -- the three generators -----------------------------------------------------------------


def sample_holdout(holdout: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """``min(n, len(holdout))`` holdout rows drawn without replacement (seeded), index reset."""
    if n < 0:
        raise ConfigError(f"n_records must be >= 0, got {n}")
    k = min(n, len(holdout))
    return holdout.sample(n=k, replace=False, random_state=seed).reset_index(drop=True)


def sample_marginals(train: pd.DataFrame, card: DatasetCard, n: int, seed: int) -> pd.DataFrame:
    """``n`` rows, each column drawn i.i.d. with replacement from its train values (incl. NaN).

    Columns use independent child seeds of ``seed``, so the result is reproducible and the
    columns are independent of each other. Dtypes follow the card.
    """
    _check_train(train, card)
    rng = np.random.default_rng(seed)
    out = {}
    for name in card.feature_names:
        values = train[name].to_numpy(dtype=object)
        out[name] = values[rng.integers(0, len(values), size=n)]
    return to_card_dtypes(pd.DataFrame(out), card)


def sample_uniform(card: DatasetCard, n: int, seed: int) -> pd.DataFrame:
    """``n`` rows, each column independent and uniform over the card's range / categories.

    ``int`` columns take integers in ``[lo, hi]``, ``float`` columns reals in ``[lo, hi)``,
    binaries 0/1 and categoricals one of the card's categories, each with equal probability.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for name in card.feature_names:
        spec = card.columns[name]
        if spec.type == "categorical":
            out[name] = rng.choice(np.array(spec.categories, dtype=object), size=n)
        elif spec.type == "binary":
            out[name] = rng.integers(0, 2, size=n)
        else:
            lo, hi = spec.range
            if spec.type == "int":
                out[name] = rng.integers(int(np.ceil(lo)), int(np.floor(hi)) + 1, size=n)
            else:
                out[name] = rng.uniform(lo, hi, size=n)
    return to_card_dtypes(pd.DataFrame(out, columns=list(card.feature_names)), card)


@dataclass(frozen=True)
class ColumnMargin:
    """Empirical margin of one column as ordered levels with CDF breakpoints.

    ``levels`` (length L) are the distinct values in the copula's order (missing first for
    numerics; categoricals by descending frequency, missing ranked like a category);
    ``cdf`` (length L + 1) holds 0 = F_0 <= F_1 <= ... <= F_L = 1, level i owning [F_i, F_i+1).
    """

    levels: np.ndarray
    cdf: np.ndarray


@dataclass(frozen=True)
class GaussianCopula:
    """Fitted Gaussian copula: per-column margins and the correlation of the normal scores."""

    columns: tuple[str, ...]
    margins: tuple[ColumnMargin, ...]
    corr: np.ndarray  # (d, d) correlation matrix of the normal scores


def column_margin(s: pd.Series, numeric: bool) -> ColumnMargin:
    """Ordered levels and CDF breakpoints of one column (missing kept as a level, ``None``).

    Numeric (and binary) columns order levels by value with missing first (below every value);
    categorical columns order by descending frequency (ties by name), missing included.
    """
    missing = s.isna().to_numpy()
    n = len(s)
    if n == 0:
        raise DataError(f"column {s.name!r}: cannot fit a margin on an empty column")
    observed = s[~missing]
    if numeric:
        vc = observed.astype("float64").value_counts().sort_index()
        levels = list(vc.index.to_numpy(dtype="float64"))
        counts = list(vc.to_numpy())
        if missing.any():
            levels = [None] + levels
            counts = [int(missing.sum())] + counts
    else:
        vc = s.astype(object).where(~missing, "\x00missing").value_counts()
        order = sorted(vc.items(), key=lambda kv: (-kv[1], str(kv[0])))
        levels = [None if k == "\x00missing" else k for k, _ in order]
        counts = [c for _, c in order]
    cdf = np.concatenate([[0.0], np.cumsum(counts) / n])
    cdf[-1] = 1.0
    return ColumnMargin(levels=np.array(levels, dtype=object), cdf=cdf)


def level_codes(s: pd.Series, margin: ColumnMargin, numeric: bool) -> np.ndarray:
    """Index of each value of ``s`` in ``margin.levels`` (shape (n,), int)."""
    levels = margin.levels.tolist()
    missing = s.isna().to_numpy()
    codes = np.empty(len(s), dtype=np.int64)
    if missing.any():
        codes[missing] = levels.index(None)
    known = [lv for lv in levels if lv is not None]
    pos = np.array([levels.index(lv) for lv in known], dtype=np.int64)
    observed = s[~missing]
    if numeric:
        idx = np.searchsorted(
            np.asarray(known, dtype="float64"), observed.to_numpy(dtype="float64")
        )
    else:
        idx = pd.Categorical(observed.astype(object), categories=known).codes.astype(np.int64)
    if len(idx) and (idx.min() < 0 or idx.max() >= len(known)):
        raise DataError(f"column {s.name!r}: value outside the fitted margin")
    codes[~missing] = pos[idx]
    return codes


def hermite_coefficients(margin: ColumnMargin, order: int = _HERMITE_ORDER) -> np.ndarray:
    """c_k = E[g(Z) He_k(Z)] / sqrt(k!), k = 1..order, for g(Z) = E[Z | level of Z].

    ``g`` is the jittered normal score's conditional mean: for the level owning [a, b] in
    z-space, m = (phi(a) - phi(b)) / p. Because d/dz[He_(k-1) phi] = -He_k phi,
    E[g(Z) He_k(Z)] = sum over levels of m * (He_(k-1)(a) phi(a) - He_(k-1)(b) phi(b)).
    Mehler's formula then gives corr(Z~_i, Z~_j) = sum_k rho^k c_k(i) c_k(j) for latent
    correlation rho. Shape (order,). For a continuous column c_1 ~ 1 and the rest ~ 0.
    """
    p = np.diff(margin.cdf)
    keep = p > 0
    edges = stats.norm.ppf(np.clip(margin.cdf, 0.0, 1.0))  # -inf .. +inf
    finite = np.isfinite(edges)
    x = np.where(finite, edges, 0.0)
    phi = np.where(finite, stats.norm.pdf(x), 0.0)
    m = np.zeros_like(p)
    m[keep] = (phi[:-1] - phi[1:])[keep] / p[keep]
    coef = np.empty(order)
    he_prev, he = np.zeros_like(x), np.ones_like(x)  # He_-1 (unused), He_0
    log_fact = 0.0
    for k in range(1, order + 1):
        t = he * phi  # He_(k-1)(edge) * phi(edge)
        log_fact += np.log(k)
        coef[k - 1] = float(np.sum(m * (t[:-1] - t[1:]))) / np.exp(0.5 * log_fact)
        he_prev, he = he, x * he - (k - 1) * he_prev  # He_k
    return coef


def latent_correlation(r: float, ci: np.ndarray, cj: np.ndarray) -> float:
    """Latent rho with sum_k rho^k ci_k cj_k = r (the observed jittered-score correlation).

    The map is increasing for ordered levels; r outside its range on [-0.999, 0.999] is
    clipped to the nearest end.
    """
    w = ci * cj

    def f(rho: float) -> float:
        return float(np.polynomial.polynomial.polyval(rho, np.concatenate([[0.0], w]))) - r

    lo, hi = -0.999, 0.999
    if f(lo) >= 0:
        return lo
    if f(hi) <= 0:
        return hi
    return float(optimize.brentq(f, lo, hi, xtol=1e-6))


def fit_copula(
    train: pd.DataFrame, card: DatasetCard, seed: int, correct_attenuation: bool = True
) -> GaussianCopula:
    """Fit a Gaussian copula with empirical margins on ``train`` (rows, card columns).

    Each value is mapped to a uniform score by the distributional transform
    u = F(v-) + U * (F(v) - F(v-)), U ~ Uniform(0, 1) (seeded): continuous columns get their
    scaled ranks, tied values, categories (frequency order) and missing values get a uniform
    jitter inside their CDF interval. The normal scores z = Phi^-1(u) give the (d, d)
    correlation matrix. Jitter attenuates the correlation of discrete columns (a 8.5 %
    binary keeps ~0.3 of it), and sampling through discrete margins attenuates it again;
    with ``correct_attenuation`` each entry is replaced by the latent correlation that
    reproduces it under the model (:func:`latent_correlation`, a polychoric/polyserial-style
    estimate via Mehler's expansion), so sampled tables keep the real Pearson correlations
    of binary/categorical columns. The matrix is finally repaired to the nearest
    positive-definite correlation matrix if needed.
    """
    _check_train(train, card)
    rng = np.random.default_rng(seed)
    margins, scores = [], []
    for name in card.feature_names:
        numeric = card.columns[name].type != "categorical"
        m = column_margin(train[name], numeric)
        codes = level_codes(train[name], m, numeric)
        lo, hi = m.cdf[codes], m.cdf[codes + 1]
        u = np.clip(lo + rng.random(len(codes)) * (hi - lo), _EPS, 1 - _EPS)
        margins.append(m)
        scores.append(stats.norm.ppf(u))
    z = np.column_stack(scores)
    corr = np.corrcoef(z, rowvar=False) if len(z) > 1 else np.eye(z.shape[1])
    corr = np.nan_to_num(corr, nan=0.0)
    if correct_attenuation:
        coefs = [hermite_coefficients(m) for m in margins]
        d = len(margins)
        for i in range(d):
            for j in range(i + 1, d):
                corr[i, j] = corr[j, i] = latent_correlation(corr[i, j], coefs[i], coefs[j])
    corr = _nearest_correlation(corr)
    return GaussianCopula(columns=tuple(card.feature_names), margins=tuple(margins), corr=corr)


def sample_copula(model: GaussianCopula, card: DatasetCard, n: int, seed: int) -> pd.DataFrame:
    """``n`` rows from a fitted copula: z ~ N(0, corr), u = Phi(z), level = F^-1(u) per column."""
    rng = np.random.default_rng(seed)
    d = len(model.columns)
    chol = np.linalg.cholesky(model.corr)
    z = rng.standard_normal((n, d)) @ chol.T
    u = stats.norm.cdf(z)
    out = {}
    for j, (name, m) in enumerate(zip(model.columns, model.margins)):
        idx = np.searchsorted(m.cdf, u[:, j], side="right") - 1
        idx = np.clip(idx, 0, len(m.levels) - 1)
        out[name] = m.levels[idx]
    return to_card_dtypes(pd.DataFrame(out, columns=list(model.columns)), card)


def generate_table(
    kind: str,
    card: DatasetCard,
    train: pd.DataFrame,
    holdout: pd.DataFrame | None,
    n: int,
    seed: int,
) -> pd.DataFrame:
    """Synthetic table of baseline ``kind`` (one of :data:`KINDS`), card dtypes."""
    if kind == "holdout":
        if holdout is None:
            raise ConfigError("baseline 'holdout' needs the holdout split (--holdout)")
        return sample_holdout(holdout, n, seed)
    if kind == "marginals":
        return sample_marginals(train, card, n, seed)
    if kind == "uniform":
        return sample_uniform(card, n, seed)
    if kind == "train_copy":
        _check_train(train, card)
        return sample_holdout(train, n, seed)
    if kind == "copula":
        fit_seed, sample_seed = np.random.SeedSequence(seed).generate_state(2)
        return sample_copula(fit_copula(train, card, int(fit_seed)), card, n, int(sample_seed))
    raise ConfigError(f"models: unknown baseline kind {kind!r} (known: {', '.join(KINDS)})")


def to_ndjson(df: pd.DataFrame, card: DatasetCard) -> str:
    """One JSON object per line in card column order; NaN/NA -> null; ints as ints."""
    lines = [json.dumps(rec, ensure_ascii=False) for rec in to_records(df, card)]
    return "\n".join(lines) + ("\n" if lines else "")


# -- helpers ------------------------------------------------------------------------------


def _isna(v) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))


def _check_train(train: pd.DataFrame, card: DatasetCard) -> None:
    missing = [c for c in card.feature_names if c not in train.columns]
    if missing:
        raise DataError(f"dataset {card.name!r}: train split lacks column(s) {missing}")
    if len(train) == 0:
        raise DataError(f"dataset {card.name!r}: train split is empty")


def _nearest_correlation(c: np.ndarray, floor: float = 1e-8) -> np.ndarray:
    """Clip eigenvalues at ``floor`` and rescale to unit diagonal (no-op for a PD matrix)."""
    c = (c + c.T) / 2
    np.fill_diagonal(c, 1.0)
    w, v = np.linalg.eigh(c)
    if w.min() > floor:
        return c
    c = (v * np.maximum(w, floor)) @ v.T
    d = np.sqrt(np.diag(c))
    c = c / np.outer(d, d)
    np.fill_diagonal(c, 1.0)
    return c


# -- generate backend ---------------------------------------------------------------------


class BaselineBackend:
    """Backend ``baseline``: ``load`` reads the splits, ``generate`` returns one NDJSON chunk.

    Unbatched (called once with the full ``n_records``); no prompt, no tokens.
    """

    name = "baseline"
    batched = False

    def __init__(self) -> None:
        self.stats = BackendStats(device="cpu", quantization="none", constrained=False)
        self.kind: str | None = None
        self.card: DatasetCard | None = None
        self.train: pd.DataFrame | None = None
        self.holdout: pd.DataFrame | None = None
        self.fit_seconds = 0.0

    def load(self, spec, settings: GenerationSettings, context: GenerationContext) -> None:
        """Read train (and holdout for ``kind: holdout``) as the card types them."""
        if spec.kind not in KINDS:
            raise ConfigError(f"models: {spec.slug!r}: field 'kind' must be one of {KINDS}")
        if context.train_path is None:
            raise ConfigError(f"models: baseline {spec.slug!r} needs the train split (--train)")
        self.kind, self.card = spec.kind, context.card
        self.train = read_split(context.train_path, context.card)
        if spec.kind == "holdout":
            if context.holdout_path is None:
                raise ConfigError(
                    f"models: baseline {spec.slug!r} needs the holdout split (--holdout)"
                )
            self.holdout = read_split(context.holdout_path, context.card)
        self.stats.extra["baseline_kind"] = spec.kind

    def generate(
        self,
        system: str,
        user: str,
        n_records: int,
        seed: int,
        settings: GenerationSettings,
        schema: dict | None,
    ) -> list[str]:
        """One chunk of NDJSON with ``n_records`` rows (fewer for a small holdout)."""
        assert self.card is not None and self.train is not None and self.kind is not None
        t0 = time.perf_counter()
        df = generate_table(self.kind, self.card, self.train, self.holdout, n_records, seed)
        self.fit_seconds = time.perf_counter() - t0
        self.stats.calls += 1
        self.stats.extra["generate_seconds"] = round(self.fit_seconds, 4)
        self.stats.extra["n_generated"] = int(len(df))
        if len(df) < n_records:
            self.stats.warnings.append(
                f"baseline {self.kind}: only {len(df)} rows available, {n_records} requested"
            )
        return [to_ndjson(df, self.card)]

    def count_tokens(self, text: str) -> int:
        """Baselines use no tokenizer: 0."""
        return 0


def create() -> BaselineBackend:
    """Entry point used by :func:`synllm.generate.base.get_backend`."""
    return BaselineBackend()
