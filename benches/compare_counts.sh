#!/usr/bin/env bash
# The current-thread runtime's counts on this tree against another revision's, interleaved
# (base, this, base, this, ...), medians: for "a change must not cost the hot path".
#
#   echo, 10 connections   user-space instructions per echoed 64-byte message, valgrind
#                          --tool=callgrind on examples/echo.rs, 10 connections x 2,000 messages.
#                          Moves with how many events each epoll wait returns, so it needs pairs.
#   echo, 1 connection     the same with 1 connection x 5,000 messages: every message is one
#                          wait, so the count is the same from run to run (the per-wait cost).
#   spawn+join             instructions per task of examples/spawn_join.rs (500,000 tasks).
#
# Usage: bash benches/compare_counts.sh BASE_REV [PAIRS] (default 5 pairs). Builds BASE_REV in a
# temporary git worktree. Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/pairs.sh
base_rev=${1:?usage: bash benches/compare_counts.sh BASE_REV [PAIRS]}
pairs=${2:-5}
work=$(mktemp -d)
trap 'git worktree remove --force "$work/base" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git worktree add --detach "$work/base" "$base_rev" >/dev/null
examples=(--example echo --example echo_client --example spawn_join)
(cd "$work/base" && CARGO_TARGET_DIR="$work/base-target" cargo build --release --quiet "${examples[@]}")
cargo build --release --quiet "${examples[@]}"
base="$work/base-target/release/examples"
this=target/release/examples

# Instructions per task of spawn_join binary `$1`.
spawn_count() {
  local out="$work/sj" tasks
  tasks=$(valgrind --tool=callgrind --callgrind-out-file="$out" "$1" ripple 2>/dev/null |
    sed 's/tasks=\([0-9]*\).*/\1/')
  awk -v n="$tasks" '/^summary:/ { printf "%.1f\n", $2 / n }' "$out"
}

report() {
  local what=$1
  shift
  local a=() b=()
  for _ in $(seq "$pairs"); do
    a+=("$("$@" base)")
    b+=("$("$@" this)")
  done
  local ma mb
  ma=$(printf '%s\n' "${a[@]}" | median)
  mb=$(printf '%s\n' "${b[@]}" | median)
  printf '%-22s %s %-8s this %-8s ratio %.4f   (%s: %s; this: %s)\n' "$what" "$base_rev" \
    "$ma" "$mb" "$(awk -v a="$ma" -v b="$mb" 'BEGIN { print b / a }')" \
    "$base_rev" "${a[*]}" "${b[*]}"
}
dir() { if [[ $1 == base ]]; then echo "$base"; else echo "$this"; fi; }
echo10() { callgrind_echo "$(dir "$1")/echo" "$this/echo_client" 10 2000; }
echo1() { callgrind_echo "$(dir "$1")/echo" "$this/echo_client" 1 5000; }
spawn() { spawn_count "$(dir "$1")/spawn_join"; }
report "echo, 10 connections" echo10
report "echo, 1 connection" echo1
report "spawn+join" spawn
