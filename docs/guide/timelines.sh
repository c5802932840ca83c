#!/usr/bin/env bash
# Regenerates the guide's two timelines from real runs on this machine, with the runtime's trace
# file (RIPPLE_TRACE_FILE) and the timeline tool (tools/src/bin/timeline.rs):
#
#   docs/guide/10-echo-timeline.svg            examples/echo.rs, 3 clients x 4 messages of 64
#                                              bytes (examples/echo_client.rs): the first
#                                              milliseconds after the first accept
#   docs/guide/11-work-stealing-timeline.svg   examples/work_stealing.rs on 2 workers: one task
#                                              spawns eight busy ones on its worker, the other
#                                              worker steals half
#
# Usage: bash docs/guide/timelines.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet -p ripple --example echo --example echo_client --example work_stealing \
  -p ripple-tools --bin timeline
target=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Chapter 10: the echo server, traced, with a few clients; Ctrl-C (SIGINT) shuts it down.
RIPPLE_TRACE_FILE="$work/echo.json" "$target/release/examples/echo" 127.0.0.1:0 >"$work/echo.out" 2>&1 &
server=$!
for _ in $(seq 100); do grep -q "listening on" "$work/echo.out" && break; sleep 0.1; done
addr=$(sed -n 's/^listening on //p' "$work/echo.out" | head -n 1)
"$target/release/examples/echo_client" "$addr" 3 4 64 >/dev/null
kill -INT "$server"
wait "$server" || true
"$target/release/timeline" "$work/echo.json" docs/guide/10-echo-timeline.svg \
  --from-first-spawn --from -0.1 --to 2

# Chapter 11: work stealing under an uneven load, on two workers.
RIPPLE_WORKER_THREADS=2 RIPPLE_TRACE_FILE="$work/ws.json" \
  "$target/release/examples/work_stealing" >/dev/null
"$target/release/timeline" "$work/ws.json" docs/guide/11-work-stealing-timeline.svg \
  --from-first-spawn --from -0.5 --to 70
