# Sourced by the scripts: puts the project's tools first on PATH.
# wasm-opt must be binaryen's npm build, not any other one on the machine.
export PATH="$PWD/end2end/node_modules/.bin:$HOME/.cargo/bin:$PATH"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

# What cargo-leptos sets when it builds (debug). `cargo test` runs with the same, so it reuses
# that build instead of compiling everything again, and the `sipfleet` binary it relinks
# still names the bundle files as cargo-leptos wrote them (Leptos reads LEPTOS_OUTPUT_NAME at
# compile time).
leptos_build_env() {
  export LEPTOS_OUTPUT_NAME=sipfleet LEPTOS_SITE_ROOT=target/site LEPTOS_SITE_PKG_DIR=pkg \
    LEPTOS_SITE_ADDR=127.0.0.1:3000 LEPTOS_RELOAD_PORT=3001 LEPTOS_LIB_DIR=app \
    LEPTOS_BIN_DIR=server LEPTOS_JS_MINIFY=false LEPTOS_HASH_FILES=false \
    RUSTFLAGS="--cfg erase_components"
}
