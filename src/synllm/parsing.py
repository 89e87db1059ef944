"""Extract candidate records from raw LLM text (any format), separating echoed prompts.

Pure text processing, no pandas: the validator (``synllm.validate``) types and checks the
candidates. Two stages:

1. :func:`segment` splits the raw text into ``(text, is_prompt)`` pieces. Chat-template tokens
   are stripped; text before an assistant marker (``<|assistant|>``, ``assistant``,
   ``Assistant:``, ``[/INST]``, ``### Response:`` ...) is the echoed prompt. Raw files that
   repeat their prompt once per batch are split into blocks at the repeated first line; in a
   block without an assistant marker (base models) the echoed prompt is the longest common
   prefix (non-blank lines) of all blocks.
2. :func:`extract` turns each piece into :class:`Candidate` records: JSON / Python-dict
   objects (also inside arrays, code fences, truncated), ``key: value`` blocks (markdown bold
   keys, human-readable key names, one record per block or per line), delimited lines (CSV with
   or without header, any header order, markdown tables, numbered / bulleted lists, leading row
   numbers or ids).

A :class:`Candidate` holds raw string values keyed by card column (``fields``), or
``fields=None`` with an ``error`` when the text clearly was meant as a record but cannot be
aligned (wrong field count, truncated object).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from synllm.cards import DatasetCard, norm_key

ID_KEY = "__id__"

_ID_ALIASES = ("id", "patientid", "recordid", "patient", "no", "index", "row", "record")

# chat-template tokens dropped wherever they occur
_NOISE_TOKENS = re.compile(
    r"<\|(?:endoftext|im_end|end|eot_id|end_of_text|begin_of_text|eos|pad|action_end)\|>"
    r"|</?s>|<unk>|<pad>|<end_of_turn>|<</?SYS>>|<\|start_header_id\|>|<\|end_header_id\|>"
)
# assistant turn start; group 'rest' is generated content on the same line
_ASSISTANT = re.compile(
    r"^\s*(?:<\|im_start\|>\s*assistant\b|<\|assistant\|>|<start_of_turn>\s*model\b|<\|Bot\|>"
    r"|(?:GPT4(?: Correct)? )?Assistant\s*:|ASSISTANT\s*:|assistant\s*$|assistant\s*:"
    r"|###\s*(?:Response|Assistant|Answer|Output)\s*:?|\[/INST\])[ \t]*(?P<rest>.*)$"
)
_INST_END = re.compile(r"\[/INST\]")
# prompt-side role markers (stripped, content after them kept)
_PROMPT_ROLE = re.compile(
    r"^\s*(?:<\|im_start\|>\s*(?:system|user)\b|<\|(?:system|user|User|Human)\|>"
    r"|<start_of_turn>\s*user\b|(?:GPT4(?: Correct)? )?(?:System|User|Human)\s*:"
    r"|SYSTEM\s*:|USER\s*:|HUMAN\s*:|system\s*$|user\s*$|[^\x00-\x7f]{1,2}system\s*$|\[INST\]"
    r"|###\s*(?:Instruction|Human|User|System|Input)\s*:?)[ \t]*(?P<rest>.*)$"
)

_LIST_PREFIX = re.compile(
    r"^\s*(?:[-*\u2022>+]\s+|\(?\d{1,5}[.)]\s+|#\s?\d+\s*[:.)-]?\s+"
    r"|(?:record|patient|row|sample|entry|example|case|subject)\s*#?\s*\d+\s*[:.)-]\s*)",
    re.IGNORECASE,
)
_KV_LINE = re.compile(
    r"^\s*(?:[-*\u2022+]\s*|\d{1,3}[.)]\s*)?\**\s*(?P<key>[A-Za-z][A-Za-z0-9_ ./()%\-]{0,40}?)"
    r"\s*\**\s*[:=]\s*\**\s*(?P<val>.*?)\s*\**\s*$"
)
_KV_INLINE = re.compile(
    r"\**\s*(?P<key>[A-Za-z][A-Za-z0-9_ ./%\-]{0,40}?(?:\s*\([^)]{0,20}\))?)\s*\**\s*[:=]\s*\**"
    r"\s*(?P<val>[^,;|]*?)\s*\**\s*(?=[,;|]|$)"
)
_OBJ = re.compile(r"\{[^{}]*(?:\}|$)", re.MULTILINE)
_OBJ_PAIR = re.compile(
    r"""["']?(?P<key>[A-Za-z_][A-Za-z0-9_ ]{0,40})["']?\s*:\s*"""
    r"""(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<bare>[^,}\]\n]*))"""
)
_TABLE_SEP = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$")
_HAS_DIGIT = re.compile(r"\d")
_INTLIKE = re.compile(r"^\s*#?\d{1,7}\.?\s*$")


@dataclass
class Candidate:
    """One record candidate: ``fields`` maps card column -> raw string value (None = parse error)."""

    text: str
    kind: str  # json | kv | csv | table | text_table
    in_prompt: bool
    fields: dict[str, str] | None = None
    error: str | None = None
    truncated: bool = False


@dataclass
class KeyMap:
    """Resolves free-form field names to card columns for one card."""

    card: DatasetCard
    lookup: dict[str, str] = field(default_factory=dict)
    _memo: dict[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        cols = self.card.feature_names
        # other names of a column come from the card (``aliases:``), so a new dataset needs
        # no parser change
        for c in cols:
            for alias in self.card.columns[c].aliases:
                self.lookup[norm_key(alias)] = c
        for a in _ID_ALIASES:
            self.lookup.setdefault(a, ID_KEY)
        for c in self.card.id_columns:
            self.lookup[norm_key(c)] = ID_KEY
        for c in cols:  # exact column names win over aliases
            self.lookup[norm_key(c)] = c

    def resolve(self, key: str) -> str | None:
        """Card column (or ``ID_KEY``) for a raw key, else None (memoised)."""
        try:
            return self._memo[key]
        except KeyError:
            pass
        hit = self._resolve(key)
        if len(self._memo) < 100_000:
            self._memo[key] = hit
        return hit

    def _resolve(self, key: str) -> str | None:
        k = norm_key(key.strip().strip("*_`\"' "))
        if not k:
            return None
        hit = self.lookup.get(k)
        if hit is not None:
            return hit
        if k.endswith("level") and k[:-5] in self.lookup:
            return self.lookup[k[:-5]]
        if k + "level" in self.lookup:
            return self.lookup[k + "level"]
        return None

    @property
    def ncols(self) -> int:
        return len(self.card.columns)

    @property
    def min_fields(self) -> int:
        """Fewest recognised fields for text to count as a record attempt."""
        return max(2, math.ceil(self.ncols / 2))


# --------------------------------------------------------------------------- segmentation
def _clean(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    return _NOISE_TOKENS.sub("", text)


def _prompt_like(line: str) -> bool:
    """A line that can start an echoed prompt block (a role marker or a prose sentence)."""
    if _PROMPT_ROLE.match(line) or _ASSISTANT.match(line):
        return True
    return len(line.split()) >= 4 and line.count(",") < 3


def _split_assistant(line: str) -> tuple[str, str] | None:
    """(prompt part, generated part) if the line holds an assistant marker, else None."""
    m = _ASSISTANT.match(line)
    if m:
        return "", m.group("rest") or ""
    m = _INST_END.search(line)
    if m:
        return line[: m.start()], line[m.end() :]
    return None


def _strip_role(line: str) -> str:
    m = _PROMPT_ROLE.match(line)
    return (m.group("rest") or "") if m else line


def segment(text: str, prompt_texts: tuple[str, ...] = ()) -> list[tuple[str, bool]]:
    """Split raw output into ``(text, is_prompt)`` pieces in file order.

    ``prompt_texts`` (system / user text of a known prompt) are removed wherever they occur.
    """
    text = _clean(text)
    for pt in prompt_texts:
        pt = _clean(pt).strip()
        if len(pt) > 20:
            text = text.replace(pt, "\n")
    lines = text.split("\n")
    nonblank = [i for i, ln in enumerate(lines) if ln.strip()]
    if not nonblank:
        return []
    first = lines[nonblank[0]].strip()
    starts = [i for i in nonblank if lines[i].strip() == first] if _prompt_like(first) else []
    if len(starts) < 2 and not (_PROMPT_ROLE.match(first) or (prompt_texts and len(starts) == 1)):
        starts = []
    if not starts:
        # no echoed prompt at the top: markers may still occur (e.g. one turn per batch)
        starts_prompt = False
        blocks = [(0, len(lines))]
    else:
        starts_prompt = True
        bounds = starts + [len(lines)]
        blocks = [(0, starts[0])] if starts[0] > 0 else []
        blocks += [(bounds[k], bounds[k + 1]) for k in range(len(starts))]

    # common non-blank prefix of the prompt blocks (used where a block has no assistant marker)
    prefix_len = 0
    if starts_prompt and len(starts) >= 2 and not prompt_texts:
        seqs = [
            [lines[i].strip() for i in range(a, b) if lines[i].strip()]
            for a, b in blocks
            if lines[a].strip() == first
        ]
        ref = seqs[0]
        prefix_len = len(ref)
        for s in seqs[1:]:
            n = 0
            while n < min(prefix_len, len(s)) and s[n] == ref[n]:
                n += 1
            prefix_len = n

    out: list[tuple[str, bool]] = []
    for a, b in blocks:
        is_prompt_block = starts_prompt and lines[a].strip() == first
        marker_at = None
        if is_prompt_block:
            for i in range(a, b):
                if _split_assistant(lines[i]) is not None:
                    marker_at = i
                    break
        if not is_prompt_block:
            gen = [_strip_role(ln) for ln in lines[a:b]]
            out.append(("\n".join(gen), False))
            continue
        if marker_at is not None:
            pre, rest = _split_assistant(lines[marker_at])  # type: ignore[misc]
            prompt_lines = [_strip_role(ln) for ln in lines[a:marker_at]] + [pre]
            gen_lines = [rest] + [_strip_role(ln) for ln in lines[marker_at + 1 : b]]
        else:
            seen, cut = 0, b
            for i in range(a, b):
                if lines[i].strip():
                    if seen == prefix_len:
                        cut = i
                        break
                    seen += 1
            prompt_lines = [_strip_role(ln) for ln in lines[a:cut]]
            gen_lines = [_strip_role(ln) for ln in lines[cut:b]]
        out.append(("\n".join(prompt_lines), True))
        out.append(("\n".join(gen_lines), False))
    return [(t, p) for t, p in out if t.strip()]


# --------------------------------------------------------------------------- extraction
def _clean_value(v: str) -> str:
    return v.strip().strip("*`\"'").strip()


def _objects(text: str, km: KeyMap, in_prompt: bool) -> tuple[list[Candidate], str]:
    """JSON / dict-like objects with card keys; returns candidates and the text without them."""
    if "{" not in text:
        return [], text
    cands: list[Candidate] = []
    spans: list[tuple[int, int]] = []
    for m in _OBJ.finditer(text):
        body = m.group(0)
        fields: dict[str, str] = {}
        for p in _OBJ_PAIR.finditer(body):
            col = km.resolve(p.group("key"))
            if col is None or col == ID_KEY:
                continue
            val = p.group("dq") if p.group("dq") is not None else p.group("sq")
            if val is None:
                val = p.group("bare")
            fields.setdefault(col, _clean_value(val or ""))
        truncated = not body.rstrip().endswith("}")
        if len(fields) < (2 if truncated else km.min_fields):
            continue
        spans.append(m.span())
        c = Candidate(text=body.strip()[:300], kind="json", in_prompt=in_prompt, fields=fields)
        if truncated and len(fields) < km.ncols:
            c.fields, c.error, c.truncated = None, "truncated object", True
        cands.append(c)
    if not spans:
        return [], text
    parts, pos = [], 0
    for s, e in spans:
        parts.append(text[pos:s])
        parts.append("\n")
        pos = e
    parts.append(text[pos:])
    return cands, "".join(parts)


def _split_fields(line: str) -> tuple[list[str], str] | None:
    """Fields and delimiter kind of a delimited line, or None."""
    s = line.strip()
    if s.count("|") >= 2:
        parts = [p.strip() for p in s.strip("|").split("|")]
        return parts, "table"
    for d in ("\t", ",", ";"):
        if s.count(d) >= 2:
            return [p.strip() for p in s.split(d)], "csv"
    return None


_NUMERIC = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*%?$")


@dataclass
class _State:
    header: list[str | None] | None = None  # column per position (None = ignored)
    text_header: list[str] | None = None  # columns of a whitespace-aligned (printed) table


def _delimited(line: str, km: KeyMap, st: _State, in_prompt: bool) -> Candidate | None:
    stripped = _LIST_PREFIX.sub("", line, count=1).strip().strip("`").strip()
    split = _split_fields(stripped)
    if split is None:
        return None
    fields, kind = split
    fields = [_clean_value(f) for f in fields]
    if kind == "csv" and fields and fields[-1] == "" and len(fields) > km.ncols:
        fields = fields[:-1]  # trailing delimiter
    n_num = sum(1 for f in fields if f and _NUMERIC.match(f))
    if n_num == 0:
        resolved = [km.resolve(f) if f else None for f in fields]
        if sum(r is not None for r in resolved) >= max(2, math.ceil(len(fields) / 2)):
            st.header = resolved  # a header row
        return None
    if len(fields) < 3:
        return None
    if len(fields) < km.min_fields and not (st.header and len(fields) >= len(st.header) // 2):
        return None
    # prose with commas is not a record: every field short
    if any(len(f) > 40 for f in fields):
        return None
    cols: list[str | None] | None = None
    if st.header is not None and len(fields) == len(st.header):
        cols = st.header
    elif len(fields) == km.ncols:
        cols = list(km.card.feature_names)
    elif len(fields) == km.ncols + 1 and _INTLIKE.match(fields[0]):
        cols = [None] + list(km.card.feature_names)
    elif st.header is not None and len(fields) == len(st.header) + 1 and _INTLIKE.match(fields[0]):
        cols = [None] + list(st.header)
    c = Candidate(text=line.strip()[:300], kind=kind, in_prompt=in_prompt)
    if cols is None:
        expected = len(st.header) if st.header is not None else km.ncols
        c.error = f"{len(fields)} fields, expected {expected}"
        c.truncated = len(fields) < expected
        return c
    rec: dict[str, str] = {}
    for col, v in zip(cols, fields):
        if col is not None and col != ID_KEY:
            rec.setdefault(col, v)
    c.fields = rec
    return c


_CAT_SEP = re.compile(r"[\s_\-]+")
_MAX_CATEGORY_WORDS = 3
_PRINTED_MISSING = {"nan", "none", "na", "<na>", "null"}


def norm_category(v: str) -> str:
    """Case-, space-, underscore- and hyphen-blind spelling of a category value."""
    return _CAT_SEP.sub(" ", v.lower()).strip(" .")


def _text_table_header(line: str, km: KeyMap) -> list[str] | None:
    """Columns of a whitespace-separated header such as pandas prints (``gender  age ...``)."""
    if any(d in line for d in ",;|\t:"):
        return None
    tokens = line.split()
    if len(tokens) < km.min_fields:
        return None
    cols = [km.resolve(t) for t in tokens]
    if any(c is None for c in cols):
        return None
    return cols  # type: ignore[return-value]


def _align_text_row(tokens: list[str], cols: list[str], km: KeyMap) -> tuple[int, list[str]] | None:
    """(score, one value per column) for whitespace tokens, or None if they cannot fit.

    Printed tables do not quote values, so a category may span words (``formerly smoked``,
    ``No Info``). Numeric columns take one number (or a printed missing value); a
    categorical column takes one word, or two to three that spell a known category. Among
    the splits that use every token, the one whose values are most often a known category
    (or a number where the column is numeric) wins; ties go to the earliest, i.e.
    shortest-first, split. The score is that count.
    """
    known: dict[str, set[str]] = {}
    numeric: set[str] = set()
    for c in cols:
        col = km.card.columns.get(c)
        if col is not None and col.type == "categorical":
            names = list(col.categories or []) + list(col.synonyms)
            known[c] = {norm_category(n) for n in names}
        elif col is not None and col.type in ("int", "float"):
            numeric.add(c)
    best: tuple[int, list[str]] | None = None

    def walk(i: int, j: int, score: int, acc: list[str]) -> None:
        nonlocal best
        if j == len(cols):
            if i == len(tokens) and (best is None or score > best[0]):
                best = (score, list(acc))
            return
        left = len(cols) - j - 1
        widest = _MAX_CATEGORY_WORDS if cols[j] in known else 1
        for w in range(1, widest + 1):
            if i + w + left > len(tokens):
                break
            if w > 1 and _NUMERIC.match(tokens[i + w - 1]):
                break
            value = " ".join(tokens[i : i + w])
            if cols[j] in known:
                hit = norm_category(value) in known[cols[j]]
                if w > 1 and not hit:
                    continue
            else:
                hit = bool(_NUMERIC.match(value))
                if cols[j] in numeric and not hit and value.lower() not in _PRINTED_MISSING:
                    continue  # a word under a numeric header: the row is misaligned here
            acc.append(value)
            walk(i + w, j + 1, score + hit, acc)
            acc.pop()

    walk(0, 0, 0, [])
    return best


def _text_table_row(line: str, km: KeyMap, st: _State, in_prompt: bool) -> Candidate | None:
    """A row of a printed table under ``st.text_header``: ``3  Female  46.0  0 ...``.

    pandas prints the index first, a hand-written table may not: both readings are tried
    and the better-fitting one is kept (the index reading on a tie). A row must start
    with a number (index or ID); the ``...`` row of an elided table is not a record.
    """
    cols = st.text_header
    tokens = line.split()
    if cols is None or len(tokens) < 2 or not _INTLIKE.match(tokens[0]):
        return None
    if any(t.strip(".") == "" for t in tokens) or any(d in line for d in ",;|\t"):
        return None
    c = Candidate(text=line.strip()[:300], kind="text_table", in_prompt=in_prompt)
    fits = [
        a
        for a in (_align_text_row(tokens[1:], cols, km), _align_text_row(tokens, cols, km))
        if a is not None
    ]
    best = max(fits, key=lambda a: a[0]) if fits else None
    if best is None or best[0] * 2 < len(cols):
        c.error = f"{len(tokens) - 1} fields do not line up with the {len(cols)} header columns"
        c.truncated = len(tokens) - 1 < len(cols)
        return c
    c.fields = {col: v for col, v in zip(cols, best[1]) if col != ID_KEY}
    return c


def _kv_inline(line: str, km: KeyMap) -> dict[str, str] | None:
    """``Gender: Female, Age: 45, ...`` on one line."""
    if line.count(":") + line.count("=") < 3:
        return None
    body = _LIST_PREFIX.sub("", line, count=1)
    rec: dict[str, str] = {}
    for m in _KV_INLINE.finditer(body):
        col = km.resolve(m.group("key"))
        if col is not None and col != ID_KEY:
            rec.setdefault(col, _clean_value(m.group("val")))
    return rec if len(rec) >= km.min_fields and _value_like(rec) else None


def _value_like(rec: dict[str, str]) -> bool:
    """False for schema descriptions (``Age: the age of the patient``, ``Sex:``): more than
    half of the values empty or longer than four words."""
    wordy = sum(1 for v in rec.values() if not v or len(v.split()) > 4)
    return wordy * 2 <= len(rec)


def extract(text: str, km: KeyMap, in_prompt: bool, st: _State | None = None) -> list[Candidate]:
    """All record candidates in one text piece, in order (objects first, then lines)."""
    st = st or _State()
    cands, rest = _objects(text, km, in_prompt)
    block: dict[str, str] = {}
    block_lines: list[str] = []

    def flush() -> None:
        if len(block) >= km.min_fields and _value_like(block):
            cands.append(
                Candidate(
                    text=" | ".join(block_lines)[:300],
                    kind="kv",
                    in_prompt=in_prompt,
                    fields=dict(block),
                )
            )
        block.clear()
        block_lines.clear()

    for line in rest.split("\n"):
        s = line.strip()
        if not s:
            st.text_header = None  # a printed table has no blank lines inside
            if len(block) >= km.min_fields:
                flush()
            continue
        if _TABLE_SEP.match(s):
            continue
        text_header = _text_table_header(s, km)
        if text_header is not None:
            flush()
            st.text_header = text_header
            continue
        if st.text_header is not None:
            row = _text_table_row(s, km, st, in_prompt)
            if row is not None:
                cands.append(row)
                continue
            if s.startswith("`"):
                st.text_header = None
        inline = _kv_inline(s, km) if s.count(",") + s.count(";") + s.count("|") >= 2 else None
        if inline is not None:
            flush()
            cands.append(Candidate(text=s[:300], kind="kv", in_prompt=in_prompt, fields=inline))
            continue
        m = _KV_LINE.match(s)
        if m is not None and s.count(",") < 3:
            col = km.resolve(m.group("key"))
            if col is not None:
                if col in block:
                    flush()
                if col != ID_KEY:
                    block[col] = _clean_value(m.group("val"))
                    block_lines.append(s)
                continue
        c = _delimited(s, km, st, in_prompt)
        if c is not None:
            flush()
            cands.append(c)
            continue
        # other prose: ends a key-value block only if the block is complete enough
        if block and not _HAS_DIGIT.search(s) and len(block) >= km.min_fields:
            flush()
    flush()
    return cands


def parse_text(text: str, card: DatasetCard, prompt_texts: tuple[str, ...] = ()) -> list[Candidate]:
    """Every record candidate of a raw output, prompt-side ones marked ``in_prompt``."""
    km = KeyMap(card)
    st = _State()
    out: list[Candidate] = []
    for piece, is_prompt in segment(text, prompt_texts):
        out.extend(extract(piece, km, is_prompt, st))
    return out
