#!/usr/bin/env bash
# What the trace file costs when it is on: user-space instructions (valgrind --tool=callgrind)
# and bytes of file, with RIPPLE_TRACE_FILE set and without, on the same binaries.
#
#   echo, 1 connection   per echoed 64-byte message of examples/echo.rs, 1 connection x 5,000
#                        messages: each message is one wake by the reactor, one poll of the
#                        connection's task and one epoll wait (each wait a park, which writes
#                        the thread's records to the file).
#   spawn+join           per task of examples/spawn_join.rs (5 rounds of 10,000 tasks): a
#                        spawn, one poll, and the wake of the block_on future that joins it.
#
# Off, the trace costs one flag test per site: benches/compare_counts.sh measures that against
# another revision. Usage: bash benches/trace_cost.sh. Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/pairs.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release --quiet --example echo --example echo_client --example spawn_join
ex=${CARGO_TARGET_DIR:-target}/release/examples

messages=5000
off=$(callgrind_echo "$ex/echo" "$ex/echo_client" 1 "$messages")
on=$(RIPPLE_TRACE_FILE="$work/echo.json" callgrind_echo "$ex/echo" "$ex/echo_client" 1 "$messages")
bytes=$(($(stat -c %s "$work/echo.json") / messages))
printf 'echo, 1 connection   off %s   on %s instructions per message   %s bytes of file per message\n' \
  "$off" "$on" "$bytes"

tasks=50000
spawn_join() {
  valgrind --tool=callgrind --callgrind-out-file="$work/spawn.out" "$ex/spawn_join" ripple 5 \
    >/dev/null 2>&1
  awk -v n=$tasks '/^summary:/ { printf "%.1f\n", $2 / n }' "$work/spawn.out"
}
off=$(spawn_join)
on=$(RIPPLE_TRACE_FILE="$work/spawn.json" spawn_join)
bytes=$(($(stat -c %s "$work/spawn.json") / tasks))
printf 'spawn+join           off %s   on %s instructions per task      %s bytes of file per task\n' \
  "$off" "$on" "$bytes"
