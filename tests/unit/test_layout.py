"""The test tree has no packages (no __init__.py), so pytest imports each test file by its
basename: two files of the same name in different folders collide when one run collects both
(the slow tier collects tests/unit and tests/workflow together)."""

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_test_file_names_are_unique_across_the_tree():
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [n for n, k in names.items() if k > 1] == []
