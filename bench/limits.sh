#!/usr/bin/env bash
# Rate-limit headroom benchmark (a program that prints figures; not a test): 31 days of
# 1-minute Analytics usage (5 workspaces × 4 keys × 3 model classes = 60 rows a minute, about
# 2.7 M rows), then `tokenledger limits --days 31` three times on rated data, with the
# headroom pass's own timing (scan + analysis, from -vv) and peak RSS.
# Work dir: $WORK (default /tmp/tokenledger-bench-limits).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-/tmp/tokenledger-bench-limits}
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-$(pwd)/target}/release/tokenledger"
mkdir -p "$WORK"
if [ ! -d "$WORK/in" ]; then
  "$BIN" -q synth --analytics-minutes --out "$WORK/in" --start 2026-10 --months 1 --width 1m \
    --workspaces 5 --keys-per-workspace 4
  rm -rf "$WORK/data"
fi
if [ ! -d "$WORK/data" ]; then
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$BIN" -q --data-dir "$WORK/data" ingest "$WORK/in"
  read -r secs kib < <(tail -1 "$WORK/time")
  printf 'ingest of the minute queries: %.1f s, peak RSS %d MiB\n' "$secs" $((kib / 1024))
  "$BIN" -q --data-dir "$WORK/data" rate
fi
ROWS=$("$BIN" --data-dir "$WORK/data" sql "SELECT COUNT(*) AS n FROM usage WHERE bucket_width = '1m'" --format csv | tail -1)
echo "$ROWS usage rows in 1-minute buckets"
for i in 1 2 3; do
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$BIN" -vv --data-dir "$WORK/data" limits --days 31 \
    --format json > "$WORK/limits.json" 2> "$WORK/limits.err" || [ $? -eq 3 ]
  read -r secs kib < <(tail -1 "$WORK/time")
  pass=$(grep -o 'limits: scan [0-9.]* s ([0-9]* part(s), [0-9]* minute cells), headroom [0-9.]* s' "$WORK/limits.err" | head -1)
  printf 'run %d: `limits --days 31` %.2f s wall, peak RSS %d MiB; %s\n' "$i" "$secs" $((kib / 1024)) "$pass"
done
python3 - "$WORK/limits.json" <<'PY'
import json, sys
h = json.load(open(sys.argv[1]))["headroom"]
for p in h["passing"]:
    print(f"finding: {p['class']} {p['metric']} at {p['at']}: {p['peak']:,} of {p['limit']:,}")
PY
