#!/usr/bin/env bash
# Crash chaos, the long run (not a test): tests/chaos.rs with more stops, against the release
# agent. 15 log checks, a matching line every 0.2 s, the agent stopped at random moments (kill -9,
# one time in four SIGTERM) and started again; every line must reach the recording server in a
# CRITICAL and every check end OK. Prints the seed, the stops, lines written and received, and the
# repeat rate.
#
# Usage: bench/chaos.sh [STOPS [SEED]]   (50 stops by default; a seed picks the same moments)
set -euo pipefail
cd "$(dirname "$0")/.."
export CHAOS_KILLS=${1:-50}
if [ -n "${2:-}" ]; then export CHAOS_SEED=$2; fi
cargo build -q --release
LOOKOUT_BIN=$PWD/target/release/lookout cargo test -q --test chaos -- --nocapture
