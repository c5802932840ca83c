#!/usr/bin/env bash
# Counts that do not drift with machine noise, for the echo server on ripple and on tokio:
#   - syscalls per echoed message (strace -c -f on the server), 50 connections x 2,000 messages;
#   - user-space instructions per echoed 64-byte message (valgrind --tool=callgrind on the
#     server), 10 connections x 2,000 messages, the whole run's total divided by 20,000.
#   - the same syscall count with `perf stat -e raw_syscalls:sys_enter`, which barely slows the
#     server: strace makes the server slower than its client, which hides `WouldBlock` reads.
# Usage: bash benches/echo_counts.sh [strace|perf|callgrind|all]   (needs strace, perf, valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
cargo build --release --quiet --example echo --example echo_tokio --example echo_client
bin=target/release/examples
port=19100

# Starts "$@" (a server command whose last argument is ADDR), waits for "listening on".
start_server() {
  local log=$1; shift
  "$@" >"$log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$log" 2>/dev/null && return; sleep 0.1; done
  echo "server did not start: $(cat "$log")" >&2; exit 1
}

# Stops the server: SIGTERM to the traced process itself (the tracer's child; valgrind runs in
# place), since a background job ignores SIGINT; then waits for the tracer's report.
stop_server() {
  local child
  child=$(pgrep -P "$server_pid" | head -n 1 || true)
  kill -TERM "${child:-$server_pid}" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
}

for server in echo echo_tokio; do
  port=$((port + 1))
  if [[ $what == all || $what == strace ]]; then
    out=$(mktemp)
    start_server "$out.log" strace -c -f -o "$out" "$bin/$server" "127.0.0.1:$port"
    "$bin/echo_client" "127.0.0.1:$port" 50 2000 64 >/dev/null
    stop_server
    total=$(awk '$NF == "total" { print $4 }' "$out")
    echo "$server syscalls: total=$total per_message=$(awk -v t="$total" 'BEGIN { printf "%.3f", t / 100000 }')"
    grep -E " (sendto|recvfrom|epoll_pwait|epoll_ctl|timerfd_settime|read|write)$" "$out" |
      awk '{ printf "    %-16s calls=%s\n", $NF, $4 }'
  fi
  port=$((port + 1))
  if [[ $what == all || $what == perf ]]; then
    out=$(mktemp)
    start_server "$out.log" perf stat -e raw_syscalls:sys_enter -x, -o "$out" "$bin/$server" "127.0.0.1:$port"
    "$bin/echo_client" "127.0.0.1:$port" 50 2000 64 >/dev/null
    stop_server
    total=$(awk -F, '/raw_syscalls/ { print $1 }' "$out")
    echo "$server syscalls (perf): total=$total per_message=$(awk -v t="$total" 'BEGIN { printf "%.3f", t / 100000 }')"
  fi
  port=$((port + 1))
  if [[ $what == all || $what == callgrind ]]; then
    out=$(mktemp)
    start_server "$out.log" valgrind --tool=callgrind --callgrind-out-file="$out" "$bin/$server" "127.0.0.1:$port"
    "$bin/echo_client" "127.0.0.1:$port" 10 2000 64 >/dev/null
    stop_server
    total=$(awk '/^summary:/ { print $2 }' "$out")
    echo "$server instructions: total=$total per_message=$(awk -v t="$total" 'BEGIN { printf "%.0f", t / 20000 }')"
  fi
done
