#!/usr/bin/env bash
# The criterion groups of benches/runtime.rs, run again and again, each run measuring ripple and
# then tokio in each group (so the two alternate: ripple, tokio, ripple, tokio, ...): per group,
# the median over the runs of ripple's time divided by tokio's, with the smallest and largest
# ratio beside it (the spread), and each side's median time. A time from one run alone moves by
# tens of percent on this shared machine; a ratio taken within one run moves far less.
#
# Usage: bash benches/runtime_ratios.sh [FILTER] [RUNS] (default: the multi-thread groups, `mt_`,
# and 5 runs). FILTER is criterion's (a regex on group/function names). In `mt_cpu_scaling` the
# two sides are ripple on 1 worker and on 2, and the ratio printed is the first time over the
# second: the speed-up from a second worker. RATIO_TIME sets criterion's measurement time in seconds (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
filter=${1:-mt_}
runs=${2:-5}
time=${RATIO_TIME:-3}
target=${CARGO_TARGET_DIR:-target}
cargo bench --quiet --bench runtime --no-run 2>/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for run in $(seq "$runs"); do
  cargo bench --quiet --bench runtime -- "$filter" --warm-up-time 1 --measurement-time "$time" \
    >/dev/null 2>&1
  # Every group that ran: its two functions' median times, in nanoseconds.
  for group in "$target"/criterion/*/; do
    group=$(basename "$group")
    [[ $group =~ $filter ]] || continue
    python3 - "$target/criterion/$group" "$run" >>"$work/$group" <<'PY'
import json, os, sys
base, run = sys.argv[1], int(sys.argv[2])
def median(name):
    path = os.path.join(base, name, "new", "estimates.json")
    if not os.path.exists(path):
        return None
    return json.load(open(path))["median"]["point_estimate"]
names = sorted(os.listdir(base))
ripple = "ripple_1_worker" if "ripple_1_worker" in names else "ripple"
other = "ripple" if ripple == "ripple_1_worker" else "tokio"
r, t = median(ripple), median(other)
if r and t:
    print(r, t, r / t)
PY
  done
done
printf '%-24s %10s %18s %12s %12s\n' group ratio "spread (min-max)" "ripple (us)" "tokio (us)"
echo "(mt_cpu_scaling: speed-up, ripple on 1 worker / on 2 workers, in the two time columns)"
for file in "$work"/*; do
  python3 - "$file" "$runs" <<'PY'
import os, statistics, sys
rows = [tuple(map(float, line.split())) for line in open(sys.argv[1])]
group = os.path.basename(sys.argv[1])
ratios = [r for _, _, r in rows]
med = statistics.median(ratios)
print(f"{group:<24} {med:10.3f} {min(ratios):8.3f}-{max(ratios):.3f}  "
      f"{statistics.median(r for r, _, _ in rows) / 1e3:12.1f} {statistics.median(t for _, t, _ in rows) / 1e3:12.1f}"
      f"   ({len(rows)} runs)")
PY
done
