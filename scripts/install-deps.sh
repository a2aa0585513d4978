#!/usr/bin/env bash
# Installs what lwsd's tests and benchmarks use, on a Debian machine, when missing.
# Idempotent and quick when everything is there. Needs root (or sudo) for apt-get.
set -euo pipefail
need_apt=()
# libwebsockets-test-server ships libwebsockets-test-client too (tests/lws_interop.rs).
# nghttp and h2load (nghttp2-client) drive lwsd's HTTP/2 in tests/h2_serving.rs.
for pair in curl:curl wrk:wrk h2load:nghttp2-client nghttp:nghttp2-client nginx:nginx-light openssl:openssl \
            libwebsockets-test-server:libwebsockets-test-server \
            libwebsockets-test-client:libwebsockets-test-server chromium:chromium; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  mapfile -t need_apt < <(printf '%s\n' "${need_apt[@]}" | sort -u)
  echo "installing: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
python3 -c 'import websockets' 2>/dev/null || python3 -m pip install -q 'websockets>=12'
# HTTP/2 peers for the h2 tests: frame-level scripts (tests/h2spec/h2spec.py: hyperframe,
# hpack), h2, httpx (httpx.Client(http2=True) fails when httpx's http2 extra is missing).
python3 -c 'import hyperframe, hpack, h2, httpx; httpx.Client(http2=True)' 2>/dev/null \
  || python3 -m pip install -q h2 hyperframe hpack 'httpx[http2]'
