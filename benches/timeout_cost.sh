#!/usr/bin/env bash
# What the echo server's timeouts cost: user-space instructions per echoed 64-byte message of
# examples/echo.rs as it is (an idle and a write `Watchdog` on every connection) against the same
# server without them, interleaved (untimed, timed, untimed, timed, ...): the medians, and the
# median of the pairs' ratios.
#
# The server without timeouts is made from this tree's examples/echo.rs, in a temporary git
# worktree, by one substitution: each `idle.watch(X).await` and `writing.watch(X).await` becomes
# `Ok::<_, ()>(X.await)`, so the loop, its matches and everything else stay the same (the two
# watchdogs are still made, once per connection, and never used). Counted
# with valgrind --tool=callgrind as in benches/compare_counts.sh: 10 connections x 2,000
# messages (moves with how many events each wait returns, so it needs pairs) and 1 connection x
# 5,000 (every message one wait: the same from run to run).
#
# Usage: bash benches/timeout_cost.sh [PAIRS] (default 5). Needs valgrind. Commit first: the
# worktree is made from HEAD.
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${1:-5}
work=$(mktemp -d)
trap 'git worktree remove --force "$work/untimed" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git worktree add --detach "$work/untimed" HEAD >/dev/null
sed -E -i -e 's/(idle|writing)\.watch\((.*)\)\.await/Ok::<_, ()>(\2.await)/' \
  -e 's/let mut (idle|writing) =/let _\1 =/' "$work/untimed/examples/echo.rs"
if grep -q '\.watch(' "$work/untimed/examples/echo.rs"; then
  echo "timeout_cost.sh: a watch() call in examples/echo.rs was not replaced" >&2
  exit 1
fi
examples=(--example echo --example echo_client)
(cd "$work/untimed" && CARGO_TARGET_DIR="$work/untimed-target" cargo build --release --quiet "${examples[@]}")
cargo build --release --quiet "${examples[@]}"
untimed="$work/untimed-target/release/examples"
timed=target/release/examples

# Instructions per message of echo server `$1` with `$2` connections x `$3` messages.
echo_count() {
  local server=$1 conns=$2 messages=$3 out="$work/cg" log="$work/log" port
  port=$((20000 + RANDOM % 20000))
  valgrind --tool=callgrind --callgrind-out-file="$out" "$server" "127.0.0.1:$port" >"$log" 2>&1 &
  local pid=$!
  for _ in $(seq 300); do grep -q "listening on" "$log" && break; sleep 0.1; done
  "$timed/echo_client" "127.0.0.1:$port" "$conns" "$messages" 64 >/dev/null
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  awk -v n=$((conns * messages)) '/^summary:/ { printf "%.1f\n", $2 / n }' "$out"
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

report() {
  local what=$1 conns=$2 messages=$3 a=() b=() r=()
  for _ in $(seq "$pairs"); do
    a+=("$(echo_count "$untimed/echo" "$conns" "$messages")")
    b+=("$(echo_count "$timed/echo" "$conns" "$messages")")
    r+=("$(awk -v a="${a[-1]}" -v b="${b[-1]}" 'BEGIN { printf "%.2f", (b / a - 1) * 100 }')")
  done
  local ma mb
  ma=$(median "${a[@]}")
  mb=$(median "${b[@]}")
  printf '%-16s without %-7s with %-7s added %+.1f (%+.1f%%); pairs: median %+.2f%%, each %s\n' \
    "$what" "$ma" "$mb" "$(awk -v a="$ma" -v b="$mb" 'BEGIN { print b - a }')" \
    "$(awk -v a="$ma" -v b="$mb" 'BEGIN { print (b / a - 1) * 100 }')" "$(median "${r[@]}")" "${r[*]}"
  printf '%-16s without: %s; with: %s\n' "" "${a[*]}" "${b[*]}"
}
report "10 connections" 10 2000
report "1 connection" 1 5000
