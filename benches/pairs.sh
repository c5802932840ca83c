# What the scripts in benches/ share: starting and stopping a server, counting the echo's
# instructions, and running the measurements in interleaved pairs. Sourced, not run; the script
# that sources it defines `work` (a scratch directory), and for `run_pairs` also
# `measure MODE WHICH` (prints one number), `modes` and `pairs`.

# Starts a server command (its last argument is ADDR, 127.0.0.1:0 so that the kernel picks a
# free port) in the background; waits for its banner and sets server_addr to the address in it.
start_server() {
  local log=$1
  shift
  # Emptied here, not only by the redirection below: that happens in the background job, and
  # the loop must not read the banner a previous server left in the same file.
  : >"$log"
  "$@" >"$log" 2>&1 &
  server_pid=$!
  for _ in $(seq 200); do
    server_addr=$(sed -n 's/^listening on \([0-9.:]*\).*/\1/p' "$log" 2>/dev/null | head -n 1)
    [[ -n $server_addr ]] && return
    sleep 0.1
  done
  echo "server did not start: $(cat "$log")" >&2
  exit 1
}

# Stops the server: SIGTERM to the measured process itself (the tracer's child; valgrind runs
# in place), since a background job ignores SIGINT; then waits for the tracer's report.
stop_server() {
  local child
  child=$(pgrep -P "$server_pid" | head -n 1 || true)
  kill -TERM "${child:-$server_pid}" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
}

# User-space instructions per echoed 64-byte message of the echo server at path `$1`, loaded by
# the echo_client at path `$2` with `$3` connections x `$4` messages: valgrind --tool=callgrind,
# the run's total divided by the messages.
callgrind_echo() {
  local server=$1 client=$2 conns=$3 messages=$4
  start_server "$work/callgrind.log" valgrind --tool=callgrind \
    --callgrind-out-file="$work/callgrind.out" "$server" 127.0.0.1:0
  "$client" "$server_addr" "$conns" "$messages" 64 >/dev/null
  stop_server
  awk -v n=$((conns * messages)) '/^summary:/ { printf "%.1f\n", $2 / n }' "$work/callgrind.out"
}

# The median of the numbers on standard input.
median() {
  sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Runs every mode in `modes` for `pairs` interleaved pairs (ripple, tokio, ripple, ...) and prints
# one line per mode: each side's median, the median ratio, and every run.
run_pairs() {
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
}
