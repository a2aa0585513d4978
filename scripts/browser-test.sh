#!/usr/bin/env bash
# The demo page in a real browser: starts lwsd with two workers and runs the
# headless-Chromium test (tests/browser/demo_test.py) against it: the counter rises, a
# mirror stroke drawn on one page arrives on another page served by the other worker,
# server status, echo and the form POST work. Then the same over https against lwsd -s
# (its self-signed certificate accepted with --ignore-certificate-errors): the page's
# WebSockets are wss://. Usage: scripts/browser-test.sh [LWSD_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
LWSD=${1:-target/release/lwsd}
PORT=${PORT:-7790}
OUT=${OUT:-target/browser}
mkdir -p "$OUT"
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill $p 2>/dev/null; wait $p 2>/dev/null || true; done' EXIT
# run SCHEME PORT [LWSD FLAGS...]
run() {
  local scheme=$1 port=$2; shift 2
  "$LWSD" -p "$port" -i 127.0.0.1 -j 2 --metrics-addr off -d 3 "$@" > "$OUT/lwsd-$scheme.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do
    curl -sfk -o /dev/null "$scheme://127.0.0.1:$port/" && break
    sleep 0.1
  done
  local extra=()
  [ "$scheme" = https ] && extra=(--insecure --expect-ws-scheme wss)
  [ "$scheme" = http ] && extra=(--expect-ws-scheme ws)
  python3 tests/browser/demo_test.py --base-url "$scheme://127.0.0.1:$port/" \
    --expect-different-workers --expect-echo --expect-form "${extra[@]}" \
    --screenshot "$OUT/demo-$scheme.png" --timeout 120
}
run http "$PORT"
run https "$((PORT + 1))" -s
