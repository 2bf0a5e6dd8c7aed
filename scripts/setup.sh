#!/usr/bin/env bash
# Installs what building and testing sipfleet needs, skipping whatever is already there.
# Safe to run any number of times. Used by scripts/run.sh and scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }

# Debian packages: Chromium for the browser tests, SIPp (sip-tester) as the SIP peer,
# iproute2 for the test network namespace.
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v sipp >/dev/null || missing+=(sip-tester)
command -v ip >/dev/null || missing+=(iproute2)
command -v gzip >/dev/null || missing+=(gzip)
if [ ${#missing[@]} -gt 0 ]; then
  say "apt: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Rust: the wasm target for the browser bundle.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "rustup: wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# cargo-leptos, built so that it never downloads tools itself (it uses what is on PATH).
LEPTOS_VERSION=0.3.10
if ! cargo leptos --version 2>/dev/null | grep -q "$LEPTOS_VERSION"; then
  say "cargo-leptos $LEPTOS_VERSION (about 15 minutes on 2 cores)"
  cargo install cargo-leptos --version "$LEPTOS_VERSION" --locked --features no_downloads
fi

# wasm-bindgen-cli at exactly the version Cargo.lock pins (the two must match).
WB_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if ! wasm-bindgen --version 2>/dev/null | grep -q "$WB_VERSION"; then
  say "wasm-bindgen-cli $WB_VERSION"
  # Not --locked: its own lockfile pins a crate release the registry no longer serves.
  cargo install wasm-bindgen-cli --version "$WB_VERSION" --force
fi

# npm packages: Playwright (driving Debian's Chromium, never a downloaded browser) and
# binaryen's wasm-opt (Debian's older one produces a bundle that fails to hydrate).
if [ ! -x end2end/node_modules/.bin/playwright ] || [ ! -x end2end/node_modules/.bin/wasm-opt ] \
   || [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
  say "npm packages of end2end/"
  (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
fi
