# Sourced by the scripts: puts the project's tools first on PATH.
# wasm-opt must be binaryen's npm build, not any other one on the machine.
export PATH="$PWD/end2end/node_modules/.bin:$HOME/.cargo/bin:$PATH"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
