#!/usr/bin/env bash
# Serve one paper model with vLLM for the openai backend (run on the GPU node; vLLM is not a
# dependency of synllm: `pip install vllm` in its own environment).
#   bash profiles/vllm/serve.sh mistralai/Mistral-7B-Instruct-v0.2 [PORT]
# 4-bit bitsandbytes weights, as the paper loads them; drop the two flags for float16.
# Offline nodes: fill the HF cache first (synllm fetch-models) and export HF_HUB_OFFLINE=1.
set -euo pipefail
MODEL="${1:?usage: serve.sh HF_ID [PORT]}"
PORT="${2:-8000}"
exec vllm serve "$MODEL" --port "$PORT" --quantization bitsandbytes \
  --load-format bitsandbytes --max-num-seqs 64 --seed 42
