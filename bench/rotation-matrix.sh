#!/usr/bin/env bash
# The rotation matrix, the long run (not a test): tests/rotation_matrix.rs with SCALE times the
# rotations in every mode (10 by default: 60 rotations, 175,000 lines a mode at 10,000 lines/s),
# against the release agent. Prints the table kept in README.md (Reliability).
#
# Usage: bench/rotation-matrix.sh [SCALE]
set -euo pipefail
cd "$(dirname "$0")/.."
export ROTATION_MATRIX_SCALE=${1:-10}
cargo build -q --release
LOOKOUT_BIN=$PWD/target/release/lookout cargo test -q --test rotation_matrix -- --nocapture 2>&1 | grep -v '^\[INFO\]'
exit "${PIPESTATUS[0]}"
