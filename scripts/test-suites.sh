#!/usr/bin/env bash
# The test suites themselves; scripts/test.sh runs this inside the test network namespace,
# after building. Not meant to be run on its own.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
leptos_build_env

echo "== cargo test"
cargo test --offline -p sip-engine -p app -p server --features app/ssr

echo; echo "== Playwright (Chromium)"
(cd end2end && npx playwright test)
