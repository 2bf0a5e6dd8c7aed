#!/usr/bin/env bash
# Installs what building and testing sipfleet needs, skipping whatever is already there.
# Safe to run any number of times. Used by scripts/run.sh and scripts/test.sh.
#
# On a fresh machine the two cargo installs are most of the wait, so they are built the
# fast way (no LTO, parallel code generation: they are build tools, their own speed hardly
# matters) and side by side, while apt, npm and the download of the workspace's crates run
# in the background.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }
logs=target/setup
mkdir -p "$logs"
pids=()
names=()
background() { # background NAME COMMAND...: runs COMMAND with its output in target/setup/NAME.log
  local name=$1; shift
  say "$name (in the background)"
  "$@" >"$logs/$name.log" 2>&1 &
  pids+=($!); names+=("$name")
}

# Debian packages: Chromium for the browser tests, SIPp (sip-tester) as the SIP peer,
# iproute2 for the test network namespace.
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v sipp >/dev/null || missing+=(sip-tester)
command -v ip >/dev/null || missing+=(iproute2)
command -v gzip >/dev/null || missing+=(gzip)
apt_install() {
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@"
}
[ ${#missing[@]} -gt 0 ] && background apt apt_install "${missing[@]}"

# npm packages: Playwright (driving Debian's Chromium, never a downloaded browser) and
# binaryen's wasm-opt (Debian's older one produces a bundle that fails to hydrate).
if [ ! -x end2end/node_modules/.bin/playwright ] || [ ! -x end2end/node_modules/.bin/wasm-opt ] \
   || [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
  background npm bash -c 'cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund'
fi

# The workspace's own crates, fetched while the tools compile.
background fetch cargo fetch --locked

# Rust: the wasm target for the browser bundle.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "rustup: wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# Build tools: lightly optimised (opt-level 1), without LTO and with parallel code
# generation. They only orchestrate the build and transform one bundle, so their own speed
# hardly matters, while optimising their ~500 crates fully was most of a first run's wait.
export CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_LTO=false \
  CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_DEBUG=false \
  CARGO_PROFILE_RELEASE_INCREMENTAL=false

# wasm-bindgen-cli at exactly the version Cargo.lock pins (the two must match).
WB_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if ! wasm-bindgen --version 2>/dev/null | grep -q "$WB_VERSION"; then
  # Not --locked: its own lockfile pins a crate release the registry no longer serves.
  background wasm-bindgen-cli cargo install wasm-bindgen-cli --version "$WB_VERSION" --force
fi

# cargo-leptos, built so that it never downloads tools itself (it uses what is on PATH).
# Unoptimised: at run time it only starts cargo, wasm-bindgen and wasm-opt, splits the
# bundle and minifies one small JS file, none of which it measurably slows (a release
# build's JS/WASM step took 284 s with it, 258 s with an opt-level 1 build), while its
# ~550 crates compile in half the CPU time (768 CPU-seconds).
LEPTOS_VERSION=0.3.10
if ! cargo leptos --version 2>/dev/null | grep -q "$LEPTOS_VERSION"; then
  say "cargo-leptos $LEPTOS_VERSION (several minutes on 2 cores)"
  CARGO_PROFILE_RELEASE_OPT_LEVEL=0 \
    cargo install cargo-leptos --version "$LEPTOS_VERSION" --locked --features no_downloads
fi

failed=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    echo "setup: ${names[$i]} failed; its output:" >&2
    tail -n 40 "$logs/${names[$i]}.log" >&2
    failed=1
  fi
done
[ "$failed" -eq 0 ] || exit 1
