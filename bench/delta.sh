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
# Peak RSS counts the binary's pages mapped from the page cache, and how many a fault maps
# depends on how the file got there (written by the linker or `cp`, or read in by exec: the
# kernel's large folios); measured on one machine, the same binary's chargeback peaked at 72.9
# or 76.0 MiB by that alone. So, where we may (root), every series starts from a dropped page
# cache and one `--version`, and the binaries are compared in the same state.
settle() {
  sync
  if { echo 1 > /proc/sys/vm/drop_caches; } 2>/dev/null; then
    echo "(page cache dropped; $("$1" --version) read in by exec)"
  else
    echo "(page cache not dropped: not root; peak RSS includes the binary's cached pages as found)"
  fi
  "$1" --version > /dev/null
}
if [ -n "${BEFORE:-}" ]; then
  echo "== before: $BEFORE"
  settle "$BEFORE"
  TOKENLEDGER_LAKE_DELTA=0 python3 bench/bench.py --bin "$BEFORE" "${args[@]}"
fi
echo "== after, plain Parquet lake: $AFTER"
settle "$AFTER"
TOKENLEDGER_LAKE_DELTA=0 python3 bench/bench.py --bin "$AFTER" "${args[@]}"
echo "== after, Delta mode (TOKENLEDGER_LAKE_DELTA=1): $AFTER"
settle "$AFTER"
TOKENLEDGER_LAKE_DELTA=1 python3 bench/bench.py --bin "$AFTER" "${args[@]}"
