#!/usr/bin/env bash
# Benchmark (not a test): lookout's log check against tail|grep and grep -F on the same machine,
# in the same run.
#
#  1. catch-up: a check is enabled on a large page-cached log whose only match is its last
#     line; time from `enable` to the CRITICAL on stdout. Compared with
#     `tail -n +1 -F FILE | grep --line-buffered -m1 PATTERN` (time to the first match) and
#     `grep -F -c PATTERN FILE` (a plain scan), both started on the same cached file.
#  2. follow: a fast writer appends SIZE bytes of log to a followed file, then one matching
#     line; time from the start of the write to the alert, and CPU seconds the follower spent.
#
# Usage: bench/log-throughput.sh [SIZE_MIB]   (default 1024). Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${1:-1024}
PATTERN="ERROR crashed"
cargo build --release --locked -q
BIN=$PWD/target/release/lookout
W=$(mktemp -d /tmp/lookout-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT

now() { date +%s.%N; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$2"; }
cpu_of() { # utime+stime of a pid in seconds
  awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"
}

# --- a realistic log: varied lines of ~110 bytes, the match only at the very end ----------------
python3 - "$W/block.log" <<'PY'
import random, sys
random.seed(1)
levels = ["INFO"] * 20 + ["DEBUG"] * 5 + ["WARN"]
paths = ["/api/v1/items", "/api/v1/users/42", "/health", "/api/devices/v1/deployments/next", "/static/app.js"]
with open(sys.argv[1], "w") as f:
    for i in range(100000):
        f.write(f"2026-11-29T10:{i//6000%60:02d}:{i//100%60:02d}.{i%1000:03d}Z raspberrypi app[{1000+i%50}]: "
                f"{random.choice(levels)} request id={random.randrange(10**9)} path={random.choice(paths)} "
                f"status={random.choice([200,200,200,204,404,500])} ms={random.randrange(300)}\n")
PY
BLOCK=$(stat -c %s "$W/block.log")
COPIES=$(( (SIZE_MIB * 1048576 + BLOCK - 1) / BLOCK ))
for _ in $(seq "$COPIES"); do cat "$W/block.log"; done > "$W/big.log"
echo "2026-11-29T11:00:00.000Z raspberrypi app[1]: $PATTERN: segfault in worker" >> "$W/big.log"
BYTES=$(stat -c %s "$W/big.log")
LINES=$(wc -l < "$W/big.log")
cat "$W/big.log" > /dev/null   # page-cache it

# --- 1. catch-up ----------------------------------------------------------------------------------
t0=$(now); grep -F -c "$PATTERN" "$W/big.log" > /dev/null; t1=$(now)
GREP_C=$(secs "$t0" "$t1")
t0=$(now); LC_ALL=C grep -F -n "$PATTERN" "$W/big.log" > /dev/null; t1=$(now)
GREP_N=$(secs "$t0" "$t1")

t0=$(now)
tail -n +1 -F "$W/big.log" 2>/dev/null | grep --line-buffered -m1 -F "$PATTERN" > /dev/null || true
t1=$(now)
TAILGREP=$(secs "$t0" "$t1")

R=$W/root
mkdir -p "$R/usr/share/mender-monitor/config"
# No "after" lines: the alert is sent as soon as the match is found, not after the 200 ms window.
echo "DEFAULT_LOG_LINES_AFTER=0" > "$R/usr/share/mender-monitor/config/config.sh"
"$BIN" --root "$R" create log bench "$PATTERN" "$W/big.log"
mkfifo "$W/alerts"
"$BIN" --root "$R" run --stdout > "$W/alerts" 2> "$W/agent.log" & AGENT=$!; PIDS+=("$AGENT")
exec 3< "$W/alerts"
until grep -q "started: checks in" "$W/agent.log"; do sleep 0.01; done
t0=$(now); "$BIN" --root "$R" enable log bench; read -r ALERT <&3; t1=$(now)
LOOKOUT=$(secs "$t0" "$t1")
echo "$ALERT" | grep -q "\"line_number\":$LINES" || { echo "unexpected alert: $ALERT" >&2; exit 1; }
kill "$AGENT"; wait "$AGENT" 2>/dev/null || true; exec 3<&-

# --- 2. follow a fast writer ----------------------------------------------------------------------
# The followed files live on tmpfs when there is one, so disk writeback does not set the pace.
F=$W
if [ -d /dev/shm ] && [ -w /dev/shm ]; then F=$(mktemp -d /dev/shm/lookout-bench.XXXXXX); fi
cleanup_f() { [ "$F" != "$W" ] && rm -rf "$F"; cleanup; }
trap cleanup_f EXIT
cat "$W/big.log" > "$F/alone.log"; rm -f "$F/alone.log"   # warm-up: the first write allocates
t0=$(now); cat "$W/big.log" >> "$F/alone.log"; t1=$(now); rm -f "$F/alone.log"
FOLLOW_WRITE=$(secs "$t0" "$t1")
follow_lookout() {
  local R2=$W/root2 f=$F/follow-lookout.log
  rm -rf "$R2"; mkdir -p "$R2/usr/share/mender-monitor/config"; : > "$f"
  echo "DEFAULT_LOG_LINES_AFTER=0" > "$R2/usr/share/mender-monitor/config/config.sh"
  "$BIN" --root "$R2" create log bench "$PATTERN" "$f"; "$BIN" --root "$R2" enable log bench
  rm -f "$W/alerts2"; mkfifo "$W/alerts2"
  "$BIN" --root "$R2" run --stdout > "$W/alerts2" 2> "$W/agent2.log" & local A=$!; PIDS+=("$A")
  exec 4< "$W/alerts2"
  until grep -q "check log bench: started" "$W/agent2.log"; do sleep 0.01; done
  local c0; c0=$(cpu_of "$A")
  local s; s=$(now); cat "$W/big.log" >> "$f"; read -r _ <&4; local e; e=$(now)
  FOLLOW_LOOKOUT=$(secs "$s" "$e")
  FOLLOW_LOOKOUT_CPU=$(python3 -c "print(f'{$(cpu_of "$A") - $c0:.2f}')")
  kill "$A"; wait "$A" 2>/dev/null || true; exec 4<&-; rm -f "$f"
}
follow_tailgrep() {
  local f=$F/follow-tail.log; : > "$f"
  rm -f "$W/tg"; mkfifo "$W/tg"
  tail -n 0 -F "$f" 2>/dev/null > "$W/tg" & local T=$!; PIDS+=("$T")
  grep --line-buffered -m1 -F "$PATTERN" < "$W/tg" > "$W/tg.out" & local G=$!; PIDS+=("$G")
  sleep 0.5   # let tail reach its follow loop (it has no readiness signal)
  local s; s=$(now); cat "$W/big.log" >> "$f"
  local tc0; tc0=$(cpu_of "$T"); local gc0; gc0=$(cpu_of "$G")
  local gcpu tcpu
  while kill -0 "$G" 2>/dev/null; do gcpu=$(cpu_of "$G" 2>/dev/null || echo "$gcpu"); tcpu=$(cpu_of "$T"); sleep 0.01; done
  local e; e=$(now)
  FOLLOW_TAILGREP=$(secs "$s" "$e")
  FOLLOW_TAILGREP_CPU=$(python3 -c "print(f'{${tcpu:-0} + ${gcpu:-0}:.2f}')")
  kill "$T" 2>/dev/null || true; wait "$T" "$G" 2>/dev/null || true; rm -f "$f"
}
follow_lookout
follow_tailgrep

mbs() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]) / 1e6:,.0f}')" "$BYTES" "$1"; }
cat <<EOF
Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(uname -r)
Log: $BYTES bytes, $LINES lines (~$((BYTES / LINES)) bytes/line), page-cached; pattern "$PATTERN" (literal), only on the last line.

| catch-up (first enable, match on the last line) | seconds | MB/s |
|---|---:|---:|
| lookout (enable -> CRITICAL with line number) | $LOOKOUT | $(mbs "$LOOKOUT") |
| tail -n +1 -F \| grep --line-buffered -m1 | $TAILGREP | $(mbs "$TAILGREP") |
| grep -F -c | $GREP_C | $(mbs "$GREP_C") |
| LC_ALL=C grep -F -n (line numbers) | $GREP_N | $(mbs "$GREP_N") |

| follow (writer appends the log, then the match) | seconds to alert | MB/s | follower CPU s |
|---|---:|---:|---:|
| the writer alone, nobody following (cat >> file) | $FOLLOW_WRITE | $(mbs "$FOLLOW_WRITE") | |
| lookout | $FOLLOW_LOOKOUT | $(mbs "$FOLLOW_LOOKOUT") | $FOLLOW_LOOKOUT_CPU |
| tail -F \| grep --line-buffered | $FOLLOW_TAILGREP | $(mbs "$FOLLOW_TAILGREP") | $FOLLOW_TAILGREP_CPU |
EOF
