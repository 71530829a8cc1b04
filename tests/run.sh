#!/usr/bin/env bash
# Install grukit with every backend into .venv, then run the test suite once per Keras
# backend (TensorFlow, JAX, PyTorch). This is the command README.md gives and .ci/run calls.
#   bash tests/run.sh            # everything
#   bash tests/run.sh -k mgu     # extra arguments go to pytest
# Environment:
#   GRUKIT_TEST_BACKENDS="jax torch"   the passes to run (default: tensorflow jax torch)
#   GRUKIT_TEST_JOBS=1                 run the passes one after another, output streamed
#                                      (default: side by side, one per core, each pass's
#                                      output shown when it ends)
#   GRUKIT_TEST_DATA=skip-missing      skip, instead of fail, the tests whose data is absent
#   GRUKIT_DATA_DIR=...                the data (default: ../shared/data)
#   GRUKIT_TEST_XLA_EMITTERS=fusion    keep XLA's default CPU emitters (see below)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
start=$(date +%s)
# The passes start dozens of Python processes that import TensorFlow, Keras, JAX or
# PyTorch: with PYTHONDONTWRITEBYTECODE set (as on some CI images), each of them compiles
# thousands of modules from source again (a clean clone's run here: 747 s; with this line,
# 625 s). The first import of a module writes its bytecode into .venv instead.
unset PYTHONDONTWRITEBYTECODE

# --- install: uv when it is available (several times faster than pip here), else pip.
# torch is pinned to the local CPU wheel: an unpinned torch pulls a multi-GB CUDA build.
torch_wheel=$(ls "${PIP_FIND_LINKS:-/opt/wheels}"/torch-2.13.0*.whl 2>/dev/null | head -n 1 || true)
python -m pip install -q --disable-pip-version-check uv >/dev/null 2>&1 || true
installed=0
if python -m uv --version >/dev/null 2>&1; then
  uv_install() { python -m uv pip install -q --python "$(command -v python)" "$@"; }
  if { if [ -n "$torch_wheel" ]; then uv_install "$torch_wheel"; \
       else python -m pip install -q "torch==2.13.0"; fi; } \
     && uv_install -e ".[dev]"; then
    installed=1
  else
    echo "uv could not install the test environment; falling back to pip" >&2
  fi
fi
if [ "$installed" = 0 ]; then
  python -m pip install -q --upgrade pip
  python -m pip install -q "torch==2.13.0"
  python -m pip install -q -e ".[dev]"
fi
echo "=== installed in $(( $(date +%s) - start )) s"

export TF_CPP_MIN_LOG_LEVEL=3 PYTHONUNBUFFERED=1
export GRUKIT_DATA_DIR=${GRUKIT_DATA_DIR:-$(cd .. && pwd)/shared/data}
# Tests that read the data fail when it is missing; GRUKIT_TEST_DATA=skip-missing skips them.
export GRUKIT_TEST_DATA=${GRUKIT_TEST_DATA:-required}
export GRUKIT_TEST_BACKENDS=${GRUKIT_TEST_BACKENDS:-tensorflow jax torch}
backends=$GRUKIT_TEST_BACKENDS
jobs=${GRUKIT_TEST_JOBS:-$(nproc 2>/dev/null || echo 1)}
pass() {  # one pytest pass under one backend
  KERAS_BACKEND=$1 python -m pytest -q -p no:cacheprovider --durations=15 tests "${@:2}"
}
if [ "$jobs" -gt 1 ]; then
  # The passes side by side (each is mostly one busy thread). One compute thread per
  # process: three passes' thread pools on a few cores would only take turns.
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
  export TF_NUM_INTRAOP_THREADS=${TF_NUM_INTRAOP_THREADS:-1}
  export TF_NUM_INTEROP_THREADS=${TF_NUM_INTEROP_THREADS:-2}
  export XLA_FLAGS=${XLA_FLAGS:---xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1}
fi
# XLA on CPU compiles the thousands of tiny programs of the JAX tests faster with its
# elemental emitters than with its fusion emitters (same values: the tolerances are
# unchanged; tests/test_cells_reference.py under JAX: 64 s -> 56 s on a quiet 2-core VM).
# Used where this jaxlib knows the flag (an unknown flag aborts XLA);
# GRUKIT_TEST_XLA_EMITTERS=fusion keeps XLA's default.
fast_xla="--xla_cpu_use_fusion_emitters=false"
case "${GRUKIT_TEST_XLA_EMITTERS:-elemental} ${XLA_FLAGS:-}" in
  fusion*|*fusion_emitters*) ;;
  *) if XLA_FLAGS="${XLA_FLAGS:-} $fast_xla" JAX_PLATFORMS=cpu python -c \
        "import jax.numpy as jnp; jnp.ones(2).block_until_ready()" >/dev/null 2>&1; then
       export XLA_FLAGS="${XLA_FLAGS:-} $fast_xla"
     fi ;;
esac
status=0
if [ "$jobs" -le 1 ]; then
  for backend in $backends; do
    echo "=== pytest, KERAS_BACKEND=$backend"
    pass "$backend" "$@" || status=1
  done
else
  # Each pass's output is shown whole when it ends, in the order the passes finish.
  logs=$(mktemp -d)
  trap 'rm -rf "$logs"' EXIT
  for backend in $backends; do
    ( set +e; pass "$backend" "$@" >"$logs/$backend.log" 2>&1; echo $? >"$logs/$backend.rc" ) &
  done
  remaining=$backends
  while [ -n "$remaining" ]; do
    sleep 2
    for backend in $remaining; do
      if [ -f "$logs/$backend.rc" ]; then
        echo "=== pytest, KERAS_BACKEND=$backend (finished after $(( $(date +%s) - start )) s)"
        cat "$logs/$backend.log"
        [ "$(cat "$logs/$backend.rc")" = 0 ] || status=1
        remaining=$(echo "$remaining" | tr ' ' '\n' | grep -vx "$backend" | tr '\n' ' ' | xargs || true)
      fi
    done
  done
  wait
fi
echo "=== done in $(( $(date +%s) - start )) s, status $status"
exit $status
