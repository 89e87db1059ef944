"""Anonymeter's three attacks on one synthetic table; run by the ``anonymeter`` environment.

Imports anonymeter, pandas and pyarrow only (no synllm: this file is run by another
environment's Python). Reads, from the files named on the command line:

- ``--train``: the rows the generator was trained on (parquet; Anonymeter's ``ori``),
- ``--control``: rows it never saw (the holdout, parquet; Anonymeter's ``control``),
- ``--synthetic``: the validated synthetic table (CSV),
- ``--meta``: JSON from the dataset card: ``columns`` (name -> ``numeric`` / ``categorical``),
  ``quasi_identifiers``, ``sensitive``, ``n_attacks``, ``seed``;

and writes ``--out`` (JSON): for ``singling_out``, ``linkability`` and ``inference`` the risk
(``(attack - control) / (1 - control)`` success rate, clipped at 0 by Anonymeter), its 95 %
interval, the attack, baseline and control success rates and the number of attacks.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import warnings

import numpy as np
import pandas as pd


def _typed(df: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    out = {}
    for name, kind in columns.items():
        s = df[name]
        if kind == "numeric":
            out[name] = pd.to_numeric(s, errors="coerce").astype("float64")
        else:
            out[name] = s.astype("string").astype(object).where(s.notna(), None)
    return pd.DataFrame(out)


def _summary(evaluator, n_attacks: int) -> dict:
    risk = evaluator.risk(confidence_level=0.95)
    res = evaluator.results(confidence_level=0.95)
    return {
        "risk": float(risk.value),
        "ci_low": float(risk.ci[0]),
        "ci_high": float(risk.ci[1]),
        "attack_rate": float(res.attack_rate.value),
        "baseline_rate": float(res.baseline_rate.value),
        "control_rate": float(res.control_rate.value) if res.control_rate else None,
        "n_attacks": int(n_attacks),
    }


def attacks(
    train: pd.DataFrame, syn: pd.DataFrame, control: pd.DataFrame, meta: dict
) -> dict[str, dict]:
    from anonymeter.evaluators import (
        InferenceEvaluator,
        LinkabilityEvaluator,
        SinglingOutEvaluator,
    )

    columns = meta["columns"]
    ori, syn, control = (_typed(df, columns) for df in (train, syn, control))
    seed = int(meta["seed"])
    random.seed(seed)
    np.random.seed(seed % 2**32)
    # every attack needs as many control rows as it has targets
    n = int(min(meta["n_attacks"], len(control), len(ori)))
    qi, secret = list(meta["quasi_identifiers"]), meta["sensitive"]
    others = [c for c in columns if c not in qi and c != secret]
    out: dict[str, dict] = {}
    seconds: dict[str, float] = {}

    t0 = time.perf_counter()
    # a 20-record table cannot yield 500 distinct singling-out predicates: Anonymeter would try
    # its default 10 million times (minutes); the attacks it finds within this bound count
    so = SinglingOutEvaluator(
        ori=ori, syn=syn, control=control, n_attacks=n, max_attempts=20 * n, seed=seed
    )
    so.evaluate(mode="multivariate")
    out["singling_out"] = _summary(so, n)
    seconds["singling_out"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    link = LinkabilityEvaluator(
        ori=ori, syn=syn, control=control, n_attacks=n, aux_cols=(qi, others), n_neighbors=1
    )
    link.evaluate(n_jobs=1)
    out["linkability"] = _summary(link, n)
    seconds["linkability"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    inf = InferenceEvaluator(
        ori=ori,
        syn=syn,
        control=control,
        aux_cols=qi,
        secret=secret,
        regression=columns[secret] == "numeric",
        n_attacks=n,
    )
    inf.evaluate(n_jobs=1)
    out["inference"] = _summary(inf, n)
    seconds["inference"] = time.perf_counter() - t0
    out["seconds"] = {k: round(v, 3) for k, v in seconds.items()}
    return out


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("--train", "--control", "--synthetic", "--meta", "--out"):
        p.add_argument(name, required=True)
    a = p.parse_args(argv)
    meta = json.loads(open(a.meta, encoding="utf-8").read())
    train = pd.read_parquet(a.train)
    control = pd.read_parquet(a.control)
    syn = pd.read_csv(a.synthetic, dtype=str, keep_default_na=False, na_values=[""])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = attacks(train, syn, control, meta)
    result["warnings"] = sorted({str(w.message).splitlines()[0] for w in caught})
    result["inputs"] = {"ori": a.train, "control": a.control, "synthetic": a.synthetic}
    result["versions"] = {"anonymeter": _version("anonymeter"), "pandas": pd.__version__}
    with open(a.out, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2)
        fh.write("\n")
    return 0


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
