"""Validate raw LLM output: parse records in any format, type them by the card, check them.

``validate_text(text, card, ...)`` returns the typed synthetic table (exactly the card's
columns, card order; ``int``/``binary`` as ``Int64``, ``float`` as ``float64``, categorical as
strings) and a report dict (see docs/architecture.md, "Validation report").

Accounting of one output (all counts are records unless named otherwise)::

    candidate_lines = parse_error + parsed            (generated side only)
    parsed          = echo_copied + rejected[missing_field, type, range, category,
                      clinical_rule, duplicate] + valid + dropped_over_n_records

Records inside the echoed prompt are never candidates; ``echoed_examples_removed`` counts
them (``echo.in_prompt``) plus generated records equal (after coercion) to an example row
that is not a real patient (``echo.copied_in_output``: hand-written examples of the authors'
prompts, found in the echoed prompt text, or rows of a prompt JSON without
``example_rows_real``). A generated record equal to a real example row (prompt JSON
``example_rows_real: true``, our SEEDEx) is a leak, not an echo: it stays in the table and is
counted (``prompt_copies``, rows in ``prompt_copy_rows``). Within-output duplicates are KEPT
and counted (``within_duplicates``) unless ``duplicates="reject"``; exact copies of train rows
are kept and flagged (``train_duplicates``, a privacy signal). Clinical rules from
``card.rules`` (``if`` -> ``then``, pandas eval) either reject the record or only flag it.

Zero valid records is a result: an empty table and ``status: "empty"``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from synllm.cards import Column, DatasetCard, load_card
from synllm.cellargs import per_cell_args
from synllm.errors import ConfigError, DataError, SynllmError
from synllm.parsing import Candidate, norm_category, parse_text
from synllm.protocol import PROTOCOLS

REASONS = (
    "parse_error",
    "missing_field",
    "type",
    "range",
    "category",
    "clinical_rule",
    "duplicate",
)
_FIELD_REASONS = ("missing_field", "type", "range", "category")
MAX_EXAMPLES = 3
COMMON_MISSING = {
    "",
    "na",
    "n/a",
    "nan",
    "null",
    "none",
    "nil",
    "-",
    "--",
    "?",
    "missing",
    "unknown",
    "not available",
    "not recorded",
    "<na>",
    "undefined",
}
_NUM_RE = (
    r"^([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*"
    r"(?:[A-Za-z%\u00b5\u03bc\u00b0/^\u00b2\u00b3\u00b7*()\[\]~][A-Za-z0-9%\u00b5\u03bc\u00b0/^\u00b2\u00b3\u00b7*()\[\]\s.\-~]*)?$"
)
_TRUE = {"1", "1.0", "yes", "y", "true", "t", "positive", "present"}
_FALSE = {"0", "0.0", "no", "n", "false", "f", "negative", "absent"}
FORMAT_NAMES = {
    "csv": "csv",
    "table": "markdown_table",
    "text_table": "text_table",
    "json": "json",
    "kv": "key_value",
}


_NUM = re.compile(_NUM_RE)
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_TRAIL_PAREN = re.compile(r"\s*\([^()]*\)\s*$")


class ColumnCoercer:
    """Types raw strings of one column; results are memoised per distinct raw value.

    ``__call__(values)`` takes a list of raw strings (None = field absent) and returns
    (typed values: float for numeric/binary, str for categorical, None = missing/failed;
    reason per value: '' or one of missing_field/type/range/category).
    """

    def __init__(self, name: str, col: Column, missing_tokens: set[str]):
        self.name, self.col, self.missing = name, col, missing_tokens
        self.memo: dict[str | None, tuple[object, str]] = {}
        if col.type == "categorical":
            self.cats = {norm_category(a): c for a, c in col.synonyms.items()}
            self.cats.update({norm_category(c): c for c in col.categories or []})
        elif col.type == "binary":
            self.bins = {k: 1 for k in _TRUE} | {k: 0 for k in _FALSE}
            for k, label in (col.labels or {}).items():
                self.bins[str(label).strip().lower()] = int(k)

    def one(self, raw: str | None) -> tuple[object, str]:
        """(typed value or None, reason or '') for one raw value."""
        miss = "" if self.col.nullable else "missing_field"
        if raw is None:
            return None, miss
        s = raw.strip().strip("*`\"'").strip()
        t = self.col.type
        if t != "int" and t != "float" and s.endswith(")"):
            s = _TRAIL_PAREN.sub("", s) or s  # "Yes (1)", "never (60%)"
        low = s.lower()
        if t == "categorical":
            hit = self.cats.get(norm_category(s))
            if hit is not None:
                return hit, ""
            return None, (miss if low in self.missing else "category")
        if low in self.missing:
            return None, miss
        if t == "binary":
            v = self.bins.get(low.rstrip("."))
            return (float(v), "") if v is not None else (None, "type")
        m = _NUM.match(_THOUSANDS.sub("", s))
        if m is None:
            return None, "type"
        x = float(m.group(1))
        if not math.isfinite(x) or (t == "int" and abs(x - round(x)) > 1e-9):
            return None, "type"
        lo, hi = self.col.range  # type: ignore[misc]
        if x < lo or x > hi:
            return x, "range"
        return x, ""

    def __call__(self, values: list[str | None]) -> tuple[list[object], list[str]]:
        memo = self.memo
        out_v: list[object] = []
        out_r: list[str] = []
        for v in values:
            r = memo.get(v)
            if r is None:
                r = memo[v] = self.one(v)
            out_v.append(r[0])
            out_r.append(r[1])
        return out_v, out_r


def _coercers(card: DatasetCard) -> dict[str, ColumnCoercer]:
    missing = COMMON_MISSING | {t.strip().lower() for t in card.missing_tokens}
    return {n: ColumnCoercer(n, c, missing) for n, c in card.columns.items()}


_REASON_RANK = {r: i for i, r in enumerate(_FIELD_REASONS)}


def coerce_records(
    records: list[dict[str, str]],
    card: DatasetCard,
    coercers: dict[str, ColumnCoercer] | None = None,
) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """Type a list of raw records (column -> string; absent key = missing).

    Returns (typed frame with the card's columns, shape (n, n_columns): float64 for numeric
    and binary, object for categorical; reason per row, shape (n,): '' = ok, else the
    first failing reason in the order missing_field, type, range, category; detail per row
    naming the first failing column and its raw value).
    """
    coercers = coercers or _coercers(card)
    n = len(records)
    reason = np.full(n, "", dtype=object)
    detail = [""] * n
    typed: dict[str, object] = {}
    for name, col in card.columns.items():
        raw = [r.get(name) for r in records]
        vals, reasons = coercers[name](raw)
        if col.type == "categorical":
            typed[name] = pd.Series(vals, dtype=object)
        else:
            typed[name] = pd.Series(vals, dtype="float64") if n else pd.Series([], dtype="float64")
        for i, r in enumerate(reasons):
            if r and (reason[i] == "" or _REASON_RANK[r] < _REASON_RANK[reason[i]]):
                reason[i] = r
                detail[i] = f"{name}={raw[i]!r}" if raw[i] is not None else f"{name} absent"
    frame = pd.DataFrame(typed, columns=card.feature_names)
    return frame, reason, detail


def row_keys(frame: pd.DataFrame, card: DatasetCard) -> list[tuple]:
    """Hashable key per row of a typed frame (numerics rounded to 6 decimals, missing = None)."""
    cols = []
    for name, col in card.columns.items():
        s = frame[name]
        if col.type == "categorical":
            cols.append([v if isinstance(v, str) else None for v in s.tolist()])
        else:
            x = pd.to_numeric(s, errors="coerce").astype("float64").round(6)
            cols.append([None if v != v else v for v in x.tolist()])
    return list(zip(*cols)) if cols else []


def train_keys(train: pd.DataFrame, card: DatasetCard, memo: dict | None = None) -> set:
    """:func:`row_keys` of the typed train rows, as a set (``memo``: as in validate_text)."""
    if memo is not None and "train keys" in memo:
        return memo["train keys"]
    keys = set(row_keys(typed_output(train, card), card))
    if memo is not None:
        memo["train keys"] = keys
    return keys


def rule_violations(frame: pd.DataFrame, card: DatasetCard) -> dict[str, np.ndarray]:
    """Boolean mask (n,) per card rule: ``if`` holds and ``then`` does not."""
    out: dict[str, np.ndarray] = {}
    if len(frame) == 0:
        return {r.id: np.zeros(0, dtype=bool) for r in card.rules}
    env = frame.reset_index(drop=True)
    for rule in card.rules:
        try:
            cond = np.asarray(env.eval(rule.if_, engine="python"), dtype=bool)
            then = np.asarray(env.eval(rule.then, engine="python"), dtype=bool)
        except Exception as err:  # a bad expression is a card error
            raise ConfigError(
                f"dataset card {card.name!r}: rule {rule.id!r} cannot be evaluated: {err}"
            ) from None
        out[rule.id] = cond & ~then
    return out


def typed_output(frame: pd.DataFrame, card: DatasetCard) -> pd.DataFrame:
    """Card columns and dtypes: int/binary -> Int64, float -> float64, categorical -> object."""
    out = {}
    for name, col in card.columns.items():
        s = frame[name].reset_index(drop=True) if name in frame else pd.Series([], dtype=object)
        if col.type in ("int", "binary"):
            out[name] = pd.to_numeric(s, errors="coerce").round().astype("Int64")
        elif col.type == "float":
            out[name] = pd.to_numeric(s, errors="coerce").astype("float64")
        else:
            out[name] = s.astype(object)
    return pd.DataFrame(out, columns=card.feature_names)


def _example_frame(
    prompt: dict | None,
    prompt_cands: list[Candidate],
    card: DatasetCard,
    coercers: dict[str, ColumnCoercer] | None = None,
) -> tuple[pd.DataFrame, int, np.ndarray]:
    """Typed example rows (prompt JSON ``example_rows`` + valid records of the echoed prompt),
    the number of valid records found in the echoed prompt, and per returned row whether it
    comes from the prompt JSON."""
    recs: list[dict[str, str]] = []
    if prompt:
        for row in prompt.get("example_rows") or []:
            if isinstance(row, dict):
                recs.append(
                    {k: ("" if v is None else str(v)) for k, v in row.items() if k in card.columns}
                )
    n_json = len(recs)
    recs += [c.fields for c in prompt_cands if c.fields is not None]
    frame, reason, _ = coerce_records(recs, card, coercers)
    good = reason == ""
    from_json = np.arange(len(recs)) < n_json
    return frame[good], int(good[n_json:].sum()), from_json[good]


def real_example_rows(prompt: dict | None) -> bool:
    """Whether the prompt's ``example_rows`` are real patients shown to the generator."""
    return bool(prompt) and prompt.get("example_rows_real") is True


def validate_text(
    text: str,
    card: DatasetCard,
    prompt: dict | None = None,
    train: pd.DataFrame | None = None,
    clinical_rules: str = "reject",
    n_records: int | None = None,
    duplicates: str = "keep",
    memo: dict | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Parse, type and check one raw output; returns (typed table, report dict).

    ``memo``: a dict kept for one ``train`` by a caller that validates several outputs
    against it (the CLI: one per job); the train rows' keys are computed once into it."""
    if clinical_rules not in ("reject", "flag"):
        raise ConfigError(f"clinical_rules must be 'reject' or 'flag', got {clinical_rules!r}")
    if duplicates not in ("keep", "reject"):
        raise ConfigError(f"duplicates must be 'keep' or 'reject', got {duplicates!r}")
    prompt_texts: tuple[str, ...] = ()
    if prompt:
        prompt_texts = tuple(
            t for t in (prompt.get("user"), prompt.get("system")) if isinstance(t, str)
        )
    cands = parse_text(text, card, prompt_texts)
    gen = [c for c in cands if not c.in_prompt]
    in_prompt = [c for c in cands if c.in_prompt]

    rejected = {r: 0 for r in REASONS}
    examples: dict[str, list[str]] = {r: [] for r in REASONS}

    def note(reason: str, line: str) -> None:
        rejected[reason] += 1
        if len(examples[reason]) < MAX_EXAMPLES:
            examples[reason].append(line[:300])

    parsed = [c for c in gen if c.fields is not None]
    for c in gen:
        if c.fields is None:
            note("parse_error", f"{c.error}: {c.text}")

    coercers = _coercers(card)
    frame, reason, detail = coerce_records([c.fields for c in parsed], card, coercers)  # type: ignore[misc]
    for i in np.flatnonzero(reason != ""):
        note(str(reason[i]), f"{detail[i]}: {parsed[i].text}")
    ok = reason == ""

    # echo: generated records equal to an example row of the prompt; a copy of a real example
    # row is a leak to be scored, so only copies of non-real examples are dropped
    ex, n_echo_prompt, from_json = _example_frame(prompt, in_prompt, card, coercers)
    all_keys = row_keys(ex, card)
    real_keys = (
        {k for k, j in zip(all_keys, from_json) if j} if real_example_rows(prompt) else set()
    )
    ex_keys = set(all_keys) - real_keys
    echo_copy = ok & np.array([k in ex_keys for k in row_keys(frame, card)], dtype=bool)
    ok &= ~echo_copy

    # clinical rules
    keep_idx = np.flatnonzero(ok)
    kept = frame.iloc[keep_idx].reset_index(drop=True)
    viol = rule_violations(kept, card)
    any_viol = np.zeros(len(kept), dtype=bool)
    per_rule: dict[str, int] = {}
    for rid, m in viol.items():
        per_rule[rid] = int(m.sum())
        if clinical_rules == "reject":
            for j in np.flatnonzero(m & ~any_viol):
                note("clinical_rule", f"{rid}: {parsed[keep_idx[j]].text}")
        any_viol |= m
    flagged_clinical = 0
    if clinical_rules == "reject":
        keep_idx = keep_idx[~any_viol]
        kept = kept[~any_viol].reset_index(drop=True)
    else:
        flagged_clinical = int(any_viol.sum())
    flagged_rows = np.flatnonzero(any_viol).tolist() if clinical_rules == "flag" else []

    # within-output duplicates: kept and counted (or rejected on request)
    dup = kept.duplicated(keep="first").to_numpy() if len(kept) else np.zeros(0, dtype=bool)
    within = int(dup.sum())
    if duplicates == "reject" and within:
        for j in np.flatnonzero(dup):
            note("duplicate", parsed[keep_idx[j]].text)
        kept = kept[~dup].reset_index(drop=True)
        flagged_rows = [r for r in flagged_rows if not dup[r]]
        within_after = 0
    else:
        within_after = within

    dropped_n = 0
    if n_records is not None and len(kept) > n_records:
        dropped_n = len(kept) - n_records
        kept = kept.iloc[:n_records].reset_index(drop=True)
        flagged_rows = [r for r in flagged_rows if r < n_records]
        if duplicates == "keep":
            within_after = int(kept.duplicated().sum())
        if clinical_rules == "flag":
            flagged_clinical = len(flagged_rows)

    out = typed_output(kept, card)
    out_keys = row_keys(out, card) if real_keys and len(out) else []
    prompt_copy_rows = [i for i, k in enumerate(out_keys) if k in real_keys]
    train_dup_rows: list[int] = []
    if train is not None and len(out):
        tk = train_keys(train, card, memo)
        train_dup_rows = [i for i, k in enumerate(row_keys(out, card)) if k in tk]

    kinds = Counter(c.kind for c in gen if c.fields is not None)
    fmt = FORMAT_NAMES.get(kinds.most_common(1)[0][0], "none") if kinds else "none"
    report = {
        "dataset": card.name,
        "candidate_lines": len(gen),
        "parsed": len(parsed),
        "valid": len(out),
        "rejected": rejected,
        "examples": {r: v for r, v in examples.items() if v},
        "echoed_examples_removed": n_echo_prompt + int(echo_copy.sum()),
        "echo": {
            "in_prompt": n_echo_prompt,
            "copied_in_output": int(echo_copy.sum()),
            "prompt_candidates": len(in_prompt),
        },
        "example_rows_real": real_example_rows(prompt),
        "prompt_copies": len(prompt_copy_rows),
        "prompt_copy_rows": prompt_copy_rows,
        "train_duplicates": len(train_dup_rows),
        "train_duplicate_rows": train_dup_rows,
        "within_duplicates": within_after,
        "within_duplicates_policy": duplicates,
        "flagged_clinical": flagged_clinical,
        "flagged_clinical_rows": flagged_rows,
        "clinical_rules_mode": clinical_rules,
        "rule_violations": per_rule,
        "dropped_over_n_records": dropped_n,
        "n_records_requested": n_records,
        "format_detected": fmt,
        "formats": {FORMAT_NAMES[k]: v for k, v in sorted(kinds.items())},
        "status": "ok" if len(out) else "empty",
    }
    return out, report


# ------------------------------------------------------------------------------ files / CLI
def read_raw(path: str | Path) -> str:
    """Raw model output as text (undecodable bytes replaced); SynllmError if unreadable."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"raw output not found: {p}")
    try:
        return p.read_bytes().decode("utf-8", errors="replace")
    except OSError as err:
        raise DataError(f"raw output {p} cannot be read: {err}") from None


def read_prompt(path: str | Path | None) -> dict | None:
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise DataError(f"prompt JSON not found: {p}")
    try:
        obj = json.loads(p.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"prompt JSON {p} is not valid JSON: {err}") from None
    if not isinstance(obj, dict):
        raise DataError(f"prompt JSON {p} must hold an object")
    return obj


def read_train(path: str | Path | None, card: DatasetCard) -> pd.DataFrame | None:
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise DataError(f"train split not found: {p}")
    try:
        if p.suffix == ".parquet":
            from synllm.split import read_split

            return read_split(p, card)
        df = pd.read_csv(p)
    except Exception as err:
        raise DataError(f"train split {p} cannot be read: {err}".replace("\n", " ")) from None
    missing = [c for c in card.columns if c not in df.columns]
    if missing:
        raise DataError(f"train split {p} lacks column(s) {missing}")
    return df


def validate_file(
    card: DatasetCard,
    raw_path: str | Path,
    out_csv: str | Path,
    out_report: str | Path,
    prompt_path: str | Path | None = None,
    train: pd.DataFrame | None = None,
    clinical_rules: str = "reject",
    n_records: int | None = None,
    memo: dict | None = None,
) -> dict:
    """File-to-file validation; writes the CSV and the JSON report, returns the report.
    ``train``: the train split (:func:`read_train`, read once for every cell of a job);
    ``memo``: as in :func:`validate_text`."""
    text = read_raw(raw_path)
    prompt = read_prompt(prompt_path)
    out, report = validate_text(text, card, prompt, train, clinical_rules, n_records, memo=memo)
    report["raw"] = str(raw_path)
    for p in (out_csv, out_report):
        Path(p).parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(out_csv, index=False)
    Path(out_report).write_text(json.dumps(report, indent=2) + "\n")
    return report


def validate_paper_file(
    card: DatasetCard, raw_path, out_csv, out_report, source_model: str | None = None
) -> dict:
    """``evaluation.protocol: paper``: the authors' table of one cell (``synllm.protocol``).

    The CSV holds the authors' columns and values (numeric columns coerced), header only for a
    cell that never reached 100 rows; the report says which batches formed the run.
    """
    from synllm.protocol import COLUMNS, age_capped, paper_table

    cap = age_capped(card.name, source_model)
    cell = paper_table(card.name, read_raw(raw_path), age_cap=cap)
    report = {
        "dataset": card.name,
        **cell.report(),
        "age_capped": cap,
        "raw": str(raw_path),
        "valid": 0 if cell.table is None else len(cell.table),
    }
    for p in (out_csv, out_report):
        Path(p).parent.mkdir(parents=True, exist_ok=True)
    table = cell.table if cell.table is not None else pd.DataFrame(columns=COLUMNS[card.name])
    table.to_csv(out_csv, index=False)
    Path(out_report).write_text(json.dumps(report, indent=2) + "\n")
    return report


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="synllm validate", description=__doc__.splitlines()[0])
    p.add_argument("--card", required=True, help="dataset card YAML")
    p.add_argument(
        "--raw", required=True, nargs="+", help="raw model output (any text), one per cell"
    )
    p.add_argument(
        "--prompt", nargs="+", default=None, help="prompt JSON per cell (echo removal); optional"
    )
    p.add_argument("--train", default=None, help="train split (parquet or CSV) for duplicate flags")
    p.add_argument("--out-csv", required=True, nargs="+", help="valid records, one per cell")
    p.add_argument("--out-report", required=True, nargs="+", help="report JSON, one per cell")
    p.add_argument("--clinical-rules", choices=("reject", "flag"), default="reject")
    p.add_argument("--n-records", type=int, default=None, help="keep at most the first N valid")
    p.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="project",
        help="paper: the SynLLM authors' line parser and 100-row cells (synllm.protocol)",
    )
    p.add_argument(
        "--source-model",
        default=None,
        help="protocol paper: the authors' model directory (their Age cap is per model)",
    )
    a = p.parse_args(argv)
    if a.n_records is not None and a.n_records < 0:
        raise ConfigError(f"--n-records must be >= 0, got {a.n_records}")
    # several cells (rule validate_model): the same files per cell as one call each
    cells = per_cell_args(a, ("raw", "prompt", "out_csv", "out_report"), "validate")
    card = load_card(a.card)
    train = read_train(a.train, card) if a.protocol != "paper" else None
    memo: dict = {}  # the train split's row keys, shared by this job's cells
    for c in cells:
        if a.protocol == "paper":
            rep = validate_paper_file(card, c.raw, c.out_csv, c.out_report, a.source_model)
            print(
                f"{card.name}: paper protocol, {rep['batches']} batches, run "
                f"{rep['run_batches']}, {rep['kept']} rows kept ({rep['example_copies']} "
                f"example copies, {rep['status']}) -> {c.out_report}"
            )
            continue
        rep = validate_file(
            card,
            c.raw,
            c.out_csv,
            c.out_report,
            c.prompt,
            train,
            a.clinical_rules,
            a.n_records,
            memo,
        )
        print(
            f"{card.name}: {rep['candidate_lines']} candidates, {rep['parsed']} parsed, "
            f"{rep['valid']} valid ({rep['status']}, format {rep['format_detected']})"
            f" -> {c.out_report}"
        )
    return 0


__all__ = ["validate_text", "validate_file", "coerce_records", "cli", "REASONS", "SynllmError"]
