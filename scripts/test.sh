#!/usr/bin/env bash
# lwsd's whole test suite: formatting, lints, unit + end-to-end tests against the real
# binary. Installs missing test tools first (scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
echo "== cargo fmt --check"; cargo fmt --all -- --check
echo "== cargo clippy -D warnings"; cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"; cargo test --workspace
