#!/usr/bin/env bash
# sipfleet's benchmarks: release wasm size (gzipped: the main module, and what each lazily
# loaded page adds), Servers page render time with 1,000 servers, SIP OPTIONS round trip.
# Prints the figures; not part of the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
cargo leptos build --release --split
python3 bench/wasm_size.py target/site/pkg
# The same flags cargo-leptos built the release with (always-erase-components), so the
# benchmark reuses that build instead of compiling everything again.
RUSTFLAGS="--cfg erase_components" cargo run --release -q -p bench
