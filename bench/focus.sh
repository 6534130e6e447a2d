#!/usr/bin/env bash
# FOCUS export benchmark (a program that prints figures; not a test): one month of dense
# 1-minute usage (about 4.9 M usage rows with the default ROWS_PER_BUCKET=900, as in
# bench/scale.py), its cost report, invoice and credits, then `tokenledger export focus` as
# Parquet and as CSV: wall time, peak RSS, rows and bytes written. The export groups by UTC
# day, so its rows follow the answer (keys × models × classes × days), not the usage rows.
# Work dir: $WORK (default /tmp/tokenledger-bench-focus; delete it to regenerate).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-/tmp/tokenledger-bench-focus}
ROWS_PER_BUCKET=${ROWS_PER_BUCKET:-900}
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-$(pwd)/target}/release/tokenledger"
CFG="$WORK/tokenledger.toml"
if [ ! -f "$CFG" ]; then
  mkdir -p "$WORK"
  "$BIN" -q synth --out "$WORK/exports" --start 2026-10 --months 1 --width 1m \
    --rows-per-bucket "$ROWS_PER_BUCKET" --seed 42
  printf 'data_dir = "data"\n' > "$CFG"
  /usr/bin/time -f "ingest: %e s, peak %M KiB" "$BIN" -q --config "$CFG" ingest "$WORK/exports" || true
  rm -rf "$WORK/exports"  # ~1.9 GB of JSON, in the lake now
  /usr/bin/time -f "rate: %e s, peak %M KiB" "$BIN" -q --config "$CFG" rate || true
fi
"$BIN" -q --config "$CFG" sql "SELECT COUNT(*) AS usage_rows FROM usage WHERE month = '2026-10'"
for fmt in parquet csv; do
  rm -rf "$WORK/out-$fmt"
  /usr/bin/time -f "export focus --format $fmt: %e s, peak %M KiB" \
    "$BIN" -q --config "$CFG" export focus --month 2026-10 --out "$WORK/out-$fmt" \
    --format "$fmt" --as-of 2026-12-07 --json > "$WORK/summary-$fmt.json" || true
  python3 - "$WORK/summary-$fmt.json" <<'PY'
import json, os, sys
s = json.load(open(sys.argv[1]))
for f in s["files"]:
    print(f"  {f['dataset']:<15} {f['rows']:>9,} rows {os.path.getsize(f['path']) / 2**20:8.1f} MiB")
print(f"  ListCost {s['list_cost']}  BilledCost {s['billed_cost']}")
PY
done
