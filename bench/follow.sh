#!/usr/bin/env bash
# Benchmark (not a test): follow cost, lookout against `tail -F | grep`, side by side in one run,
# per pattern shape, three rounds (bench/follow.py measures). A fast writer appends SIZE_MIB
# (default 1024) MiB of the realistic log (bench/genlog.py) then one matching line to a file on
# tmpfs (disk writeback would set the pace otherwise); the followers start at the file's end:
#   - lookout `run --stdout`, a log check, no after-lines and LOG_LINES_AFTER_WINDOW_MS=0;
#   - `tail -n0 -F FILE | grep -E --line-buffered -m1 PATTERN` (grep -i for `(?i)`; `[0-9]` for
#     `\d`), the CPU of tail and grep summed.
# Pattern shapes: a literal, a literal suffix (`\d+ crashed`), an alternation, `(?i)`, and
# `[xyz]{5}` with no literal at all (every line through the regex: on SIZE_MIB/16).
# Reported: seconds from the start of the write to the alert, the follower's CPU seconds, and
# CPU seconds per GiB followed. Usage: bench/follow.sh [SIZE_MIB] [ROUNDS]. Prints Markdown.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${1:-1024}
ROUNDS=${2:-3}
cargo build --release --locked -q
BIN=$PWD/target/release/lookout
W=$(mktemp -d /tmp/lookout-follow.XXXXXX)
F=$W
if [ -d /dev/shm ] && [ -w /dev/shm ]; then F=$(mktemp -d /dev/shm/lookout-follow.XXXXXX); fi
cleanup() { rm -rf "$W"; [ "$F" = "$W" ] || rm -rf "$F"; }
trap cleanup EXIT
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(uname -r); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "Followed file on $(df --output=fstype "$F" | tail -1); $ROUNDS rounds; lower is better."
echo
python3 bench/follow.py "$BIN" "$W" "$F" "$SIZE_MIB" "$ROUNDS"
