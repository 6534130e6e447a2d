#!/usr/bin/env bash
# Ingest benchmark (a program that prints figures; not a test).
#   bench/ingest.sh                 # ≥ 2 M rows at 1-minute buckets (≈ 1 GB JSON), then DuckDB
#   ROWS_PER_BUCKET=20 bench/ingest.sh   # smaller
# Needs: python3 with duckdb (pip install duckdb). Work dir: $WORK (default /tmp/tokenledger-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-/tmp/tokenledger-bench}
mkdir -p "$WORK"
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-target}/release/tokenledger"
exec python3 bench/ingest.py --bin "$BIN" --work "$WORK" --rows-per-bucket "${ROWS_PER_BUCKET:-90}" "$@"
