#!/usr/bin/env bash
# Benchmark (not a test): the catch-up scan, side by side in one run, three rounds. A page-cached
# log of SIZE_MIB (default 1024) whose only match is its last line; every reader reports that
# line with its number, so all do the same work:
#   - lookout, the daemon: `run --stdout` started with the check enabled and no saved state (a
#     first enable reads from the start), no after-lines, no after-window; from exec to the alert;
#   - `lookout test-pattern PATTERN FILE` (prints `number:line`);
#   - `rg --no-mmap -n -F -m1` (ripgrep, read() like lookout), `LC_ALL=C grep -n -F -m1`;
#   - `tail -n +1 -F FILE | grep --line-buffered -m1` (Mender Monitor's way);
#   - `dd bs=1M of=/dev/null`: the copy out of the page cache alone, the floor for read().
# Usage: bench/scan.sh [SIZE_MIB] [ROUNDS]. Prints a Markdown table of MB/s.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${1:-1024}
ROUNDS=${2:-3}
PATTERN="ERROR crashed"
command -v rg >/dev/null || { echo "needs ripgrep (apt-get install ripgrep)" >&2; exit 1; }
cargo build --release --locked -q
BIN=$PWD/target/release/lookout
W=$(mktemp -d /tmp/lookout-scan.XXXXXX)
AGENT=""
cleanup() { [ -n "$AGENT" ] && kill "$AGENT" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
python3 bench/genlog.py "$W/big.log" "$SIZE_MIB" "$PATTERN"
BYTES=$(stat -c %s "$W/big.log")
LINES=$(wc -l < "$W/big.log")
cat "$W/big.log" > /dev/null

ns() { date +%s%N; }
# Runs "$@", checks its output holds the last line's number, prints MB/s.
timed() {
  local s e out
  s=$(ns); out=$("$@" 2>/dev/null | head -c 4096 || true); e=$(ns)
  case "$out" in *"$LINES"*) ;; *) echo "no line number $LINES from: $*: ${out:0:200}" >&2; exit 1 ;; esac
  python3 -c "print(f'{$BYTES / (($e - $s) / 1e9) / 1e6:,.0f}')"
}
tail_grep() { tail -n +1 -F "$W/big.log" 2>/dev/null | grep -n --line-buffered -m1 -F "$PATTERN" | sed "s/^1:/$LINES:/"; }
R=$W/root
mkdir -p "$R/usr/share/mender-monitor/config"
printf 'DEFAULT_LOG_LINES_AFTER=0\nLOG_LINES_AFTER_WINDOW_MS=0\n' > "$R/usr/share/mender-monitor/config/config.sh"
"$BIN" --root "$R" create log bench "$PATTERN" "$W/big.log" >/dev/null
"$BIN" --root "$R" enable log bench >/dev/null
daemon() {
  rm -rf "$R/var"   # no saved position: read from the start
  local fifo=$W/alerts; rm -f "$fifo"; mkfifo "$fifo"
  local s e line
  s=$(ns)
  "$BIN" --root "$R" run --stdout > "$fifo" 2> "$W/agent.log" & AGENT=$!
  read -r line < "$fifo"; e=$(ns)
  kill "$AGENT"; wait "$AGENT" 2>/dev/null || true; AGENT=""
  case "$line" in *"\"line_number\":$LINES"*) ;; *) echo "unexpected alert: ${line:0:300}" >&2; exit 1 ;; esac
  python3 -c "print(f'{$BYTES / (($e - $s) / 1e9) / 1e6:,.0f}')"
}
dd_floor() { local s e; s=$(ns); dd if="$W/big.log" of=/dev/null bs=1M 2>/dev/null; e=$(ns); python3 -c "print(f'{$BYTES / (($e - $s) / 1e9) / 1e6:,.0f}')"; }

declare -A ROW
NAMES=("lookout daemon (run --stdout, first enable)" "lookout test-pattern" "rg --no-mmap -n -F -m1" "LC_ALL=C grep -n -F -m1" "tail -n +1 -F | grep --line-buffered -m1" "dd bs=1M (copy only)")
for r in $(seq "$ROUNDS"); do
  ROW[0]+=" | $(daemon)"
  ROW[1]+=" | $(timed "$BIN" --root "$R" test-pattern "$PATTERN" "$W/big.log")"
  ROW[2]+=" | $(timed rg --no-mmap -n -F -m1 "$PATTERN" "$W/big.log")"
  ROW[3]+=" | $(LC_ALL=C timed grep -n -F -m1 "$PATTERN" "$W/big.log")"
  ROW[4]+=" | $(timed tail_grep)"
  ROW[5]+=" | $(dd_floor)"
done
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(uname -r); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "Log: $BYTES bytes, $LINES lines, page-cached; \"$PATTERN\" only on the last line. MB/s, higher is better."
echo
printf '| reader |'; for r in $(seq "$ROUNDS"); do printf ' run %s |' "$r"; done; echo
printf '|---|'; for r in $(seq "$ROUNDS"); do printf -- '---:|'; done; echo
for i in "${!NAMES[@]}"; do echo "| ${NAMES[$i]//|/\\|}${ROW[$i]} |"; done
