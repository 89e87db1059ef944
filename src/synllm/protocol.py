"""Evaluation protocols: the project's own and the SynLLM authors' ("paper").

One :class:`Protocol` object carries every choice in which the published Table IV differs from
this project's scoring; ``validate``, ``evaluate`` and ``aggregate`` consult it (config
``evaluation.protocol``) instead of running a second pipeline. The paper protocol is written from
the facts in the paper material's ``PROTOCOL.md``:

- **Parsing** (:func:`paper_table`): the raw file is split into batches at each occurrence of
  the authors' system prompt; a line is a record when, after stripping a leading list number
  (``12.``; cirrhosis also ``12,``), it has exactly the dataset's field count (diabetes 9,
  stroke 11, cirrhosis 19 or 20 with the ID dropped; a cirrhosis line with more than 20 fields
  makes its whole batch yield nothing). The prompt's own example rows, decoded with every batch,
  are records too (``count_example_rows``).
- **Run selection** (:func:`select_run`): batches are grouped greedily into runs of >= 100
  rows; a file that ends on a run boundary uses its last run, otherwise the longest window of
  batches ending at the last non-empty batch that started with fewer than 100 rows. The first
  100 rows are kept; fewer than 100 is a "–" cell (no table).
- **Evaluation** (``synllm.metrics.paper``): the real table is down-sampled to the synthetic
  size with ``sample(n, random_state=42)``; per-dataset metric sets with the authors' quirks.
- **Scores** (``synllm.aggregate.reproduction``): min-max over every evaluated row of the
  dataset, a metric with range < 1e-8 gives 0.5, Quality/Privacy means, printed "Harmonic" =
  (Q + P) / 2, and the true harmonic mean 2QP / (Q + P) beside it.

:data:`DIVERGENCE_STEPS` switches these choices one at a time to the project's own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import pandas as pd

from synllm.errors import ConfigError

PROTOCOLS = ("project", "paper")
# the authors' system prompt per dataset (their generators' SYSTEM_PROMPT; some user prompts
# repeat its first sentence, so the whole prompt marks a batch)
_SYSTEM = r"You are a synthetic medical data generator\. Generate realistic patient records for "
SYSTEM_PROMPTS = {
    "diabetes": re.compile(_SYSTEM + r"diabetes research"),
    "stroke": re.compile(_SYSTEM + r"stroke (?:prediction )?research"),
    "cirrhosis": re.compile(_SYSTEM + r"liver cirrhosis research"),
}
CELL_ROWS = 100


@dataclass(frozen=True)
class Protocol:
    """Every choice in which the authors' evaluation differs from the project's.

    ``name`` is the protocol (``paper`` or a divergence step label). The fields:
    ``count_example_rows`` (prompt example rows parsed as synthetic records),
    ``real_rows`` (``"synthetic_size"``: the real table down-sampled to the synthetic size;
    ``"full"``: every real row), ``wasserstein`` (``"per_sample_minmax"`` or ``"raw"``),
    ``metric_set`` (``"paper"``: the authors' per-dataset lists; ``"project"``: the project's
    declared quality/privacy families), ``pool`` (``"dataset"``: normalise over every evaluated
    row of the dataset incl. unprinted models; ``"run"``: only the run's printed models, the
    project's constant rule), ``combined`` (``"mean"`` = (Q + P) / 2 or ``"harmonic"``).
    """

    name: str = "paper"
    count_example_rows: bool = True
    real_rows: str = "synthetic_size"
    wasserstein: str = "per_sample_minmax"
    metric_set: str = "paper"
    pool: str = "dataset"
    combined: str = "mean"

    def __post_init__(self) -> None:
        allowed = {
            "real_rows": ("synthetic_size", "full"),
            "wasserstein": ("per_sample_minmax", "raw"),
            "metric_set": ("paper", "project"),
            "pool": ("dataset", "run"),
            "combined": ("mean", "harmonic"),
        }
        for key, values in allowed.items():
            if getattr(self, key) not in values:
                raise ConfigError(
                    f"protocol field {key!r}: {getattr(self, key)!r} is not one of {list(values)}"
                )


PAPER = Protocol()

# cumulative: each step keeps the previous switches (the step chart reads left to right)
DIVERGENCE_STEPS: tuple[tuple[str, dict], ...] = (
    ("0_paper", {}),
    ("1_no_example_rows", {"count_example_rows": False}),
    ("2_full_real", {"real_rows": "full"}),
    ("3_raw_wasserstein", {"wasserstein": "raw"}),
    ("4_project_metrics", {"metric_set": "project"}),
    ("5_run_normalisation", {"pool": "run"}),
    ("6_true_harmonic", {"combined": "harmonic"}),
)


def divergence_protocols() -> list[Protocol]:
    """The paper protocol, then one more choice switched to the project's at each step."""
    out, kw = [], {}
    for label, change in DIVERGENCE_STEPS:
        kw.update(change)
        out.append(replace(PAPER, name=label, **kw))
    return out


def get_protocol(name: str) -> Protocol | None:
    """``paper`` -> :data:`PAPER`; ``project`` -> None (the project's own steps run)."""
    if name not in PROTOCOLS:
        raise ConfigError(f"evaluation field 'protocol': {name!r} is not one of {list(PROTOCOLS)}")
    return PAPER if name == "paper" else None


# --------------------------------------------------------------------------- line rules
COLUMNS = {
    "diabetes": [
        "gender",
        "age",
        "hypertension",
        "heart_disease",
        "smoking_history",
        "bmi",
        "HbA1c_level",
        "blood_glucose_level",
        "diabetes",
    ],
    "stroke": [
        "gender",
        "age",
        "hypertension",
        "heart_disease",
        "ever_married",
        "work_type",
        "Residence_type",
        "avg_glucose_level",
        "bmi",
        "smoking_status",
        "stroke",
    ],
    "cirrhosis": [
        "N_Days",
        "Status",
        "Drug",
        "Age",
        "Sex",
        "Ascites",
        "Hepatomegaly",
        "Spiders",
        "Edema",
        "Bilirubin",
        "Cholesterol",
        "Albumin",
        "Copper",
        "Alk_Phos",
        "SGOT",
        "Tryglicerides",
        "Platelets",
        "Prothrombin",
        "Stage",
    ],
}
NUMERIC = {
    "diabetes": [
        "age",
        "hypertension",
        "heart_disease",
        "bmi",
        "HbA1c_level",
        "blood_glucose_level",
        "diabetes",
    ],
    "stroke": ["age", "hypertension", "heart_disease", "avg_glucose_level", "bmi", "stroke"],
    "cirrhosis": [
        "N_Days",
        "Age",
        "Bilirubin",
        "Cholesterol",
        "Albumin",
        "Copper",
        "Alk_Phos",
        "SGOT",
        "Tryglicerides",
        "Platelets",
        "Prothrombin",
        "Stage",
    ],
}
# Cirrhosis outputs generated after the authors added the Age cap ([18, 100]) and Stage clip
# ([1, 4]) to their generator. Not stated in the files themselves: these are the model
# directories whose SEEDEx..STATGUIDE cells (day-valued Age copied from the examples, constant
# once capped) are missing from the authors' cirrhosis heatmap (harmonic_score_heatmap.png,
# ArshiaIlaty/SynLLM 24de7af); every other cirrhosis cell of that figure is uncapped.
CIRRHOSIS_AGE_CAPPED = frozenset(
    {
        "Expert68_llama2_13b_instructed_version2",
        "NousResearch_Nous-Hermes-2-Mistral-7B-DPO",
        "lmsys_vicuna-13b-v1.5",
        "meta-llama_Llama-2-13b-chat-hf",
        "meta-llama_Llama-2-13b-hf",
        "meta-llama_Meta-Llama-3-8B",
        "mistralai_Mistral-7B-Instruct-v0.2",
        "openai-community_gpt2",
        "openai-community_gpt2-large",
        "openai-community_gpt2-medium",
    }
)


def age_capped(dataset: str, model_dir: str | None) -> bool:
    """Whether the authors' generator capped Age / clipped Stage for this cell's outputs."""
    return dataset == "cirrhosis" and model_dir in CIRRHOSIS_AGE_CAPPED


_NUM_PREFIX = re.compile(r"^\d+\.\s*")
_NUM_PREFIX_CIRRHOSIS = re.compile(r"^\d+[.,]\s*")
_YES_NO = {"yes": "1", "no": "0"}
_DIABETES_SMOKING = {"never", "former", "current", "not current", "no info", "unknown"}
_STROKE = {
    "gender": {"male", "female", "other"},
    "smoking": {"formerly smoked", "never smoked", "smokes", "unknown"},
    "married": {"yes", "no"},
    "work": {"private", "self-employed", "govt_job", "children", "never_worked"},
    "residence": {"urban", "rural"},
}
_C_YN = {"y", "n"}
_C_EDEMA = {"y", "n", "s"}
_C_STAGE = {"1", "2", "3", "4", "3.0", "3.5", "4.0"}


class BatchFailure(Exception):
    """A line the authors' parser could not unpack: the whole batch yields no record."""


def _diabetes_line(line: str) -> list[str] | None:
    if line.count(",") != 8:
        return None
    parts = [p.strip() for p in line.split(",")]
    gender, age, hyp, heart, smoking, bmi, hba1c, glucose, diab = parts
    if gender.lower() not in ("male", "female"):
        return None
    smoking = smoking.lower()
    if smoking not in _DIABETES_SMOKING:
        smoking = "unknown"  # kept: the authors only relabelled it
    return [
        gender.title(),
        age,
        _YES_NO.get(hyp.lower(), hyp),
        _YES_NO.get(heart.lower(), heart),
        smoking,
        bmi,
        hba1c,
        glucose,
        _YES_NO.get(diab.lower(), diab),
    ]


def _stroke_line(line: str) -> list[str] | None:
    if line.count(",") != 10:
        return None
    parts = [p.strip() for p in line.split(",")]
    gender, age, hyp, heart, married, work, res, glucose, bmi, smoking, stroke = parts
    if gender.lower() not in _STROKE["gender"]:
        return None
    smoking = smoking.lower()
    if smoking not in _STROKE["smoking"]:
        if smoking not in ("no info", "never"):
            return None
        smoking = "unknown"
    married, work, res = married.lower(), work.lower(), res.lower()
    if (
        married not in _STROKE["married"]
        or work not in _STROKE["work"]
        or res not in _STROKE["residence"]
    ):
        return None
    return [
        gender.title(),
        age,
        _YES_NO.get(hyp.lower(), hyp),
        _YES_NO.get(heart.lower(), heart),
        married.title(),
        work.title(),
        res.title(),
        glucose,
        bmi,
        smoking,
        _YES_NO.get(stroke.lower(), stroke),
    ]


def _yn(v: str, allowed: set[str]) -> str | None:
    v = v.lower()
    if v in allowed:
        return v
    return "y" if v == "a" else None


def _cirrhosis_line(line: str, age_cap: bool) -> list[str] | None:
    low = line.lower()
    if "note:" in low or "these records" in low:
        return None
    if "id" in low and "n_days" in low and "status" in low:
        return None
    parts = [p.strip() for p in line.split(",")]
    if len(parts) < 19:
        return None
    if len(parts) == 20:
        parts = parts[1:]
    elif len(parts) > 20:
        # the authors unpacked into 19 names: a ValueError that aborted the batch
        raise BatchFailure(f"{len(parts)} fields")
    (n_days, status, drug, age, sex, asc, hep, spi, edema, *nums, stage) = parts
    sex = sex.lower()
    if sex not in ("m", "f"):
        return None
    yn = [_yn(asc, _C_YN), _yn(hep, _C_YN), _yn(spi, _C_YN), _yn(edema, _C_EDEMA)]
    if any(v is None for v in yn):
        return None
    if stage not in _C_STAGE:
        if stage.lower() in ("a", "b", "c", "d"):
            stage = {"a": "1", "b": "2", "c": "3", "d": "4"}[stage.lower()]
        else:
            try:
                s = float(stage)
            except ValueError:
                return None
            if not 1 <= s <= 4:
                return None
            stage = str(s)
    try:
        n_days_f = float(n_days)
        age_f = float(age)
        vals = [float(v) for v in nums]
    except ValueError:
        return None
    if age_cap:
        age = "100" if age_f > 100 else ("18" if age_f < 18 else age)
    drug = " ".join(w.capitalize() for w in drug.lower().split())
    return [
        str(n_days_f),
        status.upper(),
        drug,
        str(age),
        sex.upper(),
        *(v.upper() for v in yn),
        *(str(v) for v in vals),
        stage,
    ]


def parse_batch(dataset: str, text: str, age_cap: bool = False) -> list[list[str]]:
    """Records (raw strings, :data:`COLUMNS` order) of one batch; [] for a failed batch."""
    rows = []
    prefix = _NUM_PREFIX_CIRRHOSIS if dataset == "cirrhosis" else _NUM_PREFIX
    try:
        for line in text.splitlines():
            line = prefix.sub("", line.strip(), count=1)
            if not line:
                continue
            if dataset == "diabetes":
                rec = _diabetes_line(line)
            elif dataset == "stroke":
                rec = _stroke_line(line)
            elif dataset == "cirrhosis":
                rec = _cirrhosis_line(line, age_cap)
            else:
                raise ConfigError(f"paper protocol: no line rules for dataset {dataset!r}")
            if rec is not None:
                rows.append(rec)
    except BatchFailure:
        return []
    return rows


def split_batches(dataset: str, text: str) -> list[str]:
    """One piece per generation batch: the text from one system prompt to the next."""
    text = text.replace("\r\n", "\n")
    marker = SYSTEM_PROMPTS.get(dataset)
    if marker is None:
        raise ConfigError(f"paper protocol: no system prompt known for dataset {dataset!r}")
    starts = [m.start() for m in marker.finditer(text)]
    if not starts:
        return [text] if text.strip() else []
    bounds = [0] + starts[1:] + [len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:])]


def select_run(counts: list[int], need: int = CELL_ROWS) -> tuple[int, int]:
    """``(first, last + 1)`` batch indices of the published run of an append-only file.

    Greedy runs of >= ``need`` rows; a file ending on a run boundary -> its last run, else the
    longest window ending at the last non-empty batch whose batches before the last held fewer
    than ``need`` rows (the generator was still running when it wrote that batch).
    """
    if not counts:
        return 0, 0
    runs, start, acc = [], 0, 0
    for i, c in enumerate(counts):
        acc += c
        if acc >= need:
            runs.append((start, i + 1))
            start, acc = i + 1, 0
    if runs and start == len(counts):
        return runs[-1]
    nonempty = [i for i, c in enumerate(counts) if c > 0]
    if not nonempty:
        return len(counts), len(counts)
    end = nonempty[-1]
    first, before = end, 0
    while first > 0 and before + counts[first - 1] < need:
        first -= 1
        before += counts[first]
    return first, end + 1


def _common_prefix_lines(batches: list[str]) -> list[str]:
    seqs = [[ln.strip() for ln in b.splitlines() if ln.strip()] for b in batches]
    if not seqs:
        return []
    ref, n = seqs[0], len(seqs[0])
    for s in seqs[1:]:
        k = 0
        while k < min(n, len(s)) and s[k] == ref[k]:
            k += 1
        n = k
    return ref[:n]


@dataclass
class PaperCell:
    """The authors' table of one cell and how it was obtained."""

    table: pd.DataFrame | None  # None: the cell never reached 100 rows ("–")
    n_batches: int
    run: tuple[int, int]
    run_rows: int
    example_rows: list[tuple]  # parsed example rows of the prompt (as in the echoed prompt)
    example_copies: int  # kept rows equal to an example row

    def report(self) -> dict:
        return {
            "protocol": "paper",
            "batches": self.n_batches,
            "run_batches": list(self.run),
            "run_rows": self.run_rows,
            "kept": 0 if self.table is None else len(self.table),
            "example_rows": len(self.example_rows),
            "example_copies": self.example_copies,
            "status": "ok" if self.table is not None else "short",
        }


def to_frame(dataset: str, rows: list[list[str]]) -> pd.DataFrame:
    """The authors' CSV: their column order, numeric columns coerced (bad values -> NaN)."""
    df = pd.DataFrame(rows, columns=COLUMNS[dataset])
    for col in NUMERIC[dataset]:
        df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


def paper_table(
    dataset: str, text: str, protocol: Protocol = PAPER, age_cap: bool = False, n: int = CELL_ROWS
) -> PaperCell:
    """Parse one raw file as the authors did (see module doc)."""
    batches = split_batches(dataset, text)
    parsed = [parse_batch(dataset, b, age_cap) for b in batches]
    counts = [len(r) for r in parsed]
    first, last = select_run(counts, n)
    # every batch of a run starts with the same echoed prompt (the first batch may carry a
    # chat-template line before the system prompt)
    marker = SYSTEM_PROMPTS[dataset]
    run_batches = [b[m.start() :] if (m := marker.search(b)) else b for b in batches[first:last]]
    examples = (
        [
            tuple(r)
            for r in parse_batch(dataset, "\n".join(_common_prefix_lines(run_batches)), age_cap)
        ]
        if len(run_batches) > 1
        else []
    )
    ex_set = set(examples)
    rows = [r for rs in parsed[first:last] for r in rs]
    if not protocol.count_example_rows:
        # one copy per batch comes from the echoed prompt; copies the model wrote go too
        rows = [r for r in rows if tuple(r) not in ex_set]
        counts_wo = [sum(tuple(r) not in ex_set for r in rs) for rs in parsed]
        first, last = select_run(counts_wo, n)
        rows = [r for rs in parsed[first:last] for r in rs if tuple(r) not in ex_set]
    run_rows = len(rows)
    kept = rows[:n]
    table = None
    # the authors wrote no table below n rows; without their example rows a cell keeps what
    # it has, as the project's validator does (no row at all is still a failed cell)
    if len(kept) >= n or (not protocol.count_example_rows and kept):
        table = to_frame(dataset, kept)
        if dataset == "cirrhosis" and age_cap:
            table["Age"] = table["Age"].clip(18, 100)
            table["Stage"] = table["Stage"].clip(1, 4)
    copies = sum(tuple(r) in ex_set for r in kept)
    return PaperCell(table, len(batches), (first, last), run_rows, examples, copies)


def downsample_real(real: pd.DataFrame, n: int, seed: int = 42) -> pd.DataFrame:
    """The authors' real reference: ``real.sample(n, random_state=42)`` when it is larger."""
    return real.sample(n=n, random_state=seed) if len(real) > n else real.copy()


__all__ = [
    "PROTOCOLS",
    "Protocol",
    "PAPER",
    "DIVERGENCE_STEPS",
    "divergence_protocols",
    "get_protocol",
    "COLUMNS",
    "NUMERIC",
    "parse_batch",
    "split_batches",
    "select_run",
    "paper_table",
    "PaperCell",
    "to_frame",
    "downsample_real",
    "age_capped",
    "CIRRHOSIS_AGE_CAPPED",
]
