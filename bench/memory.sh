#!/usr/bin/env bash
# Benchmark (not a test): resident memory of the static musl build (the device's libc) with 1,
# 100 and 1000 log checks, each on its own file of 100 realistic lines (LINES_PER_FILE) (so every check's ring of
# before-lines is full), after the agent has read them all. VmRSS and VmHWM from
# /proc/PID/status; the cost per check is the slope between 100 and 1000.
# Usage: bench/memory.sh [TARGET]   (default x86_64-unknown-linux-musl; the glibc build: "host")
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${1:-x86_64-unknown-linux-musl}
if [ "$TARGET" = host ]; then
  cargo build --release --locked -q; BIN=$PWD/target/release/lookout
else
  rustup target add "$TARGET" >/dev/null 2>&1 || true
  cargo build --release --locked -q --target "$TARGET"; BIN=$PWD/target/$TARGET/release/lookout
fi
W=$(mktemp -d /tmp/lookout-memory.XXXXXX)
AGENT=""
cleanup() { [ -n "$AGENT" ] && kill "$AGENT" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
LINES_PER_FILE=${LINES_PER_FILE:-100}
python3 - "$W/lines" "$LINES_PER_FILE" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(f"2026-11-29T10:00:{i%60:02d}.000Z raspberrypi app[{1000+i}]: INFO request id={i*7919} path=/api/v1/items status=200 ms={i}\n")
PY
kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }
measure() { # checks -> "rss_kib hwm_kib"
  local n=$1 R=$W/root$1
  mkdir -p "$R/usr/share/mender-monitor/config" "$R/etc/mender-monitor/monitor.d/available" "$R/etc/mender-monitor/monitor.d/enabled" "$W/logs$n"
  for i in $(seq "$n"); do
    cp "$W/lines" "$W/logs$n/app$i.log"
    printf 'SERVICE_NAME="mem%s"\nLOG_PATTERN="ERROR crashed"\nLOG_FILE="%s"\n' "$i" "$W/logs$n/app$i.log" > "$R/etc/mender-monitor/monitor.d/available/log_mem$i.sh"
    ln -s "../available/log_mem$i.sh" "$R/etc/mender-monitor/monitor.d/enabled/log_mem$i.sh"
  done
  "$BIN" --root "$R" run --stdout > /dev/null 2> "$W/agent$n.log" & AGENT=$!
  local deadline=$((SECONDS + 60))
  until grep -q "started: checks in" "$W/agent$n.log"; do [ $SECONDS -lt $deadline ] || { echo "no start" >&2; exit 1; }; sleep 0.05; done
  # Every file read to its end: the status lists each check's lines.
  until [ "$("$BIN" --root "$R" status 2>/dev/null | grep -c ", lines $LINES_PER_FILE\$")" -ge "$n" ] || [ $SECONDS -ge $deadline ]; do sleep 0.1; done
  sleep 1
  echo "$(kib "$AGENT" VmRSS) $(kib "$AGENT" VmHWM)"
  kill "$AGENT"; wait "$AGENT" 2>/dev/null || true; AGENT=""
}
echo "Binary: $TARGET ($(stat -c %s "$BIN") bytes); $(uname -r)"
echo
echo "| checks | VmRSS KiB | VmHWM KiB |"
echo "|---:|---:|---:|"
declare -A RSS
for n in 1 100 1000; do
  read -r rss hwm < <(measure "$n")
  RSS[$n]=$rss
  echo "| $n | $rss | $hwm |"
done
echo
echo "Per added check (100 -> 1000): $(( (RSS[1000] - RSS[100]) * 1024 / 900 )) bytes"
