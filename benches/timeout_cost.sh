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
source benches/pairs.sh
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

report() {
  local what=$1 conns=$2 messages=$3 a=() b=() r=()
  for _ in $(seq "$pairs"); do
    a+=("$(callgrind_echo "$untimed/echo" "$timed/echo_client" "$conns" "$messages")")
    b+=("$(callgrind_echo "$timed/echo" "$timed/echo_client" "$conns" "$messages")")
    r+=("$(awk -v a="${a[-1]}" -v b="${b[-1]}" 'BEGIN { printf "%.2f", (b / a - 1) * 100 }')")
  done
  local ma mb
  ma=$(printf '%s\n' "${a[@]}" | median)
  mb=$(printf '%s\n' "${b[@]}" | median)
  printf '%-16s without %-7s with %-7s added %+.1f (%+.1f%%); pairs: median %+.2f%%, each %s\n' \
    "$what" "$ma" "$mb" "$(awk -v a="$ma" -v b="$mb" 'BEGIN { print b - a }')" \
    "$(awk -v a="$ma" -v b="$mb" 'BEGIN { print (b / a - 1) * 100 }')" \
    "$(printf '%s\n' "${r[@]}" | median)" "${r[*]}"
  printf '%-16s without: %s; with: %s\n' "" "${a[*]}" "${b[*]}"
}
report "10 connections" 10 2000
report "1 connection" 1 5000
