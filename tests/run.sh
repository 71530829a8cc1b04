#!/usr/bin/env bash
# Install grukit with every backend into .venv, then run the test suite once per
# Keras backend (TensorFlow, JAX, PyTorch). This is the command README.md gives and .ci/run calls.
#   bash tests/run.sh            # everything
#   bash tests/run.sh -k mgu     # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
# torch first and pinned: the local CPU wheel (an unpinned torch pulls a multi-GB CUDA build).
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[dev]"
export TF_CPP_MIN_LOG_LEVEL=3 PYTHONUNBUFFERED=1
export GRUKIT_DATA_DIR=${GRUKIT_DATA_DIR:-$(cd .. && pwd)/shared/data}
# Tests that read the data fail when it is missing; GRUKIT_TEST_DATA=skip-missing skips them.
export GRUKIT_TEST_DATA=${GRUKIT_TEST_DATA:-required}
status=0
for backend in ${GRUKIT_TEST_BACKENDS:-tensorflow jax torch}; do
  echo "=== pytest, KERAS_BACKEND=$backend"
  KERAS_BACKEND=$backend python -m pytest -q -p no:cacheprovider --durations=15 tests "$@" || status=1
done
exit $status
