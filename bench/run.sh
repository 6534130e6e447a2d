#!/usr/bin/env bash
# The benchmark (a program that prints figures; not a test): tokenledger and DuckDB
# alternately on the same generated files, 3 rounds, min / median / ratio / peak RSS.
#   bench/run.sh                  # 1.9 M rows at 1-minute buckets (0.78 GB of JSON)
#   ROWS_PER_BUCKET=130 bench/run.sh   # ≈ 2.75 M rows
#   bench/ingest_profile.sh       # then: where the ingest's CPU goes, by stage (perf)
#   ROWS_PER_BUCKET=20 bench/run.sh --rounds 5
# Needs: python3 with duckdb (pip install duckdb). Work dir: $WORK (default /tmp/tokenledger-bench);
# the generated exports there are reused (delete it to regenerate).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tokenledger-target}"
cargo build --release --quiet
exec python3 bench/bench.py --bin "$CARGO_TARGET_DIR/release/tokenledger" \
  --work "${WORK:-/tmp/tokenledger-bench}" --rows-per-bucket "${ROWS_PER_BUCKET:-90}" "$@"
