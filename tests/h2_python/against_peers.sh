#!/usr/bin/env bash
# Runs every attack of attacks.py against h2o and nginx (Debian packages h2o and
# nginx-light, with the echo module for a POST body), over h2c and TLS, to check that the
# attacks are well-formed and do something to a real server: their answers differ from
# lwsd's contract in places (those servers protect differently, or not at all), so this
# prints each answer instead of judging it. Not run by the test suite.
#
# Usage: tests/h2_python/against_peers.sh [ATTACK...]   (default: all of them)
# Everything lives in a temp dir and on free ports on 127.0.0.1; both servers are stopped
# at the end.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
attacks=("$@")
if [ ${#attacks[@]} -eq 0 ]; then
  attacks=(rapid-reset continuation-flood continuation-empty continuation-big hpack-bomb
           big-headers ping-flood settings-flood empty-data-flood window-update-flood
           priority-flood window-stall-stream window-stall-conn too-many-streams
           stream-id-reuse stream-id-lower state-violations)
fi
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$tmp/nginx.pid" ] && kill "$(cat "$tmp/nginx.pid")" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mkdir -p "$tmp/root"
head -c $((4 << 20)) /dev/urandom > "$tmp/root/big.bin"
echo "a small file" > "$tmp/root/small.txt"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
  -days 2 -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
h2o_plain=$(free_port); h2o_tls=$(free_port); ngx_plain=$(free_port); ngx_tls=$(free_port)

cat > "$tmp/h2o.conf" <<EOF
listen: {host: 127.0.0.1, port: $h2o_plain}
listen:
  host: 127.0.0.1
  port: $h2o_tls
  ssl: {certificate-file: $tmp/cert.pem, key-file: $tmp/key.pem}
error-log: $tmp/h2o-error.log
hosts:
  default:
    paths:
      /formtest:
        mruby.handler: |
          Proc.new do |env|
            body = env["rack.input"] ? env["rack.input"].read : ""
            [200, {"content-type" => "text/plain"}, ["got #{body.bytesize} bytes\n"]]
          end
      /:
        file.dir: $tmp/root
EOF
h2o -c "$tmp/h2o.conf" > "$tmp/h2o.out" 2>&1 &
pids+=($!)

# send_timeout 2s: nginx's answer to a window that is never opened (lwsd: --send-timeout 2).
cat > "$tmp/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path $tmp/body;
  server {
    listen 127.0.0.1:$ngx_plain http2;
    listen 127.0.0.1:$ngx_tls ssl http2;
    ssl_certificate $tmp/cert.pem;
    ssl_certificate_key $tmp/key.pem;
    root $tmp/root;
    send_timeout 2s;
    location /formtest { echo_read_request_body; echo "ok"; }
  }
}
EOF
nginx -c "$tmp/nginx.conf" -e "$tmp/nginx-error.log"

for _ in $(seq 50); do
  curl -s -o /dev/null --http2-prior-knowledge "http://127.0.0.1:$h2o_plain/small.txt" \
    && curl -s -o /dev/null --http2-prior-knowledge "http://127.0.0.1:$ngx_plain/small.txt" \
    && break
  sleep 0.1
done

for server in "h2o $h2o_plain" "h2o $h2o_tls --tls" "nginx $ngx_plain" "nginx $ngx_tls --tls"; do
  set -- $server
  name=$1 port=$2 tls=${3:-}
  for a in "${attacks[@]}"; do
    echo "=== $name ${tls:+(TLS) }$a"
    timeout 40 python3 "$here/attacks.py" "$a" --port "$port" $tls \
      | grep -E 'answer:|FAIL|: ok$|^  (sent|wrote|opened|stream|request|server)' || true
  done
done
