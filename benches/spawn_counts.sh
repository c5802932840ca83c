#!/usr/bin/env bash
# User-space instructions per spawned, run and joined task, ripple against tokio's current-thread
# runtime: `valgrind --tool=callgrind` on examples/spawn_join.rs (50 rounds of 10,000 empty
# tasks), the run's total divided by the tasks, in interleaved pairs (ripple, tokio, ...).
# The total includes starting the process and the runtime, about 0.4 instructions per task here.
#
# Usage: bash benches/spawn_counts.sh [PAIRS] (default 3). Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${1:-3}
cargo build --release --quiet --example spawn_join
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Instructions per task of one run on `runtime`.
count() {
  local out="$work/callgrind.out"
  local tasks
  tasks=$(valgrind --tool=callgrind --callgrind-out-file="$out" \
    target/release/examples/spawn_join "$1" 2>/dev/null | sed 's/tasks=\([0-9]*\).*/\1/')
  awk -v n="$tasks" '/^summary:/ { printf "%.0f\n", $2 / n }' "$out"
}

ripple=()
tokio=()
for _ in $(seq "$pairs"); do
  ripple+=("$(count ripple)")
  tokio+=("$(count tokio)")
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
r=$(median "${ripple[@]}")
t=$(median "${tokio[@]}")
printf 'spawn+join  ripple %s  tokio %s  ratio ripple/tokio %.3f   (ripple %s; tokio %s)\n' \
  "$r" "$t" "$(awk -v r="$r" -v t="$t" 'BEGIN { print r / t }')" "${ripple[*]}" "${tokio[*]}"
