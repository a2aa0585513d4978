#!/usr/bin/env bash
# The demo page in a real browser: starts lwsd with two workers and runs the
# headless-Chromium test (tests/browser/demo_test.py) against it: the counter rises, a
# mirror stroke drawn on one page arrives on another page served by the other worker,
# server status, echo and the form POST work. Then the same three times more:
#  - https over HTTP/1.1 against lwsd -s (its self-signed certificate accepted with
#    --ignore-certificate-errors; Chromium started with --disable-http2): the page's
#    WebSockets are wss://, still one connection each, so pages land on both workers;
#  - https over HTTP/2 (Chromium's default with lwsd -s, ALPN h2): the pages and their
#    resources come over h2, and every WebSocket the pages open is an RFC 8441 stream
#    (extended CONNECT) on the page's connection, as lwsd's own counters show
#    (lwsd_h2_websockets_total at least the pages' WebSocket opens,
#    lwsd_h2_connections_total 1 or 2). Both pages share that one connection, so one
#    worker serves them: the cross-worker check is the HTTP/1.1 runs'.
#    Chromium needs no flag for RFC 8441: it uses it by itself on an HTTP/2 connection
#    whose server SETTINGS carry ENABLE_CONNECT_PROTOCOL=1 (checked with Chromium 156;
#    the old --enable-websocket-over-http2 switch is gone from its binary).
# Usage: scripts/browser-test.sh [LWSD_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
LWSD=${1:-target/release/lwsd}
PORT=${PORT:-7790}
METRICS_PORT=${METRICS_PORT:-$((PORT + 10))}
OUT=${OUT:-target/browser}
mkdir -p "$OUT"
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill $p 2>/dev/null; wait $p 2>/dev/null || true; done' EXIT
# run NAME SCHEME PORT [LWSD FLAGS...] -- [demo_test.py FLAGS...]
run() {
  local name=$1 scheme=$2 port=$3; shift 3
  local flags=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do flags+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  "$LWSD" -p "$port" -i 127.0.0.1 -j 2 -d 3 "${flags[@]}" > "$OUT/lwsd-$name.log" 2>&1 &
  PIDS+=($!)
  # The readiness probe speaks HTTP/1.1, so lwsd's h2 counters count only Chromium.
  for _ in $(seq 100); do
    curl -sfk --http1.1 -o /dev/null "$scheme://127.0.0.1:$port/" && break
    sleep 0.1
  done
  python3 tests/browser/demo_test.py --base-url "$scheme://127.0.0.1:$port/" \
    --expect-echo --expect-form "$@" --screenshot "$OUT/demo-$name.png" --timeout 120
}
run http http "$PORT" --metrics-addr off -- \
  --expect-different-workers --expect-ws-scheme ws
run https https "$((PORT + 1))" -s --metrics-addr off -- \
  --expect-different-workers --insecure --expect-ws-scheme wss \
  --chromium-arg=--disable-http2 --expect-transport http/1.1
run h2 https "$((PORT + 2))" -s --metrics-addr "127.0.0.1:$METRICS_PORT" -- \
  --insecure --expect-ws-scheme wss --expect-transport h2 \
  --metrics-url "http://127.0.0.1:$METRICS_PORT/metrics" --expect-h2-websockets
