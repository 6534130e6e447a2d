#!/usr/bin/env bash
# What a first pull of history costs (a program that prints figures; not a test): a generated
# organisation's pages (MONTHS of hourly Anthropic usage, daily OpenAI) served on loopback by
# bench/apiserver.py, pulled by a release build: requests, pages, bytes, seconds, peak RSS;
# then the same pull again (nothing new: every page unchanged).
#   bench/pull.sh                 # 3 months
#   MONTHS=12 bench/pull.sh
#   ROWS_PER_BUCKET=200 bench/pull.sh   # a denser organisation (synth's default is a small one)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tokenledger-target}"
cargo build --release --quiet
BIN="$CARGO_TARGET_DIR/release/tokenledger"
WORK="${WORK:-/tmp/tokenledger-pull-bench}"
MONTHS="${MONTHS:-3}"
rm -rf "$WORK" && mkdir -p "$WORK"
"$BIN" -q synth --out "$WORK/exports" --start 2026-08 --months "$MONTHS" --width 1h --openai \
  ${ROWS_PER_BUCKET:+--rows-per-bucket "$ROWS_PER_BUCKET"}
export ANTHROPIC_ADMIN_KEY="sk-ant-admin01-bench" OPENAI_ADMIN_KEY="sk-admin-bench"
SERVE_SECONDS=1800 timeout 1900 python3 bench/apiserver.py "$WORK/exports" "$WORK/port" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
PORT=$(cat "$WORK/port")
export TOKENLEDGER_ANTHROPIC_BASE_URL="http://127.0.0.1:$PORT" TOKENLEDGER_OPENAI_BASE_URL="http://127.0.0.1:$PORT"
cat > "$WORK/tokenledger.toml" <<TOML
[providers.anthropic]
since = "2026-08-01"
bucket_width = "1h"
concurrency = 4
[providers.openai]
since = "2026-08-01"
bucket_width = "1d"
TOML
END=$(date -u -d "2026-08-01 + $MONTHS months - 1 day" +%F)
echo "exports: $(du -sh "$WORK/exports/usage" | cut -f1) of hourly usage JSON, $MONTHS month(s)"
for round in first again; do
  /usr/bin/time -f "%e s wall, %M KiB peak RSS" -o "$WORK/time" \
    timeout 1800 "$BIN" -q --config "$WORK/tokenledger.toml" --data-dir "$WORK/data" \
    pull --from 2026-08-01 --to "$END" --json > "$WORK/$round.json" || true
  python3 - "$WORK/$round.json" "$round" "$(cat "$WORK/time")" <<'PY'
import json, sys
v = json.load(open(sys.argv[1])); p = v["pull"]; i = v["ingest"]
loaded = sum(f["rows_loaded"] for f in i["files"])
print(f"{sys.argv[2]:>5}: {p['windows']} windows, {p['requests']} requests ({p['retries']} retried), "
      f"{p['pages']} pages, {p['bytes']/1048576:.1f} MiB in {p['seconds']:.1f} s fetching; "
      f"{loaded} rows loaded; whole command {sys.argv[3]}")
PY
done
