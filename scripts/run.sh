#!/usr/bin/env bash
# Builds sipfleet (release) and starts it: console on http://127.0.0.1:3000, store in
# ./data/sipfleet.db. The first start prints the operator's sign-in once.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
cargo leptos build --release --split
exec target/release/sipfleet --config Leptos.toml "$@"
