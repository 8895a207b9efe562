#!/usr/bin/env bash
# Benchmark (not a test): write -> alert at a local HTTP server (the Mender API path), N alerts
# (default 1000), with LOG_LINES_AFTER_WINDOW_MS at 0 (no after-lines) and at its default
# (200 ms, 30 after-lines), on an idle machine and under load (one busy loop per core plus a
# writer doing fsyncs on the same disk as the agent's spool). The agent runs with its defaults
# otherwise: ALERT_STORE_FSYNC=always, the state saved, one POST per batch.
# Usage: bench/latency.sh [N]. Prints a Markdown table (ms).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
cargo build --release --locked -q
BIN=$PWD/target/release/lookout
W=$(mktemp -d /var/tmp/lookout-latency.XXXXXX)   # on disk, as the spool is on a device
LOAD=()
stop_load() { for p in "${LOAD[@]}"; do kill "$p" 2>/dev/null || true; done; wait "${LOAD[@]}" 2>/dev/null || true; LOAD=(); }
cleanup() { stop_load; rm -rf "$W"; }
trap cleanup EXIT
start_load() {
  for _ in $(seq "$(nproc)"); do (while :; do :; done) & LOAD+=($!); done
  (while :; do dd if=/dev/zero of="$W/io.bin" bs=64k count=64 oflag=dsync status=none; done) & LOAD+=($!)
}
run() { # window load -> "count p50 p99 max missing"
  local d; d=$(mktemp -d "$W/run.XXXXXX")
  [ "$2" = loaded ] && start_load
  python3 bench/latency.py "$BIN" "$d" "$N" "$1"
  stop_load; rm -rf "$d"
}
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(uname -r); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| window | machine | alerts | p50 ms | p99 ms | max ms | missing | longest spool sync ms | longest state save ms |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
for window in 0 default; do
  for load in idle loaded; do
    read -r n p50 p99 max missing sync save < <(run "$window" "$load")
    echo "| $window | $load | $n | $p50 | $p99 | $max | $missing | $sync | $save |"
  done
done
