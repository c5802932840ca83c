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

# Instructions per message of echo server `$1` with `$2` connections x `$3` messages.
echo_count() {
  local server=$1 conns=$2 messages=$3 out="$work/cg" log="$work/log" port
  port=$((20000 + RANDOM % 20000))
  valgrind --tool=callgrind --callgrind-out-file="$out" "$server" "127.0.0.1:$port" >"$log" 2>&1 &
  local pid=$!
  for _ in $(seq 300); do grep -q "listening on" "$log" && break; sleep 0.1; done
  "$this/echo_client" "127.0.0.1:$port" "$conns" "$messages" 64 >/dev/null
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  awk -v n=$((conns * messages)) '/^summary:/ { printf "%.1f\n", $2 / n }' "$out"
}

# Instructions per task of spawn_join binary `$1`.
spawn_count() {
  local out="$work/sj" tasks
  tasks=$(valgrind --tool=callgrind --callgrind-out-file="$out" "$1" ripple 2>/dev/null |
    sed 's/tasks=\([0-9]*\).*/\1/')
  awk -v n="$tasks" '/^summary:/ { printf "%.1f\n", $2 / n }' "$out"
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

report() {
  local what=$1
  shift
  local a=() b=()
  for _ in $(seq "$pairs"); do
    a+=("$("$@" base)")
    b+=("$("$@" this)")
  done
  printf '%-22s %s %-8s this %-8s ratio %.4f   (%s: %s; this: %s)\n' "$what" "$base_rev" \
    "$(median "${a[@]}")" "$(median "${b[@]}")" \
    "$(awk -v a="$(median "${a[@]}")" -v b="$(median "${b[@]}")" 'BEGIN { print b / a }')" \
    "$base_rev" "${a[*]}" "${b[*]}"
}
dir() { if [[ $1 == base ]]; then echo "$base"; else echo "$this"; fi; }
echo10() { echo_count "$(dir "$1")/echo" 10 2000; }
echo1() { echo_count "$(dir "$1")/echo" 1 5000; }
spawn() { spawn_count "$(dir "$1")/spawn_join"; }
report "echo, 10 connections" echo10
report "echo, 1 connection" echo1
report "spawn+join" spawn
