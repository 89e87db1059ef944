#!/usr/bin/env bash
# GPU check of the paper's generation path (issue 17): one paper cell (diabetes, FEATDESC,
# 1,000 records in mini-batches of 20 by default) for gpt2 and one 7B paper model in 4-bit NF4,
# decoded at batch 1 (max_parallel_sequences 1) and batched (width sized from free GPU memory),
# with the models read from the local Hugging Face cache (HF_HUB_OFFLINE=1; fill it first with
# `synllm fetch-models --configfile config/paper.yaml`). Prints one table: tokens/s, records/s,
# load seconds and peak GPU memory per model and mode; writes benchmarks/gpu_paper_cell.json.
#
#   bash benchmarks/gpu_paper_cell.sh [N_RECORDS] [7B_MODEL_SLUG]
#   bash benchmarks/gpu_paper_cell.sh --cpu [N_RECORDS]
#
# On a machine without CUDA it says so and exits 0. --cpu runs the same measurement on the
# CPU with the embedded model's Hugging Face entry (smollm2-135m-hf), float32 vs 4-bit NF4
# (bitsandbytes on CPU): load seconds, weights MB, RSS and peak RSS, tok/s at batch 1 and
# batched (benchmarks/paper_cell_cpu.py; writes benchmarks/gpu_paper_cell_cpu.json).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
if [ "${1:-}" = "--cpu" ]; then
  export HF_HUB_OFFLINE=1
  exec "$PY" benchmarks/paper_cell_cpu.py --n "${2:-8}"
fi
N="${1:-1000}"
BIG="${2:-mistral-7b-instruct-v0.2}"
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu_paper_cell: no CUDA device visible to torch on $(hostname): nothing to measure (exit 0)"
  exit 0
fi
export HF_HUB_OFFLINE=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
"$PY" - "$N" "gpt2" "$BIG" <<'PY'
import json, sys, tempfile, time
from pathlib import Path

import torch

sys.path.insert(0, "benchmarks")
from generation import render_prompt  # noqa: E402
from synllm.cards import load_card  # noqa: E402
from synllm.generate import run as gen  # noqa: E402
from synllm.generate.base import GenerationContext, GenerationSettings, get_backend  # noqa: E402
from synllm.registry import load_registry  # noqa: E402

n, models = int(sys.argv[1]), sys.argv[2:]
registry = load_registry("config/models.yaml")
card = load_card("resources/datasets/diabetes.yaml")
with tempfile.TemporaryDirectory() as tmp:
    prompt = json.loads(render_prompt(Path(tmp), "diabetes", "FEATDESC", 20).read_text())
rows = []
for slug in models:
    spec = registry.get(slug)
    backend = get_backend("transformers")
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    backend.load(spec, GenerationSettings(constrained=False), GenerationContext(card=card))
    load_s = time.perf_counter() - t0
    for mode, width in (("batch 1", 1), ("batched", None)):
        settings = GenerationSettings(constrained=False, batch_size=20, max_attempts=1,
                                      max_parallel_sequences=width)
        settings = settings.model_copy(update={"tokens_per_record": float(
            backend.count_tokens(gen.record_json_line(gen.example_record(card))))})
        backend.stats.output_tokens = 0
        torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        texts, summary = gen.run_batches(backend, prompt, n, 42, settings, None)
        dt = time.perf_counter() - t
        rows.append({"model": slug, "quantization": backend.stats.quantization, "mode": mode,
                     "width": summary["parallel_sequences"], "records": n,
                     "records_found": summary["records_found"],
                     "output_tokens": backend.stats.output_tokens, "seconds": round(dt, 1),
                     "tok_s": round(backend.stats.output_tokens / dt, 1),
                     "records_s": round(summary["records_found"] / dt, 2),
                     "load_s": round(load_s, 1),
                     "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20)})
        print(json.dumps(rows[-1]), flush=True)
    del backend
    torch.cuda.empty_cache()
head = ["model", "quantization", "mode", "width", "tok_s", "records_s", "load_s", "peak_gpu_mb",
        "seconds"]
print("\n| " + " | ".join(head) + " |\n|" + "---|" * len(head))
for r in rows:
    print("| " + " | ".join(str(r[h]) for h in head) + " |")
out = {"device": torch.cuda.get_device_name(0), "records_per_cell": n, "rows": rows}
Path("benchmarks/gpu_paper_cell.json").write_text(json.dumps(out, indent=2) + "\n")
PY
