#!/usr/bin/env bash
# Where the ingest's CPU goes (a program that prints figures; not a test): `perf record` of one
# release ingest of the benchmark's month (bench/run.sh generates it), symbols grouped by stage.
#   bench/ingest_profile.sh            # needs perf (Debian: linux-perf) and a generated $WORK
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tokenledger-target}"
cargo build --release --quiet
WORK="${WORK:-/tmp/tokenledger-bench}"
[ -d "$WORK/exports/usage" ] || { echo "no $WORK/exports/usage: run bench/run.sh first" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
perf record -q -o "$tmp/perf.data" -F 1999 "$CARGO_TARGET_DIR/release/tokenledger" \
  --data-dir "$tmp/data" ingest -q "$WORK/exports/usage" 2>/dev/null
perf report -i "$tmp/perf.data" --no-children --stdio --percent-limit 0 2>/dev/null \
  | grep -E '^ +[0-9]' | python3 bench/ingest_profile.py
