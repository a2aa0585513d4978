#!/usr/bin/env bash
# The demo page in a real browser: starts lwsd with two workers and runs the
# headless-Chromium test (tests/browser/demo_test.py) against it: the counter rises, a
# mirror stroke drawn on one page arrives on another page served by the other worker,
# server status, echo and the form POST work. Usage: scripts/browser-test.sh [LWSD_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
LWSD=${1:-target/release/lwsd}
PORT=${PORT:-7790}
OUT=${OUT:-target/browser}
mkdir -p "$OUT"
"$LWSD" -p "$PORT" -i 127.0.0.1 -j 2 --metrics-addr off -d 3 > "$OUT/lwsd.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$PORT/" && break
  sleep 0.1
done
python3 tests/browser/demo_test.py --base-url "http://127.0.0.1:$PORT/" \
  --expect-different-workers --expect-echo --expect-form \
  --screenshot "$OUT/demo.png" --timeout 120
