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
# HYPER_FLAVOR=multi_thread runs both on their multi-thread runtimes, with 2 workers each
# (RIPPLE_WORKER_THREADS, TOKIO_WORKER_THREADS), not pinned: wrk competes with the servers for
# the 2 CPUs. callgrind runs one thread at a time, so its count adds up every worker's
# instructions.
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
  export RIPPLE_WORKER_THREADS=2 TOKIO_WORKER_THREADS=2
  ripple_server+=(127.0.0.1:0 multi_thread)
  tokio_server+=(127.0.0.1:0 multi_thread)
  pin_server=()
  pin_client=()
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

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
      start_server "$work/log" valgrind --tool=callgrind --callgrind-out-file="$work/out" "${server[@]}"
      requests=$(wrk -t1 -c10 -d2s "http://$server_addr/" | awk '/requests in/ { print $1 }')
      stop_server
      awk -v n="$requests" '/^summary:/ { printf "%.0f\n", $2 / n }' "$work/out"
      ;;
    rps50 | rps256)
      start_server "$work/log" "${pin_server[@]}" "${server[@]}"
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

# The helpers and the pairs loop.
# shellcheck source=benches/pairs.sh
source benches/pairs.sh
run_pairs
