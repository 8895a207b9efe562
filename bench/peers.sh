#!/usr/bin/env bash
# Benchmark (not a test): lookout beside its peers, the same workloads in one run, one table
# (bench/peers.py measures): lookout, Monit 5.33 (Debian's; `set daemon 2`, `check file ... if
# content = "ERROR crashed" then exec`), and `tail -n0 -F | grep --line-buffered`, each with 100
# watched files: write -> reaction (20 samples: p50 and max), process exit -> reaction (lookout's
# sysV service check against Monit's `check process ... with pidfile`, 20 samples, each peer in
# an instance with only that check), CPU seconds per GiB followed (a writer appends FOLLOW_MIB
# of the realistic log then the match; lookout and tail|grep as bench/follow.sh measures them),
# idle wake-ups per minute (context switches of every thread over IDLE_S seconds), memory (VmRSS
# and PSS summed over the peer's processes). The catch-up column is bench/scan.sh's, run here
# on a SCAN_MIB log, one round (0: skipped).
# Monit runs in the foreground by PID with its own control, log, id, state and pid files in a
# temporary directory, without httpd. If monit is missing it is installed with apt-get (on a
# host run by systemd, Debian's package also enables and starts its own monit service, with its
# default configuration; this benchmark does not use or stop that one).
# Usage: bench/peers.sh [FOLLOW_MIB] [SCAN_MIB]   (default 256 256; SAMPLES=20 IDLE_S=30)
set -euo pipefail
cd "$(dirname "$0")/.."
FOLLOW_MIB=${1:-256}
SCAN_MIB=${2:-256}
SAMPLES=${SAMPLES:-20}
IDLE_S=${IDLE_S:-30}
export PATH="$PATH:/usr/sbin:/sbin"
export PYTHONDONTWRITEBYTECODE=1   # peers.py imports follow.py: no __pycache__ in bench/
if ! command -v monit >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing monit" >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends monit >/dev/null
fi
cargo build --release --locked -q
BIN=$PWD/target/release/lookout
W=$(mktemp -d /tmp/lookout-peers.XXXXXX)
F=$W
if [ -d /dev/shm ] && [ -w /dev/shm ]; then F=$(mktemp -d /dev/shm/lookout-peers.XXXXXX); fi
cleanup() { rm -rf "$W"; [ "$F" = "$W" ] || rm -rf "$F"; }
trap cleanup EXIT
if [ "$SCAN_MIB" -gt 0 ]; then
  echo "running bench/scan.sh $SCAN_MIB 1 ..." >&2
  bash bench/scan.sh "$SCAN_MIB" 1 > "$W/scan.md"
fi
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(uname -r); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$(monit -V | head -1); lookout $(git describe --always --dirty 2>/dev/null || echo '?'); watched files on $(df --output=fstype "$F" | tail -1)."
echo "Follow: $FOLLOW_MIB MiB appended then the match. Catch-up: a page-cached $SCAN_MIB MiB log, the match on its last line (bench/scan.sh)."
echo
python3 bench/peers.py "$BIN" "$W" "$F" "$FOLLOW_MIB" "$SAMPLES" "$IDLE_S" "$W/scan.md"
