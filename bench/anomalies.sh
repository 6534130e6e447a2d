#!/usr/bin/env bash
# Anomaly benchmark (a program that prints figures; not a test):
#  1. quality: precision and recall of the alerts on (day, key) labels of `synth --anomalies all`
#     organisations (3 months, hourly) over SEEDS, and the alerts on `--anomalies traps` ones;
#  2. speed: the anomaly pass over 3 months × 500 keys of hourly data against rating the same
#     data from scratch, with peak RSS.
# Work dir: $WORK (default /tmp/tokenledger-bench-anomalies).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-/tmp/tokenledger-bench-anomalies}
SEEDS=${SEEDS:-"101 102 103 104 105 106 107 108 109 110"}
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-$(pwd)/target}/release/tokenledger"
mkdir -p "$WORK"
echo "quality (alerts on API keys after the 35-day warm-up, labels from synth):"
for mode in all traps; do
  for s in $SEEDS; do
    rm -rf "$WORK/q-$mode-$s" "$WORK/q-$mode-$s-labels.csv" "$WORK/qd-$mode-$s"
    "$BIN" -q synth --out "$WORK/q-$mode-$s" --months 3 --start 2026-06 --width 1h --anomalies $mode --seed "$s"
    "$BIN" -q --data-dir "$WORK/qd-$mode-$s" ingest "$WORK/q-$mode-$s"
    "$BIN" -q --data-dir "$WORK/qd-$mode-$s" anomalies --from 2026-07-06 --format csv > "$WORK/q-$mode-$s.csv" || [ $? -eq 3 ]
  done
  python3 - "$WORK" "$mode" $SEEDS <<'PY'
import csv, os, sys
work, mode, seeds = sys.argv[1], sys.argv[2], sys.argv[3:]
tp = fp = fn = other = 0
for s in seeds:
    lp = f"{work}/q-{mode}-{s}-labels.csv"
    labels = {(r["date"], r["api_key_id"]) for r in csv.DictReader(open(lp))} if os.path.exists(lp) else set()
    rows = list(csv.DictReader(open(f"{work}/q-{mode}-{s}.csv")))
    got = {(r["date"], r["api_key_id"]) for r in rows if r["alert"] == "yes" and r["scope"] == "api_key"}
    other += sum(1 for r in rows if r["alert"] == "yes")
    tp += len(got & labels); fp += len(got - labels); fn += len(labels - got)
if mode == "all":
    p = tp / (tp + fp) if tp + fp else 0; r = tp / (tp + fn) if tp + fn else 0
    print(f"  {len(seeds)} seeds with anomalies: {tp + fn} labels, tp {tp}, fp {fp}, fn {fn}: precision {p:.3f}, recall {r:.3f}")
else:
    print(f"  {len(seeds)} clean seeds (traps only): {other} alert(s) of any scope")
PY
done
echo "speed (3 months × 500 keys, hourly):"
BIG="$WORK/big"
if [ ! -d "$BIG" ]; then
  "$BIN" -q synth --out "$BIG" --months 3 --start 2026-06 --width 1h --workspaces 10 --keys-per-workspace 50 --rows-per-bucket 500 --no-cost-report
  rm -rf "$WORK/bigd"
fi
[ -d "$WORK/bigd" ] || "$BIN" -q --data-dir "$WORK/bigd" ingest "$BIG"
ROWS=$("$BIN" --data-dir "$WORK/bigd" sql "SELECT COUNT(*) AS n FROM usage" --format csv | tail -1)
KEYS=$("$BIN" --data-dir "$WORK/bigd" sql "SELECT COUNT(DISTINCT api_key_id) AS n FROM usage" --format csv | tail -1)
echo "  $ROWS usage rows, $KEYS keys"
timed() {
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" > /dev/null || [ $? -eq 3 ]
  read -r secs kib < "$WORK/time"
  printf '  %-40s %6.2f s, peak RSS %4d MiB\n' "$label" "$secs" $((kib / 1024))
}
for i in 1 2 3; do
  rm -rf "$WORK/bigd/usage_pricing"
  timed "rate 3 months from scratch (run $i)" "$BIN" -q --data-dir "$WORK/bigd" rate
  timed "anomalies, rated data current (run $i)" "$BIN" -q --data-dir "$WORK/bigd" anomalies --format csv
done
