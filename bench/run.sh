#!/usr/bin/env bash
# sipfleet's benchmarks: release wasm size (gzipped), Servers page render time with 1,000
# servers, SIP OPTIONS round trip. Prints the figures; not part of the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
cargo leptos build --release
wasm=$(ls target/site/pkg/*.wasm | head -1)
raw=$(stat -c %s "$wasm")
gz=$(gzip -9 -c "$wasm" | wc -c)
echo "Release wasm bundle: $((raw / 1024)) KB, $((gz / 1024)) KB gzipped (target: under 400 KB gzipped)"
# The same flags cargo-leptos built the release with (always-erase-components), so the
# benchmark reuses that build instead of compiling everything again.
RUSTFLAGS="--cfg erase_components" cargo run --release -q -p bench
