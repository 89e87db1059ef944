"""llama.cpp backend (llama-cpp-python): GGUF models on CPU, the project's default local path.

Measured on a 2-core CPU with SmolLM2-135M Q4_1 (benchmarks/constrained_decoding.md): load
0.1 s, 45-85 tokens/s; with a JSON-schema grammar every record parses. Constrained mode makes
one call per record (the prompt prefix stays in llama.cpp's KV cache, so only the record is
decoded each time); unconstrained mode makes one call per mini-batch with a token budget for
all its records, like the paper.

The decode grammar is :func:`record_gbnf`: keys in card order, categories as enums (incl. null
for nullable columns) and the integer part of every number held to the card's range, which
llama-cpp-python's own JSON-schema converter does not do (it ignores minimum/maximum and drops
the enums of nullable columns; SmolLM2-135M then wrote 0 schema-valid of 8 test records, 8 of 8
with this grammar).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from synllm.errors import ConfigError
from synllm.generate.base import (
    BackendStats,
    GenerationContext,
    GenerationSettings,
    call_seed,
    resolve_constrained,
    token_budget,
)

MAX_CTX = 8192
"""Context cap (tokens): the embedded models' KV cache stays small on CPU."""


def grammar_schema(schema: dict) -> dict:
    """Copy of a record JSON schema that llama-cpp-python's converter turns into a faithful
    grammar.

    The converter (``llama_cpp.llama_grammar``) turns ``"type": [..., "null"]`` into a bare
    union of types and drops the ``enum`` beside it, so nullable categoricals would accept any
    string; enums are therefore written without ``type`` (``null`` stays an enum value), and
    other type lists become ``anyOf`` of single-type schemas. Integer bounds are cast to int.
    (The converter ignores numeric ``minimum``/``maximum``: ranges stay the validator's job.)
    """
    out = json.loads(json.dumps(schema))
    props = out.get("properties", {})
    for name, prop in list(props.items()):
        types = prop.get("type")
        if "enum" in prop:
            props[name] = {"enum": prop["enum"]}
            continue
        if prop.get("type") == "integer" or (isinstance(types, list) and "integer" in types):
            for key in ("minimum", "maximum"):
                if key in prop and float(prop[key]).is_integer():
                    prop[key] = int(prop[key])
        if isinstance(types, list):
            rest = {k: v for k, v in prop.items() if k != "type"}
            props[name] = {"anyOf": [{**rest, "type": t} if t != "null" else {"type": "null"} for t in types]}
    return out


def _lit(text: str) -> str:
    """GBNF string literal for ``text``."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _same_length(a: str, b: str) -> list[list[str]]:
    """Digit-class sequences matching exactly the integers a..b (equal-length decimal strings)."""
    if len(a) == 1:
        return [[f"[{a}-{b}]"]]
    if a[0] == b[0]:
        return [[f"[{a[0]}]"] + rest for rest in _same_length(a[1:], b[1:])]
    n = len(a) - 1
    out: list[list[str]] = []
    lo_first, hi_first = int(a[0]), int(b[0])
    if a[1:] != "0" * n:
        out += [[f"[{a[0]}]"] + rest for rest in _same_length(a[1:], "9" * n)]
        lo_first += 1
    tail: list[list[str]] = []
    if b[1:] != "9" * n:
        tail = [[f"[{b[0]}]"] + rest for rest in _same_length("0" * n, b[1:])]
        hi_first -= 1
    if lo_first <= hi_first:
        out.append([f"[{lo_first}-{hi_first}]"] + ["[0-9]"] * n)
    return out + tail


def int_range_gbnf(lo: int, hi: int) -> str:
    """GBNF alternatives matching exactly the decimal integers lo..hi (0 <= lo <= hi),
    without leading zeros, e.g. (80, 300) -> [8-9][0-9] | [1-2][0-9][0-9] | [3][0][0]."""
    if lo < 0 or hi < lo:
        raise ConfigError(f"constrained decoding: bad integer range [{lo}, {hi}]")
    alts: list[list[str]] = []
    for digits in range(len(str(lo)), len(str(hi)) + 1):
        a = max(lo, 10 ** (digits - 1) if digits > 1 else 0)
        b = min(hi, 10**digits - 1)
        if a <= b:
            alts += _same_length(str(a), str(b))
    return "(" + " | ".join(" ".join(seq) for seq in alts) + ")"


def _value_rule(prop: dict, decimals: int) -> str:
    """GBNF of one property value of a flat record schema (see :func:`record_gbnf`)."""
    types = prop.get("type")
    types = types if isinstance(types, list) else [types]
    null = ' | "null"' if "null" in types or None in prop.get("enum", []) else ""
    if "enum" in prop:
        return " | ".join(_lit(json.dumps(v)) for v in prop["enum"] if v is not None) + null
    lo, hi = prop.get("minimum"), prop.get("maximum")
    if "integer" in types or "number" in types:
        if lo is None or hi is None or lo < 0:
            body = '"-"? ([0-9] | [1-9] [0-9]{0,15})'
        else:
            body = int_range_gbnf(math.floor(lo), math.floor(hi))
        if "number" in types:
            body = f'{body} ("." [0-9]{{1,{decimals}}})?'
        return f"({body}){null}"
    if "string" in types:
        return r'"\"" [^"\\\x00-\x1f]{0,40} "\""' + null
    raise ConfigError(f"constrained decoding: unsupported property schema {prop}")


def record_gbnf(schema: dict, decimals: int = 2) -> str:
    """GBNF grammar of one record of a flat record JSON schema, keys in schema order.

    Unlike ``LlamaGrammar.from_json_schema`` (llama-cpp-python's converter ignores numeric
    ``minimum``/``maximum`` and the enums of nullable columns), the integer part of every
    number is held to the column's range exactly (:func:`int_range_gbnf` of floor(min) ..
    floor(max)) with at most ``decimals`` decimals, so only the fraction can step over a
    non-integral bound (e.g. 0.05 for min 0.1, 15.5 for max 15); the validator still checks.
    One line, a single optional space after separators.
    """
    props = schema.get("properties") or {}
    if not props:
        raise ConfigError("constrained decoding: record schema has no properties")
    lines, parts = [], []
    for i, (name, prop) in enumerate(props.items()):
        rule = f"v{i}"
        lines.append(f"{rule} ::= {_value_rule(prop, decimals)}")
        parts.append(f"{_lit(json.dumps(name))} space \":\" space {rule}")
    body = ' space "," space '.join(parts)
    lines.insert(0, f'root ::= "{{" space {body} space "}}"')
    lines.append('space ::= " "?')
    return "\n".join(lines) + "\n"


def format_prompt(llm: Any, spec: Any, system: str, user: str) -> tuple[str, str]:
    """(prompt text, how) using the GGUF's chat template when it has one, else plain_format."""
    template = (llm.metadata or {}).get("tokenizer.chat_template")
    if spec.chat_template == "auto" and template:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        eos = _token_text(llm, llm.token_eos())
        bos = _token_text(llm, llm.token_bos())
        fmt = Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos)
        if spec.system_role and system:
            messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        else:
            messages = [{"role": "user", "content": f"{system}\n\n{user}" if system else user}]
        return fmt(messages=messages).prompt, "chat_template"
    return spec.plain_format.format(system=system, user=user), "plain"


def _token_text(llm: Any, token: int) -> str:
    if token is None or token < 0:
        return ""
    return llm.detokenize([token], special=True).decode("utf-8", errors="ignore")


class LlamaCppBackend:
    """GGUF model through llama-cpp-python (see module docstring)."""

    name = "llamacpp"
    batched = True

    def __init__(self) -> None:
        self.stats = BackendStats(device="cpu", quantization="gguf")
        self.llm: Any = None
        self.spec: Any = None
        self.constrained = False
        self._grammars: dict[str, Any] = {}

    def load(self, spec: Any, settings: GenerationSettings, context: GenerationContext | None) -> None:
        """Open the GGUF file (never downloads); ``n_threads`` from the registry."""
        try:
            from llama_cpp import Llama
        except ImportError:  # pragma: no cover - dependency of the project
            raise ConfigError("models: backend 'llamacpp' needs llama-cpp-python") from None
        path = spec.gguf_path()
        n_ctx = min(spec.context or 4096, MAX_CTX)
        threads = spec.threads or os.cpu_count() or 1
        self.llm = Llama(
            model_path=str(path), n_ctx=n_ctx, n_threads=threads, seed=0, verbose=False
        )
        self.spec = spec
        self.constrained = resolve_constrained(settings.constrained, "llamacpp", spec)
        self.stats.constrained = self.constrained
        self.stats.quantization = _gguf_type(path.name)
        self.stats.extra["n_ctx"] = n_ctx
        self.stats.extra["threads"] = threads

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def grammar(self, schema: dict) -> Any:
        """LlamaGrammar of one record (cached per schema)."""
        from llama_cpp import LlamaGrammar

        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            self._grammars[key] = LlamaGrammar.from_string(record_gbnf(schema), verbose=False)
        return self._grammars[key]

    def _complete(self, prompt: str, max_tokens: int, seed: int, settings: GenerationSettings,
                  grammar: Any = None) -> str:
        n_prompt = self.count_tokens(prompt)
        room = self.llm.n_ctx() - n_prompt - 1
        if room <= 0:
            raise ConfigError(
                f"models: prompt of {n_prompt} tokens does not fit the context of "
                f"{self.spec.slug!r} ({self.llm.n_ctx()} tokens)"
            )
        if max_tokens > room:
            warning = f"token budget cut from {max_tokens} to {room} to fit the context"
            if warning not in self.stats.warnings:
                self.stats.warnings.append(warning)
            max_tokens = room
        out = self.llm.create_completion(
            prompt,
            max_tokens=max_tokens,
            temperature=settings.temperature,
            top_p=settings.top_p,
            seed=seed,
            grammar=grammar,
        )
        usage = out.get("usage", {})
        self.stats.input_tokens += int(usage.get("prompt_tokens", n_prompt))
        self.stats.output_tokens += int(usage.get("completion_tokens", 0))
        self.stats.calls += 1
        return out["choices"][0]["text"]

    def generate(self, system: str, user: str, n_records: int, seed: int,
                 settings: GenerationSettings, schema: dict | None) -> list[str]:
        """Constrained: one grammar-bound call per record; else one call for all records."""
        prompt, how = format_prompt(self.llm, self.spec, system, user)
        self.stats.extra["prompt_format"] = how
        tpr = settings.tokens_per_record or 64.0
        if self.constrained and schema:
            grammar = self.grammar(schema)
            budget = settings.max_new_tokens or token_budget(1, tpr)
            return [
                self._complete(prompt, budget, call_seed(seed, i), settings, grammar).strip()
                for i in range(n_records)
            ]
        budget = settings.max_new_tokens or token_budget(n_records, tpr)
        return [self._complete(prompt, budget, call_seed(seed, 0), settings)]


def _gguf_type(filename: str) -> str:
    """Weight format from a GGUF file name, e.g. 'gguf-Q4_1' (or 'gguf')."""
    import re

    m = re.search(r"\.((?:I?Q\d[\w]*)|F16|F32|BF16)\.gguf$", filename, flags=re.IGNORECASE)
    return f"gguf-{m.group(1)}" if m else "gguf"


def create() -> LlamaCppBackend:
    return LlamaCppBackend()
