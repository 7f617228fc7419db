#!/usr/bin/env bash
# Builds crates/quicwire-wasm into pkg/ (wasm-pack, --target web, release with wasm-opt).
#
# rustup cannot add the wasm32 target on our machines, so the build uses Debian's rustc with
# std rebuilt from source (../shared/tools, see its README). This script provisions what is
# missing, idempotently: the Debian toolchain (root, apt), wasm-bindgen-cli pinned to the
# Cargo.lock version, and wasm-pack; installs are reused when their version already matches.
set -euo pipefail
cd "$(dirname "$0")"
tools=${QUICWIRE_WASM_TOOLS:-$(cd .. && pwd)/shared/tools}
[[ -x $tools/wasm-toolchain.sh ]] || { echo "wasm-pack-build.sh: no $tools/wasm-toolchain.sh (set QUICWIRE_WASM_TOOLS)"; exit 1; }

"$tools/wasm-toolchain.sh" --check >/dev/null 2>&1 || "$tools/wasm-toolchain.sh"

# Install a crate's binary unless that version is already on PATH. --locked first; some
# lockfiles pin versions the registry no longer serves, then an unlocked install.
install() { # crate version binary
  if "$3" --version 2>/dev/null | grep -q " $2\$"; then return; fi
  echo "wasm-pack-build.sh: cargo install $1 $2"
  cargo install --locked "$1" --version "$2" || cargo install --force "$1" --version "$2"
}
bindgen=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/"/,""); print $3; exit}' Cargo.lock)
install wasm-bindgen-cli "$bindgen" wasm-bindgen
install wasm-pack 0.15.1 wasm-pack

(
  eval "$("$tools/wasm-toolchain.sh" --print-env)"
  # wasm-opt from npm's binaryen (pinned in package.json): Debian's wasm-opt 108 corrupts the
  # externref table that wasm-bindgen emits.
  export PATH="$PWD/node_modules/.bin:$PATH"
  # shellcheck disable=SC2086 # WASM_CARGO_ARGS is a list of arguments or empty
  wasm-pack build crates/quicwire-wasm --mode force --target web --release \
    --out-dir ../../pkg --out-name quicwire_wasm --no-pack \
    -- -Zbuild-std=std,panic_abort $WASM_CARGO_ARGS
)
raw=$(stat -c %s pkg/quicwire_wasm_bg.wasm)
gz=$(gzip -9 -c pkg/quicwire_wasm_bg.wasm | wc -c)
echo "pkg/quicwire_wasm_bg.wasm: $((raw / 1024)) KiB raw, $((gz / 1024)) KiB gzipped"
