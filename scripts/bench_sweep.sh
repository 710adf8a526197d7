#!/usr/bin/env bash
# Measure the sweep runner on a fixed small SmolLM2 sweep: 1 worker vs 2 workers (fresh stores), Ray start-up,
# and the fully cached rerun (Ray and in-process). Prints one JSON line per run; timings also in each store's sweep.json.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD INTERP_NUM_THREADS=1 RAY_USAGE_STATS_ENABLED=0
OUT=${1:-/tmp/sweep-bench}
# the fixed small sweep: 4 tasks x (none, icl) x zero-shot x seed 0, 16 test queries (8 cells; on a machine
# with other jobs running the cost per cell is what varies, so this keeps the runner's own overheads visible)
rm -rf "$OUT"
PY=${PYTHON:-python}
ARGS="--model smollm2-135m --tasks-dir ${TASKS_DIR:-../shared/icl_tasks}
      --tasks present-past,capitalize,antonym,singular-plural --methods none,icl --settings zero-shot --seeds 0
      --n 16 --quiet --json"
for run in "w1 1" "w2 2" "w1 1" "w1 0"; do
  set -- $run
  start=$(date +%s.%N)
  summary=$($PY -m interp.cli sweep $ARGS --workers "$2" --out "$OUT/$1")
  end=$(date +%s.%N)
  echo "{\"store\": \"$1\", \"workers\": $2, \"process_wall_s\": $(echo "$end - $start" | bc), \"summary\": $summary, \"timings\": $($PY -c "import json,sys; print(json.dumps(json.load(open('$OUT/$1/sweep.json'))['timings_s']))")}"
done
