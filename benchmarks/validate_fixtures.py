"""Benchmark: validate every raw-output fixture file (~16 MB, 194 files) and print the speed.

    PYTHONPATH=src python benchmarks/validate_fixtures.py [--repeat 1]

Prints total seconds (parse + coerce + checks, reading files excluded), MB/s and records/s
(records = parsed candidates). Target: < 20 s on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from synllm.cards import find_card  # noqa: E402
from synllm.validate import read_raw, validate_text  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--fixtures", default=str(ROOT / ".." / "shared" / "fixtures" / "raw_llm_outputs")
    )
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args(argv)
    files = sorted(Path(a.fixtures).glob("*/*/*.txt"))
    cards = {
        d: find_card(d, ROOT / "resources" / "datasets")
        for d in {p.parent.parent.name for p in files}
    }
    texts = [(cards[p.parent.parent.name], read_raw(p)) for p in files]
    mb = sum(len(t.encode()) for _, t in texts) / 1e6
    best = float("inf")
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        parsed = valid = 0
        for card, text in texts:
            _, rep = validate_text(text, card)
            parsed += rep["parsed"]
            valid += rep["valid"]
        best = min(best, time.perf_counter() - t0)
    print(
        f"files={len(files)} MB={mb:.1f} seconds={best:.2f} MB/s={mb / best:.2f} "
        f"parsed={parsed} valid={valid} records/s={parsed / best:.0f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
