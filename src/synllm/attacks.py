"""Anonymeter's privacy attacks on one cell, run in the pinned ``anonymeter`` environment.

Anonymeter (Giomi et al., PETS 2023; PyPI ``anonymeter``) pins ``numpy<1.27`` and
``pyarrow<22``, so it runs in ``envs/anonymeter.txt`` (:mod:`synllm.envs`) on the adapter
``synllm/adapters/anonymeter_attacks.py``. Three attacks, each against the train split
(``ori``: the patients the generator learnt from) with the holdout as control (patients it
never saw), so a risk is what the table leaks about training patients beyond what it tells
about the population:

- **singling out** (univariate predicates from the synthetic records that match exactly one
  patient),
- **linkability** (the card's quasi-identifiers and the other non-sensitive columns, as two
  tables an attacker links through the closest synthetic record),
- **inference** of the card's ``privacy.sensitive`` column from its quasi-identifiers.

Risk = (attack success - control success) / (1 - control success), clipped at 0, with its
95 % interval; 0 = no more than on unseen patients, 1 = every attack succeeds. Written per
cell by ``synllm anonymeter`` (rule ``anonymeter``) and carried into the cell's metrics JSON
(``privacy.anonymeter``) and ``table_privacy``; not part of the Privacy score (see
docs/privacy.md).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from synllm.cards import DatasetCard, load_card
from synllm.envs import python_for, run_adapter
from synllm.errors import ConfigError

ENV = "anonymeter"
ATTACKS = ("singling_out", "linkability", "inference")
FIELDS = ("risk", "ci_low", "ci_high")
"""Per attack, the numbers ``table_privacy`` shows (CSV: ``anonymeter_<attack>_<field>``)."""


def card_meta(card: DatasetCard, n_attacks: int, seed: int) -> dict:
    """The adapter's metadata: column kinds, quasi-identifiers, sensitive column, budget."""
    if card.privacy is None:
        raise ConfigError(
            f"dataset card {card.name!r}: field 'privacy' (quasi_identifiers, sensitive) is "
            "needed by the anonymeter attacks"
        )
    return {
        "dataset": card.name,
        "columns": {
            name: "numeric" if col.is_numeric else "categorical"
            for name, col in card.columns.items()
        },
        "quasi_identifiers": list(card.privacy.quasi_identifiers),
        "sensitive": card.privacy.sensitive,
        "n_attacks": int(n_attacks),
        "seed": int(seed),
    }


def _rows(path: Path) -> int:
    with open(path, encoding="utf-8") as fh:
        return max(sum(1 for line in fh if line.strip()) - 1, 0)


def run(
    card: DatasetCard,
    synthetic: Path,
    train: Path,
    holdout: Path,
    seed: int,
    n_attacks: int,
    stamp: Path | None = None,
) -> dict:
    """The three attacks on one synthetic CSV; a table without records is ``skipped``."""
    meta = card_meta(card, n_attacks, seed)
    doc = {"dataset": card.name, "env": ENV, "n_attacks": n_attacks, "seed": seed}
    if _rows(synthetic) == 0:
        return {**doc, "status": "skipped", "reason": "synthetic table has no rows"}
    python = python_for(ENV, stamp)
    with tempfile.TemporaryDirectory(prefix="synllm-anonymeter-") as tmp:
        meta_path, out = Path(tmp) / "meta.json", Path(tmp) / "out.json"
        meta_path.write_text(json.dumps(meta), encoding="utf-8")
        args = ["--train", str(train), "--control", str(holdout), "--synthetic", str(synthetic)]
        run_adapter(
            python, "anonymeter_attacks", [*args, "--meta", str(meta_path), "--out", str(out)], ENV
        )
        result = json.loads(out.read_text(encoding="utf-8"))
    return {**doc, "status": "ok", **result}


def table_fields(block: dict | None) -> dict[str, float]:
    """``anonymeter_<attack>_<field>`` -> value of a metrics file's ``privacy.anonymeter``."""
    out: dict[str, float] = {}
    if not isinstance(block, dict) or block.get("status") != "ok":
        return out
    for attack in ATTACKS:
        res = block.get(attack) or {}
        for field in FIELDS:
            v = res.get(field)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[f"anonymeter_{attack}_{field}"] = float(v)
    return out


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="synllm anonymeter", description=__doc__.splitlines()[0])
    p.add_argument("--card", required=True)
    p.add_argument("--synthetic", required=True, help="validated synthetic CSV of the cell")
    p.add_argument("--train", required=True, help="train split parquet (Anonymeter's ori)")
    p.add_argument("--holdout", required=True, help="holdout split parquet (the control)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-attacks", type=int, default=500)
    p.add_argument("--env-stamp", default=None, help="the workflow's stamp of the environment")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    card = load_card(a.card)
    doc = run(
        card,
        Path(a.synthetic),
        Path(a.train),
        Path(a.holdout),
        a.seed,
        a.n_attacks,
        Path(a.env_stamp) if a.env_stamp else None,
    )
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    if doc["status"] == "ok":
        risks = ", ".join(f"{k} {doc[k]['risk']:.3f}" for k in ATTACKS)
        print(f"{card.name} {Path(a.synthetic)}: {risks}")
    else:
        print(f"{card.name} {Path(a.synthetic)}: {doc['status']} ({doc['reason']})")
    return 0
