#!/usr/bin/env bash
# The criterion groups of benches/runtime.rs, run again and again, each run measuring both
# runtimes in each group, ripple first in odd runs and tokio first in even ones
# (RUNTIME_BENCH_TOKIO_FIRST), so that the two alternate and neither always goes first: per group,
# the median over the runs of ripple's time divided by tokio's, with the smallest and largest
# ratio beside it (the spread), and each side's median time in microseconds. A time from one run
# alone moves by tens of percent on this shared machine; a ratio taken within one run moves far
# less.
#
# `mt_cpu_scaling` times each runtime on 1 worker and on 2: its line gives each runtime's
# speed-up from a second worker (time on 1 over time on 2) and ripple's over tokio's (higher is
# better there, unlike every other line).
#
# Usage: bash benches/runtime_ratios.sh [FILTER] [RUNS] (default: the multi-thread groups, `mt_`,
# and 5 runs). FILTER is a regex, passed on to criterion, which matches it against GROUP/FUNCTION;
# here it is matched against GROUP/ (so `^yield_many/` picks one group). RATIO_TIME sets
# criterion's measurement time in seconds (default 3). The last lines, one per group, read
#   GROUP RATIO MIN-MAX RIPPLE TOKIO (N runs)
set -euo pipefail
cd "$(dirname "$0")/.."
filter=${1:-mt_}
runs=${2:-5}
time=${RATIO_TIME:-3}
target=${CARGO_TARGET_DIR:-target}
cargo bench --quiet --bench runtime --no-run
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for run in $(seq "$runs"); do
  echo "run $run of $runs" >&2
  # Forget earlier runs' results, so that a group that fails to run is missing, not stale.
  for group in "$target"/criterion/*/; do
    [[ $(basename "$group")/ =~ $filter ]] && rm -rf "$group"
  done
  if ((run % 2 == 0)); then export RUNTIME_BENCH_TOKIO_FIRST=1; else unset RUNTIME_BENCH_TOKIO_FIRST; fi
  if ! cargo bench --quiet --bench runtime -- "$filter" --warm-up-time 1 \
    --measurement-time "$time" >"$work/log" 2>&1; then
    cat "$work/log" >&2
    exit 1
  fi
  # Every group that ran: ripple's and tokio's median times (or speed-ups), in microseconds.
  for group in "$target"/criterion/*/; do
    group=$(basename "$group")
    [[ $group/ =~ $filter ]] || continue
    python3 - "$target/criterion/$group" >>"$work/$group.runs" <<'PY'
import json, os, sys
base = sys.argv[1]
def median(name):
    path = os.path.join(base, name, "new", "estimates.json")
    return json.load(open(path))["median"]["point_estimate"] / 1e3 if os.path.exists(path) else None
if os.path.isdir(os.path.join(base, "ripple_1_worker")):
    # Speed-ups from a second worker.
    r = median("ripple_1_worker") / median("ripple")
    t = median("tokio_1_worker") / median("tokio")
else:
    r, t = median("ripple"), median("tokio")
print(r, t, r / t)
PY
  done
done
for file in "$work"/*.runs; do
  python3 - "$file" <<'PY'
import os, statistics, sys
rows = [tuple(map(float, line.split())) for line in open(sys.argv[1])]
ratios = [q for _, _, q in rows]
print(f"{os.path.basename(sys.argv[1])[:-5]:<22} {statistics.median(ratios):6.3f} "
      f"{min(ratios):.3f}-{max(ratios):.3f} "
      f"{statistics.median(r for r, _, _ in rows):10.3f} {statistics.median(t for _, t, _ in rows):10.3f} "
      f"({len(rows)} runs)")
PY
done
