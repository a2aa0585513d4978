#!/usr/bin/env bash
# lwsd's whole test suite: formatting, lints, unit and end-to-end tests against the real
# binary (on the io_uring and the epoll backends), the demo page in headless Chromium (over http and https), and the Autobahn
# WebSocket testsuite (over ws:// and wss://).
# Installs missing test tools first (scripts/install-deps.sh). `--quick` runs the
# Autobahn cases without compression only (301 cases instead of 517).
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=""
[ "${1:-}" = "--quick" ] && QUICK="--quick"
bash scripts/install-deps.sh
echo "== cargo fmt --check"; cargo fmt --all -- --check
echo "== cargo clippy -D warnings"; cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"; cargo test --workspace
# The end-to-end tests again with the workers and the supervisor on epoll (the backend
# for platforms that forbid io_uring); tests pinned to ring handoff stay on io_uring.
echo "== end-to-end tests on the epoll backend"; LWSD_TEST_EVENT_LOOP=epoll cargo test -p lwsd
# Every lwsd a test started (workers included) must be gone with it: a leftover holds
# ports and CPU, and says a worker outlived its supervisor.
sleep 1
if left=$(pgrep -af "^$PWD/target/debug/lwsd( |$)"); then
  echo "lwsd processes left behind by the tests:"; echo "$left"; exit 1
fi
echo "== cargo doc (broken intra-doc links fail)"; RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
# The fuzz crates are outside the workspace (cargo-fuzz wants its own); checking them
# keeps every named target present and compiling against today's API.
echo "== fuzz targets compile"
for f in worker/fuzz shared-proto/fuzz; do cargo check --manifest-path "$f/Cargo.toml" --bins; done
echo "== release build"; cargo build --release -p lwsd -p lwsd-load
echo "== browser"; bash scripts/browser-test.sh target/release/lwsd
echo "== autobahn"; bash scripts/autobahn.sh $QUICK target/release/lwsd
echo "== autobahn over TLS"; bash scripts/autobahn.sh --tls $QUICK target/release/lwsd
