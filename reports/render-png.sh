#!/usr/bin/env bash
# Renders what people see to PNG, to look at before calling a chart or a page done:
# the demo's HTML chargeback (headless Chromium), every chart it embeds, and the finance
# mail's HTML part. Usage: reports/render-png.sh [OUT_DIR]   (default: /tmp/tokenledger-png)
# Needs: cargo, python3, chromium (Debian: apt install chromium).
set -euo pipefail
out="${1:-/tmp/tokenledger-png}"
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
(cd "$work" && timeout 600 cargo run -q --manifest-path "$root/Cargo.toml" -- -q demo)
demo="$work/tokenledger-demo"
python3 - "$demo" "$out" <<'PY'
import base64, email, glob, re, sys
from email import policy
demo, out = sys.argv[1], sys.argv[2]
html = open(f"{demo}/chargeback-2026-10.html").read()
for i, b in enumerate(re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)):
    open(f"{out}/chart-{i}.png", "wb").write(base64.b64decode(b))
finance = glob.glob(f"{demo}/data/outbox/2026-10/finance*.eml")[0]
m = email.message_from_binary_file(open(finance, "rb"), policy=policy.default)
for p in m.walk():
    if p.get_content_type() == "text/html":
        open(f"{out}/finance-mail.html", "w").write(p.get_content())
PY
shoot() {
  timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$work/chrome" --window-size=900,"$3" --screenshot="$2" "file://$1" \
    >/dev/null 2>&1
}
shoot "$demo/chargeback-2026-10.html" "$out/chargeback.png" 6000
shoot "$out/finance-mail.html" "$out/finance-mail.png" 1800
ls -1 "$out"
