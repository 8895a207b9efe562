#!/usr/bin/env bash
# Benchmark (not a test): how long a D-Bus signal takes to become a CRITICAL in a `dbus` check.
# A private dbus-daemon, the release agent on it (alerts to stdout), and N signals sent with
# dbus-send, one every 1.3 s (the check's expiry is 1 s, so each one raises a CRITICAL). The
# figure is the alert's timestamp minus the time just before dbus-send started (so it includes
# dbus-send's own start-up, a millisecond or two).
#
# Usage: bench/dbus-latency.sh [N]   (default 20). Prints the latencies in ms, sorted.
set -euo pipefail
N=${1:-20}
cd "$(dirname "$0")/.."
cargo build -q --release
BIN=$PWD/target/release/lookout
W=$(mktemp -d)
AGENT=""; BUS=""
cleanup() { [ -n "$AGENT" ] && kill "$AGENT" 2>/dev/null; [ -n "$BUS" ] && kill "$BUS" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
cat > "$W/bus.conf" <<CONF
<busconfig><type>system</type><listen>unix:path=$W/bus</listen><auth>EXTERNAL</auth><policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*"/><allow receive_sender="*"/></policy></busconfig>
CONF
dbus-daemon --config-file="$W/bus.conf" --nofork 2>/dev/null & BUS=$!
until [ -S "$W/bus" ]; do sleep 0.01; done
"$BIN" --root "$W/root" create dbus power upower "" "type='signal',interface='com.example.Power',member='Changed'" 1
"$BIN" --root "$W/root" enable dbus power
DBUS_SYSTEM_BUS_ADDRESS="unix:path=$W/bus" "$BIN" --root "$W/root" run --stdout 2>"$W/agent.log" >"$W/alerts.jsonl" & AGENT=$!
until "$BIN" --root "$W/root" status --json 2>/dev/null | grep -q '"state": *"watching"'; do sleep 0.05; done
for i in $(seq 1 "$N"); do
  echo "$(date +%s%3N)" >> "$W/sent"
  dbus-send --bus="unix:path=$W/bus" --type=signal /com/example/Power com.example.Power.Changed "string:n$i"
  sleep 1.3
done
python3 - "$W/sent" "$W/alerts.jsonl" <<'PY'
import json, sys, datetime
sent = [int(l) for l in open(sys.argv[1])]
crit = [json.loads(l) for l in open(sys.argv[2]) if '"CRITICAL"' in l]
ms = lambda a: datetime.datetime.fromisoformat(a["timestamp"].replace("Z", "+00:00")).timestamp() * 1000
lat = sorted(round(ms(c) - s) for s, c in zip(sent, crit))
print(f"{len(crit)} of {len(sent)} signals alerted; latency ms (sorted): {lat}")
print(f"p50 {lat[len(lat) // 2]} ms, max {lat[-1]} ms")
PY
