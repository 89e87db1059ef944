#!/usr/bin/env bash
# Create .venv and install synllm with its pinned dependencies (idempotent).
# Needs Python 3.11+ with venv, a C/C++ compiler and cmake (llama-cpp-python builds from
# source the first time; the wheel is kept in a cache folder afterwards).
#
# llama-cpp-python is built by this script, not by pip's default source build: on x86-64 the
# default (GGML_NATIVE=ON, -march=native) compiles llama.cpp's AMX kernels on CPUs that have
# AMX (Intel Sapphire Rapids and later), and in llama-cpp-python 0.3.36 those kernels crash
# (SIGSEGV in ggml_backend_amx_mul_mat) on the embedded SmolLM2 Q4_1 model as soon as more
# than one token is evaluated at once. We build a portable AVX2 wheel instead
# (GGML_NATIVE=OFF: SSE4.2, AVX, AVX2, BMI2, FMA, F16C; no AVX-512, no AMX) and keep it in
# ${SYNLLM_WHEEL_CACHE:-~/.cache/synllm/wheels}. Set LLAMA_CMAKE_ARGS to build with other
# flags (for example "-DGGML_NATIVE=ON" on a CPU without AMX); the cache folder is keyed by them.
#
# --peers also builds the pinned environments of envs/*.txt (generators and attacks whose pins
# clash with ours: docs/peers.md), each once, outside the repo (synllm envs build), so an
# offline run finds them; the workflow builds a missing one itself on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=0
for arg in "$@"; do
  case "$arg" in
    --peers) PEERS=1 ;;
    *) echo "setup: unknown option $arg (known: --peers)" >&2; exit 2 ;;
  esac
done
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip

# --- llama-cpp-python: pinned version from pyproject.toml, built once per flag set ---------
LLAMA_VERSION="$(sed -n 's/^ *"llama-cpp-python==\([^"]*\)".*/\1/p' pyproject.toml)"
[ -n "$LLAMA_VERSION" ] || { echo "setup: no llama-cpp-python pin in pyproject.toml" >&2; exit 1; }
if [ "$(uname -m)" = "x86_64" ]; then
  LLAMA_CMAKE_ARGS="${LLAMA_CMAKE_ARGS:--DGGML_NATIVE=OFF}"
else
  LLAMA_CMAKE_ARGS="${LLAMA_CMAKE_ARGS:-}"
fi
FLAGS_KEY="$(printf '%s %s %s' "$(uname -m)" "$LLAMA_VERSION" "$LLAMA_CMAKE_ARGS" | sha256sum | cut -c1-12)"
WHEEL_DIR="${SYNLLM_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/synllm/wheels}/$FLAGS_KEY"
wheel() { ls "$WHEEL_DIR"/llama_cpp_python-"$LLAMA_VERSION"-*.whl 2>/dev/null | head -n1; }
if [ -z "$(wheel)" ]; then
  echo "setup: building llama-cpp-python $LLAMA_VERSION (CMAKE_ARGS='$LLAMA_CMAKE_ARGS'), a few minutes"
  mkdir -p "$WHEEL_DIR"
  CMAKE_ARGS="$LLAMA_CMAKE_ARGS" \
  CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
    .venv/bin/python -m pip wheel -q --no-deps --no-cache-dir --no-binary llama-cpp-python \
      -w "$WHEEL_DIR" "llama-cpp-python==$LLAMA_VERSION"
fi
installed_key="$(cat .venv/.llama-cpp-build 2>/dev/null || true)"
if [ "$installed_key" != "$FLAGS_KEY" ]; then
  .venv/bin/python -m pip install -q --force-reinstall --no-deps "$(wheel)"
  echo "$FLAGS_KEY" > .venv/.llama-cpp-build
fi

# --- everything else, pinned in pyproject.toml ----------------------------------------------
# peers: SDV for the CTGAN/TVAE peer generators and their tests (docs/peers.md); gpu:
# bitsandbytes, the paper's 4-bit NF4, which 0.50.2 also runs on CPU (the tests load every
# paper model class in NF4 there): a 43 MB wheel (129 MB installed, CUDA and ROCm kernels
# included), needs only torch, numpy and packaging; no pin moves
.venv/bin/python -m pip install -q -e ".[dev,peers,gpu]"
.venv/bin/synllm --version >/dev/null

# smoke test: evaluate a multi-token batch with the embedded model (the AMX crash above)
if ! .venv/bin/python - <<'PY'
from llama_cpp import Llama
from synllm.registry import load_registry
path = load_registry("config/models.yaml").get("smollm2-135m").gguf_path()
llm = Llama(model_path=str(path), n_ctx=256, n_threads=1, verbose=False)
llm.eval(llm.tokenize(b"synthetic clinical records, one per line"))
PY
then
  echo "setup: llama-cpp-python crashed evaluating a token batch with the embedded model;" \
       "rebuild it with other flags: LLAMA_CMAKE_ARGS='...' bash scripts/setup.sh" >&2
  exit 1
fi
echo "synllm installed in .venv"
if [ "$PEERS" = 1 ]; then
  # shellcheck disable=SC2046
  .venv/bin/synllm envs build $(for f in envs/*.txt; do basename "$f" .txt; done)
fi
