#!/usr/bin/env bash
# The imdb-sentiment search on one GPU: a keras-tuner chief and WORKERS worker processes
# sharing the device (JAX backend). One process leaves an H100/H200 mostly idle (each
# recurrent step is a few small kernels), so several trials run at once. The chief starts
# no trial after TIME_LIMIT seconds; the running ones finish, then it writes
# OUT/trials.csv, trials.md and best_hparams.json. Re-running resumes the search.
#
#   experiments/imdb_sentiment/search_gpu.sh OUT [WORKERS [TIME_LIMIT [MAX_TRIALS]]] [-- EXTRA TUNE ARGS]
#   e.g. experiments/imdb_sentiment/search_gpu.sh runs/imdb-wide 8 180 60
#
# Logs: OUT/logs/{chief,tunerN}.log. The tables and the variant comparison afterwards, on
# any machine that has OUT (the comparison needs the variants' best checkpoints), even if
# the search was stopped: grukit zoo tune imdb-sentiment --profile search --max-trials MAX_TRIALS --epochs 3
#   --set bucket=128 --set patience=1 --report --compare variant --out OUT
set -uo pipefail
out=${1:?usage: $0 OUT [WORKERS [TIME_LIMIT [MAX_TRIALS]]] [-- EXTRA TUNE ARGS]}
shift
workers=8; limit=180; max=60
[[ $# -gt 0 && $1 != -- ]] && { workers=$1; shift; }
[[ $# -gt 0 && $1 != -- ]] && { limit=$1; shift; }
[[ $# -gt 0 && $1 != -- ]] && { max=$1; shift; }
[[ $# -gt 0 && $1 == -- ]] && shift
for n in "$workers" "$max"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "$0: WORKERS and MAX_TRIALS must be positive integers; got '$n'" >&2; exit 2; }
done
export KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
export KERASTUNER_ORACLE_IP=127.0.0.1 KERASTUNER_ORACLE_PORT=${KERASTUNER_ORACLE_PORT:-8765}
mkdir -p "$out/logs"
cmd=(python3 -m grukit --backend jax zoo tune imdb-sentiment --profile search --max-trials "$max" --epochs 3
     --set bucket=128 --set patience=1 --time-limit "$limit" --out "$out" "$@")
echo "chief + $workers workers: ${cmd[*]}"
KERASTUNER_TUNER_ID=chief "${cmd[@]}" > "$out/logs/chief.log" 2>&1 &
chief=$!
sleep 2
pids=()
for ((i = 0; i < workers; i++)); do
  KERASTUNER_TUNER_ID=tuner$i "${cmd[@]}" > "$out/logs/tuner$i.log" 2>&1 &
  pids+=($!)
done
wait "$chief"; status=$?
wait "${pids[@]}"
grep -h "trial done" "$out"/logs/tuner*.log | sort > "$out/logs/trials_done.txt"
echo "chief exit $status; $(wc -l < "$out/logs/trials_done.txt") trials done"
exit $status
