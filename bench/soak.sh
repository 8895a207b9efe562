#!/usr/bin/env bash
# Soak benchmark (not a test): the release agent for a long time under a steady load, and whether
# its memory and file descriptors stay flat.
#
# - 50 log checks (`ERROR|FATAL`, 2 s expiry), fed by one writer process at RATE lines/s in
#   total (about 100-byte lines, one in 500 an ERROR: a CRITICAL/OK cycle every few seconds on
#   each check), which holds its files open with O_APPEND and reopens them on SIGHUP;
# - the real `logrotate` every minute (SOAK_ROTATE_EVERY), 30 s into it: 25 logs `create` (the
#   writer gets SIGHUP in postrotate), 25 `copytruncate`, every fifth with `compress` +
#   `delaycompress`;
# - a Python HTTP server that answers 500 to 20 % of the requests, killed and started again on
#   the same port (down for SOAK_OUTAGE_S, 30 s) at one third and two thirds of the run;
# - every SAMPLE seconds: the agent's RSS and, of it, anonymous memory (heap and stacks: what a
#   leak grows; the rest is the binary's and libc's pages, touched as code paths first run), open
#   fds, CPU share since the last sample (from /proc), alerts waiting in its spool
#   (`status --json`), and what the server accepted.
#
# Verdict after the run: memory and fd count are flat after the warm-up, which ends at the first
# sample with nothing waiting after the first server outage. A backlog (an outage, a run of 500s)
# raises memory to a high-water mark (batches of up to 100 alerts or 512 KiB, up to
# ALERT_OFFLINE_STORE_MAX_COUNT alerts indexed, and the allocator keeps some and gives some
# back), so memory moves in steps between backlogs; a leak shows as a trend. Judged: the last
# third of the samples after the warm-up against everything after the warm-up before it: its
# highest anonymous memory at most 64 KiB and its highest RSS at most 256 KiB above theirs, all of
# them within 1 MiB (anonymous) of each other, and the fd count varying by at most 3 (an HTTP
# connection). And: the agent ran throughout, the spool drains once the writer stops, SIGTERM
# exits 0. A sample taken within 15 s of a rotation is shown with a `*` and not judged (rotated
# logs stay open for their 10 s grace); with SAMPLE=60 none is. Samples judged are marked `=`.
#
# Usage: bench/soak.sh [DURATION [SAMPLE]]   DURATION 1h by default (3600, 600s, 10m, 2h);
#        SAMPLE in seconds, 60 by default. Exit 1 if the verdict is not flat.
#        SOAK_RATE (lines/s, 5000), SOAK_ROTATE_EVERY (s, 60) and SOAK_OUTAGE_S (s, 30) change
#        the load.
set -euo pipefail
# Everything is in main, read whole before it runs, and the line that calls it exits: editing
# this file during a run cannot change the run.
main() {
to_s() {
  case $1 in
    *h) echo $((${1%h} * 3600)) ;;
    *m) echo $((${1%m} * 60)) ;;
    *s) echo "${1%s}" ;;
    *) echo "$1" ;;
  esac
}
DURATION=$(to_s "${1:-1h}")
SAMPLE=${2:-60}
ROTATE_EVERY=${SOAK_ROTATE_EVERY:-60}
RATE=${SOAK_RATE:-5000}
OUTAGE=${SOAK_OUTAGE_S:-30}
CHECKS=50
cd "$(dirname "$0")/.."
cargo build -q --release
BIN=$PWD/target/release/lookout
W=$(mktemp -d /tmp/lookout-soak.XXXXXX)
R=$W/root
AGENT="" WRITER="" SERVER=""
stop() { if [ -n "$1" ]; then kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; fi; }
cleanup() { stop "$AGENT"; stop "$WRITER"; stop "$SERVER"; rm -rf "$W"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$R/logs"

cat > "$W/server.py" <<'PY'
# Accepts alert and config POSTs; answers 500 to a share of them. One line per request in the
# log: "<status> <alerts in the body>".
import http.server, json, random, sys
port, log, fail = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
out = open(log, "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if random.random() < fail:
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            out.write("500 0\n")
            return
        n = len(json.loads(body)) if self.path.endswith("/alert") else 0
        self.send_response(204)
        self.end_headers()
        out.write(f"204 {n}\n")
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY

cat > "$W/writer.py" <<'PY'
# Appends RATE lines/s round-robin to the logs given, each line one write(); reopens on SIGHUP.
import os, random, signal, sys, time
rate, logs = int(sys.argv[1]), sys.argv[2:]
reopen = False
def hup(*_):
    global reopen
    reopen = True
signal.signal(signal.SIGHUP, hup)
def open_all():
    return [os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) for p in logs]
fds, seq, t0 = open_all(), 0, time.monotonic()
while True:
    if reopen:
        reopen = False
        new = open_all()
        for f in fds:
            os.close(f)
        fds = new
    for _ in range(max(1, rate // 100)):
        i = seq % len(fds)
        level = "ERROR" if random.random() < 1 / 500 else "INFO"
        line = f"2026-01-01T00:00:00.000Z app{i:02d} seq={seq:010d} {level} request handled in {seq % 997} ms path=/api/v1/items/{seq % 10007}\n"
        os.write(fds[i], line.encode())
        seq += 1
    delay = t0 + seq / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
PY

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_server() {
  python3 "$W/server.py" "$PORT" "$W/requests.log" 0.2 & SERVER=$!
  until python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 1)" 2>/dev/null; do sleep 0.05; done
}
start_server

LOGS=()
for i in $(seq 0 $((CHECKS - 1))); do
  n=$(printf '%02d' "$i")
  LOGS+=("$R/logs/app$n.log")
  "$BIN" --root "$R" create log "app$n" 'ERROR|FATAL' "$R/logs/app$n.log" 2
  "$BIN" --root "$R" enable log "app$n"
done
python3 "$W/writer.py" "$RATE" "${LOGS[@]}" & WRITER=$!

{
  for i in $(seq 0 $((CHECKS - 1))); do
    n=$(printf '%02d' "$i")
    echo "$R/logs/app$n.log {"
    echo "  rotate 2"
    echo "  missingok"
    if [ "$i" -lt $((CHECKS / 2)) ]; then
      echo "  create"
      echo "  postrotate"
      echo "    kill -HUP $WRITER"
      echo "  endscript"
    else
      echo "  copytruncate"
    fi
    [ $((i % 5)) -eq 0 ] && printf '  compress\n  delaycompress\n'
    echo "}"
  done
} > "$W/logrotate.conf"

"$BIN" --root "$R" run --server "http://127.0.0.1:$PORT" --token SOAK 2> "$W/agent.log" & AGENT=$!
until "$BIN" --root "$R" status --json > /dev/null 2>&1; do sleep 0.05; done

TCK=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$AGENT/stat"; }
waiting() { "$BIN" --root "$R" status --json 2>/dev/null | python3 -c 'import json, sys; print(json.load(sys.stdin)["uplink"]["queue_depth"])' 2>/dev/null || echo "?"; }
delivered() { awk '$1 == 204 { n += $2 } END { print n + 0 }' "$W/requests.log"; }
failed() { awk '$1 == 500 { n++ } END { print n + 0 }' "$W/requests.log"; }

echo "soak: $CHECKS checks, writer $RATE lines/s, logrotate every ${ROTATE_EVERY}s, server failing 20 % and restarted at $((DURATION / 3))s and $((2 * DURATION / 3))s; $DURATION s, a sample every $SAMPLE s"
printf '%6s %9s %9s %5s %6s %8s %10s %8s\n' "t(s)" "RSS(kB)" "anon(kB)" "fds" "CPU%" "waiting" "delivered" "500s"
T0=$(date +%s)
last_ticks=$(ticks) last_t=$T0
next_sample=0 next_rotate=$((ROTATE_EVERY / 2)) last_rotate=-1 restarts=0 warm=yes
RSS=() ANON=() FDS=()
while :; do
  now=$(date +%s) t=$((now - T0))
  kill -0 "$AGENT" 2>/dev/null || { echo "FAIL: the agent died at ${t}s"; tail -20 "$W/agent.log"; exit 1; }
  if [ "$t" -ge "$next_sample" ]; then
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$AGENT/status")
    anon=$(awk '/^RssAnon:/ {print $2}' "/proc/$AGENT/status")
    fds=$(find "/proc/$AGENT/fd" -mindepth 1 -maxdepth 1 | wc -l)
    cur=$(ticks)
    cpu=$(awk -v d=$((cur - last_ticks)) -v tck="$TCK" -v dt=$((now > last_t ? now - last_t : 1)) 'BEGIN { printf "%.1f", 100 * d / tck / dt }')
    last_ticks=$cur last_t=$now
    # A sample within the grace after a rotation counts retired logs still open: shown (*), not
    # judged. With the defaults every sample is 30 s from a rotation.
    wait_now=$(waiting)
    [ "$warm" = outage ] && [ "$wait_now" = 0 ] && warm=done
    mark=" "
    if [ "$last_rotate" -ge 0 ] && [ $((t - last_rotate)) -lt 15 ]; then
      mark="*"
    elif [ "$warm" = done ]; then
      mark="="
      RSS+=("$rss") ANON+=("$anon") FDS+=("$fds")
    fi
    printf '%6d %9d %9d %4d%s %6s %8s %10d %8d\n' "$t" "$rss" "$anon" "$fds" "$mark" "$cpu" "$wait_now" "$(delivered)" "$(failed)"
    next_sample=$((next_sample + SAMPLE))
  fi
  [ "$t" -ge "$DURATION" ] && break
  if [ "$t" -ge "$next_rotate" ]; then
    /usr/sbin/logrotate -f -s "$W/logrotate.status" "$W/logrotate.conf" 2>> "$W/logrotate.err" || echo "  (logrotate failed at ${t}s: $(tail -1 "$W/logrotate.err"))"
    last_rotate=$t next_rotate=$((next_rotate + ROTATE_EVERY))
  fi
  if [ "$restarts" -lt 2 ] && [ "$t" -ge $(((restarts + 1) * DURATION / 3)) ]; then
    echo "  ${t}s: server stopped for $OUTAGE s"
    stop "$SERVER"; SERVER=""
    sleep "$OUTAGE"
    start_server
    restarts=$((restarts + 1))
    [ "$warm" = yes ] && warm=outage
  fi
  sleep 1
done

stop "$WRITER"; WRITER=""
drained=no
for _ in $(seq 1 120); do
  [ "$(waiting)" = 0 ] && { drained=yes; break; }
  sleep 1
done
kill "$AGENT"
status=0; wait "$AGENT" || status=$?
AGENT=""
echo "after the writer stopped: spool drained: $drained; delivered $(delivered) alerts, $(failed) requests answered 500; SIGTERM exit status $status"
echo "agent log: $(grep -c '^\[ERROR\]' "$W/agent.log" || true) ERROR lines, $(grep -c '^\[WARN\]' "$W/agent.log" || true) WARN lines"

verdict=$(python3 - "${RSS[*]}" "${ANON[*]}" "${FDS[*]}" <<'PY'
import sys
rss, anon, fds = ([int(x) for x in a.split()] for a in sys.argv[1:4])
if len(rss) < 3:
    print("TOO SHORT: fewer than 3 samples after the warm-up")
    sys.exit()
r, a, f = rss, anon, fds
cut = len(a) - max(1, len(a) // 3)
grow_a, grow_r = max(a[cut:]) - max(a[:cut]), max(r[cut:]) - max(r[:cut])
flat = grow_a <= 64 and grow_r <= 256 and max(a) - min(a) <= 1024 and max(f) - min(f) <= 3
print(f"{'FLAT' if flat else 'NOT FLAT'}: after the warm-up anonymous memory {min(a)}-{max(a)} kB, the last third's "
      f"highest {grow_a:+d} kB against the samples before it; RSS {min(r)}-{max(r)} kB ({grow_r:+d} kB); fds {min(f)}-{max(f)}")
PY
)
echo "verdict: $verdict"
case $verdict in FLAT*) [ "$drained" = yes ] && [ "$status" = 0 ] ;; *) exit 1 ;; esac
}
main "$@"; exit
