#!/usr/bin/env bash
# The echo server on ripple and on tokio (examples/echo.rs, and its twin in
# tools/src/bin/echo_tokio.rs), measured side by side with the same client
# (examples/echo_client.rs), runs interleaved ripple, tokio, ripple, tokio, ... and the median of
# each reported with the median of the per-pair ratios.
#
#   strace      syscalls per echoed message: strace -c -f on the server, 50 connections x 2,000
#               64-byte messages. strace slows the server below its client's pace, so reads
#               rarely meet WouldBlock: the figure the issue's targets are stated in.
#   perf        the same count with `perf stat -e raw_syscalls:sys_enter`, which barely slows
#               the server: the count a real deployment sees.
#   callgrind   user-space instructions per echoed message: valgrind --tool=callgrind on the
#               server, 10 connections x 2,000 messages, the run's total divided by 20,000.
#   throughput  messages per second, 50 connections x 2,000 messages, the server pinned to CPU 0
#               and the client to CPU 1 with taskset.
#   instructions
#               user-space instructions per echoed message as the server really runs (`perf stat
#               -e instructions:u`): "nan" on a machine without hardware counters, as this one.
#   cpu         the server's CPU time per echoed message in microseconds (`perf stat -e
#               task-clock`), pinned as for throughput: what a message costs the server, which
#               machine noise moves far less than throughput or latency.
#   p99         the client's p99 latency in microseconds, pinned as for throughput.
#
# ECHO_FLAVOR=multi_thread measures the work-stealing runtimes instead: examples/echo_multi_thread.rs
# against the tokio twin on tokio's multi-thread runtime, both with ECHO_WORKERS workers (default 2,
# through RIPPLE_WORKER_THREADS and TOKIO_WORKER_THREADS). Then nothing is pinned (two workers
# pinned to one CPU would measure one core), so throughput, cpu and p99 have the client compete
# with the server for the 2 cores. callgrind runs one thread at a time, so its count adds up every
# thread's instructions as if they ran in turn; `perf stat -e instructions:u` (mode instructions)
# counts them as they really run, where the machine has the counters.
#
# ECHO_SERVER=NAME puts another example in ripple's place, against the same tokio twin: with
# ECHO_FLAVOR=multi_thread, echo_per_core (a current-thread runtime per core) or
# journey_tomcat_nio (the seeds' Poller and worker pool) are compared with tokio's work stealing,
# as in the guide's chapter 11.
#
# Usage: bash benches/echo_counts.sh [MODE ...|all] [PAIRS], MODE one of strace, perf, callgrind,
# instructions, throughput, cpu, p99 (several in quotes: "perf cpu").
# (default: all, 3 pairs). Needs strace, perf and valgrind for their modes. ECHO_MESSAGES sets the
# messages per connection (default 2000; `cargo bench --bench net -- --quick` uses fewer);
# ECHO_CONNECTIONS and ECHO_SIZE change the connections (default 50, or 10 for callgrind) and the
# message size (default 64 bytes), to look at one of the net bench's other shapes.
set -euo pipefail
cd "$(dirname "$0")/.."
modes=${1:-all}
pairs=${2:-3}
per_conn=${ECHO_MESSAGES:-2000}
size=${ECHO_SIZE:-64}
flavor=${ECHO_FLAVOR:-current_thread}
[[ $modes == all ]] && modes="strace perf callgrind throughput"
cargo build --release --quiet -p ripple --example echo --example echo_multi_thread \
  --example echo_client ${ECHO_SERVER:+--example "$ECHO_SERVER"} -p ripple-tools --bin echo_tokio
target=${CARGO_TARGET_DIR:-target}
client=$target/release/examples/echo_client
# The two servers (program, then the arguments after the address), and how server and client are
# pinned to CPUs for the timed modes.
case $flavor in
  current_thread)
    ripple_server=("$target/release/examples/echo")
    tokio_server=("$target/release/echo_tokio")
    pin_server=(taskset -c 0)
    pin_client=(taskset -c 1)
    ;;
  multi_thread)
    export RIPPLE_WORKER_THREADS=${ECHO_WORKERS:-2} TOKIO_WORKER_THREADS=${ECHO_WORKERS:-2}
    ripple_server=("$target/release/examples/echo_multi_thread")
    tokio_server=("$target/release/echo_tokio" multi_thread)
    pin_server=()
    pin_client=()
    ;;
  *)
    echo "unknown ECHO_FLAVOR '$flavor': use current_thread or multi_thread" >&2
    exit 2
    ;;
esac
if [[ -n ${ECHO_SERVER:-} ]]; then
  ripple_server=("$target/release/examples/$ECHO_SERVER")
  # echo_per_core takes its thread count after the address.
  [[ $ECHO_SERVER == echo_per_core && $flavor == multi_thread ]] &&
    ripple_server+=("${ECHO_WORKERS:-2}")
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One measurement in `mode` of the server `which` (ripple or tokio); prints one number.
measure() {
  local mode=$1 which=$2 out="$work/out" log="$work/log"
  local -n program=${which}_server
  local server=("${program[0]}" 127.0.0.1:0 "${program[@]:1}")
  local conns=${ECHO_CONNECTIONS:-50}
  [[ $mode == callgrind ]] && conns=${ECHO_CONNECTIONS:-10}
  local total=$((conns * per_conn))
  case $mode in
    strace)
      start_server "$log" strace -c -f -o "$out" "${server[@]}"
      "$client" "$server_addr" "$conns" "$per_conn" "$size" >/dev/null
      stop_server
      awk -v n=$total '$NF == "total" { printf "%.3f\n", $4 / n }' "$out"
      ;;
    perf)
      start_server "$log" perf stat -e raw_syscalls:sys_enter -x, -o "$out" "${server[@]}"
      "$client" "$server_addr" "$conns" "$per_conn" "$size" >/dev/null
      stop_server
      awk -F, -v n=$total '/raw_syscalls/ { printf "%.3f\n", $1 / n }' "$out"
      ;;
    callgrind)
      start_server "$log" valgrind --tool=callgrind --callgrind-out-file="$out" "${server[@]}"
      "$client" "$server_addr" "$conns" "$per_conn" "$size" >/dev/null
      stop_server
      awk -v n=$total '/^summary:/ { printf "%.0f\n", $2 / n }' "$out"
      ;;
    instructions)
      start_server "$log" perf stat -e instructions:u -x, -o "$out" "${server[@]}"
      "$client" "$server_addr" "$conns" "$per_conn" "$size" >/dev/null
      stop_server
      # "<not supported>" where the machine has no hardware counters (a VM, often).
      awk -F, -v n=$total '/instructions/ { if ($1 ~ /^[0-9]+$/) printf "%.0f\n", $1 / n; else print "nan" }' "$out"
      ;;
    throughput)
      start_server "$log" "${pin_server[@]}" "${server[@]}"
      "${pin_client[@]}" "$client" "$server_addr" "$conns" "$per_conn" "$size" | sed 's/.*msgs_per_sec=\([0-9]*\).*/\1/'
      stop_server
      ;;
    cpu)
      start_server "$log" perf stat -e task-clock -x, -o "$out" "${pin_server[@]}" "${server[@]}"
      "${pin_client[@]}" "$client" "$server_addr" "$conns" "$per_conn" "$size" >/dev/null
      stop_server
      awk -F, -v n=$total '/task-clock/ { printf "%.2f\n", $1 * 1000 / n }' "$out"
      ;;
    p99)
      start_server "$log" "${pin_server[@]}" "${server[@]}"
      "${pin_client[@]}" "$client" "$server_addr" "$conns" "$per_conn" "$size" | sed 's/.*p99_us=\([0-9]*\).*/\1/'
      stop_server
      ;;
    *)
      echo "unknown mode '$mode': use strace, perf, callgrind, instructions, throughput, cpu, p99 or all" >&2
      exit 2
      ;;
  esac
}

# The helpers and the pairs loop.
# shellcheck source=benches/pairs.sh
source benches/pairs.sh
run_pairs
