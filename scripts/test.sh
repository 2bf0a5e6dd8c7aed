#!/usr/bin/env bash
# Runs every test of sipfleet: the Rust unit and integration tests (real nodes on loopback
# addresses) and the Playwright tests in Chromium against the real binary. Installs what is
# missing first; safe to run twice.
#
# The tests send fuzzed SIP (with foreign Via headers) to nodes, so they run inside a fresh
# network namespace that has only a loopback interface: nothing can leave the machine, and
# the namespace disappears with the last test process.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
bash scripts/setup.sh
source scripts/env.sh

echo; echo "== build (console, wasm bundle, nodes)"
cargo leptos build --split
leptos_build_env
cargo test --no-run -p sip-engine -p app -p server --features app/ssr

echo; echo "== tests, inside a network namespace with only loopback"
if [ "$(id -u)" -eq 0 ]; then ns=(unshare --net); else ns=(unshare --net --map-root-user); fi
"${ns[@]}" bash -c 'ip link set lo up && exec bash scripts/test-suites.sh'
echo "all tests passed in $(( $(date +%s) - started )) s"
