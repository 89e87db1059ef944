"""Regenerate tests/data/fixture_validation_counts.csv from the raw-output fixture corpus.

Runs the validator on every ``../shared/fixtures/raw_llm_outputs/<dataset>/<model>/prompt<N>.txt``
(dataset directory name = card name) and writes one row of counts per file. The test
``tests/unit/test_validate_fixtures.py`` asserts the committed table is reproduced exactly, so run
this on purpose after a parser change, and review the diff (lost records show up there):

    PYTHONPATH=src python scripts/update_fixture_counts.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from synllm.cards import find_card  # noqa: E402
from synllm.validate import REASONS, read_raw, validate_text  # noqa: E402

FIXTURES = ROOT / ".." / "shared" / "fixtures" / "raw_llm_outputs"
CARDS = ROOT / "resources" / "datasets"
OUT = ROOT / "tests" / "data" / "fixture_validation_counts.csv"
COLUMNS = (
    [
        "dataset",
        "model",
        "prompt",
        "candidate_lines",
        "parsed",
        "valid",
        "echoed_examples_removed",
        "echo_copied_in_output",
    ]
    + [f"rejected_{r}" for r in REASONS]
    + ["within_duplicates", "format_detected", "status"]
)


def fixture_files(fixtures: Path = FIXTURES) -> list[Path]:
    """All fixture text files, sorted (dataset/model/prompt)."""
    return sorted(fixtures.glob("*/*/*.txt"))


def count_row(path: Path, card) -> dict:
    """Validator counts for one fixture file (clinical rules: reject)."""
    _, rep = validate_text(read_raw(path), card)
    row = {
        "dataset": path.parent.parent.name,
        "model": path.parent.name,
        "prompt": path.stem,
        "candidate_lines": rep["candidate_lines"],
        "parsed": rep["parsed"],
        "valid": rep["valid"],
        "echoed_examples_removed": rep["echoed_examples_removed"],
        "echo_copied_in_output": rep["echo"]["copied_in_output"],
        "within_duplicates": rep["within_duplicates"],
        "format_detected": rep["format_detected"],
        "status": rep["status"],
    }
    row.update({f"rejected_{r}": rep["rejected"][r] for r in REASONS})
    return row


def fixture_counts(fixtures: Path = FIXTURES, cards_dir: Path = CARDS) -> pd.DataFrame:
    """One row per fixture file, columns ``COLUMNS``."""
    cards: dict = {}
    rows = []
    for p in fixture_files(fixtures):
        ds = p.parent.parent.name
        if ds not in cards:
            cards[ds] = find_card(ds, cards_dir)
        rows.append(count_row(p, cards[ds]))
    return pd.DataFrame(rows, columns=COLUMNS)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fixtures", default=str(FIXTURES))
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args(argv)
    df = fixture_counts(Path(a.fixtures))
    df.to_csv(a.out, index=False)
    print(f"{len(df)} files, {int(df['valid'].sum())} valid records -> {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
