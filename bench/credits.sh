#!/usr/bin/env bash
# Credits benchmark (a program that prints figures; not a test): `tokenledger credits` over
# three years of daily usage history and 200 credit lots (prepaid, auto-reload, promotional,
# monthly). Work dir: $WORK (default /tmp/tokenledger-bench-credits; delete it to regenerate).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-/tmp/tokenledger-bench-credits}
cargo build --release --quiet
BIN="$(pwd)/${CARGO_TARGET_DIR:-target}/release/tokenledger"
[ -x "$BIN" ] || BIN="${CARGO_TARGET_DIR}/release/tokenledger"
DATA="$WORK/data"
if [ ! -d "$WORK/exports" ]; then
  mkdir -p "$WORK"
  "$BIN" -q synth --out "$WORK/exports" --start 2023-12 --months 36 --width 1d --rows-per-bucket 40
  python3 - "$WORK/exports/credits.csv" <<'PY'
import datetime as dt, random, sys
random.seed(7)
rows = ["lot_id,provider,kind,purchased_at,amount_usd,expires_at"]
start = dt.date(2023, 12, 1)
for i in range(200):
    day = start + dt.timedelta(days=random.randrange(0, 3 * 365))
    kind = random.choice(["prepaid"] * 5 + ["auto_reload"] * 3 + ["promotional", "monthly"])
    amount = f"{random.randrange(100, 20000)}.{random.randrange(100):02d}"
    expires = ""
    if kind == "promotional":
        expires = (day + dt.timedelta(days=random.randrange(30, 400))).isoformat()
    if kind == "monthly":
        amount = f"{100 * random.randrange(1, 20)}.00"
        expires = (day + dt.timedelta(days=random.randrange(60, 900))).isoformat()
    rows.append(f"bench-{i:03d},anthropic,{kind},{day.isoformat()},{amount},{expires}")
open(sys.argv[1], "w").write("\n".join(rows) + "\n")
PY
  rm -rf "$DATA"
fi
[ -d "$DATA" ] || "$BIN" -q --data-dir "$DATA" ingest "$WORK/exports"
LOTS=$("$BIN" --data-dir "$DATA" sql "SELECT COUNT(*) AS n FROM credit_lots" --format csv | tail -1)
DAYS=$("$BIN" --data-dir "$DATA" sql "SELECT COUNT(DISTINCT strftime(bucket_start, '%Y-%m-%d')) AS n FROM usage" --format csv | tail -1)
ROWS=$("$BIN" --data-dir "$DATA" sql "SELECT COUNT(*) AS n FROM usage" --format csv | tail -1)
echo "credits benchmark: $LOTS lots, $DAYS days of usage ($ROWS usage rows), as of 2026-11-30"
run() {
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$BIN" -q --data-dir "$DATA" credits --as-of 2026-11-30 --format json > "$WORK/out.json" || [ $? -eq 3 ]
  read -r secs kib < "$WORK/time"
  printf '  %-44s %6.2f s, peak RSS %4d MiB\n' "$1" "$secs" $((kib / 1024))
}
rm -rf "$DATA/usage_pricing"
run "credits, rating 36 months from scratch first"
for i in 1 2 3; do run "credits, rated data current (run $i)"; done
python3 -c "import json; l=json.load(open('$WORK/out.json')); p=l['positions'][0]; print('  ledger: balance', p['balance_usd'], 'burn/day', p['burn_per_day_usd'], 'runway', p['runway_date'], '|', len(l['findings']), 'findings')"
