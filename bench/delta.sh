#!/usr/bin/env bash
# The Delta mode's cost (a program that prints figures; not a test): bench/bench.py's ingest
# and chargeback steps for one binary in both lake modes, and optionally for an older binary
# (the same generated files for all), so the figures sit side by side.
#   bench/delta.sh                          # this tree's release build, plain then Delta
#   BEFORE=/path/to/old/tokenledger bench/delta.sh   # and an older build first
#   ROWS_PER_BUCKET=20 ROUNDS=2 bench/delta.sh       # smaller, quicker
# Needs: python3 with duckdb. Work dir: $WORK (default /tmp/tokenledger-bench-delta).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tokenledger-target}"
AFTER="${AFTER:-$CARGO_TARGET_DIR/release/tokenledger}"
[ -n "${AFTER_BUILT:-}" ] || cargo build --release --quiet
WORK="${WORK:-/tmp/tokenledger-bench-delta}"
args=(--work "$WORK" --rows-per-bucket "${ROWS_PER_BUCKET:-90}" --rounds "${ROUNDS:-3}" --skip-run)
if [ -n "${BEFORE:-}" ]; then
  echo "== before: $BEFORE"
  TOKENLEDGER_LAKE_DELTA=0 python3 bench/bench.py --bin "$BEFORE" "${args[@]}"
fi
echo "== after, plain Parquet lake: $AFTER"
TOKENLEDGER_LAKE_DELTA=0 python3 bench/bench.py --bin "$AFTER" "${args[@]}"
echo "== after, Delta mode (TOKENLEDGER_LAKE_DELTA=1): $AFTER"
TOKENLEDGER_LAKE_DELTA=1 python3 bench/bench.py --bin "$AFTER" "${args[@]}"
