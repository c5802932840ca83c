#!/usr/bin/env bash
# hyper on ripple against hyper on tokio: examples/hyper_hello.rs (ripple::hyper) and its twin
# tools/src/bin/hyper_hello_tokio.rs (hyper-util's TokioIo and TokioTimer), the same service,
# loaded by wrk, runs interleaved ripple, tokio, ripple, tokio, ... and the median of each with
# the median of the per-pair ratios.
#
#   callgrind   user-space instructions per request: valgrind --tool=callgrind on the server
#               while `wrk -t1 -c10 -d2s` loads it, the run's total divided by the requests wrk
#               counted (start-up included, so longer runs give slightly lower figures).
#   rps50       requests per second, `wrk -t1 -c50 -d3s`, the server pinned to CPU 0 and wrk to
#               CPU 1.
#   rps256      the same with 256 connections.
#
# HYPER_FLAVOR=multi_thread runs tokio's multi-thread runtime for the twin (2 workers,
# TOKIO_WORKER_THREADS), not pinned; ripple's example stays as it is (current-thread).
#
# Usage: bash benches/hyper_counts.sh [MODE ...|all] [PAIRS] (default: all, 3 pairs). Needs wrk,
# and valgrind for callgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
modes=${1:-all}
pairs=${2:-3}
[[ $modes == all ]] && modes="callgrind rps50 rps256"
cargo build --release --quiet -p ripple --features hyper --example hyper_hello \
  -p ripple-tools --bin hyper_hello_tokio
target=${CARGO_TARGET_DIR:-target}
ripple_server=("$target/release/examples/hyper_hello")
tokio_server=("$target/release/hyper_hello_tokio")
pin_server=(taskset -c 0)
pin_client=(taskset -c 1)
if [[ ${HYPER_FLAVOR:-current_thread} == multi_thread ]]; then
  export TOKIO_WORKER_THREADS=2
  tokio_server+=(127.0.0.1:0 multi_thread)
  pin_server=()
  pin_client=()
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Starts a server in the background (its output in $work/log); sets server_pid and server_addr.
start_server() {
  "$@" >"$work/log" 2>&1 &
  server_pid=$!
  for _ in $(seq 200); do
    server_addr=$(sed -n 's/^listening on \([0-9.:]*\).*/\1/p' "$work/log" 2>/dev/null | head -n 1)
    [[ -n $server_addr ]] && return
    sleep 0.1
  done
  echo "server did not start: $(cat "$work/log")" >&2
  exit 1
}

# Stops the server (SIGTERM to the measured process, the tracer's child if any).
stop_server() {
  local child
  child=$(pgrep -P "$server_pid" | head -n 1 || true)
  kill -TERM "${child:-$server_pid}" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
}

# The server command for `which`, with the address where the program wants it.
command_for() {
  local -n program=${1}_server
  if [[ ${#program[@]} -gt 1 ]]; then
    echo "${program[@]}"
  else
    echo "${program[0]} 127.0.0.1:0"
  fi
}

# One measurement; prints one number.
measure() {
  local mode=$1 which=$2 requests
  # shellcheck disable=SC2207
  local server=($(command_for "$which"))
  case $mode in
    callgrind)
      start_server valgrind --tool=callgrind --callgrind-out-file="$work/out" "${server[@]}"
      requests=$(wrk -t1 -c10 -d2s "http://$server_addr/" | awk '/requests in/ { print $1 }')
      stop_server
      awk -v n="$requests" '/^summary:/ { printf "%.0f\n", $2 / n }' "$work/out"
      ;;
    rps50 | rps256)
      start_server "${pin_server[@]}" "${server[@]}"
      "${pin_client[@]}" wrk -t1 -c"${mode#rps}" -d3s "http://$server_addr/" |
        awk '/^Requests\/sec/ { printf "%.0f\n", $2 }'
      stop_server
      ;;
    *)
      echo "unknown mode '$mode': use callgrind, rps50, rps256 or all" >&2
      exit 2
      ;;
  esac
}

median() {
  sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

for mode in $modes; do
  : >"$work/ripple"
  : >"$work/tokio"
  : >"$work/ratio"
  for _ in $(seq "$pairs"); do
    r=$(measure "$mode" ripple)
    t=$(measure "$mode" tokio)
    echo "$r" >>"$work/ripple"
    echo "$t" >>"$work/tokio"
    awk -v r="$r" -v t="$t" 'BEGIN { printf "%.3f\n", r / t }' >>"$work/ratio"
  done
  printf '%-10s ripple %-9s tokio %-9s ratio ripple/tokio %s   (median of %s pairs: ripple %s; tokio %s)\n' \
    "$mode" "$(median <"$work/ripple")" "$(median <"$work/tokio")" "$(median <"$work/ratio")" \
    "$pairs" "$(paste -sd' ' "$work/ripple")" "$(paste -sd' ' "$work/tokio")"
done
